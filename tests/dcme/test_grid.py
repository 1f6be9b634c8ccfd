"""Tests for dcme_keras.dcme.grid: grid labels (paper 000 eqs. 1-3) and center lookups."""

import numpy as np
import pytest
import tensorflow as tf

from dcme_keras.classes import DEFAULT_PRIORITY, THING_LABEL_IDS, priority_rank
from dcme_keras.dcme.grid import (
    center_cell,
    classes_at_centers,
    grid_labels,
    grid_labels_tf,
    grid_shape,
    instance_ids_to_label_ids,
    instance_ids_to_label_ids_tf,
    scored_classes_at_centers,
)
from dcme_keras.errors import UserInputError

ROAD, PERSON, RIDER, CAR, BUS, TRAIN, BICYCLE = 7, 24, 25, 26, 28, 31, 33
REVERSED = tuple(reversed(DEFAULT_PRIORITY))


def _scene_8x8():
    ids = np.full((8, 8), ROAD, np.uint8)
    ids[0, 0] = ids[1, 1] = CAR
    ids[3, 3] = PERSON  # block (0, 0): person outranks car
    ids[4, 0] = BICYCLE
    ids[7, 3] = RIDER  # block (1, 0): rider outranks bicycle
    ids[4, 4] = CAR
    ids[5, 5] = BUS
    ids[7, 7] = TRAIN  # block (1, 1): train outranks everything
    return ids


@pytest.mark.parametrize("priority, expected", [
    (DEFAULT_PRIORITY, [[1, 0], [2, 6]]),  # person, -, rider, train
    (REVERSED, [[3, 0], [8, 3]]),  # car, -, bicycle, car
])
def test_grid_labels_hand_made_8x8(priority, expected):
    out = grid_labels(_scene_8x8(), 4, priority)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_grid_labels_grid_size_1_is_the_class_map():
    ids = _scene_8x8()
    expected = np.zeros((8, 8), np.int32)
    for grid_id, label in enumerate(THING_LABEL_IDS, start=1):
        expected[ids == label] = grid_id
    np.testing.assert_array_equal(grid_labels(ids, 1), expected)


def test_grid_labels_partial_blocks_use_the_pixels_they_have():
    ids = np.zeros((5, 7), np.uint8)
    ids[3, 3] = BUS
    ids[4, 0] = CAR  # last row of cells holds only image row 4
    ids[4, 6] = PERSON  # last cell: row 4, column 4..6
    np.testing.assert_array_equal(grid_labels(ids, 4), [[5, 0], [3, 1]])


@pytest.mark.parametrize("hw", [(5, 7), (17, 33), (64, 48), (1, 1)])
@pytest.mark.parametrize("grid_size", [2, 4, 16])
def test_grid_shape_matches_a_same_padded_keras_encoder(hw, grid_size):
    import keras

    shape = (1, *hw, 3)
    for _ in range(int(np.log2(grid_size))):
        shape = keras.layers.MaxPooling2D(2, padding="same").compute_output_shape(shape)
    assert grid_shape(hw, grid_size) == tuple(shape[1:3])
    assert grid_labels(np.zeros(hw, np.uint8), grid_size).shape == tuple(shape[1:3])


def test_grid_labels_non_things_and_out_of_table_ids_are_background():
    ids = np.array([[ROAD, 23, -1, 300], [1000, 0, 11, 20]], np.int32)
    np.testing.assert_array_equal(grid_labels(ids, 2), [[0, 0]])


def test_group_regions_label_their_class_through_instance_ids():
    inst = np.zeros((4, 4), np.uint16)
    inst[0, 0] = CAR  # a cargroup pixel: plain label id below 1000
    inst[0, 2] = PERSON * 1000  # person instance k = 0
    inst[2, 0] = ROAD
    inst[3, 3] = RIDER * 1000 + 7
    labels = instance_ids_to_label_ids(inst)
    np.testing.assert_array_equal(labels[[0, 0, 2, 3], [0, 2, 0, 3]], [CAR, PERSON, ROAD, RIDER])
    np.testing.assert_array_equal(grid_labels(labels, 2), [[3, 1], [0, 2]])
    np.testing.assert_array_equal(instance_ids_to_label_ids_tf(tf.constant(inst)), labels)


def test_grid_labels_accepts_channel_and_batch_axes():
    a, b = _scene_8x8(), np.rot90(_scene_8x8()).copy()
    batch = np.stack([a, b])[..., None]  # [2, 8, 8, 1]
    out = grid_labels(batch, 4)
    np.testing.assert_array_equal(out, [grid_labels(a, 4), grid_labels(b, 4)])
    np.testing.assert_array_equal(grid_labels(a[..., None], 4), grid_labels(a, 4))
    np.testing.assert_array_equal(grid_labels_tf(tf.constant(batch), 4), out)


@pytest.mark.parametrize("grid_size", [0, 3, 6, 2.5, -4])
def test_grid_size_must_be_a_power_of_two(grid_size):
    with pytest.raises(UserInputError, match="power of two"):
        grid_labels(np.zeros((8, 8), np.uint8), grid_size)


