"""tf.data pipelines: whole scenes for the DCME network, object crops for the annotator.

Both read the ``cityscapes_instances`` TFDS dataset (``dcme-keras build``) and compute
their targets here, so that changing a codec never changes the stored dataset.

**DCME scenes** (paper 000), :func:`dcme_dataset`::

    decode -> resize (image bilinear, ids nearest) -> cache -> shuffle -> random flip
           -> dcme_targets (DCME vectors, grid labels, ignore weights) -> batch -> prefetch

Targets are encoded *after* resizing and flipping, so the vectors are in pixels of the
map the network predicts and a flip negates dx exactly. :func:`dcme_targets` is the same
computation for any (image, instance ids) pair, for users with their own data.

**Extreme-points crops** (paper 003), :func:`annotator_dataset`::

    decode -> object regions (NumPy: one full-resolution window per object) -> cache
           -> shuffle -> augment + clutter + extreme points + crop + degrade (NumPy)
           -> batch -> prefetch

One example per object of the chosen classes that is not a group and covers at least
``min_area`` source pixels. The maths is NumPy (:func:`object_regions_np`,
:func:`object_example_np`) called through ``tf.numpy_function``, so the TF pipeline and
:func:`annotator_examples_np` (calibration and parity data without TFDS, e.g. from
:func:`cityscapes_frames`) share one implementation.

Ignore rules (sample weights, 0 = ignored):

* DCME weights are 0 on Cityscapes ``void`` pixels (unlabeled, ego vehicle, borders,
  static, dynamic, ground: nobody said what they are), on group regions of classes with
  instances (``cargroup``: ids below 1000, which hold several objects and no vectors), and
  on instances of classes with instances that are not thing classes (caravan, trailer:
  the evaluator ignores them, and they are neither targets nor background).
* Grid weights are 0 only on cells that hold no thing pixel but do hold caravan or
  trailer pixels: calling those background would teach the classifier that a trailer,
  which looks like a truck, is background. Void stays background with weight 1: nothing
  is there to find, and a background grid cell is what suppresses instances that the
  decoder finds in unlabeled areas such as the ego-vehicle hood. Group regions label
  their cells with their class (see :mod:`dcme_keras.dcme.grid`) and count.
* Foreground weights (optional target, ``foreground=True``, beyond the paper) are the
  DCME weights: the foreground head learns instance-vs-rest exactly where the DCME head
  learns vectors, and says nothing about void, group or caravan / trailer pixels.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage
import tensorflow as tf
import tensorflow_datasets as tfds
from cityscapesscripts.helpers.labels import labels
from PIL import Image, ImageDraw

from dcme_keras import keys
from dcme_keras.classes import (
    ANNOTATOR_CLASSES,
    DEFAULT_PRIORITY,
    THING_LABEL_IDS,
    label_id,
)
from dcme_keras.dcme.codec import encode_dcme as encode_dcme_tf
from dcme_keras.dcme.grid import grid_labels_tf, instance_ids_to_label_ids_tf
from dcme_keras.errors import UserInputError
from dcme_keras.extreme_points import (
    DEFAULT_MARGIN,
    DEFAULT_RADIUS,
    DEFAULT_SIZE,
    crop_and_resize,
    extreme_points,
    make_input,
)

__all__ = [
    "DEFAULT_GRID_SIZE",
    "DEFAULT_MAX_ROTATION_DEG",
    "DEFAULT_MIN_AREA",
    "DEFAULT_SCENE_SIZE",
    "UNSCORED_INSTANCE_LABEL_IDS",
    "VOID_LABEL_IDS",
    "annotator_dataset",
    "annotator_examples_np",
    "augment_window",
    "cityscapes_frames",
    "clutter_window_np",
    "dcme_dataset",
    "dcme_targets",
    "dcme_weights",
    "foreground_target",
    "object_example_np",
    "object_regions_np",
    "photometric_np",
    "resize_scene",
    "visible_object_map",
]

DATASET_NAME = "cityscapes_instances"
#: The DCME network's input size in the paper: half-resolution Cityscapes, (H, W).
DEFAULT_SCENE_SIZE: tuple[int, int] = (512, 1024)
#: Gs of paper eq. 1: the DCME network's encoder stride (``deeplab_dcme.OUTPUT_STRIDE``).
DEFAULT_GRID_SIZE = 16
#: Smallest object [source pixels] the annotator trains on: the official evaluator ignores
#: smaller ground truth, and a person does not click 4 points on a 10 x 10 px object.
DEFAULT_MIN_AREA = 100
#: Largest rotation [degrees] of the annotator's augmentation. Street objects stand
#: upright in every frame the tool will see, so small tilts (a leaning cyclist, a camera
#: roll) teach shape variety and quarter turns would only teach upside-down cars.
DEFAULT_MAX_ROTATION_DEG = 15.0

#: Label ids of Cityscapes' ``void`` category (unlabeled, ego vehicle, ..., ground).
VOID_LABEL_IDS: tuple[int, ...] = tuple(
    lab.id for lab in labels if lab.category == "void" and lab.id >= 0)
#: Classes with instances that are not thing classes (caravan, trailer): never targets.
UNSCORED_INSTANCE_LABEL_IDS: tuple[int, ...] = tuple(
    lab.id for lab in labels if lab.hasInstances and lab.id not in THING_LABEL_IDS)

_INSTANCE_ID_BASE = 1000
_LUT_SIZE = 256  # label ids are 8-bit
_IGNORE_DCME, _UNSCORED = 1, 2  # bits of _IGNORE_CODES
_UNSET = -1


# ----------------------------------------------------------------------------------------
# DCME scenes
# ----------------------------------------------------------------------------------------


def resize_scene(image: tf.Tensor, instance_ids: tf.Tensor,
                 image_size: Sequence[int] | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize one scene for the DCME network: image bilinear, ids nearest neighbour.

    The image is filtered (``antialias=True``) so that 2048x1024 -> 1024x512 averages
    instead of aliasing, and rounded back to uint8 so that a cache holds a quarter of the
    float bytes. Ids are sampled at output pixel centres (``tf.image.resize`` nearest),
    exactly as the builder's ``half`` config stores them.

    Args:
      image: [H, W, 3] numeric tensor, RGB 0..255.
      instance_ids: [H, W] or [H, W, 1] integer tensor, ``class_id * 1000 + k``.
      image_size: output (H', W') [pixels], or None to keep the size.

    Returns:
      image: [H', W', 3] uint8 tensor.
      instance_ids: [H', W', 1] tensor of the input's integer dtype.
    """
    ids = tf.convert_to_tensor(instance_ids)
    if ids.shape.rank == 2:
        ids = ids[..., None]
    image = tf.convert_to_tensor(image)
    if image_size is None and image.dtype == tf.uint8:
        return image, ids
    image = tf.cast(image, tf.float32)
    if image_size is not None:
        size = [int(image_size[0]), int(image_size[1])]
        image = tf.image.resize(image, size, method="bilinear", antialias=True)
        ids = tf.image.resize(ids, size, method="nearest")
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8), ids


