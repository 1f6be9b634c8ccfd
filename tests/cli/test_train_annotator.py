"""``dcme-keras train annotator`` / ``evaluate annotator`` and the evaluation maths behind them."""

import csv
import dataclasses
import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_cityscapes.cityscapes_instances  # noqa: F401  (registers the builder)
from dcme_keras import annotate, keys, metrics, train_annotator
from dcme_keras.data.synthetic import write_dataset
from dcme_keras.errors import UserInputError
from dcme_keras.train_annotator import TrainConfig


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """TFDS data dir of a 4-frame synthetic build at 128x256 (3 train, 1 validation)."""
    manual_dir = tmp_path_factory.mktemp("synth") / "cityscapes"
    write_dataset(manual_dir, frames=4, size=(128, 256), seed=0, val_fraction=0.25,
                  progress=False)
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("cityscapes_instances", data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return str(data_dir)


def _config(data_dir, model_dir, **kw):
    return TrainConfig(data_dir=data_dir, model_dir=str(model_dir), filters=2, levels=3,
                       size=32, batch_size=4, min_area=20.0, precise_bn_batches=2, verbose=0,
                       data_name="synthetic Cityscapes", **kw)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A 1-epoch run, then the same run resumed to 2 epochs."""
    model_dir = tmp_path_factory.mktemp("run")
    first = train_annotator.train(_config(data_dir, model_dir, epochs=1))
    steps = int(first.model.optimizer.iterations.numpy())
    resumed = train_annotator.train(_config(data_dir, model_dir, epochs=2))
    return model_dir, first, steps, resumed


def test_training_writes_checkpoints_logs_and_config(trained):
    model_dir, first, steps, _ = trained
    assert first.epoch == [0] and steps >= 1
    for name in ("best.keras", "last.keras", "history.csv", "config.json", "loss_curves.png"):
        assert (model_dir / name).is_file(), name
    assert any((model_dir / "tensorboard").rglob("events.out.tfevents.*"))
    row = _rows(model_dir / "history.csv")[0]
    for key in ("loss", "aiou", "val_loss", "val_aiou"):
        assert math.isfinite(float(row[key])), key
    assert 0.0 <= float(row["val_aiou"]) <= 1.0
    record = json.loads((model_dir / "config.json").read_text())
    assert {k: record[k] for k in ("kind", "variant", "size", "points", "point_radius",
                                   "margin", "point_mode")} == {
        "kind": "annotator", "variant": "paper", "size": 32, "points": True,
        "point_radius": 3, "margin": 0.1, "point_mode": "circle"}
    assert record["classes"][0] == "car" and len(record["classes"]) == 9
    assert record["training"]["settings"]["loss"] == "avg_distance"
    assert record["training"]["frames"] == {"train": 3, "validation": 1}
    model = keras.saving.load_model(model_dir / "best.keras", compile=False)
    assert tuple(model.output[keys.MASK].shape) == (None, 32, 32, 1)
    assert tuple(model.input_shape) == (None, 32, 32, 4)


def test_rerun_resumes_after_the_last_epoch_with_the_optimizer_state(trained):
    model_dir, _, steps, resumed = trained
    assert resumed.epoch == [1]
    assert [r["epoch"] for r in _rows(model_dir / "history.csv")] == ["0", "1"]
    assert int(resumed.model.optimizer.iterations.numpy()) == 2 * steps


def test_resuming_with_another_network_is_refused(data_dir, trained):
    model_dir, *_ = trained
    with pytest.raises(UserInputError, match=r"--variant=paper.*new --model_dir"):
        train_annotator.train(_config(data_dir, model_dir, epochs=3, variant="residual"))
    with pytest.raises(UserInputError, match=r"--points=True"):
        train_annotator.train(_config(data_dir, model_dir, epochs=3, points=False))


def test_unbuilt_dataset_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="dcme-keras build"):
        train_annotator.train(_config(str(tmp_path / "nothing"), tmp_path / "run", epochs=1))


def test_iou_scores_agree_with_the_metrics_module(rng):
    pred = rng.random((70, 9, 11)) < 0.5
    gt = rng.random((70, 9, 11)) < 0.4
    gt[3] = pred[3] = False  # an empty pair scores 1
    labels = rng.choice(["car", "person", "bus"], 70)
    inter, union = metrics.intersection_union(pred, gt)
    scores = annotate.iou_scores(inter, union, labels, batch_size=32)
    assert scores["aIoU"] == pytest.approx(metrics.aiou(pred, gt, batch_size=32))
    assert scores["iIoU"] == pytest.approx(metrics.iiou(pred, gt))
    assert scores["mIoU"] == pytest.approx(metrics.miou(pred, gt, labels))
    assert scores["per_class"] == pytest.approx(metrics.class_ious(pred, gt, labels))


def test_iou_scores_by_hand():
    scores = annotate.iou_scores([1, 0, 3], [2, 0, 4], ["car", "car", "bus"], batch_size=2)
    # Batches {0, 1}: 1/2 and {2}: 3/4; instances 1/2, 1 (empty), 3/4.
    assert scores.pop("per_class") == pytest.approx({"car": 0.5, "bus": 0.75})
    assert scores == pytest.approx({"aIoU": 0.625, "iIoU": 0.75, "mIoU": 0.625})


def test_evaluate_cli_prints_and_saves_the_tables(data_dir, trained, tmp_path):
    model_dir, *_ = trained
    out = subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "evaluate", "annotator",
         f"--model={model_dir / 'best.keras'}", f"--data_dir={data_dir}", "--min_area=20",
         "--timing_repeats=1", f"--out={tmp_path / 'eval'}", "--noprogress",
         "--data_name=synthetic Cityscapes"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("aIoU%", "network 32x32", "full (pasted back)", "border error at 32x32",
                 "keras_predict", "keras_predict_on_batch", "tf_function", "segment"):
        assert text in out.stdout, text
    result = json.loads((tmp_path / "eval" / "annotator_eval.json").read_text())
    assert result["data"] == "synthetic Cityscapes" and result["instances"] >= 1
    assert sum(result["instances_per_class"].values()) == result["instances"]
    for scale in ("crop", "full"):
        assert set(result[scale]) == {"aIoU", "iIoU", "mIoU", "per_class"}
        assert set(result[scale]["per_class"]) == set(result["instances_per_class"])
        for name in result["instances_per_class"]:
            assert f"\n{name:<16}" in out.stdout
    assert len(result["border_error"]["histogram"]) == 11
    assert result["ms_per_instance"]["tf_function"] > 0
    assert (tmp_path / "eval" / "border_error.png").is_file()
    assert (tmp_path / "eval" / "tables.txt").read_text().startswith("annotator ")


def test_calibrated_threshold_is_the_candidate_with_the_best_full_aiou(data_dir, trained):
    from dcme_keras import evaluate_annotator

    model_dir, *_ = trained
    annotator = annotate.KerasAnnotator(model_dir / "best.keras")
    candidates = (0.2, 0.5, 0.8)
    calibration = evaluate_annotator.calibrate_threshold(
        annotator, data_dir, candidates=candidates, tolerance=0.0, progress=False)
    assert set(calibration["aIoU"]) == set(candidates) and calibration["instances"] >= 1
    best = max(calibration["aIoU"].values())
    assert calibration["aIoU"][calibration["threshold"]] == best
    # With a tolerance, the highest threshold that comes within it.
    loose = evaluate_annotator.calibrate_threshold(
        annotator, data_dir, candidates=candidates, tolerance=1.0, progress=False)
    assert loose["threshold"] == 0.8 and loose["aIoU"] == calibration["aIoU"]
    # Each candidate's score is the plain evaluation at that threshold.
    for t in candidates:
        plain = evaluate_annotator.evaluate_annotator(
            annotate.KerasAnnotator(model_dir / "best.keras", threshold=t), data_dir,
            progress=False)
        assert calibration["aIoU"][t] == pytest.approx(plain["full"]["aIoU"])
    with pytest.raises(UserInputError, match="thresholds"):
        evaluate_annotator.calibrate_threshold(annotator, data_dir, candidates=(1.5,))


def test_evaluate_cli_refuses_a_text_file_as_model(data_dir, tmp_path):
    (tmp_path / "m.keras").write_text("no model")
    out = subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "evaluate", "annotator",
         f"--model={tmp_path / 'm.keras'}", f"--data_dir={data_dir}"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "is not a Keras model archive" in out.stderr.splitlines()[-1]


def test_a_failed_start_leaves_no_config_and_the_fixed_rerun_trains(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    # Fails while compiling, after the data checks; levels is part of the network.
    with pytest.raises(UserInputError, match="learning rate 0.0 must be > 0"):
        train_annotator.train(dataclasses.replace(
            _config(data_dir, model_dir, epochs=1, learning_rate=0.0), levels=2))
    assert not (model_dir / "config.json").exists()
    history = train_annotator.train(_config(data_dir, model_dir, epochs=1, steps_per_epoch=1,
                                            validation_steps=1))
    assert history.epoch == [0]
    assert annotate.read_config(model_dir).levels == 3


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """A Cityscapes-layout folder as real photos come: no polygons JSON, only the PNGs."""
    root = tmp_path_factory.mktemp("photos") / "cityscapes"
    write_dataset(root, frames=4, size=(128, 256), seed=1, val_fraction=0.5, progress=False)
    for path in root.rglob("*_gtFine_polygons.json"):
        path.unlink()
    return root


def _quadrilateral_miou(root, split, classes, min_area):
    """The baseline computed independently: every instance of the PNGs, pooled per class."""
    import cv2

    from dcme_keras.classes import label_id
    from dcme_keras.extreme_points import extreme_points, quadrilateral_mask

    inter, union = {}, {}
    for path in sorted((root / "gtFine" / split).rglob("*_instanceIds.png")):
        ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        for value in np.unique(ids[ids >= 1000]):
            mask = ids == value
            name = next((c for c in classes if label_id(c) == value // 1000), None)
            if name is None or mask.sum() < min_area:
                continue
            quad = quadrilateral_mask(extreme_points(mask), mask.shape)
            inter[name] = inter.get(name, 0) + int((quad & mask).sum())
            union[name] = union.get(name, 0) + int((quad | mask).sum())
    return float(np.mean([inter[n] / union[n] for n in inter])), len(inter)


def _evaluate_folder(model, root, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "evaluate", "annotator",
         f"--model={model}", f"--cityscapes_root={root}", "--min_area=20",
         "--timing_repeats=0", f"--out={out}", "--noprogress", *extra],
        capture_output=True, text=True, timeout=600)


def test_evaluate_cli_scores_a_photo_folder_beside_the_quadrilateral(photo_folder, trained,
                                                                     tmp_path):
    model_dir, *_ = trained
    out = _evaluate_folder(model_dir / "best.keras", photo_folder, tmp_path / "exact")
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("quadrilateral 32x32", "quadrilateral full", "quad% full",
                 "network over quadrilateral at full resolution"):
        assert text in out.stdout, text
    result = json.loads((tmp_path / "exact" / "annotator_eval.json").read_text())
    assert result["split"] == "val" and result["jitter_sigma_px"] == 0
    expected, classes = _quadrilateral_miou(photo_folder, "val", annotate.AnnotatorConfig().classes,
                                            20)
    assert len(result["instances_per_class"]) == classes
    assert result["baseline"]["full"]["mIoU"] == pytest.approx(expected, abs=1e-9)
    assert 0.3 < expected < 0.95

    jittered = _evaluate_folder(model_dir / "best.keras", photo_folder, tmp_path / "jitter",
                                "--jitter_sigma_px=3")
    assert jittered.returncode == 0, jittered.stderr[-3000:]
    assert "clicks jittered: Gaussian sigma 3 px" in jittered.stdout
    moved = json.loads((tmp_path / "jitter" / "annotator_eval.json").read_text())
    assert moved["instances"] == result["instances"]
    assert moved["baseline"]["full"]["mIoU"] != result["baseline"]["full"]["mIoU"]


def test_evaluate_cli_needs_exactly_one_data_source(data_dir, photo_folder, trained):
    model_dir, *_ = trained
    out = subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "evaluate", "annotator",
         f"--model={model_dir / 'best.keras'}", f"--data_dir={data_dir}",
         f"--cityscapes_root={photo_folder}"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "exactly one of --data_dir" in out.stderr.splitlines()[-1]


@pytest.mark.parametrize("sigma", [0.0, 3.0])
def test_jitter_clicks_stays_in_the_image_and_is_seeded(sigma):
    points = np.array([[0, 5], [4, 0], [9, 5], [4, 9]], np.int32)
    moved = [annotate.jitter_clicks(points, sigma, (10, 10), np.random.default_rng(s))
             for s in range(50)]
    again = annotate.jitter_clicks(points, sigma, (10, 10), np.random.default_rng(0))
    np.testing.assert_array_equal(moved[0], again)
    stacked = np.stack(moved)
    assert stacked.min() >= 0 and stacked.max() <= 9
    if sigma:
        assert np.abs(stacked - points).max() >= 3
        assert 1.5 < np.abs(stacked - points).mean() * np.sqrt(np.pi / 2) < 4.5
    else:
        assert (stacked == points).all()


def test_cluttered_evaluation_changes_the_objects_not_their_count(data_dir, trained):
    from dcme_keras import evaluate_annotator

    model_dir, *_ = trained
    annotator = annotate.KerasAnnotator(model_dir / "best.keras")
    plain = evaluate_annotator.evaluate_annotator(annotator, data_dir, progress=False)
    cluttered = evaluate_annotator.evaluate_annotator(annotator, data_dir, clutter=True,
                                                      progress=False)
    again = evaluate_annotator.evaluate_annotator(annotator, data_dir, clutter=True,
                                                  progress=False)
    assert cluttered["clutter"] and not plain["clutter"]
    assert cluttered["instances"] == plain["instances"]
    assert cluttered["baseline"] != plain["baseline"]  # other masks, other points
    assert cluttered["full"] == again["full"]  # the seed decides the neighbours
    assert "cluttered:" in evaluate_annotator.format_tables(cluttered)