def test_bad_priority_and_shape_are_user_errors():
    with pytest.raises(UserInputError, match="THING_CLASSES"):
        grid_labels(np.zeros((8, 8), np.uint8), 4, ("car", "person"))
    with pytest.raises(UserInputError, match="not \\[H, W\\]"):
        grid_labels(np.zeros((8, 8, 3), np.uint8), 4)


def _random_label_map(rng, hw):
    pool = np.array([0, ROAD, 23, *THING_LABEL_IDS], np.uint8)
    # Sparse things on background, so blocks hold 0, 1 or several classes.
    weights = np.r_[10.0, 10.0, 10.0, np.ones(len(THING_LABEL_IDS))]
    return rng.choice(pool, size=hw, p=weights / weights.sum())


def test_every_thing_pixel_is_in_a_block_of_equal_or_higher_priority(rng):
    ids = _random_label_map(rng, (37, 53))
    grid = grid_labels(ids, 8)
    rank = np.asarray(priority_rank())
    lut = np.zeros(256, np.int64)
    lut[list(THING_LABEL_IDS)] = np.arange(1, 9)
    rows, cols = np.nonzero(lut[ids])
    block = grid[rows // 8, cols // 8]  # eq. 2
    assert (rank[block] <= rank[lut[ids[rows, cols]]]).all()
    # A block's class is present in it (eq. 3: block = [Gs*c, Gs*(c+1))).
    for r, c in zip(*np.nonzero(grid)):
        assert THING_LABEL_IDS[grid[r, c] - 1] in ids[8 * r:8 * r + 8, 8 * c:8 * c + 8]


@pytest.mark.parametrize("hw, grid_size", [((32, 48), 16), ((37, 53), 8), ((5, 9), 4), ((6, 6), 1)])
def test_numpy_and_tf_agree(rng, hw, grid_size):
    ids = _random_label_map(rng, hw)
    priority = tuple(rng.permutation(DEFAULT_PRIORITY))
    expected = grid_labels(ids, grid_size, priority)
    out = grid_labels_tf(tf.constant(ids), grid_size, priority)
    assert out.dtype == tf.int32
    np.testing.assert_array_equal(out.numpy(), expected)


def test_tf_twin_runs_in_dataset_map_with_dynamic_shapes(rng):
    maps = [_random_label_map(rng, hw)[..., None] for hw in [(16, 24), (21, 13)]]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(maps), output_signature=tf.TensorSpec([None, None, 1], tf.uint8))
    ds = ds.map(lambda ids: grid_labels_tf(ids, 4))
    assert ds.element_spec.shape.as_list() == [None, None]
    for ids, out in zip(maps, ds):
        np.testing.assert_array_equal(out.numpy(), grid_labels(ids, 4))


def test_center_cell_is_eq_2():
    centers = [[0.0, 0.0], [15.99, 16.0], [31.5, 5.2], [-0.25, 47.0]]
    np.testing.assert_array_equal(center_cell(centers, 16), [[0, 0], [0, 1], [1, 0], [-1, 2]])
    assert center_cell(np.zeros((0, 2)), 16).shape == (0, 2)


def test_center_cell_rejects_bad_centers():
    with pytest.raises(UserInputError, match="\\[K, 2\\]"):
        center_cell(np.zeros((3, 3)), 16)
    with pytest.raises(UserInputError, match="NaN"):
        center_cell([[np.nan, 1.0]], 16)


def test_classes_at_centers_looks_up_and_clips():
    grid = np.array([[0, 3, 1], [2, 0, 6]], np.int32)  # a 2x3 grid of 4 px cells
    centers = [[1.0, 5.0], [7.9, 11.9], [4.0, 0.0], [8.5, 12.3], [-0.4, 9.0]]
    np.testing.assert_array_equal(classes_at_centers(grid, centers, 4), [3, 6, 2, 6, 1])


def test_scored_classes_at_centers():
    logits = np.zeros((1, 2, 9), np.float32)
    logits[0, 0, [0, 3]] = [5.0, 1.0]  # background dominates, car is the best thing
    logits[0, 1, 7] = 4.0  # motorcycle
    centers = [[0.0, 0.0], [1.0, 3.0]]
    classes, scores = scored_classes_at_centers(logits, centers, 2)
    np.testing.assert_array_equal(classes, [3, 7])
    e = np.exp
    np.testing.assert_allclose(scores, [e(1) / (e(5) + e(1) + 7), e(4) / (e(4) + 8)], rtol=1e-6)
    classes, _ = scored_classes_at_centers(logits, centers, 2, exclude_background=False)
    np.testing.assert_array_equal(classes, [0, 7])
    probs = np.full((1, 1, 3), 0.2, np.float32)
    probs[0, 0, 2] = 0.6
    classes, scores = scored_classes_at_centers(probs, [[0.5, 0.5]], 2, from_logits=False)
    assert classes.tolist() == [2] and scores.tolist() == pytest.approx([0.6])
