"""The extreme-points annotator network (paper 003): its config, builder, loss and compile.

**Configuration.** A training run writes ``model_dir/config.json`` (:data:`CONFIG_FILE`):
the network (``variant``, ``filters``, ``levels``), its input encoding (``size``,
``points``, ``point_radius``, ``margin``, ``point_mode``), the ``classes`` it learned, plus a
``training`` record. The input-encoding keys have the names of the runtime's ``.tflite``
sidecar, so the export stage copies them as they are. :class:`AnnotatorConfig` reads and
writes it.

**Model.** :func:`build_annotator` makes the U-Net of a config
(:func:`dcme_keras.models.unet.build_unet`), :func:`compile_annotator` compiles it as the
paper trains it. Keras is imported only when a model is built, so reading a config stays
cheap.

Example:
  >>> config = AnnotatorConfig(variant="paper", size=128)
  >>> model = compile_annotator(build_annotator(config), loss="avg_distance")
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dcme_keras import extreme_points as ep
from dcme_keras import keys
from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path

#: The annotator's settings file in a training run's ``model_dir``.
CONFIG_FILE = "config.json"
#: ``kind`` of :data:`CONFIG_FILE`, as in the runtime sidecar.
KIND = "annotator"
#: Training losses by name (paper 003, Sec. 3); all take logits.
LOSSES: tuple[str, ...] = ("avg_distance", "iou", "bce_iou")
#: The validation aIoU as Keras logs it: early stopping and ``best.keras`` follow it.
MONITOR = "val_aiou"
#: The point channel the data pipeline draws (paper 003: small filled circles).
POINT_MODE = "circle"


@dataclasses.dataclass(frozen=True)
class AnnotatorConfig:
    """What defines an annotator network and the inputs it was trained on.

    Attributes:
      variant: U-Net block type, a key of ``dcme_keras.models.unet.VARIANTS``.
      filters: width f of the first level (paper: 16).
      levels: resolutions of the U-Net, the input's included (paper: 5).
      size: S, side of the square network input [pixels] (paper: 128).
      points: whether the input carries the extreme-points channel (4 channels) or is the
        RGB-only baseline (3 channels).
      point_radius: radius of the point circles [pixels of the S x S input].
      margin: crop margin around the points' box, a fraction of its size.
      classes: Cityscapes class names of the training objects.
    """

    variant: str = "paper"
    filters: int = 16
    levels: int = 5
    size: int = ep.DEFAULT_SIZE
    points: bool = True
    point_radius: int = ep.DEFAULT_RADIUS
    margin: float = ep.DEFAULT_MARGIN
    classes: tuple[str, ...] = ANNOTATOR_CLASSES

    @property
    def channels(self) -> int:
        """Input channels: 4 with the point channel, 3 without."""
        return 4 if self.points else 3

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict, with ``kind`` and ``point_mode`` as the runtime sidecar has them."""
        return {"kind": KIND, **dataclasses.asdict(self), "classes": list(self.classes),
                "point_mode": POINT_MODE}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "config") -> AnnotatorConfig:
        """The config a :meth:`to_json` dict describes; other keys are ignored.

        Raises:
          UserInputError: when ``data`` is not an annotator's config.
        """
        if not isinstance(data, Mapping) or data.get("kind") != KIND:
            raise UserInputError(f"{where} is not an annotator's {CONFIG_FILE} (no \"kind\": "
                                 f"\"{KIND}\"); pass a model from `dcme-keras train annotator`")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        if "classes" in values:
            values["classes"] = tuple(values["classes"])
        try:
            return cls(**values)
        except TypeError as err:
            raise UserInputError(f"{where} does not fit this version ({err}); retrain or fix "
                                 "the file") from None


def config_path(model_path: str | os.PathLike) -> Path:
    """Where the config of a model file lives: :data:`CONFIG_FILE` in the same folder."""
    return Path(model_path).expanduser().parent / CONFIG_FILE


def read_config(path: str | os.PathLike) -> AnnotatorConfig | None:
    """Read an annotator's :data:`CONFIG_FILE`; None when there is none.

    Args:
      path: the file itself, or a folder holding it (a ``model_dir``).

    Raises:
      UserInputError: for a file that is not valid JSON or not an annotator's config.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path} is not valid JSON ({err}); delete it or pass another "
                             "model folder") from None
    return AnnotatorConfig.from_json(data, str(path))


def write_config(model_dir: str | os.PathLike, config: AnnotatorConfig,
                 training: Mapping[str, Any] | None = None) -> Path:
    """Write ``model_dir/config.json`` atomically.

    Args:
      model_dir: the training run's folder.
      config: the network and its input encoding.
      training: optional JSON-ready record of the run (loss, optimizer, data, ...).

    Returns:
      The file's path.
    """
    path = Path(model_dir).expanduser() / CONFIG_FILE
    record = config.to_json()
    if training is not None:
        record["training"] = dict(training)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path



def build_annotator(config: AnnotatorConfig):
    """The U-Net of ``config``: ``image [B, S, S, C]`` -> ``{keys.MASK: [B, S, S, 1] logits}``."""
    from dcme_keras.models.unet import build_unet

    return build_unet(config.variant, filters=config.filters, input_size=config.size,
                      input_channels=config.channels, levels=config.levels)


def make_loss(name: str):
    """The training loss called ``name`` (one of :data:`LOSSES`), on logits.

    ``avg_distance`` is the paper's average-distance loss (its best), ``iou`` the
    differentiable IoU loss, ``bce_iou`` binary cross-entropy plus IoU.
    """
    from dcme_keras import losses

    table = {"avg_distance": losses.AverageDistanceLoss, "iou": losses.SoftIoULoss,
             "bce_iou": losses.BCEIoULoss}
    if name not in table:
        raise UserInputError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name](from_logits=True)


def compile_annotator(model, *, loss: str = "avg_distance", learning_rate: float = 1e-3):
    """Compile ``model`` as paper 003 trains it: Adam, the chosen loss, aIoU as metric.

    Args:
      model: an annotator network (output ``keys.MASK``).
      loss: one of :data:`LOSSES`.
      learning_rate: Adam's step size (paper: 1e-3).

    Returns:
      ``model``, compiled; the metric logs as ``aiou`` / ``val_aiou`` (:data:`MONITOR`).
    """
    import keras

    from dcme_keras.metrics import BinaryIoUFromLogits

    if not learning_rate > 0:
        raise UserInputError(f"learning rate {learning_rate!r} must be > 0; the paper uses 1e-3")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss={keys.MASK: make_loss(loss)},
                  metrics={keys.MASK: [BinaryIoUFromLogits()]})
    return model
