"""The DCME network's heads and its input preprocessing, as registered Keras layers.

Every layer here stores each constructor argument under its own name, creates its
sublayers in ``build()`` and returns exactly its constructor arguments from
``get_config()``, so a ``.keras`` file reloads it (import ``dcme_keras.layers`` first).

The heads end in a ``float32`` 1x1 convolution: under a ``mixed_float16`` policy the body
runs in float16 but the DCME vectors (up to hundreds of pixels long) and the logits come
out in float32, where the loss needs them.
"""

from __future__ import annotations

import keras
from keras import layers, ops

#: keras.applications' "caffe" mean, in BGR order [0..255]: what VGG16's ImageNet
#: weights were trained against.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="dcme_keras")
class BackbonePreprocessing(layers.Layer):
    """A backbone's ImageNet preprocessing, as a layer the model carries inside.

    Equals ``keras.applications.imagenet_utils.preprocess_input`` in the same mode, but
    serializes and exports (TFLite) with the model, so callers always feed raw pixels.

    Args:
      mode: ``"caffe"`` (VGG16: RGB -> BGR, then subtract the ImageNet mean per channel)
        or ``"tf"`` (MobileNetV2 and from-scratch encoders: scale to ``[-1, 1]``).
      **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call args:
      images: ``[B, H, W, 3]`` float, RGB in ``[0, 255]``.

    Returns:
      ``[B, H, W, 3]`` float, the backbone's input.

    Example:
      >>> x = BackbonePreprocessing("tf")(keras.ops.full((1, 2, 2, 3), 255.0))
      >>> float(x[0, 0, 0, 0])
      1.0
    """

    MODES = ("caffe", "tf")

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, images):
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=images.dtype)
            return ops.flip(images, axis=-1) - mean
        return images / 127.5 - 1.0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config


class _ConvStackHead(layers.Layer):
    """``num_convs`` x (kxk conv -> [BN] -> ReLU), then a linear float32 1x1 conv.

    The shared body of :class:`DCMEHead` and :class:`GridClassifier`; only the number of
    output channels differs. Spatial size is kept (stride 1, ``same`` padding).
    """

    def __init__(self, output_channels: int, filters: int, num_convs: int,
                 kernel_size: int, use_batch_norm: bool,
                 output_initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if num_convs < 0:
            raise ValueError(f"num_convs must be >= 0, got {num_convs}")
        self.filters = filters
        self.num_convs = num_convs
        self.kernel_size = kernel_size
        self.use_batch_norm = use_batch_norm
        self._output_channels = output_channels
        self._output_initializer = output_initializer

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.hidden_layers = []
        for i in range(1, self.num_convs + 1):
            block = [layers.Conv2D(self.filters, self.kernel_size, padding="same",
                                   use_bias=not self.use_batch_norm,
                                   kernel_initializer="he_normal",
                                   dtype=self.dtype_policy, name=f"{self.name}_conv{i}")]
            if self.use_batch_norm:
                block.append(layers.BatchNormalization(dtype=self.dtype_policy,
                                                       name=f"{self.name}_bn{i}"))
            block.append(layers.ReLU(dtype=self.dtype_policy, name=f"{self.name}_relu{i}"))
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            self.hidden_layers.extend(block)
        self.output_conv = layers.Conv2D(self._output_channels, 1, dtype="float32",
                                         kernel_initializer=self._output_initializer,
                                         name=f"{self.name}_output")
        self.output_conv.build(shape)
        self.built = True

    def call(self, inputs):
        # Keras passes the outer `training` flag on to the batch norms by call context.
        x = inputs
        for layer in self.hidden_layers:
            x = layer(x)
        return self.output_conv(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self._output_channels,)


@keras.saving.register_keras_serializable(package="dcme_keras")
class DCMEHead(_ConvStackHead):
    """Regresses the DCME map: per pixel, the vector to its instance's center of mass.

    ``num_convs`` x (kxk conv -> BN -> ReLU), then a linear 1x1 conv to 2 channels,
    multiplied by ``output_scale``. The output is linear (no activation): vectors are
    unbounded, signed pixel offsets. The loss clips their *error* with the paper's
    translated logistic (eq. 6), not the output.

    **Why ``output_scale``.** The 1x1 conv predicts the vector in units of
    ``output_scale`` pixels. Adam moves every weight by about the learning rate per
    step, whatever the gradient's size, and the head's input features are batch-normalized
    (unit scale), so with ``output_scale=1`` the output can grow by only about
    ``filters * learning_rate`` pixels per step: 0.1 px after 120 steps at 1e-4, where
    Cityscapes vectors are tens of pixels long. Measured on main (tiny preset, 256x512
    synthetic frames), the median predicted vector on object pixels stayed at 0.1-1.7 px
    against 44-53 px of truth. A scale about the typical vector length puts the
    targets at order 1 in the conv's units, where Adam's steps are the right size.

    Args:
      filters: width of the hidden convs.
      num_convs: number of hidden conv blocks; 0 gives a plain 1x1 regression.
      kernel_size: kernel size of the hidden convs.
      use_batch_norm: batch-normalize the hidden convs (their bias is then dropped).
      output_scale: pixels per unit of the output conv [pixels], > 0; about the length
        of a typical vector at the map's resolution (the presets use 32 at 512x1024).
      **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call args:
      features: ``[B, H, W, C]`` float, decoder features at the DCME map's resolution.

    Returns:
      ``dcme: [B, H, W, 2] float32, pixels``; channel 0 is dy (rows), 1 is dx (columns).

    Example:
      >>> head = DCMEHead(filters=8, num_convs=1, name="dcme")
      >>> tuple(head(keras.ops.zeros((1, 16, 32, 4))).shape)
      (1, 16, 32, 2)
    """

    def __init__(self, filters: int = 64, num_convs: int = 1, kernel_size: int = 3,
                 use_batch_norm: bool = True, output_scale: float = 1.0, **kwargs):
        if not output_scale > 0:
            raise ValueError(f"output_scale must be > 0 pixels, got {output_scale!r}")
        # A zero output conv starts from the zero field, the right answer on background;
        # a random one times output_scale starts from noise of tens of pixels everywhere.
        super().__init__(2, filters, num_convs, kernel_size, use_batch_norm,
                         output_initializer="zeros", **kwargs)
        self.output_scale = float(output_scale)

    def call(self, inputs):
        return super().call(inputs) * self.output_scale

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "num_convs": self.num_convs,
                       "kernel_size": self.kernel_size,
                       "use_batch_norm": self.use_batch_norm,
                       "output_scale": self.output_scale})
        return config


