"""Training of the DCME network (paper 000) with ``model.fit``: settings, losses, callbacks.

:func:`train` runs one training run from a :class:`TrainConfig`: the network of the
preset (:func:`dcme_keras.models.deeplab_dcme.build_deeplab_dcme`) on scenes of the
``cityscapes_instances`` TFDS dataset (:func:`dcme_keras.data.pipelines.dcme_dataset`),
compiled by :func:`build_and_compile` with the clipped DCME loss (eqs. 4-6) and the grid
classifier's cross-entropy, through the shared harness :func:`dcme_keras.training.fit`
(resume, ``best.keras`` / ``last.keras``, CSV and TensorBoard logs). The recipe where the
paper says nothing: :func:`learning_rate_callback` (cosine decay by the optimizer's step),
batch-norm recalibration every epoch (:func:`dcme_keras.training.precise_batch_norm`), and
:func:`decoded_validation_callback`, which picks ``best.keras`` by decoded detection
accuracy. ``dcme-keras train dcme`` (:mod:`dcme_keras.cli.train_dcme`) is its command line,
whose help describes every setting.

Example:
  >>> from dcme_keras.train_dcme import TrainConfig, train
  >>> train(TrainConfig(data_dir="/tmp/tfds", model_dir="/tmp/dcme", preset="tiny",
  ...                   image_size=(256, 512), epochs=10))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dcme_keras import training
from dcme_keras.errors import UserInputError
from dcme_keras.hardware import describe

#: Settings a resumed run must share with the run that wrote ``model_dir``: they change
#: the model's variables or the optimizer's, which the backup restores by structure.
RESUME_KEYS = ("preset", "image_size", "mixed_precision")
#: Resume keys added later, with the value a config.json written before them means.
_RESUME_KEYS_SINCE = {"foreground_head": False}
RESUME_KEYS = RESUME_KEYS + tuple(_RESUME_KEYS_SINCE)
#: Learning-rate schedules of ``--lr_schedule``.
SCHEDULES = ("cosine", "constant")
#: The decoded metric that picks ``best.keras`` when ``--decoded_val_frames`` > 0.
DETECTION_METRIC = "val_detection_accuracy"



@dataclasses.dataclass(frozen=True)
class TrainConfig(training.RunConfig):
    """Settings of one DCME training run; the CLI flags of the same names.

    Attributes (beyond those of :class:`~dcme_keras.training.RunConfig`: ``data_dir``,
    ``model_dir``, ``config``, ``data_name``):
      preset: model preset, ``paper``, ``mobilenet_v2``, ``tiny`` or ``cpu``.
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


def _check_resume(model_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run whose variables another model would not fit."""
    path = model_dir / training.CONFIG_FILE
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"{path} is not a config.json of `dcme-keras train dcme`; pass "
                             "a new --model_dir") from None
    training.refuse_changed_settings(model_dir, {**_RESUME_KEYS_SINCE, **previous},
                                     training.run_settings(config), RESUME_KEYS)


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
    sizes = training.split_sizes(config.data_dir, config.config)
    if sizes.get("train", 0) < config.batch_size:
        raise UserInputError(
            f"the train split has {sizes.get('train', 0)} scenes, fewer than one batch of "
            f"{config.batch_size}; lower --batch_size or build more frames")
    model_dir = Path(config.model_dir).expanduser()
    _check_resume(model_dir, config)

    import keras

    from dcme_keras import figures
    from dcme_keras.data import pipelines
    from dcme_keras.fileio import atomic_path
    from dcme_keras.models.deeplab_dcme import OUTPUT_STRIDE

    data_name = config.data_label
    hardware = describe()
    with training.precision(config.mixed_precision):
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
        record = training.run_record(config, data=data_name, splits=sizes, replicas=replicas,
                                     hardware=hardware)
        with atomic_path(model_dir / training.CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        history = training.fit(
            model, train_ds, val_ds, model_dir=model_dir, epochs=config.epochs,
            monitor=monitor, mode=mode,
            early_stopping_patience=config.early_stopping_patience,
            steps_per_epoch=config.steps_per_epoch,
            validation_steps=config.validation_steps, verbose=config.verbose,
            first_callbacks=first_callbacks)
    figures.loss_curves(model_dir / "history.csv", model_dir / training.LOSS_CURVES_FILE,
                        caption=f"{data_name}; preset {config.preset} at "
                                f"{config.image_size[0]}x{config.image_size[1]}; "
                                f"{hardware}")
    return history
