"""Masks to polygons with holes and several parts, and the annotation formats they go to.

**Coordinates.** Points are ``(x, y)`` = (column, row) in pixels, and integer coordinates
are pixel **centres**: the polygons OpenCV traces run through the centres of the mask's
boundary pixels. A polygon covers every pixel whose centre lies inside it or on its
outline, and not strictly inside one of its holes. Under that rule
:func:`polygons_to_mask` gives the traced mask back exactly (tolerance 0), and so do
Cityscapes' and labelme's rasterisers (PIL fills a polygon with its outline).

**Structure.** :func:`mask_to_polygons` returns one :class:`Polygon` per 8-connected part
of the mask: an exterior ring and the rings of its holes (4-connected background regions
enclosed by the part). A part inside a hole is a polygon of its own. Rings are open (the
first point is not repeated) and may be degenerate: a 1-pixel part has a 1-point ring, a
1-pixel-wide line a 2-point one.

**Simplification.** ``tolerance_px`` is the Douglas-Peucker bound of
``cv2.approxPolyDP``. :func:`mask_to_polygons_with_report` also measures the largest
distance from a traced boundary pixel centre to its simplified ring, so a caller can show
the bound was kept.

**Holes in hole-less formats.** Cityscapes, labelme and COCO polygons have no holes. The
writers join each hole to its part by a zero-width *bridge* (:func:`bridge_holes`): the
ring runs straight up from the hole's topmost vertex to the first edge above it, around
the hole, and back down the same segment. The bridge's two edges cancel under even-odd
filling, so the ring fills exactly the part minus its holes; at tolerance 0 the bridge
runs through the object's own pixels, so Cityscapes' ``createInstanceImage`` and
labelme's ``shapes_to_label`` give the mask back pixel for pixel. Unlike writing holes as
later "unlabeled" objects, a bridge does not erase what earlier objects drew under the
hole.

At ``tolerance_px > 0`` every ring is simplified on its own, so a wall or a hole thinner
than the tolerance can make rings touch or cross, or collapse a ring to 2 points; the
even-odd region is still well defined, but rasterisers then differ by a few pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from pycocotools import mask as coco_mask
from skimage.morphology import remove_small_holes, remove_small_objects

from dcme_keras import classes
from dcme_keras.errors import UserInputError

#: The labelme file-format version written; labelme 5 and 6 read this shape schema.
LABELME_VERSION = "5.5.0"
COCO_MODES = ("rle", "polygon")

# cv2.fillPoly draws sub-pixel vertices in fixed point with this many fraction bits.
_SHIFT = 8


@dataclass(eq=False)
class Polygon:
    """One part of a mask: an outer ring and the rings of its holes.

    Attributes:
      exterior: ``[P, 2]`` float64, ``(x, y)`` pixel centres, open ring.
      holes: list of ``[Q, 2]`` float64 rings, same convention.
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)


@dataclass(eq=False)
class LabeledObject:
    """An object to write: its class name, its polygons and an optional score.

    Attributes:
      label: class name, e.g. ``"car"`` (Cityscapes names for the Cityscapes writer).
      polygons: the object's parts, as :func:`mask_to_polygons` returns them.
      score: confidence in [0, 1], written where the format has a place for it.
    """

    label: str
    polygons: list[Polygon]
    score: float | None = None


def mask_to_polygons(mask: np.ndarray, *, tolerance_px: float = 1.0, min_area: int = 0,
                     min_hole_area: int = 0) -> list[Polygon]:
    """Trace a binary mask into polygons with holes, simplified within a bound.

    Args:
      mask: ``[H, W]`` bool (or any dtype; nonzero is foreground).
      tolerance_px: Douglas-Peucker tolerance [px]; 0 keeps every corner, which
        :func:`polygons_to_mask` turns back into ``mask`` exactly.
      min_area: parts (8-connected) of fewer pixels are dropped [px].
      min_hole_area: holes (4-connected) of fewer pixels are filled [px].

    Returns:
      One :class:`Polygon` per part, in OpenCV's contour order; ``[]`` for an empty mask.

    Example:
      >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
      >>> mask_to_polygons(m, tolerance_px=0)[0].exterior.tolist()
      [[1.0, 1.0], [1.0, 3.0], [3.0, 3.0], [3.0, 1.0]]
    """
    return _trace(mask, tolerance_px, min_area, min_hole_area, measure=False)[0]


