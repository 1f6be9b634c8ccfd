"""Tests of the tf.data pipelines on a tiny synthetic cityscapes_instances build.

One module-scoped build: 4 synthetic frames at 128x256 (3 train, 1 validation), built
into TFDS once. Hand-made maps check the ignore weights, the flip identity, polygon-only
objects under occlusion and the augmentation's extreme points.
"""

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfds_cityscapes.cityscapes_instances  # noqa: F401  (registers the builder)
from dcme_keras import keys
from dcme_keras.classes import ANNOTATOR_CLASSES, label_id
from dcme_keras.data import pipelines
from dcme_keras.data.synthetic import rasterize, write_dataset
from dcme_keras.dcme import codec_np
from dcme_keras.dcme.codec import encode_dcme as encode_dcme_tf
from dcme_keras.dcme.grid import grid_labels, instance_ids_to_label_ids
from dcme_keras.errors import UserInputError
from dcme_keras.extreme_points import crop_and_resize, extreme_points, make_input
from tfds_cityscapes.cityscapes_instances.cityscapes_instances_dataset_builder import (
    objects_from_polygons,
)

SIZE = (64, 128)  # DCME network input in these tests, (H, W)
CROP = 32  # annotator crop side in these tests


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(manual_dir, data_dir) of a 4-frame synthetic build at 128x256."""
    manual_dir = tmp_path_factory.mktemp("synth") / "cityscapes"
    write_dataset(manual_dir, frames=4, size=(128, 256), seed=0, progress=False)
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = tfds.builder("cityscapes_instances", data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return manual_dir, str(data_dir)


def _frames(data_dir, split):
    builder = tfds.builder("cityscapes_instances", data_dir=data_dir)
    return list(tfds.as_numpy(builder.as_dataset(split, shuffle_files=False)))


def _resized_ids_np(ids):
    """Nearest resize at pixel centres, OpenCV's independent implementation."""
    return cv2.resize(ids[..., 0], SIZE[::-1], interpolation=cv2.INTER_NEAREST_EXACT)


# ----------------------------------------------------------------------------------------
# DCME scenes
# ----------------------------------------------------------------------------------------


def test_dcme_dataset_shapes_and_dtypes(built):
    ds = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE, batch_size=2,
                                seed=0)
    image, targets, weights = next(iter(ds))
    assert image.shape == (2, 64, 128, 3) and image.dtype == tf.float32
    assert targets[keys.DCME].shape == (2, 64, 128, 2) and targets[keys.DCME].dtype == tf.float32
    assert targets[keys.GRID].shape == (2, 4, 8) and targets[keys.GRID].dtype == tf.int32
    assert weights[keys.DCME].shape == (2, 64, 128) and weights[keys.DCME].dtype == tf.float32
    assert weights[keys.GRID].shape == (2, 4, 8) and weights[keys.GRID].dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 255.0
    assert float(tf.reduce_max(image)) > 1.0  # 0..255, not 0..1
    # Training drops the last, smaller batch: 3 train frames give one batch of 2.
    assert sum(1 for _ in ds) == 1


def test_dcme_targets_equal_numpy_codec_on_resized_ids(built):
    frames = _frames(built[1], "train")
    ds = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE, batch_size=1,
                                shuffle=False, flip=False)
    examples = list(ds)
    assert len(examples) == len(frames) == 3
    for frame, (_, targets, weights) in zip(frames, examples):
        ids = _resized_ids_np(frame[keys.INSTANCE_IDS])
        assert np.count_nonzero(ids >= 1000) > 0
        np.testing.assert_array_equal(targets[keys.DCME][0].numpy(), codec_np.encode_dcme(ids))
        np.testing.assert_array_equal(targets[keys.GRID][0].numpy(),
                                      grid_labels(instance_ids_to_label_ids(ids), 16))
        # Vectors are in pixels of the 64x128 map: the largest is at most its diagonal.
        assert np.abs(targets[keys.DCME].numpy()).max() < np.hypot(*SIZE)
        labels = instance_ids_to_label_ids(ids)
        ignored = (np.isin(labels, pipelines.VOID_LABEL_IDS)
                   | ((ids < 1000) & np.isin(labels, [24, 25, 26, 27, 28, 29, 30, 31, 32, 33]))
                   | np.isin(labels, [29, 30]))
        np.testing.assert_array_equal(weights[keys.DCME][0].numpy(), (~ignored).astype(np.float32))


