"""DCMESegmenter: TF-free instances from an exported DCME-shaped model.

The model under test is hand-made so that its outputs are known exactly: the image's
red and green channels hold ``dy + 128`` and ``dx + 128`` of an encoded scene, the model
subtracts 128 (a 1x1 convolution), and the grid classifier says "car" everywhere. The
segmenter must then give the scene's instances back, through the same decoder as Keras.
"""

import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest

from dcme_keras import classes, inference, keys
from dcme_keras.dcme import codec_np
from dcme_keras.errors import UserInputError
from dcme_keras.export import convert
from dcme_keras.runtime import DCMESegmenter, TFLiteModel

HW = (64, 128)
CAR_GRID_ID = 1 + classes.THING_CLASSES.index("car")
CAR_LOGIT = 5.0
#: Softmax probability of the car logit against 8 zeros.
CAR_SCORE = np.exp(CAR_LOGIT) / (np.exp(CAR_LOGIT) + classes.NUM_THING_CLASSES)


def _vector_model():
    """image [B, 64, 128, 3] -> dcme = image[..., :2] - 128, grid = car everywhere."""
    image = keras.Input((*HW, 3), name=keys.IMAGE)
    dcme = keras.layers.Conv2D(2, 1, name="vectors")(image)
    pooled = keras.layers.AveragePooling2D(16, name="cells")(image)
    grid = keras.layers.Conv2D(classes.NUM_THING_CLASSES + 1, 1, name="classes")(pooled)
    model = keras.Model(image, {keys.DCME: dcme, keys.GRID: grid})
    model.get_layer("vectors").set_weights([np.eye(3, 2, dtype=np.float32)[None, None],
                                            np.full(2, -128.0, np.float32)])
    bias = np.zeros(classes.NUM_THING_CLASSES + 1, np.float32)
    bias[CAR_GRID_ID] = CAR_LOGIT
    model.get_layer("classes").set_weights([np.zeros((1, 1, 3, 9), np.float32), bias])
    return model


def _scene():
    """Two cars of odd sizes (integral centers, so integral vectors) on background."""
    ids = np.zeros(HW, np.int32)
    ids[5:26, 9:40] = 26000  # 21 x 31
    ids[30:61, 70:121] = 26001  # 31 x 51
    return ids