def mask_to_polygons_with_report(mask: np.ndarray, *, tolerance_px: float = 1.0,
                                 min_area: int = 0,
                                 min_hole_area: int = 0) -> tuple[list[Polygon], float]:
    """:func:`mask_to_polygons`, plus the largest deviation the simplification caused.

    Args:
      mask, tolerance_px, min_area, min_hole_area: as for :func:`mask_to_polygons`.

    Returns:
      ``(polygons, max_deviation)``: the largest distance [px] from a traced boundary
      pixel centre to its simplified ring (exterior or hole); at most ``tolerance_px``,
      and 0 for an empty mask.
    """
    return _trace(mask, tolerance_px, min_area, min_hole_area, measure=True)


def _trace(mask, tolerance_px, min_area, min_hole_area, measure):
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise UserInputError(f"mask has shape {mask.shape}; pass one [H, W] mask")
    if not tolerance_px >= 0:
        raise UserInputError(f"tolerance_px={tolerance_px} must be >= 0; use 0 for exact polygons")
    fg = mask.astype(bool)
    # Connectivities match findContours': 8-connected parts, 4-connected holes.
    if min_area > 1:
        fg = remove_small_objects(fg, max_size=min_area - 1, connectivity=2)
    if min_hole_area > 1:
        fg = remove_small_holes(fg, max_size=min_hole_area - 1, connectivity=1)
    if not fg.any():
        return [], 0.0
    # RETR_CCOMP: two levels, parts (parent -1) and their holes (parent = the part).
    contours, hierarchy = cv2.findContours(fg.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_NONE)
    rings = []
    deviation = 0.0
    for contour in contours:
        ring = cv2.approxPolyDP(contour, tolerance_px, closed=True)
        if measure:
            deviation = max(deviation, _max_distance(contour, ring))
        rings.append(ring[:, 0].astype(np.float64))
    parents = hierarchy[0, :, 3]
    polygons = [Polygon(rings[k], [rings[h] for h in np.flatnonzero(parents == k)])
                for k in np.flatnonzero(parents < 0)]
    return polygons, deviation


def _max_distance(contour: np.ndarray, ring: np.ndarray) -> float:
    """Largest distance [px] from the points of ``contour`` to the closed ring ``ring``."""
    ring = ring.astype(np.float32)
    return max(abs(cv2.pointPolygonTest(ring, (float(x), float(y)), True))
               for x, y in contour[:, 0])