def test_dcme_weights_on_a_hand_made_scene():
    ids = np.full((8, 16), 7, np.int32)          # road
    ids[0:2, 0:4] = 26000                          # a car
    ids[0:2, 4:8] = 26                             # cargroup: ignored
    ids[2:4, 0:4] = 1                              # ego vehicle (void): ignored
    ids[2:4, 4:6] = 0                              # unlabeled (void): ignored
    ids[4:8, 8:12] = 29000                         # caravan: ignored, its cell too
    ids[4:8, 12:14] = 29000 + 1                    # another caravan ...
    ids[7, 15] = 24000                             # ... in a cell that also holds a person
    image = np.zeros((8, 16, 3), np.uint8)
    _, targets, weights = pipelines.dcme_targets(image, ids, grid_size=4)
    expected = np.ones((8, 16), np.float32)
    expected[0:2, 4:8] = expected[2:4, 0:6] = expected[4:8, 8:14] = 0.0
    np.testing.assert_array_equal(weights[keys.DCME].numpy(), expected)
    # Grid cells are 4x4: the caravan cell (1, 2) is ignored; cell (1, 3) holds a person,
    # so it has a label and counts. Void and group cells count (background / car).
    np.testing.assert_array_equal(weights[keys.GRID].numpy(),
                                  [[1, 1, 1, 1], [1, 1, 0, 1]])
    np.testing.assert_array_equal(targets[keys.GRID].numpy(),
                                  [[3, 3, 0, 0], [0, 0, 0, 1]])


def test_dcme_targets_resize_to_the_requested_size():
    ids = np.zeros((32, 64, 1), np.uint16)
    ids[8:24, 16:48] = 26000
    image = np.full((32, 64, 3), 200, np.uint8)
    image_out, targets, _ = pipelines.dcme_targets(image, ids, image_size=(16, 32), grid_size=8)
    assert image_out.shape == (16, 32, 3) and targets[keys.GRID].shape == (2, 4)
    small = np.zeros((16, 32), np.int32)
    small[4:12, 8:24] = 26000
    np.testing.assert_array_equal(targets[keys.DCME].numpy(), codec_np.encode_dcme(small))
    np.testing.assert_array_equal(image_out.numpy(), np.full((16, 32, 3), 200.0, np.float32))


def test_flip_negates_dx():
    ids = np.zeros((12, 20), np.int32)
    ids[2:9, 1:7] = 26000
    ids[5:11, 6:17] = 24001        # occludes the car; CM of both off-centre
    ids[0:3, 15:20] = 26            # group region stays 0
    dcme = encode_dcme_tf(tf.constant(ids)).numpy()
    flipped = encode_dcme_tf(tf.constant(ids[:, ::-1])).numpy()
    np.testing.assert_allclose(flipped, dcme[:, ::-1] * np.array([1.0, -1.0], np.float32),
                               atol=1e-5)
    assert np.abs(dcme[..., 1]).max() > 1.0  # the test can fail: dx is not all 0


def test_pipeline_flip_equals_flipping_before_encoding(built):
    plain = list(pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE,
                                        batch_size=1, shuffle=False, flip=False))
    ds = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE, batch_size=1,
                                shuffle=False, flip=True, seed=0)
    seen = {True: 0, False: 0}
    for _ in range(2):  # a new draw each epoch
        for (image, targets, weights), (ref_image, ref_targets, ref_weights) in zip(ds, plain):
            flipped = not np.array_equal(image.numpy(), ref_image.numpy())
            seen[flipped] += 1
            if not flipped:
                np.testing.assert_array_equal(targets[keys.DCME], ref_targets[keys.DCME])
                continue
            np.testing.assert_array_equal(image.numpy(), ref_image.numpy()[:, :, ::-1])
            np.testing.assert_allclose(
                targets[keys.DCME].numpy(),
                ref_targets[keys.DCME].numpy()[:, :, ::-1] * np.array([1.0, -1.0], np.float32),
                atol=1e-4)
            np.testing.assert_array_equal(weights[keys.DCME].numpy(),
                                          ref_weights[keys.DCME].numpy()[:, :, ::-1])
            # Grid labels come from the flipped map; where blocks mirror onto blocks
            # (width a multiple of Gs) they are the mirrored grid.
            np.testing.assert_array_equal(targets[keys.GRID].numpy(),
                                          ref_targets[keys.GRID].numpy()[:, :, ::-1])
    assert seen[True] and seen[False], seen


