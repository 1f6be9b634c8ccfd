"""The extreme-points annotator's U-Net and the variants of paper 003, Table 1.

Every variant shares one skeleton (paper 003, Sec. 2): an encoder of ``levels`` blocks with
``f, 2f, 4f, ...`` filters and 2x2 max pooling between them (128, 64, 32, 16, 8 pixels for
the paper's 5 levels), and a decoder that upsamples by 2 (nearest neighbour), concatenates
the encoder block of the same size and runs a block with that level's width. A 1x1
convolution gives one channel of **logits**; the sigmoid is applied outside the model,
because a full-int8 TFLite LOGISTIC is not delegated to XNNPACK (PITFALLS.md).

The variants differ only in the block (and, for U-Net++, in the skips):

==============  ==========================================================================
``paper``       two 3x3 convolutions, each followed by BatchNorm and ReLU. ``unet`` is an
                alias.
``residual``    the same two convolutions with an identity shortcut (1x1 projection + BN
                where the width changes) added before the second ReLU [He16].
``dense``       a dense block [Hua17]: each 3x3 layer reads the concatenation of the
                block input and all earlier layers; a 1x1 transition brings it back to
                the level's width.
``separable``   depthwise-separable 3x3 convolutions [Cho17] instead of plain ones; the
                ``fast`` preset.
``contextual``  contextual convolutions: each 3x3 convolution is split into parallel
                branches of dilation 1, 2 and 3 (half, a quarter and a quarter of the
                filters) whose outputs are concatenated, so the MACs of a plain 3x3 buy a
                7x7 receptive field.
``unetpp``      U-Net++ [Zho18]: nested, densely connected skips; node ``X(i, j)`` reads
                ``X(i, 0..j-1)`` and the upsampled ``X(i+1, j-1)``; the mask comes from
                ``X(0, levels-1)`` (no deep supervision).
==============  ==========================================================================

**BatchNorm:** the paper does not say. Every convolution here is followed by BatchNorm
(without a bias of its own), because a U-Net trained from scratch converges in the ~20
epochs the paper reports far more reliably with it, and the TFLite converter folds an
inference-mode BatchNorm into the preceding convolution, so it costs no inference time.

Input: ``image`` ``[B, S, S, C]`` float32 as ``dcme_keras.extreme_points.make_input``
builds it: RGB / 255 in [0, 1], plus the extreme-points channel (1 inside the circles,
0 elsewhere) when ``C == 4``; ``C == 3`` is the RGB-only baseline.
Output: ``{keys.MASK: [B, S, S, 1] float32 logits}``.

Example:
  >>> model = build_unet_preset("tiny")
  >>> tuple(model.output[keys.MASK].shape)
  (None, 64, 64, 1)
"""

from __future__ import annotations

import math

import keras
from keras import layers

from dcme_keras import keys
from dcme_keras.errors import UserInputError

#: Block types of paper 003, Table 1 (``unet`` is an alias of ``paper``).
VARIANTS: tuple[str, ...] = (
    "paper", "unet", "residual", "dense", "separable", "contextual", "unetpp",
)

#: Named configurations of :func:`build_unet`.
PRESETS: dict[str, dict] = {
    # Paper 003, Sec. 2: f = 16, 5 levels, 128x128, RGB + extreme points.
    "paper": dict(variant="paper", filters=16, input_size=128, input_channels=4, levels=5),
    # The same network without the point channel: Table 1's RGB-only U-Net baseline.
    "rgb": dict(variant="paper", filters=16, input_size=128, input_channels=3, levels=5),
    # Depthwise-separable blocks: the CPU-speed preset (about 1/7 of the paper's MACs).
    "fast": dict(variant="separable", filters=16, input_size=128, input_channels=4, levels=5),
    # For tests and smoke runs.
    "tiny": dict(variant="paper", filters=4, input_size=64, input_channels=4, levels=5),
}

# Dilation rates of a contextual convolution's branches.
_CONTEXT_DILATIONS = (1, 2, 3)


