"""Grid-classifier labels (paper 000, eqs. 1-3) and the class of an instance's center.

The encoder of the DCME network divides the image by ``Gs = 2**n`` (eq. 1), so each encoder
output classifies one ``Gs x Gs`` image block. A pixel at ``P`` belongs to encoder cell
``floor(P / Gs)`` (eq. 2); cell ``c`` covers the half-open block
``[Gs * c, Gs * (c + 1))`` (eq. 3). A block that holds several thing classes takes the
one that comes first in the priority list (the rarer class, DESIGN.md); a block without
thing pixels is background.

Grid ids: 0 is background, 1..8 follow :data:`dcme_keras.classes.THING_CLASSES`.

Rules this module settles:

* **Sizes not divisible by Gs** give ``ceil(H / Gs) x ceil(W / Gs)`` cells, the output
  size of a Keras encoder whose strided layers use ``padding="same"``. The last row and
  column of cells are labeled from the pixels they have: the image is padded at the
  bottom and right only, so eq. 3 holds for every cell. (Keras' and TF's ``"same"``
  padding split the pad between both sides, which would shift every block; the label
  code therefore pads explicitly instead.)
* **Group / crowd regions** (``cargroup`` and friends: plain label ids of a thing class,
  or instance ids below 1000) label their blocks with their class. The grid classifier
  is semantic: the pixels of a group of cars are car pixels, Cityscapes' own
  ``labelIds`` marks them so, and calling them background would teach the encoder that
  cars in dense traffic are background exactly where instance centers crowd together.
  Their exclusion from the *instance* metrics is the evaluator's business.
* **Label ids outside 0..255** (e.g. -1, the license plate's id, in an int map) are
  background.

The NumPy functions import no TensorFlow; the ``*_tf`` twins import it when called and
follow the same rules, for ``tf.data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.special

from dcme_keras.classes import (
    DEFAULT_PRIORITY,
    NUM_THING_CLASSES,
    label_id_to_grid_lut,
    priority_rank,
)
from dcme_keras.errors import UserInputError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "DEFAULT_PRIORITY",
    "center_cell",
    "classes_at_centers",
    "grid_labels",
    "grid_labels_tf",
    "grid_shape",
    "instance_ids_to_label_ids",
    "instance_ids_to_label_ids_tf",
    "scored_classes_at_centers",
]

#: Instance ids at or above this value are ``class_id * 1000 + k``.
_INSTANCE_ID_BASE = 1000
#: Label ids 0..255 are looked up; ``*_labelIds.png`` is 8-bit.
_LUT_SIZE = 256


def _check_grid_size(grid_size: int) -> int:
    """Return ``grid_size`` as int after checking that it is 2**n (eq. 1), n >= 0."""
    gs = int(grid_size)
    if gs != grid_size or gs < 1 or gs & (gs - 1):
        raise UserInputError(
            f"grid_size {grid_size!r} is not a power of two (paper eq. 1: Gs = 2^n); "
            "use the encoder's total stride, e.g. 16")
    return gs


def _priority_luts(priority: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Lookup tables between label ids, priority ranks and grid ids.

    Returns:
      rank_of_label: [256] int32, label id -> rank (lower wins, background ranks last).
      grid_of_rank: [background_rank + 1] int32, rank -> grid id.
      background_rank: int, the rank of background.
    """
    try:
        rank = np.asarray(priority_rank(priority), np.int32)  # [9], indexed by grid id
    except ValueError as err:
        raise UserInputError(
            f"{err}; pass a permutation of dcme_keras.classes.THING_CLASSES, "
            "e.g. dcme_keras.classes.DEFAULT_PRIORITY") from None
    rank_of_label = rank[np.asarray(label_id_to_grid_lut(), np.int64)]  # [256]
    background_rank = int(rank[0])
    grid_of_rank = np.zeros(background_rank + 1, np.int32)
    grid_of_rank[rank] = np.arange(NUM_THING_CLASSES + 1, dtype=np.int32)
    return rank_of_label, grid_of_rank, background_rank


def _check_label_map_shape(ndim: int, shape: Sequence[int | None]) -> None:
    """Check that a label map is [H, W], [H, W, 1] or [B, H, W, 1]."""
    if ndim == 2 or (ndim in (3, 4) and shape[-1] == 1):
        return
    raise UserInputError(
        f"label map of shape {tuple(shape)} is not [H, W], [H, W, 1] or [B, H, W, 1]; "
        "pass one image's label ids (or a batch with a trailing channel of 1)")


