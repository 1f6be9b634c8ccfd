"""The official evaluator's empty precision-recall curve is answered with AP 0."""

import types

import numpy as np
import pytest
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_eval

from dcme_keras import cityscapes_eval


def _matches_and_args():
    """A split where the car's only prediction lies on void pixels and its only ground
    truth is missed (cityscapesScripts 2.3 indexes an empty curve there), and the person's
    only prediction is its ground truth."""
    car_gt = {"instID": 26000, "pixelCount": 500, "medDist": -1, "distConf": 0.0,
              "matchedPred": []}
    car_pred = {"pixelCount": 200, "voidIntersection": 200, "confidence": 0.9,
                "matchedGt": []}
    person_gt = {"instID": 24000, "pixelCount": 300, "medDist": -1, "distConf": 0.0,
                 "matchedPred": [{"intersection": 300, "pixelCount": 300,
                                  "confidence": 0.8}]}
    person_pred = {"pixelCount": 300, "voidIntersection": 0, "confidence": 0.8,
                   "matchedGt": [{"instID": 24000, "intersection": 300,
                                  "pixelCount": 300, "medDist": -1, "distConf": 0.0}]}
    matches = {"frame": {"groundTruth": {"car": [car_gt], "person": [person_gt]},
                         "prediction": {"car": [car_pred], "person": [person_pred]}}}
    args = types.SimpleNamespace(overlaps=np.array([0.5, 0.75]),
                                 minRegionSizes=np.array([100]),
                                 distanceThs=np.array([float("inf")]),
                                 distanceConfs=np.array([-float("inf")]),
                                 distanceAvailable=False, instLabels=["car", "person"])
    return matches, args


def test_cityscapesscripts_fails_on_the_empty_curve_and_it_is_recognized():
    matches, args = _matches_and_args()
    with pytest.raises(IndexError) as info:
        cs_eval.evaluateMatches(matches, args)
    assert cityscapes_eval.is_empty_curve_error(info.value)
    assert not cityscapes_eval.is_empty_curve_error(IndexError("ours"))


def test_the_adapter_answers_the_empty_curve_with_ap_0_and_scores_the_rest():
    matches, args = _matches_and_args()
    ap = cityscapes_eval._evaluate_matches(matches, args)
    assert ap.shape == (1, 2, 2)
    np.testing.assert_array_equal(ap[0], [[0.0, 0.0], [1.0, 1.0]])  # car 0, person 1
    assert args.instLabels == ["car", "person"]  # the caller's arguments are untouched
