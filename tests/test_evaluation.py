"""Official Cityscapes evaluator wrapper, results format, oracles and tables.

Ground truth is drawn by hand at 64x128, with every scored instance above the
evaluator's 100-pixel minimum, so the expected APs can be worked out by hand.
"""

import json
import math
import os

import cv2
import numpy as np
import pytest
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_eval

from dcme_keras import cityscapes_eval, classes, evaluation, inference, keys, oracles
from dcme_keras.dcme import codec_np, grid
from dcme_keras.errors import UserInputError

H, W = 64, 128
CITY = "testcity"
STEMS = (f"{CITY}_000000_000001", f"{CITY}_000000_000002")
CAR, PERSON, BUS = 26, 24, 28


def _frame_ids(boxes):
    """[H, W] uint16 ids: road below row 40, then (r0, r1, c0, c1, id) boxes in order."""
    ids = np.zeros((H, W), np.uint16)
    ids[40:] = 7
    for r0, r1, c0, c1, value in boxes:
        ids[r0:r1, c0:c1] = value
    return ids


#: Frame 1: car 20x25 (500 px), person 30x15 (450 px), car 30x40, a cargroup region (26)
#: and a 40-px person below the evaluator's minimum size. Frame 2: car and person.
FRAMES = {
    STEMS[0]: _frame_ids([(5, 25, 5, 30, 26000), (30, 60, 40, 55, 24000),
                          (10, 40, 80, 120, 26001), (50, 60, 100, 120, 26),
                          (2, 7, 60, 68, 24001)]),
    STEMS[1]: _frame_ids([(5, 45, 5, 35, 26000), (20, 60, 60, 70, 24000)]),
}


def _write_root(root, frames, split="val", images=False):
    city = root / "gtFine" / split / CITY
    city.mkdir(parents=True)
    for stem, ids in frames.items():
        assert cv2.imwrite(str(city / f"{stem}_gtFine_instanceIds.png"), ids)
        if images:
            img_dir = root / "leftImg8bit" / split / CITY
            img_dir.mkdir(parents=True, exist_ok=True)
            rgb = np.full((*ids.shape, 3), 128, np.uint8)
            assert cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), rgb)
    return root


@pytest.fixture(scope="module")
def gt_root(tmp_path_factory):
    return _write_root(tmp_path_factory.mktemp("cityscapes"), FRAMES)


