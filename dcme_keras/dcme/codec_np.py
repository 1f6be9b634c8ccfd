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


def _check_decode_inputs(dcme, foreground, *, min_magnitude, peak_magnitude, blur_sigma,
                         nms_size, min_votes, min_foreground_votes, max_vote_distance,
                         max_vote_distance_rel, exact_tolerance):
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
    for name, value in (("min_magnitude", min_magnitude),
                        ("peak_magnitude", peak_magnitude), ("blur_sigma", blur_sigma),
                        ("max_vote_distance", max_vote_distance),
                        ("max_vote_distance_rel", max_vote_distance_rel)):
        if not value >= 0:
            raise UserInputError(f"{name}={value} must be >= 0; pass a non-negative value")
    if int(nms_size) != nms_size or nms_size < 1 or nms_size % 2 == 0:
        raise UserInputError(f"nms_size={nms_size} must be an odd integer >= 1, e.g. 5")
    for name, value, example in (("min_votes", min_votes, 35),
                                 ("min_foreground_votes", min_foreground_votes, 10)):
        if not value >= 1:
            raise UserInputError(f"{name}={value} must be >= 1, e.g. {example}")
    if exact_tolerance is not None and not exact_tolerance > 0:
        raise UserInputError(
            f"exact_tolerance={exact_tolerance} must be > 0 (e.g. 1e-3), or None to turn "
            "the exact-vote path off")
    return dcme, foreground