def _ignore_codes() -> np.ndarray:
    """[512] uint8 lookup by ``label_id + 256 * (instance_id < 1000)``.

    Bit 0: the pixel's DCME target is ignored; bit 1: the pixel belongs to a class with
    instances that is not a thing class (it hides a grid cell's true label).
    """
    codes = np.zeros(2 * _LUT_SIZE, np.uint8)
    plain = _LUT_SIZE  # offset of pixels that hold a plain label id
    for lab in labels:
        if lab.id < 0:
            continue
        if lab.id in VOID_LABEL_IDS:
            codes[[lab.id, plain + lab.id]] |= _IGNORE_DCME
        if lab.hasInstances:
            codes[plain + lab.id] |= _IGNORE_DCME  # a group region, e.g. cargroup
        if lab.id in UNSCORED_INSTANCE_LABEL_IDS:
            codes[[lab.id, plain + lab.id]] |= _IGNORE_DCME | _UNSCORED
    return codes


_IGNORE_CODES = _ignore_codes()


def _cells_any(mask: tf.Tensor, grid_size: int) -> tf.Tensor:
    """[H, W] bool -> [ceil(H/Gs), ceil(W/Gs)] bool: whether any pixel of a cell is True.

    Pads at the bottom and right only, the block layout of ``grid.grid_labels``.
    """
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    h, w = -(-height // grid_size), -(-width // grid_size)
    padded = tf.pad(mask, [[0, h * grid_size - height], [0, w * grid_size - width]])
    blocks = tf.reshape(padded, [h, grid_size, w, grid_size])  # [h, Gs, w, Gs]
    return tf.reduce_any(blocks, axis=[1, 3])


def dcme_weights(instance_ids: tf.Tensor, grid: tf.Tensor,
                 grid_size: int = DEFAULT_GRID_SIZE) -> dict[str, tf.Tensor]:
    """Ignore weights of one scene's targets (module docstring, "Ignore rules").

    Args:
      instance_ids: [H, W] or [H, W, 1] integer tensor, ``class_id * 1000 + k``.
      grid: [ceil(H/Gs), ceil(W/Gs)] int32 grid ids of the same scene (0 = background).
      grid_size: Gs [pixels].

    Returns:
      ``{keys.DCME: [H, W] float32, keys.GRID: [h, w] float32}``, 1 where the pixel or
      cell counts and 0 where it is ignored.
    """
    ids = tf.cast(instance_ids, tf.int32)
    if ids.shape.rank == 3:
        ids = ids[..., 0]
    # Label ids outside the table are no Cityscapes label; clipping sends negative ones to
    # 0 (unlabeled, void) and large ones to 255 (no code).
    label = tf.clip_by_value(instance_ids_to_label_ids_tf(ids), 0, _LUT_SIZE - 1)
    index = label + _LUT_SIZE * tf.cast(ids < _INSTANCE_ID_BASE, tf.int32)
    codes = tf.gather(tf.constant(_IGNORE_CODES), index)  # [H, W] uint8
    ignored = tf.bitwise.bitwise_and(codes, _IGNORE_DCME) > 0
    unscored = tf.bitwise.bitwise_and(codes, _UNSCORED) > 0
    grid_ignored = (grid == 0) & _cells_any(unscored, grid_size)
    return {keys.DCME: 1.0 - tf.cast(ignored, tf.float32),
            keys.GRID: 1.0 - tf.cast(grid_ignored, tf.float32)}


def foreground_target(instance_ids: tf.Tensor) -> tf.Tensor:
    """Target of the optional foreground head: 1 on instance pixels, 0 elsewhere.

    Instance pixels hold ``class_id * 1000 + k`` (ids >= 1000); everything else, group
    regions and void included, is 0 here. Pair it with :func:`dcme_weights`'
    ``keys.DCME`` weights, which are 0 on void and group pixels, as
    :func:`dcme_targets` does with ``foreground=True``.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer tensor, ``class_id * 1000 + k``.

    Returns:
      [H, W, 1] float32 tensor of 0 and 1, the shape of the head's ``keys.FOREGROUND``
      output.
    """
    ids = tf.cast(instance_ids, tf.int32)
    if ids.shape.rank == 2:
        ids = ids[..., None]
    return tf.cast(ids >= _INSTANCE_ID_BASE, tf.float32)


def dcme_targets(image: tf.Tensor, instance_ids: tf.Tensor, *,
                 image_size: Sequence[int] | None = None,
                 grid_size: int = DEFAULT_GRID_SIZE,
                 priority: Sequence[str] = DEFAULT_PRIORITY,
                 foreground: bool = False):
    """One training example of the DCME network from any (image, instance ids) pair.

    Pure TF, usable in ``Dataset.map`` on data of your own in the Cityscapes encoding.
    DCME vectors and grid labels are computed from the (resized) ids, so vectors are in
    pixels of the network's output map.

    Example:
      >>> ds = my_pairs.map(lambda im, ids: dcme_targets(im, ids, image_size=(512, 1024)))

    Args:
      image: [H, W, 3] numeric tensor, RGB 0..255.
      instance_ids: [H, W] or [H, W, 1] integer tensor, ``class_id * 1000 + k`` (k from
        0), plain label ids below 1000.
      image_size: resize to (H', W') first (:func:`resize_scene`), or None.
      grid_size: Gs = 2**n [pixels], the encoder's stride.
      priority: the 8 thing-class names, highest grid priority first.
      foreground: also return the optional foreground head's target and weights
        (:func:`foreground_target`; beyond the paper).

    Returns:
      ``(image, targets, weights)``:
        image: [H', W', 3] float32, RGB 0..255;
        targets: ``{keys.DCME: [H', W', 2] float32 (dy, dx) pixels,
        keys.GRID: [h, w] int32 grid ids}`` with ``h = ceil(H'/Gs)``;
        weights: ``{keys.DCME: [H', W'] float32, keys.GRID: [h, w] float32}``.
        With ``foreground``, targets also hold ``keys.FOREGROUND: [H', W', 1] float32``
        (1 on instance pixels) and weights ``keys.FOREGROUND: [H', W'] float32`` (the
        DCME weights: 0 on void and group pixels).
    """
    image, ids = resize_scene(image, instance_ids, image_size)
    grid = grid_labels_tf(instance_ids_to_label_ids_tf(ids), grid_size, priority)
    targets = {keys.DCME: encode_dcme_tf(ids[..., 0]), keys.GRID: grid}
    if foreground:
        weights = dcme_weights(ids, grid, grid_size)
        targets[keys.FOREGROUND] = foreground_target(ids)
        weights[keys.FOREGROUND] = weights[keys.DCME]
        return tf.cast(image, tf.float32), targets, weights
    return tf.cast(image, tf.float32), targets, dcme_weights(ids, grid, grid_size)


def _flip_scene(scene: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor):
    """Mirror image and ids left-right with probability 1/2 (stateless, from ``seed``)."""
    flip = tf.random.stateless_uniform([], seed=tf.stack([seed, 0])) < 0.5
    return tuple(tf.where(flip, x[:, ::-1], x) for x in scene)


def dcme_dataset(split: str, *, data_dir: str | os.PathLike, config: str | None = None,
                 image_size: Sequence[int] | None = DEFAULT_SCENE_SIZE, batch_size: int = 6,
                 grid_size: int = DEFAULT_GRID_SIZE,
                 priority: Sequence[str] = DEFAULT_PRIORITY,
                 shuffle: bool | None = None, flip: bool | None = None,
                 cache: str | os.PathLike | None = None, shuffle_buffer: int = 64,
                 drop_remainder: bool | None = None, seed: int | None = None,
                 foreground: bool = False
                 ) -> tf.data.Dataset:
    """Batches of whole scenes for ``model.fit`` of the DCME network (paper 000).

    Example:
      >>> train = dcme_dataset("train", data_dir="~/tensorflow_datasets", cache="memory")
      >>> model.fit(train, epochs=100)   # losses keyed by keys.DCME and keys.GRID

    Args:
      split: a TFDS split of cityscapes_instances, ``"train"`` or ``"validation"``
        (slices such as ``"train[:10%]"`` work).
      data_dir: TFDS data dir the dataset was built into (``dcme-keras build``).
      config: builder config, ``"full"`` or ``"half"``; None takes the builder's default.
        ``half`` stores 1024x512 frames, which makes the default ``image_size`` free.
      image_size: network input (H, W) [pixels], multiples of ``grid_size``; None keeps
        the stored size (then frames must share one size to be batched).
      batch_size: scenes per batch (the paper trains with 6).
      grid_size: Gs [pixels], the encoder's stride.
      priority: grid priority, the 8 thing-class names, rarest first.
      shuffle: shuffle files and scenes; default: for a ``train`` split.
      flip: random horizontal flip; default: for a ``train`` split.
      cache: None, ``"memory"``, or a file prefix for ``Dataset.cache`` (the split, config
        and size are appended, so one prefix serves several datasets). The cache holds
        the decoded and resized uint8 scenes, before any random step: at 512x1024 that is
        2.5 MB per frame, 7.4 GB for Cityscapes train.
      shuffle_buffer: scenes in the shuffle buffer.
      drop_remainder: drop a last, smaller batch; default: for a ``train`` split.
      seed: makes shuffling and flips reproducible; None draws fresh ones.
      foreground: add the optional foreground head's target and weights under
        ``keys.FOREGROUND`` (:func:`dcme_targets`); beyond the paper.

    Returns:
      A ``tf.data.Dataset`` of ``(image, targets, weights)``:
        image: [B, H, W, 3] float32, RGB 0..255 (the model input ``image``);
        targets: ``{keys.DCME: [B, H, W, 2] float32 (dy, dx) pixels,
        keys.GRID: [B, H/Gs, W/Gs] int32 grid ids}``;
        weights: ``{keys.DCME: [B, H, W] float32, keys.GRID: [B, H/Gs, W/Gs] float32}``,
        0 on ignored pixels and cells (module docstring).
        With ``foreground``, also ``targets[keys.FOREGROUND]: [B, H, W, 1] float32``
        and ``weights[keys.FOREGROUND]: [B, H, W] float32``.

    Raises:
      UserInputError: for a dataset that is not built, an unknown split or config, or
        bad sizes.
    """
    grid_size = _check_int(grid_size, "grid_size", 1, DEFAULT_GRID_SIZE)
    batch_size = _check_int(batch_size, "batch_size", 1, 6)
    if image_size is not None:
        image_size = _check_image_size(image_size, grid_size)
    builder, training = _builder(data_dir, config, split)
    shuffle = training if shuffle is None else bool(shuffle)
    flip = training if flip is None else bool(flip)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)


    def resize(frame):
        return resize_scene(frame[keys.IMAGE], frame[keys.INSTANCE_IDS], image_size)

    def targets(image, ids):
        return dcme_targets(image, ids, grid_size=grid_size, priority=priority,
                            foreground=foreground)

    scenes = _map(_frames(builder, split, shuffle, seed), resize)
    size_tag = "stored" if image_size is None else f"{image_size[0]}x{image_size[1]}"
    scenes = _cache(scenes, cache, f"dcme_{builder.builder_config.name}_{split}_{size_tag}")
    if shuffle:
        scenes = scenes.shuffle(_check_int(shuffle_buffer, "shuffle_buffer", 1, 64),
                                seed=seed, reshuffle_each_iteration=True)
    if flip:
        scenes = _map(tf.data.Dataset.zip(scenes, _seeds(seed)), _flip_scene)
    examples = _map(scenes, targets)
    return examples.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def dcme_scenes(split: str, *, data_dir: str | os.PathLike, config: str | None = None,
                image_size: Sequence[int] | None = DEFAULT_SCENE_SIZE,
                grid_size: int = DEFAULT_GRID_SIZE) -> tf.data.Dataset:
    """Whole scenes with their instance ids, in file order, for decoded metrics.

    The same frames and resizing as :func:`dcme_dataset`, unbatched, unshuffled and
    unflipped, with the instance ids in place of the training targets, so a decoded
    network output can be matched against the ground truth at network resolution
    (:func:`dcme_keras.evaluation.instance_detections`).

    Example:
      >>> for image, ids in dcme_scenes("validation", data_dir="~/tensorflow_datasets"):
      ...     outputs = model(image[None], training=False)

    Args:
      split: a TFDS split of cityscapes_instances (slices such as ``"validation[:4]"``).
      data_dir: TFDS data dir the dataset was built into (``dcme-keras build``).
      config: builder config, ``"full"`` or ``"half"``; None takes the builder's default.
      image_size: network input (H, W) [pixels], multiples of ``grid_size``; None keeps
        the stored size.
      grid_size: Gs [pixels], the encoder's stride (only checks ``image_size``).

    Returns:
      A ``tf.data.Dataset`` of ``(image [H, W, 3] float32 RGB 0..255,
      instance_ids [H, W] int32)``.

    Raises:
      UserInputError: for a dataset that is not built, an unknown split or config, or
        bad sizes.
    """
    grid_size = _check_int(grid_size, "grid_size", 1, DEFAULT_GRID_SIZE)
    if image_size is not None:
        image_size = _check_image_size(image_size, grid_size)
    builder, _ = _builder(data_dir, config, split)

    def resize(frame):
        image, ids = resize_scene(frame[keys.IMAGE], frame[keys.INSTANCE_IDS], image_size)
        return tf.cast(image, tf.float32), tf.cast(ids[..., 0], tf.int32)

    return _map(_frames(builder, split, False, None), resize)


