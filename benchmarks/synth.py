"""Frames per second of ``dcme-keras synth`` on one CPU core, PNG writing included.

Writes ``--frames`` synthetic Cityscapes frames (image, polygons JSON, 16-bit instanceIds,
labelIds) into a temporary folder with ``write_dataset`` and prints the throughput, both
wall clock and process CPU time (the CPU figure is the one to trust on a shared machine).
It then times the ground-truth rasterization of those frames against cityscapesscripts'
``createInstanceImage`` + ``createLabelImage`` (the official rules this package reproduces
in one pass) and checks that they agree pixel for pixel.

Usage:
  python benchmarks/synth.py [--frames 20] [--size 512x1024] [--seed 0]
"""

import os

# One core: pin every thread pool before NumPy / OpenCV load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from cityscapesscripts.helpers.annotation import Annotation  # noqa: E402
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage  # noqa: E402
from cityscapesscripts.preparation.json2labelImg import createLabelImage  # noqa: E402

from dcme_keras.cli.common import parse_hw  # noqa: E402
from dcme_keras.data.synthetic import rasterize, write_dataset  # noqa: E402
from dcme_keras.hardware import cpu_name  # noqa: E402



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", default="512x1024", help="HxW")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = parse_hw(args.size)
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        wall, cpu = time.perf_counter(), time.process_time()
        summary = write_dataset(out, frames=args.frames, size=size, seed=args.seed,
                                progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        megabytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20

        annotations = [json.loads(p.read_text())
                       for p in sorted(out.glob("gtFine/*/*/*_gtFine_polygons.json"))]
        ours = time.process_time()
        results = [rasterize(a) for a in annotations]
        ours = time.process_time() - ours
        official = time.process_time()
        for annotation, (instance, label) in zip(annotations, results, strict=True):
            reference = Annotation()
            reference.fromJsonText(json.dumps(annotation))
            official_instance = np.asarray(createInstanceImage(reference, "ids"))
            official_label = np.asarray(createLabelImage(reference, "ids"))
            if not (np.array_equal(official_instance.astype(np.uint16), instance)
                    and np.array_equal(official_label, label)):
                raise SystemExit("rasterize disagrees with cityscapesscripts")
        official = time.process_time() - official

    n = args.frames
    instances = sum(sum(per_class.values()) for per_class in summary["instances"].values())
    print(f"synthetic Cityscapes, {size[0]}x{size[1]}, {n} frames, seed {args.seed}; "
          f"CPU: {cpu_name()}, 1 thread (cv2.setNumThreads(1))")
    print(f"  write_dataset: {n / cpu:.1f} frames/s CPU time ({1000 * cpu / n:.0f} ms/frame), "
          f"{n / wall:.1f} frames/s wall clock; {megabytes / n:.2f} MiB/frame, "
          f"{instances / n:.1f} visible instances/frame")
    print(f"  ground truth: rasterize {1000 * ours / n:.1f} ms/frame, cityscapesscripts "
          f"createInstanceImage + createLabelImage {1000 * official / n:.1f} ms/frame "
          f"({official / ours:.1f}x); identical on all {n} frames")


if __name__ == "__main__":
    main()
