"""Mask quality and speed of the extreme-points annotator (paper 003), as its tables.

:func:`evaluate_annotator` scores an annotator (a ``.keras`` model through
:class:`dcme_keras.keras_annotator.KerasAnnotator`, or a ``.tflite`` one through the
runtime) on validation objects. They are those of
:func:`dcme_keras.data.pipelines.annotator_dataset` (:func:`iter_objects`: same classes,
area floor, crop and point rules, no augmentation, no click jitter) or of a
Cityscapes-layout folder of photos (:func:`iter_folder_objects`), and each is scored twice:

* at the network's resolution (``crop``): the thresholded output against the resized
  ground truth, what the paper reports (Sec. 3: "calculated in images scaled to the network
  input size");
* at full resolution (``full``): the probability pasted back into the source image
  (:func:`dcme_keras.extreme_points.paste_back`) against the source mask, what a labeler
  gets.

Metrics are those of :mod:`dcme_keras.metrics`: aIoU (IoU pooled per batch of
``batch_size`` objects, averaged over batches; objects come frame by frame, and class by
class within a frame), iIoU, per-class IoU (pixels pooled) and their mean mIoU, and the
border error with its histogram (paper Fig. 3). Full-resolution masks differ in size from
object to object, so the IoU family is aggregated from per-object pixel counts
(:func:`iou_scores`). :func:`time_inference` measures the CPU time per object and
:func:`format_tables` prints a result in the paper's layout. ``dcme-keras evaluate
annotator`` (:mod:`dcme_keras.cli.evaluate_annotator`) is its command line; it is the
annotator's twin of :mod:`dcme_keras.evaluate_dcme`.

Example:
  >>> from dcme_keras import evaluate_annotator, keras_annotator
  >>> annotator = keras_annotator.open_annotator("runs/annotator/best.keras")
  >>> result = evaluate_annotator.evaluate_annotator(annotator, "/tmp/tfds")
  >>> print(evaluate_annotator.format_tables(result))
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from dcme_keras import extreme_points as ep
from dcme_keras import keys
from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.errors import UserInputError
from dcme_keras.keras_annotator import KerasModel
from dcme_keras.models.annotator import AnnotatorConfig
from dcme_keras.runtime import ExtremePointsAnnotator, sigmoid

#: Smallest object [full-resolution pixels] scored in a folder of real photos: objects a
#: person would annotate with 4 clicks (issue 11's measurement on real Cityscapes).
REAL_MIN_AREA = 400.0
#: Probability thresholds :func:`calibrate_threshold` tries: logits -6, -5.5, ..., 0, since
#: networks trained with the average-distance loss under-segment at 0.5.
THRESHOLD_CANDIDATES: tuple[float, ...] = tuple(
    round(float(sigmoid(0.5 * k)), 4) for k in range(-12, 1))


def iter_objects(data_dir: str | os.PathLike, *, split: str = "validation",
                 classes: Sequence[str] = ANNOTATOR_CLASSES, min_area: float | None = None,
                 margin: float = ep.DEFAULT_MARGIN, dataset_config: str | None = None,
                 max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The annotator's objects of a split, one full-resolution window each.

    The objects and windows are those of :func:`dcme_keras.data.pipelines.annotator_dataset`
    (:func:`~dcme_keras.data.pipelines.object_regions_np`), in frame order and, within a
    frame, in the order of ``classes``.

    Args:
      data_dir: TFDS data dir holding ``cityscapes_instances`` (``dcme-keras build``).
      split: TFDS split, e.g. ``"validation"``.
      classes: Cityscapes class names.
      min_area: smallest object [source pixels]; default the pipeline's.
      margin: crop margin, which sizes the windows.
      dataset_config: builder config (``full`` / ``half``); None takes the default.
      max_frames: stop after this many frames; None reads all.

    Yields:
      ``(class name, window [h, w, 3] uint8 RGB, mask [h, w] bool)``.
    """
    from dcme_keras.data import pipelines

    if min_area is None:
        min_area = pipelines.DEFAULT_MIN_AREA
    builder, _ = pipelines._builder(data_dir, dataset_config, split)
    frames = pipelines._frames(builder, split, shuffle=False, seed=None)
    if max_frames is not None:
        frames = frames.take(int(max_frames))
    for frame in frames.as_numpy_iterator():
        for name in classes:
            for window, mask in pipelines.object_regions_np(
                    frame[keys.IMAGE], frame[keys.INSTANCE_IDS], frame[keys.OBJECTS],
                    classes=(name,), min_area=min_area, margin=margin):
                yield name, window, mask