# ----------------------------------------------------------------------------------------
# Extreme-points crops: NumPy maths
# ----------------------------------------------------------------------------------------


def visible_object_map(instance_ids: np.ndarray, objects: Mapping,
                       label_ids: Sequence[int] | None = None) -> np.ndarray:
    """Which object owns each pixel: its visible pixels, occlusion taken into account.

    * An instance (id >= 1000) owns the pixels that hold its id.
    * An object with a plain id (traffic signs and lights share id 19 / 20) and a polygon
      owns the pixels inside its polygon that hold its id and that no later polygon of
      the same id covers. Polygons are rasterized by PIL in file order, as
      cityscapesscripts rasterized instanceIds; objects of other ids drawn later need no
      drawing, because the id test already removes their pixels.
    * An object with a plain id and no polygon (a frame without polygons JSON, whose
      objects come from instanceIds alone) owns every pixel of its id.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer, ``class_id * 1000 + k``.
      objects: the frame's objects, keyed by ``keys.OBJECT_*``: ``id`` [N] int and, for
        plain-id objects, ``polygon`` (N arrays [P, 2] float32 (x, y) pixels of this map)
        and ``label`` [N] int.
      label_ids: map only objects of these Cityscapes label ids (faster); None maps all.

    Returns:
      [H, W] int32, the index into ``objects`` of the owner, -1 where no object is mapped.

    Raises:
      UserInputError: for an ids map that is not 2-D.
    """
    ids = np.asarray(instance_ids)
    if ids.ndim == 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.ndim != 2:
        raise UserInputError(f"instance_ids of shape {ids.shape} is not [H, W]; pass one map")
    ids = ids.astype(np.int64, copy=False)
    object_ids = np.asarray(objects[keys.OBJECT_ID], np.int64).reshape(-1)
    wanted = np.ones(object_ids.shape, bool)
    if label_ids is not None:
        wanted = np.isin(np.asarray(objects[keys.OBJECT_LABEL]), list(label_ids))

    owner = np.full(ids.shape, _UNSET, np.int32)
    instances = np.flatnonzero(wanted & (object_ids >= _INSTANCE_ID_BASE))
    if instances.size:
        lut = np.full(max(int(ids.max()), int(object_ids[instances].max())) + 1, _UNSET,
                      np.int32)
        lut[object_ids[instances]] = instances
        owner = lut[ids]
    polygons = objects.get(keys.OBJECT_POLYGON)
    plain = np.flatnonzero(wanted & (object_ids < _INSTANCE_ID_BASE))
    drawn = [k for k in plain if polygons is not None and len(polygons[k])]
    for k in sorted(set(plain) - set(drawn)):
        owner[ids == object_ids[k]] = k
    if drawn:
        canvas = Image.new("I", (ids.shape[1], ids.shape[0]), 0)
        draw = ImageDraw.Draw(canvas)
        for k in drawn:
            draw.polygon([(float(x), float(y)) for x, y in np.asarray(polygons[k])],
                         fill=int(k) + 1)
        index = np.asarray(canvas).astype(np.int64) - 1  # [H, W], -1 outside every polygon
        inside = index >= 0
        mine = inside & (ids == object_ids[np.maximum(index, 0)])
        owner[mine] = index[mine]
    return owner


