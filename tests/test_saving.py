"""The one `.keras` loader: user errors for a wrong file, with the cause chained; any
other error (a bug in our own layers) propagates as it is."""

import json
import zipfile

import keras
import numpy as np
import pytest

from dcme_keras import keys, saving
from dcme_keras.errors import UserInputError
from dcme_keras.layers import DCMEHead


def _dcme_like(path):
    """A tiny dict-output model with the DCME network's output names and a DCMEHead."""
    image = keras.Input((16, 16, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", name="body")(image)
    grid = keras.layers.Conv2D(3, 1, name="grid_logits")(features)
    model = keras.Model(image, {keys.DCME: DCMEHead(filters=4, name="dcme_head")(features),
                                keys.GRID: grid})
    model.save(path)
    return model


@pytest.fixture(scope="module")
def dcme_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("saving") / "dcme.keras"
    _dcme_like(path)
    return path


def test_loads_a_dcme_network_of_the_right_kind(dcme_file):
    model = saving.load_model(dcme_file, kind="dcme")
    out = model(np.zeros((1, 16, 16, 3), np.float32))
    assert set(out) == {keys.DCME, keys.GRID}
    assert saving.load_model(dcme_file).name == model.name  # kind=None takes either


def test_wrong_kind_is_refused_before_loading(dcme_file):
    with pytest.raises(UserInputError, match=r"is not an annotator \(its outputs are "
                       r"\['dcme', 'grid'\], not 'mask'\)"):
        saving.load_model(dcme_file, kind="annotator")


@pytest.mark.parametrize("name, content, message", [
    ("missing.keras", None, "is not an existing .keras file"),
    ("text.keras", b"hello", r"is not a .keras file \(a zip archive\)"),
    ("model.h5", b"\x89HDF", r"is not a .keras file \(a zip archive\)"),
])
def test_missing_or_non_zip_files_are_user_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserInputError, match=message):
        saving.load_model(path)


def test_zip_without_model_config_chains_the_cause(tmp_path):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README", "no model here")
    with pytest.raises(UserInputError, match="is not a Keras model archive") as info:
        saving.load_model(path)
    assert isinstance(info.value.__cause__, KeyError)


def test_unknown_class_is_a_user_error_with_keras_error_as_cause(dcme_file, tmp_path):
    path = tmp_path / "foreign.keras"
    with zipfile.ZipFile(dcme_file) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                data = data.replace(b"DCMEHead", b"SomeoneElsesHead")
            dst.writestr(item, data)
    with pytest.raises(UserInputError, match="not a model this version of dcme_keras can "
                       "load .*Could not locate class 'SomeoneElsesHead'") as info:
        saving.load_model(path, kind="dcme")
    assert isinstance(info.value.__cause__, TypeError)


def test_lambda_refused_by_safe_mode_is_a_user_error(tmp_path):
    image = keras.Input((4,), name="image")
    path = tmp_path / "lambda.keras"
    keras.Model(image, {keys.MASK: keras.layers.Lambda(lambda x: x * 2)(image)}).save(path)
    with pytest.raises(UserInputError, match="risk of arbitrary code execution") as info:
        saving.load_model(path)
    assert isinstance(info.value.__cause__, ValueError)


def test_a_bug_in_our_layer_propagates_as_itself(dcme_file, monkeypatch):
    def broken_build(self, input_shape):
        raise ValueError("bug: DCMEHead.build cannot handle this shape")

    monkeypatch.setattr(DCMEHead, "build", broken_build)
    with pytest.raises(ValueError, match="bug: DCMEHead.build") as info:
        saving.load_model(dcme_file, kind="dcme")
    assert not isinstance(info.value, UserInputError)


def test_a_type_error_keras_wraps_keeps_our_bug_in_the_chain(dcme_file, monkeypatch):
    def broken_from_config(cls, config):
        raise TypeError("bug: DCMEHead.from_config drops a key")

    monkeypatch.setattr(DCMEHead, "from_config", classmethod(broken_from_config))
    with pytest.raises(TypeError) as info:
        saving.load_model(dcme_file, kind="dcme")
    assert not isinstance(info.value, UserInputError)
    chain, err = [], info.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__ or err.__context__
    assert any("bug: DCMEHead.from_config" in message for message in chain), chain


def test_read_archive_config_needs_no_keras(dcme_file):
    config = saving.read_archive_config(dcme_file)
    assert saving.archive_output_names(config) == [keys.DCME, keys.GRID]
    assert json.loads(json.dumps(config)) == config
