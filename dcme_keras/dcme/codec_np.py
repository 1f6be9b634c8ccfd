"""DCME encode and decode in NumPy and OpenCV; imports no TensorFlow.

The Distance to Center of Mass Encoding (paper 000, section I) stores, at every pixel of an
instance, the vector from the pixel to the instance's center of mass (CM). Conventions
(``shared/DESIGN.md``):

* ``dcme``: ``[H, W, 2]`` float32, pixels of the map's own resolution; channel 0 is dy
  (rows), channel 1 is dx (columns); the vector is ``cm - pixel``.
* The CM is the mean (row, col) of the instance's pixels. It may lie outside the instance,
  for example on a car split in two by an occluder.
* Background, stuff and group / crowd regions hold the zero vector.
* Instance ids use the Cityscapes encoding ``class_id * 1000 + k`` (k from 0); a value
  below ``min_instance_id`` is a plain label id and is not an instance.

:func:`encode_dcme` makes the training target; :func:`decode_dcme` turns a vector field
(exact or predicted) back into instances by Hough-style voting. ``dcme_keras.dcme.codec``
is the TensorFlow twin of the encoder, for tf.data.

Example:
  >>> ids = np.zeros((5, 5), np.int32)
  >>> ids[1:4, 1:4] = 26000
  >>> instance_map, centers = decode_dcme(encode_dcme(ids))
  >>> centers
  array([[2., 2.]], dtype=float32)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import sparse, spatial

from dcme_keras.errors import UserInputError

#: Smallest Cityscapes instance id: ``class_id * 1000 + k`` with class ids >= 1.
MIN_INSTANCE_ID = 1000


def _check_instance_ids(instance_ids) -> np.ndarray:
    """Validate ``[H, W]`` or ``[H, W, 1]`` integer ids; return them as ``[H, W]``."""
    ids = np.asarray(instance_ids)
    if ids.ndim == 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.ndim != 2:
        raise UserInputError(
            f"instance_ids has shape {ids.shape}; pass one [H, W] or [H, W, 1] map "
            "(e.g. the decoded *_gtFine_instanceIds.png)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise UserInputError(
            f"instance_ids has dtype {ids.dtype}; pass integer ids (class_id * 1000 + k), "
            "e.g. the uint16 PNG read with cv2.IMREAD_UNCHANGED")
    return ids


def foreground_mask(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID) -> np.ndarray:
    """Pixels that belong to an instance.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer, Cityscapes ids ``class_id * 1000 + k``.
      min_instance_id: smallest id that is an instance; smaller values (unlabeled, stuff,
        group / crowd regions such as ``cargroup``) are not.

    Returns:
      [H, W] bool, True on instance pixels.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.
    """
    return _check_instance_ids(instance_ids) >= min_instance_id


def _group_instances(ids: np.ndarray, min_instance_id: int):
    """Instance pixels, their instance index, and per-instance statistics.

    Returns:
      (pixels [N] int64 flat indices, rows [N] int64, cols [N] int64, inverse [N] int64
       into the K instances, unique_ids [K], centers [K, 2] float64 (row, col),
       areas [K] int64).
    """
    flat = ids.ravel()
    pixels = np.flatnonzero(flat >= min_instance_id)
    unique_ids, inverse, areas = np.unique(flat[pixels], return_inverse=True, return_counts=True)
    rows, cols = np.divmod(pixels, ids.shape[1])
    # Sums of integer coordinates are exact in float64, and the division is the one the TF
    # twin does, so both encoders agree to the last bit.
    sum_rows = np.bincount(inverse, weights=rows, minlength=unique_ids.size)
    sum_cols = np.bincount(inverse, weights=cols, minlength=unique_ids.size)
    centers = np.stack([sum_rows, sum_cols], axis=-1) / areas[:, None]
    return pixels, rows, cols, inverse, unique_ids, centers, areas


def instance_centers(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID):
    """Center of mass and area of every instance in a map.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer, Cityscapes ids ``class_id * 1000 + k``.
      min_instance_id: smallest id that is an instance (see :func:`foreground_mask`).

    Returns:
      A tuple ``(ids, centers, areas)``:
        ids: [K] the instance ids present, ascending, same dtype as ``instance_ids``;
        centers: [K, 2] float64, pixels, the mean (row, col) of each instance's pixels;
        areas: [K] int64, pixels per instance.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.
    """
    ids = _check_instance_ids(instance_ids)
    *_, unique_ids, centers, areas = _group_instances(ids, min_instance_id)
    return unique_ids, centers, areas


def encode_dcme(instance_ids, *, min_instance_id: int = MIN_INSTANCE_ID) -> np.ndarray:
    """DCME map of an instance-id map: at each instance pixel, the vector to its CM.

    Args:
      instance_ids: [H, W] or [H, W, 1] integer, Cityscapes ids ``class_id * 1000 + k``.
      min_instance_id: smallest id that is an instance; pixels below it (background, stuff,
        group / crowd regions) get the zero vector.

    Returns:
      [H, W, 2] float32, pixels: ``(cm_row - row, cm_col - col)`` on instance pixels, 0
      elsewhere.

    Raises:
      UserInputError: ``instance_ids`` is not one integer map.

    Example:
      >>> ids = np.array([[0, 1000, 1000]])
      >>> encode_dcme(ids)[..., 1]
      array([[ 0. ,  0.5, -0.5]], dtype=float32)
    """
    ids = _check_instance_ids(instance_ids)
    height, width = ids.shape
    pixels, rows, cols, inverse, _, centers, _ = _group_instances(ids, min_instance_id)
    dcme = np.zeros((height * width, 2), np.float32)
    dcme[pixels, 0] = centers[inverse, 0] - rows
    dcme[pixels, 1] = centers[inverse, 1] - cols
    return dcme.reshape(height, width, 2)


def _check_decode_inputs(dcme, foreground, *, min_magnitude, blur_sigma, nms_size, min_votes,
                         max_vote_distance, max_vote_distance_rel, exact_tolerance):
    """Validate :func:`decode_dcme`'s inputs; return ``(dcme, foreground)`` as arrays."""
    dcme = np.ascontiguousarray(dcme, dtype=np.float32)
    if dcme.ndim != 3 or dcme.shape[-1] != 2:
        raise UserInputError(
            f"dcme has shape {dcme.shape}; pass one [H, W, 2] map (dy, dx) without a batch axis")
    if not np.isfinite(dcme).all():
        raise UserInputError(
            "dcme holds NaN or infinite vectors; check the model output or replace them by 0")
    if foreground is not None:
        foreground = np.asarray(foreground)
        if foreground.shape != dcme.shape[:2]:
            raise UserInputError(
                f"foreground has shape {foreground.shape} but dcme is {dcme.shape[:2]}; "
                "resize the mask to the DCME map with cv2.INTER_NEAREST")
        foreground = foreground.astype(bool, copy=False)
    for name, value in (("min_magnitude", min_magnitude), ("blur_sigma", blur_sigma),
                        ("max_vote_distance", max_vote_distance),
                        ("max_vote_distance_rel", max_vote_distance_rel)):
        if not value >= 0:
            raise UserInputError(f"{name}={value} must be >= 0; pass a non-negative value")
    if int(nms_size) != nms_size or nms_size < 1 or nms_size % 2 == 0:
        raise UserInputError(f"nms_size={nms_size} must be an odd integer >= 1, e.g. 5")
    if not min_votes >= 1:
        raise UserInputError(f"min_votes={min_votes} must be >= 1, e.g. 10")
    if exact_tolerance is not None and not exact_tolerance > 0:
        raise UserInputError(
            f"exact_tolerance={exact_tolerance} must be > 0 (e.g. 1e-3), or None to turn "
            "the exact-vote path off")
    return dcme, foreground


