"""The training harness shared by the DCME and annotator trainers.

It wraps ``model.fit`` with what a long run needs: resume from the last finished epoch
(model weights *and* optimizer state, through ``keras.callbacks.BackupAndRestore``), best
and last ``.keras`` checkpoints, CSV and TensorBoard logs, optional early stopping, and a
``tf.distribute`` strategy chosen by name. Both trainers recompute the batch-norm
statistics with :func:`precise_batch_norm` (through :func:`precise_batch_norm_callback`)
before each validation and checkpoint.

It also holds what the two trainers (:mod:`dcme_keras.train_dcme`,
:mod:`dcme_keras.train_annotator`) share around ``fit``: the sizes of the dataset's splits
(:func:`split_sizes`), the run's record in ``config.json`` (:func:`run_settings`,
:func:`run_record`), the refusal to resume a run with other settings
(:func:`refuse_changed_settings`), the settings every run names (:class:`RunConfig`, which
the trainers' settings extend) and the dtype policy of a run (:func:`precision`).
TensorFlow and Keras are imported by the functions that need them, so a command can
define its flags from the trainers' settings without loading them.

Layout of ``model_dir``::

    model_dir/
      backup/          resume state, kept after the run so a longer rerun continues
      best.keras       best epoch so far by the monitored metric
      last.keras       the last finished epoch
      history.csv      one row per epoch (appended on resume)
      tensorboard/     TensorBoard event files
      config.json      the run's record (CONFIG_FILE), written by the trainer
      loss_curves.png  drawn from history.csv after the run (LOSS_CURVES_FILE)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcme_keras.errors import UserInputError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")
#: A run's record in ``model_dir``, written by its trainer once training can start.
CONFIG_FILE = "config.json"
#: The figure both trainers draw from ``history.csv`` after a run.
LOSS_CURVES_FILE = "loss_curves.png"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What every training run names: its data and its folder. Trainers' settings extend it.

    Attributes:
      data_dir: TFDS data dir holding ``cityscapes_instances`` (``dcme-keras build``).
      model_dir: output folder; an existing run there is resumed.
      config: builder config of the dataset, ``full`` or ``half``.
      data_name: how captions and ``config.json`` name the data; None names the
        dataset and its folder.

    Example:
      >>> @dataclasses.dataclass(frozen=True)
      ... class TrainConfig(RunConfig):
      ...     epochs: int = 1
    """

    data_dir: str
    model_dir: str
    config: str = "full"
    data_name: str | None = None

    @property
    def data_label(self) -> str:
        """How captions and ``config.json`` name the data: ``data_name``, else
        ``"cityscapes_instances/<config> in <data_dir>"``."""
        return self.data_name or f"cityscapes_instances/{self.config} in {self.data_dir}"


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name.

    Args:
      name: ``default`` (one device), ``mirrored`` (all local GPUs, or all logical
        CPUs), or ``multi_worker`` (``MultiWorkerMirroredStrategy``; each worker reads
        its role from the ``TF_CONFIG`` environment variable, as TensorFlow documents).
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserInputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def set_precision(mixed_precision: bool) -> None:
    """Set Keras' global dtype policy: ``mixed_float16`` or ``float32``.

    Call before building the model. Heads and losses of this package compute in
    float32 either way.
    """
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


@contextlib.contextmanager
def precision(mixed_precision: bool) -> Iterator[None]:
    """Run a block under :func:`set_precision`, then restore the global dtype policy.

    A trainer builds and fits its model inside, so a run in ``mixed_float16`` (or one that
    fails) leaves the process's policy as it found it.
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    set_precision(mixed_precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def split_sizes(data_dir: str | os.PathLike, config: str) -> dict[str, int]:
    """Examples per split of the built ``cityscapes_instances/<config>``.

    Args:
      data_dir: TFDS data dir (``dcme-keras build --data_dir``).
      config: builder config, ``full`` or ``half``.

    Returns:
      ``{split name: examples [frames]}``, e.g. ``{"train": 45, "validation": 15}``.

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


