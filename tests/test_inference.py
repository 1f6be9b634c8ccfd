"""Post-processing of the DCME network's outputs into classified, scored instances."""

import subprocess
import sys

import numpy as np
import pytest

from dcme_keras import classes, inference, keys
from dcme_keras.dcme import codec_np, grid
from dcme_keras.errors import UserInputError

CAR, PERSON, BICYCLE = 26, 24, 33
GRID_CAR, GRID_PERSON = 3, 1  # grid ids: 1 + index in THING_CLASSES
#: Softmax probability of a one-hot logit of 10 against 8 zeros.
P_ONE_HOT = np.exp(10.0) / (np.exp(10.0) + 8.0)
#: Vote confidence e / (e + 100) of the scene's exact centers: neither CM is integral, so
#: every pixel votes, 24 x 32 = 768 for the car and 28 x 16 = 448 for the person.
CONF_CAR, CONF_PERSON = 768 / 868, 448 / 548


def _scene():
    """64x128 ids: a car (rows 4..27, cols 8..39) and a person (rows 34..61, cols 80..95)."""
    ids = np.zeros((64, 128), np.int32)
    ids[40:] = 7  # road
    ids[4:28, 8:40] = 26000
    ids[34:62, 80:96] = 24000
    return ids


def _one_hot_logits(ids, grid_size=16):
    """Grid logits that are 10 on the true grid class of each cell, 0 elsewhere."""
    cells = grid.grid_labels(grid.instance_ids_to_label_ids(ids), grid_size)
    return 10.0 * np.eye(classes.NUM_THING_CLASSES + 1, dtype=np.float32)[cells]


def test_exact_outputs_give_the_instances_back():
    ids = _scene()
    instances = inference.instances_from_outputs(codec_np.encode_dcme(ids),
                                                 _one_hot_logits(ids))
    # The decoder numbers instances in raster order of their centers: car, then person.
    assert [(label, pytest.approx(score)) for _, label, score in instances] == \
        [(CAR, P_ONE_HOT * CONF_CAR), (PERSON, P_ONE_HOT * CONF_PERSON)]
    np.testing.assert_array_equal(instances[0][0], ids == 26000)
    np.testing.assert_array_equal(instances[1][0], ids == 24000)
    assert instances[0][0].dtype == bool


def test_masks_are_brought_to_out_size_by_nearest_neighbour():
    ids = _scene()
    half = inference.resize_nearest(ids, (32, 64))
    instances = inference.instances_from_outputs(
        codec_np.encode_dcme(half), _one_hot_logits(half, grid_size=8), out_size=(64, 128))
    # Every box edge is even, so the 2x round trip is lossless.
    np.testing.assert_array_equal(instances[0][0], ids == 26000)
    np.testing.assert_array_equal(instances[1][0], ids == 24000)


def test_background_cell_keeps_the_best_thing_class_with_its_low_probability():
    ids = _scene()
    logits = np.zeros((4, 8, 9), np.float32)
    logits[..., 0] = 5.0  # background wins everywhere ...
    logits[..., 1 + classes.THING_CLASSES.index("bicycle")] = 2.0  # ... bicycle is second
    instances = inference.instances_from_outputs(codec_np.encode_dcme(ids), logits)
    expected = np.exp(2.0) / (np.exp(5.0) + np.exp(2.0) + 7.0)
    assert [(label, pytest.approx(score)) for _, label, score in instances] == \
        [(BICYCLE, expected * CONF_CAR), (BICYCLE, expected * CONF_PERSON)]


def test_noise_on_every_pixel_ranks_objects_above_fragments():
    rng = np.random.default_rng(0)
    ids = np.zeros((128, 256), np.int32)
    ids[10:50, 20:100] = 26000  # car, 3200 px
    ids[60:120, 150:170] = 24000  # person, 1200 px
    dcme = codec_np.encode_dcme(ids) + rng.normal(0, 1.0, (128, 256, 2)).astype(np.float32)
    dcme[:, 200:] += rng.normal(0, 2.0, (128, 56, 2)).astype(np.float32)  # noisier sky
    instances = inference.instances_from_outputs(dcme, _one_hot_logits(ids))
    ranked = sorted(instances, key=lambda inst: -inst[2])
    first_two = {(label, int((mask & (ids > 0)).sum() > 0.5 * mask.sum())) for mask, label, _
                 in ranked[:2]}
    assert first_two == {(CAR, 1), (PERSON, 1)}
    assert all(score < 0.5 * ranked[1][2] for _, _, score in ranked[2:])


def test_vote_confidence_and_instance_scores():
    np.testing.assert_allclose(inference.vote_confidence([0.0, 100.0, 300.0, -5.0]),
                               [0.0, 0.5, 0.75, 0.0])
    np.testing.assert_allclose(inference.instance_scores([0.5, 1.0], [100.0, 300.0]),
                               [0.25, 0.75])


def test_class_comes_from_the_cell_of_the_center_of_mass():
    ids = np.zeros((32, 64), np.int32)
    ids[0:32, 0:10] = 26000  # car, CM at (15.5, 4.5): cell (0, 0) at Gs 16
    ids[0:4, 10:60] = 24000  # person, CM at (1.5, 34.5): cell (0, 2)
    logits = np.zeros((2, 4, 9), np.float32)
    logits[0, 0, GRID_PERSON] = 3.0  # deliberately "wrong" classes
    logits[0, 2, GRID_CAR] = 3.0
    instances = inference.instances_from_outputs(codec_np.encode_dcme(ids), logits)
    # Raster order of the centers: the person (200 px) first, labelled by cell (0, 2).
    assert [(label, mask.sum()) for mask, label, _ in instances] == [(CAR, 200), (PERSON, 320)]


