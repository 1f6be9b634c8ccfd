"""Figures of paper 000: predictions side by side (Fig. 4), DCME magnitudes (Fig. 2), losses;
and of paper 003: the annotator's border-error histogram (Fig. 3).

Every figure is drawn with matplotlib's object API on an Agg canvas (no pyplot, so no global
state and no display is needed) and returned as an RGB image; with ``path`` it is also
written as a PNG, atomically. Each takes a ``caption``, printed under the figure, which
should name the data (say "synthetic" for ``dcme-keras synth`` frames) and the hardware.

The pixel-level pieces (:func:`color_class_map`, :func:`color_instances`,
:func:`dcme_magnitude_map`) are plain NumPy / OpenCV and usable on their own.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
import skimage.segmentation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dcme_keras import classes
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path
from dcme_keras.inference import Instance, check_rgb_image, resize_nearest

#: RGB of each grid id: black for background, then Cityscapes' own class colors.
GRID_COLORS: np.ndarray = np.array(
    [(0, 0, 0)] + [classes.LABELS[lid].color for lid in classes.THING_LABEL_IDS], np.uint8)

_PANEL_WIDTH_IN = 4.0
_DPI = 100
_CAPTION_FONT = 8


def _check_image(image: np.ndarray) -> np.ndarray:
    return check_rgb_image(image, "pass the input image as read from leftImg8bit/")


def _blend(image: np.ndarray, colors: np.ndarray, where: np.ndarray, alpha: float
           ) -> np.ndarray:
    """``image`` with ``colors`` blended in at ``alpha`` where ``where`` is True."""
    out = image.astype(np.float32)
    out[where] = (1.0 - alpha) * out[where] + alpha * colors[where].astype(np.float32)
    return np.round(out).astype(np.uint8)


def color_class_map(image: np.ndarray, grid_class_map: np.ndarray, *, alpha: float = 0.6
                    ) -> np.ndarray:
    """The grid classifier's classes painted over the image (middle panel of Fig. 4).

    Each cell is resized to the block it covers (nearest neighbour, eq. 3) and blended in
    its Cityscapes class color; background cells darken the image by ``alpha``.

    Args:
      image: [H, W, 3] uint8 RGB.
      grid_class_map: [h, w] int grid ids (0 = background, 1..8 = THING_CLASSES), e.g.
        the argmax of one image's grid logits.
      alpha: opacity of the class colors in [0, 1].

    Returns:
      [H, W, 3] uint8 RGB.
    """
    image = _check_image(image)
    grid_ids = np.asarray(grid_class_map)
    if grid_ids.ndim != 2 or grid_ids.min(initial=0) < 0 or grid_ids.max(initial=0) > 8:
        raise UserInputError(
            f"grid class map of shape {grid_ids.shape} is not [h, w] grid ids in 0..8; "
            "take the argmax over the class axis of one image's grid logits")
    cells = resize_nearest(grid_ids.astype(np.uint8), image.shape[:2])  # [H, W]
    return _blend(image, GRID_COLORS[cells], np.ones(cells.shape, bool), alpha)


def instance_colors(count: int) -> np.ndarray:
    """Distinct RGB colors for ``count`` instances: matplotlib's ``tab20``, cycled.

    Returns:
      [count, 3] uint8.
    """
    palette = np.asarray(matplotlib.colormaps["tab20"].colors)  # [20, 3] in [0, 1]
    return np.round(255 * palette[np.arange(count) % len(palette)]).astype(np.uint8)


def color_instances(image: np.ndarray, instances: Iterable[Instance] | Iterable[np.ndarray],
                    *, alpha: float = 0.6) -> np.ndarray:
    """Instance masks painted over the image, outlined in white (right panel of Fig. 4).

    Args:
      image: [H, W, 3] uint8 RGB.
      instances: ``(mask [H, W] bool, label_id, score)`` tuples as
        :func:`dcme_keras.inference.instances_from_outputs` returns them, or bare masks.
        A later mask is drawn over an earlier one.
      alpha: opacity of the instance colors in [0, 1].

    Returns:
      [H, W, 3] uint8 RGB.
    """
    image = _check_image(image)
    index = np.zeros(image.shape[:2], np.int32)  # 0 = none, k = instance k
    for k, item in enumerate(instances, start=1):
        mask = np.asarray(item[0] if isinstance(item, tuple) else item, bool)
        if mask.shape != index.shape:
            raise UserInputError(
                f"instance mask {k - 1} has shape {mask.shape}, not the image's "
                f"{index.shape}; pass masks at the image's resolution (out_size=)")
        index[mask] = k
    colors = np.concatenate([np.zeros((1, 3), np.uint8), instance_colors(int(index.max()))])
    out = _blend(image, colors[index], index > 0, alpha)
    out[skimage.segmentation.find_boundaries(index, mode="inner")] = 255
    return out


def dcme_magnitude_map(dcme: np.ndarray, *, max_magnitude: float | None = None,
                       colormap: str = "magma") -> np.ndarray:
    """The length of each DCME vector as a color image (paper Fig. 2).

    Large objects have long vectors near their borders, so they glow brighter.

    Args:
      dcme: [H, W, 2] float, (dy, dx) [pixels].
      max_magnitude: length [pixels] mapped to the top of the colormap; ``None`` takes the
        map's own maximum.
      colormap: a matplotlib colormap name.

    Returns:
      [H, W, 3] uint8 RGB.
    """
    dcme = np.asarray(dcme, np.float32)
    if dcme.ndim != 3 or dcme.shape[-1] != 2:
        raise UserInputError(f"DCME map of shape {dcme.shape} is not [H, W, 2]; pass one "
                             "image's map without the batch axis")
    magnitude = np.hypot(dcme[..., 0], dcme[..., 1])
    top = float(magnitude.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    if not top > 0:
        top = 1.0  # an all-zero map (no instances) stays at the bottom of the colormap
    rgba = matplotlib.colormaps[colormap](np.clip(magnitude / top, 0.0, 1.0))
    return np.round(255 * rgba[..., :3]).astype(np.uint8)


def _new_figure(width_in: float, height_in: float) -> tuple[Figure, FigureCanvasAgg]:
    figure = Figure(figsize=(width_in, height_in), dpi=_DPI)
    return figure, FigureCanvasAgg(figure)


def _finish(figure: Figure, canvas: FigureCanvasAgg, caption: str | None,
            path: str | os.PathLike | None) -> np.ndarray:
    """Add the caption, render, optionally save, and return the RGB pixels."""
    if caption:
        figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=_CAPTION_FONT,
                    wrap=True)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=_DPI)
    return pixels


def _bottom_margin(caption: str | None, height_in: float) -> float:
    """Share of the figure height kept free under the axes for the caption."""
    return min(0.4, 0.35 / height_in) if caption else 0.02


def fig4_overlay(image: np.ndarray, grid_class_map: np.ndarray,
                 instances: Sequence[Instance] | Sequence[np.ndarray], *,
                 caption: str | None = None, path: str | os.PathLike | None = None,
                 alpha: float = 0.6) -> np.ndarray:
    """Input, grid class map and instance masks side by side (paper Fig. 4).

    Example:
      >>> out = outputs_fn(model)(image)
      >>> instances = instances_from_outputs(out["dcme"], out["grid"],
      ...                                    out_size=image.shape[:2])
      >>> fig4_overlay(image, out["grid"].argmax(-1), instances, path="fig4.png",
      ...              caption="synthetic Cityscapes val, tiny preset, CPU")

    Args:
      image: [H, W, 3] uint8 RGB.
      grid_class_map: [h, w] int grid ids (0 = background, 1..8 = THING_CLASSES).
      instances: instances at the image's resolution, as for :func:`color_instances`.
      caption: text under the panels, e.g. the data's name and the hardware.
      path: where to write the PNG (atomically); ``None`` writes nothing.
      alpha: opacity of the colors over the image.

    Returns:
      The whole figure, [H', W', 3] uint8 RGB.
    """
    instances = list(instances)
    image = _check_image(image)
    panels = [(image, "input"),
              (color_class_map(image, grid_class_map, alpha=alpha), "grid class map"),
              (color_instances(image, instances, alpha=alpha),
               f"instance masks ({len(instances)})")]
    height, width = image.shape[:2]
    panel_h = _PANEL_WIDTH_IN * height / width
    legend_h = 0.35
    fig_h = panel_h + 0.3 + legend_h + (0.35 if caption else 0.0)
    figure, canvas = _new_figure(3 * _PANEL_WIDTH_IN, fig_h)
    bottom = (legend_h + (0.35 if caption else 0.0)) / fig_h
    figure.subplots_adjust(left=0.005, right=0.995, top=1 - 0.3 / fig_h, bottom=bottom,
                           wspace=0.02)
    for i, (pixels, title) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 3, i)
        axes.imshow(pixels, interpolation="nearest")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    present = sorted(set(np.unique(np.asarray(grid_class_map)).tolist()) - {0})
    if present:
        handles = [Patch(color=GRID_COLORS[g] / 255.0, label=classes.THING_CLASSES[g - 1])
                   for g in present]
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
                      frameon=False, bbox_to_anchor=(0.5, bottom - legend_h / fig_h))
    return _finish(figure, canvas, caption, path)


def magnitude_figure(dcme: np.ndarray, *, caption: str | None = None,
                     path: str | os.PathLike | None = None,
                     max_magnitude: float | None = None, colormap: str = "magma",
                     title: str = "DCME magnitude") -> np.ndarray:
    """The DCME magnitude map with a color bar in pixels (paper Fig. 2).

    Args:
      dcme: [H, W, 2] float, (dy, dx) [pixels].
      title: text above the map.
      caption: text under the map, e.g. the data's name and the hardware.
      path: where to write the PNG (atomically); ``None`` writes nothing.
      max_magnitude: top of the color scale [pixels]; ``None`` takes the map's maximum.
      colormap: a matplotlib colormap name.

    Returns:
      The whole figure, [H', W', 3] uint8 RGB.
    """
    colored = dcme_magnitude_map(dcme, max_magnitude=max_magnitude, colormap=colormap)
    magnitude = np.hypot(*np.moveaxis(np.asarray(dcme, np.float32), -1, 0))
    top = float(magnitude.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    height, width = colored.shape[:2]
    fig_h = 1.5 * _PANEL_WIDTH_IN * height / width + 0.4 + (0.35 if caption else 0.0)
    figure, canvas = _new_figure(1.5 * _PANEL_WIDTH_IN + 0.9, fig_h)
    figure.subplots_adjust(left=0.01, right=0.88, top=1 - 0.35 / fig_h,
                           bottom=_bottom_margin(caption, fig_h))
    axes = figure.add_subplot(1, 1, 1)
    # imshow of the colored map keeps the exact pixels; the scalar mappable only feeds the bar.
    axes.imshow(colored, interpolation="nearest")
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    mappable = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(0.0, top if top > 0 else 1.0), cmap=colormap)
    bar = figure.colorbar(mappable, ax=axes, fraction=0.04, pad=0.02)
    bar.set_label("|(dy, dx)| [pixels]", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return _finish(figure, canvas, caption, path)


def read_history(history_csv: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a Keras ``CSVLogger`` file as float arrays.

    Args:
      history_csv: the ``history.csv`` a training run wrote.

    Returns:
      Column name -> [E] float64, one value per epoch row (``nan`` where empty).

    Raises:
      UserInputError: if the file is missing or has no epoch rows.
    """
    path = Path(history_csv)
    if not path.is_file():
        raise UserInputError(f"training log {str(path)!r} does not exist; pass the "
                             "history.csv in a training run's --model_dir")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserInputError(f"training log {str(path)!r} has no epochs yet; train at least "
                             "one epoch first")
    return {name: np.array([float(r[name]) if r.get(name) else np.nan for r in rows])
            for name in rows[0]}


