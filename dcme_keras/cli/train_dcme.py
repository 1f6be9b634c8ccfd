"""``dcme-keras train dcme``: train the DCME network (paper 000) with ``model.fit``.

    dcme-keras synth --out /tmp/synth --frames 60 --size 256x512
    dcme-keras build --manual_dir /tmp/synth --data_dir /tmp/tfds
    dcme-keras train dcme --data_dir /tmp/tfds --preset tiny --image_size 256x512 \\
        --batch_size 6 --epochs 20 --model_dir /tmp/dcme_tiny --data_name "synthetic"

The network (``--preset``, ``models/deeplab_dcme.py``) reads whole scenes from the
``cityscapes_instances`` TFDS dataset (``data/pipelines.py``) and learns two outputs at
once: the DCME map, under the clipped MSE of eqs. 4-6 (``losses.DCMELoss``) with void and
group pixels weighted 0, and the grid classes, under sparse categorical cross-entropy
from logits with per-cell weights. Both losses average over the pixels or cells that
count; ``--dcme_weight`` and ``--grid_weight`` weight them in the total.

The recipe, where the paper says nothing (measured reasons in the README, "Training the
DCME network"): Adam at ``--learning_rate`` 1e-3 with a cosine decay to 1/100 over all
steps (``--lr_schedule``); the head predicts vectors in units of the preset's
``head_output_scale`` (32 px) from a zero-initialized output conv; at the end of every
epoch the batch-norm statistics are recomputed over ``--precise_bn_batches`` train
batches, and the first ``--decoded_val_frames`` validation scenes are decoded
(``codec_np.decode_dcme``, default parameters) to log ``val_detection_accuracy`` (IoU 0.5,
instances of ``--min_area`` px or more) and ``val_vector_error`` (median px on object
pixels). ``best.keras`` is the epoch with the best detection accuracy (``val_loss`` with
``--decoded_val_frames 0``).

``--model_dir`` receives what the shared harness writes (``training.py``: ``best.keras``,
``last.keras``, ``history.csv``, ``tensorboard/``, ``backup/``) plus
``config.json`` (this run's settings) and ``loss_curves.png``. Rerunning with the same
``--model_dir`` continues from the last finished epoch with the optimizer state;
``--epochs`` is the total. ``--batch_size`` is the global batch: under ``--strategy
mirrored`` each of R replicas gets ``batch_size / R``.

``--foreground_head`` (beyond the paper, off by default) adds the optional per-pixel
foreground output ``keys.FOREGROUND`` (logits), trained with binary cross-entropy from
logits on 1 = instance pixel, weighted like the DCME loss (void and group pixels 0) and
averaged over the pixels that count; ``--foreground_weight`` weights it in the total.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from absl import flags

from dcme_keras.cli.common import parse_hw
from dcme_keras.hardware import describe
from dcme_keras.errors import UserInputError

#: Settings a resumed run must share with the run that wrote ``model_dir``: they change
#: the model's variables or the optimizer's, which the backup restores by structure.
RESUME_KEYS = ("preset", "image_size", "mixed_precision")
#: Resume keys added later, with the value a config.json written before them means.
_RESUME_KEYS_SINCE = {"foreground_head": False}
RESUME_KEYS = RESUME_KEYS + tuple(_RESUME_KEYS_SINCE)
CONFIG_FILE = "config.json"
LOSS_CURVES_FILE = "loss_curves.png"
#: Learning-rate schedules of ``--lr_schedule``.
SCHEDULES = ("cosine", "constant")
#: The decoded metric that picks ``best.keras`` when ``--decoded_val_frames`` > 0.
DETECTION_METRIC = "val_detection_accuracy"

_defined = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one DCME training run; the CLI flags of the same names.

    Attributes:
      data_dir: TFDS data dir holding ``cityscapes_instances`` (``dcme-keras build``).
      model_dir: output folder; an existing run there is resumed.
      config: builder config of the dataset, ``full`` or ``half``.
      data_name: how captions and ``config.json`` name the data; None names the
        dataset and its folder.
      preset: model preset, ``paper``, ``mobilenet_v2`` or ``tiny``.
      image_size: network input (H, W) [pixels], multiples of 16.
      batch_size: global batch [scenes]; under several replicas, validation drops a
        last partial batch.
      epochs: total epochs.
      steps_per_epoch: batches per epoch (the training data then repeats); None = one
        pass over the train split.
      validation_steps: batches per validation; None = the whole validation split.
      learning_rate: Adam's step size at the first step.
      lr_schedule: ``cosine`` (down to ``learning_rate / 100`` at the last step of
        ``epochs``) or ``constant``.
      dcme_weight: weight of the DCME loss in the total.
      grid_weight: weight of the grid loss in the total.
      amplitude: A of eq. 6 [pixels].
      strategy: ``default``, ``mirrored`` or ``multi_worker``.
      mixed_precision: ``mixed_float16`` body (heads and losses stay float32).
      backbone_weights: ``imagenet``, a weights file, or None (random init).
      jit_compile: force XLA; False leaves Keras' default (``auto``).
      cache: ``memory``, a file prefix, or None: where decoded scenes are cached.
      seed: seed of weights, shuffling and flips.
      early_stopping_patience: epochs without a better monitored value (detection
        accuracy, else validation loss) before stopping; None = off.
      precise_bn_batches: at the end of every epoch, before validation and checkpoints,
        batch-norm statistics are recomputed with the current weights over this many
        unaugmented train batches (``training.precise_batch_norm``); 0 keeps Keras'
        moving averages, which lag far behind in short runs.
      decoded_val_frames: validation scenes decoded at the end of every epoch to log
        ``val_detection_accuracy`` and ``val_vector_error`` and pick ``best.keras`` by
        the former; 0 picks it by ``val_loss``.
      min_area: smallest ground-truth instance [pixels at ``image_size``] that counts
        for ``val_detection_accuracy``.
      verbose: Keras' ``fit`` verbosity (1 = progress bar, 2 = one line per epoch).
      foreground_head: add the optional foreground output (beyond the paper).
      foreground_weight: weight of the foreground loss in the total.
    """

    data_dir: str
    model_dir: str
    config: str = "full"
    data_name: str | None = None
    preset: str = "paper"
    image_size: tuple[int, int] = (512, 1024)
    batch_size: int = 6
    epochs: int = 1
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    dcme_weight: float = 1.0
    grid_weight: float = 1.0
    amplitude: float = 4.0
    strategy: str = "default"
    mixed_precision: bool = False
    backbone_weights: str | None = None
    jit_compile: bool = False
    cache: str | None = None
    seed: int = 0
    early_stopping_patience: int | None = None
    precise_bn_batches: int = 4
    decoded_val_frames: int = 4
    min_area: int = 100
    verbose: int = 1
    foreground_head: bool = False
    foreground_weight: float = 1.0