def test_dcme_dataset_file_cache_replays_the_scenes(built, tmp_path):
    ds = pipelines.dcme_dataset("validation", data_dir=built[1], image_size=SIZE,
                                cache=tmp_path / "scenes")
    first = [image.numpy() for image, _, _ in ds]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".index")] == [
        "scenes_dcme_full_validation_64x128.index"]
    second = [image.numpy() for image, _, _ in ds]
    assert len(first) == 1 and np.array_equal(first[0], second[0])


def test_dcme_dataset_refuses_bad_input(built, tmp_path):
    with pytest.raises(UserInputError, match="dcme-keras build"):
        pipelines.dcme_dataset("train", data_dir=tmp_path)
    with pytest.raises(UserInputError, match="multiple of grid_size"):
        pipelines.dcme_dataset("train", data_dir=built[1], image_size=(60, 128))
    with pytest.raises(UserInputError, match="split 'val'"):
        pipelines.dcme_dataset("val", data_dir=built[1])


# ----------------------------------------------------------------------------------------
# Extreme-points crops
# ----------------------------------------------------------------------------------------


def _eligible_count(frames, min_area):
    """Objects of the annotator classes that are not groups, from the stored records.

    At the full config an object's stored area is its visible pixels, so this needs no
    rasterization of its own.
    """
    wanted = [label_id(n) for n in ANNOTATOR_CLASSES]
    count = 0
    for frame in frames:
        objects = frame[keys.OBJECTS]
        keep = (np.isin(objects[keys.OBJECT_LABEL], wanted) & ~objects[keys.OBJECT_IS_CROWD]
                & (objects[keys.OBJECT_AREA] >= max(min_area, 2)))
        count += int(keep.sum())
    return count


def test_annotator_dataset_shapes_count_and_masks(built):
    frames = _frames(built[1], "train")
    ds = pipelines.annotator_dataset("train", data_dir=built[1], size=CROP, batch_size=4,
                                     min_area=20, shuffle=False, augment=False,
                                     drop_remainder=False)
    inputs = np.concatenate([x.numpy() for x, _ in ds])
    masks = np.concatenate([y[keys.MASK].numpy() for _, y in ds])
    x, y = next(iter(ds))
    assert x.shape == (4, CROP, CROP, 4) and x.dtype == tf.float32
    assert y[keys.MASK].shape == (4, CROP, CROP, 1) and y[keys.MASK].dtype == tf.float32
    expected = _eligible_count(frames, 20)
    assert expected > 8
    assert len(inputs) == len(masks) == expected
    assert set(np.unique(masks)) == {0.0, 1.0}
    assert (masks.sum(axis=(1, 2, 3)) > 0).all()
    # The point channel: 0/1 discs of radius 3 (29 pixels each), which may overlap or be
    # cut by the crop's edge, but never vanish.
    channel = inputs[..., 3]
    assert set(np.unique(channel)) == {0.0, 1.0}
    assert (channel.sum(axis=(1, 2)) >= 10).all()
    assert 0.0 <= inputs[..., :3].min() and inputs[..., :3].max() <= 1.0


def test_annotator_dataset_equals_numpy_path_and_rgb_only_drops_the_point_channel(built):
    manual_dir, data_dir = built
    common = dict(size=CROP, min_area=20, augment=False, shuffle=False, drop_remainder=False)
    ds = pipelines.annotator_dataset("validation", data_dir=data_dir, batch_size=64, **common)
    rgb = pipelines.annotator_dataset("validation", data_dir=data_dir, batch_size=64,
                                      points=False, **common)
    x, y = next(iter(ds))
    x_rgb, y_rgb = next(iter(rgb))
    assert x_rgb.shape[-1] == 3
    np.testing.assert_array_equal(x_rgb.numpy(), x.numpy()[..., :3])
    np.testing.assert_array_equal(y_rgb[keys.MASK].numpy(), y[keys.MASK].numpy())

    frames = list(pipelines.cityscapes_frames(manual_dir, "val"))
    assert len(frames) == 1
    frame = frames[0]
    inputs, targets = pipelines.annotator_examples_np(
        frame[keys.IMAGE], frame[keys.INSTANCE_IDS], frame[keys.OBJECTS], size=CROP,
        min_area=20)
    np.testing.assert_array_equal(inputs, x.numpy())
    np.testing.assert_array_equal(targets, y[keys.MASK].numpy())