def build_unet(variant: str = "paper", filters: int = 16, input_size: int = 128,
               input_channels: int = 4, levels: int = 5, name: str | None = None) -> keras.Model:
    """Build a U-Net variant of paper 003 as a Keras functional model.

    Args:
      variant: one of :data:`VARIANTS` (see the module docstring).
      filters: width ``f`` of the first level; level ``i`` (from 0) has ``f * 2**i``.
      input_size: side ``S`` of the square input [px]; divisible by ``2**(levels - 1)``.
      input_channels: 4 (RGB + extreme-points channel) or 3 (RGB only).
      levels: number of resolutions, including the input's.
      name: model name; default ``unet_<variant>``.

    Returns:
      A model from ``image`` ``[B, S, S, input_channels]`` float32 to
      ``{keys.MASK: [B, S, S, 1] float32 logits}``.

    Raises:
      UserInputError: for an unknown variant or sizes that do not fit together.
    """
    if variant not in VARIANTS:
        raise UserInputError(
            f"unknown U-Net variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if levels < 2:
        raise UserInputError(f"levels={levels} leaves no encoder-decoder; use levels >= 2")
    if filters < 1 or input_channels < 1:
        raise UserInputError(f"filters={filters} and input_channels={input_channels} must be "
                             "positive; use e.g. filters=16, input_channels=4")
    stride = 2 ** (levels - 1)
    if input_size % stride:
        raise UserInputError(f"input_size={input_size} is not divisible by 2**(levels-1)="
                             f"{stride}; use a multiple of {stride}, e.g. "
                             f"{max(1, round(input_size / stride)) * stride}")
    block = _BLOCKS["paper" if variant == "unet" else variant]

    inputs = keras.Input((input_size, input_size, input_channels), name="image")
    x = inputs
    encoder = []
    for i in range(levels):
        if i:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = block(x, filters * 2**i, f"enc{i}")
        encoder.append(x)

    if variant == "unetpp":
        x = _nested_decoder(encoder, filters, block)
    else:
        for i in reversed(range(levels - 1)):
            x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
            x = layers.Concatenate(name=f"dec{i}_skip")([x, encoder[i]])
            x = block(x, filters * 2**i, f"dec{i}")

    # float32 logits even under a mixed_float16 policy: the losses and export expect them.
    logits = layers.Conv2D(1, 1, dtype="float32", name="mask_logits")(x)
    return keras.Model(inputs, {keys.MASK: logits}, name=name or f"unet_{variant}")


def build_unet_preset(preset: str, **overrides) -> keras.Model:
    """Build the U-Net of a :data:`PRESETS` entry, with some arguments overridden.

    Args:
      preset: a key of :data:`PRESETS`.
      **overrides: :func:`build_unet` arguments that replace the preset's.

    Raises:
      UserInputError: for an unknown preset.
    """
    if preset not in PRESETS:
        raise UserInputError(f"unknown U-Net preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return build_unet(**{**PRESETS[preset], **overrides})


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of a batch of one image.

    Counts the convolution and dense layers from their kernel and output shapes; pooling,
    upsampling, concatenation, additions and activations are not multiply-accumulates,
    and inference-mode BatchNorm is folded into the preceding convolution at export.
    Nested models are entered.

    Args:
      model: a built Keras model whose layers each run once (any functional model of
        this module).

    Returns:
      MACs [count].
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D,
                                  layers.SeparableConv2D, layers.Dense)):
            continue
        out_shape = layer.output.shape
        positions = math.prod(out_shape[1:-1])  # output pixels (or 1 for a Dense layer)
        c_in = layer.input.shape[-1]
        c_out = out_shape[-1]
        if isinstance(layer, layers.Dense):
            total += positions * c_in * c_out
            continue
        window = math.prod(layer.kernel_size)
        # SeparableConv2D and DepthwiseConv2D share the depthwise part.
        if isinstance(layer, (layers.SeparableConv2D, layers.DepthwiseConv2D)):
            depth = c_in * layer.depth_multiplier
            total += positions * window * depth
            if isinstance(layer, layers.SeparableConv2D):
                total += positions * depth * c_out
            continue
        total += positions * window * (c_in // layer.groups) * c_out
    return total


# --------------------------------------------------------------------------------------
# Blocks: (x, width, name) -> tensor with `width` channels at x's resolution.
# --------------------------------------------------------------------------------------


def _conv_bn_relu(x, width: int, name: str, *, separable: bool = False):
    """3x3 convolution (plain or depthwise-separable), BatchNorm, ReLU."""
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(width, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _plain_block(x, width: int, name: str):
    x = _conv_bn_relu(x, width, f"{name}_a")
    return _conv_bn_relu(x, width, f"{name}_b")


def _separable_block(x, width: int, name: str):
    x = _conv_bn_relu(x, width, f"{name}_a", separable=True)
    return _conv_bn_relu(x, width, f"{name}_b", separable=True)


def _residual_block(x, width: int, name: str):
    shortcut = x
    if x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = _conv_bn_relu(x, width, f"{name}_a")
    y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu")(y)


def _dense_block(x, width: int, name: str):
    features = [x]
    for k in "ab":
        inp = features[0] if len(features) == 1 else layers.Concatenate(
            name=f"{name}_{k}_concat")(features)
        features.append(_conv_bn_relu(inp, width, f"{name}_{k}"))
    x = layers.Concatenate(name=f"{name}_concat")(features)
    x = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_transition_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_transition_bn")(x)
    return layers.ReLU(name=f"{name}_transition_relu")(x)


def _contextual_conv_bn_relu(x, width: int, name: str):
    """Parallel 3x3 branches of dilation 1, 2, 3 with 1/2, 1/4, 1/4 of the filters."""
    quarter = width // 4
    # Branches that would get no filter (width < 4) are dropped.
    widths = (width - 2 * quarter, quarter, quarter)
    shares = [(d, w) for d, w in zip(_CONTEXT_DILATIONS, widths, strict=True) if w]
    branches = [layers.Conv2D(w, 3, padding="same", dilation_rate=d, use_bias=False,
                              name=f"{name}_d{d}_conv")(x) for d, w in shares]
    x = branches[0] if len(branches) == 1 else layers.Concatenate(name=f"{name}_concat")(branches)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _contextual_block(x, width: int, name: str):
    x = _contextual_conv_bn_relu(x, width, f"{name}_a")
    return _contextual_conv_bn_relu(x, width, f"{name}_b")


_BLOCKS = {
    "paper": _plain_block,
    "residual": _residual_block,
    "dense": _dense_block,
    "separable": _separable_block,
    "contextual": _contextual_block,
    "unetpp": _plain_block,
}


def _nested_decoder(encoder: list, filters: int, block):
    """U-Net++ skips: X(i, j) = block([X(i, 0), ..., X(i, j-1), up(X(i+1, j-1))])."""
    nodes = [[x] for x in encoder]  # nodes[i][j] = X(i, j)
    levels = len(encoder)
    for j in range(1, levels):
        for i in range(levels - j):
            up = layers.UpSampling2D(2, name=f"x{i}_{j}_up")(nodes[i + 1][j - 1])
            x = layers.Concatenate(name=f"x{i}_{j}_skip")([*nodes[i], up])
            nodes[i].append(block(x, filters * 2**i, f"x{i}_{j}"))
    return nodes[0][levels - 1]