def define_flags() -> None:
    """Define this command's absl flags, once per process."""
    global _defined
    if _defined:
        return
    _defined = True
    flags.DEFINE_string("data_dir", None, "TFDS data dir holding cityscapes_instances "
                        "(`dcme-keras build --data_dir`)", required=True)
    flags.DEFINE_string("model_dir", None, "output folder: checkpoints, logs, config.json; "
                        "an unfinished or shorter run there is resumed", required=True)
    flags.DEFINE_string("config", "full", "dataset builder config: full or half")
    flags.DEFINE_string("data_name", None, "name of the data in captions and config.json, "
                        "e.g. 'synthetic Cityscapes'; default: the dataset and its folder")
    flags.DEFINE_enum("preset", "paper", ["paper", "mobilenet_v2", "tiny"],
                      "model preset: paper (VGG16 DeepLabv3+, sec. V), mobilenet_v2, tiny")
    flags.DEFINE_string("image_size", "512x1024", "network input HxW in pixels, "
                        "multiples of 16 (the paper: 512x1024)")
    flags.DEFINE_integer("batch_size", 6, "global batch size (the paper: 6)", lower_bound=1)
    flags.DEFINE_integer("epochs", 1, "total number of epochs", lower_bound=1)
    flags.DEFINE_integer("steps_per_epoch", None, "batches per epoch (the data repeats); "
                         "default: one pass over the train split", lower_bound=1)
    flags.DEFINE_integer("validation_steps", None, "batches per validation; default: the "
                         "whole validation split", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate at the first step",
                       lower_bound=0.0)
    flags.DEFINE_enum("lr_schedule", "cosine", list(SCHEDULES), "cosine: decay to 1/100 "
                      "of --learning_rate by the last step of --epochs; constant: none")
    flags.DEFINE_float("dcme_weight", 1.0, "weight of the DCME loss", lower_bound=0.0)
    flags.DEFINE_float("grid_weight", 1.0, "weight of the grid loss", lower_bound=0.0)
    flags.DEFINE_float("amplitude", 4.0, "A of the translated logistic, eq. 6, in pixels "
                       "(the paper: 4 at 512x1024)")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy; multi_worker reads TF_CONFIG")
    flags.DEFINE_bool("mixed_precision", False, "train in mixed_float16")
    flags.DEFINE_string("backbone_weights", "none", "imagenet (keras' cached file), the "
                        "path of a no-top weights file, or none (the paper used imagenet)")
    flags.DEFINE_bool("jit_compile", False, "force XLA compilation of the train step")
    flags.DEFINE_string("cache", "none", "cache decoded scenes: memory, a file prefix, or "
                        "none (512x1024 Cityscapes train takes 7.4 GB)")
    flags.DEFINE_integer("seed", 0, "seed of weights, shuffling and flips", lower_bound=0)
    flags.DEFINE_integer("early_stopping_patience", None, "stop after this many epochs "
                         "without a better monitored value; default: never", lower_bound=1)
    flags.DEFINE_integer("precise_bn_batches", 4, "recompute batch-norm statistics over "
                         "this many train batches before each validation and checkpoint; "
                         "0: keep the moving averages", lower_bound=0)
    flags.DEFINE_integer("decoded_val_frames", 4, "decode this many validation scenes each "
                         "epoch and pick best.keras by val_detection_accuracy (IoU 0.5); "
                         "0: pick it by val_loss", lower_bound=0)
    flags.DEFINE_integer("min_area", 100, "smallest instance in pixels at --image_size "
                         "that val_detection_accuracy counts", lower_bound=0)
    flags.DEFINE_bool("progress", True, "Keras progress bar; --noprogress logs one line "
                      "per epoch")
    flags.DEFINE_bool("foreground_head", False, "beyond the paper: add a per-pixel "
                      "foreground output (logits, binary cross-entropy)")
    flags.DEFINE_float("foreground_weight", 1.0, "weight of the foreground loss (with "
                       "--foreground_head)", lower_bound=0.0)


