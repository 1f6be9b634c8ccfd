"""The DCME network: one DeepLabv3+-style encoder-decoder with two outputs (paper 000, sec. V).

Topology (every preset)::

    image [B, H, W, 3] 0..255 -> BackbonePreprocessing
      -> backbone --(stride 4)--------------------------------------------+
         |  (stride 16)                                                    |
      -> extra convs (atrous)  = the encoder output                        |
         |-> GridClassifier -> grid [B, H/16, W/16, num_classes + 1] logits|
         '-> ASPP -> Conv2DTranspose x4 -> concat(1x1 conv(low-level)) <---'
              -> decoder convs -> Conv2DTranspose x4 -> DCMEHead -> dcme [B, H, W, 2]

Choices the paper leaves open, and what this module does:

* **Output stride 16 on VGG16.** The encoder is ``keras.applications.VGG16`` (so its
  ImageNet weights load unchanged) truncated after ``block5_conv3``: ``block5_pool`` is
  dropped and ``block4_pool`` kept, which gives stride 16. As in DeepLab, the layers
  *after* the removed pooling are the atrous ones: the 5 extra conv layers (sec. V) use
  dilation 2, recovering the field of view the pooling would have given. ``block5_conv*``
  keep dilation 1 because in VGG16 they already run at stride 16, which is what their
  ImageNet weights were trained at.
* **Low-level features** (DeepLabv3+ decoder) come from the last stride-4 layer:
  ``block3_conv3`` on VGG16 (``block2_conv2`` is at stride 2), ``block_3_expand_relu`` on
  MobileNetV2.
* **Upsampling** is ``Conv2DTranspose`` (kernel ``upsample_kernel_size``, stride 4)
  in both of DeepLabv3+'s places, as the paper replaced the bilinear upsampling by
  deconvolutions. The second one brings the decoder to full resolution, where
  ``DCMEHead`` regresses the vectors.
* **Input size** is static and both sides must be multiples of 16, so every grid cell
  covers exactly one ``16 x 16`` block (eqs. 1-3) and the ASPP image-pooling branch
  broadcasts with a fixed ``UpSampling2D`` (TFLite-friendly). Other sizes raise
  :class:`~dcme_keras.errors.UserInputError`; pad or resize the images (Cityscapes at
  512x1024 divides).
* New layers (extra convs, ASPP, decoder, heads) use batch norm, as DeepLabv3+ does; the
  ImageNet backbones keep their own layers as keras.applications builds them.
* **Optional foreground head** (``foreground_head=True``, beyond the paper, off in
  every preset): a :class:`~dcme_keras.layers.ForegroundHead` beside ``DCMEHead`` on the
  same full-resolution features, giving ``keys.FOREGROUND`` ``[B, H, W, 1]`` logits that
  a pixel belongs to an instance. Without it the network is exactly the paper's.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import keras
from keras import layers

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from dcme_keras.layers import BackbonePreprocessing, DCMEHead, GridClassifier
from dcme_keras.layers import ForegroundHead

#: Stride of the encoder output, i.e. the grid size Gs of paper eq. 1.
OUTPUT_STRIDE = 16
#: Stride of the low-level features the decoder concatenates.
LOW_LEVEL_STRIDE = 4

BACKBONES = ("vgg16", "mobilenet_v2", "tiny")

#: Architecture presets; any key can be overridden through ``build_deeplab_dcme(**kw)``.
#: Cost at 512x1024, 8 classes (``benchmarks/model_cost.py``):
#: ``paper``: VGG16 + 5 extra convs + ASPP(6, 12, 18) + DeepLabv3+ decoder (sec. V);
#: 37,245,387 parameters, 298 GMACs.
#: ``mobilenet_v2``: a CPU-sized variant for the annotation tool; 3.76 M, 16.7 GMACs.
#: ``tiny``: a from-scratch VGG-like encoder with the same topology, for tests;
#: 49 k parameters, 0.9 GMACs.
#: ``cpu``: ``tiny`` with a second dilated extra conv and ASPP rates (2, 4), the context
#: its vectors need; the demo's network. Measured at 128x256 on synthetic frames, 450
#: steps of 8 (1 thread, EPYC): median vector error 7.8 px of 15.0 where ``tiny`` had
#: 11.7, objects found within the true mask 36 % against 16 %. 64 k parameters.
#: ``head_output_scale`` [pixels] is a training choice, not architecture: the DCME head
#: regresses vectors in units of it (see :class:`~dcme_keras.layers.DCMEHead`); 32 px
#: suits the 20-100 px vectors of 256x512 to 512x1024 maps.
PRESETS: dict[str, dict] = {
    "paper": {
        "backbone": "vgg16",
        "extra_convs": 5, "extra_filters": 512, "extra_dilation": 2,
        "aspp_filters": 256, "aspp_rates": (6, 12, 18),
        "low_level_filters": 48, "decoder_filters": 256, "decoder_convs": 2,
        "upsample_kernel_size": 8,
        "head_filters": 64, "head_convs": 1, "head_output_scale": 32.0,
        "grid_filters": 256, "grid_convs": 0,
    },
    "mobilenet_v2": {
        "backbone": "mobilenet_v2", "alpha": 1.0,
        "extra_convs": 1, "extra_filters": 256, "extra_dilation": 2,
        "aspp_filters": 128, "aspp_rates": (6, 12, 18),
        "low_level_filters": 32, "decoder_filters": 128, "decoder_convs": 1,
        "upsample_kernel_size": 4,
        "head_filters": 16, "head_convs": 1, "head_output_scale": 32.0,
        "grid_filters": 128, "grid_convs": 1,
    },
    "tiny": {
        "backbone": "tiny", "tiny_filters": (8, 16, 16, 32, 32),
        "extra_convs": 1, "extra_filters": 32, "extra_dilation": 2,
        "aspp_filters": 16, "aspp_rates": (2,),
        "low_level_filters": 8, "decoder_filters": 16, "decoder_convs": 1,
        "upsample_kernel_size": 4,
        "head_filters": 8, "head_convs": 1, "head_output_scale": 32.0,
        "grid_filters": 16, "grid_convs": 1,
    },
}
PRESETS["cpu"] = {**PRESETS["tiny"], "extra_convs": 2, "aspp_rates": (2, 4)}

#: Keys that only one backbone reads, with their default.
_BACKBONE_OPTIONS = {"mobilenet_v2": {"alpha": 1.0},
                     "tiny": {"tiny_filters": PRESETS["tiny"]["tiny_filters"]}}

#: Alphas keras.applications publishes ImageNet MobileNetV2 weights for.
_MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def build_deeplab_dcme(preset: str = "paper", input_shape=(512, 1024, 3),
                       num_classes: int = 8, backbone: str | None = None,
                       backbone_weights: str | os.PathLike | None = None,
                       name: str | None = None, foreground_head: bool = False,
                       **overrides) -> keras.Model:
    """Build the DCME network: DCME vectors from the decoder, grid logits from the encoder.

    Args:
      preset: a key of :data:`PRESETS` (``"paper"``, ``"mobilenet_v2"``, ``"tiny"``).
      input_shape: ``(H, W, 3)``; H and W must be multiples of 16.
      num_classes: thing classes of the grid classifier, without background.
      backbone: one of :data:`BACKBONES`, replacing the preset's (its heads stay).
      backbone_weights: ``None`` (random init), ``"imagenet"`` (the file keras.applications
        caches, ``$KERAS_HOME/models/<name>.h5``, default ``~/.keras``) or the path of a
        weights file of the plain keras.applications backbone without top (legacy
        ``.h5`` or ``.weights.h5``). Nothing is ever downloaded.
      name: model name; default ``deeplab_dcme_<preset>``.
      foreground_head: beyond the paper, off by default: add a third output,
        ``keys.FOREGROUND``, per-pixel instance-vs-rest logits from a
        :class:`~dcme_keras.layers.ForegroundHead` on the same full-resolution decoder
        features as the DCME head (same ``head_filters`` / ``head_convs``).
      **overrides: preset keys to change, e.g. ``alpha=0.5`` for ``mobilenet_v2``,
        ``extra_convs=3`` or ``aspp_rates=(3, 6)``.

    Returns:
      A functional ``keras.Model`` taking ``image: [B, H, W, 3] float32, RGB 0..255`` and
      returning a dict:
      ``{keys.DCME: [B, H, W, 2] float32, pixels (dy, dx),
      keys.GRID: [B, H/16, W/16, num_classes + 1] float32, logits (0 = background)}``,
      plus ``keys.FOREGROUND: [B, H, W, 1] float32, logits`` with ``foreground_head``.

    Raises:
      UserInputError: unknown preset, backbone or override key, bad input shape, or
        missing / unfitting backbone weights.

    Example:
      >>> model = build_deeplab_dcme("tiny", input_shape=(64, 128, 3))
      >>> {k: tuple(v.shape) for k, v in model.output.items()}
      {'dcme': (None, 64, 128, 2), 'grid': (None, 4, 8, 9)}
    """
    if preset not in PRESETS:
        raise UserInputError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    config = dict(PRESETS[preset])
    backbone = config["backbone"] if backbone is None else backbone
    if backbone not in BACKBONES:
        raise UserInputError(f"unknown backbone {backbone!r}; use one of {list(BACKBONES)}")
    config["backbone"] = backbone
    _apply_overrides(config, overrides)
    height, width = _check_input_shape(input_shape)
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise UserInputError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(foreground_head, bool):
        raise UserInputError(f"foreground_head must be True or False, got {foreground_head!r}")
    options = {k: config.get(k, default)
               for k, default in _BACKBONE_OPTIONS.get(backbone, {}).items()}
    weights_path = _resolve_backbone_weights(backbone, backbone_weights, (height, width),
                                             options)

    # === Backbone ===
    image = keras.Input(shape=(height, width, 3), name=keys.IMAGE)
    mode = "caffe" if backbone == "vgg16" else "tf"
    x = BackbonePreprocessing(mode, name="preprocessing")(image)
    encoder = {"vgg16": _vgg16_features, "mobilenet_v2": _mobilenet_v2_features,
               "tiny": _tiny_features}[backbone]
    low_level, x, backbone_model = encoder(x, **options)
    if weights_path is not None:
        _load_backbone_weights(backbone_model, weights_path)

    # === Encoder output and grid classifier (sec. III) ===
    for i in range(1, config["extra_convs"] + 1):
        x = _conv_bn_relu(x, config["extra_filters"], 3, f"extra{i}",
                          dilation_rate=config["extra_dilation"])
    grid = GridClassifier(num_classes, filters=config["grid_filters"],
                          num_convs=config["grid_convs"], name=keys.GRID)(x)

    # === ASPP ===
    x = _aspp(x, config["aspp_filters"], config["aspp_rates"])

    # === Decoder (DeepLabv3+, upsampling by deconvolution) ===
    up = OUTPUT_STRIDE // LOW_LEVEL_STRIDE
    x = layers.Conv2DTranspose(config["aspp_filters"], config["upsample_kernel_size"],
                               strides=up, padding="same", name="decoder_upsample1")(x)
    low_level = _conv_bn_relu(low_level, config["low_level_filters"], 1, "decoder_low_level")
    x = layers.Concatenate(name="decoder_concat")([x, low_level])
    for i in range(1, config["decoder_convs"] + 1):
        x = _conv_bn_relu(x, config["decoder_filters"], 3, f"decoder{i}")
    x = layers.Conv2DTranspose(config["head_filters"], config["upsample_kernel_size"],
                               strides=LOW_LEVEL_STRIDE, padding="same",
                               name="decoder_upsample2")(x)
    dcme = DCMEHead(filters=config["head_filters"], num_convs=config["head_convs"],
                    output_scale=config["head_output_scale"], name=keys.DCME)(x)

    outputs = {keys.DCME: dcme, keys.GRID: grid}
    if foreground_head:
        outputs[keys.FOREGROUND] = ForegroundHead(
            filters=config["head_filters"], num_convs=config["head_convs"],
            name=keys.FOREGROUND)(x)

    return keras.Model(image, outputs, name=name or f"deeplab_dcme_{preset}")


def imagenet_weights_path(backbone: str, input_hw=(512, 1024), alpha: float = 1.0) -> Path:
    """Where keras.applications caches a backbone's ImageNet weights (without top).

    Args:
      backbone: ``"vgg16"`` or ``"mobilenet_v2"``.
      input_hw: ``(H, W)`` of the model; MobileNetV2's file name depends on it the way
        keras.applications chooses it (square 96..224, else 224).
      alpha: MobileNetV2 width multiplier.

    Returns:
      ``$KERAS_HOME/models/<keras' file name>`` (``KERAS_HOME`` defaults to ``~/.keras``),
      whether or not the file exists.
    """
    if backbone == "vgg16":
        filename = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    elif backbone == "mobilenet_v2":
        rows = input_hw[0] if input_hw[0] == input_hw[1] and input_hw[0] in (
            96, 128, 160, 192, 224) else 224
        filename = ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                    f"{float(alpha)}_{rows}_no_top.h5")
    else:
        raise UserInputError(f"backbone {backbone!r} has no ImageNet weights; "
                             "use vgg16 or mobilenet_v2, or backbone_weights=None")
    # Same rule as keras' own cache (keras.src.backend.config), which is private.
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "models" / filename


def _apply_overrides(config: dict, overrides: dict) -> None:
    """Merge ``overrides`` into ``config`` after checking each key applies."""
    backbone_keys = {k for opts in _BACKBONE_OPTIONS.values() for k in opts}
    valid = {k for p in PRESETS.values() for k in p} - {"backbone"}
    for key, value in overrides.items():
        if key not in valid:
            raise UserInputError(f"unknown model option {key!r}; use one of {sorted(valid)}")
        if key in backbone_keys and key not in _BACKBONE_OPTIONS.get(config["backbone"], {}):
            raise UserInputError(f"option {key!r} does not apply to backbone "
                                 f"{config['backbone']!r}; drop it or change the backbone")
        config[key] = value


def _check_input_shape(input_shape) -> tuple[int, int]:
    """``(H, W)`` of a valid ``(H, W, 3)``, else UserInputError."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3 or any(
            not isinstance(s, int) or s <= 0 for s in shape):
        raise UserInputError(f"input_shape must be (H, W, 3) with positive ints, got {shape}")
    height, width = shape[:2]
    if height % OUTPUT_STRIDE or width % OUTPUT_STRIDE:
        fit = tuple(-(-s // OUTPUT_STRIDE) * OUTPUT_STRIDE for s in (height, width))
        raise UserInputError(
            f"input size {height}x{width} is not a multiple of {OUTPUT_STRIDE}; "
            f"pad or resize the images to e.g. {fit[0]}x{fit[1]}")
    return height, width


def _resolve_backbone_weights(backbone: str, weights, input_hw, options) -> str | None:
    """Check ``backbone_weights`` and return the file to load, or None for random init."""
    if weights is None:
        return None
    if backbone == "tiny":
        raise UserInputError("the tiny backbone has no pretrained weights; "
                             "pass backbone_weights=None")
    if str(weights) == "imagenet":
        alpha = options.get("alpha", 1.0)
        if backbone == "mobilenet_v2" and alpha not in _MOBILENET_V2_ALPHAS:
            raise UserInputError(f"no ImageNet MobileNetV2 weights for alpha={alpha}; "
                                 f"use one of {_MOBILENET_V2_ALPHAS} or backbone_weights=None")
        path = imagenet_weights_path(backbone, input_hw, alpha)
        if not path.is_file():
            raise UserInputError(
                f"ImageNet weights for {backbone} not found at {path} and this machine "
                f"cannot download them; copy {path.name} there (keras.applications caches "
                "it in ~/.keras/models on a machine with internet) or pass its path as "
                "backbone_weights")
        return str(path)
    path = Path(weights)
    if not path.is_file():
        raise UserInputError(f"backbone weights file {path} does not exist; pass an existing "
                             "file, 'imagenet' or None")
    return str(path)


def _load_backbone_weights(backbone_model: keras.Model, path: str) -> None:
    """Load a keras.applications weights file into its (untruncated) backbone."""
    try:
        backbone_model.load_weights(path)
    except (ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(
            f"backbone weights {path} do not fit {backbone_model.name} ({first_line}); "
            "pass the no-top weights file of the same keras.applications backbone") from err


def _vgg16_features(x):
    """VGG16 at output stride 16 (see the module docstring).

    Returns:
      ``(stride-4 features, stride-16 features, the whole keras.applications model)``;
      the model is what a weights file loads into.
    """
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    return vgg.get_layer("block3_conv3").output, vgg.get_layer("block5_conv3").output, vgg


def _mobilenet_v2_features(x, alpha: float):
    """MobileNetV2 cut at its stride-16 block.

    Returns:
      ``(stride-4 features, stride-16 features, the whole keras.applications model)``.
    """
    mobilenet = keras.applications.MobileNetV2(include_top=False, weights=None,
                                               input_tensor=x, alpha=alpha)
    # The expansion outputs are the last tensors before a block's stride-2 depthwise conv.
    return (mobilenet.get_layer("block_3_expand_relu").output,
            mobilenet.get_layer("block_13_expand_relu").output, mobilenet)


def _tiny_features(x, tiny_filters):
    """VGG-like from-scratch encoder: one conv per block, pooled after blocks 1-4.

    Mirrors VGG16's strides, so block 3's conv is the stride-4 feature and block 5's the
    stride-16 one.

    Returns:
      ``(stride-4 features, stride-16 features, None)``: no pretrained weights exist.
    """
    if len(tiny_filters) != 5:
        raise UserInputError(f"tiny_filters needs 5 widths (one per block), got {tiny_filters}")
    features = []
    for i, filters in enumerate(tiny_filters, start=1):
        x = _conv_bn_relu(x, filters, 3, f"tiny_block{i}")
        features.append(x)
        if i < 5:
            x = layers.MaxPooling2D(2, name=f"tiny_block{i}_pool")(x)
    return features[2], features[4], None


def _aspp(x, filters: int, rates):
    """Atrous spatial pyramid pooling: 1x1, one 3x3 per rate, image pooling; projected."""
    branches = [_conv_bn_relu(x, filters, 1, "aspp_1x1")]
    for rate in rates:
        branches.append(_conv_bn_relu(x, filters, 3, f"aspp_rate{rate}", dilation_rate=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    # No batch norm on a 1x1 map: with the small batches that fit at 512x1024 its batch
    # statistics are degenerate (a batch of 1 zeroes the branch).
    pooled = layers.Conv2D(filters, 1, activation="relu", name="aspp_pool_conv")(pooled)
    pooled = layers.UpSampling2D(size=tuple(x.shape[1:3]), name="aspp_pool_broadcast")(pooled)
    x = layers.Concatenate(name="aspp_concat")(branches + [pooled])
    return _conv_bn_relu(x, filters, 1, "aspp_project")


def _conv_bn_relu(x, filters: int, kernel_size: int, name: str, dilation_rate: int = 1):
    """Conv (no bias) -> BatchNorm -> ReLU, layers named ``<name>_conv/_bn/_relu``."""
    x = layers.Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation_rate,
                      use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)
