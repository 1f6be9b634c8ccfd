"""Throughput of the tf.data pipelines against the training speed of the paper models.

Writes a small synthetic Cityscapes (``--frames`` frames at ``--size``, ``dcme-keras
synth``), builds cityscapes_instances from it into a temporary folder, and prints:

* examples/s of ``dcme_dataset`` (scenes at ``--size``, batch 2) and of
  ``annotator_dataset`` (128x128 crops with flip + rotation + 2 px click jitter, batch
  32), for the first epoch (PNG decoding, resizing, object windows) and for a second
  epoch from the in-memory cache (only the random steps and the targets);
* examples/s of training steps of the paper's models on the same machine:
  ``build_deeplab_dcme("paper")`` at ``--size``, batch 2, and the annotator U-Net
  ``build_unet_preset("paper")``, batch 32 (random init; one warm-up step, then the
  median of ``--steps`` timed ``train_on_batch`` calls on a batch from the pipeline);
* the ratio pipeline / model. Above 1 the input pipeline keeps the model fed.

Data are synthetic; figures hold for this machine only (CPU name and thread count are
printed). TF uses all cores for both the pipeline and the model, which run one after the
other here, not at the same time.

Usage:
  python benchmarks/pipelines.py [--frames 24] [--size 512x1024] [--steps 3]
                                 [--skip_models]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcme_keras import keys  # noqa: E402
from dcme_keras.data.build import build_dataset  # noqa: E402
from dcme_keras.classes import NUM_THING_CLASSES  # noqa: E402
from dcme_keras.data import pipelines  # noqa: E402
from dcme_keras.data.synthetic import write_dataset  # noqa: E402
from dcme_keras.hardware import cpu_name  # noqa: E402
from dcme_keras.losses import AverageDistanceLoss, DCMELoss  # noqa: E402
from dcme_keras.models.deeplab_dcme import build_deeplab_dcme  # noqa: E402
from dcme_keras.models.unet import build_unet_preset  # noqa: E402

DCME_BATCH = 2
ANNOTATOR_BATCH = 32


def epoch_rates(ds: tf.data.Dataset, epochs: int = 2) -> tuple[list[float], int]:
    """Examples per second of each pass over ``ds``, and the examples in one pass."""
    rates, count = [], 0
    for _ in range(epochs):
        count, start = 0, time.perf_counter()
        for batch in ds:
            count += int(tf.shape(batch[0])[0])
        rates.append(count / (time.perf_counter() - start))
    return rates, count


def train_rate(model: keras.Model, batch, steps: int) -> float:
    """Examples per second of ``train_on_batch`` on one fixed batch (median step)."""
    x, y = batch[0], batch[1]
    weights = batch[2] if len(batch) > 2 else None
    model.train_on_batch(x, y, sample_weight=weights)  # builds and traces the step
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y, sample_weight=weights)
        times.append(time.perf_counter() - start)
    return int(x.shape[0]) / statistics.median(times)


def dcme_model(size: tuple[int, int]) -> keras.Model:
    """The paper's DCME network at ``size`` (H, W), compiled as ``dcme-keras train`` does."""
    model = build_deeplab_dcme("paper", input_shape=(*size, 3), num_classes=NUM_THING_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss={keys.DCME: DCMELoss(),
                        keys.GRID: keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True, reduction="mean_with_sample_weight")})
    return model


def annotator_model() -> keras.Model:
    """The paper's annotator U-Net (f=16, 128x128, RGB + points) with its distance loss."""
    model = build_unet_preset("paper")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={keys.MASK: AverageDistanceLoss()})
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24, help="synthetic frames to write")
    parser.add_argument("--size", default="512x1024", help="frame and scene size HxW")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--skip_models", action="store_true", help="time the pipelines only")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))

    print(f"machine: {cpu_name()}; {os.cpu_count()} logical CPUs, "
          f"{len(os.sched_getaffinity(0))} usable; TF intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default (all)'}, "
          f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    with tempfile.TemporaryDirectory(prefix="dcme_bench_") as tmp:
        start = time.perf_counter()
        summary = write_dataset(Path(tmp) / "synth", frames=args.frames, size=size, seed=0,
                                progress=False)
        splits = build_dataset(Path(tmp) / "synth", Path(tmp) / "tfds")
        print(f"data: synthetic Cityscapes, {summary['frames']['train']} train frames at "
              f"{size[0]}x{size[1]} (written and built in {time.perf_counter() - start:.0f} s; "
              f"splits {splits})")

        data_dir = str(Path(tmp) / "tfds")
        dcme_ds = pipelines.dcme_dataset(
            "train", data_dir=data_dir, image_size=size, batch_size=DCME_BATCH,
            cache="memory", drop_remainder=False, seed=0)
        annotator_ds = pipelines.annotator_dataset(
            "train", data_dir=data_dir, batch_size=ANNOTATOR_BATCH, jitter_px=2,
            cache="memory", drop_remainder=False, seed=0)
        rows = []
        for name, ds, build in (
                (f"dcme scenes {size[0]}x{size[1]}", dcme_ds, lambda: dcme_model(size)),
                ("annotator crops 128x128", annotator_ds, annotator_model)):
            (first, cached), count = epoch_rates(ds)
            model_rate = None
            if not args.skip_models:
                model_rate = train_rate(build(), next(iter(ds)), args.steps)
                keras.backend.clear_session()
            rows.append((name, count, first, cached, model_rate))

    print(f"\n{'pipeline':<26}{'examples':>9}{'epoch 1 ex/s':>14}{'cached ex/s':>13}"
          f"{'train ex/s':>12}{'ratio (1st/cached)':>21}")
    for name, count, first, cached, model_rate in rows:
        model_txt = "-" if model_rate is None else f"{model_rate:.2f}"
        ratio = ("-" if model_rate is None
                 else f"{first / model_rate:.0f} / {cached / model_rate:.0f}")
        print(f"{name:<26}{count:>9}{first:>14.1f}{cached:>13.1f}{model_txt:>12}{ratio:>21}")
    print("\ntrain ex/s: the paper model's training steps (random init) on the same CPU; "
          "ratio = pipeline / model, > 1 means the pipeline is not the bottleneck.")


if __name__ == "__main__":
    main()