def run_settings(config: Any) -> dict[str, Any]:
    """A trainer's settings (a dataclass) as JSON-ready values; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def run_record(config: Any, **facts: Any) -> dict[str, Any]:
    """What a trainer records of a run: ``{"settings", **facts, "tensorflow", "keras"}``.

    Args:
      config: the trainer's settings (a dataclass), stored by :func:`run_settings`.
      **facts: JSON-ready facts of the run, in the order given (data name, split sizes,
        replicas, hardware, ...).
    """
    import keras
    import tensorflow as tf

    return {"settings": run_settings(config), **facts, "tensorflow": tf.__version__,
            "keras": keras.__version__}


def refuse_changed_settings(model_dir: str | os.PathLike, previous: Mapping[str, Any],
                            now: Mapping[str, Any], names: Iterable[str]) -> None:
    """Refuse to resume the run in ``model_dir`` when settings it cannot change differ.

    The backup restores variables by structure, so a resumed run must build the same
    network (and optimizer) as the run that wrote it.

    Args:
      model_dir: the run's folder, as the user named it.
      previous: the settings recorded by the run there.
      now: this call's settings.
      names: the settings that must match.

    Raises:
      UserInputError: naming each changed setting as the flag with its recorded value.
    """
    changed = [k for k in names if previous.get(k) != now[k]]
    if changed:
        was = ", ".join(f"--{k}={previous.get(k)}" for k in changed)
        raise UserInputError(f"--model_dir {model_dir} holds a run with {was}; resume it "
                             "with the same settings or pass a new --model_dir")


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None, *,
        model_dir: str | Path, epochs: int, monitor: str = "val_loss", mode: str = "min",
        early_stopping_patience: int | None = None, steps_per_epoch: int | None = None,
        validation_steps: int | None = None, verbose: int | str = "auto",
        first_callbacks: list[keras.callbacks.Callback] | None = None,
        extra_callbacks: list[keras.callbacks.Callback] | None = None) -> keras.callbacks.History:
    """Run (or resume) ``model.fit`` with checkpoints and logs in ``model_dir``.

    Rerunning with the same ``model_dir`` continues from the last finished epoch with
    the optimizer state; epochs already done are not repeated. ``epochs`` is the total.

    Args:
      model: a compiled ``keras.Model``.
      train_ds: batched training dataset of ``(inputs, targets[, sample_weights])``.
      val_ds: batched validation dataset, or None (then ``monitor`` falls back to
        ``loss`` and there is no early stopping).
      model_dir: output folder (created).
      epochs: total number of epochs.
      monitor: metric that picks ``best.keras`` (and early stopping), e.g. ``val_loss``.
      mode: ``min`` or ``max`` for ``monitor``.
      early_stopping_patience: epochs without improvement before stopping; None = off.
      steps_per_epoch: batches per epoch; None = one pass over ``train_ds``.
      validation_steps: batches per validation; None = one pass over ``val_ds``.
      verbose: Keras' progress-bar setting.
      first_callbacks: run before the standard ones at every hook: what recalibrates the
        model (:func:`precise_batch_norm_callback`) or adds a metric to the epoch's logs,
        so that checkpoints, logs and early stopping see it (``monitor`` may name it).
      extra_callbacks: appended to the standard ones.

    Returns:
      The History of the epochs run in this call.
    """
    import keras

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if val_ds is None:
        monitor = "loss"
    callbacks = list(first_callbacks or []) + [
        # delete_checkpoint=False: a finished run can be extended by a rerun with more epochs.
        keras.callbacks.BackupAndRestore(str(model_dir / "backup"), delete_checkpoint=False),
        # Seeded with the best value already logged, so a resumed run does not replace
        # best.keras by its first epoch however bad that epoch is.
        keras.callbacks.ModelCheckpoint(
            str(model_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True,
            initial_value_threshold=best_logged(model_dir / "history.csv", monitor, mode)),
        keras.callbacks.ModelCheckpoint(str(model_dir / "last.keras")),
        keras.callbacks.CSVLogger(str(model_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(model_dir / "tensorboard"), write_graph=False),
    ]
    if early_stopping_patience is not None and val_ds is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=early_stopping_patience))
    callbacks += extra_callbacks or []
    return model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                     steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                     callbacks=callbacks, verbose=verbose,
                     # Datasets arrive shuffled by the pipelines; Keras would only warn.
                     shuffle=False)


def finished_epochs(model_dir: str | Path) -> int:
    """Epochs a previous run in ``model_dir`` logged to ``history.csv`` (0 for a new run).

    Trainers add it to their data seed so a resumed run does not replay the shuffles
    and augmentations of the epochs already done.
    """
    path = Path(model_dir) / "history.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def best_logged(history_csv: Path, monitor: str, mode: str) -> float | None:
    """Best value of ``monitor`` in a CSVLogger file, or None when there is none yet."""
    if not history_csv.exists():
        return None
    with open(history_csv, newline="") as f:
        values = [float(row[monitor]) for row in csv.DictReader(f) if row.get(monitor)]
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def build_in_scope(strategy: tf.distribute.Strategy,
                   build_and_compile: Callable[[], keras.Model]) -> keras.Model:
    """Build and compile a model under ``strategy.scope()`` so its variables are mirrored."""
    with strategy.scope():
        return build_and_compile()


def precise_batch_norm(model: keras.Model, batches) -> int:
    """Set every BatchNormalization's moving statistics to their mean over ``batches``.

    The moving averages that inference uses trail the weights: after each step they keep
    ``momentum`` (0.99; 0.999 in keras.applications' MobileNetV2) of statistics that
    earlier weights produced. Recomputed with the current weights ("precise BN", Wu and
    Johnson 2021), the statistics match the network that is evaluated or saved. This
    matters most for short runs, whose moving averages are still near their initial
    values: an annotator U-Net after 27 steps scored 0.26 validation aIoU with its moving
    averages and 0.77 with recomputed ones (synthetic data).

    Each batch runs forward in training mode with momentum ``k / (k + 1)`` for the k-th
    batch, so the statistics end as the plain mean of the batches' statistics. Batch
    norms nested in custom layers (the DCME heads) and in sub-models (keras.applications
    backbones) are included.

    Args:
      model: a Keras model.
      batches: iterable of model inputs ``[B, ...]`` (or tuples whose first element is
        the inputs, such as ``(inputs, targets[, weights])``).

    Returns:
      The number of batches used.
    """
    import keras

    # Keras' own recursive walk over sublayers; ``model.layers`` stops at custom layers.
    norms = [layer for layer in model._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    count = 0
    try:
        for batch in batches:
            inputs = batch[0] if isinstance(batch, tuple) else batch
            for layer in norms:
                layer.momentum = count / (count + 1.0)
            model(inputs, training=True)
            count += 1
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return count


def precise_batch_norm_callback(dataset: tf.data.Dataset, batches: int = 8
                                ) -> keras.callbacks.Callback:
    """A callback that runs :func:`precise_batch_norm` at the end of every epoch.

    It recalibrates before the validation (``fit`` validates, then checkpoints, at the
    end of each epoch), or at the epoch's end when there is no validation, so the
    validation metrics, ``best.keras`` and ``last.keras`` all see the recomputed
    statistics. Pass it in :func:`fit`'s ``first_callbacks``. Training then goes on from
    them with the usual momentum.

    Args:
      dataset: a ``tf.data.Dataset`` of ``(inputs, ...)`` batches, best unaugmented and
        unshuffled (a short, cheap pass); its first ``batches`` batches are used.
      batches: how many batches to average.

    Returns:
      A ``keras.callbacks.Callback``.
    """
    import keras

    if not isinstance(batches, int) or batches < 1:
        raise UserInputError(f"precise batch-norm batches must be a positive int, "
                             f"got {batches!r}")

    class PreciseBatchNorm(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.done = False

        def on_test_begin(self, logs=None):
            # fit's validation happens inside the epoch, before on_epoch_end; a
            # model.evaluate outside fit (no on_epoch_begin) is left alone.
            if getattr(self, "done", True) is False:
                precise_batch_norm(self.model, dataset.take(batches))
                self.done = True

        def on_epoch_end(self, epoch, logs=None):
            if not self.done:
                precise_batch_norm(self.model, dataset.take(batches))
                self.done = True

    return PreciseBatchNorm()
