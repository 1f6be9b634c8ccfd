"""Does the DCME network learn on a CPU budget? Decoded quality against training minutes.

Synthesizes Cityscapes-layout frames (``dcme-keras synth``), builds the TFDS dataset,
then trains each preset with the recipe of ``dcme-keras train dcme`` (Adam at
``--learning_rate`` with a cosine decay over the wall-clock budget, the presets' DCME
output scale, precise batch norm before every measurement) for ``--minutes`` of
training: wall clock spent in training steps, measurements and the first step (graph
tracing) not counted. Every
``--eval_minutes`` of it, it measures, in inference mode, on the first ``--eval_frames``
validation frames:

* median vector length and median vector error ``|pred - true|`` on object pixels [px];
* detection accuracy at IoU 0.5 (ground-truth instances of ``--min_area`` px or more
  that a decoded instance matches), decoding with ``foreground=`` the ground-truth
  object mask and ``join_foreground=False`` (the vectors alone) and as at inference
  (the whole solution: ``decode_dcme``'s defaults, within the foreground head's mask
  for a network that has one);
* the official Cityscapes AP of the whole solution (``evaluation.evaluate_outputs``:
  default decode, grid classes) unless ``--noap``.

The same table starts with the ground-truth oracle on the same frames (true vectors,
decoded with the defaults; ``evaluation.gt_oracle`` at scale 1 for AP). Figures are
labelled with the data (synthetic), the CPU (``dcme_keras.hardware``) and the threads.

A preset name ending in ``+fg`` trains that preset with the foreground head (beyond
the paper), for the ablation against the pure DCME head at the same budget.

Usage:
  python benchmarks/dcme_learning.py --minutes 20 --presets cpu,cpu+fg --threads 2
  python benchmarks/dcme_learning.py --minutes 2 --eval_minutes 1 --frames 12 --noap
"""

