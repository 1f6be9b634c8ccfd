"""The experiments of paper 000, Sec. V: the DCME solution's AP and the oracles.

Every AP here comes from cityscapesscripts' ``evalInstanceLevelSemanticLabeling``, run
on prediction files in the official results format, so the figures are comparable with
the benchmark's. The experiments of paper 000 (Watanabe & Wolf), Sec. V:

* :func:`evaluate_outputs` (Table I, left): instances decoded from the predicted DCME,
  classes from the grid cell of their center of mass (CM), scored by that class's
  probability.
* :func:`gt_oracle` (Table I, right): the ground truth encoded at ``scale`` and decoded,
  ground-truth classes, score 1.
* :func:`instance_oracle` (Tables II and III): ground-truth instances, classes from the
  grid at their CM; plus the grid's classification accuracy.
* :func:`class_oracle` (Table IV): instances decoded from the predicted DCME,
  ground-truth classes, score 1.
* :func:`detection_accuracy` (Table V): share of ground-truth instances that a decoded
  instance overlaps with IoU above 0.25 / 0.5 / 0.75, classes aside.

**Units.** AP and AP50 are percentages (0..100), as in the paper's tables. A class
without any ground-truth instance has AP ``nan`` (the evaluator's own convention); the
means skip such classes, as the evaluator's ``nanmean`` does. :func:`dcme_keras.tables.save_result` writes
``nan`` as JSON ``null``.

**Network outputs.** The functions that need the network take ``outputs``: either a
function ``image [H, W, 3] uint8 RGB -> {keys.DCME: [h, w, 2], keys.GRID: [gh, gw, 9]}``
(:func:`dcme_keras.inference.outputs_fn` makes one from a Keras model; the image is read
from ``leftImg8bit/``), or a mapping from the frame stem ``<city>_<seq>_<frame>`` to such
a dict (precomputed outputs; no images needed). A dict that also holds
``keys.FOREGROUND: [h, w, 1]`` logits (the optional foreground head) has the decoder vote
within that foreground.

**Ground truth.** Only ``gtFine/<split>/<city>/*_gtFine_instanceIds.png`` is read. The
evaluator ignores ground-truth instances under 100 pixels and group regions (ids below
1000); the oracles still submit predictions for them, which the evaluator then ignores.

Every AP comes from the official evaluator (:mod:`dcme_keras.cityscapes_eval`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dcme_keras import classes, inference, keys
from dcme_keras.cityscapes_eval import (evaluate_predictions, frame_stem, gt_instance_files,
                                        image_path, read_instance_ids,
                                        write_cityscapes_results)
from dcme_keras.dcme import codec_np, grid
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import read_rgb
from dcme_keras.inference import Instance

#: ``outputs`` argument: a network run on an RGB image, or precomputed outputs by stem.
Outputs = (Callable[[np.ndarray], Mapping[str, np.ndarray]]
           | Mapping[str, Mapping[str, np.ndarray]])

_INSTANCE_ID_BASE = 1000
_NUM_GRID_IDS = classes.NUM_THING_CLASSES + 1
_DEFAULT_THRESHOLDS = (0.25, 0.5, 0.75)


# === Shared per-frame pieces ===
def _frames(cityscapes_root: str | os.PathLike, split: str, max_images: int | None
            ) -> list[Path]:
    """Ground-truth files of a split, the first ``max_images`` of them in name order."""
    files = gt_instance_files(cityscapes_root, split=split)
    if max_images is not None:
        if max_images < 1:
            raise UserInputError(f"max_images {max_images} must be at least 1, or None")
        files = files[:max_images]
    return files


def _gt_instances(instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index the ground-truth instances of the 8 evaluated classes.

    Args:
      instance_ids: [H, W] int32 Cityscapes instance ids.

    Returns:
      index_map: [H, W] int32, 0 elsewhere, 1..G for the instances (ids >= 1000 of a
        thing class; groups and the ignored caravan/trailer are 0).
      label_ids: [G] int32 Cityscapes label ids of the instances.
    """
    uniq, inverse = np.unique(instance_ids, return_inverse=True)
    label_of = np.where(uniq >= _INSTANCE_ID_BASE, uniq // _INSTANCE_ID_BASE, 0)
    keep = np.isin(label_of, classes.THING_LABEL_IDS)
    index = np.zeros(len(uniq), np.int32)
    index[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return index[inverse].reshape(instance_ids.shape), label_of[keep].astype(np.int32)


def _majority_thing_labels(instance_map: np.ndarray, label_ids: np.ndarray
                           ) -> np.ndarray:
    """Ground-truth class of each predicted instance: the thing class most of it covers.

    Only thing-class pixels vote, so an instance that spills onto road still takes the
    class of the object it covers; an instance on no thing pixel at all gets 0 (the
    oracle knows it is no object, and drops it).

    Args:
      instance_map: [H, W] int32, 0 = background, 1..K = predicted instances.
      label_ids: [H, W] int32 Cityscapes label ids of the ground truth.

    Returns:
      [K] int32 label ids, 0 for an instance without thing pixels.
    """
    num = int(instance_map.max(initial=0))
    lut = np.asarray(classes.label_id_to_grid_lut(), np.int64)
    in_table = (label_ids >= 0) & (label_ids < len(lut))
    grid_ids = np.where(in_table, lut[np.where(in_table, label_ids, 0)], 0)  # [H, W]
    votes = np.bincount((instance_map.astype(np.int64) * _NUM_GRID_IDS + grid_ids).ravel(),
                        minlength=(num + 1) * _NUM_GRID_IDS)
    votes = votes.reshape(num + 1, _NUM_GRID_IDS)[1:, 1:]  # [K, 8], background dropped
    best = np.argmax(votes, axis=1)  # [K], 0..7
    thing_label_ids = np.asarray(classes.THING_LABEL_IDS, np.int32)
    found = votes[np.arange(num), best] > 0
    return np.where(found, thing_label_ids[best], 0).astype(np.int32)


def _frame_outputs(outputs: Outputs, gt_file: Path
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dcme [h, w, 2], grid_logits [gh, gw, 9], foreground logits [h, w, 1] or None) of
    one frame from ``outputs``."""
    stem = frame_stem(gt_file)
    if isinstance(outputs, Mapping):
        if stem not in outputs:
            raise UserInputError(
                f"no network outputs for frame {stem}; add it to the outputs mapping (keys "
                "are <city>_<seq>_<frame>) or pass a function of the image")
        out = outputs[stem]
    else:
        image = read_rgb(image_path(gt_file), "keep leftImg8bit/ beside gtFine/ or pass "
                         "precomputed outputs by frame stem", what="input image")
        out = outputs(image)
    if keys.DCME not in out or keys.GRID not in out:
        raise UserInputError(
            f"outputs for {stem} have keys {sorted(out)}; return both {keys.DCME!r} and "
            f"{keys.GRID!r} (the DCME network's output dict)")
    dcme, grid_logits = np.asarray(out[keys.DCME]), np.asarray(out[keys.GRID])
    foreground = out.get(keys.FOREGROUND)
    if dcme.ndim == 4 and dcme.shape[0] == 1:  # tolerate a batch of one
        dcme, grid_logits = dcme[0], grid_logits[0]
        foreground = None if foreground is None else np.asarray(foreground)[0]
    return dcme, grid_logits, foreground


def _decoded_instance_map(dcme: np.ndarray, foreground_logits: np.ndarray | None,
                          out_size: tuple[int, int],
                          decode_kwargs: Mapping[str, Any] | None) -> np.ndarray:
    """[H, W] int32 instance map decoded from a predicted DCME (with the foreground head's
    mask when the network has one), at full resolution."""
    foreground = inference.foreground_mask(foreground_logits, np.shape(dcme)[:2])
    instance_map, _ = codec_np.decode_dcme(
        dcme, **{"foreground": foreground, **dict(decode_kwargs or {})})
    return inference.resize_nearest(np.asarray(instance_map, np.int32), out_size)


def _score_frames(gt_files: Sequence[Path], frame_instances: Callable[[Path], list[Instance]],
                  *, prediction_dir: str | os.PathLike | None, progress: bool, desc: str
                  ) -> dict[str, Any]:
    """Write each frame's instances in the results format and run the official evaluator.

    Predictions go to ``prediction_dir`` when given (kept), else to a temporary folder,
    frame by frame, so that memory holds one frame's masks at a time.
    """
    with contextlib.ExitStack() as stack:
        if prediction_dir is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cs_pred_")))
        else:
            out_dir = Path(prediction_dir)
        for gt_file in tqdm(gt_files, desc=desc, disable=not progress, unit="image"):
            write_cityscapes_results(out_dir, frame_stem(gt_file), frame_instances(gt_file))
        return evaluate_predictions(gt_files, out_dir)


# === The experiments ===
def gt_oracle(cityscapes_root: str | os.PathLike, split: str = "val", scale: float = 0.5,
              *, max_images: int | None = None, progress: bool = True,
              decode_kwargs: Mapping[str, Any] | None = None,
              prediction_dir: str | os.PathLike | None = None,
              noise_sigma: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """AP of the ground truth after a DCME round trip at ``scale`` (paper Table I, right).

    For each frame: the instance ids are downscaled by nearest neighbour to ``scale``,
    encoded with ``encode_dcme`` and decoded with ``decode_dcme`` (foreground = the
    instance pixels), and the decoded instance map is upscaled back to full resolution.
    Each decoded instance takes the ground-truth thing class that most of its pixels
    carry, with score 1. What remains below 100 AP is the information lost by the
    resolution (paper: 59.2 AP at 0.5, i.e. 512x1024 on Cityscapes). Needs only
    ``gtFine/``.

    With ``noise_sigma > 0`` the oracle stands in for a network whose vectors err:
    Gaussian noise of that sigma [pixels of the scaled map] is added to every pixel's
    vector, the background included, the field is decoded *without* the foreground mask
    (as a network's output is), and each instance is scored by its vote confidence
    (:func:`dcme_keras.inference.vote_confidence`), which is what ranks real instances
    above background fragments.

    Example:
      >>> print(format_table(gt_oracle("cityscapes", "val", 0.5)))

    Args:
      cityscapes_root: the folder holding ``gtFine/``.
      split: the split to evaluate.
      scale: resolution of the round trip relative to the ground truth, in (0, 1].
      max_images: evaluate only the first frames (in name order).
      progress: show a progress bar.
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.
      prediction_dir: keep the prediction files there instead of a temporary folder.
      noise_sigma: i.i.d. vector noise [pixels] on every pixel; 0 for the exact oracle.
      seed: seed of that noise.

    Returns:
      As :func:`evaluate_predictions`: ``{"AP", "AP50", "per_class", "num_images"}``,
      percentages.
    """
    if not 0.0 < scale <= 1.0:
        raise UserInputError(f"scale {scale} must be in (0, 1], e.g. 0.5 for 512x1024")
    if not noise_sigma >= 0.0:
        raise UserInputError(f"noise_sigma {noise_sigma} must be >= 0 pixels, e.g. 1.0")
    rng = np.random.default_rng(seed)

    def frame_instances(gt_file: Path) -> list[Instance]:
        ids = read_instance_ids(gt_file)
        full = ids.shape
        small_hw = (max(1, round(full[0] * scale)), max(1, round(full[1] * scale)))
        small = inference.resize_nearest(ids, small_hw)
        dcme = codec_np.encode_dcme(small, min_instance_id=_INSTANCE_ID_BASE)
        if noise_sigma > 0:
            dcme += rng.normal(0.0, noise_sigma, dcme.shape).astype(np.float32)
            instance_map, _, evidence = codec_np.decode_dcme(
                dcme, return_evidence=True, **dict(decode_kwargs or {}))
            scores = inference.vote_confidence(evidence)
        else:
            instance_map, _ = codec_np.decode_dcme(
                dcme, foreground=small >= _INSTANCE_ID_BASE, **dict(decode_kwargs or {}))
            scores = np.ones(int(instance_map.max(initial=0)), np.float32)
        instance_map = inference.resize_nearest(np.asarray(instance_map, np.int32), full)
        labels = _majority_thing_labels(instance_map, grid.instance_ids_to_label_ids(ids))
        return [(instance_map == k, int(label), float(score))
                for k, (label, score) in enumerate(zip(labels, scores), start=1) if label]

    return _score_frames(_frames(cityscapes_root, split, max_images), frame_instances,
                         prediction_dir=prediction_dir, progress=progress,
                         desc=f"GT oracle x{scale:g}" + (f" + noise {noise_sigma:g} px" if noise_sigma else ""))


def evaluate_outputs(cityscapes_root: str | os.PathLike, outputs: Outputs,
                     split: str = "val", *, grid_size: int | None = None,
                     decode_kwargs: Mapping[str, Any] | None = None,
                     max_images: int | None = None, progress: bool = True,
                     prediction_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """AP of the whole DCME solution (paper Table I, left).

    Instances are decoded from the predicted DCME and classified by the grid cell of
    their center of mass, scored by that class's probability times the decoder's vote
    confidence (:func:`dcme_keras.inference.instances_from_outputs`).

    Args:
      cityscapes_root: the folder holding ``gtFine/`` (and ``leftImg8bit/`` when
        ``outputs`` is a function).
      outputs: the network, as described in the module docstring.
      split: the split to evaluate.
      grid_size: encoder stride Gs [pixels]; ``None`` infers it from the output shapes.
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.
      max_images: evaluate only the first frames (in name order).
      progress: show a progress bar.
      prediction_dir: keep the prediction files there (e.g. for a benchmark submission).

    Returns:
      As :func:`evaluate_predictions`, percentages.
    """
    def frame_instances(gt_file: Path) -> list[Instance]:
        full = read_instance_ids(gt_file).shape
        dcme, grid_logits, foreground = _frame_outputs(outputs, gt_file)
        return inference.instances_from_outputs(dcme, grid_logits, out_size=full,
                                                foreground_logits=foreground,
                                                grid_size=grid_size,
                                                decode_kwargs=decode_kwargs)

    return _score_frames(_frames(cityscapes_root, split, max_images), frame_instances,
                         prediction_dir=prediction_dir, progress=progress,
                         desc="DCME instances")


def instance_oracle(cityscapes_root: str | os.PathLike, outputs: Outputs,
                    split: str = "val", *, grid_size: int | None = None,
                    max_images: int | None = None, progress: bool = True,
                    prediction_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """AP with ground-truth instances classified by the encoder (paper Tables II and III).

    Every ground-truth instance of the 8 classes is submitted as a prediction. Its class
    is the grid classifier's at the cell holding its center of mass (eq. 2; the CM is
    mapped from full resolution to the network's resolution with pixel centres aligned),
    its score that class's probability. The background rule is the one of
    :func:`dcme_keras.inference.instances_from_outputs`, so the accuracy counts the class
    that was actually submitted.

    Args:
      cityscapes_root: the folder holding ``gtFine/`` (and ``leftImg8bit/`` when
        ``outputs`` is a function).
      outputs: the network, as described in the module docstring (only the grid and the
        DCME map's size are used).
      split: the split to evaluate.
      grid_size: encoder stride Gs [pixels]; ``None`` infers it from the output shapes.
      max_images: evaluate only the first frames (in name order).
      progress: show a progress bar.
      prediction_dir: keep the prediction files there instead of a temporary folder.

    Returns:
      As :func:`evaluate_predictions`, plus ``"classification"``: ``{"per_class": {class
      name: {"instances", "correct", "accuracy"}}, "total": {...}}`` over all
      ground-truth instances of the 8 classes, whatever their size (Table III); accuracy
      in percent, ``nan`` for a class without instances.
    """
    num = classes.NUM_THING_CLASSES
    counts = np.zeros(num, np.int64)
    correct = np.zeros(num, np.int64)
    thing_label_ids = list(classes.THING_LABEL_IDS)

    def frame_instances(gt_file: Path) -> list[Instance]:
        ids = read_instance_ids(gt_file)
        index_map, gt_labels = _gt_instances(ids)
        if not len(gt_labels):
            return []
        dcme, grid_logits, _ = _frame_outputs(outputs, gt_file)
        dcme, grid_logits = inference.check_outputs(dcme, grid_logits)
        map_hw = dcme.shape[:2]
        gs = grid_size or inference.infer_grid_size(map_hw, grid_logits.shape[:2])
        _, centers, _ = codec_np.instance_centers(index_map, min_instance_id=1)  # [G, 2]
        factor = np.array([map_hw[0] / ids.shape[0], map_hw[1] / ids.shape[1]])
        centers = (centers + 0.5) * factor - 0.5  # pixel centres aligned
        grid_ids, scores = grid.scored_classes_at_centers(grid_logits, centers, gs)
        predicted = [classes.grid_id_to_label_id(int(g)) for g in grid_ids]
        for gt_label, label in zip(gt_labels, predicted):
            c = thing_label_ids.index(int(gt_label))
            counts[c] += 1
            correct[c] += int(label == gt_label)
        return [(index_map == k, label, float(s))
                for k, (label, s) in enumerate(zip(predicted, scores), start=1)]

    result = _score_frames(_frames(cityscapes_root, split, max_images), frame_instances,
                           prediction_dir=prediction_dir, progress=progress,
                           desc="instance oracle")
    result["classification"] = _accuracy_table(counts, correct)
    return result


def _accuracy_table(counts: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Table III rows from per-class instance and correct counts (THING_CLASSES order)."""
    def row(n: int, c: int) -> dict[str, Any]:
        return {"instances": int(n), "correct": int(c),
                "accuracy": 100.0 * c / n if n else float("nan")}

    return {"per_class": {name: row(n, c)
                          for name, n, c in zip(classes.THING_CLASSES, counts, correct)},
            "total": row(int(counts.sum()), int(correct.sum()))}


def class_oracle(cityscapes_root: str | os.PathLike, outputs: Outputs, split: str = "val",
                 *, decode_kwargs: Mapping[str, Any] | None = None,
                 max_images: int | None = None, progress: bool = True,
                 prediction_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """AP of the decoded instances with ground-truth classes (paper Table IV).

    Instances are decoded from the predicted DCME (the grid output is not used). Each
    takes the ground-truth thing class most of its pixels carry, with score 1; an
    instance on no thing pixel is dropped, as an oracle knows it is no object.

    Args:
      cityscapes_root: the folder holding ``gtFine/`` (and ``leftImg8bit/`` when
        ``outputs`` is a function).
      outputs: the network, as described in the module docstring.
      split: the split to evaluate.
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.
      max_images: evaluate only the first frames (in name order).
      progress: show a progress bar.
      prediction_dir: keep the prediction files there instead of a temporary folder.

    Returns:
      As :func:`evaluate_predictions`, percentages.
    """
    def frame_instances(gt_file: Path) -> list[Instance]:
        ids = read_instance_ids(gt_file)
        dcme, _, foreground = _frame_outputs(outputs, gt_file)
        instance_map = _decoded_instance_map(dcme, foreground, ids.shape, decode_kwargs)
        labels = _majority_thing_labels(instance_map, grid.instance_ids_to_label_ids(ids))
        return [(instance_map == k, int(label), 1.0)
                for k, label in enumerate(labels, start=1) if label]

    return _score_frames(_frames(cityscapes_root, split, max_images), frame_instances,
                         prediction_dir=prediction_dir, progress=progress,
                         desc="class oracle")


def detection_accuracy(cityscapes_root: str | os.PathLike, outputs: Outputs,
                       split: str = "val", *,
                       thresholds: Sequence[float] = _DEFAULT_THRESHOLDS,
                       decode_kwargs: Mapping[str, Any] | None = None,
                       max_images: int | None = None, progress: bool = True,
                       ) -> dict[str, Any]:
    """Share of ground-truth instances the decoder finds (paper Table V).

    A ground-truth instance of the 8 classes, of any size, counts as detected at a
    threshold when some decoded instance overlaps it with IoU above that threshold.
    Classes play no part, and a decoded instance may serve several ground-truth
    instances below IoU 0.5 (above it, it cannot).

    Args:
      cityscapes_root: the folder holding ``gtFine/`` (and ``leftImg8bit/`` when
        ``outputs`` is a function).
      outputs: the network, as described in the module docstring.
      split: the split to evaluate.
      thresholds: IoU thresholds in [0, 1).
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.
      max_images: evaluate only the first frames (in name order).
      progress: show a progress bar.

    Returns:
      ``{"instances": N, "per_threshold": [{"threshold", "detections", "accuracy"}]}``,
      accuracy in percent (``nan`` without ground-truth instances).
    """
    thresholds = [float(t) for t in thresholds]
    if not thresholds or not all(0.0 <= t < 1.0 for t in thresholds):
        raise UserInputError(f"IoU thresholds {thresholds} must be in [0, 1), "
                             "e.g. 0.25 0.5 0.75")
    total = 0
    detections = np.zeros(len(thresholds), np.int64)
    gt_files = _frames(cityscapes_root, split, max_images)
    for gt_file in tqdm(gt_files, desc="detection accuracy", disable=not progress,
                        unit="image"):
        ids = read_instance_ids(gt_file)
        gt_map, gt_labels = _gt_instances(ids)
        if not len(gt_labels):
            continue
        dcme, _, foreground = _frame_outputs(outputs, gt_file)
        best = _best_iou(gt_map, len(gt_labels),
                         _decoded_instance_map(dcme, foreground, ids.shape, decode_kwargs))
        total += len(gt_labels)
        detections += (best[None, :] > np.asarray(thresholds)[:, None]).sum(axis=1)
    return {"instances": total,
            "per_threshold": [{"threshold": t, "detections": int(d),
                               "accuracy": 100.0 * d / total if total else float("nan")}
                              for t, d in zip(thresholds, detections)]}


def instance_detections(instance_ids: np.ndarray, instance_map: np.ndarray, *,
                        iou_threshold: float = 0.5, min_area: int = 0) -> tuple[int, int]:
    """How many ground-truth instances of one frame a decoded instance map finds.

    The in-memory twin of :func:`detection_accuracy`, for frames that are not files (a
    training run's validation scenes at network resolution): a ground-truth instance of
    the 8 classes with at least ``min_area`` pixels is detected when some decoded
    instance overlaps it with IoU >= ``iou_threshold``. Classes play no part.

    Example:
      >>> found, total = instance_detections(ids, codec_np.decode_dcme(pred)[0])

    Args:
      instance_ids: [H, W] int Cityscapes instance ids (``class_id * 1000 + k``).
      instance_map: [H, W] int, 0 = none, 1..P decoded instances (``decode_dcme``'s
        first output) at the same resolution.
      iou_threshold: IoU in (0, 1] a match needs.
      min_area: smallest ground-truth instance that counts [pixels].

    Returns:
      ``(detected, total)`` ground-truth instances, ints.

    Raises:
      UserInputError: for maps of different shapes or a threshold outside (0, 1].
    """
    instance_ids, instance_map = np.asarray(instance_ids), np.asarray(instance_map)
    if instance_ids.shape != instance_map.shape or instance_ids.ndim != 2:
        raise UserInputError(f"instance ids {instance_ids.shape} and instance map "
                             f"{instance_map.shape} must be [H, W] maps of one shape")
    if not 0.0 < iou_threshold <= 1.0:
        raise UserInputError(f"iou_threshold {iou_threshold} must be in (0, 1], e.g. 0.5")
    gt_map, gt_labels = _gt_instances(instance_ids.astype(np.int32))
    if not len(gt_labels):
        return 0, 0
    areas = np.bincount(gt_map.ravel(), minlength=len(gt_labels) + 1)[1:]
    best = _best_iou(gt_map, len(gt_labels), instance_map.astype(np.int32))
    counted = areas >= min_area
    return int((best[counted] >= iou_threshold).sum()), int(counted.sum())


def dcme_scores(dcme: np.ndarray, instance_ids: np.ndarray, *, min_area: int = 0,
                iou_threshold: float = 0.5, gt_foreground: bool = False,
                foreground_logits: np.ndarray | None = None,
                decode_kwargs: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Vector error and decoded detection accuracy of predicted DCME maps.

    Two views of the same frames: the vectors themselves on the ground truth's object
    pixels (needs no decoder), and the share of ground-truth instances that
    ``codec_np.decode_dcme`` gives back (:func:`instance_detections`).

    Example:
      >>> scores = dcme_scores(model(images)["dcme"].numpy(), ids, min_area=100)
      >>> scores["vector_error"], scores["detection_accuracy"]

    Args:
      dcme: [B, H, W, 2] float, predicted (dy, dx) [pixels of the map].
      instance_ids: [B, H, W] int Cityscapes instance ids at the map's resolution.
      min_area: smallest ground-truth instance that counts for detection [pixels].
      iou_threshold: IoU a detection needs.
      gt_foreground: decode with ``foreground=`` the ground truth's object pixels and
        ``join_foreground=False`` (unless ``decode_kwargs`` says otherwise), which scores
        the vectors alone; False decodes as at inference.
      foreground_logits: optional [B, H, W, 1] logits of the network's foreground head;
        decode within them, as inference does (ignored with ``gt_foreground``).
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``.

    Returns:
      ``{"vector_error": median |pred - true| [pixels], "vector_length": median |pred|
      [pixels], "true_length": median |true| [pixels]`` (all over object pixels of the
      8 thing classes, nan without any), ``"detection_accuracy": detected / counted``
      in [0, 1] (nan without counted instances), ``"instances": counted}``.

    Raises:
      UserInputError: for maps whose shapes do not fit.
    """
    dcme, instance_ids = np.asarray(dcme, np.float32), np.asarray(instance_ids)
    if dcme.ndim != 4 or dcme.shape[-1] != 2 or dcme.shape[:3] != instance_ids.shape:
        raise UserInputError(f"DCME maps {dcme.shape} and instance ids "
                             f"{instance_ids.shape} must be [B, H, W, 2] and [B, H, W]")
    errors, lengths, truths = [], [], []
    detected = counted = 0
    for i, (pred, ids) in enumerate(zip(dcme, instance_ids.astype(np.int32))):
        gt_map, _ = _gt_instances(ids)
        objects = gt_map > 0
        true = codec_np.encode_dcme(np.where(objects, ids, 0))
        errors.append(np.hypot(*np.moveaxis(pred - true, -1, 0))[objects])
        lengths.append(np.hypot(pred[..., 0], pred[..., 1])[objects])
        truths.append(np.hypot(true[..., 0], true[..., 1])[objects])
        kwargs = dict(decode_kwargs or {})
        if gt_foreground:
            kwargs["foreground"] = objects
            # The true mask's components are the instances, save for touching ones;
            # joining them would score the mask, not the vectors.
            kwargs.setdefault("join_foreground", False)
        elif foreground_logits is not None:
            kwargs["foreground"] = inference.foreground_mask(foreground_logits[i],
                                                             pred.shape[:2])
        instance_map, _ = codec_np.decode_dcme(pred, **kwargs)
        found, total = instance_detections(ids, instance_map, iou_threshold=iou_threshold,
                                           min_area=min_area)
        detected, counted = detected + found, counted + total

    def median(parts):
        values = np.concatenate(parts)
        return float(np.median(values)) if values.size else float("nan")

    return {"vector_error": median(errors), "vector_length": median(lengths),
            "true_length": median(truths),
            "detection_accuracy": detected / counted if counted else float("nan"),
            "instances": counted}


def _iou_matrix(gt_map: np.ndarray, num_gt: int, pred_map: np.ndarray) -> np.ndarray:
    """IoU of every ground-truth instance with every predicted instance.

    Args:
      gt_map: [H, W] int32, 0 = none, 1..G ground-truth instances.
      num_gt: G.
      pred_map: [H, W] int32, 0 = none, 1..P predicted instances.

    Returns:
      [G, P] float64 IoU in [0, 1].
    """
    num_pred = int(pred_map.max(initial=0))
    joint = np.bincount((gt_map.astype(np.int64) * (num_pred + 1) + pred_map).ravel(),
                        minlength=(num_gt + 1) * (num_pred + 1))
    joint = joint.reshape(num_gt + 1, num_pred + 1)  # [G+1, P+1] pixel counts
    gt_area = joint.sum(axis=1)[1:, None]  # [G, 1]
    pred_area = joint.sum(axis=0)[None, 1:]  # [1, P]
    inter = joint[1:, 1:]  # [G, P]
    return inter / np.maximum(gt_area + pred_area - inter, 1)


def _best_iou(gt_map: np.ndarray, num_gt: int, pred_map: np.ndarray) -> np.ndarray:
    """[G] float64: each ground-truth instance's best IoU, the row maxima of
    :func:`_iou_matrix` (same arguments); 0 without predictions."""
    return _iou_matrix(gt_map, num_gt, pred_map).max(axis=1, initial=0.0)


def unmatched_instances(instance_ids: np.ndarray, instance_map: np.ndarray, *,
                        iou_threshold: float = 0.5) -> int:
    """Decoded instances that match no ground-truth instance: fragments and background.

    The count behind "extra instances per object" of ``benchmarks/decode.py``. Any
    ground-truth instance of the 8 evaluated classes can be matched, whatever its size.

    Example:
      >>> unmatched_instances(ids, codec_np.decode_dcme(noisy_dcme)[0])
      0

    Args:
      instance_ids: [H, W] int Cityscapes instance ids (``class_id * 1000 + k``).
      instance_map: [H, W] int, 0 = none, 1..P decoded instances, same shape.
      iou_threshold: IoU a match needs.

    Returns:
      The number of decoded instances whose best IoU with a ground-truth instance is
      below ``iou_threshold``.

    Raises:
      UserInputError: for maps of different shapes.
    """
    instance_ids, instance_map = np.asarray(instance_ids), np.asarray(instance_map)
    if instance_ids.shape != instance_map.shape or instance_ids.ndim != 2:
        raise UserInputError(f"instance ids {instance_ids.shape} and instance map "
                             f"{instance_map.shape} must be [H, W] maps of one shape")
    gt_map, gt_labels = _gt_instances(instance_ids.astype(np.int32))
    ious = _iou_matrix(gt_map, len(gt_labels), instance_map.astype(np.int32))  # [G, P]
    return int((ious.max(axis=0, initial=0.0) < iou_threshold).sum())