def test_no_instances():
    dcme = np.zeros((32, 64, 2), np.float32)
    assert inference.instances_from_outputs(dcme, np.zeros((2, 4, 9), np.float32)) == []


@pytest.mark.parametrize("map_hw, grid_hw, expected", [
    ((64, 128), (4, 8), 16), ((64, 128), (8, 16), 8), ((60, 100), (4, 7), 16),
    ((512, 1024), (32, 64), 16), ((5, 5), (5, 5), 1),
])
def test_infer_grid_size(map_hw, grid_hw, expected):
    assert inference.infer_grid_size(map_hw, grid_hw) == expected


def test_outputs_are_checked():
    with pytest.raises(UserInputError, match="power-of-two"):
        inference.infer_grid_size((64, 128), (3, 3))
    with pytest.raises(UserInputError, match="without the batch axis"):
        inference.instances_from_outputs(np.zeros((1, 32, 64, 2)), np.zeros((2, 4, 9)))
    with pytest.raises(UserInputError, match=r"\[h, w, 9\]"):
        inference.instances_from_outputs(np.zeros((32, 64, 2)), np.zeros((2, 4, 8)))


class _FakeModel:
    """Stands in for the Keras model: exact outputs of a scene drawn at its input size.

    Records the batch shapes it was called with.
    """

    def __init__(self, input_hw=None):
        self.inputs = [type("Input", (), {"shape": (None, *input_hw, 3)})] if input_hw else []
        self.batches = []

    def predict_on_batch(self, x):
        self.batches.append(x.shape)
        assert x.dtype == np.float32
        ids = inference.resize_nearest(_scene(), x.shape[1:3])
        gs = 16 if x.shape[1] >= 64 else 8
        dcme = codec_np.encode_dcme(ids)
        logits = _one_hot_logits(ids, gs)
        return {keys.DCME: np.stack([dcme] * len(x)), keys.GRID: np.stack([logits] * len(x))}


def test_model_outputs_batches_images_of_one_size():
    model = _FakeModel()
    images = [np.zeros((64, 128, 3), np.uint8)] * 3 + [np.zeros((32, 64, 3), np.uint8)]
    outputs = inference.model_outputs(model, images, batch_size=2)
    assert model.batches == [(2, 64, 128, 3), (1, 64, 128, 3), (1, 32, 64, 3)]
    assert [out[keys.DCME].shape for out in outputs] == [(64, 128, 2)] * 3 + [(32, 64, 2)]
    assert outputs[3][keys.GRID].shape == (4, 8, 9)


def test_predict_instances_resizes_to_the_model_and_back():
    model = _FakeModel(input_hw=(32, 64))
    images = [np.full((64, 128, 3), 200, np.uint8)] * 2
    per_image = inference.predict_instances(model, images, batch_size=4)
    assert model.batches == [(2, 32, 64, 3)]
    ids = _scene()
    for instances in per_image:
        assert [label for _, label, _ in instances] == [CAR, PERSON]
        np.testing.assert_array_equal(instances[0][0], ids == 26000)
    with pytest.raises(UserInputError, match="uint8"):
        inference.predict_instances(model, [np.zeros((64, 128, 3), np.float32)])


def test_predict_instances_runs_the_tiny_keras_model():
    from dcme_keras.models.deeplab_dcme import build_deeplab_dcme

    model = build_deeplab_dcme(preset="tiny", input_shape=(64, 128, 3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 128, 3), dtype=np.uint8)
    outputs = inference.outputs_fn(model)(images[0])
    assert outputs[keys.DCME].shape == (64, 128, 2)
    assert outputs[keys.GRID].shape == (4, 8, 9)
    per_image = inference.predict_instances(model, images, batch_size=2,
                                            decode_kwargs={"min_votes": 1})
    assert len(per_image) == 2
    for mask, label, score in (inst for instances in per_image for inst in instances):
        assert mask.shape == (64, 128) and mask.dtype == bool
        assert label in classes.THING_LABEL_IDS
        assert 0.0 <= score <= 1.0


def test_post_processing_imports_no_tensorflow():
    code = ("import sys, dcme_keras.inference, dcme_keras.evaluation; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_foreground_head_keeps_background_noise_from_voting():
    rng = np.random.default_rng(1)
    ids = _scene()
    # Coherent noise over the sky that the decoder alone could take for a small object.
    dcme = codec_np.encode_dcme(ids)
    dcme[:, 100:] = rng.normal(0, 3.0, (64, 28, 2)).astype(np.float32)
    dcme[20:30, 105:115] = -np.stack(np.mgrid[-5:5, -5:5], -1).astype(np.float32)
    logits = np.where(ids >= 1000, 8.0, -8.0)[..., None].astype(np.float32)  # [64, 128, 1]
    without = inference.instances_from_outputs(dcme, _one_hot_logits(ids))
    with_head = inference.instances_from_outputs(dcme, _one_hot_logits(ids),
                                                 foreground_logits=logits)
    assert len(without) == 3  # the car, the person and a fragment of converging noise
    assert [label for _, label, _ in with_head] == [CAR, PERSON]
    np.testing.assert_array_equal(with_head[0][0], ids == 26000)
    with pytest.raises(UserInputError, match="foreground"):
        inference.instances_from_outputs(dcme, _one_hot_logits(ids),
                                         foreground_logits=logits[:32])
