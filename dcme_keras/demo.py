"""The main job: the whole pipeline on the embedded synthetic data, ending in a report.

``dcme-keras demo --workdir runs/demo`` runs, in order:

1. ``synth``: synthetic Cityscapes-layout frames (the embedded default data);
2. ``build``: the ``cityscapes_instances`` TFDS dataset from them;
3. ``train annotator`` (paper preset U-Net) and ``train dcme`` (cpu preset with the
   foreground head, at half the frame size);
4. ``evaluate annotator`` and ``evaluate dcme --oracles`` (official Cityscapes AP);
5. ``export`` of both networks to int8 and float16 TFLite, with the parity report;
6. ``benchmark`` of the exported models on this CPU;
7. ``report.md`` with the tables and figures, every one labelled synthetic + hardware.

Each stage is the ``dcme-keras`` subcommand a user would type, run in its own process:
the subcommands define absl flags of the same names (``--model``, ``--out``...), and a
process each keeps them apart. A stage's output is streamed to the console and kept in
``logs/<stage>.log``. A failed stage stops the demo with a one-line error naming the
stage and its log; ``report.md`` is written (atomically) only when every stage passed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dcme_keras import __version__, keys
from dcme_keras.errors import UserInputError
from dcme_keras.fileio import atomic_path
from dcme_keras.hardware import describe

REPORT_FILE = "report.md"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run. ``DEFAULT`` fits 15 minutes on 2 cores, ``QUICK`` 3.

    Attributes:
      frames: synthetic frames written (a quarter go to val).
      size: frame size (H, W) in pixels.
      annotator_epochs / annotator_steps: epochs and batches per epoch of the U-Net.
      dcme_size: (H, W) [pixels] the DCME network trains and runs at; evaluation
        resizes each frame to it and the instance masks back. Half the frame size
        halves the vectors to learn and quarters the cost of a step.
      dcme_epochs / dcme_steps: epochs and batches per epoch of the DCME network (cpu
        preset).
      dcme_batch: DCME batch size.
      dcme_learning_rate: Adam's initial rate for the DCME network (cosine decay).
      dcme_foreground_head: give the DCME network the foreground head (beyond the
        paper), within which its vectors are decoded.
      eval_images: validation frames the DCME evaluation scores.
      benchmark_repeats: timed runs per benchmark figure.
      figures: frames drawn as Fig. 4 overlays.
      calibration / parity: int8 calibration and held-out parity objects (annotator).
      dcme_calibration / dcme_parity: the same in frames for the DCME exports (parity
        scores every frame with the official evaluator, which dominates their time).
    """

    frames: int = 64
    size: tuple[int, int] = (256, 512)
    annotator_epochs: int = 4
    annotator_steps: int = 8
    dcme_size: tuple[int, int] = (128, 256)
    dcme_epochs: int = 8
    dcme_steps: int = 50
    dcme_batch: int = 8
    dcme_learning_rate: float = 3e-3
    dcme_foreground_head: bool = True
    eval_images: int = 8
    benchmark_repeats: int = 20
    figures: int = 2
    calibration: int = 64
    parity: int = 64
    dcme_calibration: int = 8
    dcme_parity: int = 4


DEFAULT = DemoConfig()
QUICK = DemoConfig(frames=8, size=(128, 256), annotator_epochs=1, annotator_steps=2,
                   dcme_size=(64, 128), dcme_epochs=1, dcme_steps=3, dcme_batch=2,
                   eval_images=2,
                   benchmark_repeats=5, figures=1, calibration=16, parity=16,
                   dcme_calibration=2, dcme_parity=2)


@dataclasses.dataclass
class Stage:
    """One ``dcme-keras`` invocation of the demo."""

    name: str
    title: str
    argv: list[str]
    seconds: float = 0.0


