"""The int8 annotator the package ships (``dcme_keras/models_data/``, issue 11).

``ExtremePointsAnnotator()`` and ``dcme-keras annotate`` without ``--model`` use it. It is
checked on a synthetic frame the test renders (a seed no training frame used): on its
cars the network must beat the filled quadrilateral of the same 4 clicks, the baseline
a model that learned nothing would match.
"""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dcme_keras import runtime
from dcme_keras.data.synthetic import rasterize, render_frame
from dcme_keras.errors import UserInputError
from dcme_keras.extreme_points import extreme_points, paste_back, quadrilateral_mask

MAX_BYTES = 5 * 1024 * 1024


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture(scope="module")
def cars():
    """(image, [car masks]) of a rendered 512x1024 frame, cars of at least 400 px."""
    image, annotation = render_frame(np.random.default_rng(12345), (512, 1024))
    ids, _ = rasterize(annotation)
    masks = [ids == v for v in np.unique(ids) if v // 1000 == 26 and (ids == v).sum() >= 400]
    assert len(masks) >= 2
    return image, masks


def test_bundled_model_and_sidecar_ship_with_provenance():
    path = runtime.BUNDLED_ANNOTATOR
    assert path.is_file() and path.stat().st_size <= MAX_BYTES
    meta = runtime.load_metadata(path)
    assert meta["kind"] == "annotator" and meta["quantization"] == "int8"
    provenance = meta["provenance"]
    for key in ("command", "train_command", "data", "seed", "train_cpu_seconds",
                "train_hardware", "metrics_full_resolution_percent"):
        assert key in provenance, key
    assert "--seed=0" in provenance["train_command"]
    assert {"synthetic_val", "realdata"} <= set(provenance["metrics_full_resolution_percent"])


def test_default_annotator_beats_the_quadrilateral_on_a_new_synthetic_frame(cars):
    image, masks = cars
    annotator = runtime.ExtremePointsAnnotator()
    assert annotator.model.metadata == runtime.load_metadata(runtime.BUNDLED_ANNOTATOR)
    network, baseline = [], []
    for mask in masks:
        points = extreme_points(mask)
        network.append(_iou(annotator.segment(image, points), mask))
        baseline.append(_iou(quadrilateral_mask(points, mask.shape), mask))
    assert np.mean(network) > np.mean(baseline) + 0.05
    assert np.mean(network) > 0.7


def test_annotate_cli_without_model_uses_the_bundled_one(cars, tmp_path):
    image, masks = cars
    cv2.imwrite(str(tmp_path / "frame.png"), image[..., ::-1])
    points = " ".join(f"{x},{y}" for x, y in extreme_points(masks[0]))
    out = subprocess.run(
        [sys.executable, "-m", "dcme_keras.cli.main", "annotate", str(tmp_path / "frame.png"),
         f"--points={points}", "--format=labelme", f"--out={tmp_path / 'frame.json'}",
         "--noprogress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    shapes = json.loads((tmp_path / "frame.json").read_text())["shapes"]
    assert shapes and {(s["label"], s["group_id"]) for s in shapes} == {("car", 0)}
    # The object is the union of its parts, as labelme joins shapes of one group_id.
    drawn = np.zeros(masks[0].shape, np.uint8)
    for shape in shapes:
        cv2.fillPoly(drawn, [np.round(np.array(shape["points"])).astype(np.int32)], 1)
    assert _iou(drawn.astype(bool), masks[0]) > 0.6


def test_missing_bundled_model_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "BUNDLED_ANNOTATOR", tmp_path / "none.tflite")
    with pytest.raises(UserInputError, match="bundled annotator .* is missing"):
        runtime.ExtremePointsAnnotator()


def test_the_sidecar_threshold_is_the_default_and_an_argument_overrides_it(cars, tmp_path):
    image, masks = cars
    points = extreme_points(masks[0])
    model = tmp_path / "annotator.tflite"
    shutil.copyfile(runtime.BUNDLED_ANNOTATOR, model)
    meta = runtime.load_metadata(runtime.BUNDLED_ANNOTATOR)
    meta["threshold"] = 0.3
    runtime.metadata_path(model).write_text(json.dumps(meta))
    annotator = runtime.ExtremePointsAnnotator(model)
    assert annotator.threshold == 0.3
    prob, box = annotator.probability(image, points)
    np.testing.assert_array_equal(annotator.segment(image, points),
                                  paste_back(prob, box, image.shape[:2], 0.3))
    assert runtime.ExtremePointsAnnotator(model, threshold=0.6).threshold == 0.6
    del meta["threshold"]
    runtime.metadata_path(model).write_text(json.dumps(meta))
    assert runtime.ExtremePointsAnnotator(model).threshold == runtime.DEFAULT_THRESHOLD
    with pytest.raises(UserInputError, match="threshold"):
        runtime.ExtremePointsAnnotator(model, threshold=1.5)
