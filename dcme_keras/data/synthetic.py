"""Synthetic Cityscapes: street scenes drawn from polygons, written in the Cityscapes layout.

No Cityscapes copy can be downloaded where this package is developed, so this module is the
embedded default data (DESIGN.md, "The embedded default: synthetic Cityscapes"). A frame is a
pinhole-camera street: sky, road, sidewalks, building facades with windows, trees, poles with
traffic signs and lights, the 8 thing classes with class-typical silhouettes and colors, now
and then a group region (``cargroup``, ``persongroup``, ``bicyclegroup``) and an ego-vehicle
hood. Sizes follow the ground-plane perspective, objects are drawn far to near so nearer ones
occlude, and objects are cut by the image border.

Every object is first drawn as a sprite (colors plus silhouette), its silhouette becomes a
``gtFine_polygons.json`` polygon, and the polygons are rasterized with the same calls as
cityscapesscripts' ``json2instanceImg`` / ``json2labelImg``. The image is then painted through
that raster, so image, polygons, instanceIds and labelIds agree on every pixel.

Example:
  >>> summary = write_dataset("/tmp/synth", frames=8, size=(256, 512), progress=False)
  >>> summary["frames"]
  {'train': 6, 'val': 2}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageDraw
from tqdm import tqdm

from dcme_keras.classes import GROUP_SUFFIX, THING_CLASSES
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path

DEFAULT_SIZE: tuple[int, int] = (512, 1024)
#: Split -> city names. Disjoint, like the real dataset, so file stems never repeat.
DEFAULT_CITIES: dict[str, tuple[str, ...]] = {
    "train": ("synthburg", "synthingen"),
    "val": ("synthdorf",),
}
SPLITS: tuple[str, ...] = ("train", "val")
#: Written at the dataset root; marks a folder that ``write_dataset`` may replace.
SUMMARY_FILE = "dcme_synth.json"
#: Cityscapes annotates the 20th frame of each 30-frame snippet: ``<city>_<seq>_000019``.
FRAME_NUMBER = 19
MIN_SIZE = 32

# Fast and still small: zlib level 1 after the "up" row filter, which suits both the
# camera-like image and the piecewise-constant id maps (about 3x faster than the default
# adaptive filters at the same size).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
_CITY_RE = re.compile(r"^[a-z][a-z0-9]*$")
# Polygon simplification tolerance: about what a human annotator's clicks deviate.
_SIMPLIFY_PX = 0.7
# Sprite coordinates go to OpenCV in fixed point with 4 fractional bits, so sub-pixel
# shapes of far objects keep their proportions.
_SHIFT = 4

# Camera: Cityscapes' rig sits about 1.2-1.3 m above the road with f ~ 1.1 image widths.
_CAM_HEIGHT_M = 1.3
_FOCAL_PER_WIDTH = 1.1

_GLASS = (45, 55, 66)
_TIRE = (22, 22, 24)
_RIM = (150, 152, 158)
_DARK = (38, 38, 40)
_CAR_COLORS = ((205, 205, 210), (238, 238, 236), (28, 28, 32), (92, 96, 102), (24, 44, 112),
               (152, 22, 28), (36, 72, 46), (182, 162, 122), (120, 130, 145))
_BUS_SCHEMES = (((232, 182, 24), (40, 40, 40)), ((202, 32, 30), (238, 238, 238)),
                ((236, 236, 232), (22, 82, 172)), ((40, 130, 70), (236, 236, 232)))
_TRAIN_SCHEMES = (((240, 240, 236), (200, 24, 30)), ((236, 196, 40), (90, 90, 96)),
                  ((196, 28, 34), (240, 240, 236)), ((232, 232, 228), (30, 120, 60)))
_TRUCK_CABS = ((210, 40, 30), (30, 60, 150), (230, 230, 230), (240, 170, 20), (40, 110, 60))
_TRUCK_BOXES = ((228, 228, 226), (170, 172, 176), (200, 60, 40), (60, 90, 160))
_SKIN = ((236, 198, 168), (212, 162, 122), (162, 112, 82), (102, 72, 52))
_HAIR = ((30, 24, 20), (90, 60, 30), (200, 170, 110), (120, 120, 120))
_SHIRTS = ((200, 30, 40), (30, 60, 160), (240, 240, 240), (30, 30, 30), (230, 200, 40),
           (60, 140, 70), (120, 80, 160), (230, 120, 40))
_PANTS = ((30, 36, 70), (25, 25, 28), (90, 90, 95), (170, 150, 110))
_FACADES = ((206, 186, 154), (152, 152, 150), (150, 84, 62), (222, 216, 204), (214, 196, 120),
            (176, 140, 120))
_GREENS = ((52, 92, 36), (74, 116, 44), (40, 70, 30), (96, 130, 58))

# Thing-class draw probabilities; "rider" brings its bicycle or motorcycle along.
_THING_WEIGHTS = {"car": 0.36, "person": 0.24, "rider": 0.08, "bicycle": 0.08,
                  "motorcycle": 0.05, "truck": 0.07, "bus": 0.06, "train": 0.06}
# Farthest distance [m] per class, so most instances stay above ~100 px at 512x1024.
_MAX_DEPTH_M = {"car": 90.0, "person": 55.0, "rider": 60.0, "bicycle": 55.0,
                "motorcycle": 60.0, "truck": 100.0, "bus": 110.0, "train": 120.0}
# Nearest distance [m] of the long classes: closer, a side view spans several image widths,
# which costs drawing time and shows nothing but one color.
_MIN_DEPTH_M = {"truck": 7.0, "bus": 9.0, "train": 14.0}


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------


def render_frame(rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE
                 ) -> tuple[np.ndarray, dict]:
    """Draw one synthetic street scene and its Cityscapes polygon annotation.

    Args:
      rng: the only source of randomness; the same generator state gives the same frame.
      size: (height, width) [pixels], each at least ``MIN_SIZE``.

    Returns:
      image: [H, W, 3] uint8 RGB.
      annotation: a ``gtFine_polygons.json`` dict, ``{"imgHeight": H, "imgWidth": W,
        "objects": [{"label": name, "polygon": [[x, y], ...]}, ...]}`` with integer (x, y)
        pixel coordinates inside the image, objects in drawing order (later occludes earlier).
    """
    image, annotation, _ = _render(rng, _check_size(size))
    return image, annotation


def rasterize(annotation: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize a ``gtFine_polygons.json`` annotation exactly like cityscapesscripts.

    The rules are those of ``json2instanceImg`` and ``json2labelImg`` with ``"ids"``:
    objects are drawn in file order (later occludes earlier) with ``PIL.ImageDraw.polygon``,
    deleted objects are skipped, ``<class>group`` labels get the plain label id, classes with
    instances get ``label_id * 1000 + k`` with k counted from 0 per class in file order, and
    labels with a negative id (``license plate``) are not drawn. The result equals
    ``createInstanceImage(annotation, "ids")`` pixel for pixel; it is computed in one pass.

    Args:
      annotation: dict with ``imgHeight``, ``imgWidth`` and ``objects`` (each with
        ``label``, ``polygon`` [[x, y], ...] pixels, optional ``deleted``).

    Returns:
      instance_ids: [H, W] uint16, Cityscapes instance encoding, 0 = unlabeled.
      label_ids: [H, W] uint8, Cityscapes label ids;
        ``where(instance_ids >= 1000, instance_ids // 1000, instance_ids) == label_ids``.

    Raises:
      UserInputError: for a label that is not a Cityscapes class (the script exits there)
        or a polygon PIL cannot draw.
    """
    return _ids_from_index(annotation, _index_map(annotation))


