"""Tests for dcme_keras.models.unet: every variant, pinned sizes, MACs, fit, save/load."""

import re

import keras
import numpy as np
import pytest

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from dcme_keras.models.unet import (
    PRESETS,
    VARIANTS,
    build_unet,
    build_unet_preset,
    count_macs,
)

# Small enough to build in well under a second: 32x32, 3 levels, f = 4.
SMALL = dict(filters=4, input_size=32, levels=3)

# Keras' automatic layer names; an unnamed layer would get one of these.
AUTO_NAME = re.compile(
    r"^(conv2d|separable_conv2d|batch_normalization|re_lu|concatenate|add|max_pooling2d"
    r"|up_sampling2d|input_layer)(_\d+)?$")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_builds_with_named_layers_and_mask_logits(variant, rng):
    model = build_unet(variant, **SMALL)
    assert tuple(model.output[keys.MASK].shape) == (None, 32, 32, 1)
    assert not [layer.name for layer in model.layers if AUTO_NAME.match(layer.name)]
    out = model(rng.uniform(0, 1, (2, 32, 32, 4)).astype(np.float32), training=False)
    logits = keras.ops.convert_to_numpy(out[keys.MASK])
    assert logits.shape == (2, 32, 32, 1) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    # Logits: the head is a linear 1x1 convolution in float32 (sigmoid is applied outside).
    head = model.get_layer("mask_logits")
    assert head.get_config()["activation"] == "linear" and head.kernel.shape[:2] == (1, 1)


def test_paper_preset_size_and_macs():
    model = build_unet_preset("paper")
    assert model.input_shape == (None, 128, 128, 4)
    # Computed with this module when it was written (includes BatchNorm statistics).
    assert model.count_params() == 1_967_185
    # Analytically: 5 encoder levels 273.6 M + 4 decoder levels 4 x 150.99 M + head.
    assert count_macs(model) == 877_920_256
    # The RGB-only baseline differs only in the first convolution: 16 * 9 fewer weights.
    assert build_unet_preset("rgb").count_params() == 1_967_185 - 16 * 9


def test_count_macs_hand_computed():
    # f=2, 8x8x1 input, 2 levels. Plain 3x3: 64*9*1*2 + 64*9*2*2 (level 0), 16*9*2*4 +
    # 16*9*4*4 (level 1), 64*9*6*2 + 64*9*2*2 (decoder, 4 + 2 channels in), 64*2 (head).
    plain = build_unet("paper", filters=2, input_size=8, input_channels=1, levels=2)
    assert count_macs(plain) == 1152 + 2304 + 1152 + 2304 + 6912 + 2304 + 128
    # Separable: depthwise 9*cin per pixel plus pointwise cin*cout per pixel.
    separable = build_unet("separable", filters=2, input_size=8, input_channels=1, levels=2)
    expected = (64 * (9 * 1 + 1 * 2) + 64 * (9 * 2 + 2 * 2)
                + 16 * (9 * 2 + 2 * 4) + 16 * (9 * 4 + 4 * 4)
                + 64 * (9 * 6 + 6 * 2) + 64 * (9 * 2 + 2 * 2) + 64 * 2)
    assert count_macs(separable) == expected == 9120


def test_fast_preset_is_separable_and_cheaper():
    paper, fast = build_unet_preset("paper"), build_unet_preset("fast")
    assert count_macs(fast) < count_macs(paper) / 6
    assert tuple(fast.output[keys.MASK].shape) == tuple(paper.output[keys.MASK].shape)


def test_presets_and_overrides():
    assert set(PRESETS) >= {"paper", "fast", "tiny", "rgb"}
    tiny = build_unet_preset("tiny", input_channels=3)
    assert tiny.input_shape == (None, 64, 64, 3)
    assert tuple(tiny.output[keys.MASK].shape) == (None, 64, 64, 1)


@pytest.mark.parametrize("kwargs", [
    dict(variant="vgg"),
    dict(input_size=100),  # not divisible by 2**4
    dict(levels=1),
    dict(filters=0),
])
def test_bad_arguments_raise_user_input_error(kwargs):
    with pytest.raises(UserInputError):
        build_unet(**kwargs)


def test_unknown_preset_raises_user_input_error():
    with pytest.raises(UserInputError, match="paper"):
        build_unet_preset("huge")


@pytest.mark.parametrize("variant", ["paper", "unetpp"])
def test_one_fit_step_changes_weights(variant, rng):
    model = build_unet(variant, **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={keys.MASK: keras.losses.BinaryCrossentropy(from_logits=True)})
    x = rng.uniform(0, 1, (4, 32, 32, 4)).astype(np.float32)
    y = (rng.uniform(0, 1, (4, 32, 32, 1)) > 0.5).astype(np.float32)
    before = model.get_layer("mask_logits").get_weights()[0].copy()
    history = model.fit(x, {keys.MASK: y}, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, model.get_layer("mask_logits").get_weights()[0])


def test_keras_save_load_round_trip(tmp_path, rng):
    model = build_unet("contextual", **SMALL)
    x = rng.uniform(0, 1, (1, 32, 32, 4)).astype(np.float32)
    path = tmp_path / "unet.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.name == model.name
    np.testing.assert_allclose(restored.predict(x, verbose=0)[keys.MASK],
                               model.predict(x, verbose=0)[keys.MASK], rtol=1e-5, atol=1e-5)
