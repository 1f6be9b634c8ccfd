"""``dcme-keras evaluate annotator``: mask quality and CPU speed of the annotator (paper 003).

    dcme-keras evaluate annotator --model /tmp/annotator/best.keras --data_dir /tmp/tfds
    dcme-keras evaluate annotator --model /tmp/annotator_int8.tflite --data_dir /tmp/tfds \\
        --out /tmp/eval_int8
    dcme-keras evaluate annotator --model /tmp/annotator_int8.tflite \\
        --cityscapes_root /data/cityscapes --split val --jitter_sigma_px 3

Scores every validation object of the model's classes (those ``train annotator`` used,
read from the ``config.json`` beside a ``.keras`` file) with the inputs built exactly as
in training, without augmentation
(:func:`dcme_keras.evaluate_annotator.evaluate_annotator`, the library this command
calls). The objects come from a TFDS build (``--data_dir``) or straight from a
Cityscapes-layout folder (``--cityscapes_root``, e.g. real photos:
``gtFine/*_instanceIds.png`` suffice, objects of at least 400 px by default); the 4 clicks
are the ground truth's extreme points, jittered by a Gaussian of ``--jitter_sigma_px``
when asked. Reported, each beside the no-learning baseline (the filled quadrilateral of
the same 4 clicks), overall and per class:

* aIoU (per batch of ``--batch_size``, averaged), iIoU and mIoU, at the network's
  resolution as the paper reports them (Table 1), and at full resolution after the mask
  is pasted back into the image, which is what a labeler gets;
* the IoU of each class (Table 2);
* the border error at the network's resolution, its mean and its histogram (Fig. 3),
  drawn into ``border_error.png``;
* the time per object at batch 1 on this machine's CPU: for a ``.keras`` model through
  ``model.predict``, ``model.predict_on_batch`` and a direct call in one ``tf.function``;
  for a ``.tflite`` model through the LiteRT interpreter; and for both the whole request
  (crop, network, paste-back).

The tables are printed and saved in ``--out`` as ``annotator_eval.json`` and
``tables.txt``, next to ``border_error.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags

from dcme_keras.cli.common import define_once
from dcme_keras.errors import UserInputError

RESULT_FILE = "annotator_eval.json"
TABLES_FILE = "tables.txt"
FIGURE_FILE = "border_error.png"

@define_once
def define_flags() -> None:
    """Define this command's absl flags, once per process."""
    flags.DEFINE_string("model", None, "the annotator: a .keras file from `dcme-keras train "
                        "annotator` (best.keras) or a .tflite file from `dcme-keras export`",
                        required=True)
    flags.DEFINE_string("data_dir", None, "TFDS data dir holding cityscapes_instances "
                        "(`dcme-keras build --data_dir`); or pass --cityscapes_root")
    flags.DEFINE_string("cityscapes_root", None, "instead of --data_dir: a Cityscapes-layout "
                        "folder (leftImg8bit/, gtFine/ with *_instanceIds.png), e.g. real "
                        "photos; no TFDS build needed")
    flags.DEFINE_string("config", None, "dataset builder config: full or half; default: "
                        "the builder's default")
    flags.DEFINE_string("data_name", None, "name of the data in the tables, e.g. 'synthetic "
                        "Cityscapes'; default: the dataset and its folder")
    flags.DEFINE_string("split", None, "split to score; default: validation (--data_dir) "
                        "or val (--cityscapes_root)")
    flags.DEFINE_list("classes", None, "classes to score, comma-separated; default: the "
                      "model's training classes")
    flags.DEFINE_float("min_area", None, "smallest object in source pixels; default: 100 "
                       "(--data_dir) or 400 (--cityscapes_root)", lower_bound=0.0)
    flags.DEFINE_float("jitter_sigma_px", 0.0, "move each click by a rounded Gaussian of this "
                       "sigma per axis, in source pixels, as people click (0: exact extreme "
                       "points)", lower_bound=0.0)
    flags.DEFINE_bool("clutter", False, "give every object recoloured same-class copies "
                      "beside, behind or in front of it before its points are taken, so the "
                      "points alone say which one is meant")
    flags.DEFINE_integer("seed", 0, "seed of the click jitter and the clutter", lower_bound=0)
    flags.DEFINE_integer("batch_size", 32, "objects per batch, for inference and for aIoU "
                         "(the paper: 32)", lower_bound=1)
    flags.DEFINE_integer("max_frames", None, "score only the first N frames", lower_bound=1)
    flags.DEFINE_integer("max_px", 10, "last bin of the border-error histogram in pixels",
                         lower_bound=1)
    flags.DEFINE_integer("timing_repeats", 20, "timed runs per inference figure; 0 skips "
                         "timing", lower_bound=0)
    flags.DEFINE_integer("threads", 0, "CPU threads: TensorFlow's intra-op pool for .keras, "
                         "the interpreter's for .tflite; 0 = TensorFlow's default (all cores) "
                         "and 1 interpreter thread", lower_bound=0)
    flags.DEFINE_string("out", None, "folder for annotator_eval.json, tables.txt and "
                        "border_error.png; default: <model folder>/<model stem>_<split>_eval")
    flags.DEFINE_bool("progress", True, "show a progress bar")


