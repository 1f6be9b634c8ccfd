"""Class table, grid ids and the priority list."""

import pytest

from dcme_keras import classes


def test_thing_label_ids_match_cityscapes():
    assert classes.THING_LABEL_IDS == (24, 25, 26, 27, 28, 31, 32, 33)
    assert classes.label_id("cargroup") == 26
    assert classes.label_name(33) == "bicycle"


def test_grid_ids_round_trip_and_background():
    lut = classes.label_id_to_grid_lut()
    assert lut[0] == 0 and lut[7] == 0  # unlabeled and road are background
    for grid_id in range(1, 9):
        assert lut[classes.grid_id_to_label_id(grid_id)] == grid_id
    assert classes.grid_id_to_label_id(0) == 0


def test_default_priority_rank():
    rank = classes.priority_rank()
    # grid ids: 1 person, 2 rider, 3 car, 4 truck, 5 bus, 6 train, 7 motorcycle, 8 bicycle
    assert rank == [9, 6, 4, 7, 2, 1, 0, 3, 5]


def test_priority_from_counts_rarest_first_with_stable_ties():
    counts = {"person": 17900, "car": 26900, "rider": 1800, "bicycle": 3700,
              "motorcycle": 730, "truck": 480, "bus": 380, "train": 170}
    assert classes.priority_from_counts(counts) == classes.DEFAULT_PRIORITY
    # Missing classes count as zero; ties keep the default order.
    assert classes.priority_from_counts({"train": 5})[:2] == ("bus", "truck")


def test_bad_priority_and_names_are_rejected():
    with pytest.raises(ValueError, match="each of the 8"):
        classes.priority_rank(("car", "person"))
    with pytest.raises(KeyError, match="unknown Cityscapes class"):
        classes.label_id("spaceship")
