"""Extreme points of a mask, the point channel, and the crop / paste-back around them.

Paper 003 feeds a U-Net with RGB plus a 4th channel in which the object's 4 extreme
points (left, top, right, bottom) are drawn as small filled circles; DEXTR (Maninis et
al., 2018), which introduced the idea, draws Gaussians instead. Both are available here.

Conventions (DESIGN.md):

* Points are ``(x, y)`` image coordinates, ordered left, top, right, bottom. Pixel
  ``(col j, row i)`` has its center at ``(x, y) = (j, i)`` and covers
  ``[j - 0.5, j + 0.5)``, so a point is inside a ``H x W`` image when
  ``-0.5 <= x < W - 0.5`` and ``-0.5 <= y < H - 0.5``.
* A box is ``(x0, y0, x1, y1)`` in pixels with exclusive ends, like a slice:
  ``image[y0:y1, x0:x1]``.
* Crops are resized with bilinear interpolation and half-pixel centers (OpenCV's
  ``INTER_LINEAR``, TF's ``tf.image.resize``), so a point maps into a crop of
  ``S x S`` as ``u = (x - x0 + 0.5) * S / (x1 - x0) - 0.5``.

Defaults, at the network's 128 x 128 input:

* ``DEFAULT_RADIUS = 3`` px: paper 003 only says "small circles". A 3 px disc (29
  pixels) stays visible through the U-Net's first max-pooling levels while covering
  about as much as DEXTR's Gaussian (full width at half maximum 10 px on 512 px crops).
* ``DEFAULT_SIGMA = 2.5`` px, the Gaussian mode's full width at half maximum: DEXTR's
  10 px at 512 scaled to 128.
* ``DEFAULT_MARGIN = 0.1``: the box of the 4 points grows by 10% of its width and height
  on each side, like DEXTR's context band, so the network sees the background the
  boundary runs against. The grown box is clipped to the image, not padded.

The network input (:func:`make_input`) is the crop's RGB divided by 255 (so [0, 1]) and
the point channel, 0 outside and 1 inside the circles. The mask crop for training comes
from :func:`crop_and_resize` on the mask followed by ``>= 0.5``.

NumPy functions import no TensorFlow; the ``*_tf`` twins import it when called and
follow the same rules, for ``tf.data``. They assert instead of raising
:class:`~dcme_keras.errors.UserInputError`, since graph code cannot raise Python errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from dcme_keras.errors import UserInputError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_RADIUS",
    "DEFAULT_SIGMA",
    "DEFAULT_SIZE",
    "crop_and_resize",
    "crop_and_resize_tf",
    "crop_box",
    "crop_box_tf",
    "extreme_points",
    "extreme_points_tf",
    "make_input",
    "make_input_tf",
    "paste_back",
    "point_channel",
    "point_channel_tf",
    "quadrilateral_mask",
]

DEFAULT_SIZE = 128
DEFAULT_RADIUS = 3
DEFAULT_SIGMA = 2.5
DEFAULT_MARGIN = 0.1
_MODES = ("circle", "gaussian")
#: exp(-4 ln2 d^2 / sigma^2) is 1/2 at d = sigma / 2: sigma is the full width at half max.
_GAUSS_K = 4.0 * math.log(2.0)


def _mask_2d(mask) -> np.ndarray:
    """A mask as [H, W] bool; accepts [H, W] or [H, W, 1] of any dtype (nonzero = in)."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise UserInputError(
            f"mask of shape {m.shape} is not [H, W] or [H, W, 1]; pass one object's mask")
    return m.astype(bool, copy=False)