@keras.saving.register_keras_serializable(package="dcme_keras")
class GridClassifier(_ConvStackHead):
    """Classifies each encoder cell, i.e. each ``Gs x Gs`` image block (paper eqs. 1-3).

    The encoder output, at grid size ``Gs = 2^n`` (eq. 1), is repurposed as a classifier:
    ``num_convs`` x (kxk conv -> BN -> ReLU), then a 1x1 conv to ``num_classes + 1``
    logits, class 0 being background. An instance takes the class of the cell holding its
    center of mass (eq. 2). Logits, not probabilities: softmax is applied outside, which
    keeps an int8 TFLite export on XNNPACK.

    Args:
      num_classes: number of thing classes, without background.
      filters: width of the hidden convs (unused when ``num_convs=0``).
      num_convs: number of hidden conv blocks; 0 gives a linear classifier on the
        encoder's features.
      kernel_size: kernel size of the hidden convs.
      use_batch_norm: batch-normalize the hidden convs (their bias is then dropped).
      **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call args:
      features: ``[B, H/Gs, W/Gs, C]`` float, the encoder output.

    Returns:
      ``grid: [B, H/Gs, W/Gs, num_classes + 1] float32, logits``.

    Example:
      >>> grid = GridClassifier(num_classes=8, filters=16, name="grid")
      >>> tuple(grid(keras.ops.zeros((1, 4, 8, 32))).shape)
      (1, 4, 8, 9)
    """

    def __init__(self, num_classes: int = 8, filters: int = 256, num_convs: int = 1,
                 kernel_size: int = 3, use_batch_norm: bool = True, **kwargs):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        super().__init__(num_classes + 1, filters, num_convs, kernel_size, use_batch_norm,
                         **kwargs)
        self.num_classes = num_classes

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "filters": self.filters,
                       "num_convs": self.num_convs, "kernel_size": self.kernel_size,
                       "use_batch_norm": self.use_batch_norm})
        return config


@keras.saving.register_keras_serializable(package="dcme_keras")
class ForegroundHead(_ConvStackHead):
    """Optional, beyond the paper: per-pixel logits that a pixel belongs to an instance.

    ``num_convs`` x (kxk conv -> BN -> ReLU), then a linear float32 1x1 conv to 1
    channel. It reads the same full-resolution decoder features as :class:`DCMEHead`.
    Logits, not probabilities: the sigmoid is applied outside (an int8 TFLite export
    keeps its activations outside the graph), and the loss is binary cross-entropy
    from logits.

    Args:
      filters: width of the hidden convs.
      num_convs: number of hidden conv blocks; 0 gives a plain 1x1 classifier.
      kernel_size: kernel size of the hidden convs.
      use_batch_norm: batch-normalize the hidden convs (their bias is then dropped).
      **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call args:
      features: ``[B, H, W, C]`` float, decoder features at the DCME map's resolution.

    Returns:
      ``foreground: [B, H, W, 1] float32, logits`` (> 0: instance pixel).

    Example:
      >>> head = ForegroundHead(filters=8, num_convs=1, name="foreground")
      >>> tuple(head(keras.ops.zeros((1, 16, 32, 4))).shape)
      (1, 16, 32, 1)
    """

    def __init__(self, filters: int = 64, num_convs: int = 1, kernel_size: int = 3,
                 use_batch_norm: bool = True, **kwargs):
        super().__init__(1, filters, num_convs, kernel_size, use_batch_norm, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "num_convs": self.num_convs,
                       "kernel_size": self.kernel_size,
                       "use_batch_norm": self.use_batch_norm})
        return config
