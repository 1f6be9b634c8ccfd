"""``decode_dcme`` on what a network outputs: recall, extra instances and time, one core.

Fields are 512x1024 (the paper's resolution). Each ground-truth layout is encoded with
``encode_dcme`` and then given the errors of a predicted field, **on every pixel, the
background included**:

* ``exact``: none (the encoded ground truth);
* ``iid0.5``, ``iid1``, ``iid2``: i.i.d. Gaussian noise of sigma 0.5, 1 and 2 px per
  component;
* ``shrink``: vectors scaled by 0.85 (a network that undershoots) plus sigma = 1 px;
* ``smooth``: white noise blurred with a Gaussian of sigma 6 px, scaled to 2 px RMS
  vector length (errors that are coherent over a region, as a network's are).

Layouts: synthetic 512x1024 maps with 100 instances (people, riders, bicycles, cars,
trucks and buses sized by perspective, occluding each other, plus a car-group region),
and the real Cityscapes layouts in ``--real_dir`` (nearest-downscaled gtFine instanceIds;
research-only data, read in place), when that folder exists. With ``--model`` and
``--data``, the DCME outputs of a trained ``.keras`` network on the val frames of a
Cityscapes-layout folder are decoded too (``trained`` row, at the network's resolution,
within its foreground head's mask when it has one, as inference decodes).

For each (layout, field) it prints recall at IoU 0.5 of the ground-truth instances of
>= 100 px (best-IoU match), the extra instances per such object (decoded instances that
match no ground-truth instance at IoU >= 0.5), and the median decode time (thread CPU
time and wall clock) at default parameters on one thread.

Usage:
  python benchmarks/decode.py [--frames 3] [--repeats 5] [--real_dir DIR]
      [--model runs/demo/dcme/best.keras --data runs/demo/synth]
"""

import os

# One core: pin every thread pool before NumPy / OpenCV load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dcme_keras.dcme.codec_np import decode_dcme, encode_dcme  # noqa: E402
from dcme_keras.hardware import cpu_name  # noqa: E402
from dcme_keras.oracles import unmatched_instances  # noqa: E402

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


NOISE_MODELS = ("exact", "iid0.5", "iid1", "iid2", "shrink", "smooth")


def predicted_like(ids: np.ndarray, model: str, rng: np.random.Generator) -> np.ndarray:
    """[H, W, 2] float32: the encoded ``ids`` with the errors of noise ``model``."""
    dcme = encode_dcme(ids)
    if model == "exact":
        return dcme
    if model.startswith("iid"):
        return dcme + rng.normal(0.0, float(model[3:]), dcme.shape).astype(np.float32)
    if model == "shrink":
        return 0.85 * dcme + rng.normal(0.0, 1.0, dcme.shape).astype(np.float32)
    if model == "smooth":
        noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, dcme.shape).astype(np.float32),
                                 (0, 0), 6.0)
        return dcme + noise * (2.0 / np.sqrt((noise**2).sum(-1).mean()))
    raise ValueError(f"unknown noise model {model!r}; one of {NOISE_MODELS}")


def real_layouts(real_dir: Path) -> list[np.ndarray]:
    """[HEIGHT, WIDTH] int32 instance ids of every gtFine frame under ``real_dir``."""
    layouts = []
    for path in sorted(real_dir.glob("gtFine/*/*/*_gtFine_instanceIds.png")):
        ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int32)
        layouts.append(cv2.resize(ids, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST_EXACT))
    return layouts


def trained_fields(model_path: str, data_root: Path
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(gt ids [h, w], predicted dcme [h, w, 2], foreground [h, w] bool or None) of a
    trained network on val frames; the mask is its foreground head's, when it has one."""
    from dcme_keras import evaluation, inference, keys  # the TF stack only for this row
    from dcme_keras.saving import load_model
    from dcme_keras.fileio import read_rgb

    model = load_model(model_path, kind="dcme")
    pairs = []
    for gt_file in evaluation.gt_instance_files(data_root, split="val"):
        out = inference.model_outputs(model, [read_rgb(evaluation.image_path(gt_file))])[0]
        dcme = out[keys.DCME]
        ids = inference.resize_nearest(evaluation.read_instance_ids(gt_file), dcme.shape[:2])
        foreground = (inference.foreground_mask(out[keys.FOREGROUND], dcme.shape[:2])
                      if keys.FOREGROUND in out else None)
        pairs.append((ids, dcme, foreground))
    return pairs


def measure(fields, repeats: int) -> tuple[float, float, float, float, int]:
    """Recall@0.5, extras per object, median thread-CPU ms, median wall ms, objects."""
    recalled, extra, cpu, wall = [], 0, [], []
    for ids, dcme, *mask in fields:
        foreground = mask[0] if mask else None  # a trained network's foreground head
        decode_dcme(dcme, foreground=foreground)  # warm-up: first-call allocations
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.thread_time()
            instance_map, _ = decode_dcme(dcme, foreground=foreground)
            wall.append(1e3 * (time.perf_counter() - start))
            cpu.append(1e3 * (time.thread_time() - start_cpu))
        best = recovery(ids, instance_map)
        recalled.extend(best >= 0.5)
        extra += unmatched_instances(ids, instance_map)
    objects = len(recalled)
    return (float(np.mean(recalled)) if objects else float("nan"), extra / max(objects, 1),
            float(np.median(cpu)), float(np.median(wall)), objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="synthetic layouts")
    parser.add_argument("--repeats", type=int, default=5, help="timed decodes per field")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real_dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "realdata"
                        / "cityscapes_dev",
                        help="Cityscapes-layout folder of real gtFine frames (skipped if absent)")
    parser.add_argument("--model", help="a trained DCME .keras network (with --data)")
    parser.add_argument("--data", type=Path, help="Cityscapes-layout folder whose val "
                        "frames the --model runs on")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    rng = np.random.default_rng(args.seed)
    layouts = {"synthetic": [synthetic_instance_map(100, rng) for _ in range(args.frames)]}
    if args.real_dir.is_dir():
        layouts["real Cityscapes"] = real_layouts(args.real_dir)
    print(f"decode_dcme at default parameters on {HEIGHT}x{WIDTH} fields, errors on every "
          "pixel (background included)")
    print(f"CPU: {cpu_name()}; 1 thread (cv2.setNumThreads(1), OMP/OPENBLAS/MKL_NUM_THREADS=1); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'layouts':16s} {'field':8s} {'frames':>6s} {'objects':>7s} {'recall@0.5':>10s} "
          f"{'extra/obj':>9s} {'CPU ms':>7s} {'wall ms':>7s}")
    rows = [(name, model, [(ids, predicted_like(ids, model, rng)) for ids in frames])
            for name, frames in layouts.items() for model in NOISE_MODELS]
    if args.model:
        if args.data is None:
            parser.error("--model needs --data, the folder whose val frames it runs on")
        rows.append(("synthetic val", "trained", trained_fields(args.model, args.data)))
    for name, model, fields in rows:
        recall, extra, cpu, wall, objects = measure(fields, args.repeats)
        print(f"{name:16s} {model:8s} {len(fields):6d} {objects:7d} {recall:10.3f} "
              f"{extra:9.3f} {cpu:7.1f} {wall:7.1f}", flush=True)


if __name__ == "__main__":
    main()