def _middle(indices: np.ndarray) -> int:
    """The median of sorted indices, the lower one of the two middles for an even count."""
    return int(indices[(indices.size - 1) // 2])


def extreme_points(mask) -> np.ndarray:
    """The 4 extreme points of a mask: left, top, right, bottom.

    Ties: of the pixels in the leftmost column, the left point is the median row, the
    lower index of the two middles when their count is even (likewise for the other
    sides, with columns for top and bottom). The median of the tied pixels themselves,
    not of their span, so the point is always an object pixel, even when two separate
    parts touch the same side; and it sits in the middle of a flat side, where a person
    would click.

    Example:
      >>> m = np.zeros((5, 5), bool); m[1:4, 1:3] = True
      >>> extreme_points(m).tolist()   # left, top, right, bottom as (x, y)
      [[1, 2], [1, 1], [2, 2], [1, 3]]

    Args:
      mask: [H, W] or [H, W, 1], bool or int (nonzero = object).

    Returns:
      [4, 2] int32 (x, y) [pixels], ordered left, top, right, bottom.

    Raises:
      UserInputError: for an empty mask or a mask that is not 2-D.
    """
    m = _mask_2d(mask)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        raise UserInputError(
            "mask is empty, so it has no extreme points; drop empty instances first")
    x0, x1, y0, y1 = cols[0], cols[-1], rows[0], rows[-1]
    return np.array([
        [x0, _middle(np.flatnonzero(m[:, x0]))],
        [_middle(np.flatnonzero(m[y0])), y0],
        [x1, _middle(np.flatnonzero(m[:, x1]))],
        [_middle(np.flatnonzero(m[y1])), y1],
    ], np.int32)


def extreme_points_tf(mask: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`extreme_points` (same order and tie-breaking).

    Args:
      mask: [H, W] or [H, W, 1] bool or numeric tensor (nonzero = object), dynamic size.

    Returns:
      [4, 2] int32 (x, y) [pixels], ordered left, top, right, bottom.

    Raises:
      tf.errors.InvalidArgumentError: for an empty mask (when the graph runs).
    """
    import tensorflow as tf

    m = tf.convert_to_tensor(mask)
    if m.shape.rank == 3:
        m = m[..., 0]
    m = tf.cast(m, tf.bool)  # [H, W]

    def nonzero(v):  # ascending indices of the True entries of a 1-D bool tensor
        return tf.cast(tf.where(v)[:, 0], tf.int32)

    def middle(indices):
        return indices[(tf.size(indices) - 1) // 2]

    rows = nonzero(tf.reduce_any(m, axis=1))
    cols = nonzero(tf.reduce_any(m, axis=0))
    with tf.control_dependencies([tf.debugging.assert_positive(
            tf.size(rows), message="mask is empty, so it has no extreme points")]):
        x0, x1, y0, y1 = cols[0], cols[-1], rows[0], rows[-1]
    return tf.stack([
        tf.stack([x0, middle(nonzero(m[:, x0]))]),
        tf.stack([middle(nonzero(m[y0])), y0]),
        tf.stack([x1, middle(nonzero(m[:, x1]))]),
        tf.stack([middle(nonzero(m[y1])), y1]),
    ])


def _check_points(points_xy, image_hw: Sequence[int]) -> np.ndarray:
    """Validate 4 (x, y) points inside an image; return them as [4, 2] float64."""
    pts = np.asarray(points_xy, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] != 4:
        raise UserInputError(
            f"points of shape {pts.shape} are not [4, 2]; give exactly 4 (x, y) points: "
            "left, top, right, bottom")
    if not np.isfinite(pts).all():
        raise UserInputError("points hold NaN or inf; give 4 finite (x, y) points")
    h, w = (int(v) for v in image_hw)
    inside = ((pts[:, 0] >= -0.5) & (pts[:, 0] < w - 0.5)
              & (pts[:, 1] >= -0.5) & (pts[:, 1] < h - 0.5))
    if not inside.all():
        x, y = pts[np.argmin(inside)]
        raise UserInputError(
            f"point ({x:g}, {y:g}) is outside the {w}x{h} (WxH) image; give points inside "
            "it, as (x, y) = (column, row), not (row, column)")
    if (pts == pts[0]).all():
        raise UserInputError(
            f"all 4 points are the same ({pts[0, 0]:g}, {pts[0, 1]:g}); click the object's "
            "leftmost, topmost, rightmost and bottommost points")
    return pts


def _check_size_hw(size_hw: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in size_hw)
    if h < 1 or w < 1:
        raise UserInputError(f"size {h}x{w} (HxW) is empty; give a positive height and width")
    return h, w


def _check_radius(radius) -> int:
    r = int(radius)
    if r != radius or r < 0:
        raise UserInputError(
            f"radius {radius!r} is not a whole number of pixels >= 0; use e.g. "
            f"{DEFAULT_RADIUS}")
    return r


def _check_mode(mode: str, sigma: float) -> None:
    if mode not in _MODES:
        raise UserInputError(f"point mode {mode!r} is unknown; use one of {_MODES}")
    if mode == "gaussian" and not sigma > 0:
        raise UserInputError(f"sigma {sigma!r} must be > 0 px; use e.g. {DEFAULT_SIGMA}")


def _check_margin(margin: float) -> float:
    if not (math.isfinite(margin) and margin >= 0):
        raise UserInputError(
            f"margin {margin!r} must be a finite fraction >= 0; use e.g. {DEFAULT_MARGIN}")
    return float(margin)


def point_channel(points_xy, size_hw: Sequence[int], radius: int = DEFAULT_RADIUS,
                  mode: str = "circle", sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """The extreme-points channel: 4 filled circles (paper 003) or Gaussians (DEXTR).

    ``"circle"``: each point is rounded to its pixel (half up) and a disc of pixels
    within ``radius`` of it is set to 1 with ``cv2.circle`` (which fills exactly the
    pixels with ``dx^2 + dy^2 <= radius^2``). ``"gaussian"``: the maximum over the
    points of ``exp(-4 ln2 d^2 / sigma^2)`` at the exact (sub-pixel) points, as DEXTR's
    ``make_gt``.

    Args:
      points_xy: [4, 2] float, (x, y) [pixels], left, top, right, bottom.
      size_hw: (H, W) of the channel [pixels].
      radius: circle radius [pixels], a whole number.
      mode: ``"circle"`` or ``"gaussian"``.
      sigma: Gaussian full width at half maximum [pixels].

    Returns:
      [H, W] float32 in [0, 1].

    Raises:
      UserInputError: for other than 4 points, a point outside the image, 4 identical
        points, or a bad radius, sigma or mode.
    """
    h, w = _check_size_hw(size_hw)
    pts = _check_points(points_xy, (h, w))
    _check_mode(mode, sigma)
    if mode == "circle":
        r = _check_radius(radius)
        out = np.zeros((h, w), np.float32)
        for x, y in np.floor(pts + 0.5).astype(np.int32):
            cv2.circle(out, (int(x), int(y)), r, 1.0, thickness=cv2.FILLED)
        return out
    ys = np.arange(h, dtype=np.float32)[None, :, None]  # [1, H, 1]
    xs = np.arange(w, dtype=np.float32)[None, None, :]  # [1, 1, W]
    p = pts.astype(np.float32)
    d2 = (xs - p[:, 0, None, None]) ** 2 + (ys - p[:, 1, None, None]) ** 2  # [4, H, W]
    return np.exp(-_GAUSS_K * d2.min(axis=0) / np.float32(sigma) ** 2).astype(np.float32)


def point_channel_tf(points_xy: tf.Tensor, size_hw, radius: int = DEFAULT_RADIUS,
                     mode: str = "circle", sigma: float = DEFAULT_SIGMA) -> tf.Tensor:
    """TF twin of :func:`point_channel`, vectorised over a meshgrid of distances.

    Args:
      points_xy: [4, 2] float tensor, (x, y) [pixels].
      size_hw: (H, W) [pixels], Python ints or scalar tensors.
      radius: circle radius [pixels], a whole number.
      mode: ``"circle"`` or ``"gaussian"``.
      sigma: Gaussian full width at half maximum [pixels].

    Returns:
      [H, W] float32 tensor in [0, 1].
    """
    import tensorflow as tf

    _check_mode(mode, sigma)
    pts = tf.cast(points_xy, tf.float32)
    if mode == "circle":
        pts = tf.floor(pts + 0.5)
    ys = tf.range(tf.cast(size_hw[0], tf.float32))[None, :, None]  # [1, H, 1]
    xs = tf.range(tf.cast(size_hw[1], tf.float32))[None, None, :]  # [1, 1, W]
    d2 = tf.reduce_min((xs - pts[:, 0, None, None]) ** 2
                       + (ys - pts[:, 1, None, None]) ** 2, axis=0)  # [H, W]
    if mode == "circle":
        r = _check_radius(radius)
        return tf.cast(d2 <= float(r * r), tf.float32)
    return tf.exp(-_GAUSS_K * d2 / float(sigma) ** 2)


def crop_box(points_xy, image_hw: Sequence[int],
             margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The crop around 4 points: their box, grown by ``margin``, clipped to the image.

    The points' pixels (rounded half up) span columns ``xmin..xmax`` (width
    ``bw = xmax - xmin + 1``) and rows ``ymin..ymax`` (height ``bh``). Each side grows by
    ``round_half_up(margin * bw)`` columns or ``round_half_up(margin * bh)`` rows. The
    order of the points does not matter here.

    Args:
      points_xy: [4, 2] float, (x, y) [pixels].
      image_hw: (H, W) of the image [pixels].
      margin: growth on each side, as a fraction of the points' box size.

    Returns:
      (x0, y0, x1, y1) ints [pixels], ends exclusive; at least 1 x 1.

    Raises:
      UserInputError: for bad points (see :func:`point_channel`) or margin.
    """
    h, w = _check_size_hw(image_hw)
    pts = _check_points(points_xy, (h, w))
    margin = _check_margin(margin)
    px = np.floor(pts + 0.5).astype(np.int64)
    (xmin, ymin), (xmax, ymax) = px.min(axis=0), px.max(axis=0)
    pad_x = math.floor(margin * float(xmax - xmin + 1) + 0.5)
    pad_y = math.floor(margin * float(ymax - ymin + 1) + 0.5)
    return (max(0, int(xmin) - pad_x), max(0, int(ymin) - pad_y),
            min(w, int(xmax) + 1 + pad_x), min(h, int(ymax) + 1 + pad_y))


def crop_box_tf(points_xy: tf.Tensor, image_hw, margin: float = DEFAULT_MARGIN) -> tf.Tensor:
    """TF twin of :func:`crop_box` (float64 arithmetic, so rounding agrees exactly).

    Args:
      points_xy: [4, 2] float tensor, (x, y) [pixels].
      image_hw: (H, W) [pixels], ints or scalar tensors (e.g. ``tf.shape(image)[:2]``).
      margin: growth on each side, as a fraction of the points' box size.

    Returns:
      [4] int32 tensor (x0, y0, x1, y1) [pixels], ends exclusive.
    """
    import tensorflow as tf

    margin = _check_margin(margin)
    px = tf.floor(tf.cast(points_xy, tf.float64) + 0.5)  # [4, 2]
    lo, hi = tf.reduce_min(px, axis=0), tf.reduce_max(px, axis=0)  # [2] (x, y)
    pad = tf.floor(margin * (hi - lo + 1.0) + 0.5)
    limit = tf.cast(tf.stack([image_hw[1], image_hw[0]]), tf.float64)  # (W, H)
    box = tf.concat([tf.maximum(lo - pad, 0.0), tf.minimum(hi + 1.0 + pad, limit)], axis=0)
    return tf.cast(box, tf.int32)


def _points_in_box(points_xy: np.ndarray, box, out_size: int) -> np.ndarray:
    """Map (x, y) image points into an ``out_size`` crop of ``box`` (half-pixel centers)."""
    x0, y0, x1, y1 = box
    # Multiply before dividing: a pixel-aligned point that maps onto a pixel boundary
    # then lands on it exactly, so rounding agrees with the float32 TF twin.
    offset = points_xy - np.array([x0, y0]) + 0.5
    return (offset * out_size / np.array([x1 - x0, y1 - y0]) - 0.5).astype(np.float32)


def crop_and_resize(image, points_xy, out_size: int = DEFAULT_SIZE,
                    margin: float = DEFAULT_MARGIN):
    """Crop the box around 4 points (:func:`crop_box`) and resize it to a square.

    Bilinear (``cv2.INTER_LINEAR``) on float32, without antialiasing, so that the TF twin
    (``tf.image.resize``) gives the same values.

    Args:
      image: [H, W, C] or [H, W], any numeric or bool dtype (a mask crops too).
      points_xy: [4, 2] float, (x, y) [pixels] in ``image``.
      out_size: S, the crop's side [pixels].
      margin: see :func:`crop_box`.

    Returns:
      crop: [S, S, C] (or [S, S]) float32, in the image's value range.
      points_in_crop: [4, 2] float32 (x, y) [crop pixels], same order as given.
      box: (x0, y0, x1, y1) ints [image pixels], ends exclusive.

    Raises:
      UserInputError: for an image that is not 2-D or 3-D, bad points or margin.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise UserInputError(
            f"image of shape {img.shape} is not [H, W, C] or [H, W]; pass one image")
    size = int(out_size)
    if size != out_size or size < 1:
        raise UserInputError(
            f"out_size {out_size!r} is not a whole number >= 1; use e.g. {DEFAULT_SIZE}")
    box = crop_box(points_xy, img.shape[:2], margin)
    x0, y0, x1, y1 = box
    crop = cv2.resize(img[y0:y1, x0:x1].astype(np.float32), (size, size),
                      interpolation=cv2.INTER_LINEAR)
    crop = crop.reshape((size, size) + img.shape[2:])  # cv2 drops a channel axis of 1
    return crop, _points_in_box(np.asarray(points_xy, np.float64), box, size), box


def crop_and_resize_tf(image: tf.Tensor, points_xy: tf.Tensor, out_size: int = DEFAULT_SIZE,
                       margin: float = DEFAULT_MARGIN):
    """TF twin of :func:`crop_and_resize`: slice, then ``tf.image.resize`` (bilinear).

    ``tf.image.crop_and_resize`` is not used: it samples with aligned corners and fills
    samples that fall off the image with a constant, so its crops would differ from
    OpenCV's at every crop edge.

    Args:
      image: [H, W, C] or [H, W] tensor, dynamic H and W.
      points_xy: [4, 2] float tensor, (x, y) [pixels].
      out_size: S [pixels], a Python int.
      margin: see :func:`crop_box`.

    Returns:
      crop: [S, S, C] (or [S, S]) float32 tensor.
      points_in_crop: [4, 2] float32 tensor (x, y) [crop pixels].
      box: [4] int32 tensor (x0, y0, x1, y1) [image pixels], ends exclusive.
    """
    import tensorflow as tf

    img = tf.convert_to_tensor(image)
    flat = img.shape.rank == 2
    if flat:
        img = img[..., None]
    box = crop_box_tf(points_xy, tf.shape(img)[:2], margin)
    crop = tf.cast(img[box[1]:box[3], box[0]:box[2]], tf.float32)
    crop = tf.image.resize(crop, [out_size, out_size], method="bilinear")
    if flat:
        crop = crop[..., 0]
    offset = tf.cast(points_xy, tf.float32) - tf.cast(box[:2], tf.float32) + 0.5
    points = offset * float(out_size) / tf.cast(box[2:] - box[:2], tf.float32) - 0.5
    return crop, points, box


def make_input(image_rgb_uint8, points_xy, size: int = DEFAULT_SIZE,
               radius: int = DEFAULT_RADIUS, margin: float = DEFAULT_MARGIN, *,
               mode: str = "circle", sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """The annotator network's 4-channel input for one object.

    Use :func:`crop_box` with the same ``margin`` for the box that :func:`paste_back`
    needs.

    Args:
      image_rgb_uint8: [H, W, 3] uint8 RGB.
      points_xy: [4, 2] float, (x, y) [pixels], left, top, right, bottom.
      size: S, the network's input side [pixels].
      radius: circle radius in the S x S crop [pixels].
      margin: see :func:`crop_box`.
      mode: ``"circle"`` or ``"gaussian"``, see :func:`point_channel`.
      sigma: Gaussian full width at half maximum [crop pixels].

    Returns:
      [S, S, 4] float32: RGB / 255 in [0, 1], then the point channel in [0, 1].

    Raises:
      UserInputError: for an image that is not [H, W, 3] uint8, or bad points.
    """
    img = np.asarray(image_rgb_uint8)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise UserInputError(
            f"image of shape {img.shape} and dtype {img.dtype} is not [H, W, 3] uint8 "
            "RGB; load it with e.g. cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)")
    crop, points, _ = crop_and_resize(img, points_xy, size, margin)
    channel = point_channel(points, (size, size), radius, mode, sigma)
    return np.concatenate([crop / np.float32(255.0), channel[..., None]], axis=-1)


def make_input_tf(image_rgb_uint8: tf.Tensor, points_xy: tf.Tensor, size: int = DEFAULT_SIZE,
                  radius: int = DEFAULT_RADIUS, margin: float = DEFAULT_MARGIN, *,
                  mode: str = "circle", sigma: float = DEFAULT_SIGMA) -> tf.Tensor:
    """TF twin of :func:`make_input`, for ``tf.data``.

    Args:
      image_rgb_uint8: [H, W, 3] uint8 tensor.
      points_xy: [4, 2] float tensor, (x, y) [pixels].
      size, radius, margin, mode, sigma: as in :func:`make_input`.

    Returns:
      [S, S, 4] float32 tensor.
    """
    import tensorflow as tf

    crop, points, _ = crop_and_resize_tf(image_rgb_uint8, points_xy, size, margin)
    channel = point_channel_tf(points, (size, size), radius, mode, sigma)
    return tf.concat([crop / 255.0, channel[..., None]], axis=-1)


def paste_back(mask_or_prob, box: Sequence[int], image_hw: Sequence[int],
               threshold: float = 0.5) -> np.ndarray:
    """Bring a crop's mask back into the image: resize into ``box``, zeros elsewhere.

    Args:
      mask_or_prob: [S, S] or [S, S, 1] float probabilities in [0, 1] (or a 0/1 mask).
      box: (x0, y0, x1, y1) [image pixels], ends exclusive, as :func:`crop_box` gave.
      image_hw: (H, W) of the image [pixels].
      threshold: a resized pixel is in the object when its probability is ``>=`` this.

    Returns:
      [H, W] bool mask.

    Raises:
      UserInputError: for a box that is empty or leaves the image, or a crop that is
        not 2-D.
    """
    prob = np.asarray(mask_or_prob, np.float32)
    if prob.ndim == 3 and prob.shape[-1] == 1:
        prob = prob[..., 0]
    if prob.ndim != 2:
        raise UserInputError(
            f"crop of shape {prob.shape} is not [S, S]; pass one object's mask output")
    h, w = _check_size_hw(image_hw)
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise UserInputError(
            f"box {tuple(box)} is empty or outside the {w}x{h} (WxH) image; pass the box "
            "crop_box gave for this image")
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = cv2.resize(prob, (x1 - x0, y1 - y0),
                                   interpolation=cv2.INTER_LINEAR) >= threshold
    return out


def quadrilateral_mask(points_xy, image_hw: Sequence[int]) -> np.ndarray:
    """The no-learning baseline: the filled quadrilateral of the 4 extreme points.

    What a labeler gets from the clicks alone, with no network; an annotator that does
    not beat it by a wide margin has learned little. The polygon left, top, right,
    bottom is filled with its boundary (OpenCV ``fillPoly`` at pixel centres), so each
    point's pixel is in the mask.

    Example:
      >>> quadrilateral_mask([(0, 2), (2, 0), (4, 2), (2, 4)], (5, 5)).sum()   # a diamond
      13

    Args:
      points_xy: [4, 2] (x, y) [pixels], left, top, right, bottom.
      image_hw: (H, W) of the mask [pixels].

    Returns:
      [H, W] bool.

    Raises:
      UserInputError: for points that are not [4, 2] inside the image.
    """
    h, w = _check_size_hw(image_hw)
    points = _check_points(points_xy, (h, w))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)
