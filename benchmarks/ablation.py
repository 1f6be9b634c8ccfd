"""Paper 003's Tables 1 and 2 on synthetic data: U-Net variants, RGB only vs extreme points.

What the default run does, in order:

1. Data: writes 40 synthetic Cityscapes frames at 256x512 (30 train, 10 validation;
   ``dcme_keras.data.synthetic``, seed 0) and builds the ``cityscapes_instances`` TFDS
   dataset from them (``--data_dir`` skips both and uses a built dataset). The objects are
   those the annotator trains on: the paper's 9 classes, at least 100 source pixels; about
   290 train and 104 validation objects.
2. Training: one run per table row, all at the paper's network size and recipe: 128x128
   input, f = 16, 5 levels, Adam at 1e-3, batches of 32, the average-distance loss, random
   flip and rotation (``dcme-keras train annotator``, ``precise_bn_batches`` 8), for 3
   epochs (about 27 steps). The rows are Table 1's: the U-Net and its residual, dense,
   contextual and U-Net++ variants on RGB only, and the U-Net with the extreme-points
   channel (``--points_variants`` adds the points input to more variants, e.g. all five).
   The paper trained 18-20 epochs over 83,403 Cityscapes objects on a GPU; this budget
   took 32.5 minutes on a shared 2-core CPU (Xeon, TensorFlow 2.21), so the rows compare
   the approaches under one small, equal budget and do not reproduce the paper's values.
3. Evaluation of each run's ``best.keras`` (best validation aIoU) on the validation
   objects (``dcme_keras.evaluate_annotator.evaluate_annotator``): aIoU (batches of 32),
   iIoU, mIoU, per-class IoU and border error at the network's 128x128, as the paper
   reports them;
   and the CPU time of one object at batch 1 through one ``tf.function`` (median of 20
   runs, TensorFlow's default thread pool on this machine).
4. Output in ``--out``: ``ablation.md`` (both tables), ``ablation.json`` (everything,
   also the full-resolution scores and the other timings), ``border_error.png`` (the
   paper's Fig. 3, one curve per row), ``runs/<row>/`` (the training runs; a rerun
   resumes or reuses them) and ``data/``.

The paper reports +3.7 points of aIoU for extreme points over the RGB-only U-Net.

``--tiny`` is a smoke test that runs in well under a minute: 4 frames at 128x256, the U-Net
at 32x32 with f = 2 and 3 levels, RGB and points, 1 epoch in batches of 4, 2 timing runs.

Usage:
  python benchmarks/ablation.py --out /tmp/ablation
  python benchmarks/ablation.py --out /tmp/ablation_all \\
      --points_variants paper,residual,dense,contextual,unetpp
  python benchmarks/ablation.py --out /tmp/ablation_tiny --tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcme_keras.classes import ANNOTATOR_CLASSES  # noqa: E402

#: Table 1's names of the variants.
NAMES = {"paper": "U-Net", "unet": "U-Net", "residual": "Residual blocks",
         "dense": "Dense blocks", "separable": "Separable conv.",
         "contextual": "Contextual conv.", "unetpp": "U-Net++"}
TABLE1_VARIANTS = "paper,residual,dense,contextual,unetpp"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one ablation run uses; the command-line options of the same names."""

    out: str
    data_dir: str | None = None
    frames: int = 40
    frame_size: tuple[int, int] = (256, 512)
    variants: tuple[str, ...] = tuple(TABLE1_VARIANTS.split(","))
    points_variants: tuple[str, ...] = ("paper",)
    filters: int = 16
    size: int = 128
    levels: int = 5
    epochs: int = 3
    batch_size: int = 32
    loss: str = "avg_distance"
    min_area: float = 100.0
    timing_repeats: int = 20
    seed: int = 0
    progress: bool = True


