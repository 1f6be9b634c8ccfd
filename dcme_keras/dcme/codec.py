"""DCME encoding in TensorFlow, for tf.data pipelines; twin of ``codec_np``.

Same names, conventions and results as :mod:`dcme_keras.dcme.codec_np` (see there and
``shared/DESIGN.md``): ``dcme`` is ``[H, W, 2]`` float32 in pixels, channel 0 dy (rows),
channel 1 dx (columns), the vector ``cm - pixel`` to the instance's center of mass, and 0
on pixels whose id is below ``min_instance_id`` (background, stuff, group regions).

The encoder is vectorised with ``tf.unique`` and ``tf.math.unsorted_segment_sum``: no
Python loop over instances, any ``[H, W]`` or ``[H, W, 1]`` shape known only at run time,
and it traces inside ``tf.function`` and ``tf.data.Dataset.map``. Decoding runs on the CPU
after the model, in NumPy / OpenCV: ``codec_np.decode_dcme``.

Example:
  >>> ds = ds.map(lambda ex: (ex["image"], encode_dcme(ex["instance_ids"])))
"""

from __future__ import annotations

import tensorflow as tf

from dcme_keras.dcme.codec_np import MIN_INSTANCE_ID
from dcme_keras.errors import UserInputError


def _as_map(instance_ids) -> tf.Tensor:
    """``[H, W]`` or ``[H, W, 1]`` integer ids as an ``[H, W]`` int64 tensor."""
    ids = tf.convert_to_tensor(instance_ids)
    if not ids.dtype.is_integer:
        raise UserInputError(
            f"instance_ids has dtype {ids.dtype.name}; pass integer ids (class_id * 1000 + k), "
            "e.g. the uint16 instance-id PNG")
    rank = ids.shape.rank
    if rank is not None and not (rank == 2 or (rank == 3 and ids.shape[-1] in (1, None))):
        raise UserInputError(
            f"instance_ids has shape {ids.shape}; pass one [H, W] or [H, W, 1] map "
            "(encode before batching, or use tf.map_fn over the batch)")
    static_hw = ids.shape[:2] if rank is not None else tf.TensorShape([None, None])
    # [H, W, 1] and [H, W] both reshape to [H, W]; a last axis other than 1 fails here.
    ids = tf.reshape(ids, tf.shape(ids)[:2])
    ids.set_shape(static_hw)
    return tf.cast(ids, tf.int64)


def foreground_mask(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID) -> tf.Tensor:
    """Pixels that belong to an instance.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer tensor, Cityscapes ids
        ``class_id * 1000 + k``.
      min_instance_id: smallest id that is an instance; smaller values (unlabeled, stuff,
        group / crowd regions such as ``cargroup``) are not.

    Returns:
      [H, W] bool tensor, True on instance pixels.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.
    """
    return _as_map(instance_ids) >= min_instance_id


def _group_pixels(ids: tf.Tensor):
    """Group the pixels of an id map by value and take each group's center of mass.

    Args:
      ids: [H, W] int64.

    Returns:
      (flat_ids [H*W] int64, group [H*W] int32 index into the G distinct values,
       values [G] int64, centers [G, 2] float64 (row, col), areas [G] int64,
       coords [H*W, 2] int64 (row, col) of every pixel).
    """
    width = tf.shape(ids, out_type=tf.int64)[1]
    flat_ids = tf.reshape(ids, [-1])
    values, group = tf.unique(flat_ids)
    num_groups = tf.size(values)
    pixel = tf.range(tf.size(flat_ids, out_type=tf.int64))
    coords = tf.stack([pixel // width, pixel % width], axis=-1)
    # Integer sums are exact at any image size, and the float64 division is the NumPy
    # twin's, so both encoders agree to the last bit.
    areas = tf.math.unsorted_segment_sum(tf.ones_like(pixel), group, num_groups)
    sums = tf.math.unsorted_segment_sum(coords, group, num_groups)
    centers = tf.cast(sums, tf.float64) / tf.cast(areas, tf.float64)[:, None]
    return flat_ids, group, values, centers, areas, coords


def instance_centers(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID):
    """Center of mass and area of every instance in a map.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer tensor, Cityscapes ids
        ``class_id * 1000 + k``.
      min_instance_id: smallest id that is an instance (see :func:`foreground_mask`).

    Returns:
      A tuple ``(ids, centers, areas)`` of tensors:
        ids: [K] int64, the instance ids present, ascending;
        centers: [K, 2] float64, pixels, the mean (row, col) of each instance's pixels;
        areas: [K] int64, pixels per instance.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.
    """
    _, _, values, centers, areas, _ = _group_pixels(_as_map(instance_ids))
    keep = tf.where(values >= min_instance_id)[:, 0]
    order = tf.gather(keep, tf.argsort(tf.gather(values, keep)))
    return tf.gather(values, order), tf.gather(centers, order), tf.gather(areas, order)


def encode_dcme(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID) -> tf.Tensor:
    """DCME map of an instance-id map: at each instance pixel, the vector to its CM.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer tensor, Cityscapes ids
        ``class_id * 1000 + k``; H and W may be unknown until run time.
      min_instance_id: smallest id that is an instance; pixels below it (background, stuff,
        group / crowd regions) get the zero vector.

    Returns:
      [H, W, 2] float32 tensor, pixels: ``(cm_row - row, cm_col - col)`` on instance
      pixels, 0 elsewhere; equal to ``codec_np.encode_dcme`` on the same ids.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.

    Example:
      >>> encode_dcme(tf.constant([[0, 1000, 1000]]))[..., 1].numpy()
      array([[ 0. ,  0.5, -0.5]], dtype=float32)
    """
    ids = _as_map(instance_ids)
    flat_ids, group, _, centers, _, coords = _group_pixels(ids)
    vectors = tf.gather(centers, group) - tf.cast(coords, tf.float64)  # [H*W, 2]
    vectors = tf.where((flat_ids >= min_instance_id)[:, None], vectors, 0.0)
    dcme = tf.reshape(tf.cast(vectors, tf.float32), tf.concat([tf.shape(ids), [2]], 0))
    dcme.set_shape(ids.shape.concatenate([2]))
    return dcme
