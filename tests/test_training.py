"""The shared fit harness: resume with optimizer state, checkpoints, logs, strategies."""

import csv
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcme_keras import training


class _StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a crash: raises at the end of the given epoch (after checkpoints)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _data():
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, 3 * x + 1)).batch(8)
    return ds, ds


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="dense")])
    model.compile(keras.optimizers.Adam(0.1), loss="mse")
    return model


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_interrupted_run_resumes_from_last_epoch_with_optimizer_state(tmp_path):
    train, val = _data()
    model = _model()
    # The crash fires after epoch index 0's checkpoint callbacks but inside fit.
    with pytest.raises(KeyboardInterrupt):
        training.fit(model, train, val, model_dir=tmp_path, epochs=3, verbose=0,
                     extra_callbacks=[_StopAfterEpoch(0)])
    assert (tmp_path / "last.keras").exists() and (tmp_path / "best.keras").exists()
    assert len(_rows(tmp_path / "history.csv")) == 1

    resumed = _model()
    history = training.fit(resumed, train, val, model_dir=tmp_path, epochs=3, verbose=0)
    assert history.epoch == [1, 2]  # epoch 0 is not repeated
    assert [r["epoch"] for r in _rows(tmp_path / "history.csv")] == ["0", "1", "2"]
    # Adam's step counter survived: 4 batches per epoch, 3 epochs in all.
    assert int(resumed.optimizer.iterations.numpy()) == 12

    # A finished run extended with more epochs continues too.
    longer = _model()
    assert training.fit(longer, train, val, model_dir=tmp_path, epochs=4, verbose=0).epoch == [3]


def test_best_checkpoint_is_not_replaced_by_a_worse_resumed_epoch(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.0,0.25\n1,0.5,0.5\n")
    assert training.best_logged(tmp_path / "history.csv", "val_loss", "min") == 0.25
    assert training.best_logged(tmp_path / "history.csv", "loss", "max") == 1.0
    assert training.best_logged(tmp_path / "missing.csv", "val_loss", "min") is None


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(training.UserInputError, match="mirrored"):
        training.make_strategy("tpu")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    # Logical devices must be configured before TensorFlow initialises: a fresh process.
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        from dcme_keras import training
        strategy = training.make_strategy("mirrored")
        assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
        def build():
            m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
            m.compile(keras.optimizers.SGD(0.1), loss="mse")
            return m
        model = training.build_in_scope(strategy, build)
        x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
        ds = tf.data.Dataset.from_tensor_slices((x, 2 * x)).batch(8)
        h = training.fit(model, ds, ds, model_dir={str(tmp_path)!r}, epochs=2, verbose=0)
        assert h.history["loss"][1] < h.history["loss"][0], h.history
        print("replicas", strategy.num_replicas_in_sync)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "replicas 2" in out.stdout


def test_finished_epochs_counts_logged_rows(tmp_path):
    assert training.finished_epochs(tmp_path) == 0
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    assert training.finished_epochs(tmp_path) == 2


def test_precise_batch_norm_sets_the_mean_of_the_batches_statistics():
    image = keras.Input((4, 4, 1))
    norm = keras.layers.BatchNormalization()
    model = keras.Model(image, norm(image))
    rng = np.random.default_rng(0)
    batches = [rng.normal(k, 1.0 + k, (8, 4, 4, 1)).astype(np.float32) for k in range(3)]
    assert training.precise_batch_norm(model, batches) == 3
    np.testing.assert_allclose(norm.moving_mean.numpy(),
                               [np.mean([b.mean() for b in batches])], rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(),
                               [np.mean([b.var() for b in batches])], rtol=1e-4)
    assert norm.momentum == 0.99


def test_precise_batch_norm_reaches_batch_norms_inside_custom_layers():
    from dcme_keras.layers import DCMEHead

    image = keras.Input((4, 4, 3))
    head = DCMEHead(filters=2, num_convs=1)
    model = keras.Model(image, head(image))
    batches = [np.full((2, 4, 4, 3), 5.0, np.float32)]
    assert training.precise_batch_norm(model, batches) == 1
    norm = next(layer for layer in head.hidden_layers
                if isinstance(layer, keras.layers.BatchNormalization))
    conv = head.hidden_layers[0](batches[0]).numpy()
    np.testing.assert_allclose(norm.moving_mean.numpy(), conv.mean(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-6)


def test_precise_batch_norm_callback_recalibrates_without_validation(tmp_path):
    image = keras.Input((1,))
    norm = keras.layers.BatchNormalization()
    model = keras.Model(image, keras.layers.Dense(1)(norm(image)))
    model.compile(keras.optimizers.Adam(0.01), loss="mse")
    x = np.full((8, 1), 3.0, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x)).batch(4)
    training.fit(model, ds, None, model_dir=tmp_path, epochs=1, verbose=0,
                 first_callbacks=[training.precise_batch_norm_callback(ds, batches=2)])
    # One step with momentum 0.99 leaves the moving mean near 0; recalibrated, it is 3.
    np.testing.assert_allclose(norm.moving_mean.numpy(), [3.0], rtol=1e-5)
    reloaded = keras.saving.load_model(tmp_path / "last.keras")
    np.testing.assert_allclose(reloaded.layers[1].moving_mean.numpy(), [3.0], rtol=1e-5)