def write_dataset(out_dir: str | os.PathLike, *, frames: int,
                  size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                  val_fraction: float = 0.25,
                  cities: Mapping[str, Sequence[str]] | None = None,
                  progress: bool = True) -> dict:
    """Write synthetic frames in the exact Cityscapes folder layout.

    Files, for each frame, with ``stem = <city>_<seq:06d>_000019``::

      leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png        [H, W, 3] uint8
      gtFine/<split>/<city>/<stem>_gtFine_polygons.json
      gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png      [H, W] uint16
      gtFine/<split>/<city>/<stem>_gtFine_labelIds.png         [H, W] uint8

    plus ``SUMMARY_FILE`` at the root. Frame ``i`` is drawn from
    ``np.random.default_rng([seed, i])``, so the same arguments give the same bytes. The last
    ``round(frames * val_fraction)`` frames form ``val``; with 2 or more frames each split
    gets at least one. Everything is written into a temporary sibling folder that replaces
    ``out_dir`` only when all frames succeeded.

    Args:
      out_dir: dataset root; must be missing, empty, or a previous output of this function
        (which is replaced).
      frames: number of frames, at least 1.
      size: (height, width) [pixels].
      seed: base seed, >= 0.
      val_fraction: share of frames in ``val``, in [0, 1].
      cities: split -> city names (lowercase letters and digits); default ``DEFAULT_CITIES``.
        Frames of a split go to its cities in turn.
      progress: show a tqdm progress bar.

    Returns:
      Summary (also written to ``SUMMARY_FILE``): ``size``, ``seed``, ``cities``,
      ``frames`` {split: count}, ``instances`` {split: {thing class: visible instances}} and
      ``groups`` {split: group regions}.

    Raises:
      UserInputError: for bad arguments or an ``out_dir`` that holds other files.
    """
    size = _check_size(size)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise UserInputError(f"frames must be a positive integer, got {frames!r}; "
                             "pass e.g. --frames 40")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserInputError(f"seed must be a non-negative integer, got {seed!r}; "
                             "pass e.g. --seed 0")
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise UserInputError(f"val_fraction must be in [0, 1], got {val_fraction!r}; "
                             "pass e.g. --val_fraction 0.25")
    cities = _check_cities(DEFAULT_CITIES if cities is None else cities)
    out = Path(out_dir)
    _check_out_dir(out)

    plan = _frame_plan(int(frames), float(val_fraction), cities)
    instances = {s: dict.fromkeys(THING_CLASSES, 0) for s in SPLITS}
    groups = dict.fromkeys(SPLITS, 0)
    thing_of_id = {name2label[n].id: n for n in THING_CLASSES}
    with atomic_path(out) as tmp:
        for i, (split, city, seq) in enumerate(tqdm(plan, desc="synth", unit="frame",
                                                    disable=not progress)):
            image, annotation, index = _render(np.random.default_rng([seed, i]), size)
            instance_ids, label_ids = _ids_from_index(annotation, index)
            stem = f"{city}_{seq:06d}_{FRAME_NUMBER:06d}"
            image_dir = tmp / "leftImg8bit" / split / city
            gt_dir = tmp / "gtFine" / split / city
            image_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            _write_png(image_dir / f"{stem}_leftImg8bit.png", image[..., ::-1])
            _write_png(gt_dir / f"{stem}_gtFine_instanceIds.png", instance_ids)
            _write_png(gt_dir / f"{stem}_gtFine_labelIds.png", label_ids)
            (gt_dir / f"{stem}_gtFine_polygons.json").write_text(_dump_json(annotation))
            for value in np.unique(instance_ids[instance_ids >= 1000]):
                instances[split][thing_of_id[int(value) // 1000]] += 1
            groups[split] += sum(o["label"].endswith(GROUP_SUFFIX)
                                 for o in annotation["objects"])
        summary = {
            "generator": __name__,
            "size": list(size),
            "seed": int(seed),
            "cities": {s: list(c) for s, c in cities.items()},
            "frames": {s: sum(p[0] == s for p in plan) for s in SPLITS},
            "instances": instances,
            "groups": groups,
        }
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def is_synthetic_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by :func:`write_dataset`."""
    return (Path(path) / SUMMARY_FILE).is_file()


# ----------------------------------------------------------------------------------------
# Rasterization (cityscapesscripts' rules)
# ----------------------------------------------------------------------------------------


def _object_codes(annotation: Mapping) -> list[tuple[int, int] | None]:
    """Per object: (instanceIds value, labelIds value), or None when it is not drawn."""
    counters: dict[str, int] = {}
    codes: list[tuple[int, int] | None] = []
    for obj in annotation["objects"]:
        if obj.get("deleted", 0):
            codes.append(None)
            continue
        name = str(obj["label"])
        is_group = False
        if name not in name2label and name.endswith(GROUP_SUFFIX):
            name, is_group = name[: -len(GROUP_SUFFIX)], True
        if name not in name2label:
            raise UserInputError(f"label {obj['label']!r} is not a Cityscapes class; "
                                 "use a name from cityscapesscripts.helpers.labels")
        label = name2label[name]
        if label.id < 0:
            codes.append(None)
            continue
        value = label.id
        if label.hasInstances and not is_group:
            value = label.id * 1000 + counters.get(name, 0)
            counters[name] = counters.get(name, 0) + 1
        codes.append((value, label.id))
    return codes


def _index_map(annotation: Mapping) -> np.ndarray:
    """[H, W] int32: 1 + index of the object that owns each pixel, 0 for none.

    PIL draws the polygons because cityscapesscripts does: OpenCV's fillPoly and PIL's
    polygon fill disagree on edge pixels, and the ground truth must be the official one.
    The footprint of a polygon does not depend on its fill value, so one pass with object
    indices gives every id image by a lookup.
    """
    canvas = Image.new("I", (int(annotation["imgWidth"]), int(annotation["imgHeight"])), 0)
    draw = ImageDraw.Draw(canvas)
    codes = _object_codes(annotation)
    for k, (obj, code) in enumerate(zip(annotation["objects"], codes, strict=True)):
        if code is None:
            continue
        try:
            draw.polygon([(p[0], p[1]) for p in obj["polygon"]], fill=k + 1)
        except (TypeError, ValueError) as err:
            raise UserInputError(
                f"object {k} ({obj['label']!r}) has a polygon PIL cannot draw ({err}); "
                "give it at least 2 [x, y] points") from None
    return np.asarray(canvas)


def _ids_from_index(annotation: Mapping, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lookup from an object-index map to (instance_ids uint16, label_ids uint8)."""
    codes = _object_codes(annotation)
    instance_lut = np.zeros(len(codes) + 1, np.uint16)
    label_lut = np.zeros(len(codes) + 1, np.uint8)
    for k, code in enumerate(codes):
        if code is not None:
            instance_lut[k + 1], label_lut[k + 1] = code
    return np.take(instance_lut, index), np.take(label_lut, index)


# ----------------------------------------------------------------------------------------
# Sprites and pieces
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """Where a sprite will stand, so it draws only what the image will show.

    Attributes:
      anchor: image (x, y) [px] of the canvas' bottom centre, or None for a free canvas.
      frame: image (H, W) [px] to clip the canvas to, or None for no clipping.
      mirror: draw facing left instead of right.
    """

    anchor: tuple[float, float] | None = None
    frame: tuple[int, int] | None = None
    mirror: bool = False


class _Sprite:
    """An object's look on a local canvas: colors plus its silhouette (alpha).

    Shapes are given in metres, x to the right from the canvas' left edge and y up from the
    ground line at the canvas' bottom, so the class proportions below read as real sizes.
    Parts drawn with ``solid=False`` only color the canvas (details inside the silhouette).
    With a clipping view only the visible window is allocated and OpenCV clips the drawing,
    so a near truck costs no more than the pixels it covers.

    Attributes:
      rgb: [h, w, 3] uint8 colors of the allocated window.
      alpha: [h, w] uint8, 255 inside the silhouette.
      x0, y0: image position [px] of the window's top-left pixel.
      extent: (x0, y0, x1, y1) image extent [px] of the whole, unclipped canvas.
      visible: False when the canvas lies entirely outside the frame.
    """

    def __init__(self, width_m: float, height_m: float, scale: float, color,
                 view: _View = _View()):
        self.scale = float(scale)
        w = max(1, int(np.ceil(width_m * scale)))
        h = max(1, int(np.ceil(height_m * scale)))
        left = top = 0
        if view.anchor is not None:
            left = round(view.anchor[0] - w / 2)
            top = round(view.anchor[1]) - h
        cx0, cy0, cx1, cy1 = 0, 0, w, h
        if view.frame is not None:
            cx0, cx1 = (min(max(v, 0), w) for v in (-left, view.frame[1] - left))
            cy0, cy1 = (min(max(v, 0), h) for v in (-top, view.frame[0] - top))
        self.extent = (left, top, left + w, top + h)
        self.visible = cx1 > cx0 and cy1 > cy0
        if not self.visible:  # a 1-pixel scratch canvas keeps the drawing calls valid
            cx1, cy1 = cx0 + 1, cy0 + 1
        self.x0, self.y0 = left + cx0, top + cy0
        self._rows = (cy0, cy1, h)
        self.rgb = np.empty((cy1 - cy0, cx1 - cx0, 3), np.uint8)
        self.rgb[:] = color
        self.alpha = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
        unit = self.scale * (1 << _SHIFT)
        self._gain = np.array([-unit if view.mirror else unit, -unit])
        self._offset = np.array([((w if view.mirror else 0) - cx0) * (1 << _SHIFT),
                                 height_m * unit - cy0 * (1 << _SHIFT)])

    def _fixed(self, points_m) -> np.ndarray:
        """[..., 2] metres (x, y up) -> [..., 2] int32 fixed-point window pixels (y down)."""
        return np.rint(np.asarray(points_m, np.float64) * self._gain + self._offset
                       ).astype(np.int32)

    def _px(self, metres: float) -> int:
        """A thickness [px], at least 1 so thin parts (poles, bike frames) never vanish."""
        return max(1, round(metres * self.scale))

    def polygon(self, points_m, color, solid: bool = True) -> None:
        """Fill a polygon [(x, y), ...] metres."""
        pts = [self._fixed(points_m)]
        cv2.fillPoly(self.rgb, pts, color, cv2.LINE_8, _SHIFT)
        if solid:
            cv2.fillPoly(self.alpha, pts, 255, cv2.LINE_8, _SHIFT)

    def polygons(self, polygons_m, color, solid: bool = True) -> None:
        """Fill many polygons [N, P, 2] metres of one color in one call (window grids)."""
        if len(polygons_m) == 0:
            return
        pts = list(self._fixed(polygons_m))
        cv2.fillPoly(self.rgb, pts, color, cv2.LINE_8, _SHIFT)
        if solid:
            cv2.fillPoly(self.alpha, pts, 255, cv2.LINE_8, _SHIFT)

    def box(self, x0, y0, x1, y1, color, solid: bool = True) -> None:
        """Fill the axis-aligned box [x0, x1] x [y0, y1] metres."""
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, solid)

    def disc(self, center_m, radius_m: float, color, solid: bool = True) -> None:
        """Fill a disc; centre (x, y) and radius in metres."""
        c = tuple(int(v) for v in self._fixed(center_m))
        r = max(1 << _SHIFT, round(radius_m * self.scale * (1 << _SHIFT)))
        cv2.circle(self.rgb, c, r, color, -1, cv2.LINE_8, _SHIFT)
        if solid:
            cv2.circle(self.alpha, c, r, 255, -1, cv2.LINE_8, _SHIFT)

    def bar(self, p0_m, p1_m, thickness_m: float, color, solid: bool = True) -> None:
        """A straight limb, tube or pole from p0 to p1 (x, y) metres."""
        a, b = (tuple(int(v) for v in q) for q in self._fixed([p0_m, p1_m]))
        t = self._px(thickness_m)
        cv2.line(self.rgb, a, b, color, t, cv2.LINE_8, _SHIFT)
        if solid:
            cv2.line(self.alpha, a, b, 255, t, cv2.LINE_8, _SHIFT)

    def shade(self, top: float = 1.08, bottom: float = 0.82) -> _Sprite:
        """Vertical light falloff: sky light from above, darker towards the ground."""
        cy0, cy1, h = self._rows
        ramp = np.linspace(top, bottom, h, dtype=np.float32)[cy0:cy1, None, None]
        self.rgb = cv2.convertScaleAbs(self.rgb * ramp)  # rounds and saturates to uint8
        return self

    def paste(self, src: _Sprite, dx: int, dy: int) -> None:
        """Draw ``src`` over this sprite, its top-left at canvas pixel (dx, dy) (groups)."""
        dx -= self.x0 - self.extent[0]
        dy -= self.y0 - self.extent[1]
        (h, w), (hd, wd) = src.alpha.shape, self.alpha.shape
        sx0, sy0, sx1, sy1 = max(0, -dx), max(0, -dy), min(w, wd - dx), min(h, hd - dy)
        if sx0 >= sx1 or sy0 >= sy1:
            return
        rows, cols = slice(dy + sy0, dy + sy1), slice(dx + sx0, dx + sx1)
        alpha = src.alpha[sy0:sy1, sx0:sx1]
        np.copyto(self.rgb[rows, cols], src.rgb[sy0:sy1, sx0:sx1], where=alpha[..., None] > 0)
        np.maximum(self.alpha[rows, cols], alpha, out=self.alpha[rows, cols])


@dataclass
class _Piece:
    """A sprite that becomes annotation objects labelled ``label``."""

    label: str
    sprite: _Sprite
    depth: float = 0.0  # metres; the scene draws standing objects far to near
    single: bool = True  # one polygon (an instance) or all components (stuff)


def _outlines(piece: _Piece, size: tuple[int, int]) -> list[list[list[int]]]:
    """Silhouette polygons [[x, y], ...] of a piece, clipped to the image.

    The silhouette is clipped before tracing so polygons stay inside the image, as in the
    real data. An instance keeps its largest part when the border splits it.
    """
    height, width = size
    s = piece.sprite
    h, w = s.alpha.shape
    ya, yb = max(0, -s.y0), min(h, height - s.y0)
    xa, xb = max(0, -s.x0), min(w, width - s.x0)
    if not s.visible or ya >= yb or xa >= xb:
        return []
    contours, _ = cv2.findContours(s.alpha[ya:yb, xa:xb], cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)
    polygons = []
    for contour in contours[:1] if piece.single else contours:
        poly = cv2.approxPolyDP(contour, _SIMPLIFY_PX, True)[:, 0, :]
        if len(poly) >= 3:
            polygons.append(np.add(poly, (s.x0 + xa, s.y0 + ya)).tolist())
    return polygons


def _pick(rng: np.random.Generator, options):
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _lowfreq(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]
             ) -> np.ndarray:
    """[h, w] float32 smooth noise, ~N(0, 1) per cell, bilinear between cells."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------------------
# Thing classes (side or front/rear views, facing right, metres)
# ----------------------------------------------------------------------------------------


def _wheel(s: _Sprite, x: float, r: float, rim: float = 0.55) -> None:
    """A tyre on the ground at x [m], radius r [m], with a lighter rim."""
    s.disc((x, r), r, _TIRE)
    s.disc((x, r), r * rim, _RIM, solid=False)


def _car(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A car, 1.4-1.6 m high: from behind or ahead (40 %), else from the side with
    cabin, windows and two wheels (3.9-4.8 m long)."""
    color = _pick(rng, _CAR_COLORS)
    height = rng.uniform(1.4, 1.6)
    if rng.random() < 0.4:  # seen from behind or ahead: driving along the street
        width = rng.uniform(1.7, 1.9)
        s = _Sprite(width, height, scale, color, view)
        u, v = width, height
        s.box(0.06 * u, 0.0, 0.22 * u, 0.16 * v, _TIRE)
        s.box(0.78 * u, 0.0, 0.94 * u, 0.16 * v, _TIRE)
        s.polygon([(0, 0.14 * v), (u, 0.14 * v), (u, 0.56 * v), (0.97 * u, 0.63 * v),
                   (0.03 * u, 0.63 * v), (0, 0.56 * v)], color)
        s.polygon([(0.1 * u, 0.6 * v), (0.2 * u, v), (0.8 * u, v), (0.9 * u, 0.6 * v)], color)
        s.polygon([(0.16 * u, 0.64 * v), (0.24 * u, 0.93 * v), (0.76 * u, 0.93 * v),
                   (0.84 * u, 0.64 * v)], _GLASS, solid=False)
        lamp = (210, 24, 24) if rng.random() < 0.6 else (246, 238, 206)
        s.box(0.04 * u, 0.42 * v, 0.2 * u, 0.52 * v, lamp, solid=False)
        s.box(0.8 * u, 0.42 * v, 0.96 * u, 0.52 * v, lamp, solid=False)
        s.box(0.38 * u, 0.26 * v, 0.62 * u, 0.35 * v, (232, 232, 226), solid=False)
        s.box(0, 0.14 * v, u, 0.22 * v, _DARK, solid=False)
        return s.shade()
    length = rng.uniform(3.9, 4.8)
    s = _Sprite(length, height, scale, color, view)
    u, v = length, height
    s.polygon([(0, 0.24 * v), (u, 0.24 * v), (u, 0.5 * v), (0.97 * u, 0.62 * v),
               (0.76 * u, 0.66 * v), (0.03 * u, 0.66 * v), (0, 0.58 * v)], color)
    s.polygon([(0.15 * u, 0.62 * v), (0.3 * u, v), (0.66 * u, v), (0.8 * u, 0.62 * v)], color)
    s.polygon([(0.2 * u, 0.65 * v), (0.32 * u, 0.93 * v), (0.47 * u, 0.93 * v),
               (0.47 * u, 0.65 * v)], _GLASS, solid=False)
    s.polygon([(0.5 * u, 0.65 * v), (0.5 * u, 0.93 * v), (0.64 * u, 0.93 * v),
               (0.75 * u, 0.65 * v)], _GLASS, solid=False)
    s.box(0, 0.24 * v, u, 0.32 * v, tuple(int(c * 0.6) for c in color), solid=False)
    s.box(0.97 * u, 0.44 * v, u, 0.54 * v, (250, 242, 210), solid=False)
    s.box(0, 0.44 * v, 0.02 * u, 0.54 * v, (210, 24, 24), solid=False)
    for x in (0.19 * u, 0.81 * u):
        s.disc((x, 0.24 * v), 0.26 * v, _DARK)
        _wheel(s, x, 0.22 * v)
    return s.shade()


