"""Training losses: the clipped DCME loss (paper 000, section IV) and the mask losses of
the extreme-points annotator (paper 003, section 3).

The maths lives in the pure functions at the top, once each; the ``keras.losses.Loss``
classes below only convert logits and hand over to Keras' reduction.
The classes compute in float32 whatever the dtype policy, so ``mixed_float16`` models
(float16 outputs) get float32 losses.

Shapes: ``B`` batch, ``H, W`` the output map, ``C`` channels (2 for DCME: dy, dx).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dcme_keras.errors import UserInputError

_PACKAGE = "dcme_keras"
# Keras' Loss.__call__ casts y_true and y_pred to the loss dtype before ``call``, so this
# keeps float16 outputs of mixed-precision models from being scored in float16.
_COMPUTE_DTYPE = "float32"


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------


def translated_logistic(x: tf.Tensor, amplitude: float) -> tf.Tensor:
    """Paper 000 eq. 6: ``f(x) = A * (sigmoid(x) - 0.5) = A/2 * tanh(x/2)``.

    Odd, slope ``A/4`` at 0 (slope 1 for A = 4) and bounded by ``+-A/2``.

    Args:
      x: any shape, float.
      amplitude: A, the full range of f [same units as x].

    Returns:
      f(x), same shape and dtype as ``x``.
    """
    # The tanh form of eq. 6 is exact and, unlike sigmoid(x) - 0.5, does not lose the
    # significant digits of small errors to cancellation in float32.
    return 0.5 * amplitude * tf.tanh(0.5 * x)


def clipped_half_square(err: tf.Tensor, amplitude: float) -> tf.Tensor:
    """``err**2 / 2`` forward, ``translated_logistic(err)`` as its derivative backward.

    The forward value is the full squared error (the loss that is reported stays the real
    MSE), while the backward pass sees the error clipped by eq. 6 (paper 000, IV.B).
    Clipping the *error* here, rather than the incoming gradient in a layer, keeps it
    independent of any scale on the upstream gradient such as the mixed-precision loss
    scale (32768), which would saturate a gradient-side logistic.

    Args:
      err: ``y_pred - y_true``, any shape, float.
      amplitude: A of eq. 6.

    Returns:
      ``err**2 / 2``, same shape and dtype as ``err``.
    """

    @tf.custom_gradient
    def _half_square(e):
        def grad(upstream):
            return upstream * translated_logistic(e, amplitude)

        return 0.5 * tf.square(e), grad

    return _half_square(err)


def dcme_pixel_loss(y_true: tf.Tensor, y_pred: tf.Tensor, amplitude: float) -> tf.Tensor:
    """Per-pixel term of the clipped DCME loss: the channel mean of ``err**2 / 2``.

    Averaging this map over the ``B*H*W`` pixels gives paper 000 eq. 4 with eq. 5,
    ``1/(2N) * sum(err**2)`` with ``N = C*B*H*W``; its gradient w.r.t. ``y_pred`` is then
    ``f(err) / N`` (eq. 6).

    Args:
      y_true: [B, H, W, C] float32, target vectors [pixels].
      y_pred: [B, H, W, C] float32, predicted vectors [pixels].
      amplitude: A of eq. 6 [pixels].

    Returns:
      [B, H, W] float32 [pixels^2].
    """
    return tf.reduce_mean(clipped_half_square(y_pred - y_true, amplitude), axis=-1)


def soft_areas(y_true: tf.Tensor, y_prob: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Soft intersection, union and ground-truth areas, one per sample.

    ``A_int = sum(y * y')``, ``A_union = sum(y + y' - y * y')``, ``A_gt = sum(y')``,
    summed over every axis but the batch axis. With 0/1 inputs they are pixel counts.

    Args:
      y_true: [B, ...] float32, labels y' in [0, 1].
      y_prob: [B, ...] float32 (same shape), predicted probabilities y in [0, 1].

    Returns:
      ``(A_int, A_union, A_gt)``, each [B] float32 [pixels].
    """
    axes = list(range(1, y_prob.shape.rank))
    intersection = tf.reduce_sum(y_true * y_prob, axis=axes)
    gt_area = tf.reduce_sum(y_true, axis=axes)
    union = gt_area + tf.reduce_sum(y_prob, axis=axes) - intersection
    return intersection, union, gt_area


