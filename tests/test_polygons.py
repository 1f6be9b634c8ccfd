"""Tests for dcme_keras.polygons: tracing, round trips, bounded simplification, writers."""

import json

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image
from pycocotools import mask as coco_mask
from scipy import ndimage
from skimage.morphology import remove_small_objects

from dcme_keras.errors import UserInputError
from dcme_keras.polygons import (
    LABELME_VERSION,
    LabeledObject,
    Polygon,
    bridge_holes,
    mask_to_polygons,
    mask_to_polygons_with_report,
    polygons_to_mask,
    to_cityscapes_json,
    to_coco,
    to_labelme_json,
)

CAR = name2label["car"].id


def _square_with_hole():
    """8x8: a 6x6 square (rows/cols 1..6) with a 2x2 hole (rows/cols 3..4); 32 px."""
    mask = np.zeros((8, 8), bool)
    mask[1:7, 1:7] = True
    mask[3:5, 3:5] = False
    return mask


def _random_masks(n, seed, sizes=(3, 48), blur=(0.4, 2.5)):
    """Blobby random masks with many holes and parts; small blur gives 1-pixel features."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = rng.integers(*sizes, 2)
        noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), rng.uniform(*blur))
        yield noise > rng.uniform(-0.4, 0.6)


def _vertices(ring):
    return {tuple(p) for p in np.asarray(ring).tolist()}


def _cityscapes_images(data):
    annotation = Annotation()
    annotation.fromJsonText(json.dumps(data))
    return (np.array(createInstanceImage(annotation, "ids")),
            np.array(createLabelImage(annotation, "ids")))


# ---------------------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------------------


def test_square_with_square_hole():
    (polygon,) = mask_to_polygons(_square_with_hole(), tolerance_px=0)
    assert _vertices(polygon.exterior) == {(1, 1), (1, 6), (6, 6), (6, 1)}
    # The hole ring runs through the foreground pixels around the hole, cutting corners
    # diagonally (OpenCV traces holes 8-connected).
    (hole,) = polygon.holes
    assert _vertices(hole) == {(2, 3), (3, 2), (4, 2), (5, 3), (5, 4), (4, 5), (3, 5), (2, 4)}
    np.testing.assert_array_equal(polygons_to_mask([polygon], (8, 8)), _square_with_hole())


def test_two_blobs_one_pixel_and_empty():
    mask = np.zeros((6, 10), bool)
    mask[1:3, 1:4] = True
    mask[4, 7] = True
    polygons = mask_to_polygons(mask, tolerance_px=0)
    assert len(polygons) == 2 and all(not p.holes for p in polygons)
    rings = sorted((_vertices(p.exterior) for p in polygons), key=len)
    assert rings == [{(7, 4)}, {(1, 1), (1, 2), (3, 2), (3, 1)}]
    np.testing.assert_array_equal(polygons_to_mask(polygons, mask.shape), mask)
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []
    assert mask_to_polygons_with_report(np.zeros((5, 5), np.uint8)) == ([], 0.0)


def test_island_in_a_hole_is_its_own_polygon():
    mask = np.ones((9, 9), bool)
    mask[2:7, 2:7] = False
    mask[4, 4] = True
    polygons = mask_to_polygons(mask, tolerance_px=0)
    assert sorted(len(p.holes) for p in polygons) == [0, 1]
    np.testing.assert_array_equal(polygons_to_mask(polygons, mask.shape), mask)


def test_round_trip_is_exact_at_tolerance_zero():
    for mask in _random_masks(40, seed=0):
        polygons, deviation = mask_to_polygons_with_report(mask, tolerance_px=0)
        assert deviation == 0.0
        np.testing.assert_array_equal(polygons_to_mask(polygons, mask.shape), mask)


def test_circle_simplification_is_bounded_and_reported():
    yy, xx = np.mgrid[:80, :80]
    circle = (xx - 40.3) ** 2 + (yy - 39.6) ** 2 < 25**2
    exact = mask_to_polygons(circle, tolerance_px=0)
    polygons, deviation = mask_to_polygons_with_report(circle, tolerance_px=2.0)
    assert 0 < deviation <= 2.0
    assert len(polygons[0].exterior) < len(exact[0].exterior) / 3
    drawn = polygons_to_mask(polygons, circle.shape)
    assert (drawn & circle).sum() / (drawn | circle).sum() > 0.95


def test_min_area_and_min_hole_area():
    mask = np.zeros((12, 12), bool)
    mask[1:9, 1:9] = True
    mask[4, 4] = False  # a 1-pixel hole
    mask[10:12, 10:12] = True  # a 4-pixel part
    assert len(mask_to_polygons(mask, tolerance_px=0)) == 2
    kept = mask_to_polygons(mask, tolerance_px=0, min_area=5)
    assert len(kept) == 1 and len(kept[0].holes) == 1
    filled = mask_to_polygons(mask, tolerance_px=0, min_area=5, min_hole_area=2)
    assert len(filled) == 1 and not filled[0].holes


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 3)), np.zeros(4)])
def test_bad_mask_raises(bad):
    with pytest.raises(UserInputError, match=r"\[H, W\]"):
        mask_to_polygons(bad)


def test_negative_tolerance_raises():
    with pytest.raises(UserInputError, match="tolerance"):
        mask_to_polygons(np.ones((3, 3)), tolerance_px=-1)


# ---------------------------------------------------------------------------------------
# Bridging holes
# ---------------------------------------------------------------------------------------


def test_bridge_is_vertical_from_the_hole_top():
    (polygon,) = mask_to_polygons(_square_with_hole(), tolerance_px=0)
    ring = bridge_holes(polygon)
    assert len(ring) == 4 + 8 + 3  # exterior, hole, hole start again, hit point twice
    # The hole's topmost vertex (3, 2) is joined straight up to (3, 1) on the exterior.
    k = next(i for i, p in enumerate(ring.tolist()) if p == [3, 2])
    assert ring[k - 1].tolist() == [3, 1] and ring[k + 8].tolist() == [3, 2]
    assert ring[k + 9].tolist() == [3, 1]
    np.testing.assert_array_equal(polygons_to_mask([Polygon(ring)], (8, 8)),
                                  _square_with_hole())


def test_bridge_falls_back_to_the_nearest_vertex():
    # Simplification can leave a hole with nothing above it; it is then joined to the
    # nearest exterior vertex, (2, 2), from its topmost vertex, (10, 10).
    square = np.array([[0, 0], [0, 2], [2, 2], [2, 0]], float)
    ring = bridge_holes(Polygon(square, [square + 10]))
    assert ring.tolist() == [[0, 0], [0, 2], [2, 2], [2, 2], [10, 10], [10, 12], [12, 12],
                             [12, 10], [10, 10], [2, 2], [2, 0]]


# ---------------------------------------------------------------------------------------
# Cityscapes
# ---------------------------------------------------------------------------------------


def test_cityscapes_json_rasterizes_back_with_hole_and_parts():
    mask = np.zeros((10, 16), bool)
    mask[:8, :8] = _square_with_hole()
    mask[2:5, 11:14] = True
    polygons = mask_to_polygons(mask, tolerance_px=0)
    data = to_cityscapes_json([LabeledObject("car", polygons, score=0.9)], (10, 16))
    assert data["imgHeight"] == 10 and data["imgWidth"] == 16
    assert [o["label"] for o in data["objects"]] == ["car", "car"]
    assert all(isinstance(v, int) for o in data["objects"] for p in o["polygon"] for v in p)
    instances, labels = _cityscapes_images(data)
    np.testing.assert_array_equal(labels == CAR, mask)
    np.testing.assert_array_equal(instances > 0, mask)
    assert instances[4, 4] == 0  # the hole
    # One Cityscapes object per part, so the parts become instances 0 and 1.
    assert set(np.unique(instances[mask])) == {CAR * 1000, CAR * 1000 + 1}


def test_cityscapes_round_trip_on_random_masks():
    for mask in _random_masks(40, seed=1):
        polygons = mask_to_polygons(mask, tolerance_px=0)
        instances, _ = _cityscapes_images(
            to_cityscapes_json([LabeledObject("person", polygons)], mask.shape))
        np.testing.assert_array_equal(instances > 0, mask)


def test_cityscapes_is_as_close_to_the_mask_as_own_rasterisation_when_simplified():
    counts = np.zeros(4, int)  # Cityscapes I, U, own I, U against the traced mask
    for mask in _random_masks(20, seed=2, sizes=(20, 90), blur=(1, 4)):
        mask = remove_small_objects(mask, max_size=29, connectivity=2)
        polygons = mask_to_polygons(mask, tolerance_px=1.0)
        instances, _ = _cityscapes_images(
            to_cityscapes_json([LabeledObject("car", polygons)], mask.shape))
        own = polygons_to_mask(polygons, mask.shape)
        for k, drawn in enumerate([instances > 0, own]):
            counts[2 * k:2 * k + 2] += [np.count_nonzero(drawn & mask),
                                        np.count_nonzero(drawn | mask)]
    cityscapes_iou, own_iou = counts[0] / counts[1], counts[2] / counts[3]
    # PIL and OpenCV only differ on pixels whose centre is near a slanted edge.
    assert cityscapes_iou > 0.97
    assert cityscapes_iou == pytest.approx(own_iou, abs=0.005)


def test_cityscapes_one_pixel_object_and_unknown_label():
    mask = np.zeros((5, 5), bool)
    mask[2, 3] = True
    data = to_cityscapes_json([LabeledObject("cargroup", mask_to_polygons(mask))], (5, 5))
    assert data["objects"][0]["polygon"] == [[3, 2]] * 3  # padded to 3 points
    instances, _ = _cityscapes_images(data)
    np.testing.assert_array_equal(instances == CAR, mask)  # a group keeps the plain id
    with pytest.raises(UserInputError, match="Cityscapes class"):
        to_cityscapes_json([LabeledObject("spaceship", mask_to_polygons(mask))], (5, 5))


# ---------------------------------------------------------------------------------------
# labelme
# ---------------------------------------------------------------------------------------


def _two_objects():
    mask = np.zeros((10, 16), bool)
    mask[:8, :8] = _square_with_hole()
    mask[2:5, 11:14] = True
    other = np.zeros((10, 16), bool)
    other[8:10, 12:16] = True
    objects = [LabeledObject("car", mask_to_polygons(mask, tolerance_px=0), score=0.75),
               LabeledObject("person", mask_to_polygons(other, tolerance_px=0))]
    return mask, other, objects


def test_labelme_json_schema():
    _, _, objects = _two_objects()
    data = to_labelme_json(objects, "frame.png", (10, 16))
    assert data["version"] == LABELME_VERSION
    assert (data["imagePath"], data["imageData"]) == ("frame.png", None)
    assert (data["imageHeight"], data["imageWidth"]) == (10, 16)
    shapes = data["shapes"]
    assert [(s["label"], s["group_id"]) for s in shapes] == [("car", 0), ("car", 0),
                                                             ("person", 1)]
    for shape in shapes:
        assert shape["shape_type"] == "polygon" and shape["flags"] == {}
        assert len(shape["points"]) >= 3
        assert all(len(p) == 2 and all(isinstance(v, float) for v in p)
                   for p in shape["points"])
    assert [s.get("score") for s in shapes] == [0.75, 0.75, None]
    json.dumps(data)


def test_labelme_loads_and_rasterizes(tmp_path):
    labelme = pytest.importorskip("labelme")
    from labelme.utils import shapes_to_label

    mask, other, objects = _two_objects()
    Image.fromarray(np.zeros((10, 16, 3), np.uint8)).save(tmp_path / "frame.png")
    path = tmp_path / "frame.json"
    path.write_text(json.dumps(to_labelme_json(objects, "frame.png", (10, 16))))
    loaded = labelme.LabelFile(str(path))
    classes, instances = shapes_to_label((10, 16), loaded.shapes,
                                         {"_background_": 0, "car": 1, "person": 2})
    np.testing.assert_array_equal(classes == 1, mask)
    np.testing.assert_array_equal(classes == 2, other)
    # group_id joins the car's two parts into one instance.
    assert len(np.unique(instances[mask])) == 1
    assert loaded.shapes[0]["other_data"] == {"score": 0.75}


# ---------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------


def test_coco_rle_decodes_to_the_mask():
    mask = _square_with_hole()
    (ann,) = to_coco([LabeledObject("car", mask_to_polygons(mask, tolerance_px=0), 0.5)],
                     image_id=7, image_hw=(8, 8), first_id=3)
    assert (ann["id"], ann["image_id"], ann["category_id"], ann["iscrowd"]) == (3, 7, CAR, 0)
    assert ann["area"] == 32 and ann["bbox"] == [1.0, 1.0, 6.0, 6.0]
    assert ann["score"] == 0.5
    rle = {"size": ann["segmentation"]["size"],
           "counts": ann["segmentation"]["counts"].encode("ascii")}
    np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), mask)
    json.dumps(ann)


def test_coco_polygons_keep_the_hole():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    mask[12:20, 12:25] = False
    (ann,) = to_coco([LabeledObject("car", mask_to_polygons(mask, tolerance_px=0))],
                     image_id=1, image_hw=(40, 40), mode="polygon")
    assert ann["area"] == int(mask.sum()) and "score" not in ann
    (flat,) = ann["segmentation"]
    assert len(flat) % 2 == 0 and len(flat) >= 6
    drawn = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], 40, 40))).astype(bool)
    assert not drawn[12:20, 12:25].any()
    assert (drawn & mask).sum() / (drawn | mask).sum() > 0.85


def test_coco_category_ids_and_errors():
    polygons = mask_to_polygons(_square_with_hole())
    objects = [LabeledObject("thing", polygons), LabeledObject("thing", []),
               LabeledObject("thing", polygons)]
    anns = to_coco(objects, 1, (8, 8), category_ids={"thing": 5})
    assert [(a["id"], a["category_id"]) for a in anns] == [(1, 5), (2, 5)]
    with pytest.raises(UserInputError, match="category"):
        to_coco(objects, 1, (8, 8))
    with pytest.raises(UserInputError, match="mode"):
        to_coco(objects, 1, (8, 8), mode="mask", category_ids={"thing": 5})
