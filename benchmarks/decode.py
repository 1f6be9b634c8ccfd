"""Time ``decode_dcme`` on one CPU core: a 512x1024 synthetic map with 100 instances.

The map mimics half-resolution Cityscapes (the paper's 512x1024): a horizon, people,
riders and bicycles, cars and a few trucks / buses whose size grows towards the bottom of
the image, drawn far to near so that near objects occlude (and sometimes split) far
ones, plus a car-group region that must stay background. It is encoded with
``encode_dcme``, and Gaussian noise (sigma = 1 px, fixed seed) is added to the vectors of
instance pixels only, background staying at the zero vector. Prints the median and 90th
percentile decode time (wall clock, and the thread's CPU time, which a busy machine
inflates less), the CPU model and load, and how many instances of >= 100 px come back
(best-IoU match) with IoU >= 0.5 and >= 0.9.

Usage:
  python benchmarks/decode.py [--repeats 50] [--seed 0]
"""

import os

# One core: pin every thread pool before NumPy / OpenCV load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dcme_keras.dcme.codec_np import decode_dcme, encode_dcme  # noqa: E402
from dcme_keras.hardware import cpu_name  # noqa: E402

HEIGHT, WIDTH = 512, 1024
HORIZON = 200
# (Cityscapes label id, width [px], height [px]) of each class at the image bottom.
_CLASSES = {
    "person": (24, 36, 110),
    "rider": (25, 40, 120),
    "car": (26, 190, 100),
    "truck": (27, 240, 190),
    "bus": (28, 260, 200),
    "bicycle": (33, 70, 70),
}
_MIX = ("person",) * 40 + ("car",) * 38 + ("rider",) * 6 + ("bicycle",) * 10 + ("truck",) * 3 \
    + ("bus",) * 3


def synthetic_instance_map(num_instances: int, rng: np.random.Generator) -> np.ndarray:
    """A [HEIGHT, WIDTH] int32 Cityscapes-style instance-id map (class * 1000 + k).

    Objects are drawn near to far into the pixels still free, which is what drawing far to
    near with occlusion gives, and drawing stops once ``num_instances`` are visible.
    """
    ids = np.zeros((HEIGHT, WIDTH), np.int32)
    free = np.ones((HEIGHT, WIDTH), bool)
    per_class = {}
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    while len(per_class) == 0 or sum(per_class.values()) < num_instances:
        bottom = HORIZON + 10 + (HEIGHT + 10 - HORIZON - 10) * rng.power(0.5)
        name = _MIX[rng.integers(len(_MIX))]
        label, full_w, full_h = _CLASSES[name]
        scale = (bottom - HORIZON) / (HEIGHT - HORIZON) * rng.uniform(0.8, 1.2)
        w, h = max(3.0, full_w * scale), max(4.0, full_h * scale)
        cx = rng.uniform(0, WIDTH)
        mask[:] = 0
        if name in ("person", "rider"):
            cv2.ellipse(mask, (int(cx), int(bottom - 0.4 * h)), (int(w / 2), int(0.4 * h)),
                        0, 0, 360, 1, -1)
            cv2.circle(mask, (int(cx), int(bottom - 0.88 * h)), max(1, int(0.12 * h)), 1, -1)
        elif name == "bicycle":
            for side in (-1, 1):
                cv2.circle(mask, (int(cx + side * w / 3), int(bottom - h / 3)),
                           max(1, int(h / 3)), 1, max(1, int(h / 12)))
        else:
            top = bottom - h
            body = np.array([[cx - w / 2, bottom], [cx + w / 2, bottom],
                             [cx + w / 2, top + 0.35 * h], [cx + w / 4, top],
                             [cx - w / 4, top], [cx - w / 2, top + 0.35 * h]])
            cv2.fillPoly(mask, [np.round(body).astype(np.int32)], 1)
        visible = (mask > 0) & free
        if not visible.any():
            continue
        k = per_class.get(label, 0)
        per_class[label] = k + 1
        ids[visible] = label * 1000 + k
        free &= ~visible
    ids[free & (np.arange(HEIGHT)[:, None] >= HORIZON)] = 7  # road: a plain label id
    # A car-group region in the distance: ignored, never an instance.
    group = free.copy()
    group[:HORIZON + 5] = False
    group[HORIZON + 20:] = False
    group[:, 160:] = False
    ids[group] = 26
    return ids


def recovery(gt_ids: np.ndarray, instance_map: np.ndarray, min_area: int = 100):
    """Best-IoU per ground-truth instance of >= ``min_area`` px: [M] float64."""
    gt_values, gt = np.unique(np.where(gt_ids >= 1000, gt_ids, 0), return_inverse=True)
    gt = gt.reshape(gt_ids.shape)
    num_gt, num_pred = len(gt_values), int(instance_map.max()) + 1
    inter = np.bincount((gt * num_pred + instance_map).ravel(),
                        minlength=num_gt * num_pred).reshape(num_gt, num_pred)
    area_gt, area_pred = inter.sum(1), inter.sum(0)
    iou = inter / (area_gt[:, None] + area_pred[None, :] - inter)
    best = iou[:, 1:].max(1, initial=0.0)
    keep = (gt_values >= 1000) & (area_gt >= min_area)
    return best[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    rng = np.random.default_rng(args.seed)
    ids = synthetic_instance_map(100, rng)
    dcme = encode_dcme(ids)
    fg = ids >= 1000
    dcme[fg] += rng.normal(0.0, 1.0, (int(fg.sum()), 2)).astype(np.float32)

    decode_dcme(dcme)  # warm-up: first-call imports and allocations
    wall, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        instance_map, centers = decode_dcme(dcme)
        wall.append(1e3 * (time.perf_counter() - start))
        cpu.append(1e3 * (time.thread_time() - start_cpu))
    best = recovery(ids, instance_map)

    gt_count = len(np.unique(ids[fg]))
    print(f"decode_dcme on synthetic {HEIGHT}x{WIDTH}, {gt_count} instances "
          f"({fg.mean():.0%} of pixels), vector noise sigma=1 px, default parameters")
    print(f"CPU: {cpu_name()}; 1 thread (cv2.setNumThreads(1), OMP/OPENBLAS/MKL_NUM_THREADS=1); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"decode wall time over {args.repeats} repeats: median {np.median(wall):.1f} ms, "
          f"p90 {np.percentile(wall, 90):.1f} ms (thread CPU time: median "
          f"{np.median(cpu):.1f} ms, p90 {np.percentile(cpu, 90):.1f} ms)")
    print(f"instances >= 100 px: {len(best)}; recovered with IoU >= 0.5: "
          f"{np.mean(best >= 0.5):.1%}, IoU >= 0.9: {np.mean(best >= 0.9):.1%}; "
          f"decoded instances: {len(centers)}")


if __name__ == "__main__":
    main()
