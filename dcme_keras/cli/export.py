"""``dcme-keras export``: a trained ``.keras`` model to (quantized) TFLite, checked first.

The model is converted, then run against Keras on held-out synthetic data (a seed no
calibration uses); the parity table is printed and stored in the sidecar
``OUT.json``. An annotator that loses more than ``--max_iou_drop`` IoU points is
refused (exit 2, nothing written) unless ``--allow_drop``::

    dcme-keras export --model unet.keras --quantization int8 --out unet_int8.tflite
    dcme-keras export --model unet.keras --quantization int8 --representative /data/synth \\
        --out unet_int8.tflite
    dcme-keras export --model dcme.keras --quantization float16 --out dcme_f16.tflite

Full-int8 calibration reads real 0-255 images: ``--representative DIR`` (a
Cityscapes-layout folder such as ``dcme-keras synth`` writes; its train split) or
``synthetic`` (frames rendered in memory with a fixed seed). An annotator's input
encoding (point radius, margin, classes) comes from the training run's ``config.json``
beside the model when there is one.
"""

from __future__ import annotations

from absl import flags

from dcme_keras import extreme_points as ep
from dcme_keras.errors import UserInputError
from dcme_keras.export.convert import QUANTIZATIONS

_MODEL = flags.DEFINE_string("model", None, "the .keras model to export (annotator or DCME)")
_OUT = flags.DEFINE_string("out", None, "the .tflite file to write; OUT.json is its sidecar")
_QUANTIZATION = flags.DEFINE_enum(
    "quantization", "float32", QUANTIZATIONS,
    "float32 (none), float16 (fp16 weights), dynamic (int8 weights, float activations) or "
    "int8 (every op int8, float32 input/output)")
_REPRESENTATIVE = flags.DEFINE_string(
    "representative", "synthetic", "int8 calibration images: a Cityscapes-layout folder "
    "(train split) or 'synthetic'")
_CALIBRATION_SAMPLES = flags.DEFINE_integer(
    "calibration_samples", None, "int8 calibration objects (annotator, default 200) or "
    "frames (DCME, default 24)", lower_bound=1)
_PARITY_SAMPLES = flags.DEFINE_integer(
    "parity_samples", None, "held-out objects (annotator, default 256) or frames (DCME, "
    "default 6) for the parity check", lower_bound=1)
_MAX_IOU_DROP = flags.DEFINE_float(
    "max_iou_drop", 1.0, "largest accepted loss of annotator iIoU against Keras, in IoU "
    "points (below -100 refuses every export, which tests the gate)")
_MAX_DETECTION_DROP = flags.DEFINE_float(
    "max_detection_drop", 5.0, "largest accepted loss of DCME detection accuracy at IoU 0.5 "
    "against Keras on the held-out frames, in points (below -100 refuses every export)")
_ALLOW_DROP = flags.DEFINE_bool("allow_drop", False, "write the model even when it loses "
                                "more than --max_iou_drop / --max_detection_drop")
_POINT_RADIUS = flags.DEFINE_integer(
    "point_radius", None, "annotator: point circle radius the model was trained with "
    f"[pixels of the network input]; default: the training run's config.json beside the "
    f"model, else {ep.DEFAULT_RADIUS}", lower_bound=0)
_MARGIN = flags.DEFINE_float(
    "margin", None, "annotator: crop margin the model was trained with, a fraction of the "
    f"points' box size; default: the training run's config.json, else {ep.DEFAULT_MARGIN}",
    lower_bound=0.0)
_PROGRESS = flags.DEFINE_bool("progress", True, "show progress bars")
flags.mark_flags_as_required(["model", "out"])


def main(argv: list[str]) -> None:
    """Exports the model and prints the parity table and the written paths."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; export takes only --flags")
    # Imported here so that `dcme-keras export --help` and flag errors stay fast.
    from pathlib import Path

    from absl import logging

    from dcme_keras import saving
    from dcme_keras.export import convert
    from dcme_keras.runtime import metadata_path

    # TensorFlow's SavedModel export logs every traced function at INFO.
    logging.set_verbosity(logging.WARNING)
    model = saving.load_model(_MODEL.value)
    encoding = {}
    if convert.model_kind(model) == "annotator":
        from dcme_keras.models.annotator import config_path, read_config

        # The training run records its input encoding beside the model; flags override it.
        config = read_config(config_path(_MODEL.value))
        if config is not None:
            encoding = {"point_radius": config.point_radius, "margin": config.margin,
                        "annotator_classes": config.classes}
        for name, flag in (("point_radius", _POINT_RADIUS), ("margin", _MARGIN)):
            if flag.value is not None:
                encoding[name] = flag.value
    meta = convert.export_model(
        model, _OUT.value, quantization=_QUANTIZATION.value,
        representative_source=_REPRESENTATIVE.value,
        calibration_samples=_CALIBRATION_SAMPLES.value,
        parity_samples=_PARITY_SAMPLES.value, max_iou_drop=_MAX_IOU_DROP.value,
        max_detection_drop=_MAX_DETECTION_DROP.value, allow_drop=_ALLOW_DROP.value, source_name=Path(_MODEL.value).name,
        progress=_PROGRESS.value, **encoding)
    ops = meta["parity"]["op_report"]
    size_kib = Path(_OUT.value).stat().st_size / 1024
    print(f"wrote {_OUT.value} ({size_kib:.0f} KiB, {meta['kind']}, {meta['quantization']}; "
          f"XNNPACK runs {ops['delegated']}/{ops['ops']} ops in {ops['partitions']} "
          f"partition(s)) and {metadata_path(_OUT.value)}")