def _none_if(value: str | None) -> str | None:
    return None if value is None or value.lower() == "none" else value


def config_from_flags() -> TrainConfig:
    """The :class:`TrainConfig` the parsed flags describe."""
    f = flags.FLAGS
    return TrainConfig(
        data_dir=f.data_dir, model_dir=f.model_dir, config=f.config, data_name=f.data_name,
        preset=f.preset, image_size=parse_hw(f.image_size), batch_size=f.batch_size,
        epochs=f.epochs, steps_per_epoch=f.steps_per_epoch,
        validation_steps=f.validation_steps, learning_rate=f.learning_rate,
        lr_schedule=f.lr_schedule,
        dcme_weight=f.dcme_weight, grid_weight=f.grid_weight, amplitude=f.amplitude,
        strategy=f.strategy, mixed_precision=f.mixed_precision,
        backbone_weights=_none_if(f.backbone_weights), jit_compile=f.jit_compile,
        cache=_none_if(f.cache), seed=f.seed,
        early_stopping_patience=f.early_stopping_patience,
        precise_bn_batches=f.precise_bn_batches, decoded_val_frames=f.decoded_val_frames,
        min_area=f.min_area, verbose=1 if f.progress else 2,
        foreground_head=f.foreground_head, foreground_weight=f.foreground_weight)