def iter_folder_objects(cityscapes_root: str | os.PathLike, *, split: str = "val",
                        classes: Sequence[str] = ANNOTATOR_CLASSES,
                        min_area: float = REAL_MIN_AREA, margin: float = ep.DEFAULT_MARGIN,
                        max_frames: int | None = None
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """:func:`iter_objects` for a Cityscapes-layout folder, e.g. real photos: no TFDS build.

    Frames come from :func:`dcme_keras.data.pipelines.cityscapes_frames`: objects from the
    polygons JSON when there is one, else from ``*_gtFine_instanceIds.png`` alone (then
    traffic signs and lights, which share a plain label id, are left out). Windows and
    masks are those of :func:`~dcme_keras.data.pipelines.object_regions_np` at the
    frame's full resolution.

    Args:
      cityscapes_root: folder with ``leftImg8bit/`` and ``gtFine/`` (or the official zips).
      split: Cityscapes split folder, e.g. ``"val"`` or ``"train"``.
      classes: Cityscapes class names.
      min_area: smallest object [pixels of the frame].
      margin: crop margin, which sizes the windows.
      max_frames: stop after this many frames; None reads all.

    Yields:
      ``(class name, window [h, w, 3] uint8 RGB, mask [h, w] bool)``.
    """
    from dcme_keras.data import pipelines

    for frame in pipelines.cityscapes_frames(cityscapes_root, split, limit=max_frames):
        for name in classes:
            for window, mask in pipelines.object_regions_np(
                    frame[keys.IMAGE], frame[keys.INSTANCE_IDS], frame[keys.OBJECTS],
                    classes=(name,), min_area=min_area, margin=margin):
                yield name, window, mask


def jitter_clicks(points_xy: np.ndarray, sigma_px: float, hw: Sequence[int],
                  rng: np.random.Generator) -> np.ndarray:
    """Clicks as a person makes them: each moved by a rounded Gaussian of ``sigma_px``.

    Args:
      points_xy: [4, 2] int (x, y) [pixels], the exact extreme points.
      sigma_px: standard deviation per axis [pixels]; 0 returns the points unchanged.
      hw: (H, W) of the image the points are in; moved points are clipped into it.
      rng: the randomness.

    Returns:
      [4, 2] int32 (x, y); the exact points when all 4 would land on one pixel.
    """
    points = np.asarray(points_xy, np.int32)
    if not sigma_px:
        return points
    moved = points + np.round(rng.normal(0.0, sigma_px, points.shape)).astype(np.int32)
    moved = np.clip(moved, 0, [hw[1] - 1, hw[0] - 1]).astype(np.int32)
    return points if (moved == moved[0]).all() else moved


def iou_scores(intersection: np.ndarray, union: np.ndarray, labels: Sequence[str], *,
               batch_size: int = 32) -> dict[str, Any]:
    """aIoU, iIoU, per-class IoU and mIoU from per-object pixel counts.

    The definitions of :mod:`dcme_keras.metrics` (an empty union scores 1), for objects
    whose masks differ in size.

    Args:
      intersection: ``[N]`` int, ``|P & G|`` per object [pixels].
      union: ``[N]`` int, ``|P | G|`` per object [pixels].
      labels: ``[N]`` class names.
      batch_size: objects per aIoU batch.

    Returns:
      ``{"aIoU", "iIoU", "mIoU": float in [0, 1], "per_class": {name: IoU}}``.
    """
    inter = np.asarray(intersection, np.float64)
    uni = np.asarray(union, np.float64)
    labels = np.asarray(labels)
    if inter.ndim != 1 or not len(inter) or not inter.shape == uni.shape == labels.shape:
        raise UserInputError(f"need matching non-empty [N] counts and labels, got "
                             f"{inter.shape}, {uni.shape}, {labels.shape}")

    def ratio(i, u):
        return np.divide(i, u, out=np.ones_like(u), where=u > 0)

    starts = np.arange(0, len(inter), batch_size)
    per_class = {str(name): float(ratio(inter[labels == name].sum(), uni[labels == name].sum()))
                 for name in dict.fromkeys(labels.tolist())}
    return {"aIoU": float(np.mean(ratio(np.add.reduceat(inter, starts),
                                        np.add.reduceat(uni, starts)))),
            "iIoU": float(np.mean(ratio(inter, uni))),
            "mIoU": float(np.mean(list(per_class.values()))),
            "per_class": per_class}


def evaluate_annotator(annotator: ExtremePointsAnnotator,
                       data_dir: str | os.PathLike | None = None, *,
                       cityscapes_root: str | os.PathLike | None = None,
                       split: str = "validation", classes: Sequence[str] | None = None,
                       min_area: float | None = None, dataset_config: str | None = None,
                       batch_size: int = 32, max_frames: int | None = None,
                       max_px: int = 10, jitter_sigma_px: float = 0.0, seed: int = 0,
                       thresholds: Sequence[float] = (), clutter: bool = False,
                       progress: bool = True) -> dict[str, Any]:
    """Mask quality of an annotator, beside the quadrilateral of its 4 points.

    Inputs are built exactly as for training (no augmentation), with the annotator's
    own size, radius and margin, and run in batches of ``batch_size`` (one at a time
    inside a ``.tflite`` model). Each object is also scored with the no-learning
    baseline, the filled quadrilateral of the same 4 clicks
    (:func:`dcme_keras.extreme_points.quadrilateral_mask`), so a network that learned
    nothing shows up.

    Objects come from a built TFDS dataset (``data_dir``) or from a Cityscapes-layout
    folder (``cityscapes_root``, e.g. real photos; :func:`iter_folder_objects`), with
    the extreme points taken from the ground truth.

    Args:
      annotator: a :class:`~dcme_keras.keras_annotator.KerasAnnotator` or a runtime
        ``ExtremePointsAnnotator``.
      data_dir: TFDS data dir holding ``cityscapes_instances``.
      cityscapes_root: instead of ``data_dir``, a folder with ``leftImg8bit/`` and
        ``gtFine/`` (``*_instanceIds.png`` suffice).
      split: TFDS split, or the folder's split (``val``, ``train``).
      classes: class names; default the annotator's training classes
        (``ANNOTATOR_CLASSES`` for a ``.tflite`` model).
      min_area: smallest object [source pixels]; default the pipeline's (100) for
        ``data_dir``, :data:`REAL_MIN_AREA` (400) for ``cityscapes_root``.
      dataset_config: builder config; None takes the default.
      batch_size: objects per batch, for inference and for aIoU (paper: 32).
      max_frames: evaluate the first frames only.
      max_px: last bin of the border-error histogram [pixels].
      jitter_sigma_px: clicks move by a rounded Gaussian of this sigma per axis [source
        pixels] (:func:`jitter_clicks`), for network and baseline alike; 0 = exact.
      seed: seed of the jitter.
      thresholds: also score the full-resolution network masks at each of these
        probability thresholds (:func:`calibrate_threshold`).
      clutter: give every object same-class neighbours beside, behind or in front
        (``pipelines.clutter_window_np``, drawn with ``seed``) before its points are
        taken: objects where the points alone say which one is meant.
      progress: show a progress bar.

    Returns:
      ``{"instances": N, "instances_per_class": {name: n}, "crop": scores, "full":
      scores, "baseline": {"crop": scores, "full": scores}, "jitter_sigma_px": float,
      "clutter": bool,
      "border_error": {"mean" [px], "histogram" [share per bin], "bin_px"}}``, plus
      ``"full_by_threshold": {threshold: scores}`` when ``thresholds`` are given; scores
      as :func:`iou_scores` returns them; the border error is the paper's, at the
      network's resolution (objects whose mask vanishes there have no boundary and are
      left out of it).

    Raises:
      UserInputError: for not exactly one of ``data_dir`` and ``cityscapes_root``, a
        dataset that is not built, or a split with no object.
    """
    from dcme_keras import metrics

    if (data_dir is None) == (cityscapes_root is None):
        raise UserInputError("pass exactly one of data_dir (a TFDS build) and "
                             "cityscapes_root (a Cityscapes-layout folder)")
    if classes is None:
        classes = getattr(annotator, "config", AnnotatorConfig()).classes
    if int(batch_size) < 1:
        raise UserInputError(f"batch_size {batch_size!r} must be positive; the paper uses 32")
    if not (np.isfinite(jitter_sigma_px) and jitter_sigma_px >= 0):
        raise UserInputError(f"jitter_sigma_px {jitter_sigma_px!r} must be >= 0, e.g. 3")
    if cityscapes_root is not None:
        objects = iter_folder_objects(
            cityscapes_root, split=split, classes=classes, margin=annotator.margin,
            min_area=REAL_MIN_AREA if min_area is None else min_area, max_frames=max_frames)
    else:
        objects = iter_objects(data_dir, split=split, classes=classes, min_area=min_area,
                               margin=annotator.margin, dataset_config=dataset_config,
                               max_frames=max_frames)
    rng = np.random.default_rng(seed)
    size, margin = annotator.size, annotator.margin
    labels: list[str] = []
    counts = {(who, scale): ([], []) for who in ("network", "baseline")
              for scale in ("crop", "full")}
    thresholds = [float(t) for t in thresholds]
    if not all(0.0 < t < 1.0 for t in thresholds):
        raise UserInputError(f"thresholds {thresholds} must lie in (0, 1), e.g. 0.3,0.5")
    counts.update({("network", t): ([], []) for t in thresholds})
    # Bit-packed (prediction, ground truth) crops for the border error: 4 kB per object
    # instead of 32 kB, so a Cityscapes-sized validation set stays small in memory.
    crop_pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def count(who, scale, p, g):
        inter, union = metrics.intersection_union(p, g)
        counts[who, scale][0].append(int(inter))
        counts[who, scale][1].append(int(union))

    def flush(batch):
        inputs = np.stack([item[1] for item in batch])
        logits = annotator.model.predict_on_batch(inputs)[keys.MASK][..., 0]
        for (label, _, target, window, mask, clicks, box, quad), prob in zip(
                batch, sigmoid(logits)):
            pred = prob >= annotator.threshold
            count("network", "crop", pred, target)
            count("network", "full", ep.paste_back(prob, box, window.shape[:2],
                                                   annotator.threshold), mask)
            count("baseline", "crop", ep.crop_and_resize(quad, clicks, size, margin)[0]
                  >= 0.5, target)
            count("baseline", "full", quad, mask)
            for t in thresholds:
                count("network", t, ep.paste_back(prob, box, window.shape[:2], t), mask)
            if target.any():  # a mask that vanishes at S x S has no boundary to measure
                crop_pairs.append((np.packbits(pred), np.packbits(target)))
            labels.append(label)

    if clutter:
        from dcme_keras.data.pipelines import clutter_window_np
    batch = []
    for label, window, mask in tqdm(objects, desc=f"evaluating {split}", unit=" objects",
                                    disable=not progress):
        if clutter:
            window, mask = clutter_window_np(window, mask, rng)
        clicks = jitter_clicks(ep.extreme_points(mask), jitter_sigma_px, mask.shape, rng)
        inputs = ep.make_input(window, clicks, size, annotator.radius, margin,
                               mode=annotator.point_mode)
        if not annotator.uses_points:
            inputs = inputs[..., :3]
        target, _, box = ep.crop_and_resize(mask, clicks, size, margin)
        quad = ep.quadrilateral_mask(clicks, mask.shape)
        batch.append((label, inputs, target >= 0.5, window, mask, clicks, box, quad))
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    if not labels:
        where = cityscapes_root if cityscapes_root is not None else data_dir
        raise UserInputError(f"split {split!r} of {where} holds no object of "
                             f"{list(classes)}; check the split, the classes and min_area")

    side = annotator.size

    def unpack(bits):
        return np.unpackbits(bits, count=side * side).reshape(side, side).astype(bool)

    border = metrics.border_error(((unpack(p), unpack(g)) for p, g in crop_pairs),
                                  max_px=max_px)

    def scores(who, scale):
        return iou_scores(*counts[who, scale], labels, batch_size=batch_size)

    by_threshold = ({"full_by_threshold": {t: scores("network", t) for t in thresholds}}
                    if thresholds else {})
    return {
        **by_threshold,
        "instances": len(labels),
        "instances_per_class": {n: labels.count(n) for n in dict.fromkeys(labels)},
        "crop": scores("network", "crop"),
        "full": scores("network", "full"),
        "baseline": {"crop": scores("baseline", "crop"), "full": scores("baseline", "full")},
        "jitter_sigma_px": float(jitter_sigma_px),
        "clutter": bool(clutter),
        "border_error": {"mean": border.mean, "histogram": border.histogram.tolist(),
                         "bin_px": border.bin_px.tolist()},
    }


def calibrate_threshold(annotator: ExtremePointsAnnotator, data_dir: str | os.PathLike, *,
                        split: str = "validation",
                        candidates: Sequence[float] = THRESHOLD_CANDIDATES,
                        max_frames: int | None = None, tolerance: float = 0.005,
                        progress: bool = True) -> dict[str, Any]:
    """The mask threshold with (nearly) the best full-resolution aIoU on a split's objects.

    A network trained with a soft loss need not be calibrated at 0.5; the bundled
    annotator's sidecar records the threshold this picks on synthetic validation objects
    (``runtime.ExtremePointsAnnotator`` reads it). Of the candidates within ``tolerance``
    of the best aIoU, the highest is taken: background logits sit not far below the best
    threshold (the bundled model's synthetic val aIoU is 84.0 % at 0.047 and 49.7 % at
    0.018, where whole crops turn into object), and inputs unlike the split's, such as
    real photos, shift them.

    Args:
      annotator: the annotator to calibrate; its own threshold is not used.
      data_dir: TFDS data dir holding ``cityscapes_instances``.
      split: the split whose objects decide.
      candidates: thresholds to try, each in (0, 1).
      max_frames: use the first frames only.
      tolerance: aIoU (in [0, 1]) a higher threshold may lose against the best.
      progress: show a progress bar.

    Returns:
      ``{"threshold": chosen, "aIoU": {candidate: full-resolution aIoU in [0, 1]},
      "instances": N, "split": split}``.
    """
    result = evaluate_annotator(annotator, data_dir, split=split, max_frames=max_frames,
                                thresholds=candidates, progress=progress)
    aiou = {t: scores["aIoU"] for t, scores in result["full_by_threshold"].items()}
    chosen = max(t for t, v in aiou.items() if v >= max(aiou.values()) - tolerance)
    return {"threshold": chosen, "aIoU": aiou,
            "instances": result["instances"], "split": split}


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` [ms] over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def time_inference(annotator: ExtremePointsAnnotator, image_rgb_uint8: np.ndarray,
                   points_xy, *, repeats: int = 20) -> dict[str, float]:
    """CPU time per object [ms], median of ``repeats`` runs at batch 1 after 2 warm-ups.

    For a Keras model: ``keras_predict`` (``model.predict``, which builds a dataset and
    a callback list on every call), ``keras_predict_on_batch`` and ``tf_function`` (the
    network in one ``tf.function``, what :class:`~dcme_keras.keras_annotator.KerasAnnotator`
    runs). For a ``.tflite`` model: ``tflite``, the interpreter alone. For both:
    ``segment``, the whole request as a labeling tool makes it (crop, point channel,
    network, sigmoid, paste-back).

    Args:
      annotator: the annotator to time.
      image_rgb_uint8: ``[H, W, 3]`` uint8 RGB, e.g. one object's window.
      points_xy: ``[4, 2]`` (x, y) extreme points in it.
      repeats: timed runs per figure.

    Returns:
      ``{name: milliseconds}``.
    """
    x = ep.make_input(image_rgb_uint8, points_xy, annotator.size, annotator.radius,
                      annotator.margin)[None, ..., :4 if annotator.uses_points else 3]
    runs = {}
    if isinstance(annotator.model, KerasModel):
        model = annotator.model.keras_model
        runs["keras_predict"] = lambda: model.predict(x, verbose=0)
        runs["keras_predict_on_batch"] = lambda: model.predict_on_batch(x)
        runs["tf_function"] = lambda: annotator.model(x)
    else:
        runs["tflite"] = lambda: annotator.model(x)
    runs["segment"] = lambda: annotator.segment(image_rgb_uint8, points_xy)
    return {name: _median_ms(fn, int(repeats)) for name, fn in runs.items()}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100.0 * value:.2f}"


def format_tables(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """Plain-text tables of an :func:`evaluate_annotator` result, paper 003's layout.

    IoU flavours at the network's and at full resolution (Table 1), per-class IoU
    (Table 2), each beside the filled quadrilateral of the same 4 points when ``result``
    has a ``"baseline"``, the border error and its histogram (Fig. 3), and, when
    ``result`` has ``"ms_per_instance"``, the inference times.

    Returns:
      The tables, lines joined by newlines.
    """
    crop, full = result["crop"], result["full"]
    base = result.get("baseline")
    size = result.get("size", "S")
    lines = [title] if title else []
    if result.get("jitter_sigma_px"):
        lines.append(f"clicks jittered: Gaussian sigma {result['jitter_sigma_px']:g} px per "
                     "axis (source pixels)")
    if result.get("clutter"):
        lines.append("cluttered: every object has same-class neighbours beside, behind or in "
                     "front")
    rows = [(f"network {size}x{size}", crop), ("full (pasted back)", full)]
    if base is not None:
        rows += [(f"quadrilateral {size}x{size}", base["crop"]),
                 ("quadrilateral full", base["full"])]
    lines += [f"{'resolution':<22}{'aIoU%':>8}{'iIoU%':>8}{'mIoU%':>8}",
              *(f"{name:<22}{_pct(s['aIoU']):>8}{_pct(s['iIoU']):>8}{_pct(s['mIoU']):>8}"
                for name, s in rows)]
    quad_header = f"{'quad% full':>12}" if base is not None else ""
    lines += ["", f"{'class':<16}{'objects':>8}{'IoU% ' + str(size):>12}{'IoU% full':>11}"
              + quad_header]
    for name, n in result["instances_per_class"].items():
        quad = f"{_pct(base['full']['per_class'][name]):>12}" if base is not None else ""
        lines.append(f"{name:<16}{n:>8}{_pct(crop['per_class'][name]):>12}"
                     f"{_pct(full['per_class'][name]):>11}{quad}")
    if base is not None:
        gains = {k: 100.0 * (full[k] - base["full"][k]) for k in ("iIoU", "mIoU")}
        lines.append(f"network over quadrilateral at full resolution: {gains['iIoU']:+.2f} "
                     f"iIoU (mean per object), {gains['mIoU']:+.2f} mIoU (mean per class) "
                     "points")
    border = result["border_error"]
    shares = " ".join(f"{100.0 * h:.1f}" for h in border["histogram"])
    last = border["bin_px"][-1]
    lines += ["", f"border error at {size}x{size}: mean {border['mean']:.2f} px; share of "
              f"boundary pixels at 0, 1, ..., >={last} px (%):", f"  {shares}"]
    if "ms_per_instance" in result:
        lines += ["", "ms per object at batch 1 (median):"]
        lines += [f"  {name:<24}{ms:>8.1f}" for name, ms in result["ms_per_instance"].items()]
    return "\n".join(lines)
