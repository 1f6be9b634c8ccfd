"""The Cityscapes results format and the official instance-level evaluator.

One adapter between this package and cityscapesScripts 2.3:

* **Files**: ground-truth ``*_gtFine_instanceIds.png`` frames, their stems and images,
  and the results format the evaluator reads (one ``<stem>_pred.txt`` per frame with
  lines ``masks/<file>.png labelId score``), written by :func:`write_cityscapes_results`.
* **Evaluation**: :func:`evaluate_predictions` runs ``evalInstanceLevelSemanticLabeling``
  on such a folder and returns AP / AP50 in percent, per class and averaged.

The evaluator is driven through its own functions (``getPrediction``,
``matchGtWithPreds``, ``evaluateMatches``, ...) with a fresh argument object per call,
so it writes nothing: no ground-truth cache into site-packages and no
``./matches.json``. Its one NumPy 2 breakage, ``np.in1d``, is served by pointing the
evaluator module's own ``np`` at NumPy plus ``in1d`` (:class:`_NumPyWithIn1d`); NumPy is
not modified. Its errors, which call ``sys.exit``, become :class:`UserInputError` with
the fix. Its failure on an empty precision-recall curve is answered with the AP it
stands for, 0 (:func:`_evaluate_matches`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import types
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as _cs_eval
from cityscapesscripts.evaluation.instances2dict import instances2dict

from dcme_keras import classes
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path
from dcme_keras.inference import Instance

_GT_SUFFIX = "_gtFine_instanceIds.png"
_IMAGE_SUFFIX = "_leftImg8bit.png"
#: ``<city>_<seq>_<frame>``: the evaluator pairs files by this prefix (``getPrediction``).
_STEM_RE = re.compile(r"^[^_\s/\\]+_[^_\s/\\]+_[^_\s/\\]+")
_MASK_DIR = "masks"


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


class _NumPyWithIn1d(types.ModuleType):
    """NumPy as cityscapesscripts 2.3 calls it: with ``in1d``, which NumPy 2.4 removed.

    The evaluator module reaches NumPy through its own global ``np`` (star-imported from
    ``csHelpers``); that one binding is pointed here, and NumPy itself is left alone.
    """

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def in1d(ar1, ar2, assume_unique=False, invert=False) -> np.ndarray:
        """``np.in1d``: ``[N]`` bool, membership of the flattened ``ar1`` in ``ar2``."""
        return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)


if not hasattr(np, "in1d"):
    _cs_eval.np = _NumPyWithIn1d()


def _evaluator_args(prediction_dir: Path) -> Any:
    """A fresh argument object for one evaluation, copied from the module's defaults.

    The module-level ``args`` is never touched, so calls do not leak state (the cached
    prediction walk, the instance labels) into each other. No path of it is used for
    writing (see :func:`evaluate_predictions`); the defaults, read from environment
    variables at import time, point into site-packages and are cleared.
    """
    args = _cs_eval.CArgs()
    args.__dict__.update(copy.deepcopy(vars(_cs_eval.args)))
    args.cityscapesPath = ""
    args.groundTruthSearch = ""
    args.gtInstancesFile = ""
    args.exportFile = ""
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


def is_empty_curve_error(err: IndexError) -> bool:
    """Whether ``err`` is cityscapesScripts' failure on an empty precision-recall curve.

    ``evaluateMatches`` (cityscapesScripts 2.3) reads ``cumsum(y_true)[-1]`` of an empty
    array when a class has ground truth and predictions in the split, yet at some IoU
    threshold no ground truth is matched and every prediction is ignored (it lies on void,
    group or too-small ground truth), which a poorly trained network produces. An
    IndexError raised anywhere else is a bug.

    Args:
      err: an IndexError raised while evaluating.

    Returns:
      True when the innermost frame is cityscapesScripts' ``evaluateMatches``.
    """
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return (code.co_name == "evaluateMatches"
            and "cityscapesscripts" in Path(code.co_filename).parts)


def _evaluate_matches(matches: dict, args: Any) -> np.ndarray:
    """``evaluateMatches``, with its empty-curve failure answered.

    Where :func:`is_empty_curve_error` strikes, a class has ground truth and no true
    positive at that IoU threshold: its AP there is 0, what the evaluator itself gives a
    class with ground truth and no prediction. The (class, threshold) cells are then
    evaluated one at a time and the failing ones set to 0.

    Returns:
      [distance thresholds, classes, IoU thresholds] float AP in [0, 1], as
      ``evaluateMatches`` returns.
    """
    try:
        return _cs_eval.evaluateMatches(matches, args)
    except IndexError as err:
        if not is_empty_curve_error(err):
            raise
    cells = {}
    for label_index, label in enumerate(args.instLabels):
        for overlap_index, overlap in enumerate(args.overlaps):
            one = copy.copy(args)
            one.instLabels, one.overlaps = [label], np.asarray([overlap])
            try:
                cells[label_index, overlap_index] = _cs_eval.evaluateMatches(matches, one)
            except IndexError as err:
                if not is_empty_curve_error(err):
                    raise
                cells[label_index, overlap_index] = 0.0
    depth = max((c.shape[0] for c in cells.values() if isinstance(c, np.ndarray)), default=1)
    ap = np.zeros((depth, len(args.instLabels), len(args.overlaps)), float)
    for (label_index, overlap_index), cell in cells.items():
        ap[:, label_index, overlap_index] = cell if np.isscalar(cell) else cell[:, 0, 0]
    return ap


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
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(warnings.catch_warnings())
        # nanmean over a class without ground truth warns; nan is the documented answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        args = _evaluator_args(prediction_dir)
        gt_names = [os.fspath(f) for f in gt_files]
        try:
            # evaluateImgLists' steps, without its writes: it caches the ground truth as
            # JSON next to the package and dumps ./matches.json, and its JSON writer fails
            # on NumPy scalars.
            predictions = [_cs_eval.getPrediction(gt, args) for gt in gt_names]
            _cs_eval.setInstanceLabels(args)
            gt_instances = instances2dict(gt_names, False)
            matches = _cs_eval.matchGtWithPreds(predictions, gt_names, gt_instances, args)
            ap_scores = _evaluate_matches(matches, args)
            averages = _cs_eval.computeAverages(ap_scores, args)
            result = _cs_eval.prepareJSONDataForResults(averages, ap_scores, args)
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
