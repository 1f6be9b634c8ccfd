"""Mask quality of the extreme-points annotator: aIoU, iIoU, mIoU and border error.

Paper 003, Sec. 3 defines the metrics in words; this module reads them as follows.

* **IoU of one instance**: ``|P & G| / |P | G|`` over the instance's pixels. Two empty
  masks agree perfectly, so their IoU is **1** (an empty prediction of a non-empty object
  scores 0, and so does the reverse).
* **aIoU** ("calculated for each validation batch and then averaged for all the
  batches"): for each batch, the IoU of the batch's pixels pooled together (sum of
  intersections over sum of unions: what a Keras metric function returns for a batch),
  then the unweighted mean over batches. It depends on the batch size (the paper's is 32).
* **iIoU** ("averaging IoUs calculated per single instance"): the mean of the
  per-instance IoUs.
* **mIoU** ("averaging class-based IoUs"): the mean over classes of the class IoU. The
  class IoU is, by default, the semantic-segmentation one: the class's intersections and
  unions pooled over all its instances (``pooling="pixels"``). ``pooling="instances"``
  takes the mean of the class's instance IoUs instead. Table 1's columns give iIoU 90.65
  above mIoU 87.25 with extreme points (the paper's text swaps the two), which fits either
  reading: the frequent, easy ``car`` class dominates iIoU only.
* **Border error** ("the per-pixel distance from the predicted object boundary to the
  ground truth boundary"): for every pixel of the predicted boundary, the Euclidean
  distance [px] to the nearest pixel of the ground-truth boundary. A boundary pixel is a
  mask pixel with a 4-neighbour outside the mask; outside the array counts as outside the
  mask, so an object cut by the crop still has a closed outline.

All NumPy functions take masks of any size, so they score the 128x128 network crops and
the full-resolution masks after paste-back alike. :class:`BinaryIoUFromLogits` is the
training-time aIoU for Keras (early stopping and checkpoint selection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from dcme_keras.errors import UserInputError

POOLINGS = ("pixels", "instances")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, bool)
    gt = np.asarray(gt, bool)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise UserInputError(f"prediction {pred.shape} and ground truth {gt.shape} must be masks "
                             "of the same shape [..., H, W]; resize one to the other first")
    return pred, gt


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-mask intersection and union pixel counts.

    Args:
      pred: ``[..., H, W]`` bool (or 0/1), predicted masks.
      gt: same shape, ground-truth masks.

    Returns:
      ``(intersection, union)``, each ``[...]`` int64 [px].
    """
    pred, gt = _check_pair(pred, gt)
    return (np.count_nonzero(pred & gt, axis=(-2, -1)),
            np.count_nonzero(pred | gt, axis=(-2, -1)))


def _stack_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`intersection_union` of a non-empty ``[N, H, W]`` stack of instances."""
    inter, union = intersection_union(pred, gt)
    if inter.ndim != 1 or not len(inter):
        raise UserInputError(f"expected a non-empty stack of masks [N, H, W], got shape "
                             f"{np.shape(pred)}; stack the instances' masks along axis 0")
    return inter, union


def _ratio(intersection, union) -> np.ndarray:
    """IoU from counts; 1 where the union is empty (two empty masks agree)."""
    intersection = np.asarray(intersection, np.float64)
    union = np.asarray(union, np.float64)
    return np.divide(intersection, union, out=np.ones_like(union), where=union > 0)


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of each mask pair; two empty masks give 1.

    Args:
      pred: ``[..., H, W]`` bool (or 0/1), predicted masks.
      gt: same shape, ground-truth masks.

    Returns:
      ``[...]`` float64 in [0, 1] (a 0-d array for one pair).

    Example:
      >>> iou(np.eye(2, dtype=bool), np.ones((2, 2), bool))
      array(0.5)
    """
    return _ratio(*intersection_union(pred, gt))