def average_distance(y_true: tf.Tensor, y_prob: tf.Tensor, epsilon: float = 1.0) -> tf.Tensor:
    """Soft approximate average distance error ``Ad = (A_union - A_int) / sqrt(A_gt)``.

    Paper 003, section 3; see :class:`AverageDistanceLoss` for the reconstruction.

    Args:
      y_true: [B, ...] float32, labels y' in [0, 1].
      y_prob: [B, ...] float32 (same shape), predicted probabilities y in [0, 1].
      epsilon: floor on ``A_gt`` [pixels], so an empty ground truth divides by
        ``sqrt(epsilon)`` instead of 0.

    Returns:
      [B] float32 [pixels].
    """
    intersection, union, gt_area = soft_areas(y_true, y_prob)
    return (union - intersection) / tf.sqrt(tf.maximum(gt_area, epsilon))


def soft_iou(y_true: tf.Tensor, y_prob: tf.Tensor, epsilon: float = 1e-6) -> tf.Tensor:
    """Differentiable IoU ``(A_int + eps) / (A_union + eps)``, one per sample.

    Args:
      y_true: [B, ...] float32, labels y' in [0, 1].
      y_prob: [B, ...] float32 (same shape), predicted probabilities y in [0, 1].
      epsilon: added to both areas [pixels], so two empty masks score 1, not 0/0.

    Returns:
      [B] float32 in [0, 1].
    """
    intersection, union, _ = soft_areas(y_true, y_prob)
    return (intersection + epsilon) / (union + epsilon)


def _pixel_weights(sample_weight, y_pred: tf.Tensor) -> tf.Tensor:
    """Bring a per-sample or per-pixel weight to [B, H, W] float32 for ``y_pred`` [B,H,W,C]."""
    weight = tf.cast(sample_weight, tf.float32)
    rank = weight.shape.rank
    if rank == 4 and weight.shape[-1] == 1:
        weight = weight[..., 0]
    elif rank == 1:
        weight = weight[:, None, None]
    elif rank != 3:
        raise UserInputError(
            f"sample_weight of shape {weight.shape} does not fit DCME maps of shape "
            f"{y_pred.shape}; pass per-pixel weights [B, H, W] or [B, H, W, 1], or [B]"
        )
    # An explicit broadcast makes sum(weight) count pixels, which is what N counts.
    return tf.broadcast_to(weight, tf.shape(y_pred)[:-1])


