"""Tests of the DCME network builder (dcme_keras.models.deeplab_dcme)."""

import re

import h5py
import keras
import numpy as np
import pytest

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from dcme_keras.models.deeplab_dcme import PRESETS, build_deeplab_dcme, imagenet_weights_path

#: The paper preset at 512x1024, 8 classes. Changes only with the architecture.
PAPER_PARAMS = 37_245_387
VGG16_NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (1, *shape)).astype("float32")


def _write_notop_h5(model, path):
    """Write ``model``'s weights in the layout of keras' published ``*_notop.h5`` files.

    That is the legacy HDF5 layout: a root attribute ``layer_names`` and one group per
    layer whose ``weight_names`` attribute lists its arrays, trainable ones first.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}_{i}:0".encode() for i in range(len(weights))]
            group.attrs["weight_names"] = names
            for name, weight in zip(names, weights):
                group.create_dataset(name, data=weight.numpy())


def _assert_same_weights(model, reference):
    """Every weighted layer of ``reference`` that ``model`` has holds the same arrays."""
    names = {layer.name for layer in model.layers}
    checked = 0
    for layer in reference.layers:
        if layer.name not in names:
            continue
        for mine, theirs in zip(model.get_layer(layer.name).weights, layer.weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
            checked += 1
    assert checked > 0


@pytest.fixture(scope="module")
def paper_model():
    """The paper preset at Cityscapes' half resolution, built once."""
    return build_deeplab_dcme("paper", input_shape=(512, 1024, 3))


@pytest.fixture(scope="module")
def tiny_model():
    return build_deeplab_dcme("tiny", input_shape=(64, 128, 3))


def test_paper_preset_shapes_and_parameter_count(paper_model):
    assert {k: tuple(v.shape) for k, v in paper_model.output.items()} == {
        keys.DCME: (None, 512, 1024, 2), keys.GRID: (None, 32, 64, 9)}
    assert paper_model.count_params() == PAPER_PARAMS


def test_paper_preset_topology(paper_model):
    names = [layer.name for layer in paper_model.layers]
    # Output stride 16: block4_pool kept, block5_pool dropped, then 5 atrous extra convs.
    assert "block4_pool" in names and "block5_pool" not in names
    extras = [paper_model.get_layer(f"extra{i}_conv") for i in range(1, 6)]
    assert [layer.dilation_rate for layer in extras] == [(2, 2)] * 5
    assert paper_model.get_layer("extra1_conv").input.shape == (None, 32, 64, 512)
    assert [paper_model.get_layer(f"aspp_rate{r}_conv").dilation_rate[0]
            for r in (6, 12, 18)] == [6, 12, 18]
    # Low-level features: VGG's stride-4 block3_conv3.
    assert paper_model.get_layer("decoder_low_level_conv").input.shape == (None, 128, 256, 256)
    for name, shape in [("decoder_upsample1", (None, 128, 256, 256)),
                        ("decoder_upsample2", (None, 512, 1024, 64))]:
        layer = paper_model.get_layer(name)
        assert isinstance(layer, keras.layers.Conv2DTranspose)
        assert layer.output.shape == shape
    assert paper_model.get_layer(keys.GRID).input.shape == (None, 32, 64, 512)


def test_paper_topology_forward_at_64x128():
    model = build_deeplab_dcme("paper", input_shape=(64, 128, 3), num_classes=3)
    out = model(_images((64, 128, 3)))
    assert tuple(out[keys.DCME].shape) == (1, 64, 128, 2)
    assert tuple(out[keys.GRID].shape) == (1, 4, 8, 4)
    assert np.isfinite(out[keys.DCME]).all()


def test_tiny_preset_shapes_and_dtypes(tiny_model):
    out = tiny_model(_images((64, 128, 3)))
    assert tuple(out[keys.DCME].shape) == (1, 64, 128, 2)
    assert tuple(out[keys.GRID].shape) == (1, 4, 8, 9)
    assert out[keys.DCME].dtype == "float32" and out[keys.GRID].dtype == "float32"


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_every_layer_is_named(preset, tiny_model, paper_model):
    model = {"tiny": tiny_model, "paper": paper_model}[preset]
    assert _generic_layer_names(model) == []


