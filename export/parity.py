"""Parity of a converted TFLite model with its Keras original, on held-out synthetic data.

``dcme-keras export`` runs this on the converted bytes before anything is written, stores
the report in the sidecar JSON and prints it as a table. The data is rendered with
:data:`~dcme_keras.export.representative.PARITY_SEED`, which calibration never uses.

**Annotator.** One example per object of the held-out frames (the tool's own crop and
point channel). Both models' masks (``sigmoid(logits) >= 0.5``) are scored against the
ground-truth crop at the network's resolution, as paper 003 scores them: iIoU (the mean
per-object IoU) and aIoU (the pooled IoU of batches of 32, averaged). The **drop** is
Keras iIoU minus TFLite iIoU, in IoU points; the export gate reads it. The agreement
(mean IoU of the two models' masks) and the largest logit difference show how far the
conversion moved the outputs regardless of the ground truth.

**DCME.** Held-out frames at the network's input size are written in the Cityscapes
layout to a temporary folder and both models run on them. Reported: the vector error
between the two DCME maps (Euclidean norm per pixel [px]: mean and max over all pixels,
mean over the pixels either model calls foreground, ``|v| >= 0.5`` px); the share of grid
cells whose argmax class agrees; and for each model the official Cityscapes AP / AP50
(:func:`dcme_keras.evaluation.evaluate_outputs`) and the detection accuracy at IoU 0.5
(:func:`dcme_keras.evaluation.detection_accuracy`, classes aside) on those frames. The
**detection drop** (Keras minus TFLite detection accuracy, in points) is what the export
gate reads: quantized vectors that no longer decode into the same instances fail it. A
few small synthetic frames make a noisy AP, so it is reported, not gated. An int8
model's outputs are decoded with the exact-center path off, as the runtime does.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from dcme_keras import evaluation, inference, keys, metrics
from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.data import pipelines, synthetic
from dcme_keras.export import representative
from dcme_keras.runtime import TFLiteModel, decode_defaults, sigmoid

#: Batch size of the aIoU (paper 003's).
AIOU_BATCH = 32
#: IoU threshold of the detection accuracy [0, 1].
DETECTION_IOU = 0.5
#: Keras inference batch size for parity runs.
_KERAS_BATCH = 8
#: Vectors shorter than this are background to the decoder (``decode_dcme``'s default
#: ``min_magnitude``) [px].
_STILL_PX = 0.5


def annotator_parity(model, tflite: TFLiteModel, inputs: np.ndarray, targets: np.ndarray,
                     *, progress: bool = True) -> dict[str, Any]:
    """Mask quality of the Keras and TFLite annotators on the same examples.

    Args:
      model: the Keras annotator (``image -> {keys.MASK: logits}``).
      tflite: the converted model.
      inputs: [N, S, S, C] float32, as :func:`dcme_keras.extreme_points.make_input` gives.
      targets: [N, S, S, 1] float32 0/1 ground-truth crops.
      progress: show a progress bar over the TFLite runs.

    Returns:
      ``{"kind": "annotator", "samples": N, "keras": {"iiou", "aiou"}, "tflite": {...},
      "iou_drop": float, "agreement_iou": float, "max_logit_error": float}``; IoUs and
      the drop in IoU points (0..100).
    """
    keras_logits = np.concatenate([
        np.asarray(model.predict_on_batch(inputs[i:i + _KERAS_BATCH])[keys.MASK])
        for i in range(0, len(inputs), _KERAS_BATCH)])
    tflite_logits = np.concatenate([
        tflite(x[None])[keys.MASK]
        for x in tqdm(inputs, desc="parity (TFLite)", unit="object", disable=not progress)])
    gt = targets[..., 0] >= 0.5
    scores = {}
    masks = {}
    for name, logits in (("keras", keras_logits), ("tflite", tflite_logits)):
        masks[name] = sigmoid(logits[..., 0]) >= 0.5
        scores[name] = {"iiou": 100.0 * metrics.iiou(masks[name], gt),
                        "aiou": 100.0 * metrics.aiou(masks[name], gt, AIOU_BATCH)}
    return {
        "kind": "annotator",
        "samples": int(len(inputs)),
        **scores,
        "iou_drop": scores["keras"]["iiou"] - scores["tflite"]["iiou"],
        "agreement_iou": 100.0 * float(np.mean(metrics.iou(masks["tflite"], masks["keras"]))),
        "max_logit_error": float(np.abs(tflite_logits - keras_logits).max()),
    }


def _quality(root: str, outputs: Mapping[str, Mapping[str, np.ndarray]],
             decode_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """AP, AP50 and detection accuracy of precomputed outputs on the ``val`` frames."""
    ap = evaluation.evaluate_outputs(root, outputs, "val", progress=False,
                                     decode_kwargs=decode_kwargs)
    detection = evaluation.detection_accuracy(root, outputs, "val", thresholds=[DETECTION_IOU],
                                              decode_kwargs=decode_kwargs, progress=False)
    return {"AP": ap["AP"], "AP50": ap["AP50"],
            "detection": detection["per_threshold"][0]["accuracy"],
            "instances": sum(len(inference.instances_from_outputs(
                out[keys.DCME], out[keys.GRID], foreground_logits=out.get(keys.FOREGROUND),
                decode_kwargs=decode_kwargs)) for out in outputs.values())}


def dcme_parity(model, tflite: TFLiteModel, frames: int, *, seed: int = representative.PARITY_SEED,
                progress: bool = True) -> dict[str, Any]:
    """Outputs and AP of the Keras and TFLite DCME networks on held-out synthetic frames.

    Args:
      model: the Keras DCME network (``image -> {keys.DCME, keys.GRID}``).
      tflite: the converted model.
      frames: number of held-out frames, at least 1.
      seed: base seed of the frames.
      progress: show a progress bar over the frames.

    Returns:
      ``{"kind": "dcme", "samples": frames, "vector_error_mean", "vector_error_max",
      "vector_error_foreground_mean" [px], "grid_agreement" [%], "keras": {"AP", "AP50",
      "detection", "instances"}, "tflite": {...}, "detection_drop"}``; AP, AP50 and
      detection accuracy in percent (``nan`` when the frames hold no scored instance),
      the drop in points (0 when either accuracy is ``nan``).
    """
    tflite_decode = decode_defaults(tflite.metadata)
    height, width = (int(v) for v in tflite.input_shape[1:3])
    errors, foreground, agree = [], [], []
    outputs: dict[str, dict] = {"keras": {}, "tflite": {}}
    with tempfile.TemporaryDirectory(prefix="dcme_parity_") as root:
        # One extra frame: write_dataset keeps at least one frame in train.
        synthetic.write_dataset(root, frames=frames + 1, size=(height, width), seed=seed,
                                val_fraction=1.0, progress=False)
        for frame in tqdm(pipelines.cityscapes_frames(root, "val"), total=frames,
                          desc="parity", unit="frame", disable=not progress):
            stem, image = frame[keys.IMAGE_ID], frame[keys.IMAGE]
            k = inference.model_outputs(model, [image], batch_size=1)[0]
            t = inference.model_outputs(tflite, [image], batch_size=1)[0]
            outputs["keras"][stem], outputs["tflite"][stem] = k, t
            error = np.hypot(*np.moveaxis(t[keys.DCME] - k[keys.DCME], -1, 0))  # [H, W] px
            moving = (np.hypot(*np.moveaxis(k[keys.DCME], -1, 0)) >= _STILL_PX) | (
                np.hypot(*np.moveaxis(t[keys.DCME], -1, 0)) >= _STILL_PX)
            errors.append(error)
            foreground.append(error[moving])
            agree.append(k[keys.GRID].argmax(-1) == t[keys.GRID].argmax(-1))
        errors_all = np.stack(errors)
        moving_errors = np.concatenate(foreground)
        keras_quality = _quality(root, outputs["keras"], {})
        tflite_quality = _quality(root, outputs["tflite"], tflite_decode)
        drop = keras_quality["detection"] - tflite_quality["detection"]
        return {
            "kind": "dcme",
            "samples": int(frames),
            "vector_error_mean": float(errors_all.mean()),
            "vector_error_max": float(errors_all.max()),
            "vector_error_foreground_mean": (float(moving_errors.mean())
                                             if moving_errors.size else 0.0),
            "grid_agreement": 100.0 * float(np.mean(np.stack(agree))),
            "keras": keras_quality,
            "tflite": tflite_quality,
            "detection_drop": 0.0 if math.isnan(drop) else float(drop),
        }


def _fmt(value: float, digits: int = 2) -> str:
    """A number for the table, ``n/a`` for nan / None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_report(report: Mapping[str, Any], *, quantization: str) -> str:
    """The parity report as a plain-text table.

    Args:
      report: what :func:`annotator_parity` or :func:`dcme_parity` returned.
      quantization: the exported quantization, for the title.

    Returns:
      Lines of text, no trailing newline.
    """
    kind, n = report["kind"], report["samples"]
    if kind == "annotator":
        k, t = report["keras"], report["tflite"]
        rows = [("iIoU vs GT [%]", _fmt(k["iiou"]), _fmt(t["iiou"])),
                (f"aIoU vs GT [%] (batch {AIOU_BATCH})", _fmt(k["aiou"]), _fmt(t["aiou"]))]
        footer = [f"IoU drop: {_fmt(report['iou_drop'])} points (Keras iIoU - TFLite iIoU)",
                  f"Keras/TFLite mask agreement (mean IoU): {_fmt(report['agreement_iou'])} %",
                  f"largest logit difference: {_fmt(report['max_logit_error'], 4)}"]
        unit = f"{n} held-out synthetic objects"
    else:
        k, t = report["keras"], report["tflite"]
        rows = [("AP [%]", _fmt(k["AP"]), _fmt(t["AP"])),
                ("AP50 [%]", _fmt(k["AP50"]), _fmt(t["AP50"])),
                (f"detection acc. @IoU {DETECTION_IOU} [%]", _fmt(k["detection"]),
                 _fmt(t["detection"])),
                ("decoded instances", str(k["instances"]), str(t["instances"]))]
        footer = [f"detection drop: {_fmt(report['detection_drop'])} points (Keras - TFLite "
                  f"detection accuracy @IoU {DETECTION_IOU})",
                  f"DCME vector error [px]: mean {_fmt(report['vector_error_mean'], 4)}, "
                  f"max {_fmt(report['vector_error_max'], 4)}, on foreground "
                  f"{_fmt(report['vector_error_foreground_mean'], 4)}",
                  f"grid cells with the same class: {_fmt(report['grid_agreement'])} %"]
        unit = f"{n} held-out synthetic frames"
    width = max(len(r[0]) for r in rows)
    lines = [f"parity of the {quantization} TFLite model with Keras ({unit})",
             f"  {'':<{width}}  {'Keras':>8}  {'TFLite':>8}"]
    lines += [f"  {name:<{width}}  {a:>8}  {b:>8}" for name, a, b in rows]
    lines += [f"  {line}" for line in footer]
    return "\n".join(lines)


def held_out_annotator_data(count: int, *, size: int, channels: int, radius: int,
                            margin: float, classes: Sequence[str] = ANNOTATOR_CLASSES
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out annotator examples: objects of synthetic frames of :data:`PARITY_SEED`.

    Args:
      count: number of objects, at least 1.
      size, channels, radius, margin, classes: as in
        :func:`dcme_keras.export.representative.annotator_samples`.

    Returns:
      ``(inputs [N, S, S, C] float32, targets [N, S, S, 1] float32)``.
    """
    frame_iter = representative.synthetic_frames(representative.PARITY_SEED,
                                                 representative.ANNOTATOR_FRAME_SIZE)
    return representative.annotator_samples(frame_iter, count, size=size, channels=channels,
                                            radius=radius, margin=margin, classes=classes)