def test_annotator_dataset_with_augmentation_and_jitter(built):
    frames = _frames(built[1], "train")
    ds = pipelines.annotator_dataset("train", data_dir=built[1], size=CROP, batch_size=8,
                                     min_area=20, jitter_px=1, seed=0, drop_remainder=False,
                                     cache="memory")
    epochs = [[y[keys.MASK].numpy() for _, y in ds] for _ in range(2)]
    masks = np.concatenate(epochs[0])
    assert len(masks) == _eligible_count(frames, 20)
    assert (masks.sum(axis=(1, 2, 3)) > 0).all()
    # Each epoch draws new augmentations from the cached windows.
    assert not np.array_equal(masks, np.concatenate(epochs[1]))


@pytest.mark.parametrize("augment", [False, True])
def test_object_windows_give_the_crops_of_the_whole_frame(built, augment):
    frame = next(pipelines.cityscapes_frames(built[0], "val"))
    image, ids, objects = frame[keys.IMAGE], frame[keys.INSTANCE_IDS], frame[keys.OBJECTS]
    rotation, jitter = (30.0, 2) if augment else (0.0, 0)
    regions = pipelines.object_regions_np(image, ids, objects, min_area=20, jitter_px=jitter,
                                          max_rotation_deg=rotation)
    wanted = np.isin(objects[keys.OBJECT_LABEL], [label_id(n) for n in ANNOTATOR_CLASSES])
    wanted &= ~np.asarray(objects[keys.OBJECT_IS_CROWD])
    wanted &= np.asarray(objects[keys.OBJECT_AREA]) >= 20
    indices = np.flatnonzero(wanted)
    assert len(regions) == len(indices) > 3
    owner = pipelines.visible_object_map(ids, objects)
    settings = dict(augment=augment, max_rotation_deg=rotation, jitter_px=jitter, size=CROP)
    for n, (k, (window, mask)) in enumerate(zip(indices, regions)):
        full_mask = owner == k
        assert mask.sum() == full_mask.sum() == objects[keys.OBJECT_AREA][k]
        x, y, _ = pipelines.object_example_np(window, mask, rng=np.random.default_rng(n),
                                              **settings)
        x_full, y_full, _ = pipelines.object_example_np(
            image, full_mask, rng=np.random.default_rng(n), **settings)
        # Equal up to OpenCV's fixed-point warp coordinates, which round a few samples
        # differently when the centre is offset by the window's corner. A window too
        # small would replicate its border into the crop and differ in whole rows.
        np.testing.assert_allclose(x, x_full, atol=1.5 / 255)
        assert np.mean(x != x_full) < 0.005 and np.mean(y != y_full) < 0.005
        if not augment:  # the training target is the resized mask crop, >= 1/2
            points = extreme_points(full_mask)
            np.testing.assert_array_equal(x, make_input(image, points, CROP))
            crop, _, _ = crop_and_resize(full_mask, points, CROP)
            np.testing.assert_array_equal(y[..., 0], (crop >= 0.5).astype(np.float32))


def _window():
    """A 60x90 window holding a red, L-shaped object on gray."""
    mask = np.zeros((60, 90), bool)
    mask[10:50, 20:35] = True
    mask[38:50, 20:70] = True
    image = np.full((60, 90, 3), 128, np.uint8)
    image[mask] = (220, 30, 30)
    return image, mask


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("jitter_px", [0, 2])
def test_augmented_points_are_the_extremes_of_the_augmented_mask(seed, jitter_px):
    image, mask = _window()
    aug_image, aug_mask = pipelines.augment_window(
        image, mask, np.random.default_rng(seed), max_rotation_deg=30.0)
    inputs, target, clicks = pipelines.object_example_np(
        image, mask, rng=np.random.default_rng(seed), augment=True, max_rotation_deg=30.0,
        jitter_px=jitter_px, size=128, radius=2)
    # The rng draws the augmentation first, so the same seed gives the same window.
    exact = extreme_points(aug_mask)
    assert np.abs(clicks - exact).max() <= jitter_px
    # Each click is still on its side of the augmented object's box.
    rows, cols = np.nonzero(aug_mask)
    sides = [clicks[0, 0] - cols.min(), clicks[1, 1] - rows.min(),
             clicks[2, 0] - cols.max(), clicks[3, 1] - rows.max()]
    assert np.abs(sides).max() <= jitter_px
    # The image moved with the mask: the red pixels are the target's.
    red = (inputs[..., 0] > 0.6) & (inputs[..., 1] < 0.4)
    iou = (red & (target[..., 0] > 0)).sum() / (red | (target[..., 0] > 0)).sum()
    assert iou > 0.9
    # In the crop, the circles sit on the target's extreme rows and columns.
    channel = inputs[..., 3] > 0
    t_rows, t_cols = np.nonzero(target[..., 0])
    c_rows, c_cols = np.nonzero(channel)
    scale = 128 / 70  # crop pixels per window pixel, about (S / grown box)
    tol = (jitter_px + 1) * scale + 1
    assert abs(c_cols.min() + 2 - t_cols.min()) <= tol
    assert abs(c_cols.max() - 2 - t_cols.max()) <= tol
    assert abs(c_rows.min() + 2 - t_rows.min()) <= tol
    assert abs(c_rows.max() - 2 - t_rows.max()) <= tol


