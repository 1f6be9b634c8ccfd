"""Tests of the synthetic Cityscapes generator and its `dcme-keras synth` command."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from dcme_keras.classes import THING_LABEL_IDS
from dcme_keras.data import synthetic
from dcme_keras.errors import UserInputError

SIZE = (128, 256)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Five small frames with the default cities: 4 train, 1 val."""
    out = tmp_path_factory.mktemp("synth") / "cityscapes"
    summary = synthetic.write_dataset(out, frames=5, size=SIZE, seed=3, progress=False)
    return out, summary


def _official(json_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """cityscapesscripts' instance and label images of a polygons file (PITFALLS: the
    mode-I image cannot be saved under Pillow 13, so it is compared in memory)."""
    annotation = Annotation()
    annotation.fromJsonFile(str(json_path))
    instance = np.asarray(createInstanceImage(annotation, "ids")).astype(np.uint16)
    return instance, np.asarray(createLabelImage(annotation, "ids"))


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_exactly_cityscapes(dataset):
    out, summary = dataset
    stems = {
        "train": [("synthburg", "synthburg_000000_000019"),
                  ("synthingen", "synthingen_000000_000019"),
                  ("synthburg", "synthburg_000001_000019"),
                  ("synthingen", "synthingen_000001_000019")],
        "val": [("synthdorf", "synthdorf_000000_000019")],
    }
    expected = {"dcme_synth.json"}
    for split, entries in stems.items():
        for city, stem in entries:
            expected.add(f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
            for suffix in ("polygons.json", "instanceIds.png", "labelIds.png"):
                expected.add(f"gtFine/{split}/{city}/{stem}_gtFine_{suffix}")
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == expected
    assert summary["frames"] == {"train": 4, "val": 1}
    assert json.loads((out / "dcme_synth.json").read_text()) == summary
    assert synthetic.is_synthetic_dataset(out)


def test_png_types_match_the_real_data(dataset):
    out, _ = dataset
    stem = out / "gtFine/train/synthburg/synthburg_000000_000019_gtFine"
    with Image.open(f"{stem}_instanceIds.png") as im:
        assert im.mode == "I;16"
        assert im.size == (SIZE[1], SIZE[0])
    with Image.open(f"{stem}_labelIds.png") as im:
        assert im.mode == "L"
    image = cv2.imread(str(out / "leftImg8bit/train/synthburg/synthburg_000000_000019_"
                           "leftImg8bit.png"), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
    annotation = json.loads(Path(f"{stem}_polygons.json").read_text())
    assert (annotation["imgHeight"], annotation["imgWidth"]) == SIZE
    assert set(annotation) == {"imgHeight", "imgWidth", "objects"}


def test_ground_truth_equals_cityscapesscripts(dataset):
    out, _ = dataset
    files = sorted(out.glob("gtFine/*/*/*_gtFine_polygons.json"))
    assert len(files) == 5
    for json_path in files:
        stem = str(json_path)[: -len("polygons.json")]
        instance = cv2.imread(stem + "instanceIds.png", cv2.IMREAD_UNCHANGED)
        label = cv2.imread(stem + "labelIds.png", cv2.IMREAD_UNCHANGED)
        assert instance.dtype == np.uint16 and label.dtype == np.uint8
        official_instance, official_label = _official(json_path)
        np.testing.assert_array_equal(instance, official_instance)
        np.testing.assert_array_equal(label, official_label)
        # PITFALLS "Real Cityscapes ground truth": holds on every pixel of the real data.
        np.testing.assert_array_equal(np.where(instance >= 1000, instance // 1000, instance),
                                      label)
        assert (instance >= 1000).any()


def test_same_seed_same_bytes_other_seed_other_bytes(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    synthetic.write_dataset(again, frames=5, size=SIZE, seed=3, progress=False)
    assert _tree_digest(again) == _tree_digest(out)
    other = tmp_path / "other"
    synthetic.write_dataset(other, frames=5, size=SIZE, seed=4, progress=False)
    first, second = _tree_digest(out), _tree_digest(other)
    assert first.keys() == second.keys()
    image = "leftImg8bit/train/synthburg/synthburg_000000_000019_leftImg8bit.png"
    assert first[image] != second[image]


def test_rerun_replaces_a_previous_output(dataset, tmp_path):
    out = tmp_path / "data"
    synthetic.write_dataset(out, frames=5, size=SIZE, progress=False)
    summary = synthetic.write_dataset(out, frames=2, size=SIZE, progress=False)
    assert summary["frames"] == {"train": 1, "val": 1}
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 2


def test_rasterize_follows_the_official_rules():
    annotation = {"imgHeight": 4, "imgWidth": 6, "objects": [
        {"label": "road", "polygon": [[0, 0], [5, 0], [5, 3], [0, 3]]},
        {"label": "car", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]]},
        # deleted: not drawn and not counted, so the next car is 26001
        {"label": "car", "polygon": [[3, 0], [5, 0], [5, 1], [3, 1]], "deleted": 1},
        {"label": "car", "polygon": [[2, 1], [3, 1], [3, 3], [2, 3]]},
        {"label": "person", "polygon": [[5, 0], [5, 1], [4, 1]]},
        {"label": "cargroup", "polygon": [[4, 2], [5, 2], [5, 3], [4, 3]]},
        # negative label id: never drawn
        {"label": "license plate", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
        {"label": "traffic sign", "polygon": [[0, 3], [1, 3], [1, 3]]},
    ]}
    instance, label = synthetic.rasterize(annotation)
    expected = np.array([[26000, 26000, 26000, 7, 7, 24000],
                         [26000, 26000, 26001, 26001, 24000, 24000],
                         [26000, 26000, 26001, 26001, 26, 26],
                         [20, 20, 26001, 26001, 26, 26]], np.uint16)
    np.testing.assert_array_equal(instance, expected)
    assert instance.dtype == np.uint16 and label.dtype == np.uint8
    np.testing.assert_array_equal(label, np.where(expected >= 1000, expected // 1000, expected))
    official = Annotation()
    official.fromJsonText(json.dumps(annotation))
    np.testing.assert_array_equal(
        np.asarray(createInstanceImage(official, "ids")).astype(np.uint16), instance)


@pytest.mark.parametrize("obj, message", [
    ({"label": "spaceship", "polygon": [[0, 0], [1, 0], [1, 1]]}, "not a Cityscapes class"),
    ({"label": "car", "polygon": [[0, 0]]}, "cannot draw"),
])
def test_rasterize_rejects_what_the_script_rejects(obj, message):
    with pytest.raises(UserInputError, match=message):
        synthetic.rasterize({"imgHeight": 2, "imgWidth": 2, "objects": [obj]})


def test_frames_hold_all_classes_and_agree_with_their_polygons():
    classes, counts = set(), []
    for i in range(24):
        image, annotation = synthetic.render_frame(np.random.default_rng([7, i]), SIZE)
        assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
        for obj in annotation["objects"]:
            poly = np.asarray(obj["polygon"])
            assert poly.dtype.kind == "i" and len(poly) >= 3
            assert poly.min() >= 0 and (poly.max(0) < (SIZE[1], SIZE[0])).all()
        instance, _ = synthetic.rasterize(annotation)
        ids = np.unique(instance[instance >= 1000])
        classes |= set((ids // 1000).tolist())
        counts.append(len(ids))
    assert classes == set(THING_LABEL_IDS)
    assert min(counts) >= 3 and max(counts) <= 30 and np.mean(counts) >= 6


def test_full_size_frame_equals_cityscapesscripts():
    image, annotation = synthetic.render_frame(np.random.default_rng(5))
    assert image.shape == (*synthetic.DEFAULT_SIZE, 3)
    instance, label = synthetic.rasterize(annotation)
    official = Annotation()
    official.fromJsonText(json.dumps(annotation))
    np.testing.assert_array_equal(
        np.asarray(createInstanceImage(official, "ids")).astype(np.uint16), instance)
    np.testing.assert_array_equal(np.asarray(createLabelImage(official, "ids")), label)
    assert len(np.unique(instance[instance >= 1000])) >= 5


def test_render_is_a_function_of_the_generator():
    first = synthetic.render_frame(np.random.default_rng(11), (64, 96))
    second = synthetic.render_frame(np.random.default_rng(11), (64, 96))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": 0}, "frames must be a positive integer"),
    ({"frames": 2, "size": (16, 256)}, "too small"),
    ({"frames": 2, "val_fraction": 1.5}, "val_fraction"),
    ({"frames": 2, "seed": -1}, "seed must be a non-negative integer"),
    ({"frames": 2, "cities": {"train": ["a_b"], "val": ["c"]}}, "lowercase"),
    ({"frames": 2, "cities": {"train": ["a"], "val": ["a"]}}, "overlap"),
    ({"frames": 2, "cities": {"train": ["a"]}}, "exactly the splits"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserInputError, match=message):
        synthetic.write_dataset(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_split_sizes():
    plan = synthetic._frame_plan(1, 0.25, synthetic.DEFAULT_CITIES)
    assert plan == [("train", "synthburg", 0)]
    plan = synthetic._frame_plan(2, 0.0, synthetic.DEFAULT_CITIES)
    assert [p[0] for p in plan] == ["train", "val"]
    plan = synthetic._frame_plan(8, 1.0, synthetic.DEFAULT_CITIES)
    assert [p[0] for p in plan].count("train") == 1


def test_refuses_a_foreign_folder_and_a_failure_leaves_nothing(tmp_path, monkeypatch):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserInputError, match="not empty"):
        synthetic.write_dataset(foreign, frames=2, size=SIZE, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]

    calls = []

    def failing_write(path, array):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full")
        cv2.imwrite(str(path), array)

    monkeypatch.setattr(synthetic, "_write_png", failing_write)
    with pytest.raises(OSError, match="disk full"):
        synthetic.write_dataset(tmp_path / "new", frames=3, size=SIZE, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.main", "synth", *args],
                          capture_output=True, text=True, check=False)


def test_cli_writes_frames(tmp_path):
    out = tmp_path / "cli"
    result = _cli(f"--out={out}", "--frames=3", "--size=64x128", "--seed=1", "--noprogress")
    assert result.returncode == 0, result.stderr
    assert "train 2, val 1 frames" in result.stdout
    assert len(list(out.glob("leftImg8bit/*/*/*_leftImg8bit.png"))) == 3
    summary = json.loads((out / "dcme_synth.json").read_text())
    assert summary["size"] == [64, 128] and summary["seed"] == 1


@pytest.mark.parametrize("flag, message", [
    ("--size=64by128", "size '64by128' is not HxW"),
    ("--size=8x8", "too small"),
])
def test_cli_bad_size_is_one_line_and_exit_2(tmp_path, flag, message):
    result = _cli(f"--out={tmp_path / 'x'}", flag, "--noprogress")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "x").exists()