def plan(workdir: Path, config: DemoConfig, threads: int) -> list[Stage]:
    """The stages of a demo run in ``workdir``, as ``dcme-keras`` argument lists."""
    data, tfds_dir = workdir / "synthetic", workdir / "tfds"
    ann_dir, dcme_dir, exp = workdir / "annotator", workdir / "dcme", workdir / "export"
    h, w = config.size
    dh, dw = config.dcme_size
    name = f"synthetic Cityscapes ({config.frames} frames, {h}x{w})"
    stages = [
        Stage("synth", "Synthesize frames",
              ["synth", f"--out={data}", f"--frames={config.frames}", f"--size={h}x{w}",
               "--seed=0"]),
        Stage("build", "Build the TFDS dataset",
              ["build", f"--manual_dir={data}", f"--data_dir={tfds_dir}"]),
        Stage("train_annotator", "Train the annotator (paper preset U-Net)",
              ["train", "annotator", f"--data_dir={tfds_dir}", f"--model_dir={ann_dir}",
               "--variant=paper", "--loss=avg_distance", f"--epochs={config.annotator_epochs}",
               f"--steps_per_epoch={config.annotator_steps}", f"--data_name={name}",
               "--cache=memory", "--noprogress"]),
        Stage("train_dcme", "Train the DCME network (cpu preset)",
              ["train", "dcme", f"--data_dir={tfds_dir}", f"--model_dir={dcme_dir}",
               "--preset=cpu", f"--image_size={dh}x{dw}", f"--batch_size={config.dcme_batch}",
               f"--epochs={config.dcme_epochs}", f"--steps_per_epoch={config.dcme_steps}",
               f"--learning_rate={config.dcme_learning_rate:g}", f"--data_name={name}",
               "--cache=memory", "--noprogress",
               "--foreground_head" if config.dcme_foreground_head else "--noforeground_head"]),
        Stage("evaluate_annotator", "Evaluate the annotator",
              ["evaluate", "annotator", f"--model={ann_dir / 'best.keras'}",
               f"--data_dir={tfds_dir}", f"--out={workdir / 'eval_annotator'}",
               f"--data_name={name}", f"--threads={threads}", "--timing_repeats=10"]),
        Stage("evaluate_dcme", "Evaluate the DCME network (official Cityscapes AP, oracles)",
              ["evaluate", "dcme", f"--model={dcme_dir / 'best.keras'}",
               f"--cityscapes_root={data}", f"--out={workdir / 'eval_dcme'}", "--oracles",
               f"--max_images={config.eval_images}", f"--figures={config.figures}"]),
    ]
    for kind, model, calibration, parity in (
            ("annotator", ann_dir, config.calibration, config.parity),
            ("dcme", dcme_dir, config.dcme_calibration, config.dcme_parity)):
        for q in ("int8", "float16"):
            stages.append(Stage(
                f"export_{kind}_{q}", f"Export the {kind} network to {q} TFLite",
                ["export", f"--model={model / 'best.keras'}", f"--quantization={q}",
                 f"--representative={data}", f"--out={exp / f'{kind}_{q}.tflite'}",
                 f"--calibration_samples={calibration}", f"--parity_samples={parity}",
                 # The demo's networks train for minutes; report the int8 drop, don't refuse.
                 "--allow_drop"]))
    stages.append(Stage(
        "benchmark", "Benchmark on the CPU",
        ["benchmark", *(str(exp / f"{k}_{q}.tflite") for k in ("annotator", "dcme")
                        for q in ("int8", "float16")),
         f"--threads=1,{threads}" if threads > 1 else "--threads=1",
         f"--repeats={config.benchmark_repeats}", f"--json={workdir / 'benchmark.json'}"]))
    return stages


def run_stage(stage: Stage, log_dir: Path) -> None:
    """Run one stage in a subprocess, streaming its output to the console and its log.

    Raises:
      UserInputError: naming the stage and its log when the stage exits non-zero.
    """
    log = log_dir / f"{stage.name}.log"
    cmd = [sys.executable, "-m", "dcme_keras.cli.main", *stage.argv]
    start = time.perf_counter()
    with open(log, "wb") as f:
        f.write(("$ dcme-keras " + " ".join(stage.argv) + "\n").encode())
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            f.write(chunk)
        code = proc.wait()
    stage.seconds = time.perf_counter() - start
    if code != 0:
        raise UserInputError(f"demo stage {stage.name!r} failed (exit {code}); its output is "
                             f"in {log}")


def _annotator_figure(workdir: Path, data: Path, out_png: Path, caption: str) -> None:
    """Predictions of the exported int8 annotator, with their polygons, on val frames.

    This runs the TF-free runtime, as an annotation tool embedding it would.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dcme_keras.data.pipelines import cityscapes_frames
    from dcme_keras.extreme_points import extreme_points
    from dcme_keras.runtime import ExtremePointsAnnotator

    annotator = ExtremePointsAnnotator(workdir / "export" / "annotator_int8.tflite")
    frame = next(iter(cityscapes_frames(data, "val", limit=1)))
    image, ids = frame[keys.IMAGE], frame[keys.INSTANCE_IDS]
    objects = [i for i in np.unique(ids) if i >= 1000 and (ids == i).sum() >= 200][:6]
    fig, ax = plt.subplots(figsize=(10, 5.6))
    ax.imshow(image)
    for obj in objects:
        points = extreme_points(ids == obj)
        for poly in annotator.polygons(image, points):
            ring = np.vstack([poly.exterior, poly.exterior[:1]])
            ax.plot(ring[:, 0], ring[:, 1], "-", color="yellow", lw=1.5)
        ax.plot(points[:, 0], points[:, 1], "o", color="red", ms=4)
    ax.set_axis_off()
    ax.set_title("Annotator (int8 TFLite, TF-free runtime): red = clicked extreme points, "
                 "yellow = polygons", fontsize=9)
    fig.text(0.01, 0.01, caption, fontsize=7)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else f"({path.name} was not written)"


def _log_tail(log: Path, marker: str) -> str:
    """The part of a stage's log from the last line containing ``marker`` on."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if marker in line]
    return "\n".join(lines[starts[-1]:]).strip() if starts else "(not found in the log)"