def test_augment_window_flips_and_rotates():
    image, mask = _window()
    unrotated = [pipelines.augment_window(image, mask, np.random.default_rng(s), 0.0)[1]
                 for s in range(12)]
    mirrored = [np.array_equal(m, mask[:, ::-1]) for m in unrotated]
    assert all(np.array_equal(m, mask) or f for m, f in zip(unrotated, mirrored))
    assert 0 < sum(mirrored) < 12
    rotated = [pipelines.augment_window(image, mask, np.random.default_rng(s), 30.0)
               for s in range(12)]
    moved = sum(not (np.array_equal(m, mask) or np.array_equal(m, mask[:, ::-1]))
                for _, m in rotated)
    assert moved >= 9
    for aug_image, aug_mask in rotated:  # rotation keeps the area; the image moves along
        assert abs(int(aug_mask.sum()) - int(mask.sum())) <= 0.05 * mask.sum()
        red = (aug_image[..., 0] > 150) & (aug_image[..., 1] < 100)
        assert (red & aug_mask).sum() / (red | aug_mask).sum() > 0.9


def test_example_without_augmentation_uses_the_masks_own_extreme_points():
    image, mask = _window()
    _, target, clicks = pipelines.object_example_np(image, mask, size=64)
    np.testing.assert_array_equal(clicks, [[20, 29], [27, 10], [69, 43], [44, 49]])
    assert target.shape == (64, 64, 1) and target.sum() > 0


def _sign_annotation():
    rect = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # noqa: E731
    return {"imgHeight": 12, "imgWidth": 16, "objects": [
        {"label": "road", "polygon": rect(0, 0, 15, 11)},
        {"label": "traffic sign", "polygon": rect(1, 1, 6, 6)},    # A
        {"label": "traffic sign", "polygon": rect(4, 3, 9, 8)},    # B, over A
        {"label": "car", "polygon": rect(8, 6, 12, 10)},           # over B
        {"label": "traffic light", "polygon": rect(13, 1, 14, 4)},
    ]}


def _box(y0, y1, x0, x1, shape=(12, 16)):
    """Pixels of PIL's filled rectangle with corners (x0, y0), (x1, y1): ends included."""
    out = np.zeros(shape, bool)
    out[y0:y1 + 1, x0:x1 + 1] = True
    return out


def test_polygon_only_objects_take_their_visible_pixels():
    annotation = _sign_annotation()
    ids, _ = rasterize(annotation)
    objects = objects_from_polygons(annotation, ids)
    owner = pipelines.visible_object_map(ids, objects)
    sign_a = _box(1, 6, 1, 6) & ~_box(3, 8, 4, 9)
    sign_b = _box(3, 8, 4, 9) & ~_box(6, 10, 8, 12)
    np.testing.assert_array_equal(owner == 1, sign_a)
    np.testing.assert_array_equal(owner == 2, sign_b)
    np.testing.assert_array_equal(owner == 3, _box(6, 10, 8, 12))
    np.testing.assert_array_equal(owner == 4, _box(1, 4, 13, 14))
    assert sign_a.sum() == 36 - 12 and sign_b.sum() == 36 - 6  # overlaps: 4x3, 3x2

    image = np.zeros((12, 16, 3), np.uint8)
    regions = pipelines.object_regions_np(image, ids, objects, min_area=1)
    assert len(regions) == 4  # 2 signs, the car, the light; not the road
    window, window_mask = regions[0]
    assert window_mask.sum() == sign_a.sum()
    # Only traffic signs: the two signs, each with its own visible pixels.
    inputs, targets = pipelines.annotator_examples_np(
        image, ids, objects, classes=["traffic sign"], min_area=1, size=16)
    assert inputs.shape == (2, 16, 16, 4) and targets.shape == (2, 16, 16, 1)


