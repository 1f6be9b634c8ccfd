"""``dcme-keras annotate``: object masks as polygons from extreme points or boxes (paper 003).

One object::

    dcme-keras annotate frame.png --model runs/annotator/best.keras \\
        --points "412,300 455,251 530,296 470,362" --label car --format labelme --out frame.json

``--points 412,300 455,251 530,296 470,362`` (four arguments, unquoted) works too.

Many objects over many images (batch pre-annotation), one output file per image::

    dcme-keras annotate --requests requests.json --model annotator_int8.tflite \\
        --format cityscapes --out annotations/

``--requests`` is a JSON list with one entry per image; relative image paths are read
from the requests file's folder, and every object gives either its 4 extreme points or a
box (``label`` defaults to ``--label``)::

    [{"image": "frames/a.png",
      "objects": [{"label": "car", "points": [[412, 300], [455, 251], [530, 296], [470, 362]]},
                  {"label": "person", "box": [100, 80, 140, 200]}]}]

Points are ``(x, y)`` pixels, left, top, right and bottom, the object's outermost pixels as
a person clicks them (the order does not change the result). A box is ``x0,y0,x1,y1``
with inclusive corners as a person drags it.

**Models.** Without ``--model``, the int8 annotator the package ships
(``dcme_keras/models_data/``, trained on synthetic Cityscapes; its sidecar records how).
Else a ``.keras`` file from ``dcme-keras train annotator`` (its ``config.json`` beside
it gives the point radius and the crop margin) or a ``.tflite`` file from ``dcme-keras
export`` (read by ``dcme_keras.runtime``, without TensorFlow). A model trained with
extreme points (4 input channels) needs points: ``--box`` on it is an error, because the
midpoints of a box's sides, which would stand in for the clicks, are not on the object.
Use a model trained with ``--nopoints`` (RGB only, the paper's baseline input) for boxes.
Points given to an RGB-only model are allowed, with a warning: they only set the crop,
which is exactly what that model was trained on.

**Outputs** (``--format``), rings simplified within ``--tolerance_px``, holes kept
through zero-width bridges (``dcme_keras.polygons``):

* ``cityscapes``: ``gtFine_polygons.json`` content; labels must be Cityscapes classes.
  In ``--requests`` mode written as ``<stem>_gtFine_polygons.json`` (the stem without
  ``_leftImg8bit``).
* ``labelme``: labelme JSON referring to the image by its path relative to the file;
  ``<stem>.json``.
* ``coco``: a COCO dataset of the one image (``images``, ``annotations`` with RLE or
  polygon segmentations per ``--coco_mode``, ``categories`` with Cityscapes label ids);
  ``<stem>_coco.json``.

**Bad input** (fewer or more than 4 points, a point outside the image, 4 identical
points, an empty box, an unreadable image, a model file of the wrong kind, a box for a
points model, a label the format does not know, two images with one output name) stops
the command with one line on stderr and exit status 2 before anything is written: every
request is checked, and every mask computed, before the first file is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import flags

from dcme_keras.errors import UserInputError
from dcme_keras.fileio import read_rgb

FORMATS = ("cityscapes", "labelme", "coco")
#: One ``x,y`` pixel position given as its own argument, e.g. ``412,300`` or ``412.5,300``.
_POINT_ARG = re.compile(r"[+-]?\d+(\.\d*)?,[+-]?\d+(\.\d*)?")

_MODEL = flags.DEFINE_string(
    "model", None, "annotator model: a .keras file from `dcme-keras train annotator` or a "
    ".tflite file from `dcme-keras export`; default: the int8 model the package ships "
    "(trained on synthetic Cityscapes)")
_POINTS = flags.DEFINE_string(
    "points", None, "the object's 4 extreme points 'x,y x,y x,y x,y' in pixels: left, top, "
    "right, bottom; quoted as one argument or as 4 arguments")
_BOX = flags.DEFINE_string(
    "box", None, "the object's box 'x0,y0,x1,y1' in pixels, inclusive corners; needs an "
    "RGB-only model (trained with --nopoints)")
_LABEL = flags.DEFINE_string(
    "label", "car", "class name of the object (a Cityscapes class for --format cityscapes "
    "and coco); the default for --requests objects")
_REQUESTS = flags.DEFINE_string(
    "requests", None, "JSON file of many objects over many images, instead of IMAGE with "
    "--points or --box (see --help)")
_FORMAT = flags.DEFINE_enum("format", "labelme", list(FORMATS), "output format")
_COCO_MODE = flags.DEFINE_enum("coco_mode", "rle", ["rle", "polygon"],
                               "COCO segmentation: RLE (pixel-exact) or polygons")
_OUT = flags.DEFINE_string(
    "out", None, "output file; with --requests (or an existing folder) the folder to write "
    "one file per image into")
_TOLERANCE_PX = flags.DEFINE_float(
    "tolerance_px", 1.0, "polygon simplification tolerance in pixels; 0 keeps every boundary "
    "pixel", lower_bound=0.0)
_THRESHOLD = flags.DEFINE_float(
    "threshold", None, "mask probability from which a pixel is object; default: the "
    "threshold calibrated into the model's sidecar, else 0.5")
_THREADS = flags.DEFINE_integer("threads", 1, "LiteRT interpreter threads for a .tflite model",
                                lower_bound=1)
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "images annotated in parallel, each worker with its own interpreter of "
    "--threads threads (a .tflite model); 2 workers keep 2 cores busy", lower_bound=1)
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar over the images")
flags.mark_flags_as_required(["out"])


@dataclasses.dataclass(frozen=True, eq=False)
class ObjectRequest:
    """One object to annotate.

    Attributes:
      label: its class name.
      points: ``[4, 2]`` float (x, y) extreme points [pixels], or None.
      box: ``(x0, y0, x1, y1)`` [pixels], inclusive corners, or None.
    """

    label: str
    points: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None


@dataclasses.dataclass(frozen=True)
class ImageRequest:
    """The objects of one image.

    Attributes:
      image: the image file.
      objects: what to annotate in it.
      where: how messages name this request, e.g. ``"requests.json entry 2"``.
    """

    image: Path
    objects: tuple[ObjectRequest, ...]
    where: str


def parse_points(text: str) -> np.ndarray:
    """``"x,y x,y x,y x,y"`` -> ``[4, 2]`` float64 (x, y).

    Raises:
      UserInputError: for other than 4 points or a point that is not two numbers.
    """
    pairs = text.split()
    try:
        points = np.array([[float(v) for v in pair.split(",")] for pair in pairs], np.float64)
    except ValueError:
        raise UserInputError(f"--points {text!r} is not 'x,y x,y x,y x,y'; give 4 pixel "
                             "positions: left, top, right, bottom") from None
    if points.ndim != 2 or points.shape != (4, 2):
        raise UserInputError(f"--points {text!r} gives {len(pairs)} point(s), not 4 'x,y' "
                             "pairs; click the leftmost, topmost, rightmost and bottommost "
                             "points")
    return points


def split_point_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates the ``x,y`` positional arguments that continue ``--points``.

    The shell splits ``--points 1,1 5,5 9,9 3,3`` into four arguments; absl gives the first
    to ``--points`` and leaves the rest among the positional ones, in order.

    Args:
      argv: the positional arguments absl left, the program name first.

    Returns:
      ``(argv without them, the x,y arguments in order)``.
    """
    points = [a for a in argv[1:] if _POINT_ARG.fullmatch(a)]
    rest = [argv[0], *(a for a in argv[1:] if not _POINT_ARG.fullmatch(a))]
    return rest, points


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> 4 floats.

    Raises:
      UserInputError: for anything but 4 comma-separated numbers.
    """
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise UserInputError(f"--box {text!r} is not 'x0,y0,x1,y1'; give the box's corners in "
                             "pixels, e.g. 100,80,140,200")
    return values


def _object_from_json(item, label: str, where: str) -> ObjectRequest:
    if not isinstance(item, dict):
        raise UserInputError(f"{where} is not a JSON object; write "
                             "{\"label\": ..., \"points\": [[x, y], ...]} or {..., \"box\": ...}")
    label = item.get("label", label)
    if not isinstance(label, str) or not label:
        raise UserInputError(f"{where}: label {label!r} is not a class name; use e.g. \"car\"")
    if ("points" in item) == ("box" in item):
        raise UserInputError(f"{where} needs exactly one of \"points\" (4 [x, y] pairs) and "
                             "\"box\" ([x0, y0, x1, y1])")
    try:
        if "points" in item:
            points = np.asarray(item["points"], np.float64)
            if points.shape != (4, 2):
                raise UserInputError(f"points of shape {points.shape} are not 4 [x, y] pairs; "
                                     "give the left, top, right and bottom points")
            return ObjectRequest(label, points=points)
        box = np.asarray(item["box"], np.float64)
        if box.shape != (4,):
            raise UserInputError(f"box {item['box']!r} is not [x0, y0, x1, y1]")
        return ObjectRequest(label, box=tuple(float(v) for v in box))
    except (TypeError, ValueError) as err:
        raise UserInputError(f"{where}: {err}".splitlines()[0]) from None


def read_requests(path: str | os.PathLike, default_label: str) -> list[ImageRequest]:
    """Parse a ``--requests`` file (module docstring).

    Raises:
      UserInputError: for a file that is missing, not JSON, or not in that layout.
    """
    path = Path(path).expanduser()
    try:
        entries = json.loads(path.read_text())
    except OSError as err:
        raise UserInputError(f"cannot read --requests {path} ({err.strerror}); check the "
                             "path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"--requests {path} is not valid JSON ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise UserInputError(f"--requests {path} must hold a non-empty JSON list of "
                             "{\"image\": ..., \"objects\": [...]} entries")
    requests = []
    for n, entry in enumerate(entries):
        where = f"{path.name} entry {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise UserInputError(f"{where} has no \"image\" path; write {{\"image\": "
                                 "\"a.png\", \"objects\": [...]}")
        objects = entry.get("objects")
        if not isinstance(objects, list) or not objects:
            raise UserInputError(f"{where} ({entry['image']}) needs a non-empty \"objects\" list")
        image = Path(entry["image"]).expanduser()
        requests.append(ImageRequest(
            image=image if image.is_absolute() else path.parent / image,
            objects=tuple(_object_from_json(item, default_label, f"{where} object {k}")
                          for k, item in enumerate(objects)),
            where=where))
    return requests


def output_name(image: Path, fmt: str) -> str:
    """The file one image's annotations go to in a folder, per format (module docstring)."""
    if fmt == "cityscapes":
        return image.stem.removesuffix("_leftImg8bit") + "_gtFine_polygons.json"
    if fmt == "coco":
        return f"{image.stem}_coco.json"
    return f"{image.stem}.json"