def _mask_inputs(y_true, y_pred, from_logits: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Labels of ``y_pred``'s rank, outputs, and probabilities for the mask losses."""
    # [B, H, W] labels against [B, H, W, 1] outputs would otherwise broadcast to
    # [B, H, W, W] and give a plausible but wrong number.
    if y_true.shape.rank == y_pred.shape.rank - 1:
        y_true = y_true[..., None]
    return y_true, y_pred, tf.sigmoid(y_pred) if from_logits else y_pred


# ---------------------------------------------------------------------------------------
# Keras losses
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DCMELoss(keras.losses.Loss):
    """Clipped DCME regression loss (paper 000, section IV, eqs. 4-6).

    Forward (the value reported by ``fit``/``evaluate``), the full MSE of eq. 4::

        loss = 1/(2N) * sum_i w_i * err_i**2,   err = y_pred - y_true
        N    = 2 * sum_pixels w                 (eq. 5: N = 2*n*r*c when w == 1)

    Backward, the error is clipped by the translated logistic of eq. 6::

        d loss / d y_pred_i = w_i * f(err_i) / N,   f(x) = A * (sigmoid(x) - 0.5)

    ``w`` is an optional per-pixel ignore weight passed as ``sample_weight``: 0 on void
    and group pixels, 1 elsewhere. Ignored pixels drop out of ``N`` as well as the sum, so the
    loss is the MSE over the pixels that count. Without weights ``N`` is the number of
    elements. A per-sample weight [B] is spread over that sample's pixels. The factor 2
    in ``N`` is the channel count C of ``y_pred`` (dy, dx).

    The default reduction ``"mean_with_sample_weight"`` is what divides by ``sum(w)``;
    ``reduction="none"`` returns the per-pixel map ``w * mean_c(err**2 / 2)`` [B, H, W].

    Args:
      amplitude: A of eq. 6 [pixels]; the clipped error is bounded by ``A/2`` and has
        slope ``A/4`` at 0. The paper uses A = 4 at 512x1024 (slope 1); tune it with
        the resolution of the DCME map.
      reduction: Keras reduction; keep the default for the formula above.
      name: loss name.

    Example:
      >>> model.compile(optimizer="adam", loss={keys.DCME: DCMELoss(amplitude=4.0)})
      >>> model.fit(images, {keys.DCME: dcme}, sample_weight={keys.DCME: not_void})
    """

    def __init__(
        self,
        amplitude: float = 4.0,
        reduction: str | None = "mean_with_sample_weight",
        name: str = "dcme_loss",
    ):
        if not amplitude > 0:
            raise UserInputError(
                f"DCMELoss amplitude must be > 0, got {amplitude!r}; "
                "use e.g. amplitude=4.0 (the paper's value at 512x1024)"
            )
        super().__init__(name=name, reduction=reduction, dtype=_COMPUTE_DTYPE)
        self.amplitude = float(amplitude)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Loss of ``y_pred`` [B, H, W, C] against ``y_true`` [B, H, W, C].

        ``sample_weight``: None, [B, H, W], [B, H, W, 1] or [B]; see the class docstring.
        """
        if sample_weight is not None:
            sample_weight = _pixel_weights(sample_weight, y_pred)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        """Per-pixel loss [B, H, W] float32 of [B, H, W, C] float32 maps, before reduction."""
        return dcme_pixel_loss(y_true, y_pred, self.amplitude)

    def get_config(self):
        return {"amplitude": self.amplitude, "reduction": self.reduction, "name": self.name}


class _SoftMaskLoss(keras.losses.Loss):
    """What the soft-area mask losses share: logits or probabilities in, a positive
    ``epsilon``, and the config that rebuilds them. Subclasses define ``call``."""

    def __init__(self, from_logits: bool, epsilon: float, reduction: str | None, name: str,
                 *, example_epsilon: str):
        if not epsilon > 0:
            raise UserInputError(f"{type(self).__name__} epsilon must be > 0, got "
                                 f"{epsilon!r}; use e.g. {example_epsilon}")
        super().__init__(name=name, reduction=reduction, dtype=_COMPUTE_DTYPE)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)

    def get_config(self):
        return {
            "from_logits": self.from_logits,
            "epsilon": self.epsilon,
            "reduction": self.reduction,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AverageDistanceLoss(_SoftMaskLoss):
    """Soft approximate average distance error (paper 003, section 3), averaged over B.

    Per sample::

        Ad = (A_union - A_int) / sqrt(max(A_gt, epsilon))
        A_int = sum(y * y'),  A_union = sum(y + y' - y * y'),  A_gt = sum(y')

    with ``y = sigmoid(logits)`` the predicted probabilities and ``y'`` the 0/1 labels.

    Reconstruction. The paper defines the average distance error as the line integral of
    the ground truth's Euclidean distance transform along the predicted boundary,
    divided by the boundary length, ``integral_{boundary} EDT(s) ds / L``, approximates
    ``L`` by ``sqrt(A)`` with A the ground-truth area, and then gives the formula in
    terms of the union and intersection areas; the printed equation is lost. The two fit
    together as follows: where the predicted boundary runs at distance ``d(s)`` from the
    true one, the strip between the two curves has area ``integral d(s) ds`` to first
    order, and the strips together are the symmetric difference of the masks,
    ``A_union - A_int``. So ``(A_union - A_int) / L`` is the mean boundary distance
    [pixels], and ``L ~ sqrt(A_gt)`` (a disc has ``L = 2*sqrt(pi*A)``, about
    ``3.5*sqrt(A)``) gives the formula above. It is soft because the areas are sums of
    probabilities, so it is differentiable; its value is in pixels (up to that shape
    constant), which weights a one-pixel-wide error the same on small and large objects.

    Args:
      from_logits: whether ``y_pred`` holds logits (the default: the annotator exports
        logits) or probabilities.
      epsilon: floor on ``A_gt`` [pixels]; an empty ground truth then scores
        ``sum(y) / sqrt(epsilon)``.
      reduction: Keras reduction over the per-sample values [B].
      name: loss name.

    Example:
      >>> model.compile(optimizer="adam", loss=AverageDistanceLoss())
    """

    def __init__(
        self,
        from_logits: bool = True,
        epsilon: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "average_distance_loss",
    ):
        super().__init__(from_logits, epsilon, reduction, name, example_epsilon="1.0")

    def call(self, y_true, y_pred):
        """Per-sample Ad [B] float32 [pixels] of [B, H, W(, 1)] labels and outputs."""
        y_true, _, y_prob = _mask_inputs(y_true, y_pred, self.from_logits)
        return average_distance(y_true, y_prob, self.epsilon)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SoftIoULoss(_SoftMaskLoss):
    """Differentiable IoU loss, ``1 - (A_int + eps) / (A_union + eps)`` per sample.

    The areas are those of :func:`soft_areas`, on ``y = sigmoid(logits)`` and labels y';
    the per-sample values [B] are averaged over the batch (paper 003's "differentiable
    IoU loss" [Kir19]).

    Args:
      from_logits: whether ``y_pred`` holds logits (default) or probabilities.
      epsilon: smoothing added to both areas [pixels]; two empty masks give loss 0.
      reduction: Keras reduction over the per-sample values [B].
      name: loss name.

    Example:
      >>> model.compile(optimizer="adam", loss=SoftIoULoss())
    """

    def __init__(
        self,
        from_logits: bool = True,
        epsilon: float = 1e-6,
        reduction: str | None = "sum_over_batch_size",
        name: str = "soft_iou_loss",
    ):
        super().__init__(from_logits, epsilon, reduction, name, example_epsilon="1e-6")

    def call(self, y_true, y_pred):
        """Per-sample ``1 - IoU`` [B] float32 of [B, H, W(, 1)] labels and outputs."""
        y_true, _, y_prob = _mask_inputs(y_true, y_pred, self.from_logits)
        return 1.0 - soft_iou(y_true, y_prob, self.epsilon)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BCEIoULoss(keras.losses.Loss):
    """Binary cross-entropy plus soft IoU loss (paper 003, [Igl18]), per sample::

        loss = bce_weight * mean_pixels(BCE(y', y)) + iou_weight * (1 - soft_iou(y', y))

    averaged over the batch. BCE is computed from logits when ``from_logits`` (stable for
    saturated logits); the IoU term is that of :class:`SoftIoULoss`.

    Args:
      bce_weight: weight of the cross-entropy term [nats per pixel].
      iou_weight: weight of the IoU term.
      from_logits: whether ``y_pred`` holds logits (default) or probabilities.
      epsilon: IoU smoothing [pixels], as in :func:`soft_iou`.
      reduction: Keras reduction over the per-sample values [B].
      name: loss name.

    Example:
      >>> model.compile(optimizer="adam", loss=BCEIoULoss(bce_weight=1.0, iou_weight=1.0))
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        iou_weight: float = 1.0,
        from_logits: bool = True,
        epsilon: float = 1e-6,
        reduction: str | None = "sum_over_batch_size",
        name: str = "bce_iou_loss",
    ):
        if not (bce_weight >= 0 and iou_weight >= 0 and epsilon > 0):
            raise UserInputError(
                f"BCEIoULoss needs bce_weight >= 0, iou_weight >= 0 and epsilon > 0, got "
                f"{bce_weight!r}, {iou_weight!r}, {epsilon!r}; use e.g. 1.0, 1.0, 1e-6"
            )
        super().__init__(name=name, reduction=reduction, dtype=_COMPUTE_DTYPE)
        self.bce_weight = float(bce_weight)
        self.iou_weight = float(iou_weight)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        """Per-sample combined loss [B] float32 of [B, H, W(, 1)] labels and outputs."""
        y_true, y_pred, y_prob = _mask_inputs(y_true, y_pred, self.from_logits)
        bce = keras.ops.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits)
        bce = tf.reduce_mean(bce, axis=list(range(1, bce.shape.rank)))
        iou_loss = 1.0 - soft_iou(y_true, y_prob, self.epsilon)
        return self.bce_weight * bce + self.iou_weight * iou_loss

    def get_config(self):
        return {
            "bce_weight": self.bce_weight,
            "iou_weight": self.iou_weight,
            "from_logits": self.from_logits,
            "epsilon": self.epsilon,
            "reduction": self.reduction,
            "name": self.name,
        }