def test_tiny_preset_trains(tiny_model):
    model = keras.models.clone_model(tiny_model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss={
        keys.DCME: "mse",
        keys.GRID: keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 255, (4, 64, 128, 3)).astype("float32")
    targets = {keys.DCME: rng.normal(0, 5, (4, 64, 128, 2)).astype("float32"),
               keys.GRID: rng.integers(0, 9, (4, 4, 8)).astype("int32")}
    before = model.get_layer("tiny_block1_conv").kernel.numpy()
    history = model.fit(images, targets, batch_size=2, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert not np.allclose(before, model.get_layer("tiny_block1_conv").kernel.numpy())


def test_tiny_preset_keras_save_load(tiny_model, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model.save(path)
    reloaded = keras.saving.load_model(path)
    images = _images((64, 128, 3), seed=5)
    before, after = tiny_model.predict(images, verbose=0), reloaded.predict(images, verbose=0)
    for key in (keys.DCME, keys.GRID):
        np.testing.assert_array_equal(before[key], after[key])


@pytest.mark.parametrize("shape", [(60, 128, 3), (64, 120, 3)])
def test_size_not_multiple_of_16_raises(shape):
    with pytest.raises(UserInputError, match="multiple of 16.*64x128"):
        build_deeplab_dcme("tiny", input_shape=shape)


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "huge"}, "unknown preset"),
    ({"backbone": "resnet50"}, "unknown backbone"),
    ({"input_shape": (64, 64, 4)}, r"\(H, W, 3\)"),
    ({"num_classes": 0}, "num_classes"),
    ({"extra_layers": 3}, "unknown model option"),
    ({"alpha": 0.5}, "does not apply to backbone 'tiny'"),
    ({"backbone_weights": "imagenet"}, "tiny backbone has no pretrained weights"),
])
def test_bad_arguments_raise_user_input_error(kwargs, match):
    kwargs = {"preset": "tiny", "input_shape": (64, 64, 3), **kwargs}
    with pytest.raises(UserInputError, match=match):
        build_deeplab_dcme(**kwargs)


def test_overrides_change_the_architecture():
    model = build_deeplab_dcme("tiny", input_shape=(32, 32, 3), extra_convs=3,
                               aspp_rates=(1, 3), name="custom")
    names = {layer.name for layer in model.layers}
    assert {"extra3_conv", "aspp_rate1_conv", "aspp_rate3_conv"} <= names
    assert "extra4_conv" not in names and model.name == "custom"


def test_imagenet_weights_file_names(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert imagenet_weights_path("vgg16") == tmp_path / "models" / VGG16_NOTOP
    assert imagenet_weights_path("mobilenet_v2", (512, 1024), 0.5).name == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")
    assert imagenet_weights_path("mobilenet_v2", (128, 128), 1).name == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5")


def test_vgg16_imagenet_weights_load_from_keras_cache(tmp_path, monkeypatch):
    reference = keras.applications.VGG16(weights=None, include_top=False)
    (tmp_path / "models").mkdir()
    _write_notop_h5(reference, tmp_path / "models" / VGG16_NOTOP)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # The tiny preset's heads on VGG16 keep the build cheap.
    model = build_deeplab_dcme("tiny", backbone="vgg16", input_shape=(32, 32, 3),
                               backbone_weights="imagenet")
    _assert_same_weights(model, reference)
    random = build_deeplab_dcme("tiny", backbone="vgg16", input_shape=(32, 32, 3))
    with pytest.raises(AssertionError):
        _assert_same_weights(random, reference)


def test_vgg16_weights_load_from_weights_h5_path(tmp_path):
    reference = keras.applications.VGG16(weights=None, include_top=False)
    path = tmp_path / "vgg16.weights.h5"
    reference.save_weights(path)
    model = build_deeplab_dcme("tiny", backbone="vgg16", input_shape=(32, 32, 3),
                               backbone_weights=path)
    _assert_same_weights(model, reference)


def test_mobilenet_v2_builds_with_imagenet_weights(tmp_path, monkeypatch):
    reference = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35)
    path = imagenet_weights_path("mobilenet_v2", (64, 128), 0.35)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    _write_notop_h5(reference, tmp_path / "models" / path.name)
    model = build_deeplab_dcme("mobilenet_v2", input_shape=(64, 128, 3), alpha=0.35,
                               backbone_weights="imagenet")
    out = model(_images((64, 128, 3)))
    assert tuple(out[keys.DCME].shape) == (1, 64, 128, 2)
    assert tuple(out[keys.GRID].shape) == (1, 4, 8, 9)
    _assert_same_weights(model, reference)
    # The model keeps MobileNetV2 up to its stride-16 block only.
    names = {layer.name for layer in model.layers}
    assert "block_13_expand_relu" in names and "block_13_project" not in names


def test_missing_imagenet_weights_raise_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    expected = str(tmp_path / "models" / VGG16_NOTOP)
    with pytest.raises(UserInputError, match="cannot download") as err:
        build_deeplab_dcme("paper", input_shape=(32, 32, 3), backbone_weights="imagenet")
    assert expected in str(err.value)
    with pytest.raises(UserInputError, match="alpha=0.6"):
        build_deeplab_dcme("mobilenet_v2", input_shape=(32, 32, 3), alpha=0.6,
                           backbone_weights="imagenet")


def test_bad_weights_files_raise_user_input_error(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        build_deeplab_dcme("paper", input_shape=(32, 32, 3),
                           backbone_weights=tmp_path / "nope.h5")
    wrong = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35)
    _write_notop_h5(wrong, tmp_path / "mobilenet.h5")
    with pytest.raises(UserInputError, match="do not fit"):
        build_deeplab_dcme("tiny", backbone="vgg16", input_shape=(32, 32, 3),
                           backbone_weights=tmp_path / "mobilenet.h5")