def _clicks(obj: ObjectRequest) -> np.ndarray:
    """The 4 points the network's crop is built from: the clicks, or a box's midpoints."""
    from dcme_keras.runtime import box_to_points

    return obj.points if obj.points is not None else box_to_points(obj.box)


def check_requests(requests: Sequence[ImageRequest], fmt: str) -> None:
    """Check every image and object before a model is loaded.

    Raises:
      UserInputError: naming the request and object, for an unreadable image, points or
        a box that do not fit the image, or a label the format does not know.
    """
    from dcme_keras import classes
    from dcme_keras.extreme_points import crop_box

    for request in requests:
        image = read_rgb(request.image)
        for k, obj in enumerate(request.objects):
            where = f"{request.where} ({request.image.name}) object {k}"
            try:
                crop_box(_clicks(obj), image.shape[:2])
            except UserInputError as err:
                raise UserInputError(f"{where}: {err}") from None
            if fmt in ("cityscapes", "coco"):
                try:
                    classes.label_id(obj.label)
                except KeyError:
                    raise UserInputError(
                        f"{where}: label {obj.label!r} is not a Cityscapes class, which "
                        f"--format {fmt} needs; use e.g. 'car' or 'person', or --format "
                        "labelme") from None


def check_model_fits(requests: Sequence[ImageRequest], uses_points: bool, model: str) -> None:
    """Refuse boxes for a points model; warn once when points go to an RGB-only model."""
    kinds = {"box" if obj.box is not None else "points"
             for request in requests for obj in request.objects}
    if uses_points and "box" in kinds:
        raise UserInputError(f"{model} takes extreme points, so a box cannot drive it; give "
                             "--points, or use a model trained with --nopoints for boxes")
    if not uses_points and "points" in kinds:
        print(f"warning: {model} is RGB-only; the points only set the crop", file=sys.stderr)


