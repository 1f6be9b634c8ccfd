"""DCME encoding in TensorFlow: equal to the NumPy twin, dynamic shapes, tf.data, tf.function."""

import numpy as np
import pytest
import tensorflow as tf

from dcme_keras.dcme import codec, codec_np
from dcme_keras.errors import UserInputError


def random_ids(rng, height, width, dtype=np.int32):
    """Random blocks of instances, group regions and background; splits happen by chance."""
    values = np.array([0, 7, 24, 26, 24000, 24001, 25000, 26000, 26001, 26002, 33000])
    coarse = rng.choice(values, size=(height // 4 + 1, width // 4 + 1))
    ids = np.kron(coarse, np.ones((4, 4), np.int64))[:height, :width]
    # Sprinkle single pixels so that instances get irregular shapes and 1-pixel parts.
    ids[rng.random((height, width)) < 0.05] = rng.choice(values)
    return ids.astype(dtype)


def test_encode_5x5_hand_made():
    ids = np.zeros((5, 5), np.uint16)
    ids[1:4, 1:4] = 26000
    dcme = codec.encode_dcme(tf.constant(ids)).numpy()
    np.testing.assert_array_equal(dcme[..., 0], [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0],
                                                 [0, 0, 0, 0, 0], [0, -1, -1, -1, 0],
                                                 [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(dcme[..., 1], [[0, 0, 0, 0, 0], [0, 1, 0, -1, 0],
                                                 [0, 1, 0, -1, 0], [0, 1, 0, -1, 0],
                                                 [0, 0, 0, 0, 0]])


@pytest.mark.parametrize("shape, dtype", [((37, 53), np.uint16), ((64, 64), np.int32),
                                          ((16, 96), np.int64), ((1, 7), np.int32)])
def test_encode_equals_numpy_on_random_maps(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        ids = random_ids(rng, *shape, dtype=dtype)
        expected = codec_np.encode_dcme(ids)
        got = codec.encode_dcme(tf.constant(ids))
        assert got.dtype == tf.float32 and got.shape == (*shape, 2)
        np.testing.assert_array_equal(got.numpy(), expected)
        got_min = codec.encode_dcme(tf.constant(ids), min_instance_id=26000)
        np.testing.assert_array_equal(got_min.numpy(),
                                      codec_np.encode_dcme(ids, min_instance_id=26000))


def test_instance_centers_and_foreground_equal_numpy():
    ids = random_ids(np.random.default_rng(1), 40, 60)
    values, centers, areas = codec.instance_centers(tf.constant(ids[..., None]))
    np_values, np_centers, np_areas = codec_np.instance_centers(ids)
    np.testing.assert_array_equal(values.numpy(), np_values)
    np.testing.assert_array_equal(centers.numpy(), np_centers)
    np.testing.assert_array_equal(areas.numpy(), np_areas)
    np.testing.assert_array_equal(codec.foreground_mask(tf.constant(ids)).numpy(),
                                  codec_np.foreground_mask(ids))


@pytest.mark.parametrize("signature", [[None, None], [None, None, 1]])
def test_tf_function_with_unknown_shapes(signature):
    encode = tf.function(codec.encode_dcme,
                         input_signature=[tf.TensorSpec(signature, tf.uint16)])
    assert encode.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 2]
    rng = np.random.default_rng(2)
    for shape in [(8, 12), (33, 21)]:
        ids = random_ids(rng, *shape, dtype=np.uint16)
        if len(signature) == 3:
            ids = ids[..., None]
        np.testing.assert_array_equal(encode(ids).numpy(), codec_np.encode_dcme(ids))


def test_inside_dataset_map():
    rng = np.random.default_rng(3)
    maps = [random_ids(rng, h, w, dtype=np.uint16)[..., None] for h, w in [(10, 14), (24, 9)]]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(maps), output_signature=tf.TensorSpec([None, None, 1], tf.uint16))
    ds = ds.map(codec.encode_dcme, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    assert ds.element_spec.shape.as_list() == [None, None, 2]
    for got, ids in zip(ds, maps, strict=True):
        np.testing.assert_array_equal(got.numpy(), codec_np.encode_dcme(ids))


def test_static_shape_is_kept():
    dcme = codec.encode_dcme(tf.zeros([6, 7, 1], tf.int32))
    assert dcme.shape.as_list() == [6, 7, 2] and not dcme.numpy().any()


@pytest.mark.parametrize("bad", [tf.zeros([2, 3, 4], tf.int32), tf.zeros([5], tf.int32),
                                 tf.zeros([3, 3], tf.float32)])
def test_rejects_bad_input(bad):
    with pytest.raises(UserInputError, match="pass"):
        codec.encode_dcme(bad)
