"""Tests of dcme_keras.layers: config round trips, shapes, dtypes, save/load."""

import keras
import numpy as np
import pytest

from dcme_keras.layers import BackbonePreprocessing, DCMEHead, GridClassifier

HEAD_CASES = [
    # (layer, input shape, output channels, parameter count written out)
    # conv 3*3*4*8 (no bias) + BN 4*8 + 1x1 8*2+2
    (lambda: DCMEHead(filters=8, num_convs=1, name="dcme"), (2, 8, 16, 4), 2, 288 + 32 + 18),
    # two convs without BN: (3*3*4*8+8) + (3*3*8*8+8) + 1x1 8*2+2
    (lambda: DCMEHead(filters=8, num_convs=2, use_batch_norm=False), (1, 8, 8, 4), 2,
     296 + 584 + 18),
    # linear classifier: 1x1 32*9+9
    (lambda: GridClassifier(num_classes=8, num_convs=0, name="grid"), (1, 4, 8, 32), 9, 297),
    # one 1x1 hidden conv + BN + 1x1 to 3 + 1 classes: 6*16 + 4*16 + 16*4+4
    (lambda: GridClassifier(num_classes=3, filters=16, kernel_size=1), (3, 2, 2, 6), 4,
     96 + 64 + 68),
]


@pytest.mark.parametrize("make, shape, channels, params", HEAD_CASES)
def test_head_shape_dtype_and_params(make, shape, channels, params):
    layer = make()
    out = layer(np.random.default_rng(0).normal(size=shape).astype("float32"))
    assert tuple(out.shape) == shape[:-1] + (channels,)
    assert out.dtype == "float32"
    assert layer.count_params() == params
    assert tuple(layer.compute_output_shape(shape)) == shape[:-1] + (channels,)


@pytest.mark.parametrize("make, shape, channels, params", HEAD_CASES)
def test_head_config_round_trip(make, shape, channels, params):
    layer = make()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(list(shape))  # a reloaded layer may be built with a list
    assert clone.count_params() == params


def test_get_config_holds_exactly_the_constructor_args():
    base = set(keras.layers.Layer(name="x").get_config())
    assert set(DCMEHead().get_config()) - base == {
        "filters", "num_convs", "kernel_size", "use_batch_norm", "output_scale"}
    assert set(GridClassifier().get_config()) - base == {
        "num_classes", "filters", "num_convs", "kernel_size", "use_batch_norm"}
    assert set(BackbonePreprocessing().get_config()) - base == {"mode"}


def test_heads_output_float32_under_mixed_precision():
    head = DCMEHead(filters=8, dtype="mixed_float16")
    grid = GridClassifier(num_classes=2, filters=8, dtype="mixed_float16")
    x = np.ones((1, 4, 4, 3), "float32")
    assert head(x).dtype == "float32" and grid(x).dtype == "float32"
    assert head.hidden_layers[0].compute_dtype == "float16"


def test_heads_are_linear_at_the_output():
    # No activation: DCME vectors are signed; the output conv alone maps -x to -y.
    head = DCMEHead(num_convs=0)
    x = np.random.default_rng(1).normal(size=(1, 3, 3, 5)).astype("float32")
    head(x)  # builds; the output conv starts at zero, which would make this vacuous
    head.output_conv.kernel.assign(np.random.default_rng(2).normal(size=(1, 1, 5, 2)))
    bias = head(x) - head(np.zeros_like(x))
    np.testing.assert_allclose(head(-x) - head(np.zeros_like(x)), -bias, atol=1e-5)


@pytest.mark.parametrize("bad", [lambda: GridClassifier(num_classes=0),
                                 lambda: DCMEHead(num_convs=-1),
                                 lambda: BackbonePreprocessing("torch")])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("mode, reference", [
    ("caffe", keras.applications.vgg16.preprocess_input),
    ("tf", keras.applications.mobilenet_v2.preprocess_input),
])
def test_preprocessing_matches_keras_applications(mode, reference):
    images = np.random.default_rng(2).uniform(0, 255, (2, 3, 4, 3)).astype("float32")
    expected = reference(images.copy())
    np.testing.assert_allclose(BackbonePreprocessing(mode)(images), expected, atol=1e-4)


def test_caffe_preprocessing_hand_values():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], "float32")  # RGB
    # BGR (30, 20, 10) minus the BGR mean (103.939, 116.779, 123.68)
    np.testing.assert_allclose(BackbonePreprocessing("caffe")(pixel),
                               [[[[-73.939, -96.779, -113.68]]]], atol=1e-4)


def test_model_with_both_heads_survives_keras_save_load(tmp_path):
    inputs = keras.Input((16, 32, 3), name="image")
    x = BackbonePreprocessing("tf", name="preprocessing")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="features")(x)
    dcme = DCMEHead(filters=8, num_convs=2, name="dcme")(x)
    pooled = keras.layers.AveragePooling2D(4, name="pool")(x)
    grid = GridClassifier(num_classes=8, filters=8, name="grid")(pooled)
    model = keras.Model(inputs, {"dcme": dcme, "grid": grid})
    # One training step moves the batch-norm statistics away from their initial values,
    # so the reload is checked on non-trivial state.
    model.compile(optimizer="sgd", loss={"dcme": "mse", "grid": "mse"})
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (2, 16, 32, 3)).astype("float32")
    model.fit(images, {"dcme": rng.normal(size=(2, 16, 32, 2)),
                       "grid": rng.normal(size=(2, 4, 8, 9))}, epochs=1, verbose=0)
    path = tmp_path / "heads.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    before, after = model.predict(images, verbose=0), reloaded.predict(images, verbose=0)
    for key in ("dcme", "grid"):
        np.testing.assert_array_equal(before[key], after[key])
    assert reloaded.get_layer("dcme").get_config() == model.get_layer("dcme").get_config()


def test_foreground_head_shape_params_and_config_round_trip():
    from dcme_keras.layers import ForegroundHead

    # conv 3*3*4*8 (no bias) + BN 4*8 + 1x1 8*1+1
    head = ForegroundHead(filters=8, num_convs=1, name="foreground")
    out = head(np.random.default_rng(0).normal(size=(2, 8, 16, 4)).astype("float32"))
    assert tuple(out.shape) == (2, 8, 16, 1) and out.dtype == "float32"
    assert head.count_params() == 288 + 32 + 9
    base = set(keras.layers.Layer(name="x").get_config())
    assert set(head.get_config()) - base == {
        "filters", "num_convs", "kernel_size", "use_batch_norm"}
    clone = ForegroundHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    clone.build([2, 8, 16, 4])
    assert clone.count_params() == head.count_params()
    assert ForegroundHead(filters=8, dtype="mixed_float16")(
        np.ones((1, 4, 4, 3), "float32")).dtype == "float32"


def test_dcme_head_starts_at_the_zero_field_and_scales_its_output():
    x = np.random.default_rng(4).normal(size=(1, 4, 4, 3)).astype("float32")
    head = DCMEHead(filters=4, output_scale=32.0)
    np.testing.assert_array_equal(head(x), np.zeros((1, 4, 4, 2), np.float32))
    head.output_conv.bias.assign([1.0, -0.5])
    np.testing.assert_allclose(head(x)[0, 0, 0], [32.0, -16.0])
    clone = DCMEHead.from_config(head.get_config())
    assert clone.output_scale == 32.0


def test_dcme_head_refuses_a_scale_that_is_not_positive():
    with pytest.raises(ValueError, match="output_scale must be > 0"):
        DCMEHead(output_scale=0.0)
