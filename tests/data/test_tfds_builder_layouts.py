"""cityscapes_instances on hand-made Cityscapes-layout data: folders, zips, errors, CLI.

The frames here are drawn by hand with NumPy and cv2, not by dcme_keras.data.synthetic,
so the builder is checked against data its sibling generator did not write. Every object
is an axis-aligned rectangle, whose pixel counts can be worked out by hand: PIL (and so
cityscapesscripts) fills a polygon including its boundary, so a rectangle from x0 to x1
covers x1 - x0 + 1 columns.
"""

import collections
import os
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from tfds_cityscapes.cityscapes_instances import Builder
from tfds_cityscapes.cityscapes_instances import cityscapes_instances_dataset_builder as cib

H, W = 32, 48
_DUMMY_DATA = Path(cib.__file__).parent / "dummy_data"


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# (label, polygon, extra keys) in file order; the comment is the id it rasterizes to.
_OBJECTS = [
    ("road", _rect(0, 0, 47, 31), {}),  # 7
    ("vegetation", _rect(0, 0, 9, 3), {}),  # 21, 10x4
    ("vegetation", _rect(8, 2, 13, 5), {}),  # 21, 6x4, drawn over 2x2 of the first
    ("car", _rect(6, 10, 8, 12), {}),  # 26000, hidden by the next car
    ("car", _rect(4, 8, 15, 15), {}),  # 26001, 12x8
    ("car", _rect(30, 2, 35, 5), {"deleted": 1}),  # skipped, takes no k
    ("person", _rect(20, 6, 25, 20), {}),  # 24000, 6x15, split in two by the pole
    ("pole", _rect(22, 4, 23, 25), {}),  # 17, 2x22
    ("cargroup", _rect(30, 20, 44, 28), {}),  # 26, 15x9, a group region
    ("license plate", _rect(8, 12, 11, 13), {}),  # label id -1: never drawn
    ("traffic sign", _rect(40, 10, 43, 13), {}),  # 20, 4x4, a class without instances
]

#: What the builder must read from the polygons, one row per drawn object:
#: id, label, area, is_crowd, pixel box (row0, col0, row1, col1; end exclusive).
_EXPECTED_FROM_POLYGONS = [
    (7, 7, 1125, False, (0, 0, 32, 48)),
    (21, 21, 36, False, (0, 0, 4, 10)),
    (21, 21, 24, False, (2, 8, 6, 14)),
    (26000, 26, 0, False, (10, 6, 13, 9)),  # fully occluded: area 0, polygon box
    (26001, 26, 96, False, (8, 4, 16, 16)),
    (24000, 24, 60, False, (6, 20, 21, 26)),
    (17, 17, 44, False, (4, 22, 26, 24)),
    (26, 26, 135, True, (20, 30, 29, 45)),
    (20, 20, 16, False, (10, 40, 14, 44)),
]
#: The same frame read from instanceIds alone: one object per distinct non-zero id.
_EXPECTED_FROM_IDS = [
    (7, 7, 1125, False, (0, 0, 32, 48)),
    (17, 17, 44, False, (4, 22, 26, 24)),
    (20, 20, 16, False, (10, 40, 14, 44)),
    (21, 21, 60, False, (0, 0, 6, 14)),
    (26, 26, 135, True, (20, 30, 29, 45)),
    (24000, 24, 60, False, (6, 20, 21, 26)),
    (26001, 26, 96, False, (8, 4, 16, 16)),
]


def _instance_ids() -> np.ndarray:
    """The frame's instanceIds [H, W] uint16, painted by hand in drawing order."""
    ids = np.full((H, W), 7, np.uint16)
    ids[0:4, 0:10] = 21
    ids[2:6, 8:14] = 21
    ids[8:16, 4:16] = 26001
    ids[6:21, 20:26] = 24000
    ids[4:26, 22:24] = 17
    ids[20:29, 30:45] = 26
    ids[10:14, 40:44] = 20
    return ids


def _annotation() -> dict:
    return {"imgHeight": H, "imgWidth": W,
            "objects": [{"label": label, "polygon": polygon, **extra}
                        for label, polygon, extra in _OBJECTS]}