def annotate_image(annotator, request: ImageRequest, *, fmt: str, out_file: Path,
                   tolerance_px: float, coco_mode: str = "rle") -> dict | list:
    """The annotation document of one image, in ``fmt``.

    Args:
      annotator: an ``ExtremePointsAnnotator`` (``.tflite``) or ``KerasAnnotator``.
      request: the image and its objects, already checked (:func:`check_requests`).
      fmt: one of :data:`FORMATS`.
      out_file: where the document will be written (labelme and COCO name the image
        relative to it).
      tolerance_px: polygon simplification tolerance [pixels].
      coco_mode: ``"rle"`` or ``"polygon"``.

    Returns:
      The JSON-ready document.
    """
    from dcme_keras import classes, polygons

    image = read_rgb(request.image)
    hw = image.shape[:2]
    objects = []
    for k, obj in enumerate(request.objects):
        mask = annotator.segment(image, _clicks(obj))
        if not mask.any():
            print(f"warning: {request.where} ({request.image.name}) object {k}: the model "
                  "found no object pixel; it is left out", file=sys.stderr)
        objects.append(polygons.LabeledObject(
            obj.label, polygons.mask_to_polygons(mask, tolerance_px=tolerance_px)))
    image_ref = os.path.relpath(request.image.resolve(), out_file.parent.resolve())
    if fmt == "cityscapes":
        return polygons.to_cityscapes_json(objects, hw)
    if fmt == "labelme":
        return polygons.to_labelme_json(objects, image_ref, hw)
    annotations = polygons.to_coco(objects, 1, hw, mode=coco_mode)
    names = dict.fromkeys(obj.label for obj in objects if obj.polygons)
    return {"images": [{"id": 1, "file_name": image_ref, "height": hw[0], "width": hw[1]}],
            "annotations": annotations,
            "categories": [{"id": classes.label_id(n), "name": n} for n in names]}


