"""``dcme-keras evaluate annotator`` writes its three outputs together or not at all.

The end-to-end run of the command is in ``test_train_annotator.py``, beside the model it
evaluates."""

import json

import pytest

from dcme_keras import figures
from dcme_keras.cli import evaluate_annotator

_BORDER = {"bin_px": list(range(11)), "histogram": [1.0] + [0.0] * 10, "mean": 0.0}


def test_outputs_are_all_written(tmp_path):
    out = tmp_path / "eval"
    evaluate_annotator.save_outputs(out, {"instances": 1}, "table", {"m": _BORDER},
                                    caption="synthetic")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [evaluate_annotator.RESULT_FILE, evaluate_annotator.TABLES_FILE,
         evaluate_annotator.FIGURE_FILE])
    assert json.loads((out / evaluate_annotator.RESULT_FILE).read_text()) == {"instances": 1}


def test_a_failing_figure_leaves_no_json_and_no_tables(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected: cannot draw")

    monkeypatch.setattr(figures, "border_histogram_figure", broken)
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="injected"):
        evaluate_annotator.save_outputs(out, {"instances": 1}, "table", {"m": _BORDER},
                                        caption="synthetic")
    assert not out.exists()