def _eligible(objects: Mapping, label_ids: Sequence[int], min_area: float) -> np.ndarray:
    """Indices of objects the annotator trains on, before counting visible pixels.

    A plain-id object without a polygon is left out: in a frame without polygons JSON
    it stands for every object of its class at once.
    """
    object_ids = np.asarray(objects[keys.OBJECT_ID]).reshape(-1)
    polygons = objects.get(keys.OBJECT_POLYGON)
    has_polygon = np.array([polygons is not None and len(polygons[k]) > 0
                            for k in range(object_ids.size)], bool)
    keep = (np.isin(np.asarray(objects[keys.OBJECT_LABEL]), list(label_ids))
            & ~np.asarray(objects[keys.OBJECT_IS_CROWD], bool)
            & (np.asarray(objects[keys.OBJECT_AREA]) >= min_area)
            & ((object_ids >= _INSTANCE_ID_BASE) | has_polygon))
    return np.flatnonzero(keep)


def _half_extents(half_w: float, half_h: float, max_rotation_deg: float) -> tuple[float, float]:
    """Largest half width and height of a box's rotations by up to ``max_rotation_deg``.

    ``a cos t + b sin t`` grows until ``t = atan2(b, a)``, so its maximum over
    ``[0, t_max]`` is at ``min(t_max, atan2(b, a))``; likewise for the height.
    """
    t_max = math.radians(min(abs(max_rotation_deg), 90.0))
    t_w, t_h = min(t_max, math.atan2(half_h, half_w)), min(t_max, math.atan2(half_w, half_h))
    return (half_w * math.cos(t_w) + half_h * math.sin(t_w),
            half_w * math.sin(t_h) + half_h * math.cos(t_h))


def object_regions_np(image: np.ndarray, instance_ids: np.ndarray, objects: Mapping, *,
                      classes: Sequence[str] = ANNOTATOR_CLASSES,
                      min_area: float = DEFAULT_MIN_AREA, margin: float = DEFAULT_MARGIN,
                      jitter_px: int = 0, max_rotation_deg: float = 0.0
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full-resolution windows around each eligible object, with its visible mask.

    An object is eligible when its class is in ``classes``, it is not a group region, its
    area (``objects["area"]``, source pixels) is at least ``min_area``, and at least 2 of
    its pixels are visible in this map (one pixel has 4 coinciding extreme points).

    Each window is centred on the object's box and large enough for the crop that
    :func:`object_example_np` takes after any rotation up to ``max_rotation_deg`` and
    any click jitter up to ``jitter_px``, clipped to the frame. Crops taken in the window
    therefore equal crops taken in the frame, and a cache of windows holds a few times the
    objects' pixels instead of whole frames.

    Args:
      image: [H, W, 3] uint8 RGB.
      instance_ids: [H, W] or [H, W, 1] integer, ``class_id * 1000 + k``.
      objects: the frame's objects keyed by ``keys.OBJECT_*`` (id, label, area,
        is_crowd, polygon), as the cityscapes_instances builder stores them.
      classes: Cityscapes class names to take.
      min_area: smallest ``area`` [source pixels].
      margin: the crop margin of :func:`dcme_keras.extreme_points.crop_box`.
      jitter_px: largest click jitter [pixels of this map].
      max_rotation_deg: largest augmentation rotation [degrees].

    Returns:
      One ``(image_window [h, w, 3] uint8, mask_window [h, w] bool)`` per eligible object,
      in object order.

    Raises:
      UserInputError: for an unknown class name or a map that is not 2-D.
    """
    label_ids = _class_label_ids(classes)
    owner = visible_object_map(instance_ids, objects, label_ids)
    candidates = _eligible(objects, label_ids, min_area)
    if not candidates.size:
        return []
    counts = np.bincount(owner.ravel() + 1, minlength=len(objects[keys.OBJECT_ID]) + 1)[1:]
    boxes = scipy.ndimage.find_objects(owner + 1, max_label=counts.size)
    height, width = owner.shape
    grow = 1.0 + 2.0 * margin
    regions = []
    for k in candidates:
        if counts[k] < 2:
            continue
        rows, cols = boxes[k]
        half_w, half_h = (cols.stop - cols.start) / 2.0, (rows.stop - rows.start) / 2.0
        ext_w, ext_h = _half_extents(half_w, half_h, max_rotation_deg)
        # Half sides of the largest crop box: +1 px for the resampled rotation, the
        # jitter, the crop margin around the points, +1 for the margin's rounding.
        pad_w = (ext_w + 1 + jitter_px) * grow + 1
        pad_h = (ext_h + 1 + jitter_px) * grow + 1
        if max_rotation_deg:
            # The warp fills that box from the box rotated back, whose corners reach a
            # disc through the box's corners; +1 for the bilinear neighbours.
            pad_w = pad_h = math.hypot(pad_w, pad_h) + 1
        cx, cy = (cols.start + cols.stop) / 2.0, (rows.start + rows.stop) / 2.0
        x0, x1 = max(0, math.floor(cx - pad_w)), min(width, math.ceil(cx + pad_w))
        y0, y1 = max(0, math.floor(cy - pad_h)), min(height, math.ceil(cy + pad_h))
        regions.append((np.ascontiguousarray(image[y0:y1, x0:x1]),
                        owner[y0:y1, x0:x1] == k))
    return regions


def augment_window(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                   max_rotation_deg: float = DEFAULT_MAX_ROTATION_DEG
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Random horizontal flip (p = 1/2), then a rotation about the object's box centre.

    The image is resampled bilinearly with replicated borders (a reflected border would
    show an unlabeled mirror copy of the object); the mask is resampled bilinearly and
    thresholded at 1/2, so its outline rotates without nearest-neighbour stair steps.
    Draws from ``rng`` in this order: the flip, then the angle.

    Args:
      image: [h, w, 3] uint8 RGB window.
      mask: [h, w] bool, the object's pixels, not empty.
      rng: the randomness.
      max_rotation_deg: the angle is uniform in +-this [degrees, counter-clockwise].

    Returns:
      image: [h, w, 3] uint8; mask: [h, w] bool (may lose a thin object's pixels).
    """
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg) if max_rotation_deg else 0.0
    if angle == 0.0:
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    center = ((cols[0] + cols[-1]) / 2.0, (rows[0] + rows[-1]) / 2.0)
    matrix = cv2.getRotationMatrix2D(center, angle, 1.0)
    size = (image.shape[1], image.shape[0])
    image = cv2.warpAffine(np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), matrix, size,
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) >= 0.5
    return image, mask


