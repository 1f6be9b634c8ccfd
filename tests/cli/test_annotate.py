"""``dcme-keras annotate`` and ``dcme_keras.annotate``'s Keras annotator.

The models are hand-set, not trained, so their masks are known: the points model's logits
are ``20 * point_channel - 10`` (a disc of radius 3 crop pixels around each click), the
RGB-only model's are +5 everywhere (the whole crop box). Every CLI case runs in one
subprocess (``_DRIVER``), so TensorFlow is imported once and the command's absl flags
never meet another module's in the pytest process.
"""

import json
import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from dcme_keras import annotate, keys
from dcme_keras import extreme_points as ep
from dcme_keras.errors import UserInputError
from dcme_keras.runtime import ExtremePointsAnnotator, box_to_points

SIZE = 32
HW = (96, 128)
POINTS = [[30, 50], [52, 20], [90, 45], [60, 80]]
POINTS_TEXT = " ".join(f"{x},{y}" for x, y in POINTS)
BOX = [20, 15, 70, 60]


def _points_model(channels=4, outputs=keys.MASK):
    """A 1x1 convolution of the input: logits 20 * point channel - 10 (or +5 on RGB)."""
    image = keras.Input((SIZE, SIZE, channels), name="image")
    logits = keras.layers.Conv2D(1, 1, name="mask_logits")(image)
    model = keras.Model(image, {outputs: logits})
    kernel = np.zeros((1, 1, channels, 1), np.float32)
    if channels == 4:
        kernel[0, 0, 3, 0] = 20.0
    model.layers[-1].set_weights([kernel, np.array([-10.0 if channels == 4 else 5.0],
                                                   np.float32)])
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Images, models (.keras with config.json, .tflite, wrong kinds) and requests."""
    root = tmp_path_factory.mktemp("annotate")
    rng = np.random.default_rng(0)
    for name in ("a_leftImg8bit.png", "b.png"):
        cv2.imwrite(str(root / name), rng.integers(0, 256, (*HW, 3), dtype=np.uint8))
    (root / "broken.png").write_text("not an image")
    for name, channels in (("points", 4), ("rgb", 3)):
        (root / name).mkdir()
        _points_model(channels).save(root / name / "model.keras")
        annotate.write_config(root / name, annotate.AnnotatorConfig(
            size=SIZE, levels=3, filters=1, points=channels == 4))
    _points_model(outputs=keys.DCME).save(root / "dcme.keras")
    (root / "text.keras").write_text("hello")
    (root / "model.h5").write_bytes(b"\x89HDF")

    from dcme_keras.export.convert import convert, model_metadata, write_tflite

    model = _points_model()
    write_tflite(convert(model), root / "points.tflite",
                 model_metadata(model, quantization="float32"))
    requests = [{"image": "a_leftImg8bit.png", "objects": [
                    {"label": "car", "points": POINTS},
                    {"label": "person", "points": [[5, 70], [12, 60], [25, 75], [14, 90]]}]},
                {"image": "b.png", "objects": [{"points": POINTS}]}]
    (root / "requests.json").write_text(json.dumps(requests))
    bad = [requests[0], {"image": "b.png", "objects": [
        {"points": [[5, 5], [6, 4], [200, 5], [6, 6]]}]}]
    (root / "bad_requests.json").write_text(json.dumps(bad))
    (root / "box_requests.json").write_text(json.dumps([
        {"image": "b.png", "objects": [{"label": "car", "box": BOX}]}]))
    (root / "both.json").write_text(json.dumps([
        {"image": "b.png", "objects": [{"points": POINTS, "box": BOX}]}]))
    return root


_DRIVER = textwrap.dedent("""
    import contextlib, io, json, os, sys
    from absl import flags
    from dcme_keras.cli import main
    os.chdir(sys.argv[1])
    results = []
    for argv in json.loads(sys.argv[2]):
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main.run(["dcme-keras", "annotate", *argv])
            except SystemExit as exit_:
                code = exit_.code or 0
        flags.FLAGS.unparse_flags()
        results.append({"rc": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    print("RESULTS" + json.dumps(results))
""")


GOOD = {
    "labelme": ["a_leftImg8bit.png", "--model", "points/model.keras", "--points", POINTS_TEXT,
                "--format", "labelme", "--tolerance_px", "0", "--out", "out/labelme.json"],
    "cityscapes": ["a_leftImg8bit.png", "--model", "points/model.keras", "--points",
                   POINTS_TEXT, "--format", "cityscapes", "--tolerance_px", "0", "--out",
                   "out/cityscapes.json"],
    "coco": ["a_leftImg8bit.png", "--model", "points/model.keras", "--points", POINTS_TEXT,
             "--format", "coco", "--tolerance_px", "0", "--out", "out/coco.json"],
    "tflite": ["a_leftImg8bit.png", "--model", "points.tflite", "--points", POINTS_TEXT,
               "--format", "coco", "--tolerance_px", "0", "--out", "out/tflite_coco.json"],
    "requests": ["--requests", "requests.json", "--model", "points/model.keras", "--format",
                 "labelme", "--out", "out/batch", "--noprogress"],
    "requests_workers": ["--requests", "requests.json", "--model", "points.tflite",
                         "--workers", "2", "--format", "labelme", "--out",
                         "out/batch_workers", "--noprogress"],
    "box": ["b.png", "--model", "rgb/model.keras", "--box", ",".join(map(str, BOX)),
            "--format", "coco", "--tolerance_px", "0", "--out", "out/box.json"],
    "points_on_rgb": ["b.png", "--model", "rgb/model.keras", "--points", POINTS_TEXT,
                      "--out", "out/points_on_rgb.json"],
    # The shell's split of an unquoted --points: 4 arguments, the image before or after.
    "separate_points": ["a_leftImg8bit.png", "--model", "points/model.keras", "--points",
                        *POINTS_TEXT.split(), "--format", "coco", "--tolerance_px", "0",
                        "--out", "out/separate_coco.json"],
    "separate_points_image_last": ["--model", "points/model.keras", "--points",
                                   *POINTS_TEXT.split(), "a_leftImg8bit.png", "--format",
                                   "coco", "--tolerance_px", "0", "--out",
                                   "out/separate_last_coco.json"],
}
BAD = {
    "three points": ["b.png", "--points", "30,50 52,20 90,45"],
    "three separate points": ["b.png", "--points", "30,50", "52,20", "90,45"],
    "separate point outside": ["b.png", "--points", "30,50", "52,20", "190,45", "60,80"],
    "point outside": ["b.png", "--points", "30,50 52,20 190,45 60,80"],
    "identical points": ["b.png", "--points", "30,50 30,50 30,50 30,50"],
    "unreadable image": ["broken.png", "--points", POINTS_TEXT],
    "missing image": ["missing.png", "--points", POINTS_TEXT],
    "DCME model": ["b.png", "--points", POINTS_TEXT, "--model", "dcme.keras"],
    "text file model": ["b.png", "--points", POINTS_TEXT, "--model", "text.keras"],
    "unknown extension": ["b.png", "--points", POINTS_TEXT, "--model", "model.h5"],
    "box on points model": ["b.png", "--box", ",".join(map(str, BOX))],
    "unknown cityscapes label": ["b.png", "--points", POINTS_TEXT, "--label", "banana",
                                 "--format", "cityscapes"],
    "bad object in a request": ["--requests", "bad_requests.json"],
    "points and box in one object": ["--requests", "both.json"],
    "workers on a keras model": ["--requests", "requests.json", "--workers", "2"],
}


@pytest.fixture(scope="module")
def runs(files):
    """Every GOOD and BAD case through ``dcme-keras annotate``, in one process."""
    bad = [["--model", "points/model.keras", "--out", f"bad/{n}", *argv] if "--model" not in
           argv else ["--out", f"bad/{n}", *argv] for n, argv in enumerate(BAD.values())]
    cases = [*GOOD.values(), *bad]
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(files), json.dumps(cases)],
                         capture_output=True, text=True, timeout=600)
    assert "RESULTS" in out.stdout, out.stderr[-3000:]
    results = json.loads(out.stdout.split("RESULTS", 1)[1])
    return dict(zip(GOOD, results)), dict(zip(BAD, results[len(GOOD):]))


@pytest.fixture(scope="module")
def expected(files):
    """The points model's mask on image a, through the library."""
    image = cv2.cvtColor(cv2.imread(str(files / "a_leftImg8bit.png")), cv2.COLOR_BGR2RGB)
    return annotate.KerasAnnotator(files / "points" / "model.keras").segment(image, POINTS)


def test_points_model_mask_covers_the_clicks_inside_the_crop(expected):
    x0, y0, x1, y1 = ep.crop_box(POINTS, HW)
    assert expected[y0:y1, x0:x1].any() and not expected[:y0].any() and not expected[y1:].any()
    assert not expected[:, :x0].any() and not expected[:, x1:].any()
    for x, y in POINTS:
        assert expected[y, x]
    # Four discs of radius 3 crop pixels (scaled by about 2.4) are far smaller than the box.
    assert expected.sum() < 0.3 * (x1 - x0) * (y1 - y0)


@pytest.mark.parametrize("name", list(GOOD))
def test_good_requests_exit_0(runs, name):
    good, _ = runs
    assert good[name]["rc"] == 0, good[name]["stderr"]
    assert "annotated" in good[name]["stdout"]


def _decode_coco(path):
    document = json.loads(path.read_text())
    assert set(document) == {"images", "annotations", "categories"}
    assert document["images"][0]["height"] == HW[0] and document["images"][0]["width"] == HW[1]
    segmentation = document["annotations"][0]["segmentation"]
    return coco_mask.decode(segmentation).astype(bool), document


def test_coco_rle_decodes_to_the_mask(files, runs, expected):
    mask, document = _decode_coco(files / "out" / "coco.json")
    np.testing.assert_array_equal(mask, expected)
    assert document["annotations"][0]["category_id"] == 26  # Cityscapes' car
    assert document["categories"] == [{"id": 26, "name": "car"}]
    assert document["annotations"][0]["area"] == int(expected.sum())


def test_tflite_model_gives_the_keras_mask(files, runs, expected):
    mask, _ = _decode_coco(files / "out" / "tflite_coco.json")
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("name", ["separate_coco.json", "separate_last_coco.json"])
def test_points_as_four_arguments_give_the_quoted_mask(files, runs, expected, name):
    mask, _ = _decode_coco(files / "out" / name)
    np.testing.assert_array_equal(mask, expected)


def test_cityscapes_json_rasterizes_to_the_mask(files, runs, expected):
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage

    annotation = Annotation()
    annotation.fromJsonFile(str(files / "out" / "cityscapes.json"))
    assert (annotation.imgHeight, annotation.imgWidth) == HW
    assert {obj.label for obj in annotation.objects} == {"car"}
    ids = np.asarray(createInstanceImage(annotation, "ids"))
    np.testing.assert_array_equal(ids >= 26000, expected)


def test_labelme_json_has_the_required_keys(files, runs, expected):
    document = json.loads((files / "out" / "labelme.json").read_text())
    assert {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight",
            "imageWidth"} <= set(document)
    assert document["imagePath"] == "../a_leftImg8bit.png"
    assert (document["imageHeight"], document["imageWidth"]) == HW
    assert document["shapes"]
    for shape in document["shapes"]:
        assert shape["label"] == "car" and shape["shape_type"] == "polygon"
        assert shape["group_id"] == 0 and len(shape["points"]) >= 3
    # One polygon per part of the mask.
    parts = cv2.connectedComponents(expected.astype(np.uint8), connectivity=8)[0] - 1
    assert len(document["shapes"]) == parts


def test_requests_write_one_file_per_image(files, runs):
    batch = files / "out" / "batch"
    assert sorted(p.name for p in batch.iterdir()) == ["a_leftImg8bit.json", "b.json"]
    a = json.loads((batch / "a_leftImg8bit.json").read_text())
    b = json.loads((batch / "b.json").read_text())
    assert {s["label"] for s in a["shapes"]} == {"car", "person"}
    assert {s["group_id"] for s in a["shapes"]} == {0, 1}
    assert {s["label"] for s in b["shapes"]} == {"car"}  # --label's default


def test_requests_with_two_workers_write_what_one_worker_writes(files, runs):
    one, two = files / "out" / "batch", files / "out" / "batch_workers"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    for path in one.iterdir():
        assert json.loads((two / path.name).read_text()) == json.loads(path.read_text())


def test_segment_many_with_workers_keeps_order_and_masks(files):
    annotator = ExtremePointsAnnotator(files / "points.tflite")
    image = cv2.cvtColor(cv2.imread(str(files / "a_leftImg8bit.png")), cv2.COLOR_BGR2RGB)
    requests = [(image, np.array(POINTS) + [dx, dy]) for dx in range(0, 20, 4)
                for dy in range(0, 12, 4)]
    serial = annotator.segment_many(requests)
    parallel = annotator.segment_many(requests, workers=3)
    assert len(parallel) == len(requests) == 15
    assert len({m.tobytes() for m in serial}) == 15  # every request gives its own mask
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UserInputError, match="workers"):
        annotator.segment_many(requests, workers=0)


def test_box_on_rgb_model_fills_the_crop_of_the_box(files, runs):
    mask, _ = _decode_coco(files / "out" / "box.json")
    x0, y0, x1, y1 = ep.crop_box(box_to_points(BOX), HW)
    expected = np.zeros(HW, bool)
    expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(mask, expected)


def test_points_on_rgb_model_warn_once(runs):
    good, _ = runs
    warnings = [line for line in good["points_on_rgb"]["stderr"].splitlines()
                if line.startswith("warning:")]
    assert warnings == ["warning: rgb/model.keras is RGB-only; the points only set the crop"]


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(files, runs, name):
    _, bad = runs
    result = bad[name]
    assert result["rc"] == 2, result
    lines = result["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcme-keras annotate: error: "), lines
    assert not (files / "bad" / str(list(BAD).index(name))).exists()


def test_bad_input_messages_name_the_problem(runs):
    _, bad = runs
    expected = {
        "three points": "gives 3 point(s), not 4",
        "three separate points": "'30,50 52,20 90,45' gives 3 point(s), not 4",
        "separate point outside": "outside the 128x96 (WxH) image",
        "point outside": "outside the 128x96 (WxH) image",
        "identical points": "all 4 points are the same",
        "unreadable image": "cannot read the image",
        "DCME model": "is not an annotator",
        "text file model": "is not a Keras model archive",
        "unknown extension": "has the extension '.h5'",
        "box on points model": "takes extreme points, so a box cannot drive it",
        "unknown cityscapes label": "'banana' is not a Cityscapes class",
        "bad object in a request": "bad_requests.json entry 1 (b.png) object 0: point (200, 5)",
        "points and box in one object": "needs exactly one of \"points\"",
        "workers on a keras model": "several workers need a .tflite model",
    }
    for name, text in expected.items():
        assert text in bad[name]["stderr"], (name, bad[name]["stderr"])


def test_keras_annotator_reads_config_and_matches_runtime_preprocessing(files):
    annotator = annotate.KerasAnnotator(files / "points" / "model.keras")
    assert isinstance(annotator, ExtremePointsAnnotator)
    assert (annotator.size, annotator.uses_points, annotator.radius,
            annotator.margin) == (SIZE, True, 3, 0.1)
    image = np.zeros((*HW, 3), np.uint8)
    prob, box = annotator.probability(image, POINTS)
    channel = ep.make_input(image, POINTS, SIZE, 3, 0.1)[..., 3]
    np.testing.assert_allclose(prob, 1.0 / (1.0 + np.exp(-(20.0 * channel - 10.0))),
                               rtol=1e-5, atol=1e-6)
    assert box == ep.crop_box(POINTS, HW, 0.1)


def test_keras_and_tflite_models_meet_the_runtime_protocol_without_inheritance(files):
    from dcme_keras.runtime import InferenceModel, TFLiteModel

    keras_model = annotate.KerasAnnotator(files / "points" / "model.keras").model
    tflite_model = ExtremePointsAnnotator(files / "points.tflite").model
    assert isinstance(keras_model, InferenceModel) and isinstance(tflite_model, InferenceModel)
    assert not isinstance(keras_model, TFLiteModel)
    assert keras_model.input_shape == tflite_model.input_shape == (1, SIZE, SIZE, 4)
    assert keras_model.output_shapes == tflite_model.output_shapes


def test_inspect_model_tells_kinds_apart_without_tensorflow(files):
    code = textwrap.dedent(f"""
        import sys
        from dcme_keras.annotate import inspect_model
        print(inspect_model({str(files / 'rgb' / 'model.keras')!r}),
              'tensorflow' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "{'format': 'keras', 'size': 32, 'points': False} False"
    with pytest.raises(UserInputError, match="is not an annotator"):
        annotate.inspect_model(files / "dcme.keras")
    assert annotate.inspect_model(files / "points.tflite") == {
        "format": "tflite", "size": SIZE, "points": True}


def test_requests_output_is_all_files_or_none(tmp_path):
    from dcme_keras.cli.annotate import write_documents

    out = tmp_path / "batch"
    files = [out / "a.json", out / "b.json", out / "c.json"]
    # The second document cannot be written (not JSON), after the first one was.
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_documents([{"shapes": []}, {"shapes": [object()]}, {"shapes": []}], files)
    assert not out.exists()
    write_documents([{"shapes": []}] * 3, files)
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.json", "c.json"]