def _truck(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A truck, 3.0-3.8 m high: a cargo box from behind (35 %), else cab plus box from
    the side on three wheels (6.5-9 m long)."""
    cab, cargo = _pick(rng, _TRUCK_CABS), _pick(rng, _TRUCK_BOXES)
    height = rng.uniform(3.0, 3.8)
    if rng.random() < 0.35:
        width = 2.5
        s = _Sprite(width, height, scale, cargo, view)
        s.box(0.15, 0, 0.75, 0.55, _TIRE)
        s.box(1.75, 0, 2.35, 0.55, _TIRE)
        s.box(0.05, 0.45, 2.45, 0.75, _DARK)
        s.box(0, 0.7, width, height, cargo)
        s.bar((1.25, 0.75), (1.25, height - 0.05), 0.05, _DARK, solid=False)
        s.box(0.1, 0.5, 0.4, 0.65, (210, 24, 24), solid=False)
        s.box(2.1, 0.5, 2.4, 0.65, (210, 24, 24), solid=False)
        return s.shade(1.04, 0.88)
    length = rng.uniform(6.5, 9.0)
    s = _Sprite(length, height, scale, cargo, view)
    box_end = length - 2.4
    s.box(0.3, 0.35, length - 0.2, 0.7, _DARK)
    s.box(0, 0.65, box_end, height, cargo)
    s.box(0.4, 0.55 * height, box_end - 0.4, 0.7 * height, cab, solid=False)
    cab_top = 0.82 * height
    s.polygon([(box_end + 0.1, 0.5), (length, 0.5), (length, 2.0), (length - 0.35, cab_top),
               (box_end + 0.1, cab_top)], cab)
    s.polygon([(length - 1.25, 1.75), (length - 0.45, 1.75), (length - 0.45, cab_top - 0.15),
               (length - 1.25, cab_top - 0.15)], _GLASS, solid=False)
    for x in (1.2, 2.3, length - 1.3):
        _wheel(s, x, 0.5)
    return s.shade(1.04, 0.86)


def _bus(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A city bus, 2.9-3.3 m high in an operator's colors: front (35 %) with a big
    windshield and destination sign, else the side with a window band, doors and two
    wheels (10.5-13 m long)."""
    body, accent = _pick(rng, _BUS_SCHEMES)
    height = rng.uniform(2.9, 3.3)
    if rng.random() < 0.35:
        width = 2.55
        s = _Sprite(width, height, scale, body, view)
        s.box(0.1, 0, 0.6, 0.45, _TIRE)
        s.box(1.95, 0, 2.45, 0.45, _TIRE)
        s.polygon([(0, 0.3), (width, 0.3), (width, height - 0.2), (width - 0.2, height),
                   (0.2, height), (0, height - 0.2)], body)
        s.box(0.12, 1.15, width - 0.12, height - 0.5, _GLASS, solid=False)
        s.box(0.35, height - 0.42, width - 0.35, height - 0.12, (255, 150, 0), solid=False)
        s.box(0, 0.55, width, 0.8, accent, solid=False)
        s.box(0.15, 0.85, 0.45, 0.98, (246, 238, 206), solid=False)
        s.box(width - 0.45, 0.85, width - 0.15, 0.98, (246, 238, 206), solid=False)
        return s.shade(1.05, 0.88)
    length = rng.uniform(10.5, 13.0)
    s = _Sprite(length, height, scale, body, view)
    s.polygon([(0, 0.35), (length, 0.35), (length, height - 0.18), (length - 0.18, height),
               (0.18, height), (0, height - 0.18)], body)
    s.box(0.3, 1.3, length - 0.2, height - 0.35, _GLASS, solid=False)
    pillars = np.arange(0.3, length - 0.2, rng.uniform(1.2, 1.6))
    s.polygons([[(x, 1.3), (x + 0.12, 1.3), (x + 0.12, height - 0.35), (x, height - 0.35)]
                for x in pillars], body, solid=False)
    s.box(0, 0.85, length, 1.1, accent, solid=False)
    for x0 in (length - 1.7, 0.5 * length - 0.5):
        s.box(x0, 0.45, x0 + 1.0, height - 0.4, _GLASS, solid=False)
        s.bar((x0 + 0.5, 0.45), (x0 + 0.5, height - 0.4), 0.06, body, solid=False)
    s.box(length - 1.8, height - 0.32, length - 0.3, height - 0.12, (255, 150, 0), solid=False)
    for x in (2.4, length - 2.6):
        s.disc((x, 0.5), 0.58, _DARK)
        _wheel(s, x, 0.5)
    return s.shade(1.05, 0.88)


def _train(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A tram, 3.3-3.6 m high with color stripes: front (30 %), else a 18-30 m long side
    with a window row, joints and bogies."""
    body, stripe = _pick(rng, _TRAIN_SCHEMES)
    height = rng.uniform(3.3, 3.6)
    if rng.random() < 0.3:
        width = 2.65
        s = _Sprite(width, height, scale, body, view)
        s.polygon([(0, 0.2), (width, 0.2), (width, height - 0.5), (width - 0.5, height),
                   (0.5, height), (0, height - 0.5)], body)
        s.polygon([(0.15, 1.5), (width - 0.15, 1.5), (width - 0.35, height - 0.35),
                   (0.35, height - 0.35)], _GLASS, solid=False)
        s.box(0, 0.6, width, 1.0, stripe, solid=False)
        s.box(0, 0.2, width, 0.45, _DARK, solid=False)
        s.disc((0.4, 1.2), 0.12, (250, 246, 220), solid=False)
        s.disc((width - 0.4, 1.2), 0.12, (250, 246, 220), solid=False)
        return s.shade(1.04, 0.9)
    length = rng.uniform(18.0, 30.0)
    s = _Sprite(length, height, scale, body, view)
    for x in np.arange(1.5, length - 1.0, 6.0):
        s.box(x, 0.0, x + 2.2, 0.5, _DARK)
    s.polygon([(0, 0.4), (length, 0.4), (length, height - 0.3), (length - 0.4, height),
               (0.4, height), (0, height - 0.3)], body)
    pitch = rng.uniform(1.7, 2.2)
    s.polygons([[(x, 1.35), (x + pitch - 0.35, 1.35), (x + pitch - 0.35, 2.55), (x, 2.55)]
                for x in np.arange(0.6, length - pitch, pitch)], _GLASS, solid=False)
    s.box(0, 0.7, length, 1.05, stripe, solid=False)
    s.box(0, height - 0.45, length, height - 0.25, stripe, solid=False)
    for x in (length / 3, 2 * length / 3):
        s.bar((x, 0.4), (x, height), 0.15, _DARK, solid=False)
    return s.shade(1.04, 0.9)


def _bicycle(rng: np.random.Generator, scale: float, view: _View = _View(),
             height: float = 1.1) -> _Sprite:
    """A bicycle 1.78 m long: two wheels, a thin diamond frame, saddle and handlebar.

    ``height`` [m] is the canvas height, taller when a rider shares the canvas.
    """
    frame = _pick(rng, _SHIRTS)
    s = _Sprite(1.78, height, scale, (120, 120, 120), view)
    for x in (0.36, 1.4):
        s.disc((x, 0.34), 0.34, _TIRE)
        s.disc((x, 0.34), 0.3, (118, 118, 116), solid=False)
        s.bar((x - 0.3, 0.34), (x + 0.3, 0.34), 0.02, _RIM, solid=False)
        s.bar((x, 0.04), (x, 0.64), 0.02, _RIM, solid=False)
    bb, saddle, head = (0.82, 0.3), (0.68, 0.9), (1.26, 0.86)
    for a, b in ((bb, saddle), (saddle, head), (bb, head), (bb, (0.36, 0.34)),
                 (saddle, (0.36, 0.34)), (head, (1.4, 0.34)), (head, (1.22, 1.02))):
        s.bar(a, b, 0.045, frame)
    s.bar((0.58, 0.93), (0.76, 0.93), 0.06, _DARK)
    s.bar((1.16, 1.02), (1.32, 1.02), 0.04, _DARK)
    return s


def _motorcycle(rng: np.random.Generator, scale: float, view: _View = _View(),
                height: float = 1.15) -> _Sprite:
    """A motorcycle 2.1 m long: thick tyres, engine, seat, colored tank, fork, lamp.

    ``height`` [m] is the canvas height, taller when a rider shares the canvas.
    """
    tank = _pick(rng, _CAR_COLORS)
    s = _Sprite(2.1, height, scale, _DARK, view)
    for x in (0.36, 1.74):
        _wheel(s, x, 0.31, rim=0.6)
    s.polygon([(0.7, 0.25), (1.3, 0.25), (1.38, 0.56), (0.74, 0.6)], (70, 70, 74))
    s.polygon([(0.2, 0.62), (1.0, 0.68), (1.0, 0.8), (0.25, 0.74)], _TIRE)
    s.polygon([(0.95, 0.64), (1.38, 0.62), (1.45, 0.82), (1.02, 0.88)], tank)
    s.bar((1.74, 0.31), (1.55, 1.0), 0.07, _RIM)
    s.bar((1.45, 1.02), (1.65, 1.05), 0.05, _DARK)
    s.bar((0.36, 0.31), (0.85, 0.42), 0.08, _DARK)
    s.bar((0.4, 0.28), (0.95, 0.3), 0.07, _RIM, solid=False)
    s.disc((1.72, 0.82), 0.08, (250, 242, 210))
    return s


def _human(s: _Sprite, rng: np.random.Generator, hip, shoulder, head, head_r: float,
           knees, feet, hands, helmet=None) -> None:
    """Person limbs and torso on a sprite: torso bar, legs, arms, head with hair or helmet."""
    skin, hair = _pick(rng, _SKIN), _pick(rng, _HAIR)
    shirt, pants = _pick(rng, _SHIRTS), _pick(rng, _PANTS)
    for knee, foot in zip(knees, feet, strict=True):
        s.bar(hip, knee, 0.13, pants)
        s.bar(knee, foot, 0.11, pants)
        s.bar(foot, (foot[0] + 0.08, foot[1]), 0.06, _DARK)
    s.bar(hip, shoulder, 0.34, shirt)
    for hand in hands:
        s.bar(shoulder, hand, 0.08, shirt)
        s.disc(hand, 0.045, skin)
    if helmet is None:
        s.disc((head[0], head[1] + 0.2 * head_r), head_r, hair)
        s.disc((head[0] + 0.15 * head_r, head[1] - 0.1 * head_r), 0.85 * head_r, skin)
    else:
        s.disc(head, head_r, helmet)
        s.box(head[0], head[1] - 0.2 * head_r, head[0] + head_r, head[1] + 0.3 * head_r,
              _GLASS, solid=False)


def _person(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A pedestrian 1.55-1.9 m tall, upright and thin, with a walking stride."""
    height = rng.uniform(1.55, 1.9)
    s = _Sprite(0.7, height, scale, _pick(rng, _PANTS), view)
    stride, swing = rng.uniform(0.0, 0.18), rng.uniform(0.0, 0.14)
    hip, shoulder = (0.35, 0.52 * height), (0.35, 0.8 * height)
    knees = [(0.35 - stride / 2, 0.28 * height), (0.35 + stride / 2, 0.28 * height)]
    feet = [(0.35 - stride, 0.03), (0.35 + stride, 0.03)]
    hands = [(0.35 - swing, 0.48 * height), (0.35 + swing, 0.48 * height)]
    head_r = 0.065 * height
    _human(s, rng, hip, shoulder, (0.35, height - head_r - 0.01), head_r, knees, feet, hands)
    return s.shade(1.05, 0.92)


def _rider_pair(rng: np.random.Generator, scale: float, view: _View
                ) -> list[tuple[str, _Sprite]]:
    """A bicycle or motorcycle and its rider, on canvases of one size and placement."""
    canvas_h = 1.9
    if rng.random() < 0.6:
        vehicle, length = "bicycle", 1.78
        ride = _bicycle(rng, scale, view, canvas_h)
        hip, shoulder, head = (0.66, 1.0), (0.98, 1.52), (1.06, 1.7)
        knees, feet, hands = [(0.98, 0.72)], [(0.86, 0.2)], [(1.24, 1.03)]
        helmet = None if rng.random() < 0.6 else _pick(rng, _SHIRTS)
    else:
        vehicle, length = "motorcycle", 2.1
        ride = _motorcycle(rng, scale, view, canvas_h)
        hip, shoulder, head = (0.86, 0.9), (1.14, 1.45), (1.22, 1.62)
        knees, feet, hands = [(1.25, 0.74)], [(1.14, 0.36)], [(1.5, 1.04)]
        helmet = _pick(rng, _CAR_COLORS)
    rider = _Sprite(length, canvas_h, scale, _pick(rng, _PANTS), view)
    _human(rider, rng, hip, shoulder, head, 0.12, knees, feet, hands, helmet)
    return [(vehicle, ride), ("rider", rider)]


_THING_DRAWERS = {"car": _car, "truck": _truck, "bus": _bus, "train": _train,
                  "person": _person, "bicycle": _bicycle, "motorcycle": _motorcycle}


def _group(rng: np.random.Generator, scale: float, view: _View) -> tuple[str, _Sprite]:
    """A crowd region: several members overlapping so that they read as one blob."""
    name = _pick(rng, ("car", "car", "person", "person", "bicycle"))
    members = [_THING_DRAWERS[name](rng, scale, _View(mirror=bool(rng.random() < 0.5)))
               for _ in range(int(rng.integers(3, 6)))]
    step = 0.55 if name == "car" else 0.4
    offsets = [0]
    for m in members[:-1]:
        offsets.append(offsets[-1] + max(1, int(m.rgb.shape[1] * rng.uniform(step, step + 0.3))))
    width = max(o + m.rgb.shape[1] for o, m in zip(offsets, members, strict=True))
    height = max(m.rgb.shape[0] for m in members)
    group = _Sprite(width / scale, height / scale, scale, members[0].rgb[0, 0], view)
    for o, m in zip(offsets, members, strict=True):
        group.paste(m, o, height - m.rgb.shape[0])
    return name + GROUP_SUFFIX, group


def _pole_with(rng: np.random.Generator, scale: float, view: _View
               ) -> list[tuple[str, _Sprite]]:
    """A pole carrying a traffic sign or a traffic light: two objects on one canvas."""
    is_light = rng.random() < 0.4
    pole_h = rng.uniform(3.3, 4.3) if is_light else rng.uniform(2.2, 3.0)
    top = pole_h + (0.95 if is_light else 0.7)
    pole = _Sprite(0.8, top, scale, (120, 120, 124), view)
    pole.bar((0.4, 0.0), (0.4, pole_h), 0.1, (120, 120, 124))
    item = _Sprite(0.8, top, scale, (40, 40, 40), view)
    if is_light:
        item.rgb[:] = _pick(rng, ((40, 40, 40), (200, 170, 30)))
        item.box(0.25, pole_h - 0.1, 0.55, top - 0.05, item.rgb[0, 0].tolist())
        lit = int(rng.integers(3))
        for j, lamp in enumerate(((230, 30, 30), (240, 170, 20), (40, 210, 90))):
            y = top - 0.22 - 0.27 * j
            item.disc((0.4, y), 0.09, lamp if j == lit else (60, 60, 60), solid=False)
        return [("pole", pole), ("traffic light", item)]
    kind = int(rng.integers(3))
    center = (0.4, pole_h + 0.3)
    if kind == 0:
        item.disc(center, 0.3, (200, 24, 30))
        item.disc(center, 0.22, (240, 240, 240), solid=False)
    elif kind == 1:
        item.polygon([(0.1, pole_h + 0.05), (0.7, pole_h + 0.05), (0.4, pole_h + 0.6)],
                     (200, 24, 30))
        item.polygon([(0.2, pole_h + 0.12), (0.6, pole_h + 0.12), (0.4, pole_h + 0.47)],
                     (240, 240, 240), solid=False)
    else:
        item.box(0.1, pole_h, 0.7, pole_h + 0.6, (24, 78, 170))
        item.box(0.18, pole_h + 0.08, 0.62, pole_h + 0.52, (240, 240, 240), solid=False)
        item.box(0.24, pole_h + 0.14, 0.56, pole_h + 0.46, (24, 78, 170), solid=False)
    return [("pole", pole), ("traffic sign", item)]


def _tree(rng: np.random.Generator, scale: float, view: _View = _View()) -> _Sprite:
    """A street tree: trunk and a ragged crown of mixed greens (label vegetation)."""
    r = rng.uniform(1.6, 3.0)
    trunk_h = rng.uniform(2.2, 3.2)
    green = np.asarray(_pick(rng, _GREENS))
    s = _Sprite(2 * r + 0.4, trunk_h + 2 * r, scale, tuple(int(c) for c in green), view)
    s.bar((r + 0.2, 0.0), (r + 0.2, trunk_h + r), 0.3, (80, 62, 46))
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radii = r * (1 - 0.15 * rng.random(24))
    cx, cy = r + 0.2, trunk_h + r
    s.polygon(np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1),
              tuple(int(c) for c in green))
    for _ in range(14):
        a, d = rng.uniform(0, 2 * np.pi), r * np.sqrt(rng.random()) * 0.8
        tone = np.clip(green * rng.uniform(0.6, 1.35), 0, 255).astype(int)
        s.disc((cx + d * np.cos(a), cy + d * np.sin(a)), r * rng.uniform(0.15, 0.35),
               tuple(int(c) for c in tone), solid=False)
    return s


# ----------------------------------------------------------------------------------------
# The scene
# ----------------------------------------------------------------------------------------


@dataclass
class _Camera:
    """Pinhole camera over a flat road; X right, Z forward [m], image (x, y) [px]."""

    height: int
    width: int
    focal: float
    horizon: float
    vanish_x: float

    def point(self, x_m, z_m, up_m=0.0):
        """Image (x, y) of the world point (X, Z) at ``up_m`` above the road."""
        z_m = np.asarray(z_m, np.float64)
        return (self.vanish_x + self.focal * np.asarray(x_m) / z_m,
                self.horizon + self.focal * (_CAM_HEIGHT_M - np.asarray(up_m)) / z_m)

    def depth_of_row(self, y: float) -> float:
        """Depth [m] of the road at image row y (below the horizon)."""
        return self.focal * _CAM_HEIGHT_M / (y - self.horizon)


def _frame_layer(cam: _Camera, label: str, color, rows: tuple[int, int] | None = None
                 ) -> _Piece:
    """A stuff piece on whole image rows [y0, y1), drawn in pixels.

    Every layer that is drawn on ends at the image's bottom row, so its sprite coordinates
    are (image x, H - image y).
    """
    y0, y1 = rows if rows is not None else (0, cam.height)
    sprite = _Sprite(cam.width, y1 - y0, 1.0, color, _View(anchor=(cam.width / 2, y1)))
    return _Piece(label, sprite, single=False)


def _quads(a0, b0, size_a: float, size_b: float) -> np.ndarray:
    """[N, 4, 2] axis-aligned rectangles with lower corners at every (a0, b0) pair."""
    a, b = (g.ravel() for g in np.meshgrid(np.asarray(a0, np.float64),
                                           np.asarray(b0, np.float64), indexing="ij"))
    return np.stack([np.stack(c, -1) for c in ((a, b), (a + size_a, b),
                                               (a + size_a, b + size_b), (a, b + size_b))], 1)


def _stuff(rng: np.random.Generator, cam: _Camera, street: dict) -> list[_Piece]:
    """Sky, road, sidewalks and buildings: the frame's background, back to front.

    Both sidewalks share one layer and all facades another; each layer yields one polygon
    per connected region, as stuff is annotated in the real data.
    """
    h = cam.height
    y_h = round(cam.horizon)

    def px(x_m, z_m, up_m=0.0):
        """World points (X, Z, up) [m] -> [..., 2] points of a frame layer's sprite."""
        xs, ys = cam.point(x_m, z_m, up_m)
        return np.stack(np.broadcast_arrays(xs, h - ys), -1)

    def wall(x_m, z0, z1, top):
        """Quad of a vertical wall along the street at X = x_m, from Z = z0 to z1."""
        return px(x_m, np.array([z0, z1, z1, z0]), np.array([0.0, 0.0, top, top]))

    overcast = rng.random() < 0.3
    sky_top = np.array((150, 160, 170) if overcast else (70, 130, 200), np.float32)
    sky_low = np.array((205, 210, 215) if overcast else (190, 215, 240), np.float32)
    sky = _frame_layer(cam, "sky", 0, (0, y_h + 1))
    t = np.linspace(0, 1, sky.sprite.rgb.shape[0], dtype=np.float32)[:, None, None]
    clouds = 18 * _lowfreq(rng, sky.sprite.alpha.shape, (4, 8))[..., None]
    sky.sprite.rgb[:] = np.clip(sky_top * (1 - t) + sky_low * t + clouds, 0, 255)
    sky.sprite.alpha[:] = 255

    gray = rng.uniform(70, 110)
    road = _frame_layer(cam, "road", (int(gray), int(gray), int(gray + 4)), (y_h, h))
    road.sprite.alpha[:] = 255
    near = cam.depth_of_row(h + 4 * (h - cam.horizon))  # well below the bottom row
    dashes = _quads(np.asarray(street["lanes"]) - 0.08, np.arange(near, 160.0, 9.0), 0.16, 3.0)
    road.sprite.polygons(px(dashes[..., 0], dashes[..., 1]), (225, 225, 220), solid=False)

    walks = _frame_layer(cam, "sidewalk", 0, (y_h, h))
    buildings = _frame_layer(cam, "building", 0)
    left, right, end = street["base"][-1], street["base"][1], street["end"]
    top = rng.uniform(10.0, 30.0)
    back_color = _pick(rng, _FACADES)
    buildings.sprite.polygon(px(np.array([left, right, right, left]), end,
                                np.array([0.0, 0.0, top, top])), back_color)
    windows = _quads(np.arange(left + 1, right - 2, 2.8), np.arange(3.2, top - 1.5, 3.0), 1.3, 1.6)
    buildings.sprite.polygons(px(windows[..., 0], end, windows[..., 1]), _GLASS, solid=False)
    for side in (-1, 1):
        curb, base = street["curb"][side], street["base"][side]
        walk_gray = rng.uniform(140, 190)
        tint = np.asarray(_pick(rng, ((1.0, 1.0, 1.0), (1.05, 0.95, 0.9), (0.95, 0.97, 1.0))))
        far_out = base + side * 40.0
        walks.sprite.polygon(px(np.array([curb, curb, far_out, far_out]),
                                np.array([near, 2000.0, 2000.0, near])),
                             tuple(int(c) for c in walk_gray * tint))
        kerb = curb + side * 0.25
        walks.sprite.polygon(px(np.array([curb, curb, kerb, kerb]),
                                np.array([near, 2000.0, 2000.0, near])), (205, 205, 200),
                             solid=False)
        joints = _quads(min(curb, far_out), np.arange(near, 120.0, 2.5), abs(far_out - curb), 0.05)
        walks.sprite.polygons(px(joints[..., 0], joints[..., 1]),
                              tuple(int(c) for c in 0.8 * walk_gray * tint), solid=False)
        z = near
        while z < end:
            z1 = min(end, z + rng.uniform(8.0, 25.0))
            top = rng.uniform(8.0, 24.0)
            color = np.clip(np.asarray(_pick(rng, _FACADES)) * rng.uniform(0.85, 1.1), 0, 255)
            buildings.sprite.polygon(wall(base, z, z1, top), tuple(int(c) for c in color))
            windows = _quads(np.arange(z + 0.8, z1 - 1.6, 2.8), np.arange(3.2, top - 1.5, 3.0),
                             1.3, 1.6)
            buildings.sprite.polygons(px(base, windows[..., 0], windows[..., 1]), _GLASS,
                                      solid=False)
            buildings.sprite.polygon(wall(base, z, z1, 0.6),
                                     tuple(int(c) for c in 0.7 * color), solid=False)
            z = z1
    return [sky, road, walks, buildings]


def _things(rng: np.random.Generator, cam: _Camera, street: dict) -> list[_Piece]:
    """Thing instances, a group now and then, poles and trees, unsorted."""
    size = (cam.height, cam.width)
    near = max(4.0, cam.depth_of_row(cam.height + 0.1 * (cam.height - cam.horizon)))
    names = list(_THING_WEIGHTS)
    weights = np.asarray([_THING_WEIGHTS[n] for n in names])
    weights /= weights.sum()
    road_l, road_r = street["curb"][-1], street["curb"][1]
    walk_l, walk_r = street["base"][-1], street["base"][1]
    pieces: list[_Piece] = []
    boxes: list[tuple[int, int, int, int]] = []

    def sample_depth(far: float, nearest: float = 0.0) -> float:
        """Log-uniform depth [m]: as many objects per depth octave, so most are far."""
        return float(np.exp(rng.uniform(np.log(max(near, nearest)), np.log(far))))

    def view(x_m: float, z_m: float, mirror: bool = False) -> _View:
        x, y = cam.point(x_m, z_m)
        return _View((float(x), float(y)), size, mirror)

    def free(sprite: _Sprite) -> bool:
        """Reject a placement off the image, or one that would hide most of another."""
        if not sprite.visible:
            return False
        x0, y0, x1, y1 = sprite.extent
        area = (x1 - x0) * (y1 - y0)
        for bx0, by0, bx1, by1 in boxes:
            inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
            if inter > 0.6 * min(area, (bx1 - bx0) * (by1 - by0)):
                return False
        boxes.append(sprite.extent)
        return True

    trains = 0
    for _ in range(int(rng.integers(6, 20))):
        name = names[int(rng.choice(len(names), p=weights))]
        if name == "train" and trains:
            name = "car"  # one tram per street is plenty
        trains += name == "train"
        # Now and then a far, tiny one: real ground truth has many that the official
        # evaluator ignores (< 100 px), and the pipelines must cope with them.
        far = _MAX_DEPTH_M[name] * (3.0 if rng.random() < 0.1 else 1.0)
        for _attempt in range(8):
            z = sample_depth(far, _MIN_DEPTH_M.get(name, 0.0))
            if name == "person" and rng.random() < 0.75:
                x = (rng.uniform(walk_l + 0.4, road_l - 0.3) if rng.random() < 0.5 else
                     rng.uniform(road_r + 0.3, walk_r - 0.4))
            elif name == "person":
                x = rng.uniform(road_l, road_r)
            elif name in ("rider", "bicycle", "motorcycle"):
                x = (rng.uniform(road_l + 0.3, road_l + 2.5) if rng.random() < 0.5 else
                     rng.uniform(road_r - 2.5, road_r - 0.3))
            elif name == "train":
                x = rng.uniform(-1.5, 1.5)
            else:
                x = rng.uniform(road_l + 1.0, road_r - 1.0)
            v = view(x, z, bool(rng.random() < 0.5))
            if name == "rider":
                sprites = _rider_pair(rng, cam.focal / z, v)
            else:
                sprites = [(name, _THING_DRAWERS[name](rng, cam.focal / z, v))]
            if free(sprites[0][1]):
                pieces += [_Piece(n, sp, z) for n, sp in sprites]
                break

    if rng.random() < 0.35:
        z = rng.uniform(18.0, 60.0)
        label, sprite = _group(rng, cam.focal / z, view(rng.uniform(road_l, road_r), z))
        pieces.append(_Piece(label, sprite, z))
    for _ in range(int(rng.integers(2, 7))):
        side = -1 if rng.random() < 0.5 else 1
        z = sample_depth(80.0)
        v = view(street["curb"][side] + side * rng.uniform(0.4, 1.2), z)
        pieces += [_Piece(n, sp, z, single=False) for n, sp in _pole_with(rng, cam.focal / z, v)]
    for _ in range(int(rng.integers(0, 6))):
        side = -1 if rng.random() < 0.5 else 1
        z = sample_depth(90.0)
        v = view(street["curb"][side] + side * rng.uniform(0.8, 2.0), z)
        pieces.append(_Piece("vegetation", _tree(rng, cam.focal / z, v), z, single=False))
    return pieces


def _ego_vehicle(rng: np.random.Generator, cam: _Camera) -> _Piece:
    """The hood at the bottom of the frame, as Cityscapes' 'ego vehicle' void region."""
    h, w = cam.height, cam.width
    rise = rng.uniform(0.05, 0.1) * h
    piece = _frame_layer(cam, "ego vehicle", (30, 32, 36), (int(h - rise) - 1, h))
    xs = np.linspace(0, w, 17)
    arch = rise * (1 - 0.4 * ((xs - w / 2) / (w / 2)) ** 2)
    piece.sprite.polygon(np.concatenate([[[0, 0]], np.stack([xs, arch], 1), [[w, 0]]]),
                         (30, 32, 36))
    piece.sprite.shade(1.6, 0.8)  # the hood mirrors the bright sky at its far edge
    return piece


def _render(rng: np.random.Generator, size: tuple[int, int]
            ) -> tuple[np.ndarray, dict, np.ndarray]:
    """(image [H,W,3] uint8, annotation dict, object-index map [H,W] int32) of one frame."""
    height, width = size
    cam = _Camera(height, width, _FOCAL_PER_WIDTH * width, height * rng.uniform(0.36, 0.46),
                  width * rng.uniform(0.4, 0.6))
    road_l, road_r = -rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0)
    street = {
        "curb": {-1: road_l, 1: road_r},
        "base": {-1: road_l - rng.uniform(2.5, 5.0), 1: road_r + rng.uniform(2.5, 5.0)},
        "lanes": list(np.arange(road_l + 3.5, road_r - 1.0, 3.5)),
        "end": rng.uniform(90.0, 200.0),
    }
    pieces = _stuff(rng, cam, street)
    standing = _things(rng, cam, street)
    standing.sort(key=lambda p: -p.depth)  # stable: a rider stays after its vehicle
    pieces += standing
    if rng.random() < 0.5:
        pieces.append(_ego_vehicle(rng, cam))

    objects, owners = [], []
    for piece in pieces:
        for polygon in _outlines(piece, size):
            objects.append({"label": piece.label, "polygon": polygon})
            owners.append(piece.sprite)
    annotation = {"imgHeight": int(height), "imgWidth": int(width), "objects": objects}
    index = _index_map(annotation)

    # Paint through the official raster, so every pixel shows the object it is labelled.
    image = np.zeros((height, width, 3), np.uint8)
    for k, (obj, sprite) in enumerate(zip(objects, owners, strict=True)):
        poly = np.asarray(obj["polygon"])
        x0, y0 = poly.min(0)
        x1, y1 = poly.max(0) + 1
        sel = index[y0:y1, x0:x1] == k + 1
        src = sprite.rgb[y0 - sprite.y0:y1 - sprite.y0, x0 - sprite.x0:x1 - sprite.x0]
        np.copyto(image[y0:y1, x0:x1], src, where=sel[..., None])
    # Camera look: soft edges, uneven light, sensor noise. None of it moves a label.
    light = 1.0 + 0.08 * _lowfreq(rng, (height, width), (3, 6))
    noise = rng.integers(-5, 6, size=(height, width), dtype=np.int16).astype(np.float32)
    out = cv2.GaussianBlur(image, (3, 3), 0.6).astype(np.float32)
    out *= light[..., None]
    out += noise[..., None]
    return np.clip(out, 0, 255, out=out).astype(np.uint8), annotation, index


