"""The paper's tables for one DCME network on a Cityscapes-layout folder (paper 000, Sec. V).

:func:`evaluate_model` runs the network once per image (:class:`FrameOutputs`), scores
the decoded instances with the official cityscapesscripts evaluator and, on request,
computes the oracles (Tables I right to V), saves every table as JSON and text and draws
Fig. 4 and the DCME magnitude maps (:func:`save_figures`). ``dcme-keras evaluate dcme``
(:mod:`dcme_keras.cli.evaluate_dcme`) is its command line.

Example:
  >>> from dcme_keras import evaluate_dcme, saving
  >>> model = saving.load_model("runs/dcme/best.keras", kind="dcme")
  >>> tables = evaluate_dcme.evaluate_model(model, "/tmp/synth", oracles=True, out="/tmp/eval")
  >>> print(evaluate_dcme.format_tables(tables))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dcme_keras.errors import UserInputError
from dcme_keras.fileio import read_rgb
from dcme_keras.hardware import describe

#: Table name -> title. The name is the JSON file's stem in ``--out``.
TABLES: dict[str, str] = {
    "dcme": "Table I (left): DCME network; instances from the predicted DCME, classes "
            "from the grid cell of their center of mass",
    "gt_oracle": "Table I (right): ground truth through the DCME round trip at scale "
                 "{scale:g}",
    "instance_oracle": "Tables II and III: instance oracle; ground-truth instances, "
                       "classes from the encoder's grid",
    "class_oracle": "Table IV: class oracle; decoded instances, ground-truth classes",
    "detection_accuracy": "Table V: detection accuracy; decoded instances with IoU above "
                          "each threshold, classes aside",
}
DETECTION_THRESHOLDS = (0.25, 0.5, 0.75)

def data_label(cityscapes_root: str | os.PathLike) -> tuple[str, bool]:
    """How tables and captions name the data, and whether it is synthetic.

    Returns:
      ``("synthetic Cityscapes (dcme-keras synth) at ROOT", True)`` for a
      ``dcme-keras synth`` folder, else ``("Cityscapes-layout data at ROOT", False)``.
    """
    from dcme_keras.data.synthetic import is_synthetic_dataset

    synthetic = is_synthetic_dataset(cityscapes_root)
    kind = "synthetic Cityscapes (dcme-keras synth)" if synthetic else "Cityscapes-layout data"
    return f"{kind} at {os.fspath(cityscapes_root)}", synthetic


def _check_root(cityscapes_root: Path) -> None:
    if (cityscapes_root / "cityscapes_instances").is_dir():
        raise UserInputError(
            f"{cityscapes_root} is a TFDS data dir; evaluation needs the ground-truth files, "
            "so pass the Cityscapes-layout folder it was built from (the --manual_dir of "
            "`dcme-keras build`, e.g. the --out of `dcme-keras synth`)")
    if not cityscapes_root.is_dir():
        raise UserInputError(f"--cityscapes_root {cityscapes_root} is not a folder; pass the "
                             "folder holding gtFine/ and leftImg8bit/")


def _input_size(model, image_size: Sequence[int] | None) -> tuple[int, int] | None:
    """The (H, W) to resize images to; None lets the model's static size decide."""
    static = tuple(model.inputs[0].shape[1:3])
    if image_size is None:
        return None
    image_size = (int(image_size[0]), int(image_size[1]))
    if None not in static and static != image_size:
        raise UserInputError(f"--image_size {image_size[0]}x{image_size[1]} differs from the "
                             f"model's input {static[0]}x{static[1]}; drop --image_size")
    return image_size


