"""export/parity.py turns only cityscapesscripts' empty-curve IndexError into AP = NaN."""

import types

import numpy as np
import pytest

from dcme_keras import evaluation, keys
from dcme_keras.export import parity


def _all_predictions_ignored():
    """Real ``evaluateMatches`` on a split where the car's only prediction lies on void
    pixels and its only ground truth is missed: cityscapesscripts 2.3 indexes an empty
    precision-recall curve there."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as cs_eval

    labels = ["car"]
    gt = {"instID": 26000, "pixelCount": 500, "medDist": -1, "distConf": 0.0,
          "matchedPred": []}
    pred = {"pixelCount": 200, "voidIntersection": 200, "confidence": 0.9, "matchedGt": []}
    matches = {"frame": {"groundTruth": {"car": [gt]}, "prediction": {"car": [pred]}}}
    args = types.SimpleNamespace(overlaps=np.array([0.5]), minRegionSizes=np.array([100]),
                                 distanceThs=np.array([float("inf")]),
                                 distanceConfs=np.array([-float("inf")]),
                                 distanceAvailable=False, instLabels=labels)
    cs_eval.evaluateMatches(matches, args)


def _frame_outputs():
    return {"frame": {keys.DCME: np.zeros((8, 8, 2), np.float32),
                      keys.GRID: np.zeros((1, 1, 9), np.float32)}}


@pytest.fixture
def no_detection(monkeypatch):
    monkeypatch.setattr(evaluation, "detection_accuracy",
                        lambda *a, **k: {"per_threshold": [{"accuracy": 0.0}]})


def test_the_cityscapesscripts_case_is_what_is_caught():
    with pytest.raises(IndexError) as info:
        _all_predictions_ignored()
    assert parity.is_empty_curve_error(info.value)


def test_empty_curve_gives_nan_ap(monkeypatch, no_detection):
    monkeypatch.setattr(evaluation, "evaluate_outputs",
                        lambda *a, **k: _all_predictions_ignored())
    quality = parity._quality("unused", _frame_outputs(), {})
    assert np.isnan(quality["AP"]) and np.isnan(quality["AP50"])
    assert quality["instances"] == 0


def test_an_index_error_of_our_own_code_propagates(monkeypatch, no_detection):
    def buggy_evaluation(*args, **kwargs):
        return [][0]  # e.g. a decoding or inference bug

    monkeypatch.setattr(evaluation, "evaluate_outputs", buggy_evaluation)
    with pytest.raises(IndexError, match="list index out of range"):
        parity._quality("unused", _frame_outputs(), {})
