"""Training of the extreme-points annotator (paper 003) with ``model.fit``.

:func:`train` runs one training run from a :class:`TrainConfig`: the U-Net of
:func:`dcme_keras.models.annotator.build_annotator` on the objects of the
``cityscapes_instances`` TFDS dataset (:func:`dcme_keras.data.pipelines.annotator_dataset`:
crops around the 4 extreme points, random flip and rotation on the train split), compiled
as the paper trains it (:func:`dcme_keras.models.annotator.compile_annotator`: Adam, the
average-distance loss, aIoU), through the shared harness :func:`dcme_keras.training.fit`
with early stopping and ``best.keras`` on the validation aIoU. Batch-norm statistics are
recomputed before each validation (:func:`dcme_keras.training.precise_batch_norm`). The
run's ``config.json`` is the network's :class:`~dcme_keras.models.annotator.AnnotatorConfig`
plus a ``training`` record. ``dcme-keras train annotator``
(:mod:`dcme_keras.cli.train_annotator`) is its command line, whose help describes every
setting.

Example:
  >>> from dcme_keras.train_annotator import TrainConfig, train
  >>> train(TrainConfig(data_dir="/tmp/tfds", model_dir="/tmp/annotator", epochs=20))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dcme_keras import training
from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.errors import UserInputError
from dcme_keras.hardware import describe
from dcme_keras.models.annotator import (CONFIG_FILE, LOSSES, MONITOR, AnnotatorConfig,
                                         build_annotator, compile_annotator, read_config,
                                         write_config)


@dataclasses.dataclass(frozen=True)
class TrainConfig(training.RunConfig):
    """Settings of one annotator training run; the CLI flags of the same names.

    Attributes (beyond those of :class:`~dcme_keras.training.RunConfig`: ``data_dir``,
    ``model_dir``, ``config``, ``data_name``):
      variant: U-Net block type (``paper``, ``residual``, ``dense``, ``separable``,
        ``contextual``, ``unetpp``).
      filters: width f of the first level (paper: 16).
      levels: U-Net resolutions (paper: 5).
      size: network input side [pixels] (paper: 128).
      points: extreme-points channel on (paper's method) or off (RGB-only baseline).
      point_radius: point circle radius [pixels of the network input].
      margin: crop margin around the points' box, a fraction of its size.
      classes: Cityscapes classes to train on (paper: the 9 of ``ANNOTATOR_CLASSES``).
      loss: ``avg_distance`` (paper's best), ``iou`` or ``bce_iou``.
      batch_size: global batch [objects] (paper: 32).
      epochs: total epochs (paper: up to 100, best within 18-20).
      steps_per_epoch: batches per epoch (the data then repeats); None = one pass.
      validation_steps: batches per validation; None = the whole validation split.
      learning_rate: Adam's step size (paper: 1e-3).
      patience: epochs without a better validation aIoU before stopping; None = never.
      min_area: smallest object [source pixels].
      jitter_px: click jitter of the training points [source pixels]; 0 = exact.
      max_rotation_deg: largest augmentation rotation [degrees].
      photometric: camera-like degradations of the train crops (colour, shadow, blur,
        noise, JPEG, resolution; ``pipelines.photometric_np``).
      clutter: same-class neighbours around half of the train objects, beside, behind or
        in front (``pipelines.clutter_window_np``).
      precise_bn_batches: before each validation, BatchNorm statistics are recomputed
        with the current weights over this many unaugmented train batches
        (``training.precise_batch_norm``); 0 keeps Keras' moving averages, which lag
        far behind in runs of a few dozen steps.
      strategy: ``default``, ``mirrored`` or ``multi_worker``.
      mixed_precision: ``mixed_float16`` body (logits and losses stay float32).
      cache: ``memory``, a file prefix, or None: where object windows are cached.
      seed: seed of weights, shuffling and augmentation.
      verbose: Keras' ``fit`` verbosity (1 = progress bar, 2 = one line per epoch).
    """

    variant: str = "paper"
    filters: int = 16
    levels: int = 5
    size: int = 128
    points: bool = True
    point_radius: int = 3
    margin: float = 0.1
    classes: tuple[str, ...] = ANNOTATOR_CLASSES
    loss: str = "avg_distance"
    batch_size: int = 32
    epochs: int = 100
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    learning_rate: float = 1e-3
    patience: int | None = 5
    min_area: float = 100.0
    jitter_px: int = 0
    max_rotation_deg: float = 15.0
    photometric: bool = False
    clutter: bool = False
    precise_bn_batches: int = 8
    strategy: str = "default"
    mixed_precision: bool = False
    cache: str | None = None
    seed: int = 0
    verbose: int = 1

    def annotator(self) -> AnnotatorConfig:
        """The :class:`~dcme_keras.models.annotator.AnnotatorConfig` this run trains."""
        return AnnotatorConfig(variant=self.variant, filters=self.filters, levels=self.levels,
                               size=self.size, points=self.points,
                               point_radius=self.point_radius, margin=self.margin,
                               classes=tuple(self.classes))


def _check_resume(model_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose network or inputs differ from this one's."""
    try:
        previous = read_config(model_dir)
    except UserInputError:
        raise UserInputError(f"--model_dir {model_dir} holds a {CONFIG_FILE} that is not an "
                             "annotator's; pass a new --model_dir") from None
    if previous is None:
        return
    now = dataclasses.asdict(config.annotator())
    training.refuse_changed_settings(model_dir, dataclasses.asdict(previous), now, now)


def _check_config(config: TrainConfig) -> None:
    from dcme_keras.models.unet import VARIANTS

    if config.variant not in VARIANTS:
        raise UserInputError(f"--variant {config.variant!r} is unknown; choose one of "
                             f"{', '.join(VARIANTS)}")
    if config.loss not in LOSSES:
        raise UserInputError(f"--loss {config.loss!r} is unknown; choose one of "
                             f"{', '.join(LOSSES)}")
    for name in ("batch_size", "epochs", "filters", "size"):
        value = getattr(config, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise UserInputError(f"--{name} {value!r} must be a positive whole number")
    if config.patience is not None and config.patience < 1:
        raise UserInputError(f"--patience {config.patience} must be >= 1 (or 0 for no early "
                             "stopping on the command line)")


def train(config: TrainConfig):
    """Train (or resume training) the annotator as ``config`` says.

    Writes ``config.json`` (:func:`dcme_keras.models.annotator.write_config`: the network, its
    input encoding, and a ``training`` record with the settings, split sizes, hardware and
    versions), runs :func:`dcme_keras.training.fit` with ``best.keras`` and early
    stopping on ``val_aiou`` (mode max), then draws ``loss_curves.png``. The global Keras
    dtype policy is restored afterwards.

    Example:
      >>> train(TrainConfig(data_dir="/tmp/tfds", model_dir="/tmp/annotator", epochs=20))

    Args:
      config: the run's settings.

    Returns:
      The ``keras.callbacks.History`` of the epochs this call ran (none when the run in
      ``model_dir`` already has ``config.epochs`` epochs).

    Raises:
      UserInputError: for a dataset that is not built, bad settings, or a ``model_dir``
        holding an incompatible run.
    """
    _check_config(config)
    sizes = training.split_sizes(config.data_dir, config.config)
    model_dir = Path(config.model_dir).expanduser()
    _check_resume(model_dir, config)
    annotator_config = config.annotator()

    import keras

    from dcme_keras import figures
    from dcme_keras.data import pipelines

    data_name = config.data_label
    hardware = describe()
    with training.precision(config.mixed_precision):
        strategy = training.make_strategy(config.strategy)
        keras.utils.set_random_seed(config.seed)
        common = dict(data_dir=config.data_dir, config=config.config,
                      classes=annotator_config.classes, min_area=config.min_area,
                      margin=config.margin, radius=config.point_radius, size=config.size,
                      points=config.points, batch_size=config.batch_size, cache=config.cache)
        # A resumed run starts a fresh input pipeline; offsetting its seed by the epochs
        # already done keeps it from replaying the first epochs' shuffles and rotations.
        train_ds = pipelines.annotator_dataset(
            "train", jitter_px=config.jitter_px, augment=True,
            max_rotation_deg=config.max_rotation_deg, photometric=config.photometric,
            clutter=config.clutter,
            seed=config.seed + training.finished_epochs(model_dir), **common)
        if config.steps_per_epoch is not None:
            train_ds = train_ds.repeat()
        val_ds = (pipelines.annotator_dataset("validation", augment=False, **common)
                  if sizes.get("validation", 0) else None)
        model = training.build_in_scope(strategy, lambda: compile_annotator(
            build_annotator(annotator_config), loss=config.loss,
            learning_rate=config.learning_rate))
        # Written only now that training can start, so a failed start blocks no rerun.
        write_config(model_dir, annotator_config, training=training.run_record(
            config, data=data_name, frames=sizes,
            replicas=strategy.num_replicas_in_sync, hardware=hardware))
        callbacks = []
        if config.precise_bn_batches and val_ds is not None:
            # Unshuffled and uncached: a short read of the first frames, every epoch.
            calibration = pipelines.annotator_dataset(
                "train", augment=False, shuffle=False,
                **{**common, "cache": None})
            callbacks.append(training.precise_batch_norm_callback(
                calibration, config.precise_bn_batches))
        history = training.fit(
            model, train_ds, val_ds, model_dir=model_dir, epochs=config.epochs,
            monitor=MONITOR, mode="max", early_stopping_patience=config.patience,
            steps_per_epoch=config.steps_per_epoch,
            validation_steps=config.validation_steps, verbose=config.verbose,
            first_callbacks=callbacks)
    inputs = "RGB + extreme points" if config.points else "RGB only"
    figures.loss_curves(model_dir / "history.csv", model_dir / training.LOSS_CURVES_FILE,
                        caption=f"{data_name}; U-Net {config.variant} f={config.filters} at "
                                f"{config.size}x{config.size}, {inputs}; {hardware}")
    return history