def polygons_to_mask(polygons: Sequence[Polygon], hw: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons with the pixel-centre rule of this module.

    Args:
      polygons: the parts; their union is drawn.
      hw: ``(height, width)`` of the mask [px].

    Returns:
      ``[H, W]`` bool.
    """
    canvas = np.zeros(tuple(int(v) for v in hw), np.uint8)
    for polygon in polygons:
        rings = [np.round(np.asarray(r, np.float64) * (1 << _SHIFT)).astype(np.int32)
                 for r in (polygon.exterior, *polygon.holes)]
        # One fillPoly call per part: even-odd over its rings leaves the holes out.
        cv2.fillPoly(canvas, rings, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def bridge_holes(polygon: Polygon) -> np.ndarray:
    """Join a polygon's holes to its exterior by zero-width bridges, giving one ring.

    Each hole is joined by a **vertical** bridge from its topmost vertex straight up to
    the first edge above it, holes taken top first, so in a valid polygon a bridge ends
    on the exterior or on a hole already joined and never crosses a hole. Vertical,
    because PIL's scanline filler (Cityscapes, labelme) has corner heuristics that
    misfill next to slanted coincident edges but leaves vertical ones alone.

    Args:
      polygon: exterior and holes, ``(x, y)``.

    Returns:
      ``[P, 2]`` float64, one open ring that even-odd fills to the polygon's region.
    """
    ring = np.asarray(polygon.exterior, np.float64)
    holes = [np.asarray(h, np.float64) for h in polygon.holes]
    # Topmost vertex of each hole: smallest y, then smallest x.
    tops = [int(np.lexsort((h[:, 0], h[:, 1]))[0]) for h in holes]
    for k in sorted(range(len(holes)), key=lambda k: tuple(holes[k][tops[k], ::-1])):
        hole, j = holes[k], tops[k]
        i, hit = _first_edge_above(ring, hole[j])
        # ring[i] -> hit -> hole[j] -> around the hole -> hole[j] -> hit -> ring[i + 1] ...
        ring = np.concatenate([ring[:i + 1], [hit], np.roll(hole, -j, axis=0), hole[j:j + 1],
                               [hit], ring[i + 1:]])
    return ring


def _first_edge_above(ring: np.ndarray, point: np.ndarray) -> tuple[int, np.ndarray]:
    """First crossing of the upward vertical ray from ``point`` with the closed ``ring``.

    When nothing lies above (simplification can push a hole's top vertex out of its
    exterior), the nearest vertex of the ring is taken instead.

    Returns:
      ``(i, hit)``: ``hit`` lies on the edge ``ring[i] -> ring[i + 1]``.
    """
    x, y = point
    a = ring
    b = np.roll(ring, -1, axis=0)
    dx = b[:, 0] - a[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        y_cross = a[:, 1] + (x - a[:, 0]) / dx * (b[:, 1] - a[:, 1])
    # A vertical edge on the ray is hit at its point nearest to `point`.
    y_cross = np.where(dx == 0, np.clip(y, np.minimum(a[:, 1], b[:, 1]),
                                        np.maximum(a[:, 1], b[:, 1])), y_cross)
    spans = (np.minimum(a[:, 0], b[:, 0]) <= x) & (x <= np.maximum(a[:, 0], b[:, 0]))
    y_cross = np.where(spans & (y_cross <= y), y_cross, -np.inf)
    i = int(np.argmax(y_cross))
    if np.isfinite(y_cross[i]):
        return i, np.array([x, y_cross[i]])
    i = int(np.argmin(np.hypot(*(ring - point).T)))
    return i, ring[i].copy()


def _at_least_3_points(ring: np.ndarray) -> np.ndarray:
    """A ring with at least 3 points: tools that read these formats reject fewer."""
    if len(ring) < 3:
        ring = np.concatenate([ring, np.repeat(ring[-1:], 3 - len(ring), axis=0)])
    return ring


def _check_hw(image_hw) -> tuple[int, int]:
    h, w = (int(v) for v in image_hw)
    if h <= 0 or w <= 0:
        raise UserInputError(f"image size {image_hw} must be positive (height, width)")
    return h, w


def to_cityscapes_json(objects: Sequence[LabeledObject], image_hw: tuple[int, int]) -> dict:
    """Cityscapes ``*_gtFine_polygons.json`` content.

    Cityscapes has one polygon per object and counts one instance per object, so an object
    of several parts becomes one object per part (``createInstanceImage`` then gives the
    parts their own instance ids; the label image is unaffected). Holes are bridged
    (module docstring). Points are rounded to integers, as in the official files. Scores
    have no place in the format and are left out, and so are objects without polygons.
    Objects are written in order; Cityscapes draws later objects over earlier ones.

    Args:
      objects: labels must be Cityscapes class names (``"car"``, ``"cargroup"``, ...).
      image_hw: ``(height, width)`` of the image [px].

    Returns:
      ``{"imgHeight", "imgWidth", "objects": [{"label", "polygon": [[x, y], ...]}]}``.

    Raises:
      UserInputError: for a label Cityscapes does not know.
    """
    h, w = _check_hw(image_hw)
    out = []
    for obj in objects:
        if not obj.polygons:
            continue
        try:
            classes.label_id(obj.label)
        except KeyError as err:
            raise UserInputError(f"label {obj.label!r} is not a Cityscapes class; use one of "
                                 "cityscapesscripts' names, e.g. 'car' or 'person'") from err
        for polygon in obj.polygons:
            ring = np.rint(_at_least_3_points(bridge_holes(polygon))).astype(int)
            out.append({"label": obj.label, "polygon": ring.tolist()})
    return {"imgHeight": h, "imgWidth": w, "objects": out}


def to_labelme_json(objects: Sequence[LabeledObject], image_path: str,
                    image_hw: tuple[int, int]) -> dict:
    """labelme JSON content, without embedded image data.

    Every part is a ``polygon`` shape; the parts of one object share its ``group_id``
    (the object's index), which is how labelme's ``shapes_to_label`` joins shapes into one
    instance. Holes are bridged (module docstring). A score goes into a ``score`` key of
    the shape, which labelme keeps as extra shape data.

    Args:
      objects: the objects, any label names.
      image_path: the image's path relative to the JSON file, as labelme stores it.
      image_hw: ``(height, width)`` of the image [px].

    Returns:
      ``{"version", "flags", "shapes", "imagePath", "imageData": None, "imageHeight",
      "imageWidth"}``.
    """
    h, w = _check_hw(image_hw)
    shapes = []
    for group_id, obj in enumerate(objects):
        for polygon in obj.polygons:
            shape = {
                "label": obj.label,
                "points": _at_least_3_points(bridge_holes(polygon)).tolist(),
                "group_id": group_id,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
                "mask": None,
            }
            if obj.score is not None:
                shape["score"] = float(obj.score)
            shapes.append(shape)
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes,
            "imagePath": str(image_path), "imageData": None, "imageHeight": h, "imageWidth": w}


def to_coco(objects: Sequence[LabeledObject], image_id: int, image_hw: tuple[int, int], *,
            mode: str = "rle", category_ids: Mapping[str, int] | None = None,
            first_id: int = 1) -> list[dict]:
    """COCO annotation dicts, one per object (JSON-serialisable).

    ``area`` and ``bbox`` are those of the mask the polygons describe
    (:func:`polygons_to_mask`), in both modes. Objects without polygons are skipped.

    * ``mode="rle"``: ``segmentation`` is the compressed RLE of that mask, so it decodes
      to exactly the polygons' pixels (``counts`` as an ASCII string).
    * ``mode="polygon"``: one flat ``[x0, y0, x1, y1, ...]`` list per part, holes bridged,
      shifted by +0.5 into COCO's continuous coordinates (pixel ``i`` spans
      ``[i, i + 1)``). The outline still runs through the boundary pixels' centres, so
      pycocotools' rasteriser keeps only about half of each boundary pixel: use RLE where
      the pixels must be exact.

    Args:
      objects: the objects; ``score`` is written when set (COCO results format).
      image_id: the image's id.
      image_hw: ``(height, width)`` of the image [px].
      mode: ``"rle"`` or ``"polygon"``.
      category_ids: label name -> category id; default: the Cityscapes label id.
      first_id: id of the first annotation; the others follow.

    Returns:
      ``[{"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd"[,
      "score"]}]``, ``bbox`` as ``[x, y, width, height]``.
    """
    if mode not in COCO_MODES:
        raise UserInputError(f"unknown COCO mode {mode!r}; choose one of {', '.join(COCO_MODES)}")
    hw = _check_hw(image_hw)
    annotations = []
    for obj in objects:
        if not obj.polygons:
            continue
        try:
            category = (category_ids[obj.label] if category_ids is not None
                        else classes.label_id(obj.label))
        except KeyError as err:
            raise UserInputError(f"no category id for label {obj.label!r}; add it to "
                                 "category_ids or use a Cityscapes class name") from err
        # pycocotools needs a Fortran-ordered uint8 array (PITFALLS.md).
        rle = coco_mask.encode(np.asfortranarray(polygons_to_mask(obj.polygons, hw),
                                                 dtype=np.uint8))
        if mode == "rle":
            segmentation = {"size": [int(v) for v in rle["size"]],
                            "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = [(_at_least_3_points(bridge_holes(p)) + 0.5).ravel().tolist()
                            for p in obj.polygons]
        annotation = {
            "id": first_id + len(annotations),
            "image_id": image_id,
            "category_id": int(category),
            "segmentation": segmentation,
            "area": int(coco_mask.area(rle)),
            "bbox": [float(v) for v in coco_mask.toBbox(rle)],
            "iscrowd": 0,
        }
        if obj.score is not None:
            annotation["score"] = float(obj.score)
        annotations.append(annotation)
    return annotations
