"""Keras -> TFLite conversion with quantization, the metadata sidecar and the parity gate.

The path is the one PITFALLS.md found reliable on TF 2.21: ``model.export(...,
format="tf_saved_model")`` with a fixed batch-1 input signature, then
``tf.lite.TFLiteConverter.from_saved_model``. ``from_concrete_functions`` is never used
(it leaves variables uninitialised and every output NaN).

Models always export **logits**: an int8 SOFTMAX/LOGISTIC is not delegated to XNNPACK,
so the runtime applies sigmoid / softmax in NumPy.

:func:`export_model` is the whole stage behind ``dcme-keras export``: convert, check
parity with Keras on held-out data (:mod:`dcme_keras.export.parity`), refuse a model
that lost too much, and only then write the model and its sidecar.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from dcme_keras import __version__, classes, keys
from dcme_keras import extreme_points as ep
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_files
from dcme_keras.models.annotator import POINT_MODE
from dcme_keras.runtime import METADATA_FORMAT, TFLiteModel, metadata_path

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
#: Calibration samples per kind: objects (annotator) or frames (DCME).
DEFAULT_CALIBRATION_SAMPLES = {"annotator": 200, "dcme": 24}
#: Held-out parity samples per kind: objects (annotator) or frames (DCME).
DEFAULT_PARITY_SAMPLES = {"annotator": 256, "dcme": 6}
#: Largest accepted loss of annotator iIoU against Keras [IoU points].
DEFAULT_MAX_IOU_DROP = 1.0
#: Largest accepted loss of DCME detection accuracy at IoU 0.5 against Keras [points].
DEFAULT_MAX_DETECTION_DROP = 5.0


class ParityError(UserInputError):
    """The converted model lost more quality than allowed; nothing was written.

    Attributes:
      report: the parity report (see :mod:`dcme_keras.export.parity`).
    """

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def model_kind(model) -> str:
    """``"annotator"`` or ``"dcme"``, from the names of a Keras model's outputs.

    Raises:
      UserInputError: for a model with neither output.
    """
    names = set(model.output.keys()) if isinstance(model.output, dict) else set()
    if names == {keys.MASK}:
        return "annotator"
    if names in ({keys.DCME, keys.GRID}, {keys.DCME, keys.GRID, keys.FOREGROUND}):
        return "dcme"
    raise UserInputError(
        f"model outputs {sorted(names) or model.output_names} are neither {{{keys.MASK!r}}} "
        f"(annotator) nor {{{keys.DCME!r}, {keys.GRID!r}}} (DCME, optionally with "
        f"{keys.FOREGROUND!r}); export a model built by dcme_keras")


def convert(model, *, quantization: str = "float32",
            representative: Callable[[], Iterable[np.ndarray]] | None = None) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    Args:
      model: a built ``keras.Model`` with one image input ``[B, H, W, C]`` float32 and a
        dict of outputs.
      quantization: ``float32`` (none), ``float16`` (weights in fp16), ``dynamic``
        (int8 weights, float activations) or ``int8`` (full integer: every op int8,
        float32 input/output with quantize/dequantize at the ends).
      representative: for ``int8``, a callable yielding ``[1, H, W, C]`` float32 inputs
        exactly as the model sees them at inference (real images in their 0-255 or
        0-1 range; PITFALLS: calibrating on other ranges clips bright pixels).

    Returns:
      The ``.tflite`` bytes.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise UserInputError(
            f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    if quantization == "int8" and representative is None:
        raise UserInputError("int8 needs representative data: pass --representative DIR|synthetic")
    shape = [1, *model.input_shape[1:]]
    if any(d is None for d in shape):
        raise UserInputError(f"model input shape {model.input_shape} is not fixed; rebuild it "
                             "with a fixed input size before exporting")
    with tempfile.TemporaryDirectory() as tmp:
        # A fixed batch of 1 gives static shapes, which XNNPACK plans best.
        model.export(tmp, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = lambda: ([np.asarray(x, np.float32)]
                                                        for x in representative())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def write_tflite(flatbuffer: bytes, out_path: str | Path, metadata: dict) -> Path:
    """Write ``out_path`` and its sidecar ``out_path.json`` atomically, both or neither.

    Args:
      flatbuffer: the ``.tflite`` bytes.
      out_path: destination ``.tflite`` path.
      metadata: JSON-serialisable dict; ``format`` and ``package_version`` are added, and
        NaN / inf become ``null``.

    Returns:
      ``out_path`` as a Path.
    """
    out_path = Path(out_path)
    meta = _json_safe({"format": METADATA_FORMAT, "package_version": __version__, **metadata})
    with atomic_files([out_path, metadata_path(out_path)]) as (tmp_model, tmp_meta):
        tmp_model.write_bytes(flatbuffer)
        tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True, allow_nan=False))
    return out_path


def _json_safe(value):
    """``value`` with NaN / inf floats as None, so the sidecar is strict JSON for any reader."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def model_metadata(model, *, quantization: str, point_radius: int = ep.DEFAULT_RADIUS,
                   margin: float = ep.DEFAULT_MARGIN,
                   annotator_classes: Sequence[str] = classes.ANNOTATOR_CLASSES) -> dict:
    """What the runtime needs to know about a model, for the sidecar JSON.

    Args:
      model: the Keras annotator or DCME network.
      quantization: one of :data:`QUANTIZATIONS`.
      point_radius: the annotator's point circle radius [pixels of the network input].
      margin: the annotator's crop margin, a fraction of the points' box size.
      annotator_classes: Cityscapes class names the annotator was trained on.

    Returns:
      ``kind``, ``input_size`` [H, W], ``input_channels``, ``input_range``,
      ``normalization``, ``outputs``, ``classes`` (name and Cityscapes label id), and for
      an annotator ``point_radius``, ``margin``, ``point_mode``; for DCME ``grid_size``.
    """
    kind = model_kind(model)
    _, height, width, channels = model.input_shape
    meta = {"kind": kind, "quantization": quantization,
            "input_size": [int(height), int(width)], "input_channels": int(channels)}
    if kind == "annotator":
        out = model.output[keys.MASK].shape
        if height != width or channels not in (3, 4) or tuple(out[1:]) != (height, width, 1):
            raise UserInputError(f"annotator maps {model.input_shape} to {out}; it must map "
                                 "[B, S, S, 4 or 3] to [B, S, S, 1]; export a build_unet model")
        return {**meta,
                "input_range": [0.0, 1.0],
                "normalization": "RGB / 255; channel 4 (if any): the 4 extreme points as "
                                 "filled circles, 1 inside, 0 outside",
                "outputs": {keys.MASK: f"[1, {out[1]}, {out[2]}, 1] logits; sigmoid >= 0.5 "
                                       "is the object"},
                "point_radius": int(point_radius), "margin": float(margin),
                "point_mode": POINT_MODE,
                "classes": [{"name": n, "label_id": classes.label_id(n)}
                            for n in annotator_classes]}
    if channels != 3:
        raise UserInputError(f"DCME model input {model.input_shape} is not [B, H, W, 3]; "
                             "export a network built by build_deeplab_dcme")
    grid_h, grid_w = model.output[keys.GRID].shape[1:3]
    grid_size = int(height) // int(grid_h)
    if grid_size * grid_h != height or grid_size * grid_w != width:
        raise UserInputError(f"grid output {model.output[keys.GRID].shape} does not tile the "
                             f"{height}x{width} input; export a network built by "
                             "build_deeplab_dcme")
    names = ("background",) + classes.THING_CLASSES
    outputs = {keys.DCME: f"[1, {height}, {width}, 2] (dy, dx) pixels to the instance's "
                          "center of mass",
               keys.GRID: f"[1, {grid_h}, {grid_w}, {len(names)}] logits; softmax over the "
                          "last axis, 0 = background"}
    if keys.FOREGROUND in model.output:
        outputs[keys.FOREGROUND] = (f"[1, {height}, {width}, 1] logits; sigmoid >= 0.5 is "
                                    "an instance pixel, the decoder's foreground")
    return {**meta,
            "input_range": [0.0, 255.0],
            "normalization": "RGB 0..255 float32; the network normalizes itself",
            "outputs": outputs,
            "grid_size": grid_size,
            "classes": [{"name": n, "grid_id": g, "label_id": classes.grid_id_to_label_id(g)}
                        for g, n in enumerate(names)]}