def _gt_instances(ids, shift_cols=0):
    """Every instance (ids >= 1000) as a prediction with score 1, optionally shifted."""
    return [(np.roll(ids == i, shift_cols, axis=1), int(i) // 1000, 1.0)
            for i in np.unique(ids) if i >= 1000]


def _write_all(pred_dir, per_stem):
    for stem, instances in per_stem.items():
        evaluation.write_cityscapes_results(pred_dir, stem, instances)
    return pred_dir


# --- results format ---------------------------------------------------------------------

def test_results_format_is_what_the_evaluator_reads(tmp_path):
    mask = np.zeros((H, W), bool)
    mask[2:5, 3:7] = True
    empty = np.zeros((H, W), bool)
    txt = evaluation.write_cityscapes_results(
        tmp_path, f"{STEMS[0]}_leftImg8bit.png",
        [(mask, CAR, 0.25), (empty, PERSON, 0.5), (mask.astype(np.uint8), BUS, 1.0)])
    assert txt == tmp_path / f"{STEMS[0]}_pred.txt"
    # The empty mask is skipped; indices keep their instance's position.
    assert txt.read_text().splitlines() == [
        f"masks/{STEMS[0]}_0000.png 26 0.25",
        f"masks/{STEMS[0]}_0002.png 28 1.0",
    ]
    png = cv2.imread(str(tmp_path / "masks" / f"{STEMS[0]}_0000.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (H, W)
    np.testing.assert_array_equal(png, mask.astype(np.uint8) * 255)
    # The evaluator's own reader parses every line.
    args = cityscapes_eval._evaluator_args(tmp_path)
    info = cs_eval.readPredInfo(str(txt), args)
    assert sorted((v["labelID"], v["conf"]) for v in info.values()) == [(26, 0.25), (28, 1.0)]


def test_frame_without_instances_gets_an_empty_file(tmp_path):
    txt = evaluation.write_cityscapes_results(tmp_path, STEMS[1], [])
    assert txt.read_text() == ""


@pytest.mark.parametrize("instance, match", [
    ((np.ones((H, W), np.float32), CAR, 1.0), "dtype float32"),
    ((np.ones((H, W, 1), bool), CAR, 1.0), "shape"),
    ((np.ones((H, W), bool), 13, 1.0), "not trainIds"),  # trainId 13 is car
    ((np.ones((H, W), bool), CAR, float("nan")), "not finite"),
])
def test_results_writer_refuses_bad_instances(tmp_path, instance, match):
    with pytest.raises(UserInputError, match=match):
        evaluation.write_cityscapes_results(tmp_path, STEMS[0], [instance])
    assert not (tmp_path / f"{STEMS[0]}_pred.txt").exists()


def test_frame_stem():
    assert evaluation.frame_stem("a/b/aachen_000000_000019_gtFine_instanceIds.png") == \
        "aachen_000000_000019"
    assert evaluation.frame_stem("aachen_000000_000019") == "aachen_000000_000019"
    with pytest.raises(UserInputError, match="<city>_<seq>_<frame>"):
        evaluation.frame_stem("frame_0001.png")


# --- the official evaluator -------------------------------------------------------------

def test_predictions_equal_to_ground_truth_score_100(gt_root, tmp_path):
    pred = _write_all(tmp_path, {s: _gt_instances(ids) for s, ids in FRAMES.items()})
    result = evaluation.evaluate_predictions(gt_root, pred)
    assert result["AP"] == pytest.approx(100.0) and result["AP50"] == pytest.approx(100.0)
    assert result["num_images"] == 2
    assert list(result["per_class"]) == list(classes.THING_CLASSES)
    for name in ("car", "person"):
        assert result["per_class"][name] == pytest.approx({"AP": 100.0, "AP50": 100.0})
    # No ground truth: nan, and left out of the mean.
    assert math.isnan(result["per_class"]["bus"]["AP"])


def test_shift_lowers_ap_but_not_ap50(gt_root, tmp_path):
    # Frame 1's 20x25 car (id 26000) moves by 3 columns: IoU = 22/28 = 0.786 passes the
    # thresholds 0.50..0.75 and fails 0.80..0.95, so only the car class loses AP.
    per_stem = {s: _gt_instances(ids) for s, ids in FRAMES.items()}
    moved = FRAMES[STEMS[0]] == 26000
    per_stem[STEMS[0]] = [(np.roll(m, 3, axis=1) if (m == moved).all() else m, label, score)
                          for m, label, score in per_stem[STEMS[0]]]
    pred = _write_all(tmp_path, per_stem)
    result = evaluation.evaluate_predictions(gt_root, pred)
    car_row = result["per_class"]["car"]
    assert car_row["AP50"] == pytest.approx(100.0)
    assert 50.0 < car_row["AP"] < 100.0
    assert result["per_class"]["person"]["AP"] == pytest.approx(100.0)
    assert result["AP"] == pytest.approx((car_row["AP"] + 100.0) / 2)


def test_single_shifted_instance_ap_is_the_share_of_passed_thresholds(tmp_path):
    ids = _frame_ids([(5, 25, 5, 30, 26000)])  # a 20x25 car
    root = _write_root(tmp_path / "gt", {STEMS[0]: ids})
    pred = _write_all(tmp_path / "pred", {STEMS[0]: _gt_instances(ids, shift_cols=3)})
    result = evaluation.evaluate_predictions(root, pred)
    # IoU 22/28 = 0.786 passes 0.50, 0.55, ..., 0.75: AP = 6/10.
    assert result["per_class"]["car"] == pytest.approx({"AP": 60.0, "AP50": 100.0})
    assert result["AP"] == pytest.approx(60.0)


def test_half_masks_miss_everything(gt_root, tmp_path):
    # Half of each instance: IoU 0.5 is not above the lowest threshold 0.5.
    def halves(ids):
        out = []
        for mask, label, score in _gt_instances(ids):
            rows = np.flatnonzero(mask.any(axis=1))
            half = mask.copy()
            half[rows[0] + len(rows) // 2:] = False
            out.append((half, label, score))
        return out

    pred = _write_all(tmp_path, {s: halves(ids) for s, ids in FRAMES.items()})
    result = evaluation.evaluate_predictions(gt_root, pred)
    assert result["AP"] == 0.0 and result["AP50"] == 0.0


def test_predictions_on_ignored_regions_are_not_false_positives(gt_root, tmp_path):
    per_stem = {s: _gt_instances(ids) for s, ids in FRAMES.items()}
    group = FRAMES[STEMS[0]] == 26  # cargroup, plain label id
    per_stem[STEMS[0]].append((group, CAR, 1.0))
    pred = _write_all(tmp_path, per_stem)
    assert evaluation.evaluate_predictions(gt_root, pred)["AP"] == pytest.approx(100.0)


def _stat(path):
    return os.stat(path).st_mtime_ns if os.path.exists(path) else None


def test_evaluation_leaves_no_trace(gt_root, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    pred = _write_all(tmp_path / "pred", {s: _gt_instances(ids) for s, ids in FRAMES.items()})
    before = {k: v.copy() if isinstance(v, np.ndarray) else v
              for k, v in vars(cs_eval.args).items()}
    cache_before = _stat(before["gtInstancesFile"])
    had_in1d = hasattr(np, "in1d")
    writer = cs_eval.writeDict2JSON
    for _ in range(2):  # a second call must not reuse the first one's state
        assert evaluation.evaluate_predictions(gt_root, pred)["AP"] == pytest.approx(100.0)
    assert os.getcwd() == str(work)
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in pred.iterdir()) == ["masks", *(f"{s}_pred.txt" for s in STEMS)]
    assert _stat(before["gtInstancesFile"]) == cache_before  # no cache in site-packages
    assert hasattr(np, "in1d") == had_in1d
    assert cs_eval.writeDict2JSON is writer
    after = vars(cs_eval.args)
    assert sorted(after) == sorted(before)
    for k, v in before.items():
        np.testing.assert_equal(after[k], v)


def test_evaluator_errors_become_user_input_errors(gt_root, tmp_path):
    cwd = os.getcwd()
    with pytest.raises(UserInputError, match="does not exist"):
        evaluation.evaluate_predictions(gt_root, tmp_path / "missing")
    evaluation.write_cityscapes_results(tmp_path, STEMS[0], [])
    with pytest.raises(UserInputError, match=f"no prediction for ground truth .*{STEMS[1]}"):
        evaluation.evaluate_predictions(gt_root, tmp_path)
    (tmp_path / f"{STEMS[1]}_pred.txt").write_text("only two\n")
    with pytest.raises(UserInputError, match="Invalid prediction file.*fix: write lines"):
        evaluation.evaluate_predictions(gt_root, tmp_path)
    (tmp_path / f"{STEMS[1]}_pred.txt").write_text("masks/missing.png 26 1.0\n")
    with pytest.raises(UserInputError, match="could not read a predicted mask"):
        evaluation.evaluate_predictions(gt_root, tmp_path)
    assert os.getcwd() == cwd


def test_wrongly_sized_masks_are_reported(gt_root, tmp_path):
    small = np.ones((H // 2, W // 2), bool)
    _write_all(tmp_path, {s: [(small, CAR, 1.0)] for s in STEMS})
    with pytest.raises(UserInputError, match="full ground-truth resolution"):
        evaluation.evaluate_predictions(gt_root, tmp_path)


def test_ground_truth_lookup(gt_root, tmp_path):
    files = evaluation.gt_instance_files(gt_root)
    assert [evaluation.frame_stem(f) for f in files] == list(STEMS)
    assert evaluation.gt_instance_files(files[:1]) == files[:1]
    with pytest.raises(UserInputError, match="no gtFine/train"):
        evaluation.gt_instance_files(gt_root, split="train")
    with pytest.raises(UserInputError, match="is not a folder"):
        evaluation.gt_instance_files(tmp_path / "nowhere")
    eight_bit = tmp_path / f"{STEMS[0]}_gtFine_instanceIds.png"
    cv2.imwrite(str(eight_bit), np.zeros((4, 4), np.uint8))
    with pytest.raises(UserInputError, match="16-bit"):
        evaluation.read_instance_ids(eight_bit)


# --- per-frame helpers ------------------------------------------------------------------

def test_gt_instances_index_only_evaluated_classes():
    ids = np.array([[0, 26000, 26000, 29000],   # car, caravan (not evaluated)
                    [26, 24001, 24001, 7],      # cargroup, person, road
                    [33000, 33000, 24001, 0]], np.int32)  # bicycle
    index_map, labels = oracles._gt_instances(ids)
    np.testing.assert_array_equal(index_map, [[0, 2, 2, 0], [0, 1, 1, 0], [3, 3, 1, 0]])
    np.testing.assert_array_equal(labels, [PERSON, CAR, 33])


def test_majority_thing_labels_ignore_background_votes():
    label_ids = np.array([[7, 7, 7, 26],
                          [24, 24, 26, 26],
                          [7, 7, 33, 11]])
    instance_map = np.array([[1, 1, 1, 1],
                             [1, 1, 2, 2],
                             [3, 3, 4, 4]])
    # 1: road x3, car x1, person x2 -> person; 2: car x2 -> car; 3: road only -> none;
    # 4: bicycle x1, building x1 -> bicycle.
    np.testing.assert_array_equal(
        oracles._majority_thing_labels(instance_map, label_ids), [PERSON, CAR, 0, 33])


def test_best_iou():
    gt_map = np.array([[1, 1, 0, 2], [1, 1, 0, 2]])
    pred_map = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    # GT 1: inter 2, union 4 + 3 - 2 = 5; GT 2: no overlap.
    np.testing.assert_allclose(oracles._best_iou(gt_map, 2, pred_map), [0.4, 0.0])
    np.testing.assert_allclose(oracles._best_iou(gt_map, 2, np.zeros_like(gt_map)),
                               [0.0, 0.0])


# --- tables -----------------------------------------------------------------------------

def test_format_table_and_save_result(tmp_path):
    result = {"AP": 59.25, "AP50": 97.8,
              "per_class": {"person": {"AP": 45.7, "AP50": 96.3},
                            "rider": {"AP": float("nan"), "AP50": float("nan")}},
              "classification": {"per_class": {"person": {"instances": 4, "correct": 3,
                                                          "accuracy": 75.0}},
                                 "total": {"instances": 4, "correct": 3, "accuracy": 75.0}}}
    text = evaluation.format_table(result, title="Table I (right)")
    lines = text.splitlines()
    assert lines[0] == "Table I (right)"
    assert lines[2].split() == ["person", "45.7", "96.3"]
    assert lines[3].split() == ["rider", "n/a", "n/a"]
    assert lines[4].split() == ["mean", "59.2", "97.8"]
    assert lines[-1].split() == ["total", "4", "3", "75.0"]
    path = evaluation.save_result(result, tmp_path / "out" / "table.json")
    loaded = json.loads(path.read_text())
    assert loaded["per_class"]["rider"] == {"AP": None, "AP50": None}
    assert loaded["AP"] == 59.25
    detection = {"instances": 8, "per_threshold": [
        {"threshold": 0.25, "detections": 6, "accuracy": 75.0}]}
    assert evaluation.format_table(detection).splitlines()[1].split() == ["25", "6", "75.0"]


# --- oracles ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from dcme_keras.data import synthetic

    root = tmp_path_factory.mktemp("synthetic") / "cityscapes"
    synthetic.write_dataset(root, frames=6, size=(128, 256), val_fraction=0.5,
                            progress=False)
    return root


def test_gt_oracle_is_exact_at_full_scale_and_loses_ap_when_downscaled(synthetic_root):
    full = evaluation.gt_oracle(synthetic_root, "val", 1.0, progress=False)
    assert full["num_images"] == 3
    scored = [row for row in full["per_class"].values() if not math.isnan(row["AP"])]
    assert len(scored) >= 3
    assert all(row == pytest.approx({"AP": 100.0, "AP50": 100.0}) for row in scored)
    half = evaluation.gt_oracle(synthetic_root, "val", 0.5, progress=False)
    quarter = evaluation.gt_oracle(synthetic_root, "val", 0.25, progress=False,
                                   max_images=2)
    assert 30.0 < half["AP"] < 95.0
    assert half["AP50"] > 90.0
    assert quarter["num_images"] == 2 and quarter["AP"] < half["AP"]
    with pytest.raises(UserInputError, match="scale"):
        evaluation.gt_oracle(synthetic_root, "val", 0.0)


def _exact_outputs(ids, scale=1):
    """What a perfect network gives at 1/scale of the ground truth's resolution."""
    small = inference.resize_nearest(ids, (H // scale, W // scale))
    cells = grid.grid_labels(grid.instance_ids_to_label_ids(small), 16 // scale)
    return {keys.DCME: codec_np.encode_dcme(small),
            keys.GRID: 10.0 * np.eye(9, dtype=np.float32)[cells]}


@pytest.mark.parametrize("scale", [1, 2])
def test_instance_oracle_with_a_perfect_grid(gt_root, scale):
    # At half resolution the CMs must be mapped to the smaller grid to land right.
    outputs = {s: _exact_outputs(ids, scale) for s, ids in FRAMES.items()}
    result = evaluation.instance_oracle(gt_root, outputs, progress=False)
    assert result["AP"] == pytest.approx(100.0)
    table = result["classification"]
    # Persons: 24000 and the 40-px 24001 in frame 1, 24000 in frame 2; cars: 2 + 1.
    assert table["per_class"]["person"] == {"instances": 3, "correct": 3, "accuracy": 100.0}
    assert table["per_class"]["car"] == {"instances": 3, "correct": 3, "accuracy": 100.0}
    assert table["total"] == {"instances": 6, "correct": 6, "accuracy": 100.0}
    assert math.isnan(table["per_class"]["bus"]["accuracy"])


def test_instance_oracle_counts_misclassifications(gt_root):
    outputs = {}
    for stem, ids in FRAMES.items():
        out = _exact_outputs(ids)
        out[keys.GRID] = np.zeros_like(out[keys.GRID])
        out[keys.GRID][..., 1 + classes.THING_CLASSES.index("car")] = 4.0  # all cars
        outputs[stem] = out
    result = evaluation.instance_oracle(gt_root, outputs, progress=False)
    table = result["classification"]
    assert table["per_class"]["person"]["correct"] == 0
    assert table["per_class"]["car"]["correct"] == 3
    assert table["total"]["accuracy"] == pytest.approx(50.0)
    assert result["per_class"]["person"]["AP"] == 0.0  # persons exist, none predicted
    assert result["per_class"]["car"]["AP50"] < 100.0  # persons labelled car are FPs


def test_class_oracle_and_full_pipeline_on_exact_outputs(gt_root):
    outputs = {s: _exact_outputs(ids) for s, ids in FRAMES.items()}
    for run in (evaluation.class_oracle, evaluation.evaluate_outputs):
        result = run(gt_root, outputs, progress=False)
        assert result["AP"] == pytest.approx(100.0), run.__name__
        assert result["per_class"]["person"]["AP"] == pytest.approx(100.0)


def test_class_oracle_and_detection_accuracy_see_a_missed_instance(gt_root):
    outputs = {s: _exact_outputs(ids) for s, ids in FRAMES.items()}
    missed = FRAMES[STEMS[1]] == 26000
    outputs[STEMS[1]][keys.DCME][missed] = 0.0  # the decoder cannot find this car
    result = evaluation.class_oracle(gt_root, outputs, progress=False)
    assert result["per_class"]["person"]["AP"] == pytest.approx(100.0)
    assert 0.0 < result["per_class"]["car"]["AP"] < 100.0  # 2 of 3 cars found
    detection = evaluation.detection_accuracy(gt_root, outputs, progress=False)
    assert detection["instances"] == 6
    assert [(row["threshold"], row["detections"]) for row in detection["per_threshold"]] == \
        [(0.25, 5), (0.5, 5), (0.75, 5)]
    assert detection["per_threshold"][0]["accuracy"] == pytest.approx(500 / 6)


def test_outputs_from_a_function_of_the_image(tmp_path):
    ids = FRAMES[STEMS[1]]
    root = _write_root(tmp_path / "cs", {STEMS[1]: ids}, images=True)
    seen = []

    def network(image):
        seen.append((image.shape, image.dtype))
        return _exact_outputs(ids)

    assert evaluation.evaluate_outputs(root, network, progress=False)["AP"] == \
        pytest.approx(100.0)
    assert seen == [((H, W, 3), np.uint8)]
    no_images = _write_root(tmp_path / "bare", {STEMS[1]: ids})
    with pytest.raises(UserInputError, match="cannot read the input image"):
        evaluation.class_oracle(no_images, network, progress=False)
    with pytest.raises(UserInputError, match="no network outputs for frame"):
        evaluation.class_oracle(no_images, {}, progress=False)


def _two_cars_and_a_person():
    """[40, 60] ids: cars 26000 (400 px) and 26001 (25 px), person 24000 (400 px)."""
    ids = np.zeros((40, 60), np.int32)
    ids[5:25, 5:25] = 26000
    ids[30:35, 40:45] = 26001
    ids[5:25, 35:55] = 24000
    ids[0:3, 50:60] = 26  # a car group: never an instance
    return ids


def test_instance_detections_counts_matches_of_large_enough_instances():
    ids = _two_cars_and_a_person()
    exact, _ = codec_np.decode_dcme(codec_np.encode_dcme(ids))
    assert evaluation.instance_detections(ids, exact) == (3, 3)
    assert evaluation.instance_detections(ids, exact, min_area=100) == (2, 2)
    # One decoded instance covering both cars and the person matches none at IoU 0.5.
    merged = (ids >= 1000).astype(np.int32)
    assert evaluation.instance_detections(ids, merged) == (0, 3)
    assert evaluation.instance_detections(ids, np.zeros_like(ids)) == (0, 3)


def test_instance_detections_refuses_maps_of_other_shapes():
    with pytest.raises(UserInputError, match="must be \\[H, W\\] maps of one shape"):
        evaluation.instance_detections(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(UserInputError, match="iou_threshold 0.0 must be in"):
        evaluation.instance_detections(np.zeros((4, 4)), np.zeros((4, 4)), iou_threshold=0.0)


def test_dcme_scores_of_the_truth_and_of_the_zero_field():
    ids = _two_cars_and_a_person()[None]
    true = codec_np.encode_dcme(ids[0])[None]
    perfect = evaluation.dcme_scores(true, ids)
    assert perfect["vector_error"] == 0.0 and perfect["detection_accuracy"] == 1.0
    assert perfect["vector_length"] == perfect["true_length"] > 0
    assert perfect["instances"] == 3
    zero = evaluation.dcme_scores(np.zeros_like(true), ids, gt_foreground=True)
    assert zero["vector_length"] == 0.0
    assert zero["vector_error"] == pytest.approx(perfect["true_length"])
    with pytest.raises(UserInputError, match="must be \\[B, H, W, 2\\] and \\[B, H, W\\]"):
        evaluation.dcme_scores(true[0], ids)


def test_unmatched_instances_counts_fragments_and_background_by_hand():
    ids = np.zeros((6, 8), np.int32)
    ids[0:4, 0:4] = 26000  # a car of 16 px
    decoded = np.zeros((6, 8), np.int32)
    decoded[0:4, 0:3] = 1  # 12 of its 16 px: IoU 0.75, a match
    decoded[0:4, 3] = 2  # 4 of them: IoU 0.25, a fragment
    decoded[5, 5:8] = 3  # background
    assert oracles.unmatched_instances(ids, decoded) == 2
    assert oracles.unmatched_instances(ids, decoded, iou_threshold=0.8) == 3
    assert oracles.unmatched_instances(ids, np.zeros_like(decoded)) == 0
    with pytest.raises(UserInputError, match="one shape"):
        oracles.unmatched_instances(ids, decoded[:5])


def test_dcme_scores_decode_within_the_foreground_head():
    ids = np.zeros((32, 48), np.int32)
    ids[4:8, 4:9] = 24000  # 20 px: found within a mask, too few net votes without one
    ids[15:30, 20:44] = 26000
    dcme = codec_np.encode_dcme(ids) + np.random.default_rng(6).normal(
        0.0, 0.5, (32, 48, 2)).astype(np.float32)
    inside = np.where(ids >= 1000, 5.0, -5.0)[None, ..., None].astype(np.float32)
    with_head = oracles.dcme_scores(dcme[None], ids[None], foreground_logits=inside)
    without = oracles.dcme_scores(dcme[None], ids[None])
    assert with_head["detection_accuracy"] == 1.0 and without["detection_accuracy"] == 0.5
    nothing = oracles.dcme_scores(dcme[None], ids[None], foreground_logits=np.full_like(inside, -1.0))
    assert nothing["detection_accuracy"] == 0.0
