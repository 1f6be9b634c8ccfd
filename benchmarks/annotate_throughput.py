"""Objects per second of batch pre-annotation with the annotator, end to end, on photos.

The photos are a Cityscapes-layout folder (``leftImg8bit/``, ``gtFine/*_instanceIds.png``);
every instance of the annotator's classes of at least ``--min_area`` px gets its 4 extreme
points from the ground truth, as a person's clicks. The request list is repeated
``--repeat`` times so the steady state dominates. Two measurements per worker count:

1. ``dcme-keras annotate --requests R --format cityscapes --workers W --threads 1``: the
   whole command in a fresh process (start-up, model load, read, crop, invoke,
   paste-back, polygons, write). Objects / s of the whole command.
2. In this process, after one warm-up pass: the same per-image work (read the PNG, then
   per object crop, invoke, paste back, trace polygons; write the Cityscapes JSON)
   through ``runtime.map_with_replicas`` with W workers, one interpreter each.
   Objects / s in steady state.

The CPU is named through ``dcme_keras.hardware``, with the load average at the start: on
a machine shared with other jobs the figures are lower bounds.

Usage:
  python benchmarks/annotate_throughput.py --cityscapes_root /data/cityscapes --split val
  python benchmarks/annotate_throughput.py --cityscapes_root DIR --model M.tflite \\
      --workers 1,2 --repeat 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dcme_keras import polygons, runtime
from dcme_keras.classes import ANNOTATOR_CLASSES, label_id
from dcme_keras.extreme_points import extreme_points
from dcme_keras.fileio import read_rgb
from dcme_keras.hardware import describe


def requests_of(root: Path, split: str, min_area: float) -> list[dict]:
    """``--requests`` entries: each photo with its GT objects' extreme points."""
    names = {label_id(n): n for n in ANNOTATOR_CLASSES}
    entries = []
    for image in sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")):
        ids_path = (root / "gtFine" / split / image.parent.name /
                    image.name.replace("_leftImg8bit.png", "_gtFine_instanceIds.png"))
        ids = cv2.imread(str(ids_path), cv2.IMREAD_UNCHANGED)
        objects = []
        for value in np.unique(ids[ids >= 1000]):
            mask = ids == value
            if value // 1000 in names and mask.sum() >= min_area:
                objects.append({"label": names[value // 1000],
                                "points": extreme_points(mask).tolist()})
        if objects:
            entries.append({"image": str(image.resolve()), "objects": objects})
    return entries


def annotate_one(annotator, job) -> None:
    """What ``annotate --requests`` does for one image: read, segment, trace, write."""
    entry, out_file = job
    image = read_rgb(entry["image"])
    objects = [polygons.LabeledObject(obj["label"], polygons.mask_to_polygons(
        annotator.segment(image, obj["points"]))) for obj in entry["objects"]]
    out_file.write_text(json.dumps(polygons.to_cityscapes_json(objects, image.shape[:2])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cityscapes_root", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", type=Path, default=runtime.BUNDLED_ANNOTATOR)
    parser.add_argument("--min_area", type=float, default=400.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()

    photos = requests_of(args.cityscapes_root, args.split, args.min_area)
    if not photos:
        parser.error(f"no object of >= {args.min_area:g} px in split {args.split!r} of "
                     f"{args.cityscapes_root}; pass the split its gtFine/ holds "
                     "(e.g. --split train)")
    entries = [dict(entry) for _ in range(args.repeat) for entry in photos]
    n_objects = sum(len(e["objects"]) for e in entries)
    print(f"{len(entries)} images, {n_objects} objects (x{args.repeat} repeats of "
          f"{args.cityscapes_root}, split {args.split}, objects >= {args.min_area:g} px); "
          f"model {args.model.name}; {describe(1)} per interpreter; load average "
          f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # One output name per entry: repeats of a photo get copies under other names.
        for n, entry in enumerate(entries):
            link = tmp / "images" / f"r{n}_{Path(entry['image']).name}"
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(entry["image"])
            entry["image"] = str(link)
        (tmp / "requests.json").write_text(json.dumps(entries))
        for workers in (int(w) for w in args.workers.split(",")):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "dcme_keras.cli.main", "annotate",
                 f"--requests={tmp / 'requests.json'}", f"--model={args.model}",
                 "--format=cityscapes", f"--out={tmp / f'cli{workers}'}",
                 f"--workers={workers}", "--threads=1", "--noprogress"],
                capture_output=True, text=True)
            command = time.perf_counter() - start
            if done.returncode:
                sys.exit(f"annotate failed: {done.stderr.strip().splitlines()[-1]}")

            annotator = runtime.ExtremePointsAnnotator(args.model, num_threads=1)
            out = tmp / f"lib{workers}"
            out.mkdir()
            jobs = [(e, out / f"{n}.json") for n, e in enumerate(entries)]
            runtime.map_with_replicas(annotator, annotate_one, jobs[:len(jobs) // args.repeat],
                                      workers=workers)
            start = time.perf_counter()
            runtime.map_with_replicas(annotator, annotate_one, jobs, workers=workers)
            steady = time.perf_counter() - start
            print(f"workers {workers}: annotate --requests (whole command) "
                  f"{n_objects / command:.1f} objects/s ({command:.2f} s); in-process steady "
                  f"state {n_objects / steady:.1f} objects/s ({steady:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