import argparse
import math
import os
import tempfile
import time
from pathlib import Path


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="training time per preset, measurements not counted [minutes]")
    parser.add_argument("--eval_minutes", type=float, default=5.0,
                        help="measure every this many minutes of training")
    parser.add_argument("--presets", default="cpu,cpu+fg",
                        help="comma-separated model presets (models/deeplab_dcme.py); "
                             "a +fg suffix adds the foreground head")
    parser.add_argument("--frames", type=int, default=60, help="synthetic frames, 25%% val")
    parser.add_argument("--size", default="256x512", help="frame and network size HxW")
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--eval_frames", type=int, default=8,
                        help="validation frames measured at each point")
    parser.add_argument("--min_area", type=int, default=100,
                        help="smallest instance counted for detection accuracy [px]")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--workdir", default=None,
                        help="where frames and the dataset go; default: a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noap", dest="ap", action="store_false",
                        help="skip the official AP (the slowest measurement)")
    args = parser.parse_args()
    for name in ("minutes", "eval_minutes"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be > 0")
    for name in ("frames", "batch_size", "eval_frames", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def main() -> None:
    args = _parse_args()
    # Thread pools must be set before TensorFlow and NumPy start them.
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    import tfds_cityscapes.cityscapes_instances  # noqa: F401  (registers the builder)
    from dcme_keras import evaluation, inference, keys, training
    from dcme_keras.cli.common import parse_hw
    from dcme_keras.train_dcme import TrainConfig, build_and_compile
    from dcme_keras.data import pipelines
    from dcme_keras.data.synthetic import write_dataset
    from dcme_keras.hardware import describe
    from dcme_keras.models.deeplab_dcme import OUTPUT_STRIDE

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    size = parse_hw(args.size)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dcme_learning_"))
    synth_root, data_dir = work / "synth", work / "tfds"
    if not (data_dir / "cityscapes_instances").is_dir():
        write_dataset(synth_root, frames=args.frames, size=size, seed=args.seed,
                      progress=False)
        tfds.builder("cityscapes_instances", data_dir=str(data_dir)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(synth_root)))

    common = dict(data_dir=str(data_dir), config="full", image_size=size,
                  grid_size=OUTPUT_STRIDE)
    scenes = list(pipelines.dcme_scenes("validation", **common).take(args.eval_frames)
                  .as_numpy_iterator())
    images = np.stack([image for image, _ in scenes])
    instance_ids = np.stack([ids for _, ids in scenes])

    print(f"data: synthetic Cityscapes, {args.frames} frames at {size[0]}x{size[1]} "
          f"({work}); measured on the first {len(scenes)} val frames, instances >= "
          f"{args.min_area} px")
    print(f"hardware: {describe(args.threads)}; TensorFlow {tf.__version__}")
    print(f"recipe: Adam {args.learning_rate:g}, cosine over the budget, batch "
          f"{args.batch_size}, precise BN before each measurement")
    header = (f"{'preset':<8} {'min':>5} {'steps':>6} {'|pred|':>7} {'err px':>7} "
              f"{'det@.5 fg=GT':>13} {'det@.5 inference':>17} {'AP':>6}")
    print(header)

    true = np.stack([_true_dcme(ids) for ids in instance_ids])
    oracle = evaluation.dcme_scores(true, instance_ids, min_area=args.min_area)
    oracle_ap = (evaluation.gt_oracle(synth_root, "val", scale=1.0,
                                      max_images=args.eval_frames, progress=False)["AP"]
                 if args.ap else math.nan)
    print(_row("GT", math.nan, 0, oracle, oracle, oracle_ap), flush=True)

    budget = args.minutes * 60.0
    for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
        preset, foreground_head = name.removesuffix("+fg"), name.endswith("+fg")
        keras.utils.set_random_seed(args.seed)
        config = TrainConfig(data_dir=str(data_dir), model_dir=str(work / name),
                             preset=preset, image_size=size, batch_size=args.batch_size,
                             learning_rate=args.learning_rate,
                             foreground_head=foreground_head)
        train_ds = pipelines.dcme_dataset("train", batch_size=args.batch_size,
                                          seed=args.seed, cache="memory",
                                          foreground=foreground_head, **common).repeat()
        calibration = pipelines.dcme_dataset("train", batch_size=args.batch_size,
                                             shuffle=False, flip=False,
                                             foreground=foreground_head, **common)
        model = build_and_compile(config)
        batches = iter(train_ds)
        trained, next_eval = 0.0, min(args.eval_minutes * 60.0, budget)
        while True:
            # Cosine over the training time, the budget being all the steps there are.
            progress = min(trained / budget, 1.0)
            model.optimizer.learning_rate.assign(args.learning_rate * (
                0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))))
            image, targets, weights = next(batches)
            tick = time.monotonic()
            model.train_on_batch(image, targets, sample_weight=weights)
            # The first step traces the train function, a fixed cost that is not training.
            if int(model.optimizer.iterations.numpy()) > 1:
                trained += time.monotonic() - tick
            if trained < next_eval:
                continue
            training.precise_batch_norm(model, calibration.take(4))
            outputs = [model(images[i:i + args.batch_size], training=False)
                       for i in range(0, len(images), args.batch_size)]
            dcme = np.concatenate([keras.ops.convert_to_numpy(o[keys.DCME])
                                   for o in outputs])
            foreground = (np.concatenate([keras.ops.convert_to_numpy(o[keys.FOREGROUND])
                                          for o in outputs])
                          if foreground_head else None)
            with_gt = evaluation.dcme_scores(dcme, instance_ids, min_area=args.min_area,
                                             gt_foreground=True)
            default = evaluation.dcme_scores(dcme, instance_ids, min_area=args.min_area,
                                             foreground_logits=foreground)
            ap = (evaluation.evaluate_outputs(
                synth_root, inference.outputs_fn(model), "val",
                max_images=args.eval_frames, progress=False)["AP"] if args.ap else math.nan)
            steps = int(model.optimizer.iterations.numpy())
            print(_row(name, trained / 60.0, steps, with_gt, default, ap), flush=True)
            if trained >= budget:
                break
            next_eval = min(next_eval + args.eval_minutes * 60.0, budget)


def _true_dcme(instance_ids):
    """[H, W, 2] ground-truth vectors of the 8 thing classes' instances."""
    import numpy as np

    from dcme_keras.classes import THING_LABEL_IDS
    from dcme_keras.dcme.codec_np import encode_dcme

    things = np.isin(np.where(instance_ids >= 1000, instance_ids // 1000, 0), THING_LABEL_IDS)
    return encode_dcme(np.where(things, instance_ids, 0))


def _row(preset, minutes, steps, with_gt, default, ap) -> str:
    def pct(value):
        return "   -" if math.isnan(value) else f"{100 * value:5.1f}%"

    minutes = "-" if math.isnan(minutes) else f"{minutes:.1f}"
    return (f"{preset:<8} {minutes:>5} {steps:6d} {with_gt['vector_length']:7.2f} "
            f"{with_gt['vector_error']:7.2f} {pct(with_gt['detection_accuracy']):>13} "
            f"{pct(default['detection_accuracy']):>17} "
            f"{'-' if math.isnan(ap) else f'{ap:.1f}':>6}")


if __name__ == "__main__":
    main()
