"""``dcme-keras train annotator``: train the extreme-points annotator (paper 003).

    dcme-keras synth --out /tmp/synth --frames 60 --size 256x512
    dcme-keras build --manual_dir /tmp/synth --data_dir /tmp/tfds
    dcme-keras train annotator --data_dir /tmp/tfds --model_dir /tmp/annotator \\
        --variant paper --loss avg_distance --epochs 20 --patience 5

The network (``--variant``, ``models/unet.py``; f = ``--filters`` at ``--size``) reads one
object at a time: the crop around its 4 extreme points, RGB plus the points drawn as
circles (``--nopoints`` drops that channel: the RGB-only baseline). Examples come from
``data/pipelines.annotator_dataset``: every object of the paper's 9 classes of at least
``--min_area`` pixels, with random flip and rotation (``--max_rotation_deg``) on the train
split only. Training follows the paper: Adam at ``--learning_rate`` 1e-3, batches of 32,
the average-distance loss (or ``iou`` / ``bce_iou``), and early stopping on the
validation aIoU with the best epoch kept.

``--model_dir`` receives what the shared harness writes (``training.py``: ``best.keras``
by validation aIoU, ``last.keras``, ``history.csv``, ``tensorboard/``, ``backup/``) plus
``config.json`` (the network, its input encoding: ``point_radius``, ``margin``, ``size``,
``points``, ``classes``, and this run's settings) and ``loss_curves.png``. Rerunning with
the same ``--model_dir`` continues from the last finished epoch with the optimizer state;
``--epochs`` is the total.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from absl import flags

from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.errors import UserInputError
from dcme_keras.hardware import describe

LOSS_CURVES_FILE = "loss_curves.png"

_defined = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one annotator training run; the CLI flags of the same names.

    Attributes:
      data_dir: TFDS data dir holding ``cityscapes_instances`` (``dcme-keras build``).
      model_dir: output folder; an existing run there is resumed.
      config: builder config of the dataset, ``full`` or ``half``.
      data_name: how captions and ``config.json`` name the data; None names the
        dataset and its folder.
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

    data_dir: str
    model_dir: str
    config: str = "full"
    data_name: str | None = None
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
    precise_bn_batches: int = 8
    strategy: str = "default"
    mixed_precision: bool = False
    cache: str | None = None
    seed: int = 0
    verbose: int = 1

    def annotator(self):
        """The :class:`dcme_keras.annotate.AnnotatorConfig` this run trains."""
        from dcme_keras.annotate import AnnotatorConfig

        return AnnotatorConfig(variant=self.variant, filters=self.filters, levels=self.levels,
                               size=self.size, points=self.points,
                               point_radius=self.point_radius, margin=self.margin,
                               classes=tuple(self.classes))


def define_flags() -> None:
    """Define this command's absl flags, once per process."""
    global _defined
    if _defined:
        return
    _defined = True
    from dcme_keras.annotate import LOSSES

    flags.DEFINE_string("data_dir", None, "TFDS data dir holding cityscapes_instances "
                        "(`dcme-keras build --data_dir`)", required=True)
    flags.DEFINE_string("model_dir", None, "output folder: checkpoints, logs, config.json; "
                        "an unfinished or shorter run there is resumed", required=True)
    flags.DEFINE_string("config", "full", "dataset builder config: full or half")
    flags.DEFINE_string("data_name", None, "name of the data in captions and config.json, "
                        "e.g. 'synthetic Cityscapes'; default: the dataset and its folder")
    # A string, not an enum of models.unet.VARIANTS: that import would load Keras for --help.
    flags.DEFINE_string("variant", "paper", "U-Net block type (paper 003, Table 1): paper, "
                        "residual, dense, separable, contextual or unetpp")
    flags.DEFINE_integer("filters", 16, "filters f of the first level (the paper: 16)",
                         lower_bound=1)
    flags.DEFINE_integer("levels", 5, "U-Net resolutions (the paper: 5)", lower_bound=2)
    flags.DEFINE_integer("size", 128, "network input side in pixels (the paper: 128)",
                         lower_bound=1)
    flags.DEFINE_bool("points", True, "feed the extreme-points channel (the paper's method); "
                      "--nopoints trains the RGB-only baseline that `annotate --box` uses")
    flags.DEFINE_integer("point_radius", 3, "radius of the point circles in pixels of the "
                         "network input", lower_bound=0)
    flags.DEFINE_float("margin", 0.1, "crop margin around the points' box, a fraction of its "
                       "size", lower_bound=0.0)
    flags.DEFINE_list("classes", list(ANNOTATOR_CLASSES), "Cityscapes classes to train on, "
                      "comma-separated (the paper's 9 by default)")
    flags.DEFINE_enum("loss", "avg_distance", list(LOSSES), "training loss: avg_distance "
                      "(the paper's best), iou, or bce_iou")
    flags.DEFINE_integer("batch_size", 32, "global batch size in objects (the paper: 32)",
                         lower_bound=1)
    flags.DEFINE_integer("epochs", 100, "total number of epochs (the paper: 100 with early "
                         "stopping)", lower_bound=1)
    flags.DEFINE_integer("steps_per_epoch", None, "batches per epoch (the data repeats); "
                         "default: one pass over the train split", lower_bound=1)
    flags.DEFINE_integer("validation_steps", None, "batches per validation; default: the "
                         "whole validation split", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (the paper: 1e-3)",
                       lower_bound=0.0)
    flags.DEFINE_integer("patience", 5, "stop after this many epochs without a better "
                         "val_aiou; 0 = never", lower_bound=0)
    flags.DEFINE_float("min_area", 100.0, "smallest object in source pixels", lower_bound=0.0)
    flags.DEFINE_integer("jitter_px", 0, "random click jitter of the training points in "
                         "source pixels (0: the exact extreme points)", lower_bound=0)
    flags.DEFINE_float("max_rotation_deg", 15.0, "largest random rotation of the train "
                       "objects in degrees", lower_bound=0.0)
    flags.DEFINE_bool("photometric", False, "degrade the train crops like a real camera: "
                      "colour cast, shadow, blur, noise, JPEG, lower resolution")
    flags.DEFINE_integer("precise_bn_batches", 8, "recompute BatchNorm statistics with the "
                         "current weights over this many train batches before each "
                         "validation; 0 keeps the moving averages", lower_bound=0)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy; multi_worker reads TF_CONFIG")
    flags.DEFINE_bool("mixed_precision", False, "train in mixed_float16")
    flags.DEFINE_string("cache", "none", "cache the objects' windows: memory, a file prefix, "
                        "or none")
    flags.DEFINE_integer("seed", 0, "seed of weights, shuffling and augmentation",
                         lower_bound=0)
    flags.DEFINE_bool("progress", True, "Keras progress bar; --noprogress logs one line "
                      "per epoch")