def write_report(workdir: Path, stages: list[Stage], config: DemoConfig, threads: int,
                 quick: bool) -> Path:
    """Assemble ``report.md`` from the stages' tables, figures and logs."""
    from dcme_keras.figures import loss_curves

    hw = describe(threads)
    h, w = config.size
    data_label = f"synthetic Cityscapes, {config.frames} frames at {h}x{w}, seed 0"
    caption = f"Data: {data_label}. Hardware: {hw}."
    figs = workdir / "figures"
    figs.mkdir(exist_ok=True)
    loss_curves(workdir / "annotator" / "history.csv", figs / "annotator_loss.png",
                caption=caption)
    loss_curves(workdir / "dcme" / "history.csv", figs / "dcme_loss.png", caption=caption)
    _annotator_figure(workdir, workdir / "synthetic", figs / "annotator_polygons.png", caption)
    fig4 = sorted((workdir / "eval_dcme" / "figures").glob("*_fig4.png"))
    mags = sorted((workdir / "eval_dcme" / "figures").glob("*_dcme_magnitude_*.png"))
    rel = lambda p: p.relative_to(workdir).as_posix()  # noqa: E731
    timing = "\n".join(f"| {s.title} | `dcme-keras {s.argv[0]}` | {s.seconds:.0f} |"
                       for s in stages)
    total = sum(s.seconds for s in stages)
    bench = _log_tail(workdir / "logs" / "benchmark.log", "CPU:")
    parity = "\n\n".join(
        f"**{s.name}**\n\n```\n{_log_tail(workdir / 'logs' / f'{s.name}.log', 'parity')}\n```"
        for s in stages if s.name.startswith("export_"))
    fg_text = (" with the foreground head (beyond the paper; instances are decoded within "
               "it)" if config.dcme_foreground_head else "")
    text = f"""# dcme-keras demo report

All figures below were **measured on synthetic data** ({data_label}) on **{hw}**,
with dcme-keras {__version__}, on {datetime.date.today().isoformat()}. The networks trained
for minutes on a CPU{" (--quick: seconds)" if quick else ""}: the numbers show that every
stage runs end to end, not what the papers' networks reach on Cityscapes.

## Stages

| stage | command | seconds |
|---|---|---|
{timing}
| **total** | | **{total:.0f}** |

## Extreme-points annotator (paper 003)

```
{_read(workdir / "eval_annotator" / "tables.txt")}
```

![border error](eval_annotator/border_error.png)

![annotator predictions with polygons](figures/annotator_polygons.png)

![annotator loss curves](figures/annotator_loss.png)

## DCME instance segmentation (paper 000)

The network: cpu preset (`tiny` with more context){fg_text}, trained from scratch at
{config.dcme_size[0]}x{config.dcme_size[1]} for {config.dcme_epochs * config.dcme_steps} steps
of {config.dcme_batch} frames (Adam {config.dcme_learning_rate:g}, cosine decay); it runs at
that size and its instance masks are resized to the frames.

```
{_read(workdir / "eval_dcme" / "tables.txt")}
```

{chr(10).join(f"![Fig. 4 style overlay]({rel(p)})" for p in fig4)}

{chr(10).join(f"![DCME magnitude map]({rel(p)})" for p in mags)}

![DCME loss curves](figures/dcme_loss.png)

## Export parity (TFLite vs Keras, held-out synthetic frames)

{parity}

## CPU benchmark

```
{bench}
```
"""
    out = workdir / REPORT_FILE
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out


def run_demo(workdir: str | Path, *, quick: bool = False, threads: int = 2) -> Path:
    """Run every stage in ``workdir`` and write ``report.md``; returns its path.

    Args:
      workdir: output folder; an existing demo folder is replaced stage by stage.
      quick: the ``QUICK`` sizes (about 3 minutes on 2 cores) instead of ``DEFAULT``.
      threads: CPU threads for the benchmark and timing rows (1 is always measured too).
    """
    workdir = Path(workdir).resolve()
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / "logs").is_dir():
        raise UserInputError(f"{workdir} is not empty and is not a demo folder; pass an "
                             "empty or new --workdir")
    config = QUICK if quick else DEFAULT
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stages = plan(workdir, config, threads)
    for k, stage in enumerate(stages, start=1):
        print(f"\n=== [{k}/{len(stages)}] {stage.title} ===", flush=True)
        run_stage(stage, log_dir)
    (workdir / "stages.json").write_text(json.dumps(
        [{"stage": s.name, "seconds": round(s.seconds, 1)} for s in stages], indent=2))
    return write_report(workdir, stages, config, threads, quick)
