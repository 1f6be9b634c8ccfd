"""Tests for dcme_keras.metrics: hand-made IoU flavours, border error, the Keras aIoU."""

import keras
import numpy as np
import pytest

from dcme_keras.errors import UserInputError
from dcme_keras.metrics import (
    BinaryIoUFromLogits,
    aiou,
    border_distances,
    border_error,
    boundary,
    class_ious,
    iiou,
    intersection_union,
    iou,
    miou,
)


def _box(hw, rows, cols):
    mask = np.zeros(hw, bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


# Three 4x4 instances whose counts are easy to follow:
#   0: pred 2 px inside gt 4 px           -> I=2, U=4, IoU 0.5
#   1: pred == gt, 4 px                   -> I=4, U=4, IoU 1
#   2: pred 4 px disjoint from gt 4 px    -> I=0, U=8, IoU 0
PRED = np.stack([_box((4, 4), (0, 1), (0, 2)), _box((4, 4), (1, 3), (1, 3)),
                 _box((4, 4), (0, 2), (0, 2))])
GT = np.stack([_box((4, 4), (0, 2), (0, 2)), _box((4, 4), (1, 3), (1, 3)),
               _box((4, 4), (2, 4), (2, 4))])


def test_iou_hand_values_and_empty_convention():
    np.testing.assert_array_equal(intersection_union(PRED, GT)[0], [2, 4, 0])
    np.testing.assert_array_equal(intersection_union(PRED, GT)[1], [4, 4, 8])
    np.testing.assert_allclose(iou(PRED, GT), [0.5, 1.0, 0.0])
    empty = np.zeros((3, 3), bool)
    assert iou(empty, empty) == 1.0  # two empty masks agree
    assert iou(empty, ~empty) == 0.0
    assert iou(~empty, empty) == 0.0
    assert iou(np.eye(2, dtype=bool), np.ones((2, 2), bool)) == 0.5


def test_iou_shape_mismatch_raises():
    with pytest.raises(UserInputError, match="same shape"):
        iou(np.zeros((3, 3)), np.zeros((3, 4)))


def test_iiou_and_aiou_hand_values():
    assert iiou(PRED, GT) == pytest.approx(0.5)
    # Batches of 2: (2+4)/(4+4) = 0.75, then 0/8 = 0 -> mean 0.375.
    assert aiou(PRED, GT, batch_size=2) == pytest.approx(0.375)
    # One batch: pooled (2+4+0)/(4+4+8) = 0.375 as well, by coincidence; batch 1 = iIoU.
    assert aiou(PRED, GT, batch_size=3) == pytest.approx(6 / 16)
    assert aiou(PRED, GT, batch_size=1) == pytest.approx(0.5)
    # Unlike iIoU, aIoU depends on the order: batches (1, 2), (0) give 4/12 and 0.5.
    assert aiou(PRED[[1, 2, 0]], GT[[1, 2, 0]], batch_size=2) == pytest.approx(
        (4 / 12 + 0.5) / 2)
    with pytest.raises(UserInputError):
        aiou(PRED, GT, batch_size=0)
    with pytest.raises(UserInputError, match=r"\[N, H, W\]"):
        aiou(PRED[0], GT[0])


def test_class_ious_both_poolings_and_miou():
    # Cars are instances 0 and 2: pooled (2 + 0) / (4 + 8), or the mean of 0.5 and 0.
    labels = ["car", "person", "car"]
    pixels = class_ious(PRED, GT, labels)
    assert pixels == {"car": pytest.approx(2 / 12), "person": 1.0}
    instances = class_ious(PRED, GT, labels, pooling="instances")
    assert instances == {"car": pytest.approx(0.25), "person": 1.0}
    assert miou(PRED, GT, labels) == pytest.approx((2 / 12 + 1) / 2)
    assert miou(PRED, GT, labels, pooling="instances") == pytest.approx(0.625)
    with pytest.raises(UserInputError):
        class_ious(PRED, GT, ["car"])
    with pytest.raises(UserInputError):
        class_ious(PRED, GT, labels, pooling="mean")


def test_boundary_closes_at_the_array_edge():
    full = np.ones((3, 3), bool)
    expected = np.ones((3, 3), bool)
    expected[1, 1] = False
    np.testing.assert_array_equal(boundary(full), expected)
    np.testing.assert_array_equal(boundary(np.zeros((3, 3), bool)), np.zeros((3, 3), bool))


def test_border_distances_shifted_square():
    gt = _box((8, 8), (2, 6), (2, 6))
    pred = _box((8, 8), (2, 6), (3, 7))  # one column to the right
    # Predicted outline, row-major: row 2 cols 3..6, rows 3-4 cols 3 and 6, row 5 cols 3..6.
    expected = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(border_distances(pred, gt), expected)
    np.testing.assert_array_equal(border_distances(gt, gt), np.zeros(12))


def test_border_distances_empty_cases():
    square = _box((6, 6), (1, 4), (1, 4))
    empty = np.zeros((6, 6), bool)
    assert border_distances(empty, square).shape == (0,)
    assert np.isinf(border_distances(square, empty)).all()
    assert border_distances(square, empty).shape == (8,)
    with pytest.raises(UserInputError):
        border_distances(np.stack([square, square]), np.stack([square, square]))


def test_border_error_mixes_sizes_and_bins():
    gt = _box((8, 8), (2, 6), (2, 6))
    pred = _box((8, 8), (2, 6), (3, 7))
    far_gt = _box((40, 40), (0, 2), (0, 2))
    far_pred = _box((40, 40), (30, 31), (30, 31))  # one pixel, about 40 px away
    stats = border_error([(pred, gt), (far_pred, far_gt)], max_px=3)
    assert len(stats.distances) == 13
    assert stats.distances[-1] == pytest.approx(np.hypot(29, 29))
    np.testing.assert_array_equal(stats.bin_px, [0, 1, 2, 3])
    np.testing.assert_allclose(stats.histogram, [6 / 13, 6 / 13, 0, 1 / 13])
    assert stats.mean == pytest.approx((6 + np.hypot(29, 29)) / 13)
    empty = border_error([])
    assert np.isnan(empty.mean) and empty.histogram.sum() == 0


def _logits(mask):
    return np.where(mask, 3.0, -3.0).astype(np.float32)[..., None]


def test_keras_metric_averages_batches_like_aiou():
    metric = BinaryIoUFromLogits()
    metric.update_state(GT[:2, ..., None].astype(np.float32), _logits(PRED[:2]))
    assert float(metric.result()) == pytest.approx(0.75)
    metric.update_state(GT[2:, ..., None].astype(np.float32), _logits(PRED[2:]))
    assert float(metric.result()) == pytest.approx(aiou(PRED, GT, batch_size=2)) == 0.375
    metric.reset_state()
    empty = np.zeros((1, 4, 4, 1), np.float32)
    metric.update_state(empty, _logits(empty[..., 0] > 0))
    assert float(metric.result()) == 1.0


def test_keras_metric_matches_numpy_in_evaluate(rng):
    y = (rng.uniform(size=(10, 8, 8, 1)) > 0.5).astype(np.float32)
    logits = rng.normal(size=(10, 8, 8, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Identity(name="identity")])
    model.compile(loss="mse", metrics=[BinaryIoUFromLogits()])
    result = model.evaluate(logits, y, batch_size=4, verbose=0, return_dict=True)
    expected = aiou(logits[..., 0] > 0, y[..., 0] > 0.5, batch_size=4)
    assert result["aiou"] == pytest.approx(expected, rel=1e-6)


def test_keras_metric_config_round_trip():
    metric = BinaryIoUFromLogits(threshold=0.5, name="val_iou")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, BinaryIoUFromLogits)
    assert restored.threshold == 0.5 and restored.name == "val_iou"


def test_keras_aiou_on_a_dataset_of_unknown_length_counts_only_real_batches():
    import keras
    import tensorflow as tf

    from dcme_keras.metrics import BinaryIoUFromLogits, aiou

    rng = np.random.default_rng(3)
    gt = (rng.random((20, 8, 8, 1)) > 0.5).astype(np.float32)
    logits = np.where(rng.random((20, 8, 8, 1)) > 0.3, 2 * gt - 1, 1 - 2 * gt).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((logits, gt)).batch(4)
    ds = ds.filter(lambda x, y: True)  # cardinality becomes unknown, as in the pipelines
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Identity()(inp))
    model.compile(loss="mse", metrics=[BinaryIoUFromLogits()])
    got = model.evaluate(ds, verbose=0, return_dict=True)["aiou"]
    want = aiou(logits[..., 0] > 0, gt[..., 0] > 0.5, batch_size=4)
    assert abs(got - want) < 1e-5