def clutter_window_np(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Put recoloured copies of the object beside it, behind it or in front of it.

    Real crops seldom hold one object on a clean background: parked cars touch and hide
    each other, people stand in groups. Here one copy (two with p = 0.4) of the object's
    own pixels, flipped (p = 1/2), scaled by 0.8-1.25 and recoloured (per-channel gain
    0.55-1.45, brightness 0.6-1.3), is moved by 0.3-1.0 of the object's box width sideways
    and up to 0.25 of its height vertically. With p = 0.35 the copy stands in front, and
    the object loses the pixels it covers, if at least half of them stay visible;
    otherwise it stands behind and shows only around the object. Because a copy has the
    object's shape and class, only the extreme points tell which one is meant.

    Args:
      image: [h, w, 3] uint8 RGB window.
      mask: [h, w] bool, the object's pixels, not empty.
      rng: the randomness.

    Returns:
      image: [h, w, 3] uint8; mask: [h, w] bool, the object's still visible pixels.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box_w, box_h = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    center = ((cols[0] + cols[-1]) / 2.0, (rows[0] + rows[-1]) / 2.0)
    size = (image.shape[1], image.shape[0])
    out_image, out_mask = image.copy(), mask.copy()
    area = np.count_nonzero(mask)
    for _ in range(1 + int(rng.random() < 0.4)):
        flip = rng.random() < 0.5
        scale = rng.uniform(0.8, 1.25)
        shift = (rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.0) * box_w,
                 rng.uniform(-0.25, 0.25) * box_h)
        matrix = cv2.getRotationMatrix2D(center, 0.0, scale)
        if flip:  # mirror about the box centre: x -> 2 cx - x, before scaling
            matrix[:, 0] *= -1.0
            matrix[0, 2] += 2.0 * center[0] * scale
        matrix[:, 2] += shift
        copy = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        copy_mask = cv2.warpAffine(mask.astype(np.float32), matrix, size,
                                   flags=cv2.INTER_LINEAR) >= 0.5
        copy = np.clip(copy * rng.uniform(0.55, 1.45, 3) * rng.uniform(0.6, 1.3), 0, 255)
        visible = out_mask & ~copy_mask
        if rng.random() < 0.35 and np.count_nonzero(visible) >= max(2, 0.5 * area):
            paste, out_mask = copy_mask, visible
        else:
            paste = copy_mask & ~out_mask
        out_image[paste] = copy[paste].astype(np.uint8)
    return out_image, out_mask


def _jitter(points: np.ndarray, jitter_px: int, hw: tuple[int, int],
            rng: np.random.Generator) -> np.ndarray:
    """Move each click by up to ``jitter_px`` per axis, staying inside the image."""
    moved = points + rng.integers(-jitter_px, jitter_px + 1, size=points.shape)
    moved = np.clip(moved, 0, [hw[1] - 1, hw[0] - 1])
    # Four clicks on one pixel carry no extent; a person never clicks so.
    return points if (moved == moved[0]).all() else moved