def iiou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Instance IoU: the mean of the per-instance IoUs.

    Args:
      pred: ``[N, H, W]`` bool, one predicted mask per instance.
      gt: ``[N, H, W]`` bool, the ground truth.

    Returns:
      iIoU in [0, 1].
    """
    return float(np.mean(_ratio(*_stack_counts(pred, gt))))


def aiou(pred: np.ndarray, gt: np.ndarray, batch_size: int = 32) -> float:
    """Average IoU: the pooled IoU of each batch, averaged over batches.

    Args:
      pred: ``[N, H, W]`` bool, predicted masks in validation order.
      gt: ``[N, H, W]`` bool, the ground truth.
      batch_size: instances per batch; the last batch may be smaller and counts as one
        batch, as in a Keras validation pass.

    Returns:
      aIoU in [0, 1].
    """
    if batch_size < 1:
        raise UserInputError(f"batch_size={batch_size} must be positive; the paper uses 32")
    inter, union = _stack_counts(pred, gt)
    starts = np.arange(0, len(inter), batch_size)
    return float(np.mean(_ratio(np.add.reduceat(inter, starts), np.add.reduceat(union, starts))))


def class_ious(pred: np.ndarray, gt: np.ndarray, labels: Sequence, *,
               pooling: str = "pixels") -> dict:
    """IoU of each class (paper 003, Table 2).

    Args:
      pred: ``[N, H, W]`` bool, predicted masks.
      gt: ``[N, H, W]`` bool, the ground truth.
      labels: ``[N]`` class of each instance (names or ids).
      pooling: ``"pixels"``: the class's intersections and unions summed over its
        instances; ``"instances"``: the mean of its instance IoUs.

    Returns:
      ``{label: IoU in [0, 1]}``, labels in order of first appearance.
    """
    if pooling not in POOLINGS:
        raise UserInputError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    inter, union = _stack_counts(pred, gt)
    labels = np.asarray(labels)
    if labels.shape != inter.shape:
        raise UserInputError(f"labels of shape {labels.shape} for {len(inter)} instances; "
                             "pass one label per instance")
    result = {}
    for label in dict.fromkeys(labels.tolist()):
        sel = labels == label
        if pooling == "pixels":
            result[label] = float(_ratio(inter[sel].sum(), union[sel].sum()))
        else:
            result[label] = float(np.mean(_ratio(inter[sel], union[sel])))
    return result


def miou(pred: np.ndarray, gt: np.ndarray, labels: Sequence, *, pooling: str = "pixels") -> float:
    """Mean IoU: the mean over classes of :func:`class_ious`.

    Args:
      pred: ``[N, H, W]`` bool, predicted masks.
      gt: ``[N, H, W]`` bool, the ground truth.
      labels: ``[N]`` class of each instance.
      pooling: see :func:`class_ious`.

    Returns:
      mIoU in [0, 1].
    """
    return float(np.mean(list(class_ious(pred, gt, labels, pooling=pooling).values())))


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask: mask pixels with a 4-neighbour outside the mask.

    Pixels outside the array count as outside the mask.

    Args:
      mask: ``[H, W]`` bool.

    Returns:
      ``[H, W]`` bool.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    # mode="inner" keeps the boundary on the object's own pixels; connectivity 1 marks a
    # pixel only when a 4-neighbour is background.
    return find_boundaries(padded, connectivity=1, mode="inner")[1:-1, 1:-1]


def border_distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Distance from each predicted boundary pixel to the ground-truth boundary.

    Args:
      pred: ``[H, W]`` bool, predicted mask.
      gt: ``[H, W]`` bool, ground-truth mask.

    Returns:
      ``[K]`` float64 [px], one per predicted boundary pixel in row-major order; empty for
      an empty prediction, and ``inf`` everywhere when the ground truth is empty.
    """
    pred, gt = _check_pair(pred, gt)
    if pred.ndim != 2:
        raise UserInputError(f"border_distances takes one [H, W] mask pair, got {pred.shape}; "
                             "loop over instances or use border_error")
    pred_edge = boundary(pred)
    gt_edge = boundary(gt)
    if not gt_edge.any():
        return np.full(np.count_nonzero(pred_edge), np.inf)
    # EDT gives every pixel its distance to the nearest zero, i.e. to the GT boundary.
    return ndimage.distance_transform_edt(~gt_edge)[pred_edge]