class FrameOutputs(Mapping):
    """Network outputs by frame stem, computed on first use and optionally kept on disk.

    The evaluation functions accept such a mapping in place of the network, so several
    tables share one forward pass per image.

    Args:
      gt_files: the frames' ``*_gtFine_instanceIds.png`` files.
      network: ``image [H, W, 3] uint8 -> {keys.DCME: [h, w, 2], keys.GRID: [gh, gw, 9]}``.
      cache_dir: folder for one ``<stem>.npz`` per frame; None computes every time.
    """

    def __init__(self, gt_files: Sequence[Path],
                 network: Callable[[Any], Mapping[str, Any]], cache_dir: Path | None):
        from dcme_keras.evaluation import frame_stem

        self._gt_files = {frame_stem(f): Path(f) for f in gt_files}
        self._network = network
        self._cache_dir = cache_dir

    def image(self, stem: str):
        """[H, W, 3] uint8 RGB input image of a frame."""
        from dcme_keras.evaluation import image_path

        return read_rgb(image_path(self._gt_files[stem]), "keep leftImg8bit/ beside gtFine/ "
                        "with one image per ground-truth frame", what="input image")

    def gt_file(self, stem: str) -> Path:
        """The frame's ``*_gtFine_instanceIds.png``."""
        return self._gt_files[stem]

    def __getitem__(self, stem: str) -> dict[str, Any]:
        import numpy as np

        from dcme_keras import keys

        if stem not in self._gt_files:
            raise KeyError(stem)
        cached = None if self._cache_dir is None else self._cache_dir / f"{stem}.npz"
        if cached is not None and cached.is_file():
            with np.load(cached) as stored:
                return {keys.DCME: stored["dcme"], keys.GRID: stored["grid"]}
        out = self._network(self.image(stem))
        if cached is not None:
            np.savez(cached, dcme=out[keys.DCME], grid=out[keys.GRID])
        return out

    def __contains__(self, stem: object) -> bool:
        return stem in self._gt_files

    def __iter__(self) -> Iterator[str]:
        return iter(self._gt_files)

    def __len__(self) -> int:
        return len(self._gt_files)


def save_figures(outputs: FrameOutputs, stems: Sequence[str], figure_dir: Path, *,
                 caption: str) -> list[Path]:
    """Fig. 4 and the DCME magnitude maps (Fig. 2) of some frames, as PNGs.

    Per frame ``<stem>_fig4.png`` (input, grid class map, instances) and
    ``<stem>_dcme_magnitude_pred.png`` / ``_gt.png``: the predicted map and the ground
    truth encoded at the network's resolution, on one color scale.

    Args:
      outputs: the frames' network outputs.
      stems: the frames to draw.
      figure_dir: output folder (created).
      caption: printed under each figure; the frame's stem is appended.

    Returns:
      The files written.
    """
    import numpy as np

    from dcme_keras import figures, inference, keys
    from dcme_keras.dcme import codec_np
    from dcme_keras.evaluation import read_instance_ids

    written = []
    for stem in stems:
        image = outputs.image(stem)
        out = outputs[stem]
        dcme, grid_logits = inference.check_outputs(out[keys.DCME], out[keys.GRID])
        instances = inference.instances_from_outputs(dcme, grid_logits,
                                                     out_size=image.shape[:2])
        text = f"{caption}; frame {stem}"
        path = figure_dir / f"{stem}_fig4.png"
        figures.fig4_overlay(image, np.argmax(grid_logits, axis=-1), instances,
                             caption=text, path=path)
        written.append(path)
        ids = inference.resize_nearest(read_instance_ids(outputs.gt_file(stem)),
                                       dcme.shape[:2])
        gt_dcme = codec_np.encode_dcme(ids)
        top = float(np.hypot(gt_dcme[..., 0], gt_dcme[..., 1]).max(initial=0.0)) or None
        for kind, vectors, what in (("pred", dcme, "predicted"),
                                    ("gt", gt_dcme, "ground truth")):
            path = figure_dir / f"{stem}_dcme_magnitude_{kind}.png"
            figures.magnitude_figure(vectors, max_magnitude=top, path=path, caption=text,
                                     title=f"DCME magnitude, {what}")
            written.append(path)
    return written