def _write_frame(root, split, city, frame, *, polygons, seed):
    """Writes one frame's four (or three) files in the Cityscapes layout under root."""
    stem = f"{city}_000000_{frame:06d}"
    image_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)
    ids = _instance_ids()
    cv2.imwrite(str(image_dir / f"{stem}_leftImg8bit.png"), image)
    cv2.imwrite(str(gt_dir / f"{stem}_gtFine_instanceIds.png"), ids)
    cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"),
                np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8))
    if polygons:
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps(_annotation()))
    return stem, image[..., ::-1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Extracted layout: 2 train frames (with and without polygons), 1 val frame."""
    root = tmp_path_factory.mktemp("extracted")
    images = dict([
        _write_frame(root, "train", "alpha", 1, polygons=True, seed=1),
        _write_frame(root, "train", "beta", 7, polygons=False, seed=2),
        _write_frame(root, "val", "gamma", 3, polygons=True, seed=3),
    ])
    return root, images


@pytest.fixture(scope="module")
def zips(folders, tmp_path_factory):
    """The same frames as the two official archives, with their real member paths."""
    root = tmp_path_factory.mktemp("zipped")
    for top, archive in cib.ARCHIVES.items():
        with zipfile.ZipFile(root / archive, "w") as zf:
            zf.writestr("README", "Cityscapes\n")
            zf.writestr("license.txt", "terms\n")
            for path in sorted((folders[0] / top).rglob("*")):
                zf.write(path, path.relative_to(folders[0]).as_posix())
    return root


def _build(manual_dir, data_dir, config="full"):
    builder = Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _examples(builder, split):
    """{image_id: example} with the ragged polygons as lists of [P, 2] arrays."""
    out = {}
    for ex in builder.as_dataset(split=split):
        ex = dict(ex)
        objects = dict(ex.pop(keys.OBJECTS))
        polygons = [p.numpy() for p in objects.pop(keys.OBJECT_POLYGON)]
        ex = tfds.as_numpy(ex | {keys.OBJECTS: objects})
        ex[keys.OBJECTS][keys.OBJECT_POLYGON] = polygons
        out[ex[keys.IMAGE_ID].decode()] = ex
    return out


def _assert_objects(objects, expected):
    rows = list(zip(*expected))
    np.testing.assert_array_equal(objects[keys.OBJECT_ID], rows[0])
    np.testing.assert_array_equal(objects[keys.OBJECT_LABEL], rows[1])
    np.testing.assert_array_equal(objects[keys.OBJECT_AREA], rows[2])
    np.testing.assert_array_equal(objects[keys.OBJECT_IS_CROWD], rows[3])
    boxes = np.array(rows[4], np.float32) / np.array([H, W, H, W], np.float32)
    np.testing.assert_allclose(objects[keys.OBJECT_BBOX], boxes, atol=1e-6)


@pytest.fixture(scope="module")
def built(folders, tmp_path_factory):
    builder = _build(folders[0], tmp_path_factory.mktemp("tfds"))
    return {split: _examples(builder, split) for split in ("train", "validation")}


def test_fixture_matches_cityscapesscripts_rasterization(tmp_path):
    # The hand-painted PNG is what the official json2instanceImg makes of the JSON, so
    # the expected values below follow the official id rules (deleted, -1, groups).
    path = tmp_path / "x_gtFine_polygons.json"
    path.write_text(json.dumps(_annotation()))
    annotation = Annotation()
    annotation.fromJsonFile(str(path))
    reference = np.asarray(createInstanceImage(annotation, "ids"), np.int64)
    np.testing.assert_array_equal(reference, _instance_ids())


def test_extracted_folders_give_splits_keys_and_images(built, folders):
    _, images = folders
    assert sorted(built["train"]) == ["alpha_000000_000001", "beta_000000_000007"]
    assert sorted(built["validation"]) == ["gamma_000000_000003"]
    for split in built.values():
        for stem, ex in split.items():
            np.testing.assert_array_equal(ex[keys.IMAGE], images[stem])
            assert ex[keys.INSTANCE_IDS].dtype == np.uint16
            np.testing.assert_array_equal(ex[keys.INSTANCE_IDS][..., 0], _instance_ids())
            ids = ex[keys.INSTANCE_IDS][..., 0].astype(np.int64)
            np.testing.assert_array_equal(ex[keys.LABEL_IDS][..., 0],
                                          np.where(ids >= 1000, ids // 1000, ids))


def test_objects_from_polygons(built):
    objects = built["train"]["alpha_000000_000001"][keys.OBJECTS]
    _assert_objects(objects, _EXPECTED_FROM_POLYGONS)
    drawn = [polygon for label, polygon, extra in _OBJECTS
             if not extra and label != "license plate"]
    assert len(objects[keys.OBJECT_POLYGON]) == len(drawn)
    for got, want in zip(objects[keys.OBJECT_POLYGON], drawn):
        np.testing.assert_array_equal(got, np.array(want, np.float32))


def test_png_only_frame_derives_objects_from_instance_ids(built):
    objects = built["train"]["beta_000000_000007"][keys.OBJECTS]
    _assert_objects(objects, _EXPECTED_FROM_IDS)
    assert [p.shape for p in objects[keys.OBJECT_POLYGON]] == [(0, 2)] * len(_EXPECTED_FROM_IDS)


def test_official_zips_give_the_same_examples(built, zips, tmp_path):
    from_zips = _build(zips, tmp_path)
    for split, examples in built.items():
        zipped = _examples(from_zips, split)
        assert sorted(zipped) == sorted(examples)
        for stem, ex in examples.items():
            for key in (keys.IMAGE, keys.INSTANCE_IDS, keys.LABEL_IDS):
                np.testing.assert_array_equal(zipped[stem][key], ex[key])
            for key, value in ex[keys.OBJECTS].items():
                got = zipped[stem][keys.OBJECTS][key]
                assert len(got) == len(value)
                for got_one, want_one in zip(got, value):
                    np.testing.assert_array_equal(got_one, want_one)


def test_half_config_halves_maps_and_polygons_but_not_areas(folders):
    root, _ = folders
    gt = root / "gtFine" / "train" / "alpha" / "alpha_000000_000001"
    example = cib.frame_example(
        (root / "leftImg8bit/train/alpha/alpha_000000_000001_leftImg8bit.png").read_bytes(),
        gt.with_name(gt.name + "_gtFine_instanceIds.png").read_bytes(),
        gt.with_name(gt.name + "_gtFine_labelIds.png").read_bytes(),
        _annotation(), scale=0.5)
    assert example[keys.IMAGE].shape == (H // 2, W // 2, 3)
    # Nearest-exact sampling of a 2x downscale takes the odd source rows and columns.
    np.testing.assert_array_equal(example[keys.INSTANCE_IDS][..., 0], _instance_ids()[1::2, 1::2])
    objects = example[keys.OBJECTS]
    np.testing.assert_array_equal(objects[keys.OBJECT_POLYGON][4],
                                  np.array(_rect(2, 4, 7.5, 7.5), np.float32))
    assert objects[keys.OBJECT_AREA][4] == 96


def test_missing_gtfine_names_the_archive(folders, tmp_path):
    shutil.copytree(folders[0] / "leftImg8bit", tmp_path / "leftImg8bit")
    with pytest.raises(UserInputError, match=r"neither gtFine/ nor gtFine_trainvaltest\.zip"):
        _build(tmp_path, tmp_path / "data")


def test_truncated_zip_asks_for_a_new_download(folders, tmp_path):
    shutil.copytree(folders[0] / "leftImg8bit", tmp_path / "leftImg8bit")
    (tmp_path / "gtFine_trainvaltest.zip").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserInputError, match=r"gtFine_trainvaltest\.zip is not a readable zip"):
        _build(tmp_path, tmp_path / "data")


def test_image_without_its_instance_ids_names_the_file(folders, tmp_path):
    for top in ("leftImg8bit", "gtFine"):
        shutil.copytree(folders[0] / top, tmp_path / top)
    (tmp_path / "leftImg8bit/val/gamma/gamma_000000_000004_leftImg8bit.png").write_bytes(b"")
    with pytest.raises(UserInputError, match=r"2 gtFine file\(s\) of val images are missing "
                       r"from .*gtFine, e\.g\. val/gamma/gamma_000000_000004_gtFine_instanceIds"):
        _build(tmp_path, tmp_path / "data")


def test_polygon_objects_partition_the_pixels_of_each_id_on_dummy_data():
    # dummy_data/ comes from dcme_keras.data.synthetic, whose rasterizer is not ours: the
    # visible areas read from its polygons must add up to its PNG, id by id, and an
    # instance's box must be the same either way.
    frames = sorted((_DUMMY_DATA / "gtFine").rglob("*_gtFine_polygons.json"))
    assert len(frames) == 3
    for path in frames:
        ids = cv2.imread(str(path).replace("polygons.json", "instanceIds.png"),
                         cv2.IMREAD_UNCHANGED)
        from_polygons = cib.objects_from_polygons(json.loads(path.read_text()), ids)
        from_ids = cib.objects_from_instance_ids(ids)
        areas = collections.Counter()
        for object_id, area in zip(from_polygons[keys.OBJECT_ID],
                                   from_polygons[keys.OBJECT_AREA]):
            areas[object_id] += area
        assert +areas == dict(zip(from_ids[keys.OBJECT_ID], from_ids[keys.OBJECT_AREA]))
        boxes = dict(zip(from_ids[keys.OBJECT_ID], from_ids[keys.OBJECT_BBOX]))
        for object_id, box, area in zip(from_polygons[keys.OBJECT_ID],
                                        from_polygons[keys.OBJECT_BBOX],
                                        from_polygons[keys.OBJECT_AREA]):
            if object_id >= 1000 and area:
                assert box == boxes[object_id]


def test_undecodable_png_names_the_file():
    with pytest.raises(UserInputError, match=r"cannot decode broken\.png"):
        cib.frame_example(b"not a png", b"", b"", name="broken.png")


def test_unknown_label_is_refused():
    annotation = {"imgHeight": H, "imgWidth": W,
                  "objects": [{"label": "spaceship", "polygon": _rect(0, 0, 3, 3)}]}
    with pytest.raises(UserInputError, match="unknown label 'spaceship'"):
        cib.objects_from_polygons(annotation, _instance_ids())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.main", "build", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_builds_and_prints_split_sizes(zips, tmp_path):
    out = _cli("--manual_dir", str(zips), "--data_dir", str(tmp_path), "--config", "half")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == (
        f"cityscapes_instances/half in {tmp_path}: train 2, validation 1")


def test_cli_bad_manual_dir_is_one_line_and_exit_2(tmp_path):
    out = _cli("--manual_dir", str(tmp_path), "--data_dir", str(tmp_path / "data"))
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert lines == [f"dcme-keras build: error: {tmp_path} holds neither leftImg8bit/ nor "
                     "leftImg8bit_trainvaltest.zip; download leftImg8bit_trainvaltest.zip from "
                     f"https://www.cityscapes-dataset.com/downloads/ into {tmp_path} "
                     "(no need to extract it)"]


def test_cli_missing_manual_dir_is_refused_before_tensorflow_loads(tmp_path):
    out = _cli("--manual_dir", str(tmp_path / "nowhere"), "--data_dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"dcme-keras build: error: --manual_dir {tmp_path / 'nowhere'} is not a folder; pass "
        "the folder that holds leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (or "
        "leftImg8bit/ and gtFine/)")


def test_only_train_builds_train_and_names_the_missing_split(folders, tmp_path, caplog):
    for top in ("leftImg8bit", "gtFine"):
        shutil.copytree(folders[0] / top / "train", tmp_path / "manual" / top / "train")
    with caplog.at_level("WARNING", logger=cib.__name__):
        builder = _build(tmp_path / "manual", tmp_path / "data")
    assert {name: s.num_examples for name, s in builder.info.splits.items()} == {"train": 2}
    assert sorted(_examples(builder, "train")) == ["alpha_000000_000001", "beta_000000_000007"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no images for split(s) validation (val/); building only train" in w
               for w in warnings), warnings


def test_no_split_at_all_is_a_clear_error(tmp_path):
    for top in ("leftImg8bit", "gtFine"):
        (tmp_path / top / "test" / "berlin").mkdir(parents=True)
    with pytest.raises(UserInputError, match=r"leftImg8bit holds neither "
                       r"train/<city>/\*_leftImg8bit\.png nor val/<city>/\*_leftImg8bit\.png"):
        _build(tmp_path, tmp_path / "data")


def test_import_tfds_cityscapes_registers_the_builder():
    code = ("import tensorflow_datasets as tfds, tfds_cityscapes\n"
            "print(type(tfds.builder('cityscapes_instances', data_dir='/nonexistent')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "Builder"