@dataclass(frozen=True)
class BorderError:
    """Border-error statistics over many instances (paper 003, Fig. 3).

    Attributes:
      distances: ``[K]`` float64 [px], every predicted boundary pixel of every instance.
      mean: mean of ``distances`` [px]; ``inf`` when a ground truth was empty, NaN when
        there is no predicted boundary pixel at all.
      histogram: ``[max_px + 1]`` float64, the share of boundary pixels whose distance
        rounds to 0, 1, ..., ``max_px`` px; the last bin also holds everything farther.
        Sums to 1 (all zeros when there are no boundary pixels).
      bin_px: ``[max_px + 1]`` int64, the distance of each bin [px].
    """

    distances: np.ndarray
    mean: float
    histogram: np.ndarray
    bin_px: np.ndarray


def border_error(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *,
                 max_px: int = 10) -> BorderError:
    """Border error over instances of any sizes.

    Args:
      pairs: ``(pred [H, W] bool, gt [H, W] bool)`` per instance; sizes may differ
        between instances.
      max_px: the last histogram bin [px].

    Returns:
      A :class:`BorderError`.
    """
    parts = [border_distances(p, g) for p, g in pairs]
    distances = np.concatenate(parts) if parts else np.zeros(0)
    bin_px = np.arange(max_px + 1)
    counts = np.bincount(np.minimum(np.rint(distances), max_px).astype(np.int64),
                         minlength=max_px + 1)
    histogram = counts / max(len(distances), 1)
    mean = float(distances.mean()) if len(distances) else float("nan")
    return BorderError(distances=distances, mean=mean, histogram=histogram, bin_px=bin_px)


@keras.saving.register_keras_serializable(package="dcme_keras")
class BinaryIoUFromLogits(keras.metrics.Metric):
    """Training-time aIoU of mask logits: each batch's pooled IoU, averaged over batches.

    The NumPy twin is :func:`aiou`. Keras resets the state at the start of every epoch
    and of every evaluation, so ``val_aiou`` at the end of an epoch is the paper's aIoU of
    the validation set (paper 003, Sec. 3), the metric the paper stops early on. A batch
    whose masks and predictions are all empty scores 1.

    Args:
      threshold: logit above which a pixel is foreground; 0 is probability 0.5.
      name: metric name (``val_`` is prefixed by Keras for validation).
      dtype: the state's dtype.

    Example:
      >>> model.compile(loss=..., metrics={keys.MASK: [BinaryIoUFromLogits()]})
    """

    def __init__(self, threshold: float = 0.0, name: str = "aiou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = threshold
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.batches = self.add_variable(shape=(), initializer="zeros", name="batches")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch.

        Args:
          y_true: ``[B, H, W, 1]`` or ``[B, H, W]``, ground truth in {0, 1}.
          y_pred: same shape, logits.
          sample_weight: unused; every pixel of the batch counts once.
        """
        ops = keras.ops
        pred = ops.cast(ops.greater(y_pred, self.threshold), self.dtype)
        true = ops.cast(ops.greater_equal(ops.cast(y_true, self.dtype), 0.5), self.dtype)
        true = ops.reshape(true, ops.shape(pred))
        intersection = ops.sum(pred * true)
        union = ops.sum(ops.maximum(pred, true))
        # where() instead of a Python branch keeps the graph exportable; divide_no_nan
        # avoids a NaN in the branch that where() discards.
        batch_iou = ops.where(union > 0, ops.divide_no_nan(intersection, union), 1.0)
        # Counted through the data: on a dataset of unknown length Keras runs one more
        # step as the iterator runs dry, and a constant 1.0 would count it as a batch.
        nonempty = ops.cast(ops.shape(pred)[0] > 0, self.dtype)
        self.total.assign_add(ops.cast(batch_iou, self.dtype) * nonempty)
        self.batches.assign_add(nonempty)

    def result(self):
        return keras.ops.divide_no_nan(self.total, self.batches)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
