"""``dcme-keras train dcme``: training, resume, config checks, mirrored + mixed precision."""

import csv
import dataclasses
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_cityscapes.cityscapes_instances  # noqa: F401  (registers the builder)
from dcme_keras import train_dcme
from dcme_keras.data.pipelines import dcme_scenes
from dcme_keras.data.synthetic import write_dataset
from dcme_keras.evaluation import dcme_scores
from dcme_keras.errors import UserInputError
from dcme_keras.train_dcme import TrainConfig

SIZE = (64, 128)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """TFDS data dir of a 5-frame synthetic build at 64x128 (3 train, 2 validation)."""
    manual_dir = tmp_path_factory.mktemp("synth") / "cityscapes"
    write_dataset(manual_dir, frames=5, size=SIZE, seed=0, val_fraction=0.4, progress=False)
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("cityscapes_instances", data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return str(data_dir)


def _config(data_dir, model_dir, **kw):
    kw.setdefault("lr_schedule", "constant")
    return TrainConfig(data_dir=data_dir, model_dir=str(model_dir), preset="tiny",
                       image_size=SIZE, batch_size=2, learning_rate=1e-3, verbose=0,
                       data_name="synthetic Cityscapes", **kw)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_writes_checkpoints_and_logs_then_resumes(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    history = train_dcme.train(_config(data_dir, model_dir, epochs=1))
    assert history.epoch == [0]
    for name in ("best.keras", "last.keras", "history.csv", "config.json",
                 "loss_curves.png"):
        assert (model_dir / name).is_file(), name
    assert any((model_dir / "tensorboard").rglob("events.out.tfevents.*"))
    rows = _rows(model_dir / "history.csv")
    assert [r["epoch"] for r in rows] == ["0"]
    for key in ("loss", "dcme_loss", "grid_loss", "grid_accuracy", "val_loss"):
        assert math.isfinite(float(rows[0][key])), key
    record = json.loads((model_dir / "config.json").read_text())
    assert record["settings"]["preset"] == "tiny" and record["splits"] == {
        "train": 3, "validation": 2}
    assert record["replicas"] == 1 and record["data"] == "synthetic Cityscapes"

    # A second run with more epochs continues after epoch 0 with Adam's state: 3 train
    # scenes in batches of 2 (remainder dropped) are 1 step per epoch.
    resumed = train_dcme.train(
        dataclasses.replace(_config(data_dir, model_dir, epochs=2), learning_rate=5e-4))
    assert resumed.epoch == [1]
    assert [r["epoch"] for r in _rows(model_dir / "history.csv")] == ["0", "1"]
    assert int(resumed.model.optimizer.iterations.numpy()) == 2
    # The restored optimizer takes the new learning rate, not the backed-up one.
    assert float(resumed.model.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    reloaded = keras.saving.load_model(model_dir / "last.keras", compile=False)
    assert {k: tuple(v.shape) for k, v in reloaded.output.items()} == {
        "dcme": (None, 64, 128, 2), "grid": (None, 4, 8, 9)}


def test_best_checkpoint_is_picked_by_decoded_detection_accuracy(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    train_dcme.train(_config(data_dir, model_dir, epochs=2, lr_schedule="cosine"))
    rows = _rows(model_dir / "history.csv")
    for row in rows:
        assert 0.0 <= float(row["val_detection_accuracy"]) <= 1.0
        assert math.isfinite(float(row["val_vector_error"]))
    # best.keras, rescored on the same scenes, holds the best logged value: it was saved
    # after the precise-BN pass, by the decoded metric.
    best = keras.saving.load_model(model_dir / "best.keras", compile=False)
    scenes = list(dcme_scenes("validation", data_dir=data_dir, image_size=SIZE)
                  .as_numpy_iterator())
    images = np.stack([image for image, _ in scenes])
    scores = dcme_scores(best(images, training=False)["dcme"].numpy(),
                         np.stack([ids for _, ids in scenes]), min_area=100)
    assert scores["detection_accuracy"] == pytest.approx(
        max(float(row["val_detection_accuracy"]) for row in rows))
    assert scores["instances"] == 7


def test_cosine_schedule_follows_the_optimizer_step_count():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1.0), loss="mse")
    callback = train_dcme.learning_rate_callback(1e-3, "cosine", total_steps=10)
    callback.set_model(model)
    expected = {0: 1e-3, 5: 1e-3 * (0.01 + 0.99 * 0.5), 10: 1e-5, 20: 1e-5}
    for step, rate in expected.items():
        model.optimizer.iterations.assign(step)
        callback.on_train_batch_begin(0)
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(rate, rel=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"lr_schedule": "step"}, "--lr_schedule 'step' is unknown"),
    ({"learning_rate": 0.0}, "--learning_rate 0.0 must be > 0"),
    ({"precise_bn_batches": -1}, "precise_bn_batches -1 must be a whole number"),
])
def test_bad_recipe_settings_are_refused_in_one_line(data_dir, tmp_path, change, message):
    with pytest.raises(UserInputError, match=message):
        train_dcme.train(dataclasses.replace(_config(data_dir, tmp_path), **change))