def _exact_seeds(vote_y, vote_x, cell_y, cell_x, cells, count, grid_w, origin, tolerance):
    """Cells whose votes all coincide, grouped into one seed per exact center.

    Args:
      vote_y, vote_x: [N] float32, image pixels, where each vote landed.
      cell_y, cell_x: [N] float32, the same rounded to the vote grid's 1-pixel cells.
      cells: [N] int64, flat index of each vote's cell in the vote grid.
      count: [C] int64, votes per cell.
      grid_w: cells per row of the vote grid.
      origin: (row, col) image pixels of the vote grid's cell 0.
      tolerance: largest L1 distance [pixels] of a vote from its cell's reference vote
        that still counts as the same point.

    Returns:
      (exact_cells [E] int64 flat cell indices, seed [E] int64 in 0..S-1,
       centers [S, 2] float64 (row, col) image pixels).
    """
    # Exact votes come in runs: neighbouring pixels of an encoded instance vote for the
    # same point, and so do consecutive voting pixels in raster order. When not one such
    # pair exists the vectors are predicted, and the cell-by-cell check is skipped.
    step = np.abs(np.diff(vote_y))
    step += np.abs(np.diff(vote_x))
    if not (step <= tolerance).any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2))
    offset_y = vote_y - cell_y
    offset_x = vote_x - cell_x
    # One vote per cell stands for the cell (the last one written wins) and every vote of
    # the cell is compared with it: O(N), where grouping the votes by sorting is not.
    ref_y = np.empty(len(count), np.float32)
    ref_x = np.empty(len(count), np.float32)
    ref_y[cells] = offset_y
    ref_x[cells] = offset_x
    off = np.abs(offset_y - ref_y[cells])
    off += np.abs(offset_x - ref_x[cells])
    mixed = np.zeros(len(count), bool)
    mixed[cells[off > tolerance]] = True
    # A single vote always agrees with itself: agreement needs two.
    exact_cells = np.flatnonzero((count >= 2) & ~mixed)
    if not len(exact_cells):
        return exact_cells, exact_cells, np.zeros((0, 2))
    rows, cols = np.divmod(exact_cells, grid_w)
    points = np.stack([origin[0] + rows + ref_y[exact_cells].astype(np.float64),
                       origin[1] + cols + ref_x[exact_cells].astype(np.float64)], axis=-1)
    # An exact CM within float32 rounding of a half pixel splits its votes between two
    # neighbouring cells, which then hold the same point: they are one center.
    pairs = spatial.cKDTree(points).query_pairs(tolerance, output_type="ndarray")
    num_seeds, seed = len(exact_cells), np.arange(len(exact_cells))
    if len(pairs):
        graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                                  shape=(len(exact_cells), len(exact_cells)))
        num_seeds, seed = sparse.csgraph.connected_components(graph, directed=False)
    weight = count[exact_cells].astype(np.float64)
    centers = np.stack([np.bincount(seed, points[:, 0] * weight, num_seeds),
                        np.bincount(seed, points[:, 1] * weight, num_seeds)], axis=-1)
    centers /= np.bincount(seed, weight, num_seeds)[:, None]
    return exact_cells, seed, centers