def test_frames_without_polygons_take_instances_only():
    annotation = _sign_annotation()
    ids, _ = rasterize(annotation)
    objects = objects_from_polygons(annotation, ids)
    objects[keys.OBJECT_POLYGON] = [np.zeros((0, 2), np.float32)] * len(objects[keys.OBJECT_ID])
    regions = pipelines.object_regions_np(np.zeros((12, 16, 3), np.uint8), ids, objects,
                                          min_area=1)
    assert len(regions) == 1  # the car; the signs can no longer be told apart
    np.testing.assert_array_equal(regions[0][1].sum(), _box(6, 10, 8, 12).sum())


def test_annotator_dataset_refuses_bad_input(built):
    with pytest.raises(UserInputError, match="not a Cityscapes class"):
        pipelines.annotator_dataset("train", data_dir=built[1], classes=["cars"])
    with pytest.raises(UserInputError, match="jitter_px"):
        pipelines.annotator_dataset("train", data_dir=built[1], jitter_px=-1)
    with pytest.raises(UserInputError, match="random generator"):
        pipelines.object_example_np(*_window(), augment=True)


# ----------------------------------------------------------------------------------------
# Optional foreground target (beyond the paper)
# ----------------------------------------------------------------------------------------


def test_foreground_target_on_a_hand_made_8x8_scene():
    ids = np.full((8, 8), 7, np.int32)            # road: background, counts
    ids[0:3, 0:3] = 26000                          # a car (k = 0)
    ids[4:8, 5:7] = 24001                          # a person
    ids[0:2, 5:8] = 26                             # cargroup: weight 0
    ids[6:8, 0:2] = 0                              # unlabeled (void): weight 0
    ids[3, 0:2] = 1                                # ego vehicle (void): weight 0
    image = np.zeros((8, 8, 3), np.uint8)
    _, targets, weights = pipelines.dcme_targets(image, ids, grid_size=4, foreground=True)
    target = targets[keys.FOREGROUND].numpy()
    assert target.shape == (8, 8, 1) and target.dtype == np.float32
    expected = np.zeros((8, 8), np.float32)
    expected[0:3, 0:3] = expected[4:8, 5:7] = 1.0
    np.testing.assert_array_equal(target[..., 0], expected)
    weight = weights[keys.FOREGROUND].numpy()
    assert weight.shape == (8, 8) and weight.dtype == np.float32
    expected_weight = np.ones((8, 8), np.float32)
    expected_weight[0:2, 5:8] = expected_weight[6:8, 0:2] = expected_weight[3, 0:2] = 0.0
    np.testing.assert_array_equal(weight, expected_weight)
    # The group region is not foreground, and its weight says nothing is learnt there.
    assert (target[0:2, 5:8] == 0).all() and (weight[0:2, 5:8] == 0).all()
    # Asking for it leaves the other targets and weights as they were.
    _, plain_targets, plain_weights = pipelines.dcme_targets(image, ids, grid_size=4)
    assert set(plain_targets) == set(plain_weights) == {keys.DCME, keys.GRID}
    for key in (keys.DCME, keys.GRID):
        np.testing.assert_array_equal(targets[key], plain_targets[key])
        np.testing.assert_array_equal(weights[key], plain_weights[key])
    # [H, W, 1] ids give the same target as [H, W] ids.
    np.testing.assert_array_equal(pipelines.foreground_target(ids[..., None]), target)


