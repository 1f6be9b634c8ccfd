"""``dcme-keras evaluate dcme``: the paper's tables, shared outputs, labels, figures, errors."""

import json
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from dcme_keras import evaluate_dcme, saving
from dcme_keras.classes import THING_LABEL_IDS
from dcme_keras.data.synthetic import write_dataset
from dcme_keras.errors import UserInputError
from dcme_keras.models.deeplab_dcme import build_deeplab_dcme

SIZE = (64, 128)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A synthetic Cityscapes folder: 1 train and 2 val frames at 64x128."""
    root = tmp_path_factory.mktemp("synth") / "cityscapes"
    write_dataset(root, frames=3, size=SIZE, seed=3, val_fraction=0.67, progress=False)
    return root


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained tiny DCME network, saved as .keras."""
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_deeplab_dcme("tiny", input_shape=(*SIZE, 3)).save(path)
    return path


def _gt_instances(root, split="val"):
    """Ground-truth instances of the 8 evaluated classes, counted from the PNGs."""
    count = 0
    for path in (root / "gtFine" / split).rglob("*_gtFine_instanceIds.png"):
        ids = np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
        count += int(np.isin(ids[ids >= 1000] // 1000, THING_LABEL_IDS).sum())
    return count


def test_all_tables_share_one_forward_pass_and_are_saved(root, model_path, tmp_path,
                                                         monkeypatch):
    model = saving.load_model(model_path, kind="dcme")
    calls = []
    predict = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch", lambda x: calls.append(len(x)) or predict(x))
    out = tmp_path / "eval"
    tables = evaluate_dcme.evaluate_model(model, root, oracles=True, num_figures=1, out=out,
                                          progress=False)
    assert calls == [1, 1]  # 2 val frames, each run once for five tables and the figures
    assert list(tables) == list(evaluate_dcme.TABLES)

    instances = _gt_instances(root)
    assert instances > 0
    assert tables["detection_accuracy"]["instances"] == instances
    assert tables["instance_oracle"]["classification"]["total"]["instances"] == instances
    # The round trip of the exact ground truth loses little; an untrained network finds little.
    assert tables["gt_oracle"]["AP50"] > 50.0 > tables["dcme"]["AP50"]

    for name in evaluate_dcme.TABLES:
        saved = json.loads((out / f"{name}.json").read_text())
        assert saved["meta"]["synthetic"] is True and saved["meta"]["num_images"] == 2
        assert saved["meta"]["data"].startswith("synthetic Cityscapes")
    text = (out / "tables.txt").read_text()
    for title in ("Table I (left)", "Table I (right)", "Tables II and III", "Table IV",
                  "Table V", "synthetic Cityscapes"):
        assert title in text
    stem = "synthdorf_000000_000019"
    for suffix in ("fig4", "dcme_magnitude_pred", "dcme_magnitude_gt"):
        assert cv2.imread(str(out / "figures" / f"{stem}_{suffix}.png")) is not None, suffix
    assert len(list((out / "figures").iterdir())) == 3


def test_a_failure_while_drawing_leaves_no_table_and_no_figure(root, model_path, tmp_path,
                                                               monkeypatch):
    from dcme_keras import figures

    def broken(*args, **kwargs):
        raise RuntimeError("injected: cannot draw")

    # Fig. 4 of the first frame is drawn, then the magnitude map fails.
    monkeypatch.setattr(figures, "magnitude_figure", broken)
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="injected"):
        evaluate_dcme.evaluate_model(saving.load_model(model_path, kind="dcme"), root,
                                     num_figures=1, out=out, progress=False)
    assert not out.exists()


def test_frame_outputs_cache_and_membership(root, tmp_path):
    from dcme_keras.evaluation import gt_instance_files

    calls = []

    def network(image):
        calls.append(image.shape)
        return {"dcme": np.full((*image.shape[:2], 2), len(calls), np.float32),
                "grid": np.zeros((4, 8, 9), np.float32)}

    outputs = evaluate_dcme.FrameOutputs(gt_instance_files(root, split="val"), network,
                                         tmp_path)
    stems = list(outputs)
    assert len(outputs) == 2 and "nowhere_000000_000019" not in outputs and not calls
    first = outputs[stems[0]]
    np.testing.assert_array_equal(outputs[stems[0]]["dcme"], first["dcme"])
    assert calls == [(*SIZE, 3)]  # the second look came from the cache
    with pytest.raises(KeyError):
        outputs["nowhere_000000_000019"]


def test_data_label_names_synthetic_data(root, tmp_path):
    assert evaluate_dcme.data_label(root) == (f"synthetic Cityscapes (dcme-keras synth) at "
                                              f"{root}", True)
    assert evaluate_dcme.data_label(tmp_path) == (f"Cityscapes-layout data at {tmp_path}",
                                                  False)


def test_bad_inputs_are_user_errors(root, model_path, tmp_path):
    model = saving.load_model(model_path, kind="dcme")
    (tmp_path / "tfds" / "cityscapes_instances").mkdir(parents=True)
    with pytest.raises(UserInputError, match="TFDS data dir"):
        evaluate_dcme.evaluate_model(model, tmp_path / "tfds")
    with pytest.raises(UserInputError, match="--figures needs --out"):
        evaluate_dcme.evaluate_model(model, root, num_figures=1)
    with pytest.raises(UserInputError, match="differs from the model's input"):
        evaluate_dcme.evaluate_model(model, root, image_size=(128, 256))
    with pytest.raises(UserInputError, match="not an existing .keras file"):
        saving.load_model(tmp_path / "missing.keras", kind="dcme")
    other = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(other)
    with pytest.raises(UserInputError, match="not a DCME network"):
        saving.load_model(other, kind="dcme")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.evaluate", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_prints_labelled_table_i_and_saves_json(root, model_path, tmp_path):
    out = _cli("dcme", f"--model={model_path}", f"--cityscapes_root={root}",
               "--max_images=1", f"--out={tmp_path}", "--noprogress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Table I (left)" in out.stdout and "Table V" not in out.stdout
    assert f"synthetic Cityscapes (dcme-keras synth) at {root}, split val, 1 images" in out.stdout
    assert json.loads((tmp_path / "dcme.json").read_text())["meta"]["num_images"] == 1
    assert not (tmp_path / "gt_oracle.json").exists()


def test_cli_help_and_unknown_network():
    out = _cli("dcme", "--help")
    assert out.returncode == 0
    for flag in ("--cityscapes_root", "--[no]oracles", "--oracle_scale", "--figures"):
        assert flag in out.stdout, flag
    out = _cli("maskrcnn")
    assert out.returncode == 2
    assert out.stderr.splitlines()[0].startswith(
        "dcme-keras evaluate: error: unknown network 'maskrcnn'")