def _image(ids):
    """The vectors of ``ids`` as a uint8 image: (dy + 128, dx + 128, 0)."""
    dcme = codec_np.encode_dcme(ids)
    assert np.array_equal(dcme, np.round(dcme))  # integral, so uint8 holds them exactly
    return np.concatenate([dcme + 128, np.zeros((*HW, 1), np.float32)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _vector_model()
    path = tmp_path_factory.mktemp("dcme_runtime") / "vectors.tflite"
    convert.write_tflite(convert.convert(model), path,
                         convert.model_metadata(model, quantization="float32"))
    return model, path


def test_instances_come_back_exactly_with_the_grid_class_and_score(exported):
    _, path = exported
    ids = _scene()
    instances = DCMESegmenter(path, num_threads=2).instances(_image(ids))
    assert len(instances) == 2
    # Both CMs are integral: all pixels but the center one vote (evidence = area - 1).
    for (mask, label_id, score), value, votes in zip(instances, (26000, 26001),
                                                     (21 * 31 - 1, 31 * 51 - 1)):
        assert mask.dtype == bool and mask.shape == HW
        np.testing.assert_array_equal(mask, ids == value)
        assert label_id == 26
        assert score == pytest.approx(CAR_SCORE * votes / (votes + 100), rel=1e-5)


def test_masks_are_returned_at_the_image_size(exported):
    _, path = exported
    ids = _scene()
    # A 2x nearest upscale; the segmenter's area downscale gives the 64x128 image back.
    big_image = cv2.resize(_image(ids), (2 * HW[1], 2 * HW[0]), interpolation=cv2.INTER_NEAREST)
    big_ids = cv2.resize(ids, (2 * HW[1], 2 * HW[0]), interpolation=cv2.INTER_NEAREST)
    instances = DCMESegmenter(path).instances(big_image)
    assert [m.shape for m, _, _ in instances] == [(128, 256)] * 2
    np.testing.assert_array_equal(instances[0][0], big_ids == 26000)
    np.testing.assert_array_equal(instances[1][0], big_ids == 26001)


def test_tflite_and_keras_share_the_post_processing(exported):
    model, path = exported
    rng = np.random.default_rng(0)
    image = rng.integers(120, 137, (*HW, 3), dtype=np.uint8)  # short random vectors
    image[20:40, 30:60, :2] = _image(_scene())[20:40, 30:60, :2]
    want = inference.predict_instances(model, [image])[0]
    got = DCMESegmenter(path).instances(image)
    assert len(got) == len(want)
    for (m1, l1, s1), (m2, l2, s2) in zip(got, want):
        np.testing.assert_array_equal(m1, m2)
        assert l1 == l2 and s1 == pytest.approx(s2, rel=1e-5)


def test_wrong_kind_or_signature_is_a_clear_error(exported, tmp_path):
    model, path = exported
    flatbuffer = path.read_bytes()
    annotator_meta = {"kind": "annotator"}
    with pytest.raises(UserInputError, match="not 'dcme'"):
        DCMESegmenter(TFLiteModel.from_bytes(flatbuffer, annotator_meta, kind="annotator"))
    # An annotator-shaped graph labelled as DCME: the signature check catches it.
    inp = keras.Input((32, 32, 4), name="image")
    annotator = keras.Model(inp, {keys.MASK: keras.layers.Conv2D(1, 1)(inp)})
    wrong = TFLiteModel.from_bytes(convert.convert(annotator), {"kind": "dcme"}, kind="dcme")
    with pytest.raises(UserInputError, match="a DCME model maps image"):
        DCMESegmenter(wrong)
    with pytest.raises(UserInputError, match="uint8"):
        DCMESegmenter(path).instances(np.zeros((*HW, 3), np.float32))
    with pytest.raises(UserInputError, match="num_threads"):
        DCMESegmenter(path, num_threads=0)


def test_op_report_counts_delegated_ops(exported):
    _, path = exported
    report = DCMESegmenter(path).model.op_report()
    assert report["ops"] >= 3 and report["dtypes"] == {"float32": report["ops"]}
    assert report["delegated"] + sum(report["not_delegated"].values()) == report["ops"]
    assert report["partitions"] >= 1


def test_segmenter_imports_no_tensorflow(exported):
    _, path = exported
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from dcme_keras.runtime import DCMESegmenter
        out = DCMESegmenter({str(path)!r}).instances(np.full((64, 128, 3), 128, np.uint8))
        print(len(out), "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["0", "False", "False"]


def test_int8_models_decode_with_the_exact_path_off(exported, tmp_path):
    model, _ = exported
    # The decoder default follows the sidecar's quantization; the graph itself is float.
    path = tmp_path / "labelled_int8.tflite"
    convert.write_tflite(convert.convert(model), path,
                         convert.model_metadata(model, quantization="int8"))
    assert DCMESegmenter(path).decode_kwargs == {"exact_tolerance": None}
    kept = DCMESegmenter(path, decode_kwargs={"exact_tolerance": 1e-3, "min_votes": 40})
    assert kept.decode_kwargs == {"exact_tolerance": 1e-3, "min_votes": 40}


def test_a_network_with_the_foreground_head_runs_end_to_end(tmp_path):
    from dcme_keras.models.deeplab_dcme import build_deeplab_dcme

    model = build_deeplab_dcme("tiny", input_shape=(*HW, 3), foreground_head=True)
    meta = convert.model_metadata(model, quantization="float32")
    assert set(meta["outputs"]) == {keys.DCME, keys.GRID, keys.FOREGROUND}
    path = tmp_path / "fg.tflite"
    convert.write_tflite(convert.convert(model), path, meta)
    segmenter = DCMESegmenter(path)
    image = np.random.default_rng(0).integers(0, 256, (*HW, 3), dtype=np.uint8)
    outputs = segmenter.outputs(image)
    assert outputs[keys.FOREGROUND].shape == (*HW, 1)
    keras_out = inference.model_outputs(model, [image])[0]
    np.testing.assert_allclose(outputs[keys.FOREGROUND], keras_out[keys.FOREGROUND],
                               atol=1e-3)
    # The Keras and TFLite paths decode the same instances, within the same foreground.
    want = inference.predict_instances(model, [image], decode_kwargs={"min_votes": 1})[0]
    got = DCMESegmenter(path, decode_kwargs={"min_votes": 1}).instances(image)
    assert len(got) == len(want)
    foreground = outputs[keys.FOREGROUND][..., 0] >= 0
    assert all(not (mask & ~foreground).any() for mask, _, _ in got)