TINY = dict(frames=4, frame_size=(128, 256), variants=("paper",), points_variants=("paper",),
            filters=2, size=32, levels=3, epochs=1, batch_size=4, min_area=20.0,
            timing_repeats=2)


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def parse_args(argv: list[str] | None = None) -> Settings:
    """Command-line options -> :class:`Settings` (``--tiny`` overrides the sizes)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data_dir", help="a built cityscapes_instances TFDS data dir; "
                        "default: synthesize and build one in OUT/data")
    parser.add_argument("--frames", type=int, default=40, help="synthetic frames")
    parser.add_argument("--frame_size", type=_hw, default=(256, 512), help="HxW of a frame")
    parser.add_argument("--variants", default=TABLE1_VARIANTS,
                        help="variants trained on RGB only, comma-separated")
    parser.add_argument("--points_variants", default="paper",
                        help="variants also trained with extreme points, comma-separated")
    parser.add_argument("--filters", type=int, default=16, help="f of the first level")
    parser.add_argument("--size", type=int, default=128, help="network input side")
    parser.add_argument("--levels", type=int, default=5, help="U-Net resolutions")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run")
    parser.add_argument("--batch_size", type=int, default=32, help="objects per batch")
    parser.add_argument("--loss", default="avg_distance", help="avg_distance, iou, bce_iou")
    parser.add_argument("--min_area", type=float, default=100.0,
                        help="smallest object in source pixels")
    parser.add_argument("--timing_repeats", type=int, default=20, help="timed CPU runs")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds)")
    parser.add_argument("--noprogress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    values = dict(out=args.out, data_dir=args.data_dir, frames=args.frames,
                  frame_size=args.frame_size, variants=tuple(args.variants.split(",")),
                  points_variants=tuple(v for v in args.points_variants.split(",") if v),
                  filters=args.filters, size=args.size, levels=args.levels,
                  epochs=args.epochs, batch_size=args.batch_size, loss=args.loss,
                  min_area=args.min_area, timing_repeats=args.timing_repeats,
                  seed=args.seed, progress=not args.noprogress)
    if args.tiny:
        values.update(TINY)
    return Settings(**values)


def rows(settings: Settings) -> list[tuple[str, str, bool]]:
    """``(run name, variant, points)`` per table row: RGB rows, then points rows."""
    return ([(f"{v}_rgb", v, False) for v in settings.variants]
            + [(f"{v}_points", v, True) for v in settings.points_variants])


def prepare_data(settings: Settings, out: Path) -> str:
    """The TFDS data dir: ``--data_dir``, or synthetic frames built into ``out/data``."""
    if settings.data_dir:
        return settings.data_dir
    import tensorflow_datasets as tfds

    import tfds_cityscapes.cityscapes_instances  # noqa: F401  (registers the builder)
    from dcme_keras.data.synthetic import write_dataset

    manual_dir, data_dir = out / "data" / "synth", out / "data" / "tfds"
    if not manual_dir.is_dir():
        write_dataset(manual_dir, frames=settings.frames, size=settings.frame_size,
                      seed=settings.seed, progress=settings.progress)
    tfds.builder("cityscapes_instances", data_dir=os.fspath(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
    return os.fspath(data_dir)


def run_row(settings: Settings, data_dir: str, name: str, variant: str, points: bool,
            runs_dir: Path) -> dict:
    """Train (or resume) one row, then evaluate and time its best checkpoint."""
    from dcme_keras import evaluate_annotator
    from dcme_keras.train_annotator import TrainConfig, train
    from dcme_keras.extreme_points import extreme_points
    from dcme_keras.keras_annotator import KerasAnnotator

    config = TrainConfig(
        data_dir=data_dir, model_dir=os.fspath(runs_dir / name), data_name="synthetic Cityscapes",
        variant=variant, filters=settings.filters, levels=settings.levels, size=settings.size,
        points=points, loss=settings.loss, batch_size=settings.batch_size,
        epochs=settings.epochs, patience=None, min_area=settings.min_area, seed=settings.seed,
        cache="memory", verbose=2 if settings.progress else 0)
    start = time.perf_counter()
    train(config)
    train_s = time.perf_counter() - start
    annotator = KerasAnnotator(runs_dir / name / "best.keras")
    result = evaluate_annotator.evaluate_annotator(
        annotator, data_dir, min_area=settings.min_area, batch_size=32,
        progress=settings.progress)
    _, window, mask = next(evaluate_annotator.iter_objects(
        data_dir, min_area=settings.min_area, max_frames=1))
    result["ms_per_instance"] = evaluate_annotator.time_inference(
        annotator, window, extreme_points(mask), repeats=settings.timing_repeats)
    return {"name": name, "variant": variant, "points": points, "train_s": train_s,
            "params": annotator.model.keras_model.count_params(), **result}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f}"


def markdown(results: list[dict], settings: Settings, header: str) -> str:
    """Tables 1 and 2 as markdown."""
    lines = [header, "", "Table 1: IoU flavours at the network's resolution, border error, "
             "CPU time per object (batch 1, one tf.function)", "",
             "| approach | input | aIoU % | iIoU % | mIoU % | border px | ms/object | params |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        crop = r["crop"]
        lines.append(f"| {NAMES.get(r['variant'], r['variant'])} | "
                     f"{'RGB + extreme points' if r['points'] else 'RGB'} | "
                     f"{_pct(crop['aIoU'])} | {_pct(crop['iIoU'])} | {_pct(crop['mIoU'])} | "
                     f"{r['border_error']['mean']:.2f} | "
                     f"{r['ms_per_instance']['tf_function']:.1f} | {r['params']:,} |")
    present = [c for c in ANNOTATOR_CLASSES if any(c in r["crop"]["per_class"] for r in results)]
    lines += ["", "Table 2: IoU % per class", "",
              "| approach | input | " + " | ".join(present) + " |",
              "|---|---|" + "---:|" * len(present)]
    for r in results:
        per_class = r["crop"]["per_class"]
        lines.append(f"| {NAMES.get(r['variant'], r['variant'])} | "
                     f"{'RGB + points' if r['points'] else 'RGB'} | "
                     + " | ".join(_pct(per_class.get(c)) for c in present) + " |")
    counts = results[0]["instances_per_class"]
    lines += ["", "Validation objects per class: "
              + ", ".join(f"{c} {counts[c]}" for c in present if c in counts)]
    by_name = {r["name"]: r for r in results}
    gains = [(v, by_name[f"{v}_points"]["crop"]["aIoU"] - by_name[f"{v}_rgb"]["crop"]["aIoU"])
             for v in settings.points_variants if f"{v}_rgb" in by_name]
    if gains:
        lines += ["", "Extreme points minus RGB only, aIoU points (paper: +3.7 for the U-Net): "
                  + ", ".join(f"{NAMES.get(v, v)} {100.0 * g:+.2f}" for v, g in gains)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the ablation; print and save the tables. Returns the JSON-ready record."""
    settings = parse_args(argv)
    out = Path(settings.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data_dir = prepare_data(settings, out)

    from dcme_keras import figures
    from dcme_keras.evaluation import save_result
    from dcme_keras.hardware import describe
    from dcme_keras.fileio import atomic_path

    results = [run_row(settings, data_dir, name, variant, points, out / "runs")
               for name, variant, points in rows(settings)]
    hardware = describe()
    wall_min = (time.perf_counter() - start) / 60.0
    data = (f"cityscapes_instances in {settings.data_dir}" if settings.data_dir else
            f"synthetic Cityscapes ({settings.frames} frames at "
            f"{settings.frame_size[0]}x{settings.frame_size[1]})")
    header = (f"Paper 003 ablation on {data}, {results[0]['instances']} validation objects: "
              f"U-Net f={settings.filters} at "
              f"{settings.size}x{settings.size}, {settings.epochs} epoch(s) in batches of "
              f"{settings.batch_size}, {settings.loss} loss; {hardware}; whole run "
              f"{wall_min:.1f} min")
    table = markdown(results, settings, header)
    print(table)
    record = {"settings": dataclasses.asdict(settings), "hardware": hardware,
              "wall_min": wall_min, "results": results}
    save_result(record, out / "ablation.json")
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(table + "\n")
    figures.border_histogram_figure(
        {f"{NAMES.get(r['variant'], r['variant'])}, {'points' if r['points'] else 'RGB'}":
         r["border_error"] for r in results}, out / "border_error.png",
        caption=f"{data}, validation objects at {settings.size}x{settings.size}; {hardware}")
    print(f"\nsaved ablation.md, ablation.json and border_error.png in {out}")
    return record


if __name__ == "__main__":
    main()
