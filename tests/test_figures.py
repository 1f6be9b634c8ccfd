"""Figures: class-map and instance overlays, DCME magnitudes, loss curves, saved PNGs."""

import cv2
import numpy as np
import pytest

from dcme_keras import figures
from dcme_keras.errors import UserInputError


def _gray(h=32, w=64, value=100):
    return np.full((h, w, 3), value, np.uint8)


def test_class_map_paints_each_cell_over_its_block():
    grid = np.zeros((2, 4), np.int32)
    grid[0, 1] = 3  # car, Cityscapes color (0, 0, 142)
    grid[1, 3] = 1  # person, (220, 20, 60)
    out = figures.color_class_map(_gray(), grid, alpha=0.6)
    # 0.4 * 100 + 0.6 * color, per channel; background blends with black.
    np.testing.assert_array_equal(out[0:16, 16:32], np.broadcast_to([40, 40, 125], (16, 16, 3)))
    np.testing.assert_array_equal(out[16:32, 48:64], np.broadcast_to([172, 52, 76], (16, 16, 3)))
    np.testing.assert_array_equal(out[0:16, 0:16], np.full((16, 16, 3), 40))
    np.testing.assert_array_equal(out[16:32, 32:48], np.full((16, 16, 3), 40))


@pytest.mark.parametrize("grid", [np.zeros((2, 4, 1)), np.full((2, 4), 9)])
def test_class_map_rejects_what_is_not_grid_ids(grid):
    with pytest.raises(UserInputError, match="grid ids"):
        figures.color_class_map(_gray(), grid)


def test_instances_are_blended_outlined_and_later_ones_on_top():
    first = np.zeros((32, 64), bool)
    first[4:12, 4:20] = True
    second = np.zeros((32, 64), bool)
    second[8:20, 14:30] = True  # overlaps the first
    out = figures.color_instances(_gray(), [(first, 26, 0.9), (second, 24, 0.4)], alpha=0.5)
    # tab20 colors: (31, 119, 180) then (174, 199, 232); 0.5 * 100 + 0.5 * color.
    np.testing.assert_array_equal(out[6, 6], [66, 110, 140])
    np.testing.assert_array_equal(out[14, 20], [137, 150, 166])
    np.testing.assert_array_equal(out[10, 16], [137, 150, 166])  # second drawn over first
    np.testing.assert_array_equal(out[4, 10], [255, 255, 255])  # the first's top border
    np.testing.assert_array_equal(out[25, 50], [100, 100, 100])  # untouched
    # Bare masks draw the same.
    np.testing.assert_array_equal(figures.color_instances(_gray(), [first, second], alpha=0.5),
                                  out)


def test_instance_mask_of_another_size_is_a_user_error():
    with pytest.raises(UserInputError, match="resolution"):
        figures.color_instances(_gray(), [np.ones((16, 32), bool)])


def test_magnitude_map_scales_lengths_onto_the_colormap():
    dcme = np.array([[[0, 0], [3, 4], [6, 8]]], np.float32)  # lengths 0, 5, 10
    magma = {0.0: [0, 0, 4], 0.5: [183, 55, 121], 1.0: [252, 253, 191]}
    np.testing.assert_array_equal(figures.dcme_magnitude_map(dcme)[0],
                                  [magma[0.0], magma[0.5], magma[1.0]])
    # A fixed top clips longer vectors.
    np.testing.assert_array_equal(figures.dcme_magnitude_map(dcme, max_magnitude=5.0)[0],
                                  [magma[0.0], magma[1.0], magma[1.0]])
    # No instance at all stays at the bottom instead of dividing by zero.
    np.testing.assert_array_equal(figures.dcme_magnitude_map(np.zeros((2, 2, 2)))[1, 1],
                                  magma[0.0])


def test_fig4_returns_the_image_it_saves_and_carries_the_caption(tmp_path):
    image = _gray(64, 128)
    grid = np.zeros((4, 8), np.int32)
    grid[1, 2] = 3
    mask = np.zeros((64, 128), bool)
    mask[10:30, 20:50] = True
    path = tmp_path / "new" / "fig4.png"
    pixels = figures.fig4_overlay(image, grid, [(mask, 26, 0.9)], path=path,
                                  caption="synthetic Cityscapes; CPU")
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[1] > 3 * 128
    saved = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(saved, pixels)
    plain = figures.fig4_overlay(image, grid, [(mask, 26, 0.9)])
    assert plain.shape[0] < pixels.shape[0]  # the caption takes its own line


def test_magnitude_figure_is_written(tmp_path):
    dcme = np.zeros((32, 64, 2), np.float32)
    dcme[4:12, 4:20] = (2.0, -3.0)
    pixels = figures.magnitude_figure(dcme, path=tmp_path / "mag.png", caption="synthetic")
    assert cv2.imread(str(tmp_path / "mag.png")).shape == pixels.shape


def test_loss_curves_read_the_csv_log(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text("epoch,grid_accuracy,loss,val_grid_accuracy,val_loss\n"
                   "0,0.5,12.0,0.4,13.0\n1,0.6,6.5,,7.5\n")
    history = figures.read_history(log)
    np.testing.assert_array_equal(history["loss"], [12.0, 6.5])
    assert history["val_grid_accuracy"][0] == 0.4 and np.isnan(history["val_grid_accuracy"][1])
    pixels = figures.loss_curves(log, tmp_path / "curves.png", caption="synthetic; CPU")
    assert cv2.imread(str(tmp_path / "curves.png")).shape == pixels.shape


def test_loss_curves_of_a_missing_or_empty_log_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        figures.loss_curves(tmp_path / "missing.csv", tmp_path / "out.png")
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(UserInputError, match="no epochs"):
        figures.loss_curves(tmp_path / "empty.csv", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