def test_presets_table_is_complete():
    assert set(PRESETS) == {"paper", "mobilenet_v2", "tiny", "cpu"}
    assert PRESETS["paper"]["backbone"] == "vgg16"
    assert PRESETS["paper"]["extra_convs"] == 5
    assert PRESETS["paper"]["aspp_rates"] == (6, 12, 18)


# ----------------------------------------------------------------------------------------
# Optional foreground head (beyond the paper)
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_fg_model():
    return build_deeplab_dcme("tiny", input_shape=(64, 128, 3), foreground_head=True)


def _generic_layer_names(model):
    """Names Keras made up for unnamed layers: an unnamed layer is named after its class
    in snake case, e.g. "re_lu_3" (keras.src.utils.naming's rule, private, redone here)."""
    generic = []
    for layer in model.layers:
        auto = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
        auto = re.sub("([a-z])([A-Z])", r"\1_\2", auto).lower()
        if re.fullmatch(rf"{auto}(_\d+)?", layer.name):
            generic.append(layer.name)
    return generic


def test_paper_preset_has_no_foreground_head_by_default(paper_model, tiny_model):
    assert set(paper_model.output) == set(tiny_model.output) == {keys.DCME, keys.GRID}


def test_tiny_foreground_head_shapes_dtypes_and_place(tiny_fg_model, tiny_model):
    assert {k: tuple(v.shape) for k, v in tiny_fg_model.output.items()} == {
        keys.DCME: (None, 64, 128, 2), keys.GRID: (None, 4, 8, 9),
        keys.FOREGROUND: (None, 64, 128, 1)}
    out = tiny_fg_model(_images((64, 128, 3)))
    assert tuple(out[keys.FOREGROUND].shape) == (1, 64, 128, 1)
    assert out[keys.FOREGROUND].dtype == "float32"
    # Logits: no sigmoid in the graph, so values leave [0, 1].
    logits = np.asarray(out[keys.FOREGROUND])
    assert np.isfinite(logits).all() and (logits.min() < 0 or logits.max() > 1)
    # Beside the DCME head, on the decoder's last, full-resolution features.
    head = tiny_fg_model.get_layer(keys.FOREGROUND)
    assert head.input is tiny_fg_model.get_layer(keys.DCME).input
    assert head.input.shape == (None, 64, 128, PRESETS["tiny"]["head_filters"])
    # Only the head is added: the rest of the network has the same weights' shapes.
    extra = tiny_fg_model.count_params() - tiny_model.count_params()
    assert extra == head.count_params() > 0
    assert _generic_layer_names(tiny_fg_model) == []


@pytest.mark.parametrize("preset", ["paper", "mobilenet_v2"])
def test_every_preset_takes_the_foreground_head(preset):
    model = build_deeplab_dcme(preset, input_shape=(64, 128, 3), foreground_head=True)
    assert tuple(model.output[keys.FOREGROUND].shape) == (None, 64, 128, 1)
    assert _generic_layer_names(model) == []


def test_foreground_head_must_be_a_bool():
    with pytest.raises(UserInputError, match="foreground_head"):
        build_deeplab_dcme("tiny", input_shape=(64, 64, 3), foreground_head="yes")


def test_tiny_foreground_head_fits_one_step(tiny_fg_model):
    model = keras.models.clone_model(tiny_fg_model)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss={
        keys.DCME: "mse",
        keys.GRID: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keys.FOREGROUND: keras.losses.BinaryCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight")})
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 255, (2, 64, 128, 3)).astype("float32")
    targets = {keys.DCME: rng.normal(0, 5, (2, 64, 128, 2)).astype("float32"),
               keys.GRID: rng.integers(0, 9, (2, 4, 8)).astype("int32"),
               keys.FOREGROUND: (rng.uniform(size=(2, 64, 128, 1)) < 0.3).astype("float32")}
    weights = {keys.DCME: np.ones((2, 64, 128), "float32"),
               keys.GRID: np.ones((2, 4, 8), "float32"),
               keys.FOREGROUND: (rng.uniform(size=(2, 64, 128)) < 0.8).astype("float32")}
    before = model.get_layer(keys.FOREGROUND).output_conv.kernel.numpy()
    history = model.fit(images, targets, sample_weight=weights, batch_size=2, epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["foreground_loss"]).all()
    after = model.get_layer(keys.FOREGROUND).output_conv.kernel.numpy()
    assert not np.allclose(before, after)


def test_tiny_foreground_head_keras_save_load(tiny_fg_model, tmp_path):
    path = tmp_path / "tiny_fg.keras"
    tiny_fg_model.save(path)
    reloaded = keras.saving.load_model(path)
    assert set(reloaded.output) == {keys.DCME, keys.GRID, keys.FOREGROUND}
    head = reloaded.get_layer(keys.FOREGROUND)
    assert head.get_config() == tiny_fg_model.get_layer(keys.FOREGROUND).get_config()
    images = _images((64, 128, 3), seed=5)
    before = tiny_fg_model.predict(images, verbose=0)
    after = reloaded.predict(images, verbose=0)
    for key in (keys.DCME, keys.GRID, keys.FOREGROUND):
        np.testing.assert_array_equal(before[key], after[key])
