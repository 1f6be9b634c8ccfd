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

This command calls :func:`dcme_keras.train_dcme.train`. ``--model_dir`` receives what the
shared harness writes (``dcme_keras/training.py``: ``best.keras``, ``last.keras``,
``history.csv``, ``tensorboard/``, ``backup/``) plus ``config.json`` (this run's settings)
and ``loss_curves.png``. Rerunning with the same ``--model_dir`` continues from the last
finished epoch with the optimizer state; ``--epochs`` is the total. ``--batch_size`` is
the global batch: under ``--strategy mirrored`` each of R replicas gets
``batch_size / R``.

``--foreground_head`` (beyond the paper, off by default) adds the optional per-pixel
foreground output ``keys.FOREGROUND`` (logits), trained with binary cross-entropy from
logits on 1 = instance pixel, weighted like the DCME loss (void and group pixels 0) and
averaged over the pixels that count; ``--foreground_weight`` weights it in the total.
"""

from __future__ import annotations

from absl import flags

from dcme_keras.cli.common import define_once, parse_hw, train_main
from dcme_keras.train_dcme import SCHEDULES, TrainConfig, train
from dcme_keras.training import LOSS_CURVES_FILE


@define_once
def define_flags() -> None:
    """Define this command's absl flags, once per process."""
    flags.DEFINE_string("data_dir", None, "TFDS data dir holding cityscapes_instances "
                        "(`dcme-keras build --data_dir`)", required=True)
    flags.DEFINE_string("model_dir", None, "output folder: checkpoints, logs, config.json; "
                        "an unfinished or shorter run there is resumed", required=True)
    flags.DEFINE_string("config", "full", "dataset builder config: full or half")
    flags.DEFINE_string("data_name", None, "name of the data in captions and config.json, "
                        "e.g. 'synthetic Cityscapes'; default: the dataset and its folder")
    flags.DEFINE_enum("preset", "paper", ["paper", "mobilenet_v2", "tiny", "cpu"],
                      "model preset: paper (VGG16 DeepLabv3+, sec. V), mobilenet_v2, tiny, "
                      "cpu (tiny with more context; the demo's)")
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


def main(argv: list[str]) -> None:
    """Trains and prints where the checkpoints are."""
    train_main(argv, "train dcme", config_from_flags, train,
               f"best.keras, last.keras, history.csv, {LOSS_CURVES_FILE}, tensorboard/")