# ----------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UserInputError(f"size {size!r} is not (height, width); pass e.g. 512x1024") from None
    if h < MIN_SIZE or w < MIN_SIZE:
        raise UserInputError(f"size {h}x{w} is too small; use at least {MIN_SIZE}x{MIN_SIZE}")
    return h, w


def _check_cities(cities: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    if set(cities) != set(SPLITS):
        raise UserInputError(f"cities must name exactly the splits {list(SPLITS)}, got "
                             f"{sorted(cities)}; e.g. {{'train': ['a'], 'val': ['b']}}")
    out = {s: tuple(cities[s]) for s in SPLITS}
    for split, names in out.items():
        bad = [n for n in names if not isinstance(n, str) or not _CITY_RE.match(n)]
        if not names or bad:
            raise UserInputError(f"cities[{split!r}] needs names of lowercase letters and "
                                 f"digits (no '_'), got {list(names)}")
    if set(out["train"]) & set(out["val"]):
        raise UserInputError(f"train and val cities overlap: "
                             f"{sorted(set(out['train']) & set(out['val']))}; make them disjoint")
    return out


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out} is a file; pass a folder path as --out")
    if out.is_dir() and any(out.iterdir()) and not is_synthetic_dataset(out):
        raise UserInputError(f"{out} is not empty and holds no {SUMMARY_FILE}; pass an empty "
                             "or new folder as --out (a previous synth output is replaced)")


def _frame_plan(frames: int, val_fraction: float, cities: Mapping[str, Sequence[str]]
                ) -> list[tuple[str, str, int]]:
    """(split, city, sequence number) per frame; val takes the last frames."""
    n_val = round(frames * val_fraction)
    n_val = min(max(n_val, 1), frames - 1) if frames >= 2 else 0
    plan = []
    for split, n in (("train", frames - n_val), ("val", n_val)):
        names = cities[split]
        plan += [(split, names[j % len(names)], j // len(names)) for j in range(n)]
    return plan


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array, _PNG_PARAMS):
        raise OSError(f"could not write {path}")


def _dump_json(annotation: Mapping) -> str:
    """One object per line: diffable, deterministic, and far smaller than indent=4."""
    lines = [json.dumps(o, sort_keys=True, separators=(", ", ": "))
             for o in annotation["objects"]]
    head = json.dumps({"imgHeight": annotation["imgHeight"],
                       "imgWidth": annotation["imgWidth"]}, sort_keys=True)[:-1]
    return head + ', "objects": [\n' + ",\n".join(lines) + "\n]}\n"
