"""`import dcme_keras` registers every custom Keras object, so a fresh process loads the
package's `.keras` files with plain `keras.models.load_model`, in safe mode."""

import os
import subprocess
import sys

import pytest

_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _load_in_fresh_process(path, first_import):
    """Loads ``path`` compiled, in safe mode, in a process that imports only what is given."""
    code = (f"{first_import}\n"
            "import sys\n"
            f"model = keras.models.load_model({str(path)!r}, safe_mode=True)\n"
            "print(type(model.loss).__name__ if not isinstance(model.loss, dict) else "
            "sorted(type(v).__name__ for v in model.loss.values()))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A tiny compiled DCME network and a tiny compiled annotator, saved as .keras."""
    from dcme_keras import annotate
    from dcme_keras.train_dcme import TrainConfig, build_and_compile

    folder = tmp_path_factory.mktemp("models")
    dcme = build_and_compile(TrainConfig(data_dir="-", model_dir="-", preset="tiny",
                                         image_size=(64, 64)))
    dcme.save(folder / "dcme.keras")
    config = annotate.AnnotatorConfig(filters=4, levels=3, size=32)
    annotator = annotate.compile_annotator(annotate.build_annotator(config))
    annotator.save(folder / "annotator.keras")
    return folder


@pytest.mark.parametrize("first_import", ["import dcme_keras, keras",
                                          "import keras, dcme_keras"])
def test_dcme_network_loads_after_import_dcme_keras(saved_models, first_import):
    losses = _load_in_fresh_process(saved_models / "dcme.keras", first_import)
    assert "DCMELoss" in losses


def test_annotator_loads_after_import_dcme_keras(saved_models):
    loss = _load_in_fresh_process(saved_models / "annotator.keras",
                                  "import dcme_keras, tensorflow, keras")
    assert "AverageDistanceLoss" in loss


def test_import_dcme_keras_stays_free_of_tensorflow():
    code = ("import sys, dcme_keras\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_ENV, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]
