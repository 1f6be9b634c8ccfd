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

This command calls :func:`dcme_keras.train_annotator.train`. ``--model_dir`` receives what
the shared harness writes (``dcme_keras/training.py``: ``best.keras`` by validation aIoU,
``last.keras``, ``history.csv``, ``tensorboard/``, ``backup/``) plus ``config.json`` (the
network, its input encoding: ``point_radius``, ``margin``, ``size``, ``points``,
``classes``, and this run's settings) and ``loss_curves.png``. Rerunning with the same
``--model_dir`` continues from the last finished epoch with the optimizer state;
``--epochs`` is the total.
"""

from __future__ import annotations

from absl import flags

from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.cli.common import define_once, train_main
from dcme_keras.models.annotator import LOSSES
from dcme_keras.train_annotator import TrainConfig, train
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
    flags.DEFINE_bool("clutter", False, "put recoloured same-class copies beside, behind "
                      "or in front of half of the train objects, so the points must tell "
                      "which one is meant")
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
        clutter=f.clutter, precise_bn_batches=f.precise_bn_batches,
        strategy=f.strategy, mixed_precision=f.mixed_precision, cache=cache, seed=f.seed,
        verbose=1 if f.progress else 2)


def main(argv: list[str]) -> None:
    """Trains and prints where the checkpoints are."""
    train_main(argv, "train annotator", config_from_flags, train,
               f"best.keras (by val_aiou), last.keras, config.json, history.csv, "
               f"{LOSS_CURVES_FILE}, tensorboard/")