def _requests_from_flags(argv: list[str]) -> tuple[list[ImageRequest], bool]:
    """The requests the command line describes, and whether they came from --requests."""
    if _REQUESTS.value is not None:
        if len(argv) > 1 or _POINTS.value is not None or _BOX.value is not None:
            raise UserInputError("--requests replaces IMAGE, --points and --box; give either "
                                 "the requests file or one image with its object")
        return read_requests(_REQUESTS.value, _LABEL.value), True
    argv, point_args = split_point_args(argv) if _POINTS.value is not None else (argv, [])
    if len(argv) != 2:
        raise UserInputError(f"expected one IMAGE argument, got {len(argv) - 1}; run "
                             "`dcme-keras annotate IMAGE --points ... --model ... --out ...` "
                             "or use --requests")
    if (_POINTS.value is None) == (_BOX.value is None):
        raise UserInputError("give exactly one of --points 'x,y x,y x,y x,y' and --box "
                             "'x0,y0,x1,y1'")
    obj = (ObjectRequest(_LABEL.value, points=parse_points(" ".join([_POINTS.value,
                                                                     *point_args])))
           if _POINTS.value is not None
           else ObjectRequest(_LABEL.value, box=parse_box(_BOX.value)))
    return [ImageRequest(Path(argv[1]).expanduser(), (obj,), "IMAGE")], False


def _output_files(requests: Sequence[ImageRequest], out: Path, many: bool,
                  fmt: str) -> list[Path]:
    if not many and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; with --requests pass a folder")
    files = [out / output_name(r.image, fmt) for r in requests]
    seen = {}
    for request, file in zip(requests, files):
        if file in seen:
            raise UserInputError(f"{seen[file]} and {request.where} both write {file.name}; "
                                 "list each image once, and give images distinct names")
        seen[file] = request.where
    return files


def write_documents(documents: Sequence[dict | list], out_files: Sequence[Path]) -> None:
    """Writes each JSON document to its file: all of them, or none when one fails.

    Args:
      documents: JSON-ready annotation documents, one per image.
      out_files: their destinations, distinct.
    """
    from dcme_keras.fileio import atomic_files

    with atomic_files(out_files) as tmps:
        for document, tmp in zip(documents, tmps):
            tmp.write_text(json.dumps(document, indent=1) + "\n")


def main(argv: list[str]) -> None:
    """Checks the requests, segments every object, then writes the files."""
    requests, many = _requests_from_flags(argv)
    fmt = _FORMAT.value
    out_files = _output_files(requests, Path(_OUT.value).expanduser(), many, fmt)
    check_requests(requests, fmt)
    from dcme_keras.keras_annotator import inspect_model, open_annotator
    from dcme_keras.runtime import BUNDLED_ANNOTATOR

    model = _MODEL.value or BUNDLED_ANNOTATOR
    info = inspect_model(model)
    check_model_fits(requests, info["points"], model)
    annotator = open_annotator(model, num_threads=_THREADS.value,
                               threshold=_THRESHOLD.value)
    from tqdm import tqdm

    from dcme_keras.runtime import map_with_replicas

    def document(worker_annotator, job):
        request, file = job
        return annotate_image(worker_annotator, request, fmt=fmt, out_file=file,
                              tolerance_px=_TOLERANCE_PX.value, coco_mode=_COCO_MODE.value)

    # The pool takes every job at once, so a bar would only count submissions there.
    jobs = tqdm(list(zip(requests, out_files)), unit=" images", desc="annotating",
                disable=not _PROGRESS.value or _WORKERS.value > 1)
    documents = map_with_replicas(annotator, document, jobs, workers=_WORKERS.value)
    write_documents(documents, out_files)
    objects = sum(len(r.objects) for r in requests)
    where = out_files[0] if len(out_files) == 1 else out_files[0].parent
    print(f"annotated {objects} object(s) in {len(requests)} image(s) as {fmt}: {where}")
