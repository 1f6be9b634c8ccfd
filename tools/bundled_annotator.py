"""Train, export and install the annotator the package ships (``dcme_keras/models_data/``).

One reproducible command, every stage a ``dcme-keras`` subcommand with a fixed seed::

    python tools/bundled_annotator.py --workdir /tmp/bundled --threads 1 \\
        --realdata /path/to/cityscapes_dev --install

Stages, in order (a rerun skips finished ones; training resumes its last epoch):

1. ``synth``: ``--frames`` synthetic Cityscapes frames at ``--size`` (seed ``--seed``).
2. ``build``: the ``cityscapes_instances`` TFDS dataset from them.
3. ``train annotator``: a U-Net of ``--variant`` (default ``separable``, paper 003's
   depthwise-separable blocks: f = 16, 5 levels, 128 x 128, RGB + extreme points),
   average-distance loss, Adam 1e-3, batches of 32, ``--epochs`` x ``--steps_per_epoch``
   steps, flip + rotation, click jitter ``--jitter_px``, camera-like degradations
   (``--photometric``), same-class neighbours (``--clutter``), best epoch by validation
   aIoU.
4. ``export``: full-int8 TFLite calibrated on the synthetic train frames, with the Keras
   parity check.
5. Threshold calibration: the highest mask probability threshold within 0.5 points of
   the best full-resolution aIoU on the synthetic val objects
   (``evaluate_annotator.calibrate_threshold``) goes into the model's sidecar, where the
   runtime reads it.
6. ``evaluate annotator`` of the int8 model on the synthetic val split, and on
   ``--realdata`` (a Cityscapes-layout folder of real photos) when given: network against
   the filled quadrilateral of the 4 points; both exact and with clicks jittered by
   sigma = 3 px.
7. ``--install``: copies the int8 model into ``dcme_keras/models_data/`` with a sidecar
   whose ``provenance`` records this command, the recipe, the data, the seed, the
   training time, the CPU and the metrics of stage 5.

TensorFlow's thread pools get ``--threads`` threads (``TF_NUM_INTRAOP_THREADS``), so the
recorded training time is for a known CPU budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_DIR = REPO / "dcme_keras" / "models_data"
MODEL_NAME = "annotator_int8.tflite"
JITTER_SIGMA_PX = 3.0


def _run(stage: str, argv: list[str], log_dir: Path, env: dict) -> tuple[float, float]:
    """Run ``dcme-keras argv``, log to ``log_dir/stage.log``; return (wall, CPU) seconds."""
    log = log_dir / f"{stage}.log"
    start = time.perf_counter()
    cpu_start = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as f:
        f.write("$ dcme-keras " + " ".join(argv) + "\n")
        f.flush()
        code = subprocess.call([sys.executable, "-m", "dcme_keras.cli.main", *argv],
                               stdout=f, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    cpu_end = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    if code:
        sys.exit(f"stage {stage} failed (exit {code}); see {log}")
    print(f"{stage}: {seconds:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return seconds, cpu


def _evaluate(name: str, model: Path, source: list[str], out: Path, log_dir: Path, env: dict,
              jitter: float = 0.0) -> dict:
    argv = ["evaluate", "annotator", f"--model={model}", *source, f"--out={out}",
            "--timing_repeats=0", "--noprogress", f"--jitter_sigma_px={jitter:g}"]
    if not (out / "annotator_eval.json").is_file():
        _run(name, argv, log_dir, env)
    return json.loads((out / "annotator_eval.json").read_text())


def _summary(result: dict) -> dict:
    """Network and quadrilateral scores at full resolution, in percent."""
    def pct(scores):
        return {**{k: round(100 * scores[k], 2) for k in ("aIoU", "iIoU", "mIoU")},
                "per_class": {k: round(100 * v, 2) for k, v in scores["per_class"].items()}}
    return {"objects": result["instances"], "network": pct(result["full"]),
            "quadrilateral": pct(result["baseline"]["full"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--seed", type=int, default=0)
    # The shipped model's budget (a deadline's, not convergence: see README).
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps_per_epoch", type=int, default=40)
    parser.add_argument("--validation_steps", type=int, default=8)
    parser.add_argument("--jitter_px", type=int, default=3)
    parser.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--clutter", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--variant", default="separable",
                        help="U-Net block (dcme_keras.models.unet.VARIANTS); separable "
                             "invokes several times faster than paper on a CPU")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--realdata", type=Path, default=None,
                        help="Cityscapes-layout folder of real photos to report on")
    parser.add_argument("--realdata_split", default="train")
    parser.add_argument("--install", action="store_true",
                        help=f"copy the int8 model into {INSTALL_DIR.relative_to(REPO)}")
    args = parser.parse_args()

    work = args.workdir.expanduser().resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(args.threads),
           "TF_NUM_INTEROP_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    data, tfds_dir, run = work / "synthetic", work / "tfds", work / "annotator"
    model = work / MODEL_NAME
    times_file = work / "stage_seconds.json"
    # Wall and CPU seconds per stage, summed over reruns (a resumed training adds up).
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}

    def record(stage, wall_cpu):
        wall, cpu = times.get(stage, (0.0, 0.0))
        times[stage] = (round(wall + wall_cpu[0]), round(cpu + wall_cpu[1]))
        times_file.write_text(json.dumps(times, indent=1))

    data_name = f"synthetic Cityscapes ({args.frames} frames, {args.size}, seed {args.seed})"
    if not (data / "dcme_synth.json").is_file():
        record("synth", _run("synth", ["synth", f"--out={data}", f"--frames={args.frames}",
                                        f"--size={args.size}", f"--seed={args.seed}",
                                        "--noprogress"], logs, env))
    if not tfds_dir.is_dir():
        record("build", _run("build", ["build", f"--manual_dir={data}",
                                       f"--data_dir={tfds_dir}"], logs, env))
    train_argv = ["train", "annotator", f"--data_dir={tfds_dir}", f"--model_dir={run}",
                  f"--variant={args.variant}", "--loss=avg_distance", f"--epochs={args.epochs}",
                  f"--steps_per_epoch={args.steps_per_epoch}",
                  f"--validation_steps={args.validation_steps}", "--patience=0",
                  f"--jitter_px={args.jitter_px}",
                  "--photometric" if args.photometric else "--nophotometric",
                  "--clutter" if args.clutter else "--noclutter",
                  f"--seed={args.seed}", "--cache=memory", f"--data_name={data_name}",
                  "--noprogress"]
    history = run / "history.csv"
    done = sum(1 for _ in csv.DictReader(history.open())) if history.is_file() else 0
    if done < args.epochs:
        record("train", _run("train", train_argv, logs, env))
    if not model.is_file():
        _run("export", ["export", f"--model={run / 'best.keras'}", "--quantization=int8",
                        f"--representative={data}", f"--out={model}", "--noprogress",
                        # The parity report lands in the sidecar; a drop is reported there
                        # and below rather than lose a training run to the gate.
                        "--allow_drop"],
             logs, env)
    calibration_file = work / "threshold.json"
    if not calibration_file.is_file():
        from dcme_keras.evaluate_annotator import calibrate_threshold
        from dcme_keras.fileio import atomic_files
        from dcme_keras.runtime import ExtremePointsAnnotator, metadata_path

        calibration = calibrate_threshold(ExtremePointsAnnotator(model), tfds_dir,
                                          progress=False)
        sidecar = json.loads(metadata_path(model).read_text())
        sidecar["threshold"] = calibration["threshold"]
        # Both or neither: a rerun calibrates again until the record exists.
        with atomic_files([metadata_path(model), calibration_file]) as (meta_tmp, cal_tmp):
            meta_tmp.write_text(json.dumps(sidecar, indent=1) + "\n")
            cal_tmp.write_text(json.dumps(calibration, indent=1))
        print(f"threshold {calibration['threshold']} (synthetic val aIoU by threshold: "
              f"{calibration['aIoU']})", flush=True)
    calibration = json.loads(calibration_file.read_text())
    metrics = {}
    for key, source in (("synthetic_val", [f"--data_dir={tfds_dir}"]),
                        ("realdata", [f"--cityscapes_root={args.realdata}",
                                      f"--split={args.realdata_split}"])):
        if key == "realdata" and args.realdata is None:
            continue
        exact = _evaluate(f"eval_{key}", model, source, work / f"eval_{key}", logs, env)
        jittered = _evaluate(f"eval_{key}_jitter", model, source,
                             work / f"eval_{key}_jitter", logs, env, JITTER_SIGMA_PX)
        metrics[key] = {**_summary(exact), f"jitter_sigma_{JITTER_SIGMA_PX:g}px":
                        _summary(jittered)}
        hardware = exact["hardware"]
    rows = list(csv.DictReader(history.open()))
    best = max(rows, key=lambda r: float(r["val_aiou"]))
    train_wall, train_cpu = times.get("train", (0, 0))
    trained_on = json.loads((run / "config.json").read_text())["training"]["hardware"]
    provenance = {
        "command": "python tools/bundled_annotator.py " + " ".join(sys.argv[1:]),
        "train_command": "dcme-keras " + " ".join(a.replace(str(work), "WORKDIR")
                                                  for a in train_argv),
        "data": data_name, "seed": args.seed,
        "epochs_trained": len(rows), "best_epoch": int(best["epoch"]),
        "threshold": {"value": calibration["threshold"],
                      "chosen_on": f"synthetic val ({calibration['instances']} objects), "
                                   "the highest threshold within 0.5 points of the best "
                                   "full-resolution aIoU",
                      "aIoU_percent_by_threshold": {
                          k: round(100 * v, 2) for k, v in calibration["aIoU"].items()}},
        "train_wall_seconds": train_wall, "train_cpu_seconds": train_cpu,
        "train_hardware": f"{trained_on}, {args.threads} TensorFlow thread(s), shared with "
                          "other jobs (wall > CPU time)",
        "eval_hardware": hardware,
        "metrics_full_resolution_percent": metrics,
    }
    (work / "provenance.json").write_text(json.dumps(provenance, indent=1))
    print(json.dumps(provenance, indent=1))
    print("int8 parity:", json.dumps(json.loads(Path(f"{model}.json").read_text())
                                     .get("parity"), indent=1))
    if args.install:
        INSTALL_DIR.mkdir(exist_ok=True)
        sidecar = json.loads(Path(f"{model}.json").read_text())
        sidecar["provenance"] = provenance
        # This machine's paths mean nothing where the package is installed.
        sidecar["source_model"] = "WORKDIR/annotator/best.keras"
        sidecar["calibration"]["source"] = "WORKDIR/synthetic (train split)"
        shutil.copyfile(model, INSTALL_DIR / MODEL_NAME)
        (INSTALL_DIR / f"{MODEL_NAME}.json").write_text(json.dumps(sidecar, indent=1) + "\n")
        print(f"installed {INSTALL_DIR / MODEL_NAME}")


if __name__ == "__main__":
    main()
