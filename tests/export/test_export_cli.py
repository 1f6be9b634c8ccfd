"""`dcme-keras export` end to end: tiny .keras models -> .tflite + sidecar, the gate, bad files.

The exports themselves run once per session in the ``cli_exports`` fixture
(``tests/export/conftest.py``).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from dcme_keras.runtime import DCMESegmenter, ExtremePointsAnnotator, load_metadata


def _cli(*args):
    """One export command line in its own process (for failures that stop before TF)."""
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.main", "export", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind,quantization", [("annotator", "float32"), ("annotator", "int8"),
                                               ("dcme", "float32"), ("dcme", "int8")])
def test_cli_writes_model_sidecar_and_parity_report(cli_exports, kind, quantization):
    tmp, results = cli_exports
    code, out, err = results[(kind, quantization)]
    assert code == 0, err[-3000:]
    path = tmp / f"{'ann' if kind == 'annotator' else 'dcme'}_{quantization}.tflite"
    meta = load_metadata(path)
    assert meta["kind"] == kind and meta["quantization"] == quantization
    assert meta["package_version"] and meta["parity"]["kind"] == kind
    assert f"parity of the {quantization} TFLite model with Keras" in out
    assert f"wrote {path}" in out
    ops = meta["parity"]["op_report"]
    assert 0 < ops["delegated"] <= ops["ops"]
    if quantization == "int8":
        assert meta["calibration"]["samples"] == (8 if kind == "annotator" else 2)
        assert ops["dtypes"].get("int8", 0) > ops["dtypes"].get("float32", 0)
    else:
        assert set(ops["dtypes"]) == {"float32"}
    if kind == "annotator":
        assert meta["input_size"] == [64, 64] and meta["input_channels"] == 4
        # From the training run's config.json; the int8 run overrides the radius by flag.
        assert meta["point_radius"] == (4 if quantization == "int8" else 2)
        assert meta["margin"] == pytest.approx(0.15) and meta["point_mode"] == "circle"
        assert meta["classes"] == [{"name": "car", "label_id": 26},
                                   {"name": "person", "label_id": 24}]
        assert meta["parity"]["samples"] == 8
        ann = ExtremePointsAnnotator(path)
        mask = ann.segment(np.zeros((40, 50, 3), np.uint8), [(5, 20), (20, 5), (35, 20), (20, 35)])
        assert mask.shape == (40, 50)
    else:
        assert meta["input_size"] == [64, 128] and meta["grid_size"] == 16
        assert meta["classes"][3] == {"name": "car", "grid_id": 3, "label_id": 26}
        assert meta["parity"]["vector_error_max"] >= meta["parity"]["vector_error_mean"] >= 0
        assert DCMESegmenter(path).input_hw == (64, 128)
    if quantization == "float32":
        # Same graph in float32: the masks / vectors agree up to float rounding.
        if kind == "annotator":
            assert meta["parity"]["iou_drop"] == pytest.approx(0.0, abs=1e-9)
            assert meta["parity"]["agreement_iou"] == pytest.approx(100.0)
        else:
            assert meta["parity"]["vector_error_max"] < 1e-3
            assert meta["parity"]["grid_agreement"] == pytest.approx(100.0)


@pytest.mark.parametrize("kind, shown, flag", [
    ("annotator", "IoU drop", "--max_iou_drop"),
    ("dcme", "detection drop", "--max_detection_drop"),
])
def test_int8_that_loses_too_much_is_refused_and_nothing_is_written(cli_exports, kind, shown,
                                                                    flag):
    tmp, results = cli_exports
    code, out, err = results[(kind, "refused")]
    assert code == 2
    assert shown in out  # the report is shown before refusing
    lines = err.strip().splitlines()
    assert "nothing was written" in lines[-1] and "--allow_drop" in lines[-1]
    assert flag in lines[-1]
    assert not any((tmp / "refused").iterdir())


def test_dcme_sidecar_records_the_detection_gate(cli_exports):
    tmp, results = cli_exports
    assert results[("dcme", "int8")][0] == 0
    report = json.loads((tmp / "dcme_int8.tflite.json").read_text())["parity"]
    assert report["max_detection_drop"] == 5.0
    assert report["detection_drop"] <= 5.0
    assert {"detection", "instances"} <= set(report["keras"]) & set(report["tflite"])


def test_a_file_that_is_not_a_keras_model_is_a_one_line_error_with_exit_2(tmp_path):
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a zip archive")
    for model in (bogus, tmp_path / "model.tflite"):
        model.touch()
        out = _cli("--model", model, "--out", tmp_path / "x.tflite")
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            f"dcme-keras export: error: {model} is not a .keras file (a zip archive); pass a "
            "model saved with model.save('M.keras')"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.keras", "model.tflite"]


def test_a_bad_representative_source_names_both_accepted_forms(tmp_path):
    from dcme_keras.export import representative

    with pytest.raises(UserInputError, match="neither a folder nor 'synthetic'"):
        representative.check_source(str(tmp_path / "missing"))
    representative.check_source("synthetic")
    representative.check_source(str(tmp_path))


def test_a_model_with_other_outputs_is_refused_by_name():
    import keras

    from dcme_keras.export import convert

    inp = keras.Input((16, 16, 3), name="image")
    model = keras.Model(inp, {"logits": keras.layers.Conv2D(1, 1)(inp)})
    with pytest.raises(UserInputError, match=f"neither {{'{keys.MASK}'}}"):
        convert.model_kind(model)