def _has_exact_pairs(dcme, voting, tolerance):
    """Whether the field is an encoded ground truth: most neighbouring voters agree exactly.

    Neighbouring pixels of an encoded instance vote for one CM: the right (lower) one's
    dx (dy) is exactly 1 smaller and the other component equal, so nearly every pair of
    side-by-side voting pixels agrees. In a predicted float field a pair agrees within
    ``tolerance`` only by chance (a few dozen of 500k pairs in a smooth one), so half
    of the pairs is the bar.

    Args:
      dcme: [H, W, 2] float32, (dy, dx) [pixels].
      voting: [H, W] bool, pixels that vote.
      tolerance: largest L1 distance [pixels] between two votes that are one point.

    Returns:
      bool.
    """
    dy, dx = dcme[..., 0], dcme[..., 1]
    pairs = agree = 0
    for axis, along, across in ((1, dx, dy), (0, dy, dx)):
        first = [slice(None), slice(None)]
        second = [slice(None), slice(None)]
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        first, second = tuple(first), tuple(second)
        both = voting[first] & voting[second]  # [H, W-1] or [H-1, W]
        miss = np.abs(along[second] - along[first] + 1) + np.abs(across[second] - across[first])
        pairs += int(np.count_nonzero(both))
        agree += int(np.count_nonzero((miss <= tolerance) & both))
    return pairs > 0 and agree >= 0.5 * pairs


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
       centers [S, 2] float64 (row, col) image pixels, votes [S] float64 per center).
    """
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
        return exact_cells, exact_cells, np.zeros((0, 2)), np.zeros(0)
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
    votes = np.bincount(seed, weight, num_seeds)
    centers /= votes[:, None]
    return exact_cells, seed, centers, votes


def _window_sum(cells: np.ndarray, nms_size: int) -> np.ndarray:
    """Sum of ``cells`` over the ``nms_size`` square window around each cell (zero borders)."""
    return cv2.boxFilter(cells, -1, (nms_size, nms_size), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)


#: Least pixels of a foreground component with no center for it to become an instance.
MIN_COMPONENT_PIXELS = 10

#: A weaker peak within ``max_vote_distance + min(SADDLE_REACH * mean vote length,
#: SADDLE_MAX)`` px of a stronger one merges into it when the blurred vote map between
#: them stays at or above ``SADDLE_RATIO`` of the lower peak: one blob, not two.
SADDLE_REACH = 3.0
SADDLE_MAX = 16.0
SADDLE_RATIO = 0.5


def _bridged_pairs(blurred, centers, peak_seed, peaks, order, reach):
    """Seed pairs whose votes form one blob: no valley on the segment between them.

    Args:
      blurred: [GH, GW] float32, the smoothed vote map.
      centers: [S, 2] float64 (row, col) cells of the seeds.
      peak_seed: [P] int, the seed of every peak cell; peaks: [P] int flat peak cells.
      order: [S] int, seeds strongest first.
      reach: [S] float, farthest [cells] a seed may lie from a stronger one it joins.

    Returns:
      ``{stronger seed: [weaker seeds]}`` for the pairs within the weaker one's reach
      whose lowest blurred value on the segment (sampled every half cell at most) is at
      least ``SADDLE_RATIO`` of the lower of the two peaks.
    """
    pairs = spatial.cKDTree(centers).query_pairs(float(reach.max()), output_type="ndarray")
    if not len(pairs):
        return {}
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    stronger = np.where(rank[pairs[:, 0]] < rank[pairs[:, 1]], pairs[:, 0], pairs[:, 1])
    weaker = pairs[:, 0] + pairs[:, 1] - stronger
    start, end = centers[stronger], centers[weaker]
    distance = np.hypot(*(end - start).T)
    near = distance <= reach[weaker]
    if not near.any():
        return {}
    stronger, weaker, start, end = stronger[near], weaker[near], start[near], end[near]
    height = np.zeros(len(centers))
    np.maximum.at(height, peak_seed, blurred.ravel().take(peaks))
    steps = int(np.ceil(2 * reach.max())) + 1
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    cells = np.rint(start[:, None] + t * (end - start)[:, None]).astype(np.int64)  # [Q, n, 2]
    rows = np.clip(cells[..., 0], 0, blurred.shape[0] - 1)
    cols = np.clip(cells[..., 1], 0, blurred.shape[1] - 1)
    ridge = blurred[rows, cols].min(axis=1)
    one_blob = ridge >= SADDLE_RATIO * np.minimum(height[stronger], height[weaker])
    bridged: dict[int, list[int]] = {}
    for s, w in zip(stronger[one_blob].tolist(), weaker[one_blob].tolist()):
        bridged.setdefault(s, []).append(w)
    return bridged


def _peak_seeds(hist, support, cells, vote_length, origin, blur_sigma, nms_size, min_votes,
                max_vote_distance, max_vote_distance_rel):
    """Peaks of the smoothed vote map that gather an object's votes, merged, and the
    Voronoi partition of the grid between them.

    Args:
      hist: [GH, GW] float32, votes per cell (exact cells removed); GH and GW even.
      support: [GH, GW] float32, the evidence each cell gives for a center: the net
        import (long votes landing in the cell minus long voters standing on it), or the
        votes themselves when a foreground mask already removed the background.
      cells: [N] int64, flat vote-grid cell of every vote.
      vote_length: [N] float32, vector length [pixels] of every vote.
      origin: (row, col) image pixels of the vote grid's cell 0.
      blur_sigma: Gaussian sigma [cells] applied before peak finding; 0 for none.
      nms_size: side [cells] of the square window a peak must be the maximum of.
      min_votes: least ``support`` inside that window around a peak.
      max_vote_distance, max_vote_distance_rel: a weaker peak closer than
        ``max_vote_distance + max_vote_distance_rel * mean vote length`` to a stronger
        one is the same center's votes scattered by vector errors, and is merged into it.

    Returns:
      (cell_seed [GH * GW] int32 nearest seed of every cell, -1 everywhere when there is
       no peak; centers [S, 2] float64 (row, col) image pixels, the vote-weighted mean cell
       position in the window around each peak; strength [S] float64, the window
       ``support`` of each seed).
    """
    grid_h, grid_w = hist.shape
    blurred = hist
    if blur_sigma > 0:
        blurred = cv2.GaussianBlur(hist, (0, 0), blur_sigma, borderType=cv2.BORDER_CONSTANT)
    window = np.ones((nms_size, nms_size), np.uint8)
    strength_map = _window_sum(support, nms_size)
    # The vote grid ends where the votes end, so constant-zero borders change nothing.
    is_peak = (blurred >= cv2.dilate(blurred, window)) & (strength_map >= min_votes)
    peaks = np.flatnonzero(is_peak)
    if not len(peaks):
        return np.full(grid_h * grid_w, -1, np.int32), np.zeros((0, 2)), np.zeros(0)
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

    half = nms_size // 2
    off = np.arange(-half, half + 1)
    rows, cols = np.broadcast_arrays(
        np.clip(peak_rows[:, None, None] + off[None, :, None], 0, grid_h - 1),
        np.clip(peak_cols[:, None, None] + off[None, None, :], 0, grid_w - 1))
    rows = rows.reshape(len(peaks), -1)  # [P, nms_size^2]
    cols = cols.reshape(len(peaks), -1)
    n = hist[rows, cols].astype(np.float64)  # [P, nms_size^2]
    votes = np.bincount(peak_seed, n.sum(1), num_seeds)  # [S]
    sums = np.stack([np.bincount(peak_seed, (n * rows).sum(1), num_seeds),
                     np.bincount(peak_seed, (n * cols).sum(1), num_seeds)], axis=-1)
    centers = sums / np.maximum(votes, 1e-9)[:, None]  # [S, 2] grid cells
    strength = np.zeros(num_seeds)
    np.maximum.at(strength, peak_seed, strength_map.ravel().take(peaks))
    # Summed vote lengths, for the votes in the peaks' windows only.
    near_peak = cv2.dilate(is_peak.view(np.uint8), window).ravel().take(cells).view(bool)
    length_sum = np.bincount(cells[near_peak], vote_length[near_peak],
                             hist.size).reshape(grid_h, grid_w)
    mean_length = np.bincount(peak_seed, length_sum[rows, cols].sum(1), num_seeds)
    mean_length /= np.maximum(votes, 1e-9)

    # === Merging ===
    # Vector errors grow with the vector, so a long object's votes spread into a plateau
    # (a shrunk copy of the object under a scale bias) with several local maxima. Strongest
    # first, a seed absorbs every weaker one that lies within the weaker one's vote error.
    # A shrunk copy is also a blob with no valley between its maxima, whereas the votes of
    # two objects, even touching ones, keep a gap between them: a weaker seed within
    # ``max_vote_distance + min(SADDLE_REACH * mean vote length, SADDLE_MAX)`` merges too
    # when the blurred vote map never drops below ``SADDLE_RATIO`` of the lower peak on
    # the segment between the two.
    radius = max_vote_distance + max_vote_distance_rel * mean_length  # [S] cells
    order = np.argsort(-strength, kind="stable")
    bridged = _bridged_pairs(blurred, centers, peak_seed, peaks, order,
                             max_vote_distance + np.minimum(SADDLE_REACH * mean_length,
                                                            SADDLE_MAX))
    tree = spatial.cKDTree(centers)
    merged_into = np.arange(num_seeds)
    kept = np.zeros(num_seeds, bool)
    for s in order:
        if merged_into[s] != s:
            continue
        kept[s] = True
        for t in tree.query_ball_point(centers[s], radius.max()):
            if (not kept[t] and merged_into[t] == t
                    and np.hypot(*(centers[t] - centers[s])) <= radius[t]):
                merged_into[t] = s
        for t in bridged.get(s, ()):
            if not kept[t] and merged_into[t] == t:
                merged_into[t] = s
    keep = np.flatnonzero(kept)
    new_index = np.full(num_seeds, -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    peak_seed = new_index[merged_into[peak_seed]]
    centers, strength = centers[keep] + origin, strength[keep]

    # Voronoi partition on blocks of 2x2 cells: 4x cheaper than on cells, and it moves
    # the border between two seeds by about one pixel. Kept seeds are >= 2 cells apart
    # (closer ones merged above), so no two share a block.
    seed_rows = np.rint(centers[:, 0] - origin[0]).astype(np.int64)
    seed_cols = np.rint(centers[:, 1] - origin[1]).astype(np.int64)
    seed_rows = np.clip(seed_rows, 0, grid_h - 1)
    seed_cols = np.clip(seed_cols, 0, grid_w - 1)
    blocks = np.ones((grid_h // 2, grid_w // 2), np.uint8)
    blocks[seed_rows // 2, seed_cols // 2] = 0
    _, labels = cv2.distanceTransformWithLabels(blocks, cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.zeros(labels.max() + 1, np.int32)
    lut[labels[seed_rows // 2, seed_cols // 2]] = np.arange(len(keep))
    cell_seed = cv2.resize(lut.take(labels), (grid_w, grid_h), interpolation=cv2.INTER_NEAREST)
    return cell_seed.ravel(), centers, strength


def _short_voters(dcme, length, centers, cell_seed, seed_ids, grid_w, origin, min_magnitude,
                  peak_magnitude, max_vote_distance, max_vote_distance_rel):
    """Pixels with a short vector (``min_magnitude <= |v| < peak_magnitude``) that join an
    instance: their vote lands in a seed's Voronoi cell within that seed's reach.

    Only pixels this close to a center can, so only those are looked at: a disk of
    ``peak_magnitude * (1 + max_vote_distance_rel) + max_vote_distance`` px around each.

    Args:
      dcme: [H, W, 2] float32, (dy, dx) [pixels].
      length: [H, W] float32, vector length [pixels].
      centers: [K, 2] float64 (row, col), the instances' centers.
      cell_seed: [GH * GW] int32, nearest seed of every vote-grid cell, -1 for none.
      seed_ids: [S] int32, the instance id (1..K, or 0) of each seed.
      grid_w: cells per row of the vote grid.
      origin: (row, col) image pixels of the vote grid's cell 0.
      min_magnitude, peak_magnitude, max_vote_distance, max_vote_distance_rel: as in
        :func:`decode_dcme`.

    Returns:
      (rows [M] int64, cols [M] int64, ids [M] int32) of the pixels that join.
    """
    height, width = length.shape
    radius = int(math.ceil(peak_magnitude * (1 + max_vote_distance_rel) + max_vote_distance))
    near = np.zeros((height, width), np.uint8)
    for row, col in np.rint(centers).astype(np.int64):
        cv2.circle(near, (int(col), int(row)), radius, 1, -1)
    pixels = np.flatnonzero(near)
    short = length.ravel().take(pixels)
    pixels = pixels[(short >= min_magnitude) & (short < peak_magnitude)]
    rows, cols = np.divmod(pixels, width)
    vote_y = rows + dcme[rows, cols, 0]
    vote_x = cols + dcme[rows, cols, 1]
    grid_h = len(cell_seed) // grid_w
    cell_r = np.rint(vote_y - origin[0]).astype(np.int64)
    cell_c = np.rint(vote_x - origin[1]).astype(np.int64)
    inside = (cell_r >= 0) & (cell_r < grid_h) & (cell_c >= 0) & (cell_c < grid_w)
    rows, cols, vote_y, vote_x = rows[inside], cols[inside], vote_y[inside], vote_x[inside]
    seed = cell_seed[cell_r[inside] * grid_w + cell_c[inside]]
    ids = np.where(seed >= 0, seed_ids[np.maximum(seed, 0)], 0)
    index = np.maximum(ids - 1, 0)
    reach = max_vote_distance + max_vote_distance_rel * length[rows, cols]
    joins = (ids > 0) & (np.hypot(vote_y - centers[index, 0], vote_x - centers[index, 1])
                         <= reach)
    return rows[joins], cols[joins], ids[joins]


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


def _join_foreground(dcme, foreground, instance_map, evidence, min_pixels,
                     max_vote_distance, max_vote_distance_rel):
    """Give every foreground pixel that joined no center an instance.

    A foreground mask says which pixels are objects; what is left for the vectors is
    which object. So, as Panoptic-DeepLab assigns every thing pixel to its nearest
    center, a foreground pixel whose vote missed every center's reach (an under-trained
    field shrinks its vectors toward zero) joins the nearest center, by its vote, among
    the instances in its own 8-connected component of the mask; a component with no
    instance in it becomes an instance when it holds at least ``min_pixels`` pixels.

    Args:
      dcme: [H, W, 2] float32, (dy, dx) [pixels].
      foreground: [H, W] bool.
      instance_map: [H, W] int32, 0 = background, 1..K = instances; updated in place.
      evidence: [K] float32 [votes] of the instances.
      min_pixels: least pixels of a component with no instance for it to become one.
      max_vote_distance, max_vote_distance_rel: as in :func:`decode_dcme`; a new
        instance's evidence is the number of its votes within this reach of its center.

    Returns:
      ``(instance_map [H, W] int32 numbered in raster order of the centers, centers
      [K', 2] float32 (row, col) mean vote of each instance's pixels, evidence [K']
      float32)``.
    """
    height, width = foreground.shape
    num_instances = len(evidence)
    flat = instance_map.ravel()
    vote_y = dcme[..., 0] + np.arange(height, dtype=np.float32)[:, None]
    vote_x = dcme[..., 1] + np.arange(width, dtype=np.float32)
    left = np.flatnonzero(foreground.ravel() & (flat == 0))
    if len(left):
        _, component = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=8)
        component = component.ravel()
        # The instances present in each component, as a [components, most] table.
        joined = np.flatnonzero(flat)
        pairs = np.unique(component.take(joined).astype(np.int64) * (num_instances + 1)
                          + flat.take(joined))
        pair_component, pair_id = np.divmod(pairs, num_instances + 1)
        per_component = np.bincount(pair_component, minlength=component.max() + 1)
        rank = np.arange(len(pairs)) - np.repeat(np.cumsum(per_component) - per_component,
                                                 per_component)
        table = np.zeros((len(per_component), max(per_component.max(), 1)), np.int64)
        table[pair_component, rank] = pair_id
        pixels_per_id = np.maximum(np.bincount(flat, minlength=num_instances + 1), 1)
        mean_y = np.bincount(flat, vote_y.ravel(), num_instances + 1) / pixels_per_id
        mean_x = np.bincount(flat, vote_x.ravel(), num_instances + 1) / pixels_per_id
        candidates = table[component.take(left)]  # [M, most] ids, 0 = none
        miss = np.hypot(vote_y.ravel().take(left)[:, None] - mean_y[candidates],
                        vote_x.ravel().take(left)[:, None] - mean_x[candidates])
        miss[candidates == 0] = np.inf
        nearest = candidates[np.arange(len(left)), miss.argmin(axis=1)]
        flat[left] = nearest
        # Components without an instance: one instance each, if large enough.
        orphans = left[nearest == 0]
        labels, sizes = np.unique(component.take(orphans), return_counts=True)
        labels = labels[sizes >= min_pixels]
        if len(labels):
            new_id = np.zeros(component.max() + 1, np.int32)
            new_id[labels] = np.arange(num_instances + 1, num_instances + 1 + len(labels))
            flat[orphans] = new_id[component.take(orphans)]
    num_slots = int(flat.max()) + 1
    size = np.bincount(flat, minlength=num_slots)
    found = np.flatnonzero(size[1:]) + 1
    centers = np.stack([np.bincount(flat, vote_y.ravel(), num_slots)[found],
                        np.bincount(flat, vote_x.ravel(), num_slots)[found]],
                       axis=-1) / size[found, None]
    # A new instance's evidence is its votes within reach of its center, as a peak's is.
    new = found > num_instances
    support = np.zeros(len(found))
    if new.any():
        index = np.zeros(num_slots, np.int64)
        index[found] = np.arange(len(found))
        pixels = np.flatnonzero(flat > num_instances)
        slot = index.take(flat.take(pixels))
        reach = max_vote_distance + max_vote_distance_rel * np.hypot(
            dcme[..., 0].ravel().take(pixels), dcme[..., 1].ravel().take(pixels))
        close = np.hypot(vote_y.ravel().take(pixels) - centers[slot, 0],
                         vote_x.ravel().take(pixels) - centers[slot, 1]) <= reach
        support = np.bincount(slot[close], minlength=len(found)).astype(np.float64)
    strength = np.where(new, support, np.concatenate([[0.0], evidence])[
        np.minimum(found, num_instances)])
    order = np.lexsort((centers[:, 1], centers[:, 0]))
    renumber = np.zeros(num_slots, np.int32)
    renumber[found[order]] = np.arange(1, len(found) + 1, dtype=np.int32)
    instance_map = renumber.take(flat).reshape(height, width)
    return (instance_map, centers[order].astype(np.float32),
            strength[order].astype(np.float32))


def _net_import(votes, long_voters, grid_h, grid_w, origin):
    """Net import of long votes per vote-grid cell: the evidence for a center there.

    Background pixels of a predicted field vote next to themselves, about one vote per
    pixel wherever the error is long enough to vote, so a window of background holds
    about as many votes as voters. A center gathers the votes of a whole object from
    outside its window. Counting, per cell, the long votes (``|vector| >=
    peak_magnitude``) that land there minus the long voters that stand there leaves ~0
    on background, a negative value inside an object (its pixels vote away) and the
    object's size at its center.

    Args:
      votes: [grid_h * grid_w] long votes landing in each cell.
      long_voters: [H, W] bool, pixels with a long vector (wherever their vote landed).
      grid_h, grid_w: vote-grid size [cells].
      origin: (row, col) image pixels of the vote grid's cell 0.

    Returns:
      [grid_h * grid_w] float32, long votes minus long voters per cell.
    """
    height, width = long_voters.shape
    top, left = int(origin[0]), int(origin[1])
    support = votes.astype(np.float32).reshape(grid_h, grid_w)
    rows = slice(max(top, 0), min(top + grid_h, height))
    cols = slice(max(left, 0), min(left + grid_w, width))
    if rows.start < rows.stop and cols.start < cols.stop:
        support[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] -= \
            long_voters[rows, cols]
    return support.ravel()


def _empty_decoding(height, width):
    """``(instance_map, centers, evidence)`` of a map without instances."""
    return (np.zeros((height, width), np.int32), np.zeros((0, 2), np.float32),
            np.zeros(0, np.float32))


def decode_dcme(dcme, *, foreground=None, min_magnitude: float = 0.5,
                peak_magnitude: float = 3.0, blur_sigma: float = 1.0, nms_size: int = 5,
                min_votes: float = 35, min_foreground_votes: float = 10,
                max_vote_distance: float = 4.0,
                max_vote_distance_rel: float = 0.2, exact_tolerance: float | None = 1e-3,
                join_foreground: bool = True, return_evidence: bool = False):
    """Instances from a DCME map by Hough-style voting for their centers.

    Every voting pixel casts one vote at ``pixel + vector``, where its instance's CM
    should be. Votes are counted in a grid of 1-pixel cells (``np.bincount``), centers are
    found in that vote map, and each pixel joins the center its vote landed next to. All
    stages are O(H * W); no pixel x center distance matrix is formed.

    Centers come from two sources:

    * **Exact centers.** When two neighbouring pixels vote for the same point (within
      ``exact_tolerance``), the field is an encoded ground truth, and a cell with two or
      more votes that all coincide is a center by itself, whatever ``min_votes`` says; it
      takes exactly the votes of its cell. Centers only 1 px apart, or an instance of 2
      pixels, therefore come back exactly. Predicted float vectors never agree that
      closely and take the other path.
    * **Peaks**, for predicted fields. A network's field has an error on every pixel, the
      background included, so background pixels vote next to themselves at about one
      vote per pixel, and any fixed count of votes per window fires everywhere. A center
      is told apart by **vote concentration**: it gathers the votes of a whole object from
      outside its window. The evidence for a center in a cell is the *net import* of long
      votes (``|vector| >= peak_magnitude``): those landing in the cell minus those cast
      from it. It is about 0 on background, negative inside an object (its pixels vote
      away) and the object's size at its center. A cell is a peak where the
      Gaussian-blurred (``blur_sigma``) map of long votes is the maximum of its
      ``nms_size`` window and that window's net import is at least ``min_votes``.
      Vector errors grow with the vector, so a large object's votes spread into a plateau
      with several maxima: strongest first, a peak absorbs each weaker peak closer than
      ``max_vote_distance + max_vote_distance_rel * (mean vote length of the weaker
      one)``, and each weaker peak within ``max_vote_distance + min(SADDLE_REACH * mean
      vote length, SADDLE_MAX)`` whose segment to it never drops below ``SADDLE_RATIO``
      of the lower peak in the blurred vote map (one blob: shrunk vectors spread an
      object's votes into a shrunk copy of it; two objects' votes keep a gap). A vote
      then goes to the nearest peak (Voronoi partition of the grid by
      ``cv2.distanceTransformWithLabels`` on 2x2-cell blocks, whose borders are thus good
      to about a pixel) if it lies within ``max_vote_distance + max_vote_distance_rel *
      |vector|`` of the peak's center; its pixel is background otherwise. Pixels whose
      vector is shorter than ``peak_magnitude`` (most of the background) join the same
      way, and only those near a found center are looked at.

    **Telling background apart.** The paper's network predicts only the two DCME channels
    and a coarse grid of classes, and it regresses background to the zero vector. Without
    ``foreground``, a pixel whose vector is shorter than ``min_magnitude`` is *still*: it
    does not vote and is background, with one exception. An instance pixel within
    ``min_magnitude`` of its own CM has a short vector too (exactly zero when the CM is
    integral), so a still pixel joins an instance when its vote ``pixel + vector`` meets
    the instance's exact center (within ``exact_tolerance``) and one of its 8 neighbours
    belongs to the instance; the second test keeps out a background pixel that happens to
    lie on the CM, in the gap of a split instance or of a ring. On predicted vectors this
    leaves about one pixel per instance, next to its center, as background. Background
    pixels with longer, noisy vectors never make an instance of their own (their net
    import is ~0); those within reach of a real center join it. With ``foreground``,
    every True pixel votes (short vectors included), every False pixel is background,
    and the evidence is the votes themselves (no background is left to cancel); a peak
    needs ``min_foreground_votes`` of them. A mask also says that its pixels *are*
    objects, so with ``join_foreground`` (the default) no mask pixel is left as
    background: as Panoptic-DeepLab gives every thing pixel to its nearest center, a mask
    pixel whose vote missed every center's reach (an under-trained network shrinks its
    vectors) joins the nearest center, by its vote, among the instances of its own
    8-connected component of the mask, and a component with no instance becomes one when
    it has ``MIN_COMPONENT_PIXELS`` (10) pixels or more (its evidence: its votes within
    reach of its mean vote). With no background noise to reject, a peak needs only
    ``min_foreground_votes`` (10) votes, which keeps small objects, touching ones too
    (measured with a ground-truth mask under 1-2 px noise: 94-99 % of objects >= 10 px
    found at 10 votes, 79-87 % at 35). An under-trained network's votes scatter into
    small clusters within an object, and each becomes an instance: on the outputs of two
    trained networks with foreground heads (``cpu`` preset, 128x256, synthetic val,
    ``benchmarks/decode.py``'s trained row) ``min_foreground_votes=35`` cut the extra
    instances per object from 4.65 to 1.30 and from 6.28 to 2.60 at equal or better
    recall (0.435 against 0.426, 0.125 against 0.083), since an isolated small object
    still comes back as a component; raise it for such networks. Pass a
    pixel-accurate mask there; combine a coarse one, such as the upsampled grid
    classifier, with the magnitude rule first (``coarse & (np.hypot(dcme[..., 0],
    dcme[..., 1]) >= 0.5)``), or the still background inside it votes for itself.

    Measured on 512x1024 maps with noise on every pixel (``benchmarks/decode.py``): recall
    at IoU 0.5 of instances >= 100 px is >= 0.97 under i.i.d. noise up to sigma = 2 px,
    shrinkage x0.85 and smooth errors, with <= 0.074 extra instances per object on
    synthetic layouts and none under i.i.d. noise on real Cityscapes layouts. Where a
    smooth error field contracts over a wide background (real layouts: sky, road), it can
    gather 35-50 votes like a small object does (0.25-0.46 extra instances per object
    there); such instances have low ``evidence`` (real instances: a median of 190-440),
    which :func:`dcme_keras.inference.instances_from_outputs` puts into their score.

    Limits:

    * A 1-pixel instance holds the zero vector, like background, and is not found.
    * On predicted fields, an object gathering fewer than ``min_votes`` long votes from
      outside its center's window (below ~60-100 px at sigma = 1 px) is not found;
      lowering ``min_votes`` finds more small objects and more background fragments.
    * Two exact centers that round to the same pixel (possible only when they are less
      than 1.5 px apart) make a mixed cell, which the peak path decodes as one instance,
      or as none below ``min_votes``.
    * Noisy centers closer than ``max_vote_distance`` (plus the vote error) make one
      instance.
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
      peak_magnitude: vector length [pixels] from which a vote counts as evidence for a
        center (net import); shorter vectors are what background noise mostly gives.
        Ignored when ``foreground`` is given.
      blur_sigma: Gaussian sigma [pixels] that smooths the vote map before peak finding;
        about the error of predicted vectors. 0 turns smoothing off.
      nms_size: odd side [pixels] of the window in which a peak must be the maximum
        (non-maximum suppression with ``cv2.dilate``) and over which its net import is
        summed.
      min_votes: least net import [votes] in a peak's ``nms_size`` window for it to be an
        instance. Exact centers need only 2 votes.
      min_foreground_votes: with ``foreground``, least votes in a peak's window instead.
      max_vote_distance: farthest [pixels] a vote may land from its peak's center, and
        the least distance between two peaks that stay apart.
      max_vote_distance_rel: added to ``max_vote_distance`` per pixel of the voter's own
        vector length, since predicted vectors err more the longer they are (a scale
        bias of 15 % needs 0.15 or more).
      exact_tolerance: how far apart [pixels] votes may land and still be one point (an
        exact center), and how far from one a still pixel's vote may land. Float32
        rounding of an encoded ground truth is ~1e-4 px at 1024 px. None turns the exact
        path off, for example for vectors quantized so coarsely that votes of unrelated
        pixels coincide (int8 model outputs).
      join_foreground: with ``foreground``, give every mask pixel an instance (see
        above); False leaves the pixels whose vote missed every center as background,
        which scores the vectors alone. Ignored without ``foreground``.
      return_evidence: also return each instance's evidence.

    Returns:
      A tuple ``(instance_map, centers)``:
        instance_map: [H, W] int32, 0 = background, 1..K = instances, numbered in raster
          order (row, then column) of their centers;
        centers: [K, 2] float32, (row, col) image pixels, the mean vote of each instance's
          pixels; row ``i`` belongs to instance ``i + 1``;
        evidence (only with ``return_evidence``): [K] float32 [votes], the net import of
          a peak's window (votes with ``foreground``), the vote count of an exact
          center, or for a mask component that became an instance of its own, its votes
          within reach of its center; how strongly the field supports the instance, for
          scoring.

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
        dcme, foreground, min_magnitude=min_magnitude, peak_magnitude=peak_magnitude,
        blur_sigma=blur_sigma,
        nms_size=nms_size, min_votes=min_votes, min_foreground_votes=min_foreground_votes,
        max_vote_distance=max_vote_distance, max_vote_distance_rel=max_vote_distance_rel,
        exact_tolerance=exact_tolerance)
    height, width = dcme.shape[:2]

    def _finish(instance_map, centers, evidence):
        if foreground is not None and join_foreground:
            instance_map, centers, evidence = _join_foreground(
                dcme, foreground, instance_map, evidence, MIN_COMPONENT_PIXELS,
                max_vote_distance, max_vote_distance_rel)
        return (instance_map, centers, evidence) if return_evidence else (instance_map,
                                                                          centers)

    # (dy, dx) read as one complex64 gives every vector's length in one contiguous pass.
    length = np.abs(dcme.view(np.complex64)[..., 0])  # [H, W] pixels
    voting = length >= min_magnitude if foreground is None else foreground
    exact = exact_tolerance is not None and _has_exact_pairs(dcme, voting, exact_tolerance)
    # On a predicted field a short vector can only join a center next to its own pixel.
    # Most background pixels have one, so they are left out of the vote grid and only
    # those near a found center are looked at, at the end.
    deferred = foreground is None and not exact and peak_magnitude > min_magnitude
    if deferred:
        voting = length >= peak_magnitude

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
        return _finish(*_empty_decoding(height, width))
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
    exact_centers, exact_votes = np.zeros((0, 2)), np.zeros(0)
    if exact:
        exact_cells, exact_seed, exact_centers, exact_votes = _exact_seeds(
            vote_y, vote_x, cell_y, cell_x, cells, count, grid_w, origin, exact_tolerance)
    num_exact = len(exact_centers)

    # === Peaks ===
    hist = count.astype(np.float32)
    hist[exact_cells] = 0
    if foreground is None:
        long_voters = voting if deferred else length >= peak_magnitude
        long_votes = count if deferred else np.bincount(
            cells[long_voters.ravel().take(pixels)], minlength=grid_h * grid_w)
        support = _net_import(long_votes, long_voters, grid_h, grid_w, origin)
        support[exact_cells] = 0
    else:
        support = hist
    cell_seed, peak_centers, peak_strength = _peak_seeds(
        hist.reshape(grid_h, grid_w), support.reshape(grid_h, grid_w), cells,
        length.ravel().take(pixels), origin, blur_sigma, nms_size,
        min_votes if foreground is None else min_foreground_votes,
        max_vote_distance, max_vote_distance_rel)
    centers = np.concatenate([exact_centers, peak_centers])
    evidence = np.concatenate([exact_votes, peak_strength])
    if not len(centers):
        return _finish(*_empty_decoding(height, width))

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
    if deferred:
        rows, cols, ids = _short_voters(dcme, length, mean[order], cell_seed, new_id[1:],
                                        grid_w, origin, min_magnitude, peak_magnitude,
                                        max_vote_distance, max_vote_distance_rel)
        instance_map[rows, cols] = ids
    if foreground is None and num_exact:
        rows, cols, ids = _center_pixels(dcme, voting, exact_centers, new_id[1:num_exact + 1],
                                         instance_map, min_magnitude, exact_tolerance)
        instance_map[rows, cols] = ids
    return _finish(instance_map, mean[order].astype(np.float32),
                   evidence[found[order] - 1].astype(np.float32))