def split_sizes(data_dir: str | os.PathLike, config: str) -> dict[str, int]:
    """Examples per split of the built ``cityscapes_instances/<config>``.

    Raises:
      UserInputError: if the dataset is not built in ``data_dir``, with the commands that
        build it.
    """
    import tensorflow_datasets as tfds

    # Importing the builder registers it under its name.
    from tfds_cityscapes.cityscapes_instances import Builder

    names = [c.name for c in Builder.BUILDER_CONFIGS]
    if config not in names:
        raise UserInputError(f"--config {config!r} is unknown; use one of {', '.join(names)}")
    data_dir = os.fspath(Path(data_dir).expanduser())
    builder = tfds.builder(f"cityscapes_instances/{config}", data_dir=data_dir)
    if not builder.is_prepared():
        raise UserInputError(
            f"no cityscapes_instances/{config} dataset in {data_dir}; make one with "
            f"`dcme-keras synth --out /tmp/synth` (or use real Cityscapes) then "
            f"`dcme-keras build --manual_dir /tmp/synth --data_dir {data_dir} "
            f"--config {config}`")
    return {name: split.num_examples for name, split in builder.info.splits.items()}


def _settings(config: TrainConfig) -> dict[str, Any]:
    """JSON-ready settings; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _check_resume(model_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose variables another model would not fit."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"{path} is not a config.json of `dcme-keras train dcme`; pass "
                             "a new --model_dir") from None
    now = _settings(config)
    previous = {**_RESUME_KEYS_SINCE, **previous}
    changed = [k for k in RESUME_KEYS if previous.get(k) != now[k]]
    if changed:
        was = ", ".join(f"--{k}={previous.get(k)}" for k in changed)
        raise UserInputError(f"--model_dir {model_dir} holds a run with {was}; resume it "
                             "with the same settings or pass a new --model_dir")


def _check_config(config: TrainConfig) -> None:
    for name in ("batch_size", "epochs"):
        value = getattr(config, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise UserInputError(f"{name} {value!r} must be a positive whole number")
    if not config.amplitude > 0:
        raise UserInputError(f"--amplitude {config.amplitude} must be > 0, e.g. 4")
    if not config.foreground_weight >= 0:
        raise UserInputError(f"--foreground_weight {config.foreground_weight} must be >= 0, "
                             "e.g. 1")
    if not config.learning_rate > 0:
        raise UserInputError(f"--learning_rate {config.learning_rate} must be > 0, e.g. 1e-3")
    if config.lr_schedule not in SCHEDULES:
        raise UserInputError(f"--lr_schedule {config.lr_schedule!r} is unknown; use one of "
                             f"{', '.join(SCHEDULES)}")
    for name in ("precise_bn_batches", "decoded_val_frames", "min_area"):
        value = getattr(config, name)
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise UserInputError(f"{name} {value!r} must be a whole number >= 0")


def _check_decoded_scenes(scenes, config: TrainConfig) -> None:
    """Refuse decoded validation scenes without one instance that counts."""
    import numpy as np

    from dcme_keras.evaluation import instance_detections

    counted = sum(instance_detections(ids, np.zeros_like(ids), min_area=config.min_area)[1]
                  for _, ids in scenes)
    if not counted:
        raise UserInputError(
            f"the first {len(scenes)} validation scenes hold no instance of "
            f"at least --min_area {config.min_area} pixels at {config.image_size[0]}x"
            f"{config.image_size[1]}; lower --min_area, raise --decoded_val_frames, or "
            "pass --decoded_val_frames 0 to pick best.keras by val_loss")


def _validation_batching(num_scenes: int, batch_size: int, replicas: int
                         ) -> tuple[int, bool]:
    """(batch size, drop_remainder) of the validation data; batch 0 = no validation.

    On one replica every scene is used. With several, a batch that leaves a replica
    without a scene fails (Keras builds the model from the first batch reduced over the
    replicas, and batch norm fails on an empty batch), so batches are whole multiples
    of the replica count and a last partial batch is left out.
    """
    if replicas == 1:
        return (batch_size if num_scenes else 0), False
    return min(batch_size, num_scenes) // replicas * replicas, True


def build_and_compile(config: TrainConfig):
    """The DCME network of ``config``, compiled with its two losses and Adam.

    Returns:
      A compiled ``keras.Model``: image [B, H, W, 3] 0..255 -> ``{keys.DCME: [B, H, W, 2],
      keys.GRID: [B, H/16, W/16, 9]}``.
    """
    import keras

    from dcme_keras import keys
    from dcme_keras.classes import NUM_THING_CLASSES
    from dcme_keras.losses import DCMELoss
    from dcme_keras.models.deeplab_dcme import build_deeplab_dcme

    model = build_deeplab_dcme(config.preset, input_shape=(*config.image_size, 3),
                               num_classes=NUM_THING_CLASSES,
                               backbone_weights=config.backbone_weights,
                               foreground_head=config.foreground_head)
    fg_loss, fg_loss_weight, fg_metrics = _foreground_compile_args(config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss={keys.DCME: DCMELoss(amplitude=config.amplitude),
              # Averaged over the cells that count, as DCMELoss averages over pixels.
              keys.GRID: keras.losses.SparseCategoricalCrossentropy(
                  from_logits=True, reduction="mean_with_sample_weight", name="grid_loss"),
              **fg_loss},
        loss_weights={keys.DCME: config.dcme_weight, keys.GRID: config.grid_weight,
                      **fg_loss_weight},
        weighted_metrics={keys.GRID: [keras.metrics.SparseCategoricalAccuracy("accuracy")],
                          **fg_metrics},
        jit_compile=True if config.jit_compile else "auto")
    return model


def _foreground_compile_args(config: TrainConfig) -> tuple[dict, dict, dict]:
    """``(loss, loss_weights, weighted_metrics)`` entries of the foreground output.

    Empty dicts without ``config.foreground_head``. The loss is binary cross-entropy from
    logits, averaged over the pixels that count (weight > 0), as DCMELoss averages; the
    metrics threshold the logits at 0, i.e. sigmoid >= 0.5.
    """
    if not config.foreground_head:
        return {}, {}, {}
    import keras

    from dcme_keras import keys

    loss = keras.losses.BinaryCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight", name="foreground_loss")
    metrics = [keras.metrics.BinaryAccuracy("accuracy", threshold=0.0),
               # float32: the int default casts the float sample weights (and warns).
               keras.metrics.BinaryIoU(target_class_ids=(1,), threshold=0.0, name="iou",
                                       dtype="float32")]
    return ({keys.FOREGROUND: loss}, {keys.FOREGROUND: config.foreground_weight},
            {keys.FOREGROUND: metrics})


def learning_rate_callback(base: float, schedule: str, total_steps: int):
    """A callback that sets Adam's learning rate before every step from the step count.

    Driven by ``optimizer.iterations``, which the backup restores, so a resumed run
    continues the schedule where it stopped and may change ``base``.

    Args:
      base: the learning rate at step 0.
      schedule: ``constant``, or ``cosine``: half a cosine from ``base`` down to
        ``base / 100`` at ``total_steps``, then flat.
      total_steps: steps of the whole run (all epochs) [batches].

    Returns:
      A ``keras.callbacks.Callback``.
    """
    import math

    import keras

    if schedule not in SCHEDULES:
        raise UserInputError(f"--lr_schedule {schedule!r} is unknown; use one of "
                             f"{', '.join(SCHEDULES)}")

    def rate(step: int) -> float:
        if schedule == "constant":
            return base
        progress = min(step / max(total_steps, 1), 1.0)
        return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    class LearningRate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            optimizer = self.model.optimizer
            optimizer.learning_rate.assign(rate(int(optimizer.iterations.numpy())))

    return LearningRate()


def decoded_validation_callback(scenes, *, min_area: int, batch_size: int):
    """A callback that adds decoded validation scores to every epoch's logs.

    At the end of each epoch (after :func:`dcme_keras.training.precise_batch_norm`),
    the model runs in inference mode on ``scenes``; its DCME maps are decoded with
    ``codec_np.decode_dcme`` (default parameters, within the foreground head's mask when
    the network has one) and matched against the ground truth
    (:func:`dcme_keras.evaluation.dcme_scores`). It logs ``val_detection_accuracy``
    (share of instances of at least ``min_area`` pixels found with IoU >= 0.5, in
    [0, 1]) and ``val_vector_error`` (median |pred - true| on object pixels [pixels]),
    so ``best.keras`` can be picked by what the network is for. Pass it in
    :func:`dcme_keras.training.fit`'s ``first_callbacks``.

    Args:
      scenes: list of ``(image [H, W, 3] float32 0..255, instance_ids [H, W] int32)``.
      min_area: smallest ground-truth instance that counts [pixels].
      batch_size: scenes per forward pass.

    Returns:
      A ``keras.callbacks.Callback``.
    """
    import keras
    import numpy as np

    from dcme_keras import evaluation, keys

    images = np.stack([image for image, _ in scenes])
    instance_ids = np.stack([ids for _, ids in scenes])

    class DecodedValidation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            batches = [self.model(images[i:i + batch_size], training=False)
                       for i in range(0, len(images), batch_size)]
            dcme = np.concatenate([keras.ops.convert_to_numpy(b[keys.DCME]) for b in batches])
            # A network with the foreground head decodes within it, as at inference.
            foreground = (np.concatenate([keras.ops.convert_to_numpy(b[keys.FOREGROUND])
                                          for b in batches])
                          if keys.FOREGROUND in batches[0] else None)
            scores = evaluation.dcme_scores(dcme, instance_ids, min_area=min_area,
                                            foreground_logits=foreground)
            if logs is not None:
                logs[DETECTION_METRIC] = scores["detection_accuracy"]
                logs["val_vector_error"] = scores["vector_error"]

    return DecodedValidation()


def train(config: TrainConfig):
    """Train (or resume training) the DCME network as ``config`` says.

    Writes ``config.json`` (settings, split sizes, replicas, hardware, versions) once the
    model is built, so a start that fails leaves none behind; then runs
    :func:`dcme_keras.training.fit`, then draws ``loss_curves.png`` from ``history.csv``.
    The global Keras dtype policy is restored afterwards.

    Example:
      >>> train(TrainConfig(data_dir="/tmp/tfds", model_dir="/tmp/dcme", preset="tiny",
      ...                   image_size=(256, 512), epochs=10))

    Args:
      config: the run's settings.

    Returns:
      The ``keras.callbacks.History`` of the epochs this call ran (none when the run in
      ``model_dir`` already has ``config.epochs`` epochs).

    Raises:
      UserInputError: for a dataset that is not built, a train split smaller than one
        batch, or a ``model_dir`` holding an incompatible run.
    """
    _check_config(config)
    sizes = split_sizes(config.data_dir, config.config)
    if sizes.get("train", 0) < config.batch_size:
        raise UserInputError(
            f"the train split has {sizes.get('train', 0)} scenes, fewer than one batch of "
            f"{config.batch_size}; lower --batch_size or build more frames")
    model_dir = Path(config.model_dir).expanduser()
    _check_resume(model_dir, config)

    import keras
    import tensorflow as tf

    from dcme_keras import figures, training
    from dcme_keras.data import pipelines
    from dcme_keras.fileio import atomic_path
    from dcme_keras.models.deeplab_dcme import OUTPUT_STRIDE

    data_name = config.data_name or (f"cityscapes_instances/{config.config} in "
                                     f"{config.data_dir}")
    hardware = describe()
    previous_policy = keras.mixed_precision.global_policy()
    training.set_precision(config.mixed_precision)
    try:
        strategy = training.make_strategy(config.strategy)
        replicas = strategy.num_replicas_in_sync
        if config.batch_size < replicas:
            raise UserInputError(f"--batch_size {config.batch_size} is the global batch and "
                                 f"smaller than the {replicas} replicas; use at least "
                                 f"{replicas}")
        keras.utils.set_random_seed(config.seed)
        common = dict(data_dir=config.data_dir, config=config.config,
                      image_size=config.image_size, grid_size=OUTPUT_STRIDE,
                      cache=config.cache)
        if config.foreground_head:
            common["foreground"] = True
        # A resumed run starts a fresh input pipeline; offsetting its seed by the epochs
        # already done keeps it from replaying the first epochs' shuffles and flips.
        train_ds = pipelines.dcme_dataset(
            "train", batch_size=config.batch_size,
            seed=config.seed + training.finished_epochs(model_dir), **common)
        if config.steps_per_epoch is not None:
            train_ds = train_ds.repeat()
        val_batch, val_drop = _validation_batching(sizes.get("validation", 0),
                                                   config.batch_size, replicas)
        val_ds = (pipelines.dcme_dataset("validation", batch_size=val_batch,
                                         drop_remainder=val_drop, **common)
                  if val_batch else None)
        model = training.build_in_scope(strategy, lambda: build_and_compile(config))
        steps = config.steps_per_epoch or sizes["train"] // config.batch_size
        # Set from optimizer.iterations before every step, so the backup's restored rate
        # never wins and a resumed run may change --learning_rate.
        first_callbacks = [learning_rate_callback(config.learning_rate, config.lr_schedule,
                                                  steps * config.epochs)]
        if config.precise_bn_batches:
            # Unshuffled, unflipped and uncached: a short read of the first scenes.
            calibration = pipelines.dcme_dataset(
                "train", batch_size=config.batch_size, shuffle=False, flip=False,
                drop_remainder=False, **{**common, "cache": None})
            first_callbacks.append(training.precise_batch_norm_callback(
                calibration, config.precise_bn_batches))
        monitor, mode = "val_loss", "min"
        if config.decoded_val_frames and val_ds is not None:
            scenes = list(pipelines.dcme_scenes(
                "validation", data_dir=config.data_dir, config=config.config,
                image_size=config.image_size, grid_size=OUTPUT_STRIDE,
            ).take(config.decoded_val_frames).as_numpy_iterator())
            _check_decoded_scenes(scenes, config)
            first_callbacks.append(decoded_validation_callback(
                scenes, min_area=config.min_area, batch_size=config.batch_size))
            monitor, mode = DETECTION_METRIC, "max"
        # Written only now that training can start: a start that failed above (batch vs
        # replicas, missing weights) must not leave a record that blocks the rerun.
        record = {"settings": _settings(config), "data": data_name, "splits": sizes,
                  "replicas": replicas, "hardware": hardware,
                  "tensorflow": tf.__version__, "keras": keras.__version__}
        with atomic_path(model_dir / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        history = training.fit(
            model, train_ds, val_ds, model_dir=model_dir, epochs=config.epochs,
            monitor=monitor, mode=mode,
            early_stopping_patience=config.early_stopping_patience,
            steps_per_epoch=config.steps_per_epoch,
            validation_steps=config.validation_steps, verbose=config.verbose,
            first_callbacks=first_callbacks)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    figures.loss_curves(model_dir / "history.csv", model_dir / LOSS_CURVES_FILE,
                        caption=f"{data_name}; preset {config.preset} at "
                                f"{config.image_size[0]}x{config.image_size[1]}; "
                                f"{hardware}")
    return history


def main(argv: list[str]) -> None:
    """Trains and prints where the checkpoints are."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; train dcme takes only "
                             "--flags")
    config = config_from_flags()
    history = train(config)
    model_dir = Path(config.model_dir).expanduser()
    ran = f"epochs {history.epoch[0]}..{history.epoch[-1]}" if history.epoch else "no epoch"
    print(f"ran {ran} of {config.epochs}; {model_dir}: best.keras, last.keras, history.csv, "
          f"{LOSS_CURVES_FILE}, tensorboard/")