def config_from_flags() -> TrainConfig:
    """The :class:`TrainConfig` the parsed flags describe."""
    f = flags.FLAGS
    cache = None if f.cache is None or f.cache.lower() == "none" else f.cache
    return TrainConfig(
        data_dir=f.data_dir, model_dir=f.model_dir, config=f.config, data_name=f.data_name,
        variant=f.variant, filters=f.filters, levels=f.levels, size=f.size, points=f.points,
        point_radius=f.point_radius, margin=f.margin,
        classes=tuple(c.strip() for c in f.classes), loss=f.loss, batch_size=f.batch_size,
        epochs=f.epochs, steps_per_epoch=f.steps_per_epoch,
        validation_steps=f.validation_steps, learning_rate=f.learning_rate,
        patience=f.patience or None, min_area=f.min_area, jitter_px=f.jitter_px,
        max_rotation_deg=f.max_rotation_deg, photometric=f.photometric,
        precise_bn_batches=f.precise_bn_batches,
        strategy=f.strategy, mixed_precision=f.mixed_precision, cache=cache, seed=f.seed,
        verbose=1 if f.progress else 2)


def _check_resume(model_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose network or inputs differ from this one's."""
    from dcme_keras.annotate import CONFIG_FILE, read_config

    try:
        previous = read_config(model_dir)
    except UserInputError:
        raise UserInputError(f"--model_dir {model_dir} holds a {CONFIG_FILE} that is not an "
                             "annotator's; pass a new --model_dir") from None
    if previous is None:
        return
    now = dataclasses.asdict(config.annotator())
    was = dataclasses.asdict(previous)
    changed = [k for k in now if was[k] != now[k]]
    if changed:
        settings = ", ".join(f"--{k}={was[k]}" for k in changed)
        raise UserInputError(f"--model_dir {model_dir} holds a run with {settings}; resume it "
                             "with the same settings or pass a new --model_dir")


def _check_config(config: TrainConfig) -> None:
    from dcme_keras.annotate import LOSSES
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

    Writes ``config.json`` (:func:`dcme_keras.annotate.write_config`: the network, its
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
    from dcme_keras.cli.train_dcme import _settings, split_sizes

    _check_config(config)
    sizes = split_sizes(config.data_dir, config.config)
    model_dir = Path(config.model_dir).expanduser()
    _check_resume(model_dir, config)
    annotator_config = config.annotator()

    import keras
    import tensorflow as tf

    from dcme_keras import annotate, figures, training
    from dcme_keras.data import pipelines

    data_name = config.data_name or (f"cityscapes_instances/{config.config} in "
                                     f"{config.data_dir}")
    hardware = describe()
    previous_policy = keras.mixed_precision.global_policy()
    training.set_precision(config.mixed_precision)
    try:
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
            seed=config.seed + training.finished_epochs(model_dir), **common)
        if config.steps_per_epoch is not None:
            train_ds = train_ds.repeat()
        val_ds = (pipelines.annotator_dataset("validation", augment=False, **common)
                  if sizes.get("validation", 0) else None)
        model = training.build_in_scope(strategy, lambda: annotate.compile_annotator(
            annotate.build_annotator(annotator_config), loss=config.loss,
            learning_rate=config.learning_rate))
        # Written only now that training can start, so a failed start blocks no rerun.
        annotate.write_config(model_dir, annotator_config, training={
            "settings": _settings(config), "data": data_name, "frames": sizes,
            "replicas": strategy.num_replicas_in_sync, "hardware": hardware,
            "tensorflow": tf.__version__, "keras": keras.__version__})
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
            monitor=annotate.MONITOR, mode="max", early_stopping_patience=config.patience,
            steps_per_epoch=config.steps_per_epoch,
            validation_steps=config.validation_steps, verbose=config.verbose,
            first_callbacks=callbacks)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    inputs = "RGB + extreme points" if config.points else "RGB only"
    figures.loss_curves(model_dir / "history.csv", model_dir / LOSS_CURVES_FILE,
                        caption=f"{data_name}; U-Net {config.variant} f={config.filters} at "
                                f"{config.size}x{config.size}, {inputs}; {hardware}")
    return history


def main(argv: list[str]) -> None:
    """Trains and prints where the checkpoints are."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; train annotator takes only "
                             "--flags")
    config = config_from_flags()
    history = train(config)
    model_dir = Path(config.model_dir).expanduser()
    ran = f"epochs {history.epoch[0]}..{history.epoch[-1]}" if history.epoch else "no epoch"
    print(f"ran {ran} of {config.epochs}; {os.fspath(model_dir)}: best.keras (by val_aiou), "
          f"last.keras, config.json, history.csv, {LOSS_CURVES_FILE}, tensorboard/")
