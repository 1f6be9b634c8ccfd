"""Cityscapes instance AP through the official evaluator, and the paper's oracle experiments.

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
means skip such classes, as the evaluator's ``nanmean`` does. :func:`save_result` writes
``nan`` as JSON ``null``.

**Network outputs.** The functions that need the network take ``outputs``: either a
function ``image [H, W, 3] uint8 RGB -> {keys.DCME: [h, w, 2], keys.GRID: [gh, gw, 9]}``
(:func:`dcme_keras.inference.outputs_fn` makes one from a Keras model; the image is read
from ``leftImg8bit/``), or a mapping from the frame stem ``<city>_<seq>_<frame>`` to such
a dict (precomputed outputs; no images needed).

**Ground truth.** Only ``gtFine/<split>/<city>/*_gtFine_instanceIds.png`` is read. The
evaluator ignores ground-truth instances under 100 pixels and group regions (ids below
1000); the oracles still submit predictions for them, which the evaluator then ignores.

The official evaluator is driven through its own functions with a fresh argument object
per call. Its known breakages under NumPy 2 (``np.in1d``, ``writeDict2JSON`` on NumPy
scalars) are patched only for the duration of a call, and it runs in a temporary working
folder because it writes ``./matches.json``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as _cs_eval
from tqdm import tqdm

from dcme_keras import classes, inference, keys
from dcme_keras.dcme import codec_np, grid
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path, read_rgb
from dcme_keras.inference import Instance

#: ``outputs`` argument: a network run on an RGB image, or precomputed outputs by stem.
Outputs = (Callable[[np.ndarray], Mapping[str, np.ndarray]]
           | Mapping[str, Mapping[str, np.ndarray]])

_GT_SUFFIX = "_gtFine_instanceIds.png"
_IMAGE_SUFFIX = "_leftImg8bit.png"
#: ``<city>_<seq>_<frame>``: the evaluator pairs files by this prefix (``getPrediction``).
_STEM_RE = re.compile(r"^[^_\s/\\]+_[^_\s/\\]+_[^_\s/\\]+")
_INSTANCE_ID_BASE = 1000
_NUM_GRID_IDS = classes.NUM_THING_CLASSES + 1
_MASK_DIR = "masks"
_DEFAULT_THRESHOLDS = (0.25, 0.5, 0.75)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------

def frame_stem(name: str | os.PathLike) -> str:
    """The ``<city>_<seq>_<frame>`` part of a Cityscapes file name or frame id.

    Args:
      name: a path or name such as ``aachen_000000_000019_gtFine_instanceIds.png``, or the
        stem itself.

    Returns:
      The stem, e.g. ``"aachen_000000_000019"``.

    Raises:
      UserInputError: if the name does not start with three ``_``-separated fields.
    """
    base = os.path.basename(os.fspath(name))
    match = _STEM_RE.match(base)
    if not match:
        raise UserInputError(
            f"{base!r} does not start with <city>_<seq>_<frame>; name files the Cityscapes "
            "way, e.g. aachen_000000_000019_leftImg8bit.png")
    return match.group(0)


def gt_instance_files(gt_root_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                      *, split: str = "val") -> list[Path]:
    """Ground-truth ``*_gtFine_instanceIds.png`` files to evaluate, as absolute paths.

    Args:
      gt_root_or_files: the Cityscapes root (the folder holding ``gtFine/``), or the
        instanceIds files themselves.
      split: ``gtFine/<split>`` to search under a root; ignored for a list of files.

    Returns:
      Sorted absolute paths.

    Raises:
      UserInputError: for a missing root, a split without files, or a file that is not a
        Cityscapes instanceIds PNG.
    """
    if isinstance(gt_root_or_files, (str, os.PathLike)):
        root = Path(gt_root_or_files)
        if not root.is_dir():
            raise UserInputError(
                f"Cityscapes root {str(root)!r} is not a folder; pass the folder that "
                "holds gtFine/ (e.g. the output of `dcme-keras synth`)")
        files = sorted(root.glob(f"gtFine/{split}/*/*{_GT_SUFFIX}"))
        if not files:
            raise UserInputError(
                f"no gtFine/{split}/*/*{_GT_SUFFIX} under {str(root)!r}; pass the Cityscapes "
                "root and a split that exists there (train, val or test)")
    else:
        files = sorted(Path(f) for f in gt_root_or_files)
        if not files:
            raise UserInputError("the list of ground-truth files is empty; pass at least one")
        for f in files:
            if not f.name.endswith(_GT_SUFFIX) or not f.is_file():
                raise UserInputError(
                    f"{str(f)!r} is not an existing *{_GT_SUFFIX}; pass Cityscapes "
                    "instanceIds files or the Cityscapes root")
            frame_stem(f)
    return [f.resolve() for f in files]


def read_instance_ids(path: str | os.PathLike) -> np.ndarray:
    """Read a Cityscapes ``*_gtFine_instanceIds.png``.

    Args:
      path: the 16-bit PNG.

    Returns:
      [H, W] int32, ``class_id * 1000 + k`` for instances, plain label ids elsewhere.

    Raises:
      UserInputError: for an unreadable file or one that is not 16-bit single-channel.
    """
    ids = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise UserInputError(f"cannot read {os.fspath(path)!r}; check that it is a PNG file")
    if ids.ndim != 2 or ids.dtype != np.uint16:
        raise UserInputError(
            f"{os.fspath(path)!r} is {ids.dtype} with shape {ids.shape}, not a 16-bit "
            "single-channel instanceIds PNG; write instance ids as uint16 PNGs")
    return ids.astype(np.int32)


def image_path(gt_file: Path) -> Path:
    """``leftImg8bit`` image of a ``gtFine/<split>/<city>/*_gtFine_instanceIds.png``."""
    split, city = gt_file.parts[-3], gt_file.parts[-2]
    return (gt_file.parents[3] / "leftImg8bit" / split / city
            / f"{frame_stem(gt_file)}{_IMAGE_SUFFIX}")


def write_cityscapes_results(pred_dir: str | os.PathLike, image_stem: str,
                             instances: Iterable[Instance]) -> Path:
    """Write one frame's predictions in the official Cityscapes results format.

    Writes ``<pred_dir>/<stem>_pred.txt`` with one line ``masks/<stem>_<k>.png labelId
    score`` per instance, and the masks as 8-bit PNGs (255 = instance) under
    ``<pred_dir>/masks/``. The evaluator finds the text file by the ``<city>_<seq>_
    <frame>`` prefix of the ground-truth name. A frame without instances gets an empty
    text file, which the evaluator requires. Empty masks are skipped (the evaluator
    ignores them).

    Example:
      >>> write_cityscapes_results("results", "aachen_000000_000019",
      ...                          [(car_mask, 26, 0.9)])

    Args:
      pred_dir: the prediction folder (created if needed).
      image_stem: the frame stem, or any Cityscapes file name of the frame.
      instances: ``(mask [H, W] bool or integer (nonzero = instance), label_id, score)``
        with masks at the ground truth's full resolution, the *regular* Cityscapes label
        id of a thing class (24..33, not a trainId) and a finite score.

    Returns:
      The path of the text file.

    Raises:
      UserInputError: for a float or non-2-D mask, a label id that is not an evaluated
        thing class, or a non-finite score.
    """
    stem = frame_stem(image_stem)
    pred_dir = Path(pred_dir)
    lines = []
    for k, (mask, label_id, score) in enumerate(instances):
        mask = np.asarray(mask)
        if mask.ndim != 2 or not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
            raise UserInputError(
                f"mask {k} of {stem} has shape {mask.shape} and dtype {mask.dtype}; pass a "
                "2-D bool mask at full resolution (threshold probabilities first)")
        if int(label_id) not in classes.THING_LABEL_IDS:
            raise UserInputError(
                f"label id {label_id} of instance {k} in {stem} is not one of the evaluated "
                f"Cityscapes classes {classes.THING_LABEL_IDS}; pass regular label ids, "
                "not trainIds (dcme_keras.classes.grid_id_to_label_id converts grid ids)")
        if not math.isfinite(float(score)):
            raise UserInputError(f"score {score} of instance {k} in {stem} is not finite; "
                                 "pass a confidence in [0, 1]")
        if not mask.any():
            continue
        relative = f"{_MASK_DIR}/{stem}_{k:04d}.png"
        with atomic_path(pred_dir / relative) as tmp:
            if not cv2.imwrite(os.fspath(tmp), (mask != 0).astype(np.uint8) * 255):
                raise OSError(f"OpenCV could not write {pred_dir / relative}")
        lines.append(f"{relative} {int(label_id)} {float(score)!r}\n")
    txt = pred_dir / f"{stem}_pred.txt"
    with atomic_path(txt) as tmp:
        tmp.write_text("".join(lines))
    return txt


# ---------------------------------------------------------------------------------------
# The official evaluator
# ---------------------------------------------------------------------------------------

def _in1d(ar1, ar2, assume_unique=False, invert=False):
    """``np.in1d`` (removed in NumPy 2.4) as the evaluator calls it."""
    return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)


def _json_default(obj: Any) -> Any:
    """JSON for NumPy scalars and arrays; other objects by their ``__dict__`` like upstream."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj.__dict__


def _write_dict_json(data: Mapping, file_name: str) -> None:
    """NumPy-aware stand-in for cityscapesscripts' ``writeDict2JSON``."""
    with open(file_name, "w") as f:
        json.dump(data, f, default=_json_default, sort_keys=True)


@contextlib.contextmanager
def _evaluator_patches():
    """Patch the evaluator's NumPy-2 breakages for one call, and restore them after."""
    with contextlib.ExitStack() as stack:
        if not hasattr(np, "in1d"):
            stack.enter_context(mock.patch.object(np, "in1d", _in1d, create=True))
        stack.enter_context(mock.patch.object(_cs_eval, "writeDict2JSON", _write_dict_json))
        yield


def _evaluator_args(prediction_dir: Path, work_dir: Path) -> Any:
    """A fresh argument object for one evaluation, copied from the module's defaults.

    The module-level ``args`` is never touched, so calls do not leak state (the cached
    prediction walk, the instance labels) into each other. Every path is set explicitly:
    the defaults come from environment variables read at import time and point into
    site-packages.
    """
    args = _cs_eval.CArgs()
    args.__dict__.update(copy.deepcopy(vars(_cs_eval.args)))
    args.cityscapesPath = os.fspath(work_dir)
    args.groundTruthSearch = ""
    args.gtInstancesFile = os.fspath(work_dir / "gtInstances.json")
    args.exportFile = os.fspath(work_dir / "resultInstanceLevelSemanticLabeling.json")
    args.predictionPath = os.path.abspath(prediction_dir)
    args.predictionWalk = None
    args.instLabels = []
    args.distanceAvailable = False
    args.JSONOutput = False
    args.quiet = True
    args.csv = False
    args.colorized = False
    return args


_ERROR_FIXES = (
    ("no prediction", "write one <city>_<seq>_<frame>_pred.txt per ground-truth frame "
                      "(write_cityscapes_results; an empty file for a frame without "
                      "instances)"),
    ("not found", "write one <city>_<seq>_<frame>_pred.txt per ground-truth frame"),
    ("multiple predictions", "keep exactly one *_pred.txt per frame in the prediction "
                             "folder"),
    ("invalid prediction file", "write lines 'relative/mask.png labelId score' with no "
                                "spaces in the path (write_cityscapes_results)"),
    ("outside of prediction path", "keep the mask PNGs inside the prediction folder"),
)


def _evaluator_error(log: str) -> UserInputError:
    """UserInputError from the ``ERROR: ...`` line the evaluator printed before exiting."""
    errors = [line[len("ERROR:"):].strip() for line in log.splitlines()
              if line.startswith("ERROR:")]
    message = errors[-1] if errors else "it exited without a message"
    fix = next((fix for key, fix in _ERROR_FIXES if key in message.lower()),
               "check the prediction folder against the Cityscapes results format")
    return UserInputError(f"official Cityscapes evaluator: {message}; fix: {fix}")


def _summary(result: Mapping[str, Any], num_images: int) -> dict[str, Any]:
    """Percentages from the evaluator's result dict."""
    averages = result["averages"]
    per_class = {name: {"AP": 100.0 * float(averages["classes"][name]["ap"]),
                        "AP50": 100.0 * float(averages["classes"][name]["ap50%"])}
                 for name in result["instLabels"]}
    return {"AP": 100.0 * float(averages["allAp"]),
            "AP50": 100.0 * float(averages["allAp50%"]),
            "per_class": per_class,
            "num_images": num_images}


def evaluate_predictions(gt_root_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                         prediction_dir: str | os.PathLike, *,
                         split: str = "val") -> dict[str, Any]:
    """Cityscapes instance-level AP of a results folder, by the official evaluator.

    Example:
      >>> result = evaluate_predictions("cityscapes", "results", split="val")
      >>> result["AP"], result["per_class"]["car"]["AP50"]

    Args:
      gt_root_or_files: the Cityscapes root (holding ``gtFine/``), or a list of
        ``*_gtFine_instanceIds.png`` files.
      prediction_dir: the folder with one ``<city>_<seq>_<frame>*.txt`` per frame
        (searched recursively), as :func:`write_cityscapes_results` writes it.
      split: the ``gtFine/`` split to evaluate under a root.

    Returns:
      ``{"AP": float, "AP50": float, "per_class": {class name: {"AP", "AP50"}},
      "num_images": int}``: percentages; AP averages the IoU thresholds 0.50:0.05:0.95.
      A class with no ground-truth instance of at least 100 pixels has ``nan`` and is
      left out of the means.

    Raises:
      UserInputError: for a missing prediction folder, a frame without (or with several)
        prediction files, a malformed results file, or an unreadable or wrongly sized
        mask.
    """
    gt_files = gt_instance_files(gt_root_or_files, split=split)
    prediction_dir = Path(prediction_dir)
    if not prediction_dir.is_dir():
        raise UserInputError(
            f"prediction folder {str(prediction_dir)!r} does not exist; write the "
            "predictions first (write_cityscapes_results) or fix the path")
    log = io.StringIO()
    with contextlib.ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cs_eval_")))
        stack.enter_context(_evaluator_patches())
        stack.enter_context(contextlib.chdir(work_dir))  # it writes ./matches.json
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(warnings.catch_warnings())
        # nanmean over a class without ground truth warns; nan is the documented answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        args = _evaluator_args(prediction_dir, work_dir)
        gt_names = [os.fspath(f) for f in gt_files]
        try:
            predictions = [_cs_eval.getPrediction(gt, args) for gt in gt_names]
            result = _cs_eval.evaluateImgLists(predictions, gt_names, args)
        except SystemExit:
            raise _evaluator_error(log.getvalue()) from None
        except OSError as err:
            raise UserInputError(
                f"official Cityscapes evaluator could not read a predicted mask ({err}); "
                "fix: rewrite the prediction folder with write_cityscapes_results") from None
        except ValueError as err:
            if "broadcast" not in str(err):
                raise
            raise UserInputError(
                "a predicted mask does not have its ground truth's size; fix: write masks "
                "at the full ground-truth resolution (resize the instance map with "
                "nearest neighbour)") from None
    return _summary(result, len(gt_files))


# ---------------------------------------------------------------------------------------
# Shared per-frame pieces of the oracles
# ---------------------------------------------------------------------------------------

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


def _frame_outputs(outputs: Outputs, gt_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(dcme [h, w, 2], grid_logits [gh, gw, 9]) of one frame from ``outputs``."""
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
    if dcme.ndim == 4 and dcme.shape[0] == 1:  # tolerate a batch of one
        dcme, grid_logits = dcme[0], grid_logits[0]
    return dcme, grid_logits


def _decoded_instance_map(dcme: np.ndarray, out_size: tuple[int, int],
                          decode_kwargs: Mapping[str, Any] | None) -> np.ndarray:
    """[H, W] int32 instance map decoded from a predicted DCME, at full resolution."""
    instance_map, _ = codec_np.decode_dcme(dcme, **dict(decode_kwargs or {}))
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


# ---------------------------------------------------------------------------------------
# The experiments of paper 000, Sec. V
# ---------------------------------------------------------------------------------------

def gt_oracle(cityscapes_root: str | os.PathLike, split: str = "val", scale: float = 0.5,
              *, max_images: int | None = None, progress: bool = True,
              decode_kwargs: Mapping[str, Any] | None = None,
              prediction_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """AP of the ground truth after a DCME round trip at ``scale`` (paper Table I, right).

    For each frame: the instance ids are downscaled by nearest neighbour to ``scale``,
    encoded with ``encode_dcme`` and decoded with ``decode_dcme`` (foreground = the
    instance pixels), and the decoded instance map is upscaled back to full resolution.
    Each decoded instance takes the ground-truth thing class that most of its pixels
    carry, with score 1. What remains below 100 AP is the information lost by the
    resolution (paper: 59.2 AP at 0.5, i.e. 512x1024 on Cityscapes). Needs only
    ``gtFine/``.

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

    Returns:
      As :func:`evaluate_predictions`: ``{"AP", "AP50", "per_class", "num_images"}``,
      percentages.
    """
    if not 0.0 < scale <= 1.0:
        raise UserInputError(f"scale {scale} must be in (0, 1], e.g. 0.5 for 512x1024")

    def frame_instances(gt_file: Path) -> list[Instance]:
        ids = read_instance_ids(gt_file)
        full = ids.shape
        small_hw = (max(1, round(full[0] * scale)), max(1, round(full[1] * scale)))
        small = inference.resize_nearest(ids, small_hw)
        dcme = codec_np.encode_dcme(small, min_instance_id=_INSTANCE_ID_BASE)
        instance_map, _ = codec_np.decode_dcme(
            dcme, foreground=small >= _INSTANCE_ID_BASE, **dict(decode_kwargs or {}))
        instance_map = inference.resize_nearest(np.asarray(instance_map, np.int32), full)
        labels = _majority_thing_labels(instance_map, grid.instance_ids_to_label_ids(ids))
        return [(instance_map == k, int(label), 1.0)
                for k, label in enumerate(labels, start=1) if label]

    return _score_frames(_frames(cityscapes_root, split, max_images), frame_instances,
                         prediction_dir=prediction_dir, progress=progress,
                         desc=f"GT oracle x{scale:g}")


def evaluate_outputs(cityscapes_root: str | os.PathLike, outputs: Outputs,
                     split: str = "val", *, grid_size: int | None = None,
                     decode_kwargs: Mapping[str, Any] | None = None,
                     max_images: int | None = None, progress: bool = True,
                     prediction_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """AP of the whole DCME solution (paper Table I, left).

    Instances are decoded from the predicted DCME and classified by the grid cell of
    their center of mass, scored by that class's probability
    (:func:`dcme_keras.inference.instances_from_outputs`).

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
        dcme, grid_logits = _frame_outputs(outputs, gt_file)
        return inference.instances_from_outputs(dcme, grid_logits, out_size=full,
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
        dcme, grid_logits = _frame_outputs(outputs, gt_file)
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
        dcme, _ = _frame_outputs(outputs, gt_file)
        instance_map = _decoded_instance_map(dcme, ids.shape, decode_kwargs)
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
        dcme, _ = _frame_outputs(outputs, gt_file)
        best = _best_iou(gt_map, len(gt_labels),
                         _decoded_instance_map(dcme, ids.shape, decode_kwargs))
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
      gt_foreground: decode with ``foreground=`` the ground truth's object pixels, which
        scores the vectors alone; False decodes as at inference.
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
    for pred, ids in zip(dcme, instance_ids.astype(np.int32)):
        gt_map, _ = _gt_instances(ids)
        objects = gt_map > 0
        true = codec_np.encode_dcme(np.where(objects, ids, 0))
        errors.append(np.hypot(*np.moveaxis(pred - true, -1, 0))[objects])
        lengths.append(np.hypot(pred[..., 0], pred[..., 1])[objects])
        truths.append(np.hypot(true[..., 0], true[..., 1])[objects])
        kwargs = dict(decode_kwargs or {})
        if gt_foreground:
            kwargs["foreground"] = objects
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


def _best_iou(gt_map: np.ndarray, num_gt: int, pred_map: np.ndarray) -> np.ndarray:
    """Best IoU of each ground-truth instance with any predicted instance.

    Args:
      gt_map: [H, W] int32, 0 = none, 1..G ground-truth instances.
      num_gt: G.
      pred_map: [H, W] int32, 0 = none, 1..P predicted instances.

    Returns:
      [G] float64 IoU in [0, 1].
    """
    num_pred = int(pred_map.max(initial=0))
    if not num_pred:
        return np.zeros(num_gt)
    joint = np.bincount((gt_map.astype(np.int64) * (num_pred + 1) + pred_map).ravel(),
                        minlength=(num_gt + 1) * (num_pred + 1))
    joint = joint.reshape(num_gt + 1, num_pred + 1)  # [G+1, P+1] pixel counts
    gt_area = joint.sum(axis=1)[1:, None]  # [G, 1]
    pred_area = joint.sum(axis=0)[None, 1:]  # [1, P]
    inter = joint[1:, 1:]  # [G, P]
    return (inter / (gt_area + pred_area - inter)).max(axis=1)


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------

def _pct(value: float) -> str:
    """A percentage with one decimal, or ``n/a`` for nan."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def format_table(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """Plain-text tables in the paper's layout.

    Per-class AP / AP50 rows and their mean (Tables I, II, IV); below them the
    classification accuracy (Table III) when ``result`` has ``"classification"``. A
    :func:`detection_accuracy` result prints as Table V.

    Args:
      result: what an evaluation function of this module returned.
      title: an optional first line.

    Returns:
      The table, lines joined by newlines.
    """
    lines = [title] if title else []
    if "per_class" in result:
        lines.append(f"{'class':<12}{'AP':>8}{'AP50%':>8}")
        for name, row in result["per_class"].items():
            lines.append(f"{name:<12}{_pct(row['AP']):>8}{_pct(row['AP50']):>8}")
        lines.append(f"{'mean':<12}{_pct(result['AP']):>8}{_pct(result['AP50']):>8}")
    if "classification" in result:
        table = result["classification"]
        lines += ["", f"{'class':<12}{'instances':>10}{'correct':>9}{'acc.%':>8}"]
        rows = [*table["per_class"].items(), ("total", table["total"])]
        for name, row in rows:
            lines.append(f"{name:<12}{row['instances']:>10}{row['correct']:>9}"
                         f"{_pct(row['accuracy']):>8}")
    if "per_threshold" in result:
        lines.append(f"{'threshold%':<12}{'detections':>11}{'acc.%':>8}"
                     f"   ({result['instances']} instances)")
        for row in result["per_threshold"]:
            lines.append(f"{100 * row['threshold']:<12g}{row['detections']:>11}"
                         f"{_pct(row['accuracy']):>8}")
    return "\n".join(lines)


def _nan_to_none(value: Any) -> Any:
    """Replace float nan by None, recursively, for strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def save_result(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write an evaluation result as strict JSON (``nan`` becomes ``null``), atomically.

    Args:
      result: what an evaluation function of this module returned.
      path: the ``.json`` file to write.

    Returns:
      ``path`` as a Path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(result), indent=2, allow_nan=False) + "\n")
    return path
