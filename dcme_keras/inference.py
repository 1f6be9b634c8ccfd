"""Instances from the DCME network's outputs (paper 000, Sec. III): decode, classify, score.

Post-processing of one image:

1. :func:`dcme_keras.dcme.codec_np.decode_dcme` turns the DCME map into class-agnostic
   instances and their centers of mass (CM).
2. Each instance takes the class of the grid cell that holds its CM (paper eq. 2).
3. Its score is the product of two confidences (:func:`instance_scores`):
   the softmax probability of that class in that cell, and the **vote confidence**
   ``e / (e + EVIDENCE_HALF)`` of the decoder's evidence ``e`` for the instance (the net
   number of votes its center imports, see ``decode_dcme``). A real center gathers the
   votes of a whole object (a median of 190-440 on 512x1024 fields with noise), while a
   fragment of background noise gathers a few dozen, so fragments rank below objects
   even where the grid classifier is unsure. The official AP is a ranking metric, and
   without the second factor thousands of fragments outranked real instances.
4. The instance map is brought to the requested output size by nearest-neighbour
   resizing (pixel centres aligned), so masks never overlap.

**Instances in a background cell.** The grid classifier may call the CM's cell
background, most often for thin or hollow objects whose CM lies off the object. Such an
instance keeps its best *thing* class, scored by that class's (low) probability, instead
of being dropped: average precision punishes a missed object at every recall level,
while a low-scored false positive only lowers the tail of the precision-recall curve.
The rule itself lives in :func:`dcme_keras.dcme.grid.scored_classes_at_centers`.

The NumPy part (:func:`instances_from_outputs` and its helpers) imports no TensorFlow, so
the TFLite runtime reuses it. :func:`model_outputs` and :func:`predict_instances` run a
Keras model through the model's own methods and import no TensorFlow either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from dcme_keras import classes, keys
from dcme_keras.dcme import codec_np, grid
from dcme_keras.errors import UserInputError

#: One predicted instance: (mask [H, W] bool, Cityscapes label id, score in [0, 1]).
Instance = tuple[np.ndarray, int, float]

#: Largest encoder stride :func:`infer_grid_size` tries: 2**10.
_MAX_GRID_LOG2 = 10

#: Decoder evidence [votes] at which the vote confidence is 1/2: about the net votes of
#: an object of 100-150 px at 512x1024, about 3 times the default ``min_votes`` (35).
EVIDENCE_HALF = 100.0


def vote_confidence(evidence: np.ndarray) -> np.ndarray:
    """How strongly the DCME field supports each decoded instance, in [0, 1).

    Args:
      evidence: [K] float, votes: ``decode_dcme(..., return_evidence=True)``'s third
        output (net votes imported by each center).

    Returns:
      [K] float32, ``e / (e + EVIDENCE_HALF)`` with ``e`` clipped at 0.
    """
    evidence = np.maximum(np.asarray(evidence, np.float32), 0.0)
    return evidence / (evidence + np.float32(EVIDENCE_HALF))


def instance_scores(class_probability: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Score of each instance for ranking (AP): class probability x vote confidence.

    Args:
      class_probability: [K] float in [0, 1], the grid classifier's probability of each
        instance's class at its center.
      evidence: [K] float, votes, the decoder's evidence (see :func:`vote_confidence`).

    Returns:
      [K] float32 in [0, 1).
    """
    return np.asarray(class_probability, np.float32) * vote_confidence(evidence)