def evaluate_model(model, cityscapes_root: str | os.PathLike, *, split: str = "val",
                   image_size: Sequence[int] | None = None, max_images: int | None = None,
                   oracles: bool = False, oracle_scale: float = 0.5, num_figures: int = 0,
                   out: str | os.PathLike | None = None, model_name: str | None = None,
                   progress: bool = True) -> dict[str, dict[str, Any]]:
    """The paper's tables for one DCME network on a Cityscapes-layout folder.

    Example:
      >>> tables = evaluate_model(saving.load_model("best.keras"), "/tmp/synth", oracles=True)
      >>> tables["dcme"]["AP"], tables["gt_oracle"]["AP"]

    Args:
      model: the DCME network (``image -> {keys.DCME, keys.GRID}``).
      cityscapes_root: folder holding ``gtFine/`` and ``leftImg8bit/``.
      split: split folder under ``gtFine/``.
      image_size: (H, W) network input [pixels]; None = the model's static size.
      max_images: evaluate only the first frames (in name order).
      oracles: also compute the oracle tables and the detection accuracy.
      oracle_scale: resolution of the GT oracle's round trip, in (0, 1].
      num_figures: frames to draw Fig. 4 and magnitude maps for (needs ``out``).
      out: folder for ``<table>.json``, ``tables.txt`` and ``figures/``, written all
        together at the end (a failure leaves none of them); None = none.
      model_name: how the JSON and captions name the model.
      progress: show progress bars.

    Returns:
      Table name (keys of :data:`TABLES`) -> the evaluation result, each with a
      ``"meta"`` entry naming the data, split, model and image count.

    Raises:
      UserInputError: for a missing or wrong folder, bad sizes, or ``num_figures``
        without ``out``.
    """
    from dcme_keras import evaluation, inference
    from dcme_keras.fileio import atomic_files

    root = Path(cityscapes_root).expanduser()
    _check_root(root)
    if num_figures and out is None:
        raise UserInputError("--figures needs --out, the folder to save them in")
    gt_files = evaluation.gt_instance_files(root, split=split)[:max_images]
    label, synthetic = data_label(root)
    network = inference.outputs_fn(model, input_size=_input_size(model, image_size))
    model_hw = tuple(model.inputs[0].shape[1:3]) if image_size is None else tuple(image_size)
    common = dict(split=split, max_images=max_images, progress=progress)
    meta = {"data": label, "synthetic": synthetic, "cityscapes_root": os.fspath(root),
            "split": split, "num_images": len(gt_files), "model": model_name or model.name,
            "image_size": list(model_hw)}
    tables: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="dcme_outputs_") as tmp:
        # Several passes over the images share the outputs through the folder.
        several = oracles or num_figures > 0
        outputs = FrameOutputs(gt_files, network, Path(tmp) if several else None)
        tables["dcme"] = evaluation.evaluate_outputs(root, outputs, **common)
        if oracles:
            tables["gt_oracle"] = evaluation.gt_oracle(root, scale=oracle_scale, **common)
            tables["instance_oracle"] = evaluation.instance_oracle(root, outputs, **common)
            tables["class_oracle"] = evaluation.class_oracle(root, outputs, **common)
            tables["detection_accuracy"] = evaluation.detection_accuracy(
                root, outputs, thresholds=DETECTION_THRESHOLDS, **common)
        for result in tables.values():
            result["meta"] = dict(meta)
        if out is not None:
            out = Path(out).expanduser()
            targets = [out / f"{name}.json" for name in tables] + [out / "tables.txt"]
            # All tables and figures of a run appear together, or none does.
            with atomic_files(targets + ([out / "figures"] if num_figures else [])) as staged:
                for name, path in zip(tables, staged):
                    evaluation.save_result(tables[name], path)
                staged[len(tables)].write_text(
                    format_tables(tables, oracle_scale=oracle_scale) + "\n")
                if num_figures:
                    caption = (f"{label}, {split}; model {meta['model']} at "
                               f"{model_hw[0]}x{model_hw[1]}; {describe()}")
                    save_figures(outputs, list(outputs)[:num_figures], staged[-1],
                                 caption=caption)
    return tables


def format_tables(tables: Mapping[str, Mapping[str, Any]], *, oracle_scale: float = 0.5
                  ) -> str:
    """All tables as text, each titled with the paper's table and labelled with the data."""
    from dcme_keras.evaluation import format_table

    blocks = []
    for name, result in tables.items():
        meta = result.get("meta", {})
        title = TABLES[name].format(scale=oracle_scale)
        where = (f"{meta.get('data', '?')}, split {meta.get('split', '?')}, "
                 f"{meta.get('num_images', '?')} images")
        if name != "gt_oracle":  # the only table without the network
            where += f"; model {meta.get('model', '?')}"
        unit = "" if name == "detection_accuracy" else "; AP and AP50 in %"
        blocks.append(format_table(result, title=f"{title}\n{where}{unit}"))
    return "\n\n".join(blocks)