def test_dcme_dataset_with_foreground_follows_the_resized_ids(built):
    frames = _frames(built[1], "train")
    ds = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE, batch_size=1,
                                shuffle=False, flip=False, foreground=True)
    plain = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE,
                                   batch_size=1, shuffle=False, flip=False)
    for frame, (_, targets, weights), (_, ref_targets, ref_weights) in zip(frames, ds, plain):
        assert targets[keys.FOREGROUND].shape == (1, 64, 128, 1)
        assert weights[keys.FOREGROUND].shape == (1, 64, 128)
        ids = _resized_ids_np(frame[keys.INSTANCE_IDS])
        np.testing.assert_array_equal(targets[keys.FOREGROUND][0, ..., 0].numpy(),
                                      (ids >= 1000).astype(np.float32))
        np.testing.assert_array_equal(weights[keys.FOREGROUND], weights[keys.DCME])
        for key in (keys.DCME, keys.GRID):
            np.testing.assert_array_equal(targets[key], ref_targets[key])
            np.testing.assert_array_equal(weights[key], ref_weights[key])
    # A flip mirrors the foreground target with the image.
    flipped = pipelines.dcme_dataset("train", data_dir=built[1], image_size=SIZE,
                                     batch_size=1, shuffle=False, flip=True, seed=0,
                                     foreground=True)
    for (image, targets, _), (ref_image, ref_targets, _) in zip(flipped, ds):
        mirror = not np.array_equal(image.numpy(), ref_image.numpy())
        ref = ref_targets[keys.FOREGROUND].numpy()
        np.testing.assert_array_equal(targets[keys.FOREGROUND].numpy(),
                                      ref[:, :, ::-1] if mirror else ref)


def test_photometric_degrades_the_rgb_and_leaves_points_and_target_exact():
    image, mask = _window()
    plain_x, plain_y, plain_clicks = pipelines.object_example_np(image, mask, size=64)
    changed = []
    for seed in range(8):
        x, y, clicks = pipelines.object_example_np(
            image, mask, rng=np.random.default_rng(seed), photometric=True, size=64)
        again, _, _ = pipelines.object_example_np(
            image, mask, rng=np.random.default_rng(seed), photometric=True, size=64)
        np.testing.assert_array_equal(x, again)  # the seed decides every draw
        np.testing.assert_array_equal(y, plain_y)
        np.testing.assert_array_equal(clicks, plain_clicks)
        np.testing.assert_array_equal(x[..., 3], plain_x[..., 3])
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        changed.append(np.abs(x[..., :3] - plain_x[..., :3]).mean())
        # Still the same picture: the red object stays redder than the gray around it.
        red = x[..., 0] - x[..., 1]
        inside = plain_y[..., 0] > 0
        assert red[inside].mean() > red[~inside].mean() + 0.2
    assert min(changed) > 0.005


def test_photometric_needs_a_random_generator():
    with pytest.raises(UserInputError, match="random generator"):
        pipelines.object_example_np(*_window(), photometric=True)


def test_clutter_adds_same_shaped_neighbours_and_keeps_what_stays_visible():
    image, mask = _window()
    behind = in_front = 0
    for seed in range(24):
        out_image, out_mask = pipelines.clutter_window_np(image, mask, np.random.default_rng(seed))
        again_image, again_mask = pipelines.clutter_window_np(
            image, mask, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image, again_image)  # the seed decides every draw
        np.testing.assert_array_equal(out_mask, again_mask)
        assert out_image.shape == image.shape and out_image.dtype == np.uint8
        # The object only loses pixels, keeps at least half, and what stays is untouched.
        assert not (out_mask & ~mask).any()
        assert np.count_nonzero(out_mask) >= 0.5 * np.count_nonzero(mask)
        np.testing.assert_array_equal(out_image[out_mask], image[out_mask])
        in_front += int(np.count_nonzero(out_mask) < np.count_nonzero(mask))
        behind += int((out_image[~mask] != image[~mask]).any())
    # Both placements happen: copies beside or behind the object, and copies hiding part
    # of it.
    assert behind >= 8 and in_front >= 3


def test_clutter_moves_the_points_to_the_visible_object():
    image, mask = _window()
    cluttered = 0
    for seed in range(12):
        x, y, clicks = pipelines.object_example_np(
            image, mask, rng=np.random.default_rng(seed), clutter=True, size=64)
        # The same draws by hand: half of the objects get neighbours, then the points.
        rng = np.random.default_rng(seed)
        visible = mask
        if rng.random() < 0.5:
            cluttered += 1
            _, visible = pipelines.clutter_window_np(image, mask, rng)
        np.testing.assert_array_equal(clicks, extreme_points(visible))
        assert x.shape == (64, 64, 4) and y.shape == (64, 64, 1) and y.sum() > 0
    assert 0 < cluttered < 12
    with pytest.raises(UserInputError, match="random generator"):
        pipelines.object_example_np(image, mask, clutter=True)