def loss_curves(history_csv: str | os.PathLike, out_png: str | os.PathLike, *,
                caption: str | None = None) -> np.ndarray:
    """Training and validation curves of every logged metric, one panel each.

    A panel per metric name (``loss``, ``dcme_loss``, ``grid_loss``, ...) shows the
    training value and, when logged, the ``val_`` one against the epoch; loss panels
    use a log scale when all values are positive.

    Args:
      history_csv: the ``history.csv`` a training run wrote.
      out_png: where to write the PNG (atomically).
      caption: text under the panels, e.g. the data's name and the hardware.

    Returns:
      The whole figure, [H', W', 3] uint8 RGB.
    """
    history = read_history(history_csv)
    epochs = history.get("epoch", np.arange(len(next(iter(history.values())))))
    names = [n for n in history if n not in ("epoch", "learning_rate")
             and not n.startswith("val_")]
    if not names:
        raise UserInputError(f"training log {os.fspath(history_csv)!r} logs no metric; "
                             "pass a Keras CSVLogger file")
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig_h = 2.6 * rows + (0.35 if caption else 0.0)
    figure, canvas = _new_figure(3.6 * cols, fig_h)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.93 if rows == 1 else 0.96,
                           bottom=max(0.12 / rows, _bottom_margin(caption, fig_h)) + 0.06,
                           hspace=0.45, wspace=0.3)
    for i, name in enumerate(names, start=1):
        axes = figure.add_subplot(rows, cols, i)
        axes.plot(epochs, history[name], marker="o", markersize=3, label="train")
        if f"val_{name}" in history:
            axes.plot(epochs, history[f"val_{name}"], marker="o", markersize=3,
                      label="validation")
        values = np.concatenate([history[name], history.get(f"val_{name}", [])])
        if "loss" in name and np.all(values[np.isfinite(values)] > 0):
            axes.set_yscale("log")
        axes.set_title(name, fontsize=9)
        axes.set_xlabel("epoch", fontsize=8)
        axes.tick_params(which="both", labelsize=7)
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes.legend(fontsize=7)
    return _finish(figure, canvas, caption, out_png)


def border_histogram_figure(curves: Mapping[str, Mapping[str, Any]],
                            out_png: str | os.PathLike, *, caption: str | None = None) -> Path:
    """Paper 003's Fig. 3: share of boundary pixels per border error, one line per model.

    Args:
      curves: label -> a result's ``"border_error"`` (``histogram``, ``bin_px``, ``mean``).
      out_png: where to write the PNG (atomically).
      caption: text under the plot, e.g. the data's name and the hardware.

    Returns:
      ``out_png`` as a Path.
    """
    figure = Figure(figsize=(6.0, 3.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for label, border in curves.items():
        axes.plot(border["bin_px"], 100.0 * np.asarray(border["histogram"]), marker="o",
                  markersize=3, label=f"{label} (mean {border['mean']:.2f} px)")
    axes.set_xlabel("border error [px] (last bin: this or more)")
    axes.set_ylabel("share of boundary pixels [%]")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    if caption:
        figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, wrap=True)
        figure.subplots_adjust(bottom=0.2)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png")
    return out_png
