"""The extreme-points annotator (paper 003) run from a ``.keras`` model, and model files.

:class:`KerasAnnotator` is :class:`dcme_keras.runtime.ExtremePointsAnnotator` driven by a
``.keras`` model instead of a ``.tflite`` one: :class:`KerasModel` adapts the Keras network
to the runtime's :class:`~dcme_keras.runtime.InferenceModel` protocol, so crop, point
channel, sigmoid and paste-back are the runtime's own code, and a ``.keras`` model and its
export segment through the same pre- and post-processing. :func:`open_annotator` takes
either file. :func:`inspect_model` tells the two kinds of model apart without importing
TensorFlow, so a command can refuse a wrong model before paying for the import.

Example:
  >>> annotator = open_annotator("runs/annotator/best.keras")
  >>> mask = annotator.segment(image_rgb_uint8, [(10, 50), (40, 12), (90, 48), (45, 99)])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dcme_keras import keys, saving
from dcme_keras.errors import UserInputError
from dcme_keras.models.annotator import KIND, POINT_MODE, AnnotatorConfig, config_path, read_config
from dcme_keras.runtime import ExtremePointsAnnotator

MODEL_SUFFIXES: tuple[str, ...] = (".keras", ".tflite")


class KerasModel:
    """A Keras annotator network as a runtime :class:`~dcme_keras.runtime.InferenceModel`,
    so :class:`~dcme_keras.runtime.ExtremePointsAnnotator` runs it unchanged.

    It reports the batch-1 shapes an exported model has, and runs any batch through one
    ``tf.function`` (no ``predict`` overhead per call).

    Args:
      model: a ``keras.Model`` with input ``image [B, S, S, C]`` and output
        ``{keys.MASK: [B, S, S, 1]}``.
      config: its input encoding; recorded as the sidecar metadata would be.
    """

    def __init__(self, model, config: AnnotatorConfig):
        import tensorflow as tf

        outputs = model.output if isinstance(model.output, dict) else {}
        if keys.MASK not in outputs:
            raise UserInputError(f"the model's outputs {sorted(outputs)} hold no {keys.MASK!r}; "
                                 "pass an annotator from `dcme-keras train annotator`")
        spatial = tuple(model.inputs[0].shape[1:])
        self.keras_model = model
        self.metadata = {"kind": KIND, "point_radius": config.point_radius,
                         "margin": config.margin, "point_mode": POINT_MODE}
        self.input_shape = (1, *spatial)
        self.output_shapes = {keys.MASK: (1, *tuple(outputs[keys.MASK].shape[1:]))}
        self.num_threads = tf.config.threading.get_intra_op_parallelism_threads()
        self._forward = tf.function(
            lambda x: model(x, training=False)[keys.MASK],
            input_signature=[tf.TensorSpec((None, *spatial), tf.float32)], autograph=False)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``[B, S, S, C]`` float32 -> ``{keys.MASK: [B, S, S, 1] float32 logits}``."""
        return {keys.MASK: self._forward(np.asarray(batch, np.float32)).numpy()}

    def predict_on_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Same as calling the model: it takes any batch size."""
        return self(batch)

    def replica(self):
        """Refused: TensorFlow runs its own thread pool; workers are a ``.tflite`` feature."""
        raise UserInputError("several workers need a .tflite model (one interpreter each); "
                             "export the .keras model or use one worker")


class KerasAnnotator(ExtremePointsAnnotator):
    """:class:`~dcme_keras.runtime.ExtremePointsAnnotator` on a ``.keras`` model.

    Args:
      model: a ``.keras`` file from ``dcme-keras train annotator`` or a ``keras.Model``.
      config: the model's input encoding; default: the :data:`CONFIG_FILE` beside the
        file, else the package defaults (radius 3, margin 0.1) and the model's input shape.
      threshold: probability from which a pixel is object; None: 0.5
        (``runtime.DEFAULT_THRESHOLD``).

    Raises:
      UserInputError: for a file Keras cannot load or a model that is no annotator.

    Example:
      >>> annotator = KerasAnnotator("runs/annotator/best.keras")
      >>> mask = annotator.segment(image_rgb_uint8, [(10, 50), (40, 12), (90, 48), (45, 99)])
    """

    def __init__(self, model, *, config: AnnotatorConfig | None = None,
                 threshold: float | None = None):
        if isinstance(model, (str, os.PathLike)):
            path = Path(model).expanduser()
            config = config or read_config(config_path(path))
            model = saving.load_model(path, kind="annotator")
        shape = tuple(model.inputs[0].shape[1:])
        if config is None:
            config = AnnotatorConfig(size=int(shape[0]), points=shape[-1] == 4)
        super().__init__(KerasModel(model, config), threshold=threshold)
        self.config = config


def inspect_model(path: str | os.PathLike) -> dict[str, Any]:
    """What kind of model file ``path`` is, without importing TensorFlow.

    A ``.keras`` archive's stored config names the outputs and the input shape; a
    ``.tflite`` file is opened by the runtime, which checks its sidecar.

    Args:
      path: a ``.keras`` or ``.tflite`` file.

    Returns:
      ``{"format": "keras" | "tflite", "size": S, "points": bool}``.

    Raises:
      UserInputError: for a missing file, another extension, a file of neither format, or
        a model that is not an annotator (e.g. a DCME network).
    """
    path = Path(path).expanduser()
    if path.suffix not in MODEL_SUFFIXES:
        raise UserInputError(f"model {path} has the extension {path.suffix or '(none)'!r}; "
                             "pass a .keras file from `dcme-keras train annotator` or a "
                             ".tflite file from `dcme-keras export`")
    if not path.is_file():
        raise UserInputError(f"model file {path} does not exist; check the path")
    if path.suffix == ".tflite":
        annotator = ExtremePointsAnnotator(path)
        return {"format": "tflite", "size": annotator.size, "points": annotator.uses_points}
    stored = saving.read_archive_config(path)
    saving.check_kind(path, stored, "annotator")
    config = stored.get("config", {})
    shape = next((layer["config"].get("batch_shape") for layer in config.get("layers", [])
                  if layer.get("class_name") == "InputLayer"), None)
    if not shape or len(shape) != 4 or shape[-1] not in (3, 4):
        raise UserInputError(f"{path} has the input shape {shape}, not [B, S, S, 4 or 3]; "
                             "pass a model from `dcme-keras train annotator`")
    return {"format": "keras", "size": int(shape[1]), "points": shape[-1] == 4}


def open_annotator(path: str | os.PathLike, *, num_threads: int = 1,
                   threshold: float | None = None) -> ExtremePointsAnnotator:
    """An annotator from a ``.keras`` (Keras, TensorFlow) or ``.tflite`` (LiteRT) file.

    Args:
      path: the model file.
      num_threads: LiteRT interpreter threads (``.tflite`` only; TensorFlow sizes its
        own pool).
      threshold: probability from which a pixel is object; None: the ``.tflite``
        sidecar's calibrated one, else 0.5.

    Raises:
      UserInputError: see :func:`inspect_model`.
    """
    path = Path(path).expanduser()
    if path.suffix == ".tflite":
        return ExtremePointsAnnotator(path, num_threads=num_threads, threshold=threshold)
    # Anything else goes through saving.load_model, which names the problem with a file
    # that is no .keras annotator.
    return KerasAnnotator(path, threshold=threshold)
