"""Tests for dcme_keras.extreme_points: points, point channel, crop and paste back."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dcme_keras.errors import UserInputError
from dcme_keras.extreme_points import (
    crop_and_resize,
    crop_and_resize_tf,
    crop_box,
    crop_box_tf,
    extreme_points,
    extreme_points_tf,
    make_input,
    make_input_tf,
    paste_back,
    point_channel,
    point_channel_tf,
    quadrilateral_mask,
)


def _mask(rows):
    """A mask from rows of '#' (in) and '.' (out)."""
    return np.array([[c == "#" for c in row] for row in rows])


# Expected points are (x, y), ordered left, top, right, bottom.
HAND_MADE = {
    "rectangle, even ties take the lower middle": (
        [".....",
         ".##..",
         ".##..",
         ".##..",
         "....."], [[1, 2], [1, 1], [2, 2], [1, 3]]),
    "single pixel": (
        [".....",
         ".....",
         "...#.",
         ".....",
         "....."], [[3, 2], [3, 2], [3, 2], [3, 2]]),
    "diagonal": (
        ["#....",
         ".#...",
         "..#..",
         "...#.",
         "....#"], [[0, 0], [0, 0], [4, 4], [4, 4]]),
    "full mask touches every border": (
        ["#####",
         "#####",
         "#####",
         "#####",
         "#####"], [[0, 2], [2, 0], [4, 2], [2, 4]]),
    "plus": (
        ["..#..",
         "..#..",
         "#####",
         "..#..",
         "..#.."], [[0, 2], [2, 0], [4, 2], [2, 4]]),
    # Left column holds rows 0, 1, 6, 7 (two parts): the median pixel is row 1, on the
    # object, not the span's middle row 3.5, which is off it.
    "split parts on the left side": (
        ["###.....",
         "###.....",
         "........",
         "...###..",
         "...####.",
         "........",
         "##......",
         "##......"], [[0, 1], [1, 0], [6, 4], [0, 7]]),
    "L shape on the border": (
        ["........",
         "........",
         "......##",
         "......##",
         "......##",
         "......##",
         "########",
         "########"], [[0, 6], [6, 2], [7, 4], [3, 7]]),
}


@pytest.mark.parametrize("name", list(HAND_MADE))
def test_extreme_points_hand_made(name):
    rows, expected = HAND_MADE[name]
    mask = _mask(rows)
    points = extreme_points(mask)
    assert points.dtype == np.int32 and points.shape == (4, 2)
    np.testing.assert_array_equal(points, expected)
    np.testing.assert_array_equal(extreme_points_tf(tf.constant(mask)).numpy(), expected)


def test_extreme_points_accepts_channel_axis_and_ints():
    rows, expected = HAND_MADE["plus"]
    mask = _mask(rows).astype(np.uint8)[..., None] * 255
    np.testing.assert_array_equal(extreme_points(mask), expected)
    np.testing.assert_array_equal(extreme_points_tf(tf.constant(mask)), expected)


def test_extreme_points_bad_input():
    with pytest.raises(UserInputError, match="empty"):
        extreme_points(np.zeros((5, 5), bool))
    with pytest.raises(UserInputError, match="not \\[H, W\\]"):
        extreme_points(np.ones((5, 5, 3), bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
        extreme_points_tf(tf.zeros((5, 5), tf.bool))


def _blob(rng, hw, n=3):
    """A random union of ellipses, possibly cut by the image border."""
    mask = np.zeros(hw, np.uint8)
    for _ in range(n):
        center = (int(rng.integers(0, hw[1])), int(rng.integers(0, hw[0])))
        axes = (int(rng.integers(1, hw[1] // 3)), int(rng.integers(1, hw[0] // 3)))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, cv2.FILLED)
    return mask.astype(bool)


def test_extreme_points_random_masks_numpy_tf_and_properties(rng):
    extract = tf.function(extreme_points_tf,
                          input_signature=[tf.TensorSpec([None, None], tf.bool)])
    for _ in range(20):
        mask = _blob(rng, (int(rng.integers(8, 40)), int(rng.integers(8, 40))))
        points = extreme_points(mask)
        np.testing.assert_array_equal(extract(mask).numpy(), points)
        assert mask[points[:, 1], points[:, 0]].all()  # every point is an object pixel
        rows, cols = np.nonzero(mask)
        assert (points[0, 0], points[1, 1], points[2, 0], points[3, 1]) == (
            cols.min(), rows.min(), cols.max(), rows.max())


def test_point_channel_circles_hand_made():
    points = [[0, 4], [4, 0], [8, 4], [4.5, 7.5]]  # the last rounds half up to (5, 8)
    out = point_channel(points, (9, 9), radius=1)
    assert out.dtype == np.float32
    expected = np.zeros((9, 9), np.float32)
    for x, y in [(0, 4), (4, 0), (8, 4), (5, 8)]:
        for dx, dy in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]:
            if 0 <= x + dx < 9 and 0 <= y + dy < 9:
                expected[y + dy, x + dx] = 1.0
    np.testing.assert_array_equal(out, expected)
    assert out.sum() == 16  # four discs of 5 pixels, each cut to 4 by the border
    single = point_channel(points, (9, 9), radius=0)
    assert single.sum() == 4 and single[8, 5] == 1.0


def test_point_channel_gaussian_half_maximum_at_half_sigma():
    out = point_channel([[2, 2], [6, 2], [2, 6], [6, 6]], (9, 9), mode="gaussian", sigma=4.0)
    assert out[2, 2] == pytest.approx(1.0)
    assert out[2, 0] == pytest.approx(0.5)  # 2 px = sigma / 2 from (2, 2)
    assert out[4, 4] == pytest.approx(2.0 ** -2)  # sqrt(8) px from all four points


@pytest.mark.parametrize("mode", ["circle", "gaussian"])
def test_point_channel_numpy_and_tf_agree(rng, mode):
    for radius in [0, 1, 3, 6]:
        hw = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        points = rng.uniform(-0.5, [hw[1] - 0.5, hw[0] - 0.5], (4, 2))
        points[0] = [0.5, 2.5]  # exact halves round up in both backends
        expected = point_channel(points, hw, radius=radius, mode=mode, sigma=3.0)
        out = point_channel_tf(tf.constant(points, tf.float32), hw, radius=radius,
                               mode=mode, sigma=3.0)
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("points, match", [
    ([[1, 1], [2, 2], [3, 3]], "exactly 4"),
    (np.ones((5, 2)), "exactly 4"),
    ([[1, 1], [2, 2], [3, 3], [9.5, 3]], "outside the 10x8"),
    ([[1, 1], [2, 2], [3, 3], [3, -0.6]], "outside"),
    ([[1, 1], [2, 2], [3, 3], [3, np.nan]], "NaN"),
    ([[4, 4]] * 4, "same"),
])
def test_bad_points_are_user_errors(points, match):
    with pytest.raises(UserInputError, match=match):
        point_channel(points, (8, 10))
    with pytest.raises(UserInputError, match=match):
        crop_box(points, (8, 10))


def test_points_on_the_outer_half_pixel_are_inside():
    out = point_channel([[-0.5, -0.5], [9.49, 0], [0, 7.49], [5, 5]], (8, 10), radius=0)
    assert out[0, 0] == out[0, 9] == out[7, 0] == 1.0


def test_bad_options_are_user_errors():
    points = [[1, 4], [4, 1], [7, 4], [4, 7]]
    with pytest.raises(UserInputError, match="radius"):
        point_channel(points, (9, 9), radius=1.5)
    with pytest.raises(UserInputError, match="mode"):
        point_channel(points, (9, 9), mode="square")
    with pytest.raises(UserInputError, match="sigma"):
        point_channel(points, (9, 9), mode="gaussian", sigma=0.0)
    with pytest.raises(UserInputError, match="margin"):
        crop_box(points, (9, 9), margin=-0.1)


def test_crop_box_hand_made():
    points = [[10, 40], [30, 20], [50, 45], [28, 60]]  # box x 10..50, y 20..60: 41 x 41
    assert crop_box(points, (80, 100), margin=0.1) == (6, 16, 55, 65)  # 4.1 -> 4 px
    assert crop_box(points, (80, 100), margin=0.0) == (10, 20, 51, 61)
    assert crop_box(points, (62, 52), margin=0.1) == (6, 16, 52, 62)  # clipped
    # 0.1 * 5 = 0.5 rounds half up; float points go to their pixels first.
    assert crop_box([[2.4, 3], [3, 2], [6.4, 4], [4, 6]], (20, 20)) == (1, 1, 8, 8)


def test_crop_box_numpy_and_tf_agree(rng):
    for _ in range(30):
        hw = (int(rng.integers(4, 200)), int(rng.integers(4, 200)))
        points = rng.uniform(-0.5, [hw[1] - 0.5, hw[0] - 0.5], (4, 2))
        margin = float(rng.choice([0.0, 0.1, 0.25, 0.5]))
        expected = crop_box(points, hw, margin)
        out = crop_box_tf(tf.constant(points), tf.constant(hw), margin)
        assert tuple(out.numpy().tolist()) == expected


def test_crop_and_resize_identity_and_point_mapping():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    points = [[0, 1], [1, 0], [3, 2], [2, 3]]
    crop, inside, box = crop_and_resize(image, points, out_size=4, margin=0.0)
    assert box == (0, 0, 4, 4) and crop.dtype == np.float32 and crop.shape == (4, 4, 3)
    np.testing.assert_array_equal(crop, image)
    np.testing.assert_allclose(inside, points)
    # 2x up: u = (x - x0 + 0.5) * 2 - 0.5.
    _, inside, box = crop_and_resize(image, points, out_size=8, margin=0.0)
    np.testing.assert_allclose(inside, [[0.5, 2.5], [2.5, 0.5], [6.5, 4.5], [4.5, 6.5]])
    flat, _, _ = crop_and_resize(image[..., 0], points, out_size=8)
    assert flat.shape == (8, 8)
    single, _, _ = crop_and_resize(image[..., :1], points, out_size=8)
    assert single.shape == (8, 8, 1)


@pytest.mark.parametrize("hw, out_size", [((60, 80), 16), ((30, 20), 64), ((1000, 40), 32)])
def test_crop_and_resize_numpy_and_tf_agree(rng, hw, out_size):
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    for _ in range(5):
        points = rng.uniform(-0.5, [hw[1] - 0.5, hw[0] - 0.5], (4, 2))
        crop, inside, box = crop_and_resize(image, points, out_size)
        crop_tf, inside_tf, box_tf = crop_and_resize_tf(tf.constant(image), points, out_size)
        assert tuple(box_tf.numpy().tolist()) == box
        np.testing.assert_allclose(inside_tf.numpy(), inside, atol=1e-4)
        np.testing.assert_allclose(crop_tf.numpy(), crop, atol=1e-2)


def test_make_input_layout_and_tf_twin(rng):
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = _blob(rng, (48, 64))
    points = extreme_points(mask)
    net_in = make_input(image, points, size=32, radius=2)
    assert net_in.shape == (32, 32, 4) and net_in.dtype == np.float32
    crop, inside, _ = crop_and_resize(image, points, 32)
    np.testing.assert_allclose(net_in[..., :3], crop / 255.0, atol=1e-6)
    assert set(np.unique(net_in[..., 3])) == {0.0, 1.0}
    centers = np.floor(inside + 0.5).astype(int)
    assert (net_in[centers[:, 1], centers[:, 0], 3] == 1.0).all()
    make = tf.function(lambda im, m: make_input_tf(im, extreme_points_tf(m), size=32, radius=2),
                       input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                        tf.TensorSpec([None, None], tf.bool)])
    out = make(image, mask)
    assert out.shape.as_list() == [32, 32, 4]
    np.testing.assert_allclose(out.numpy(), net_in, atol=1e-4)


def test_make_input_tf_static_shape_in_dataset_map(rng):
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(20, 30), (41, 17)]]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    points = tf.constant([[1.0, 8.0], [5.0, 2.0], [12.0, 9.0], [6.0, 14.0]])
    ds = ds.map(lambda im: make_input_tf(im, points, size=16, mode="gaussian"))
    assert ds.element_spec.shape.as_list() == [16, 16, 4]
    for image, out in zip(images, ds):
        expected = make_input(image, points.numpy(), size=16, mode="gaussian")
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


def test_make_input_rejects_non_rgb_uint8():
    points = [[1, 4], [4, 1], [7, 4], [4, 7]]
    with pytest.raises(UserInputError, match="uint8"):
        make_input(np.zeros((9, 9, 3), np.float32), points)
    with pytest.raises(UserInputError, match="uint8"):
        make_input(np.zeros((9, 9), np.uint8), points)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


# At 32 px the 200 px tall masks shrink 6x, so thin parts blur away.
@pytest.mark.parametrize("out_size, min_iou", [(32, 0.9), (128, 0.98)])
def test_paste_back_of_crop_round_trip(rng, out_size, min_iou):
    for hw in [(64, 64), (48, 96), (200, 64)]:
        for _ in range(4):
            mask = _blob(rng, hw)
            if mask.sum() < 30:
                continue
            points = extreme_points(mask)
            prob, _, box = crop_and_resize(mask, points, out_size)
            back = paste_back(prob, box, hw)
            assert back.dtype == bool and back.shape == hw
            assert not back[:, :box[0]].any() and not back[:box[1]].any()
            assert _iou(back, mask) > min_iou


def test_paste_back_hand_made_and_bad_box():
    out = paste_back(np.ones((4, 4, 1), np.float32), (2, 1, 5, 3), (4, 6))
    expected = np.zeros((4, 6), bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(out, expected)
    assert not paste_back(np.full((4, 4), 0.4), (2, 1, 5, 3), (4, 6)).any()
    with pytest.raises(UserInputError, match="box"):
        paste_back(np.ones((4, 4)), (2, 1, 7, 3), (4, 6))
    with pytest.raises(UserInputError, match="box"):
        paste_back(np.ones((4, 4)), (2, 1, 2, 3), (4, 6))


def test_quadrilateral_mask_hand_made():
    diamond = quadrilateral_mask([(0, 2), (2, 0), (4, 2), (2, 4)], (5, 5))
    expected = np.array([[0, 0, 1, 0, 0],
                         [0, 1, 1, 1, 0],
                         [1, 1, 1, 1, 1],
                         [0, 1, 1, 1, 0],
                         [0, 0, 1, 0, 0]], bool)
    np.testing.assert_array_equal(diamond, expected)
    # The extreme points of a box's quadrilateral are the box's side midpoints.
    box = np.zeros((6, 9), bool)
    box[1:6, 2:7] = True
    quad = quadrilateral_mask(extreme_points(box), box.shape)
    assert quad.dtype == bool and quad.shape == (6, 9)
    assert not (quad & ~box).any()  # inside the box
    assert not quad[1, 2] and not quad[5, 6]  # but not its corners
    np.testing.assert_array_equal(extreme_points(quad), extreme_points(box))


def test_quadrilateral_mask_bad_points():
    with pytest.raises(UserInputError, match="outside"):
        quadrilateral_mask([(0, 2), (2, 0), (9, 2), (2, 4)], (5, 5))
    with pytest.raises(UserInputError, match=r"\[4, 2\]"):
        quadrilateral_mask([(0, 2), (2, 0)], (5, 5))
