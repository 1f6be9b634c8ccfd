"""export/parity.py lets an IndexError of inference, decoding or evaluation propagate
(the official evaluator's empty curve is answered in dcme_keras/cityscapes_eval.py)."""

import numpy as np
import pytest

from dcme_keras import evaluation, keys
from dcme_keras.export import parity


def _frame_outputs():
    return {"frame": {keys.DCME: np.zeros((8, 8, 2), np.float32),
                      keys.GRID: np.zeros((1, 1, 9), np.float32)}}


@pytest.fixture
def no_detection(monkeypatch):
    monkeypatch.setattr(evaluation, "detection_accuracy",
                        lambda *a, **k: {"per_threshold": [{"accuracy": 0.0}]})


def test_an_index_error_of_our_own_code_propagates(monkeypatch, no_detection):
    def buggy_evaluation(*args, **kwargs):
        return [][0]  # e.g. a decoding or inference bug

    monkeypatch.setattr(evaluation, "evaluate_outputs", buggy_evaluation)
    with pytest.raises(IndexError, match="list index out of range"):
        parity._quality("unused", _frame_outputs(), {})