def resize_nearest(label_map: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map, pixel centres aligned.

    ``INTER_NEAREST_EXACT`` samples at pixel centres (like Pillow's ``NEAREST``); plain
    ``INTER_NEAREST`` samples at top-left corners and shifts the map by up to one pixel
    on non-integer scales.

    Args:
      label_map: [h, w] uint8, uint16 or int32 labels (instance or class ids).
      size_hw: (H, W) [pixels], the output size.

    Returns:
      [H, W] labels of the same dtype; the input itself when the size already matches.
    """
    labels = np.asarray(label_map)
    height, width = (int(v) for v in size_hw)
    if labels.shape[:2] == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def instance_masks(instance_map: np.ndarray, out_size: Sequence[int] | None = None
                   ) -> list[np.ndarray]:
    """One boolean mask per instance of an instance map, optionally resized.

    Args:
      instance_map: [h, w] int, 0 = background, 1..K = instances.
      out_size: (H, W) [pixels] of the masks; ``None`` keeps (h, w).

    Returns:
      K masks [H, W] bool; mask ``k - 1`` holds instance ``k`` (it may be empty when
      ``out_size`` shrinks the map).
    """
    labels = np.asarray(instance_map, np.int32)
    if out_size is not None:
        labels = resize_nearest(labels, out_size)
    return [labels == k for k in range(1, int(labels.max(initial=0)) + 1)]


def infer_grid_size(map_hw: Sequence[int], grid_hw: Sequence[int]) -> int:
    """Encoder stride Gs = 2**n that turns a DCME map of ``map_hw`` into ``grid_hw`` cells.

    The smallest power of two with ``ceil(H / Gs), ceil(W / Gs) == grid_hw`` wins (see
    :func:`dcme_keras.dcme.grid.grid_shape`).

    Args:
      map_hw: (H, W) [pixels] of the DCME map.
      grid_hw: (h, w) [cells] of the grid output.

    Returns:
      Gs [pixels].

    Raises:
      UserInputError: if no power of two up to 2**10 fits.
    """
    for n in range(_MAX_GRID_LOG2 + 1):
        if grid.grid_shape(map_hw, 2**n) == tuple(int(v) for v in grid_hw):
            return 2**n
    raise UserInputError(
        f"a grid of {tuple(grid_hw)} cells does not tile a {tuple(map_hw)} DCME map with "
        "a power-of-two stride; pass both outputs of the same image, or grid_size=")


def check_outputs(dcme: np.ndarray, grid_logits: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Validate one image's network outputs.

    Args:
      dcme: [h, w, 2] float, (dy, dx) [pixels].
      grid_logits: [gh, gw, 9] float, grid-classifier logits.

    Returns:
      The two arrays as float32.

    Raises:
      UserInputError: for other shapes (e.g. a leftover batch axis).
    """
    dcme = np.asarray(dcme, np.float32)
    grid_logits = np.asarray(grid_logits, np.float32)
    if dcme.ndim != 3 or dcme.shape[-1] != 2:
        raise UserInputError(
            f"DCME output of shape {dcme.shape} is not [H, W, 2]; pass one image's "
            f"{keys.DCME!r} output without the batch axis")
    if grid_logits.ndim != 3 or grid_logits.shape[-1] != classes.NUM_THING_CLASSES + 1:
        raise UserInputError(
            f"grid output of shape {grid_logits.shape} is not [h, w, "
            f"{classes.NUM_THING_CLASSES + 1}]; pass one image's {keys.GRID!r} logits "
            "without the batch axis")
    return dcme, grid_logits


def foreground_mask(foreground_logits: np.ndarray | None, map_hw: Sequence[int]
                    ) -> np.ndarray | None:
    """The decoder's foreground from the optional foreground head, or None without one.

    Args:
      foreground_logits: [h, w, 1] or [h, w] float logits of ``keys.FOREGROUND``, or None.
      map_hw: (h, w) [pixels] of the DCME map it must match.

    Returns:
      [h, w] bool, ``sigmoid(logits) >= 0.5`` (i.e. logits >= 0), or None.

    Raises:
      UserInputError: for a shape that is not the DCME map's.
    """
    if foreground_logits is None:
        return None
    logits = np.asarray(foreground_logits, np.float32)
    if logits.ndim == 3 and logits.shape[-1] == 1:
        logits = logits[..., 0]
    if logits.shape != tuple(int(v) for v in map_hw):
        raise UserInputError(
            f"foreground output of shape {np.shape(foreground_logits)} does not match the "
            f"DCME map {tuple(map_hw)}; pass one image's {keys.FOREGROUND!r} logits "
            "[H, W, 1] without the batch axis")
    return logits >= 0.0


def instances_from_outputs(dcme: np.ndarray, grid_logits: np.ndarray, *,
                           foreground_logits: np.ndarray | None = None,
                           out_size: Sequence[int] | None = None,
                           grid_size: int | None = None,
                           decode_kwargs: Mapping[str, Any] | None = None,
                           ) -> list[Instance]:
    """Classified instances from one image's network outputs (NumPy only).

    Example:
      >>> instances = instances_from_outputs(out["dcme"][0], out["grid"][0],
      ...                                    out_size=(1024, 2048))
      >>> mask, label_id, score = instances[0]

    Args:
      dcme: [h, w, 2] float32, (dy, dx) [pixels of the map] to each pixel's CM.
      grid_logits: [gh, gw, 9] float32, grid-classifier logits; channel 0 is background.
      foreground_logits: optional [h, w, 1] float32 logits of the foreground head
        (``keys.FOREGROUND``, beyond the paper); when given, the decoder votes with
        ``sigmoid >= 0.5`` as its foreground (:func:`foreground_mask`), so background
        noise cannot vote at all.
      out_size: (H, W) [pixels] of the returned masks, e.g. the ground truth's full
        resolution; ``None`` keeps (h, w).
      grid_size: encoder stride Gs [pixels]; ``None`` infers it from the two shapes.
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.

    Returns:
      One ``(mask [H, W] bool, label_id int, score float)`` per decoded instance, in the
      decoder's order. ``label_id`` is the regular Cityscapes id of a thing class (what
      the official evaluator reads); ``score`` is :func:`instance_scores`: its softmax
      probability in the CM's grid cell times the vote confidence.
    """
    dcme, grid_logits = check_outputs(dcme, grid_logits)
    gs = grid_size or infer_grid_size(dcme.shape[:2], grid_logits.shape[:2])
    foreground = foreground_mask(foreground_logits, dcme.shape[:2])
    instance_map, centers, evidence = codec_np.decode_dcme(
        dcme, **{"foreground": foreground, **dict(decode_kwargs or {}),
                 "return_evidence": True})
    masks = instance_masks(instance_map, out_size)
    if not masks:
        return []
    grid_ids, probability = grid.scored_classes_at_centers(grid_logits, centers, gs)
    scores = instance_scores(probability, evidence)
    return [(mask, classes.grid_id_to_label_id(int(g)), float(s))
            for mask, g, s in zip(masks, grid_ids, scores)]


def check_rgb_image(image: np.ndarray, fix: str = "load images with "
                    "cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)") -> np.ndarray:
    """Return ``image`` as an [H, W, 3] uint8 RGB array, or raise naming ``fix``.

    Raises:
      UserInputError: for any other shape or dtype.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise UserInputError(
            f"image of shape {image.shape} and dtype {image.dtype} is not [H, W, 3] uint8 "
            f"RGB; {fix}")
    return image


def _model_input_size(model: Any, input_size: Sequence[int] | None,
                      image_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) the model runs at: ``input_size``, else the model's static size, else the image's."""
    if input_size is not None:
        return int(input_size[0]), int(input_size[1])
    static = tuple(model.inputs[0].shape[1:3]) if getattr(model, "inputs", None) else ()
    if len(static) == 2 and None not in static:
        return int(static[0]), int(static[1])
    return image_hw


def _resize_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image; area averaging when shrinking avoids aliasing."""
    if image.shape[:2] == size_hw:
        return image
    shrink = size_hw[0] * size_hw[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, (size_hw[1], size_hw[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def model_outputs(model: Any, images: Sequence[np.ndarray] | np.ndarray, *,
                  batch_size: int = 4, input_size: Sequence[int] | None = None,
                  ) -> list[dict[str, np.ndarray]]:
    """Run the DCME network on images and split its outputs per image.

    Args:
      model: a Keras model mapping [B, H, W, 3] float32 RGB in 0..255 to a dict
        ``{keys.DCME: [B, H, W, 2], keys.GRID: [B, H/Gs, W/Gs, 9]}``, plus
        ``keys.FOREGROUND: [B, H, W, 1]`` for a network with the foreground head.
      images: N images [H_i, W_i, 3] uint8 RGB (a list, or one [N, H, W, 3] array).
      batch_size: images per forward pass.
      input_size: (H, W) [pixels] to resize every image to; ``None`` uses the model's
        static input size, or each image's own size for a model without one.

    Returns:
      N dicts ``{keys.DCME: [h, w, 2] float32, keys.GRID: [gh, gw, 9] float32}`` (and
      ``keys.FOREGROUND: [h, w, 1]`` when the model has it) at the model's resolution.
    """
    if batch_size < 1:
        raise UserInputError(f"batch_size {batch_size} must be at least 1, e.g. 4")
    inputs = []
    for image in images:
        image = check_rgb_image(image)
        size = _model_input_size(model, input_size, image.shape[:2])
        inputs.append(_resize_image(image, size).astype(np.float32))
    outputs: list[dict[str, np.ndarray]] = []
    start = 0
    while start < len(inputs):
        # A batch holds consecutive images of one size, at most batch_size of them.
        stop = start + 1
        while (stop < len(inputs) and stop - start < batch_size
               and inputs[stop].shape == inputs[start].shape):
            stop += 1
        result = model.predict_on_batch(np.stack(inputs[start:stop]))
        names = [name for name in (keys.DCME, keys.GRID, keys.FOREGROUND) if name in result]
        batch = {name: np.asarray(result[name], np.float32) for name in names}  # [b, ...]
        outputs.extend({name: batch[name][i] for name in names} for i in range(stop - start))
        start = stop
    return outputs


def outputs_fn(model: Any, *, input_size: Sequence[int] | None = None
               ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """One-image wrapper of :func:`model_outputs`, the ``outputs`` that the oracles take.

    Args:
      model: the DCME network (see :func:`model_outputs`).
      input_size: (H, W) [pixels] the model runs at; ``None`` as in :func:`model_outputs`.

    Returns:
      A function ``image [H, W, 3] uint8 -> {keys.DCME: [h, w, 2], keys.GRID: [gh, gw, 9]}``.
    """
    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        return model_outputs(model, [image], batch_size=1, input_size=input_size)[0]

    return run


def predict_instances(model: Any, images: Sequence[np.ndarray] | np.ndarray, *,
                      batch_size: int = 4, input_size: Sequence[int] | None = None,
                      grid_size: int | None = None,
                      decode_kwargs: Mapping[str, Any] | None = None,
                      ) -> list[list[Instance]]:
    """Instance segmentation of images with the DCME network (paper 000).

    Example:
      >>> model = build_deeplab_dcme(preset="tiny", input_shape=(64, 128, 3))
      >>> per_image = predict_instances(model, [rgb_uint8])
      >>> for mask, label_id, score in per_image[0]: ...

    Args:
      model: the DCME network (see :func:`model_outputs`).
      images: N images [H_i, W_i, 3] uint8 RGB.
      batch_size: images per forward pass.
      input_size: (H, W) [pixels] the model runs at; ``None`` as in :func:`model_outputs`.
      grid_size: encoder stride Gs [pixels]; ``None`` infers it from the output shapes.
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.

    Returns:
      For each image, its instances ``(mask [H_i, W_i] bool, label_id int, score
      float)``: masks at the image's own resolution, regular Cityscapes label ids,
      scores as in :func:`instances_from_outputs`.
    """
    images = list(images)
    outputs = model_outputs(model, images, batch_size=batch_size, input_size=input_size)
    return [instances_from_outputs(out[keys.DCME], out[keys.GRID],
                                   foreground_logits=out.get(keys.FOREGROUND),
                                   out_size=np.shape(image)[:2],
                                   grid_size=grid_size, decode_kwargs=decode_kwargs)
            for image, out in zip(images, outputs)]