def _peak_seeds(hist, origin, blur_sigma, nms_size, min_votes):
    """Peaks of the smoothed vote map and the Voronoi partition of the grid between them.

    Args:
      hist: [GH, GW] float32, votes per cell (exact cells removed); GH and GW even.
      origin: (row, col) image pixels of the vote grid's cell 0.
      blur_sigma: Gaussian sigma [cells] applied before peak finding; 0 for none.
      nms_size: side [cells] of the square window a peak must be the maximum of.
      min_votes: fewest votes inside that window around a peak.

    Returns:
      (cell_seed [GH * GW] int32 nearest seed of every cell, -1 everywhere when there is
       no peak; centers [S, 2] float64 (row, col) image pixels, the vote-weighted mean cell
       position in the window around each peak).
    """
    grid_h, grid_w = hist.shape
    blurred = hist
    if blur_sigma > 0:
        blurred = cv2.GaussianBlur(hist, (0, 0), blur_sigma, borderType=cv2.BORDER_CONSTANT)
    window = np.ones((nms_size, nms_size), np.uint8)
    votes = cv2.boxFilter(hist, -1, window.shape, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    # The vote grid ends where the votes end, so constant-zero borders change nothing.
    is_peak = (blurred >= cv2.dilate(blurred, window)) & (votes >= min_votes)
    peaks = np.flatnonzero(is_peak)
    if not len(peaks):
        return np.full(grid_h * grid_w, -1, np.int32), np.zeros((0, 2))
    # A plateau (equal maxima side by side) is one seed: seeds are the 8-connected
    # components of peak cells. Most maps have none, which a lookup of the peaks' forward
    # neighbours tells without labelling the grid (wrapping at row ends and clipping at
    # the last cell only raise false alarms).
    num_seeds, peak_seed = len(peaks), np.arange(len(peaks))
    forward = np.minimum(peaks[:, None] + (1, grid_w - 1, grid_w, grid_w + 1), hist.size - 1)
    if is_peak.ravel()[forward].any():
        num_seeds, components = cv2.connectedComponents(is_peak.view(np.uint8),
                                                        connectivity=8)
        num_seeds -= 1
        peak_seed = components.ravel().take(peaks) - 1
    peak_rows, peak_cols = np.divmod(peaks, grid_w)

    # Voronoi partition on blocks of 2x2 cells: 4x cheaper than on cells, and it moves
    # the border between two seeds by about one pixel. Seeds are >= 2 cells apart (else
    # they touch and are one component), so no two share a block.
    blocks = np.ones((grid_h // 2, grid_w // 2), np.uint8)
    blocks[peak_rows // 2, peak_cols // 2] = 0
    _, labels = cv2.distanceTransformWithLabels(blocks, cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.zeros(labels.max() + 1, np.int32)
    lut[labels[peak_rows // 2, peak_cols // 2]] = peak_seed
    cell_seed = cv2.resize(lut.take(labels), (grid_w, grid_h), interpolation=cv2.INTER_NEAREST)

    half = nms_size // 2
    off = np.arange(-half, half + 1)
    rows, cols = np.broadcast_arrays(
        np.clip(peak_rows[:, None, None] + off[None, :, None], 0, grid_h - 1),
        np.clip(peak_cols[:, None, None] + off[None, None, :], 0, grid_w - 1))
    rows = rows.reshape(len(peaks), -1)  # [P, nms_size^2]
    cols = cols.reshape(len(peaks), -1)
    n = hist[rows, cols].astype(np.float64)
    sums = np.stack([np.bincount(peak_seed, (n * rows).sum(1), num_seeds),
                     np.bincount(peak_seed, (n * cols).sum(1), num_seeds)], axis=-1)
    centers = sums / np.bincount(peak_seed, n.sum(1), num_seeds)[:, None] + origin
    return cell_seed.ravel(), centers


def _center_pixels(dcme, voting, centers, center_ids, instance_map, min_magnitude,
                   tolerance):
    """Still pixels that are the center pixel of an exact center's instance.

    Args:
      dcme: [H, W, 2] float32, pixels.
      voting: [H, W] bool, pixels that voted (the others are still).
      centers: [S, 2] float64 (row, col), exact centers.
      center_ids: [S] int32, the instance id (1..K, or 0 for none) of each center.
      instance_map: [H, W] int32, instances of the voting pixels.
      min_magnitude: the still pixels' largest vector length [pixels], which bounds how far
        from a center they can be.
      tolerance: largest distance [pixels] between a still pixel's vote and the center.

    Returns:
      (rows [M] int64, cols [M] int64, ids [M] int32) of the pixels that join.
    """
    height, width = voting.shape
    reach = max(1, int(math.ceil(min_magnitude)))
    off = np.arange(-reach, reach + 1)
    rows, cols, seed = np.broadcast_arrays(
        np.rint(centers[:, 0]).astype(np.int64)[:, None, None] + off[None, :, None],
        np.rint(centers[:, 1]).astype(np.int64)[:, None, None] + off[None, None, :],
        np.arange(len(centers))[:, None, None])
    rows, cols, seed = rows.ravel(), cols.ravel(), seed.ravel()
    ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols, seed = rows[ok], cols[ok], seed[ok]
    ok = ~voting[rows, cols]
    rows, cols, seed = rows[ok], cols[ok], seed[ok]
    hit = np.hypot(rows + dcme[rows, cols, 0] - centers[seed, 0],
                   cols + dcme[rows, cols, 1] - centers[seed, 1]) <= tolerance
    rows, cols, ids = rows[hit], cols[hit], center_ids[seed[hit]]
    # The encoding gives the zero vector both to an instance's own pixel on its CM and to
    # a background pixel that happens to lie on it (in the gap of a split instance or a
    # ring). The neighbours tell them apart: an own center pixel touches its instance.
    ring = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])
    near_rows = np.clip(rows[:, None] + ring[:, 0], 0, height - 1)  # [M, 8]
    near_cols = np.clip(cols[:, None] + ring[:, 1], 0, width - 1)
    touches = (instance_map[near_rows, near_cols] == ids[:, None]).any(axis=1) & (ids > 0)
    return rows[touches], cols[touches], ids[touches]


def decode_dcme(dcme, *, foreground=None, min_magnitude: float = 0.5,
                blur_sigma: float = 1.0, nms_size: int = 5, min_votes: float = 10,
                max_vote_distance: float = 4.0, max_vote_distance_rel: float = 0.1,
                exact_tolerance: float | None = 1e-3):
    """Instances from a DCME map by Hough-style voting for their centers.

    Every foreground pixel casts one vote at ``pixel + vector``, where its instance's CM
    should be. Votes are counted in a grid of 1-pixel cells (``np.bincount``), centers are
    found in that vote map, and each pixel joins the center its vote landed next to. All
    stages are O(H * W); no pixel x center distance matrix is formed.

    Centers come from two sources:

    * **Exact centers.** A cell with two or more votes that all coincide (within
      ``exact_tolerance``) is a center by itself, whatever ``min_votes`` says, and takes
      exactly the votes of its cell. This is what an encoded ground truth gives: all
      pixels of an instance vote for the same point. Centers only 1 px apart, or an
      instance of 2 pixels, therefore come back exactly. Votes of predicted float vectors
      do not coincide and take the other path; the cell-by-cell check is even skipped
      when no two consecutive voting pixels (raster order) vote for the same point, which
      any encoded instance with two voting pixels side by side in a row does.
    * **Peaks.** The remaining votes are blurred with a Gaussian (``blur_sigma``); a cell is
      a peak where the blurred map is the maximum of its ``nms_size`` window and that
      window holds at least ``min_votes`` votes. A vote goes to the nearest peak (Voronoi
      partition of the grid by ``cv2.distanceTransformWithLabels`` on 2x2-cell blocks,
      whose borders are thus good to about a pixel) if it lies within
      ``max_vote_distance + max_vote_distance_rel * |vector|`` of the peak's center, and
      its pixel is background otherwise.

    **Telling background apart.** The paper's network predicts only the two DCME channels
    and a coarse grid of classes, and it regresses background to the zero vector. Without
    ``foreground``, a pixel whose vector is shorter than ``min_magnitude`` is *still*: it
    does not vote and is background, with one exception. An instance pixel within
    ``min_magnitude`` of its own CM has a short vector too (exactly zero when the CM is
    integral), so a still pixel joins an instance when its vote ``pixel + vector`` meets
    the instance's exact center (within ``exact_tolerance``) and one of its 8 neighbours
    belongs to the instance; the second test keeps out a background pixel that happens to
    lie on the CM, in the gap of a split instance or of a ring. On predicted vectors this
    leaves about one pixel per instance, next to its center, as background. With
    ``foreground``,
    every True pixel votes (short vectors included) and every False pixel is background.
    Pass a pixel-accurate mask there; combine a coarse one, such as the upsampled grid
    classifier, with the magnitude rule first (``coarse & (np.hypot(dcme[..., 0],
    dcme[..., 1]) >= 0.5)``), or the still background inside it votes for itself.

    Limits:

    * A 1-pixel instance holds the zero vector, like background, and is not found.
    * Two exact centers that round to the same pixel (possible only when they are less
      than 1.5 px apart) make a mixed cell, which the peak path decodes as one instance,
      or as none below ``min_votes``.
    * Noisy centers closer than ``nms_size // 2 + 1`` px make one peak, one instance.
    * The encoding holds the zero vector both for an instance's own pixel on its integral
      CM and for a background pixel there. The neighbour test above decides, and errs
      for an own center pixel that touches no other pixel of its instance (background)
      and for a background pixel on the CM with the instance around it (joins).
    * Votes that land more than ``max_vote_distance + nms_size`` px outside the image
      are dropped.

    Args:
      dcme: [H, W, 2] float, pixels, (dy, dx) from each pixel to its CM; exact or predicted.
      foreground: optional [H, W] bool; True pixels vote and may join an instance, False
        pixels are background. Replaces the ``min_magnitude`` rule when given.
      min_magnitude: vector length [pixels] below which a pixel is still: background
        unless its vote meets an exact center. Ignored when ``foreground`` is given.
      blur_sigma: Gaussian sigma [pixels] that smooths the vote map before peak finding;
        about the error of predicted vectors. 0 turns smoothing off.
      nms_size: odd side [pixels] of the window in which a peak must be the maximum
        (non-maximum suppression with ``cv2.dilate``).
      min_votes: fewest votes [pixels] inside a peak's ``nms_size`` window for it to be an
        instance; smaller clusters of votes are background. Exact centers need only 2.
      max_vote_distance: farthest [pixels] a vote may land from its peak's center.
      max_vote_distance_rel: added to ``max_vote_distance`` per pixel of the voter's own
        vector length, since predicted vectors err more the longer they are.
      exact_tolerance: how far apart [pixels] votes may land and still be one point (an
        exact center), and how far from one a still pixel's vote may land. Float32
        rounding of an encoded ground truth is ~1e-4 px at 1024 px. None turns the exact
        path off, for example for vectors quantized so coarsely that votes of unrelated
        pixels coincide.

    Returns:
      A tuple ``(instance_map, centers)``:
        instance_map: [H, W] int32, 0 = background, 1..K = instances, numbered in raster
          order (row, then column) of their centers;
        centers: [K, 2] float32, (row, col) image pixels, the mean vote of each instance's
          pixels; row ``i`` belongs to instance ``i + 1``.

    Raises:
      UserInputError: ``dcme`` is not one finite [H, W, 2] map, ``foreground`` does not
        match it, or a parameter is out of range.

    Example:
      >>> ids = np.zeros((8, 8), np.int32)
      >>> ids[1:4, 1:7] = 24000
      >>> ids[5:8, 0:3] = 26001
      >>> instance_map, centers = decode_dcme(encode_dcme(ids))
      >>> centers
      array([[2. , 3.5],
             [6. , 1. ]], dtype=float32)
    """
    dcme, foreground = _check_decode_inputs(
        dcme, foreground, min_magnitude=min_magnitude, blur_sigma=blur_sigma,
        nms_size=nms_size, min_votes=min_votes, max_vote_distance=max_vote_distance,
        max_vote_distance_rel=max_vote_distance_rel, exact_tolerance=exact_tolerance)
    height, width = dcme.shape[:2]
    # (dy, dx) read as one complex64 gives every vector's length in one contiguous pass.
    length = np.abs(dcme.view(np.complex64)[..., 0])  # [H, W] pixels
    voting = length >= min_magnitude if foreground is None else foreground

    # === Votes ===
    pixels = np.flatnonzero(voting)
    vote_y = (dcme[..., 0] + np.arange(height, dtype=np.float32)[:, None]).ravel().take(pixels)
    vote_x = (dcme[..., 1] + np.arange(width, dtype=np.float32)).ravel().take(pixels)
    cell_y = np.rint(vote_y)
    cell_x = np.rint(vote_x)
    if len(pixels):
        # Votes this far outside the image cannot reach the center of an instance in it.
        margin = math.ceil(max_vote_distance) + nms_size
        if (cell_y.min() < -margin or cell_y.max() >= height + margin
                or cell_x.min() < -margin or cell_x.max() >= width + margin):
            inside = ((cell_y >= -margin) & (cell_y < height + margin)
                      & (cell_x >= -margin) & (cell_x < width + margin))
            pixels, vote_y, vote_x, cell_y, cell_x = (
                a[inside] for a in (pixels, vote_y, vote_x, cell_y, cell_x))
    if not len(pixels):
        return np.zeros((height, width), np.int32), np.zeros((0, 2), np.float32)
    # The vote grid spans the votes only, which is smaller than the image on most frames;
    # its sides are even for the 2x2 blocks of the Voronoi partition.
    top, left = cell_y.min(), cell_x.min()
    grid_h = (int(cell_y.max() - top) + 2) // 2 * 2
    grid_w = (int(cell_x.max() - left) + 2) // 2 * 2
    # Cell indices are whole numbers, exact in float32 below 2^24 cells (4096 x 4096).
    exact_dtype = np.float32 if grid_h * grid_w <= 2**24 else np.float64
    cells = ((cell_y - top).astype(exact_dtype, copy=False) * grid_w
             + (cell_x - left)).astype(np.int64)
    count = np.bincount(cells, minlength=grid_h * grid_w)
    origin = (float(top), float(left))

    # === Exact centers ===
    exact_cells = np.zeros(0, np.int64)
    exact_seed = exact_cells
    exact_centers = np.zeros((0, 2))
    if exact_tolerance is not None:
        exact_cells, exact_seed, exact_centers = _exact_seeds(
            vote_y, vote_x, cell_y, cell_x, cells, count, grid_w, origin, exact_tolerance)
    num_exact = len(exact_centers)

    # === Peaks ===
    hist = count.astype(np.float32)
    hist[exact_cells] = 0
    cell_seed, peak_centers = _peak_seeds(
        hist.reshape(grid_h, grid_w), origin, blur_sigma, nms_size, min_votes)
    centers = np.concatenate([exact_centers, peak_centers])
    if not len(centers):
        return np.zeros((height, width), np.int32), np.zeros((0, 2), np.float32)

    # === Assignment ===
    if num_exact:
        cell_seed[cell_seed >= 0] += num_exact
        cell_seed[exact_cells] = exact_seed
    seed = cell_seed.take(cells)
    reach = length.ravel().take(pixels)
    reach *= max_vote_distance_rel
    reach += max_vote_distance
    miss_y = vote_y - centers[:, 0].astype(np.float32).take(seed)
    miss_x = vote_x - centers[:, 1].astype(np.float32).take(seed)
    far = miss_y * miss_y + miss_x * miss_x > reach * reach
    if num_exact:
        far &= seed >= num_exact  # exact votes sit on their center by construction
    seed[far | (seed < 0)] = -1

    # === Instances ===
    # Slot 0 collects the votes that joined no seed.
    slot = seed + 1
    num_slots = len(centers) + 1
    size = np.bincount(slot, minlength=num_slots)
    found = np.flatnonzero(size[1:]) + 1
    mean = np.stack([np.bincount(slot, vote_y, num_slots)[found],
                     np.bincount(slot, vote_x, num_slots)[found]], axis=-1) / size[found, None]
    order = np.lexsort((mean[:, 1], mean[:, 0]))
    new_id = np.zeros(num_slots, np.int32)
    new_id[found[order]] = np.arange(1, len(found) + 1, dtype=np.int32)
    instance_map = np.zeros((height, width), np.int32)
    instance_map.ravel()[pixels] = new_id.take(slot)
    if foreground is None and num_exact:
        rows, cols, ids = _center_pixels(dcme, voting, exact_centers, new_id[1:num_exact + 1],
                                         instance_map, min_magnitude, exact_tolerance)
        instance_map[rows, cols] = ids
    return instance_map, mean[order].astype(np.float32)