def grid_shape(image_hw: Sequence[int], grid_size: int) -> tuple[int, int]:
    """Number of grid cells for an image: ``(ceil(H / Gs), ceil(W / Gs))``.

    Args:
      image_hw: (H, W) [pixels].
      grid_size: Gs = 2**n [pixels].

    Returns:
      (h, w) [cells], the spatial size of a stride-Gs encoder with ``padding="same"``.
    """
    gs = _check_grid_size(grid_size)
    h, w = (int(v) for v in image_hw)
    return -(-h // gs), -(-w // gs)


def grid_labels(label_ids: np.ndarray, grid_size: int,
                priority: Sequence[str] = DEFAULT_PRIORITY) -> np.ndarray:
    """Grid-classifier labels from a Cityscapes label-id map (paper eqs. 1-3).

    Each ``Gs x Gs`` block (eq. 3) takes the grid id of the highest-priority thing class
    that has at least one pixel in it, or 0 when it has none. Group regions count as
    their class; see the module docstring for this and for sizes not divisible by Gs.

    Example:
      >>> ids = np.zeros((4, 6), np.uint8)
      >>> ids[0, 0], ids[1, 1], ids[3, 5] = 26, 24, 24   # car, person, person
      >>> grid_labels(ids, 2)     # person outranks car in the default priority
      array([[1, 0, 0],
             [0, 0, 1]], dtype=int32)

    Args:
      label_ids: [H, W], [H, W, 1] or [B, H, W, 1] int, Cityscapes label ids (what
        ``*_gtFine_labelIds.png`` holds).
      grid_size: Gs = 2**n [pixels], the encoder's total stride.
      priority: the 8 thing-class names, highest priority first.

    Returns:
      [ceil(H/Gs), ceil(W/Gs)] int32 grid ids (with a leading [B] for a batch).

    Raises:
      UserInputError: for a grid size that is not a power of two, a priority list that
        is not a permutation of the thing classes, or a map of another shape.
    """
    gs = _check_grid_size(grid_size)
    rank_of_label, grid_of_rank, background_rank = _priority_luts(priority)
    ids = np.asarray(label_ids)
    _check_label_map_shape(ids.ndim, ids.shape)
    if ids.ndim > 2:
        ids = ids[..., 0]  # [(B,) H, W]
    ids = ids.astype(np.int64, copy=False)
    in_table = (ids >= 0) & (ids < _LUT_SIZE)
    ranks = np.where(in_table, rank_of_label[np.where(in_table, ids, 0)], background_rank)
    height, width = ids.shape[-2:]
    h, w = -(-height // gs), -(-width // gs)
    pad = [(0, 0)] * (ranks.ndim - 2) + [(0, h * gs - height), (0, w * gs - width)]
    ranks = np.pad(ranks, pad, constant_values=background_rank)  # [(B,) h*Gs, w*Gs]
    blocks = ranks.reshape(*ranks.shape[:-2], h, gs, w, gs)  # [(B,) h, Gs, w, Gs]
    return grid_of_rank[blocks.min(axis=(-3, -1))]  # [(B,) h, w]


def grid_labels_tf(label_ids: tf.Tensor, grid_size: int,
                   priority: Sequence[str] = DEFAULT_PRIORITY) -> tf.Tensor:
    """TF twin of :func:`grid_labels`, vectorised, for ``tf.data`` (same rules).

    Works with dynamic H and W (inside ``Dataset.map``); the rank must be static.

    Args:
      label_ids: [H, W], [H, W, 1] or [B, H, W, 1] integer tensor, Cityscapes label ids.
      grid_size: Gs = 2**n [pixels], a Python int.
      priority: the 8 thing-class names, highest priority first.

    Returns:
      [ceil(H/Gs), ceil(W/Gs)] int32 tensor of grid ids (with a leading [B] for a batch).
    """
    import tensorflow as tf

    gs = _check_grid_size(grid_size)
    rank_of_label, grid_of_rank, background_rank = _priority_luts(priority)
    ids = tf.convert_to_tensor(label_ids)
    _check_label_map_shape(ids.shape.rank, ids.shape.as_list())
    if ids.shape.rank > 2:
        ids = ids[..., 0]  # [(B,) H, W]
    ids = tf.cast(ids, tf.int32)
    in_table = (ids >= 0) & (ids < _LUT_SIZE)
    ranks = tf.where(in_table, tf.gather(rank_of_label, tf.where(in_table, ids, 0)),
                     background_rank)
    shape = tf.shape(ranks)
    height, width = shape[-2], shape[-1]
    h, w = -(-height // gs), -(-width // gs)
    pad = tf.concat([tf.zeros([tf.rank(ranks) - 2, 2], tf.int32),
                     [[0, h * gs - height], [0, w * gs - width]]], axis=0)
    ranks = tf.pad(ranks, pad, constant_values=background_rank)  # [(B,) h*Gs, w*Gs]
    blocks = tf.reshape(ranks, tf.concat([shape[:-2], [h, gs, w, gs]], axis=0))
    return tf.gather(grid_of_rank, tf.reduce_min(blocks, axis=[-3, -1]))  # [(B,) h, w]


def instance_ids_to_label_ids(instance_ids: np.ndarray) -> np.ndarray:
    """Label ids from Cityscapes instance ids: ``id // 1000`` from 1000 on, else ``id``.

    Values below 1000 are already plain label ids (background classes and group
    regions), so the result equals ``*_labelIds.png`` on real Cityscapes.

    Args:
      instance_ids: [...] int, ``class_id * 1000 + k`` or a plain label id.

    Returns:
      [...] int32 label ids, same shape.
    """
    ids = np.asarray(instance_ids).astype(np.int32)
    return np.where(ids >= _INSTANCE_ID_BASE, ids // _INSTANCE_ID_BASE, ids)


def instance_ids_to_label_ids_tf(instance_ids: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`instance_ids_to_label_ids`.

    Args:
      instance_ids: [...] integer tensor (uint16 from the PNG is fine).

    Returns:
      [...] int32 tensor of label ids.
    """
    import tensorflow as tf

    ids = tf.cast(instance_ids, tf.int32)
    return tf.where(ids >= _INSTANCE_ID_BASE, ids // _INSTANCE_ID_BASE, ids)


def center_cell(centers_rc: np.ndarray, grid_size: int) -> np.ndarray:
    """Encoder cell of each center of mass (paper eq. 2): ``floor(P / Gs)``.

    Args:
      centers_rc: [K, 2] float, (row, col) [pixels of the label map the grid was made
        from].
      grid_size: Gs = 2**n [pixels].

    Returns:
      [K, 2] int32 (row, col) [cells]. Not clipped: see :func:`classes_at_centers`.

    Raises:
      UserInputError: for a shape other than [K, 2] or a non-finite center.
    """
    gs = _check_grid_size(grid_size)
    centers = np.asarray(centers_rc, np.float64)
    if centers.ndim != 2 or centers.shape[1] != 2:
        raise UserInputError(
            f"centers of shape {centers.shape} are not [K, 2] (row, col); "
            "pass the centers that decode_dcme returns")
    if not np.isfinite(centers).all():
        raise UserInputError("centers hold NaN or inf; drop instances without pixels first")
    return np.floor(centers / gs).astype(np.int32)


def _cells_in_grid(centers_rc: np.ndarray, grid_size: int, grid_hw: Sequence[int]):
    """Row and column cell indices of centers, clipped to a grid of ``grid_hw`` cells.

    Clipping serves centers that fall just outside the grid, e.g. when the grid came
    from a map a few pixels smaller than the DCME map.
    """
    cells = center_cell(centers_rc, grid_size)
    rows = np.clip(cells[:, 0], 0, grid_hw[0] - 1)
    cols = np.clip(cells[:, 1], 0, grid_hw[1] - 1)
    return rows, cols


def classes_at_centers(grid_class_map: np.ndarray, centers_rc: np.ndarray,
                       grid_size: int) -> np.ndarray:
    """Class of each instance: the grid id of the cell that holds its center of mass.

    Args:
      grid_class_map: [h, w] int grid ids (e.g. the argmax of the grid classifier).
      centers_rc: [K, 2] float, (row, col) [pixels].
      grid_size: Gs = 2**n [pixels].

    Returns:
      [K] int32 grid ids (0 = background, 1..8 = THING_CLASSES).
    """
    grid = np.asarray(grid_class_map)
    if grid.ndim != 2:
        raise UserInputError(
            f"grid class map of shape {grid.shape} is not [h, w]; "
            "take the argmax over the class axis of one image's grid output")
    rows, cols = _cells_in_grid(centers_rc, grid_size, grid.shape)
    return grid[rows, cols].astype(np.int32)


def scored_classes_at_centers(grid_scores: np.ndarray, centers_rc: np.ndarray,
                              grid_size: int, *, from_logits: bool = True,
                              exclude_background: bool = True,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Class and confidence of each instance from the grid classifier's output.

    With ``exclude_background`` (the default) every instance gets its best *thing*
    class, scored by that class's probability. An instance the DCME decoder found in a
    cell the classifier calls background then ranks low instead of vanishing, which is
    what average precision rewards. Without it, the class is the plain argmax (paper
    000's choice) and may be 0.

    Args:
      grid_scores: [h, w, 1 + 8] float, the grid classifier's logits (or probabilities
        with ``from_logits=False``); channel 0 is background.
      centers_rc: [K, 2] float, (row, col) [pixels].
      grid_size: Gs = 2**n [pixels].
      from_logits: apply a softmax over the class axis first.
      exclude_background: choose among thing classes only.

    Returns:
      classes: [K] int32 grid ids.
      scores: [K] float32 probabilities in [0, 1] of those classes.
    """
    scores = np.asarray(grid_scores, np.float32)
    if scores.ndim != 3 or scores.shape[-1] < 2:
        raise UserInputError(
            f"grid scores of shape {scores.shape} are not [h, w, C] with C >= 2; "
            "pass one image's grid-classifier output")
    rows, cols = _cells_in_grid(centers_rc, grid_size, scores.shape[:2])
    picked = scores[rows, cols]  # [K, C]
    probs = scipy.special.softmax(picked, axis=-1) if from_logits else picked
    first = 1 if exclude_background else 0
    classes = first + np.argmax(probs[:, first:], axis=-1)  # [K]
    return (classes.astype(np.int32),
            np.take_along_axis(probs, classes[:, None], axis=-1)[:, 0].astype(np.float32))