def _timing_sample(objects):
    """The first object of an :func:`~dcme_keras.evaluate_annotator.iter_objects`-like
    iterator, and its points."""
    from dcme_keras.extreme_points import extreme_points

    _, window, mask = next(objects)
    return window, extreme_points(mask)


def save_outputs(out: Path, result: dict, tables: str, curves: dict, *, caption: str) -> None:
    """Writes the result JSON, the tables and the border-error figure: all, or none.

    Args:
      out: the folder (created).
      result: the evaluation result, saved as :data:`RESULT_FILE`.
      tables: its text tables, saved as :data:`TABLES_FILE`.
      curves: model name -> border error, drawn into :data:`FIGURE_FILE`.
      caption: printed under the figure.
    """
    from dcme_keras import figures
    from dcme_keras.fileio import atomic_files
    from dcme_keras.tables import save_result

    with atomic_files([out / RESULT_FILE, out / TABLES_FILE, out / FIGURE_FILE]) as staged:
        save_result(result, staged[0])
        staged[1].write_text(tables + "\n")
        figures.border_histogram_figure(curves, staged[2], caption=caption)


def main(argv: list[str]) -> None:
    """Evaluates, prints the tables and saves them with the border-error figure."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; evaluate annotator takes "
                             "only --flags")
    f = flags.FLAGS
    if (f.data_dir is None) == (f.cityscapes_root is None):
        raise UserInputError("pass exactly one of --data_dir (a TFDS build) and "
                             "--cityscapes_root (a Cityscapes-layout folder)")
    from dcme_keras import evaluate_annotator as scoring
    from dcme_keras.keras_annotator import inspect_model, open_annotator
    from dcme_keras.models.annotator import AnnotatorConfig

    info = inspect_model(f.model)
    if f.threads and info["format"] == "keras":
        import tensorflow as tf

        # Must happen before TensorFlow starts its thread pools, i.e. before any op runs.
        tf.config.threading.set_intra_op_parallelism_threads(f.threads)
    annotator = open_annotator(f.model, num_threads=f.threads or 1)
    classes = (tuple(c.strip() for c in f.classes) if f.classes
               else getattr(annotator, "config", AnnotatorConfig()).classes)
    folder = f.cityscapes_root is not None
    split = f.split or ("val" if folder else "validation")
    result = scoring.evaluate_annotator(
        annotator, f.data_dir, cityscapes_root=f.cityscapes_root, split=split,
        classes=classes, min_area=f.min_area, dataset_config=f.config,
        batch_size=f.batch_size, max_frames=f.max_frames, max_px=f.max_px,
        jitter_sigma_px=f.jitter_sigma_px, clutter=f.clutter, seed=f.seed,
        progress=f.progress)
    from dcme_keras.hardware import describe

    hardware = describe(f.threads or None)
    data_name = f.data_name or (f"Cityscapes-layout folder {f.cityscapes_root}" if folder
                                else f"cityscapes_instances in {f.data_dir}")
    result = {"model": os.fspath(f.model), "data": data_name, "split": split,
              "size": annotator.size, "points": annotator.uses_points,
              "hardware": hardware, **result}
    if f.timing_repeats:
        objects = (scoring.iter_folder_objects(f.cityscapes_root, split=split,
                                               classes=classes, max_frames=1) if folder
                   else scoring.iter_objects(f.data_dir, split=split, classes=classes,
                                             dataset_config=f.config, max_frames=1))
        window, clicks = _timing_sample(objects)
        result["threads"] = f.threads or "default"
        result["ms_per_instance"] = scoring.time_inference(annotator, window, clicks,
                                                           repeats=f.timing_repeats)
    inputs = "RGB + extreme points" if annotator.uses_points else "RGB only"
    title = (f"annotator {f.model} ({inputs}) on {data_name}, split {split}: "
             f"{result['instances']} objects; {hardware}")
    tables = scoring.format_tables(result, title=title)
    print(tables)

    model_path = Path(f.model).expanduser()
    out = Path(f.out).expanduser() if f.out else (
        model_path.parent / f"{model_path.stem}_{split}_eval")
    save_outputs(out, result, tables,
                 {f"{model_path.name} ({inputs})": result["border_error"]},
                 caption=f"{data_name}; {hardware}")
    print(f"\nsaved {RESULT_FILE}, {TABLES_FILE} and {FIGURE_FILE} in {out}")