def export_model(model, out_path: str | os.PathLike, *, quantization: str = "float32",
                 representative_source: str = "synthetic",
                 calibration_samples: int | None = None, parity_samples: int | None = None,
                 max_iou_drop: float = DEFAULT_MAX_IOU_DROP,
                 max_detection_drop: float = DEFAULT_MAX_DETECTION_DROP,
                 allow_drop: bool = False,
                 point_radius: int = ep.DEFAULT_RADIUS, margin: float = ep.DEFAULT_MARGIN,
                 annotator_classes: Sequence[str] = classes.ANNOTATOR_CLASSES,
                 source_name: str | None = None, progress: bool = True,
                 echo: Callable[[str], None] = print) -> dict:
    """Convert, check parity with Keras, gate, then write ``out_path`` and its sidecar.

    Example:
      >>> meta = export_model(saving.load_model("unet.keras"), "unet_int8.tflite",
      ...                     quantization="int8", representative_source="synthetic")

    Args:
      model: the Keras annotator or DCME network.
      out_path: the ``.tflite`` to write; ``out_path.json`` is the sidecar.
      quantization: one of :data:`QUANTIZATIONS`.
      representative_source: int8 calibration data: a Cityscapes-layout folder (its
        ``train`` split) or ``"synthetic"`` (frames rendered with a fixed seed).
      calibration_samples: objects (annotator) or frames (DCME) to calibrate int8 on;
        ``None`` takes :data:`DEFAULT_CALIBRATION_SAMPLES`.
      parity_samples: held-out objects or frames for the parity check; ``None`` takes
        :data:`DEFAULT_PARITY_SAMPLES`.
      max_iou_drop: largest accepted annotator iIoU loss against Keras [IoU points].
      max_detection_drop: largest accepted DCME loss of detection accuracy at IoU 0.5
        against Keras, on the held-out frames [points].
      allow_drop: write the model even when it lost more than the gate allows.
      point_radius, margin: the annotator's preprocessing, recorded in the sidecar.
      annotator_classes: the annotator's training classes: recorded in the sidecar, and
        the objects of its calibration and parity data.
      source_name: what to record as the source model (e.g. the ``.keras`` name).
      progress: show progress bars.
      echo: where the parity table goes, line by line.

    Returns:
      The metadata written to the sidecar, with the parity report under ``"parity"``.

    Raises:
      ParityError: when the annotator lost more than ``max_iou_drop``, or the DCME
        network more than ``max_detection_drop``, and not ``allow_drop``; nothing is
        written then.
      UserInputError: for bad arguments or data.
    """
    from dcme_keras.export import parity, representative

    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise UserInputError(f"output {out_path} does not end in .tflite; pass e.g. "
                             "--out model.tflite")
    meta = model_metadata(model, quantization=quantization, point_radius=point_radius,
                          margin=margin, annotator_classes=annotator_classes)
    kind = meta["kind"]
    calibration_samples = calibration_samples or DEFAULT_CALIBRATION_SAMPLES[kind]
    parity_samples = parity_samples or DEFAULT_PARITY_SAMPLES[kind]
    if calibration_samples < 1 or parity_samples < 1:
        raise UserInputError(f"calibration ({calibration_samples}) and parity "
                             f"({parity_samples}) samples must be at least 1")
    meta["source_model"] = source_name
    representative_fn = None
    if quantization == "int8":
        representative.check_source(representative_source)  # before the slow conversion
        representative_fn = representative.representative_dataset(
            kind, representative_source, calibration_samples,
            input_shape=model.input_shape[1:], radius=point_radius, margin=margin,
            classes=annotator_classes)
        meta["calibration"] = {"source": (representative.SYNTHETIC
                                          if representative_source == representative.SYNTHETIC
                                          else str(Path(representative_source).resolve())),
                               "seed": representative.CALIBRATION_SEED,
                               "samples": calibration_samples}
    flatbuffer = convert(model, quantization=quantization, representative=representative_fn)

    tflite = TFLiteModel.from_bytes(flatbuffer, meta, num_threads=os.cpu_count() or 1,
                                    kind=kind)
    if kind == "annotator":
        _, size, _, channels = model.input_shape
        inputs, targets = parity.held_out_annotator_data(
            parity_samples, size=size, channels=channels, radius=point_radius, margin=margin,
            classes=annotator_classes)
        report = parity.annotator_parity(model, tflite, inputs, targets, progress=progress)
    else:
        report = parity.dcme_parity(model, tflite, parity_samples, progress=progress)
    if kind == "annotator":
        drop, limit, unit = report["iou_drop"], float(max_iou_drop), "IoU points"
        report["max_iou_drop"] = limit
    else:
        drop, limit = report["detection_drop"], float(max_detection_drop)
        unit = f"points of detection accuracy @IoU {parity.DETECTION_IOU}"
        report["max_detection_drop"] = limit
    report["op_report"] = tflite.op_report()
    echo(parity.format_report(report, quantization=quantization))
    if drop > limit:
        if not allow_drop:
            flag = "--max_iou_drop" if kind == "annotator" else "--max_detection_drop"
            raise ParityError(
                f"the {quantization} model loses {drop:.2f} {unit} against Keras (more than "
                f"{limit:g}, {flag}); nothing was written. Calibrate on real images "
                "(--representative DIR), use float16 or dynamic, or pass --allow_drop",
                report)
        echo(f"warning: writing anyway (--allow_drop) although the model loses "
             f"{drop:.2f} {unit}")
    meta["parity"] = report
    write_tflite(flatbuffer, out_path, meta)
    return meta
