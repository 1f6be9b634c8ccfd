"""Keras -> TFLite conversion and the TF-free runtime, on a tiny annotator-shaped model."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from dcme_keras import keys
from dcme_keras.errors import UserInputError
from dcme_keras.export import convert
from dcme_keras.runtime import ExtremePointsAnnotator, box_to_points, load_metadata

SIZE = 32


def _tiny_annotator(channels=4):
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, channels), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    out = keras.layers.Conv2D(1, 1, name="logits")(x)
    return keras.Model(inp, {keys.MASK: out})


def _inputs(n, channels=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, SIZE, SIZE, channels), dtype=np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    model = _tiny_annotator()
    paths = {}
    for q in ("float32", "int8"):
        fb = convert.convert(model, quantization=q, representative=lambda: list(_inputs(16)))
        paths[q] = convert.write_tflite(fb, out / f"ann_{q}.tflite",
                                        {"kind": convert.model_kind(model), "margin": 0.1,
                                         "point_radius": 2})
    return model, paths


def test_float32_tflite_matches_keras_and_int8_stays_close(exported):
    model, paths = exported
    x = _inputs(1, seed=1)[0]
    want = np.asarray(model(x)[keys.MASK])
    for q, tol in (("float32", 1e-4), ("int8", 0.1)):
        got = ExtremePointsAnnotator(paths[q]).model(x)[keys.MASK]
        scale = np.abs(want).max()
        assert np.abs(got - want).max() <= tol * max(scale, 1.0), q


def test_sidecar_metadata_is_written_and_read(exported):
    _, paths = exported
    meta = load_metadata(paths["int8"])
    assert meta["kind"] == "annotator" and meta["point_radius"] == 2
    assert meta["format"] == "dcme-keras-tflite/1" and "package_version" in meta


def test_segment_pastes_the_crop_back_into_the_image(exported):
    _, paths = exported
    ann = ExtremePointsAnnotator(paths["float32"])
    image = np.zeros((60, 80, 3), np.uint8)
    points = [(10, 30), (40, 5), (70, 30), (40, 50)]
    mask = ann.segment(image, points)
    assert mask.shape == (60, 80) and mask.dtype == bool
    x0, y0, x1, y1 = (int(v) for v in ann.probability(image, points)[1])
    outside = mask.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()  # nothing outside the crop box


def test_bad_inputs_and_wrong_files_are_clear_errors(exported, tmp_path):
    _, paths = exported
    ann = ExtremePointsAnnotator(paths["float32"])
    image = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(UserInputError):
        ann.segment(image, [(10, 30), (40, 5), (70, 30)])  # 3 points
    with pytest.raises(UserInputError):
        ann.segment(image, [(10, 30), (40, 5), (170, 30), (40, 50)])  # outside
    with pytest.raises(UserInputError, match="uint8"):
        ann.segment(image.astype(np.float32), [(10, 30), (40, 5), (70, 30), (40, 50)])
    with pytest.raises(UserInputError, match="empty"):
        box_to_points((10, 10, 5, 20))

    bogus = tmp_path / "bogus.tflite"
    bogus.write_text("not a flatbuffer")
    with pytest.raises(UserInputError, match="sidecar"):
        ExtremePointsAnnotator(bogus)
    (tmp_path / "bogus.tflite.json").write_text(
        json.dumps({"format": "dcme-keras-tflite/1", "kind": "annotator"}))
    with pytest.raises(UserInputError, match="not a loadable TFLite model"):
        ExtremePointsAnnotator(bogus)
    with pytest.raises(UserInputError, match="not 'dcme'"):
        from dcme_keras.runtime import TFLiteModel

        TFLiteModel(paths["float32"], kind="dcme")


def test_runtime_never_imports_tensorflow(exported):
    _, paths = exported
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from dcme_keras.runtime import ExtremePointsAnnotator
        ann = ExtremePointsAnnotator({str(paths['int8'])!r}, num_threads=2)
        mask = ann.segment(np.zeros((40, 40, 3), np.uint8), [(5, 20), (20, 5), (35, 20), (20, 35)])
        ann.polygons(np.zeros((40, 40, 3), np.uint8), [(5, 20), (20, 5), (35, 20), (20, 35)])
        print(mask.shape, "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_int8_without_representative_data_is_refused():
    with pytest.raises(UserInputError, match="representative"):
        convert.convert(_tiny_annotator(), quantization="int8")
    with pytest.raises(UserInputError, match="float16"):
        convert.convert(_tiny_annotator(), quantization="int4")


def test_polygons_traced_in_the_crop_box_equal_tracing_the_whole_mask(exported):
    from dcme_keras.polygons import mask_to_polygons

    _, paths = exported
    ann = ExtremePointsAnnotator(paths["float32"])
    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    points = [(20, 50), (60, 12), (100, 40), (55, 80)]
    want = mask_to_polygons(ann.segment(image, points), tolerance_px=0.5)
    got = ann.polygons(image, points, tolerance_px=0.5)
    assert any(p.holes for p in want) and len(got) == len(want)  # a noisy mask, with holes
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.exterior, w.exterior)
        assert len(g.holes) == len(w.holes)
        for gh, wh in zip(g.holes, w.holes):
            np.testing.assert_array_equal(gh, wh)


def test_model_and_sidecar_are_written_both_or_neither(tmp_path):
    out = tmp_path / "export" / "m.tflite"
    # The metadata fails to serialise after the model bytes were staged.
    with pytest.raises(TypeError, match="not JSON serializable"):
        convert.write_tflite(b"TFL3 bytes", out, {"kind": "annotator", "bad": object()})
    assert not (tmp_path / "export").exists()
    convert.write_tflite(b"TFL3 bytes", out, {"kind": "annotator"})
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.tflite", "m.tflite.json"]