def test_decoded_validation_needs_an_instance_that_counts(data_dir, tmp_path):
    with pytest.raises(UserInputError, match="no instance of at least --min_area 100000"):
        train_dcme.train(_config(data_dir, tmp_path, min_area=100_000))


def test_resuming_with_another_architecture_is_refused(data_dir, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"settings": {
        "preset": "tiny", "image_size": [128, 256], "mixed_precision": False}}))
    with pytest.raises(UserInputError, match=r"--image_size=\[128, 256\].*new --model_dir"):
        train_dcme.train(_config(data_dir, tmp_path, epochs=1))


def test_missing_dataset_says_how_to_make_one(tmp_path):
    with pytest.raises(UserInputError, match="dcme-keras synth.*dcme-keras build"):
        train_dcme.train(_config(str(tmp_path / "empty"), tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_train_split_is_refused(data_dir, tmp_path):
    config = TrainConfig(data_dir=data_dir, model_dir=str(tmp_path), preset="tiny",
                         image_size=SIZE, batch_size=4)
    with pytest.raises(UserInputError, match="fewer than one batch of 4"):
        train_dcme.train(config)


@pytest.mark.parametrize("scenes, batch, replicas, expected", [
    (0, 2, 1, (0, False)),  # no validation split
    (1, 6, 1, (6, False)),  # one replica takes any batch
    (5, 6, 2, (4, True)),  # whole multiples of the replicas
    (1, 2, 2, (0, True)),  # too few scenes to give each replica one
    (10, 6, 4, (4, True)),
])
def test_validation_batches_never_leave_a_replica_empty(scenes, batch, replicas, expected):
    assert train_dcme._validation_batching(scenes, batch, replicas) == expected


def test_failed_mixed_precision_run_restores_the_dtype_policy(data_dir, tmp_path):
    # The tiny backbone has no ImageNet weights, so building fails after the policy is set.
    config = _config(data_dir, tmp_path, mixed_precision=True, backbone_weights="imagenet")
    with pytest.raises(UserInputError, match="no pretrained weights"):
        train_dcme.train(config)
    assert keras.mixed_precision.global_policy().name == "float32"


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.train", *args],
                          capture_output=True, text=True, timeout=120, **kw)


def test_help_lists_networks_and_the_dcme_flags():
    out = _cli("--help")
    assert out.returncode == 0 and "  dcme" in out.stdout and "  annotator" in out.stdout
    out = _cli("dcme", "--help")
    assert out.returncode == 0
    for flag in ("--data_dir", "--amplitude", "--strategy", "--[no]mixed_precision",
                 "--lr_schedule", "--precise_bn_batches", "--decoded_val_frames", "--min_area"):
        assert flag in out.stdout, flag
    out = _cli("segnet")
    assert out.returncode == 2
    assert out.stderr.splitlines()[0].startswith(
        "dcme-keras train: error: unknown network 'segnet'")


def test_cli_with_a_missing_dataset_fails_in_one_line(tmp_path):
    out = _cli("dcme", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(
        "dcme-keras train dcme: error: no cityscapes_instances/full dataset")


def test_cli_mirrored_on_two_logical_cpus_with_mixed_precision(data_dir, tmp_path):
    # Logical devices must exist before TensorFlow initialises: a fresh process.
    script = textwrap.dedent("""
        import sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from dcme_keras.cli import train
        try:
            train.run(["dcme-keras train", "dcme", *sys.argv[1:]])
        except SystemExit as exit:
            code = exit.code or 0
        print("policy", keras.mixed_precision.global_policy().name)
        sys.exit(code)
    """)
    model_dir = tmp_path / "mirrored"
    out = subprocess.run(
        [sys.executable, "-c", script, f"--data_dir={data_dir}", f"--model_dir={model_dir}",
         "--preset=tiny", "--image_size=64x128", "--batch_size=2", "--epochs=1",
         "--strategy=mirrored", "--mixed_precision", "--noprogress"],
        # 56 s of CPU; graph tracing for two replicas took over 5 minutes of wall time on
        # a machine at load 8, so the limit only guards against a hang.
        capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "policy float32" in out.stdout  # restored after the run
    record = json.loads((model_dir / "config.json").read_text())
    assert record["replicas"] == 2 and record["settings"]["mixed_precision"] is True
    assert math.isfinite(float(_rows(model_dir / "history.csv")[0]["loss"]))
    import dcme_keras.layers  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(model_dir / "last.keras", compile=False)
    assert model.get_layer("extra1_conv").dtype_policy.name == "mixed_float16"
    outputs = model(np.zeros((1, *SIZE, 3), np.float32))
    assert outputs["dcme"].dtype == "float32" and outputs["grid"].dtype == "float32"


def test_a_failed_start_leaves_no_config_and_the_fixed_rerun_trains(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    # Fails while building (the tiny backbone has no ImageNet weights), after the checks.
    broken = _config(data_dir, model_dir, mixed_precision=True, backbone_weights="imagenet")
    with pytest.raises(UserInputError, match="no pretrained weights"):
        train_dcme.train(broken)
    assert not (model_dir / "config.json").exists()
    # mixed_precision is a resume key: a leftover config.json would refuse this rerun.
    history = train_dcme.train(_config(data_dir, model_dir, epochs=1, steps_per_epoch=1,
                                       validation_steps=1))
    assert history.epoch == [0]
    record = json.loads((model_dir / "config.json").read_text())
    assert record["settings"]["mixed_precision"] is False


# ----------------------------------------------------------------------------------------
# Optional foreground head (beyond the paper)
# ----------------------------------------------------------------------------------------


def test_training_with_the_foreground_head(data_dir, tmp_path):
    model_dir = tmp_path / "fg"
    history = train_dcme.train(_config(data_dir, model_dir, epochs=1, foreground_head=True,
                                       foreground_weight=0.5))
    assert history.epoch == [0]
    row = _rows(model_dir / "history.csv")[0]
    for key in ("loss", "dcme_loss", "grid_loss", "foreground_loss", "foreground_accuracy",
                "foreground_iou", "val_foreground_loss", "val_foreground_iou"):
        assert math.isfinite(float(row[key])), key
    assert 0.0 <= float(row["foreground_accuracy"]) <= 1.0
    settings = json.loads((model_dir / "config.json").read_text())["settings"]
    assert settings["foreground_head"] is True and settings["foreground_weight"] == 0.5
    reloaded = keras.saving.load_model(model_dir / "last.keras", compile=False)
    assert {k: tuple(v.shape) for k, v in reloaded.output.items()} == {
        "dcme": (None, 64, 128, 2), "grid": (None, 4, 8, 9), "foreground": (None, 64, 128, 1)}
    # The head changes the model's variables: resuming without it is refused.
    with pytest.raises(UserInputError, match=r"--foreground_head=True.*new --model_dir"):
        train_dcme.train(_config(data_dir, model_dir, epochs=2))


def test_runs_from_before_the_foreground_flag_resume_without_the_head(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"settings": {
        "preset": "tiny", "image_size": list(SIZE), "mixed_precision": False}}))
    train_dcme._check_resume(tmp_path, _config("unused", tmp_path))  # no error
    with pytest.raises(UserInputError, match=r"--foreground_head=False"):
        train_dcme._check_resume(tmp_path, _config("unused", tmp_path, foreground_head=True))
    assert "foreground_head" in train_dcme.RESUME_KEYS


def test_help_lists_the_foreground_flags():
    out = _cli("dcme", "--help")
    assert out.returncode == 0
    for flag in ("--[no]foreground_head", "--foreground_weight"):
        assert flag in out.stdout, flag
