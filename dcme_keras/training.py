"""The training harness shared by the DCME and annotator trainers.

It wraps ``model.fit`` with what a long run needs: resume from the last finished epoch
(model weights *and* optimizer state, through ``keras.callbacks.BackupAndRestore``), best
and last ``.keras`` checkpoints, CSV and TensorBoard logs, optional early stopping, and a
``tf.distribute`` strategy chosen by name. Both trainers recompute the batch-norm
statistics with :func:`precise_batch_norm` (through :func:`precise_batch_norm_callback`)
before each validation and checkpoint.

Layout of ``model_dir``::

    model_dir/
      backup/          resume state, kept after the run so a longer rerun continues
      best.keras       best epoch so far by the monitored metric
      last.keras       the last finished epoch
      history.csv      one row per epoch (appended on resume)
      tensorboard/     TensorBoard event files
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from dcme_keras.errors import UserInputError

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name.

    Args:
      name: ``default`` (one device), ``mirrored`` (all local GPUs, or all logical
        CPUs), or ``multi_worker`` (``MultiWorkerMirroredStrategy``; each worker reads
        its role from the ``TF_CONFIG`` environment variable, as TensorFlow documents).
    """
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
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


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