def _motion_kernel(rng: np.random.Generator, length: int) -> np.ndarray:
    """A [length, length] line kernel at a random angle, summing to 1."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0),
                                       rng.uniform(0.0, 180.0), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / max(float(kernel.sum()), 1e-6)


def photometric_np(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a real camera does to a crop and a clean synthetic render lacks.

    Applied to the network's RGB crop, so it costs the same for every object. In order,
    each with its own probability: lower resolution (the crop shrunk by 0.35-1 and
    resized back: small objects' lost detail, p = 0.3); a colour cast, brightness,
    contrast and gamma (always, mild); a shadow, a soft-edged half plane darkened to
    0.45-0.85 (p = 0.3); defocus (Gaussian, sigma 0.4-1.4 px, p = 0.2) or motion blur
    (3-7 px line, p = 0.15); sensor noise (Gaussian, sigma 1-8 / 255, p = 0.5); and a
    JPEG round trip at quality 30-90 (p = 0.3). Geometry never changes, so the target
    mask and the point channel stay exact.

    Args:
      rgb: [S, S, 3] float32 in [0, 1], the crop's RGB / 255.
      rng: the randomness.

    Returns:
      [S, S, 3] float32 in [0, 1].
    """
    side_h, side_w = rgb.shape[:2]
    out = np.ascontiguousarray(rgb, np.float32)
    if rng.random() < 0.3:
        factor = rng.uniform(0.35, 1.0)
        small = (max(4, round(side_w * factor)), max(4, round(side_h * factor)))
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA),
                         (side_w, side_h), interpolation=cv2.INTER_LINEAR)
    cast = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.7, 1.3) + mean
    out = np.clip(out * cast * rng.uniform(0.65, 1.35), 0.0, 1.0) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.3:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        rows, cols = np.mgrid[0:side_h, 0:side_w].astype(np.float32)
        offset = rng.uniform(-0.5, 0.5) * max(side_h, side_w)
        signed = ((cols - side_w / 2.0) * np.cos(angle) + (rows - side_h / 2.0) * np.sin(angle)
                  - offset)
        softness = rng.uniform(1.0, 0.1 * max(side_h, side_w))
        inside = 1.0 / (1.0 + np.exp(np.clip(signed / softness, -30.0, 30.0)))
        out = out * (1.0 - (1.0 - rng.uniform(0.45, 0.85)) * inside[..., None])
    blur = rng.random()
    if blur < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.4))
    elif blur < 0.35:
        out = cv2.filter2D(out, -1, _motion_kernel(rng, int(rng.integers(3, 8))))
    if rng.random() < 0.5:
        out = out + rng.normal(0.0, rng.uniform(1.0, 8.0) / 255.0, out.shape)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < 0.3:
        quality = int(rng.integers(30, 91))
        ok, jpeg = cv2.imencode(".jpg", np.round(out * 255.0).astype(np.uint8),
                                [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return out.astype(np.float32)


def object_example_np(image: np.ndarray, mask: np.ndarray, *,
                      rng: np.random.Generator | None = None, augment: bool = False,
                      max_rotation_deg: float = DEFAULT_MAX_ROTATION_DEG,
                      jitter_px: int = 0, size: int = DEFAULT_SIZE,
                      radius: int = DEFAULT_RADIUS, margin: float = DEFAULT_MARGIN,
                      points: bool = True, photometric: bool = False,
                      clutter: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One annotator example: augment the window, click its extreme points, crop.

    The order makes the points right by construction: the window and its mask are
    augmented first, the extreme points are taken from the augmented mask (and jittered
    like a person's clicks), and the input and the target are cropped around them with
    :func:`dcme_keras.extreme_points.make_input` / ``crop_and_resize``, exactly what the
    annotation tool does at inference.

    Args:
      image: [h, w, 3] uint8 RGB, a window around the object (or a whole frame).
      mask: [h, w] bool, the object's visible pixels, at least 2.
      rng: randomness for augmentation and jitter; needed when either is on.
      augment: random horizontal flip and rotation.
      max_rotation_deg: rotations are uniform in +-this [degrees].
      jitter_px: each click moves by a uniform integer in +-this per axis [pixels].
      size: S, the network's input side [pixels].
      radius: point circle radius [pixels of the S x S crop].
      margin: crop margin around the points' box, a fraction of its size.
      points: add the point channel (False: the RGB-only baseline).
      photometric: degrade the crop's RGB like a real camera (:func:`photometric_np`),
        after the points are drawn, with ``rng``.
      clutter: with probability 1/2, same-class neighbours beside, behind or in front of
        the object (:func:`clutter_window_np`), after the augmentation and before the
        points are taken, with ``rng``.

    Returns:
      inputs: [S, S, 4] (or [S, S, 3]) float32, RGB / 255 then the point channel.
      target: [S, S, 1] float32, 1 inside the object's crop (bilinear, ``>= 0.5``).
      clicks: [4, 2] int32 (x, y) [window pixels], left, top, right, bottom, the points
        the input was drawn from.
    """
    mask = np.asarray(mask, bool)
    if (augment or jitter_px or photometric or clutter) and rng is None:
        raise UserInputError("augment, jitter, photometric and clutter need a random "
                             "generator; pass rng=np.random.default_rng(seed)")
    if augment:
        aug_image, aug_mask = augment_window(image, mask, rng, max_rotation_deg)
        # A thin object can rotate down to one pixel; keep it as it was then.
        if np.count_nonzero(aug_mask) >= 2:
            image, mask = aug_image, aug_mask
    if clutter and rng.random() < 0.5:
        image, mask = clutter_window_np(image, mask, rng)
    clicks = extreme_points(mask)
    if jitter_px:
        clicks = _jitter(clicks, int(jitter_px), mask.shape, rng)
    inputs = make_input(np.ascontiguousarray(image), clicks, size, radius, margin)
    if photometric:
        inputs[..., :3] = photometric_np(inputs[..., :3], rng)
    if not points:
        inputs = inputs[..., :3]
    target, _, _ = crop_and_resize(mask, clicks, size, margin)
    return inputs, (target >= 0.5).astype(np.float32)[..., None], clicks.astype(np.int32)


def annotator_examples_np(image: np.ndarray, instance_ids: np.ndarray, objects: Mapping, *,
                          classes: Sequence[str] = ANNOTATOR_CLASSES,
                          min_area: float = DEFAULT_MIN_AREA, margin: float = DEFAULT_MARGIN,
                          radius: int = DEFAULT_RADIUS, size: int = DEFAULT_SIZE,
                          jitter_px: int = 0, augment: bool = False,
                          max_rotation_deg: float = DEFAULT_MAX_ROTATION_DEG,
                          points: bool = True, rng: np.random.Generator | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """All annotator examples of one frame, without TensorFlow's data machinery.

    The same maths as :func:`annotator_dataset` (:func:`object_regions_np` then
    :func:`object_example_np`), for calibration and parity data, e.g. from
    :func:`cityscapes_frames` or :func:`dcme_keras.data.synthetic.render_frame`.

    Args:
      image: [H, W, 3] uint8 RGB.
      instance_ids: [H, W] or [H, W, 1] integer, ``class_id * 1000 + k``.
      objects: the frame's objects keyed by ``keys.OBJECT_*``.
      classes, min_area, margin, radius, size, jitter_px, augment, max_rotation_deg,
        points, rng: see :func:`annotator_dataset` and :func:`object_example_np`.

    Returns:
      inputs: [N, S, S, 4] (or 3) float32; targets: [N, S, S, 1] float32 0/1.
    """
    rotation = max_rotation_deg if augment else 0.0
    regions = object_regions_np(image, instance_ids, objects, classes=classes,
                                min_area=min_area, margin=margin, jitter_px=jitter_px,
                                max_rotation_deg=rotation)
    inputs = np.zeros((len(regions), size, size, 4 if points else 3), np.float32)
    targets = np.zeros((len(regions), size, size, 1), np.float32)
    for n, (window, mask) in enumerate(regions):
        inputs[n], targets[n], _ = object_example_np(
            window, mask, rng=rng, augment=augment, max_rotation_deg=rotation,
            jitter_px=jitter_px, size=size, radius=radius, margin=margin, points=points)
    return inputs, targets


def cityscapes_frames(manual_dir: str | os.PathLike, split: str = "val", *,
                      limit: int | None = None) -> Iterator[dict]:
    """Decoded frames of a Cityscapes-layout folder (or the official zips), no TFDS build.

    Objects come from the builder's own functions (polygons JSON when present, else the
    instanceIds PNG), so they are the very records the TFDS dataset stores.

    Args:
      manual_dir: folder with ``leftImg8bit/`` and ``gtFine/`` (e.g. ``dcme-keras synth``
        output), or the official ``*_trainvaltest.zip`` files.
      split: Cityscapes split folder, ``"train"`` or ``"val"``.
      limit: stop after this many frames; None reads all.

    Yields:
      ``{keys.IMAGE_ID: str, keys.IMAGE: [H, W, 3] uint8 RGB,
      keys.INSTANCE_IDS: [H, W] uint16, keys.OBJECTS: dict}``, in file order.

    Raises:
      UserInputError: for a missing or incomplete folder or an undecodable file.
    """
    from tfds_cityscapes.cityscapes_instances import cityscapes_instances_dataset_builder as b

    with b.open_trees(Path(manual_dir).expanduser()) as (images, gt):
        for n, frame in enumerate(b.list_frames(images, gt, split)):
            if limit is not None and n >= limit:
                return
            image = _decode(images.read(frame.image), cv2.IMREAD_COLOR,
                            images.describe(frame.image))
            ids = _decode(gt.read(frame.instance_ids), cv2.IMREAD_UNCHANGED,
                          gt.describe(frame.instance_ids)).astype(np.uint16)
            if frame.polygons is None:
                objects = b.objects_from_instance_ids(ids)
            else:
                annotation = _read_json(gt.read(frame.polygons), gt.describe(frame.polygons))
                objects = b.objects_from_polygons(annotation, ids,
                                                  name=gt.describe(frame.polygons))
            yield {keys.IMAGE_ID: frame.stem, keys.IMAGE: image[..., ::-1].copy(),
                   keys.INSTANCE_IDS: ids, keys.OBJECTS: objects}


def _read_json(data: bytes, name: str) -> dict:
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise UserInputError(f"{name} is not valid JSON ({err}); re-download or re-extract "
                             "it") from None


def _decode(data: bytes, flags: int, name: str) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None:
        raise UserInputError(f"cannot decode {name} as an image; re-download or re-extract it")
    return array


# ----------------------------------------------------------------------------------------
# Extreme-points crops: tf.data
# ----------------------------------------------------------------------------------------


def _frame_regions_tf(frame: Mapping, region_kwargs: Mapping) -> dict[str, tf.Tensor]:
    """One frame -> its objects' windows as ragged rows (for ``unbatch``)."""
    objects = frame[keys.OBJECTS]
    polygons = objects[keys.OBJECT_POLYGON]

    def regions_np(image, ids, object_ids, labels_, areas, crowd, flat_xy, lengths):
        split_at = np.cumsum(lengths)[:-1]
        objs = {keys.OBJECT_ID: object_ids, keys.OBJECT_LABEL: labels_,
                keys.OBJECT_AREA: areas, keys.OBJECT_IS_CROWD: crowd,
                keys.OBJECT_POLYGON: np.split(flat_xy, split_at)}
        regions = object_regions_np(image, ids, objs, **region_kwargs)
        shapes = np.array([m.shape for _, m in regions], np.int64).reshape(-1, 2)
        flat_images = np.concatenate([w.ravel() for w, _ in regions] or [np.zeros(0, np.uint8)])
        flat_masks = np.concatenate([m.ravel() for _, m in regions] or [np.zeros(0, bool)])
        return flat_images, flat_masks, shapes

    flat_images, flat_masks, shapes = tf.numpy_function(
        regions_np,
        [frame[keys.IMAGE], frame[keys.INSTANCE_IDS], objects[keys.OBJECT_ID],
         objects[keys.OBJECT_LABEL], objects[keys.OBJECT_AREA], objects[keys.OBJECT_IS_CROWD],
         polygons.flat_values, polygons.row_lengths()],
        [tf.uint8, tf.bool, tf.int64], stateful=False, name="object_regions")
    flat_images.set_shape([None])
    flat_masks.set_shape([None])
    shapes.set_shape([None, 2])
    pixels = shapes[:, 0] * shapes[:, 1]
    return {"image": tf.RaggedTensor.from_row_lengths(flat_images, pixels * 3),
            "mask": tf.RaggedTensor.from_row_lengths(flat_masks, pixels),
            "shape": shapes}


def _unflatten_region(region: Mapping) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.cast(region["shape"], tf.int32)
    return (tf.reshape(region["image"], tf.concat([shape, [3]], axis=0)),
            tf.reshape(region["mask"], shape))


def _example_tf(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, example_kwargs: Mapping,
                channels: int, size: int):
    """One window -> ``(inputs, {keys.MASK: target})`` through :func:`object_example_np`."""

    def example_np(image_np, mask_np, seed_np):
        rng = np.random.default_rng(int(seed_np) % 2**64)
        inputs, target, _ = object_example_np(image_np, mask_np, rng=rng, **example_kwargs)
        return inputs, target

    inputs, target = tf.numpy_function(example_np, [image, mask, seed],
                                       [tf.float32, tf.float32], stateful=False,
                                       name="object_example")
    inputs.set_shape([size, size, channels])
    target.set_shape([size, size, 1])
    return inputs, {keys.MASK: target}


def annotator_dataset(split: str, *, data_dir: str | os.PathLike, config: str | None = None,
                      classes: Sequence[str] = ANNOTATOR_CLASSES,
                      min_area: float = DEFAULT_MIN_AREA, margin: float = DEFAULT_MARGIN,
                      radius: int = DEFAULT_RADIUS, size: int = DEFAULT_SIZE,
                      jitter_px: int = 0, augment: bool | None = None,
                      max_rotation_deg: float = DEFAULT_MAX_ROTATION_DEG, points: bool = True,
                      photometric: bool = False, clutter: bool = False,
                      batch_size: int = 32, shuffle: bool | None = None,
                      shuffle_buffer: int = 1024, cache: str | os.PathLike | None = None,
                      drop_remainder: bool | None = None, seed: int | None = None
                      ) -> tf.data.Dataset:
    """Batches of extreme-points crops for ``model.fit`` of the annotator (paper 003).

    One example per object of ``classes`` that is not a group region, has an area of at
    least ``min_area`` source pixels and at least 2 visible pixels. Instance classes take
    their mask from instanceIds (the visible part); traffic signs and lights, which share
    a plain label id, from their polygons with occlusion (:func:`visible_object_map`).

    Example:
      >>> train = annotator_dataset("train", data_dir="~/tensorflow_datasets", jitter_px=2)
      >>> model.fit(train, epochs=20)   # model output keyed by keys.MASK

    Args:
      split: a TFDS split of cityscapes_instances, ``"train"`` or ``"validation"``.
      data_dir: TFDS data dir the dataset was built into (``dcme-keras build``).
      config: builder config, ``"full"`` or ``"half"``; None takes the builder's default.
      classes: Cityscapes class names; default the paper's 9.
      min_area: smallest object area [source pixels].
      margin: crop margin around the points' box, a fraction of its size.
      radius: point circle radius [pixels of the S x S crop].
      size: S, the network's input side [pixels].
      jitter_px: click jitter, a uniform integer in +-this per axis [stored pixels]:
        people do not click the exact extreme pixel. Applied whenever > 0.
      augment: random flip and rotation of each object (before its points are taken);
        default: for a ``train`` split.
      max_rotation_deg: rotations are uniform in +-this [degrees].
      points: add the point channel; False gives the 3-channel RGB-only baseline.
      photometric: camera-like degradations of each crop (:func:`photometric_np`:
        resolution, colour, shadow, blur, noise, JPEG), drawn like the augmentation.
      clutter: same-class neighbours around half of the objects
        (:func:`clutter_window_np`), drawn like the augmentation.
      batch_size: examples per batch (the paper trains with 32).
      shuffle: shuffle files and examples; default: for a ``train`` split.
      shuffle_buffer: examples in the shuffle buffer (a frame gives tens of examples in
        a row, so make it hold many frames' worth).
      cache: None, ``"memory"``, or a file prefix for ``Dataset.cache`` (a settings tag is
        appended). The cache holds each object's window before augmentation, so later
        epochs skip PNG decoding and rasterization.
      drop_remainder: drop a last, smaller batch; default: for a ``train`` split.
      seed: makes shuffling, augmentation and jitter reproducible; None draws fresh ones.

    Returns:
      A ``tf.data.Dataset`` of ``(inputs, {keys.MASK: target})``: inputs
      [B, S, S, 4] (or 3) float32, RGB / 255 then the point channel 0/1 (exactly
      :func:`dcme_keras.extreme_points.make_input`); target [B, S, S, 1] float32 0/1.

    Raises:
      UserInputError: for a dataset that is not built, an unknown split, config or class,
        or bad settings.
    """
    batch_size = _check_int(batch_size, "batch_size", 1, 32)
    size = _check_int(size, "size", 1, DEFAULT_SIZE)
    jitter_px = _check_int(jitter_px, "jitter_px", 0, 2)
    radius = _check_int(radius, "radius", 0, DEFAULT_RADIUS)
    if not (math.isfinite(margin) and margin >= 0):
        raise UserInputError(f"margin {margin!r} must be a finite fraction >= 0; use e.g. "
                             f"{DEFAULT_MARGIN}")
    _class_label_ids(classes)
    builder, training = _builder(data_dir, config, split)
    augment = training if augment is None else bool(augment)
    shuffle = training if shuffle is None else bool(shuffle)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    rotation = float(max_rotation_deg) if augment else 0.0

    region_kwargs = dict(classes=tuple(classes), min_area=float(min_area), margin=margin,
                         jitter_px=jitter_px, max_rotation_deg=rotation)
    example_kwargs = dict(augment=augment, max_rotation_deg=rotation, jitter_px=jitter_px,
                          size=size, radius=radius, margin=margin, points=bool(points),
                          photometric=bool(photometric), clutter=bool(clutter))

    def frame_regions(frame):
        return _frame_regions_tf(frame, region_kwargs)

    def example(region, seed_):
        return _example_tf(*region, seed_, example_kwargs, 4 if points else 3, size)

    frames = _frames(builder, split, shuffle, seed)
    regions = _map(_map(frames, frame_regions).unbatch(), _unflatten_region)
    tag = (f"annotator_{builder.builder_config.name}_{split}_{'-'.join(sorted(classes))}"
           f"_a{min_area:g}_m{margin:g}_j{jitter_px}_r{rotation:g}").replace(" ", "")
    regions = _cache(regions, cache, tag)
    if shuffle:
        regions = regions.shuffle(
            _check_int(shuffle_buffer, "shuffle_buffer", 1, 1024), seed=seed,
            reshuffle_each_iteration=True)
    # Without augmentation, jitter and degradations nothing is drawn: a constant seed serves.
    seeds = (_seeds(seed) if augment or jitter_px or photometric or clutter
             else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat())
    examples = _map(tf.data.Dataset.zip(regions, seeds), example)
    return examples.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------


def _builder(data_dir, config: str | None, split: str):
    """The prepared cityscapes_instances builder, and whether ``split`` is a train split."""
    # Importing the builder's package registers it with tfds.builder.
    from tfds_cityscapes.cityscapes_instances import Builder

    names = [c.name for c in Builder.BUILDER_CONFIGS]
    if config is not None and config not in names:
        raise UserInputError(f"config {config!r} is unknown; use one of {', '.join(names)}")
    data_dir = os.fspath(Path(data_dir).expanduser())
    name = DATASET_NAME if config is None else f"{DATASET_NAME}/{config}"
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise UserInputError(
            f"{name} is not built in {data_dir}; build it first with `dcme-keras build "
            f"--manual_dir <cityscapes or synth folder> --data_dir {data_dir}"
            + (f" --config {config}`" if config else "`"))
    base = str(split).split("[")[0]
    if base not in builder.info.splits:
        raise UserInputError(f"split {split!r} is not in {name}; use one of "
                             f"{', '.join(builder.info.splits)}")
    return builder, base == "train"


def _frames(builder, split: str, shuffle: bool, seed: int | None) -> tf.data.Dataset:
    """Decoded frames; labelIds are never decoded, since the ids imply them."""
    return builder.as_dataset(
        split, shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed),
        decoders={keys.LABEL_IDS: tfds.decode.SkipDecoding()})


def _map(ds: tf.data.Dataset, fn) -> tf.data.Dataset:
    """``ds.map(fn)`` with parallel calls, traced without AutoGraph.

    The mapped functions hold no Python control flow on tensors, so AutoGraph would only
    re-parse their source, which it gets wrong for nested functions next to lambdas.
    """
    return ds.map(tf.autograph.experimental.do_not_convert(fn),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _seeds(seed: int | None) -> tf.data.Dataset:
    """An endless stream of int64 seeds, new each epoch, reproducible when seeded."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)


def _cache(ds: tf.data.Dataset, cache, tag: str) -> tf.data.Dataset:
    if cache is None:
        return ds
    if isinstance(cache, str) and cache == "memory":
        return ds.cache()
    prefix = Path(cache).expanduser()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    return ds.cache(f"{os.fspath(prefix)}_{tag}")


def _class_label_ids(classes: Sequence[str]) -> tuple[int, ...]:
    if isinstance(classes, str) or not len(classes):
        raise UserInputError(f"classes {classes!r} is not a non-empty list of class names; "
                             f"pass e.g. {list(ANNOTATOR_CLASSES)}")
    ids = []
    for name in classes:
        try:
            ids.append(label_id(name))
        except KeyError:
            raise UserInputError(f"class {name!r} is not a Cityscapes class; use names from "
                                 "cityscapesscripts.helpers.labels, e.g. 'traffic sign'") from None
    return tuple(ids)


def _check_int(value, name: str, minimum: int, example: int) -> int:
    """``value`` as int after checking that it is a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserInputError(f"{name} {value!r} is not a whole number >= {minimum}; use e.g. "
                             f"{example}")
    return int(value)


def _check_image_size(image_size, grid_size: int) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise UserInputError(f"image_size {image_size!r} is not (height, width); use e.g. "
                             f"{DEFAULT_SCENE_SIZE}") from None
    if height < 1 or width < 1 or height % grid_size or width % grid_size:
        fit = tuple(max(1, round(v / grid_size)) * grid_size for v in (height, width))
        raise UserInputError(f"image_size {height}x{width} is not a positive multiple of "
                             f"grid_size {grid_size}; use e.g. {fit}")
    return height, width
