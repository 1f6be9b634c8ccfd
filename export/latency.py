"""CPU latency, throughput and memory of exported models, against Keras and the papers.

What is timed (``time.perf_counter``, after warm-up runs, on synthetic data):

* **Annotator** (paper 003), on objects of synthetic frames at ``image_size``
  (1024x2048, full-resolution Cityscapes, by default):

  - *invoke*: the interpreter alone on a prepared ``[1, S, S, C]`` input;
  - *total*: the whole tool path of one object,
    :meth:`~dcme_keras.runtime.ExtremePointsAnnotator.polygons`: crop and resize,
    point channel, invoke, sigmoid, paste-back into the image, mask to polygons;
  - *overhead*: total minus invoke, per object (the two are timed interleaved, on the
    same object, so background load hits both alike);
  - *throughput*: objects per second of
    :meth:`~dcme_keras.runtime.ExtremePointsAnnotator.segment_many` over a batch of
    ``requests`` objects (masks, no polygons).

* **DCME** (paper 000), on a synthetic frame at the network's input size:

  - *invoke*: the interpreter alone;
  - *decode*: :func:`dcme_keras.inference.instances_from_outputs` (voting, classes,
    scores, masks at the image size) on the network's outputs, and on reference outputs
    (:func:`reference_outputs`: the frame's exact vectors plus 1 px noise), because the
    decode time depends on the vectors and an untrained network's are noise;
  - *total*: :meth:`~dcme_keras.runtime.DCMESegmenter.instances`, i.e. invoke + decode;
  - *throughput*: images per second, from the total mean.

* **Keras** (``keras_path``): the Keras model called inside a ``tf.function`` on the
  same input, with TensorFlow's intra-op threads set to the same count (inter-op 1); the
  ratio is Keras p50 / TFLite invoke p50.

**Isolation and memory.** Each (model, threads) measurement runs in a fresh spawned
process, so thread settings cannot leak (TensorFlow fixes its thread pools at start) and
memory belongs to that model alone. Once the synthetic data is prepared, the process's
peak resident memory is reset (Linux: ``5`` into ``/proc/self/clear_refs`` resets
``VmHWM``); ``peak_mib`` is the peak while the model is loaded and run (``VmHWM``: the
Python interpreter, NumPy, OpenCV, LiteRT, the data, the model), ``model_mib`` that
peak minus the resident memory just before loading (interpreter arena, weights,
activations, outputs). Where the reset is not allowed, the process's lifetime peak from
``getrusage`` stands in (``peak_measure`` says which). TFLite processes never import
TensorFlow, as an embedding tool would not.

Timings are wall clock; the table also gives the median CPU time of the process per
invoke, which on a shared machine leaves out the time spent waiting for a core.

The papers' figures are printed as reference rows: about 140 ms per object for the
U-Net with extreme points on an Intel i5-6300U (paper 003, target < 200 ms), and
4.416 s per 512x1024 image for DCME (paper 000). They were measured on other hardware
and code; compare orders of magnitude, not ratios to the percent.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcme_keras.errors import UserInputError
from dcme_keras.hardware import cpu_name

#: Paper 003: U-Net with extreme points, per object on an Intel i5-6300U CPU [ms].
PAPER_ANNOTATOR_MS = 140.0
#: Paper 003's target per object [ms].
PAPER_ANNOTATOR_TARGET_MS = 200.0
#: Paper 000: DCME per 512x1024 image [s].
PAPER_DCME_S = 4.416
#: Default image size for annotator requests [pixels]: full-resolution Cityscapes.
DEFAULT_IMAGE_SIZE = (1024, 2048)
#: Seed of the benchmark's synthetic frames (neither calibration's nor parity's).
BENCHMARK_SEED = 2
#: Smallest object the annotator benchmark clicks on [pixels].
_MIN_AREA = 100


def _memory_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process [MiB].

    Linux's ``VmRSS`` / ``VmHWM``; elsewhere the peak from ``getrusage`` for both.
    """
    try:
        status = dict(line.split(":", 1)
                      for line in Path("/proc/self/status").read_text().splitlines())
        return (int(status["VmRSS"].split()[0]) / 1024.0,
                int(status["VmHWM"].split()[0]) / 1024.0)
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        return peak, peak


def _start_memory() -> tuple[float, str]:
    """Reset the peak to the current memory where Linux allows it; returns the baseline.

    Writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0) resets ``VmHWM``, so the
    peak that follows belongs to the model, not to the data prepared before.

    Returns:
      ``(current resident memory [MiB], how the peak is measured)``.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        how = "VmHWM after reset"
    except OSError:
        how = "process lifetime peak"
    return _memory_mib()[0], how


def _memory_fields(baseline: float, how: str) -> dict[str, Any]:
    """``peak_mib``, ``model_mib`` (peak minus baseline) and ``peak_measure``."""
    peak = _memory_mib()[1]
    return {"peak_mib": peak, "model_mib": peak - baseline, "peak_measure": how}


def _summary(wall_s: np.ndarray, cpu_s: np.ndarray) -> dict[str, float]:
    """``{"p50_ms", "p90_ms", "mean_ms"}`` of wall-clock times and ``"cpu_p50_ms"``.

    Args:
      wall_s: [N] wall-clock times [s].
      cpu_s: [N] CPU times of the whole process (all its threads) [s]; on a shared
        machine wall time includes waiting for a core, CPU time does not.
    """
    ms = np.asarray(wall_s, np.float64) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean()), "cpu_p50_ms": float(np.median(cpu_s) * 1e3)}


def _time(fns: dict[str, Callable[[int], Any]], warmup: int, repeats: int
          ) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Time several functions interleaved: ``fn(i)`` of each in turn, for each ``i``.

    Interleaving exposes every function to the same background load, so differences
    between them (the whole path minus invoke) are paired on the same ``i`` rather than
    taken between runs minutes apart.

    Args:
      fns: name -> function of the repetition index.
      warmup: untimed rounds first.
      repeats: timed rounds.

    Returns:
      ``(stats, raw)``: name -> :func:`_summary`, and name -> ``(wall [N], cpu [N])`` [s].
    """
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    raw = {name: (np.zeros(repeats), np.zeros(repeats)) for name in fns}
    for i in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(i)
            raw[name][0][i] = time.perf_counter() - start
            raw[name][1][i] = time.process_time() - start_cpu
    return {name: _summary(*times) for name, times in raw.items()}, raw


def _paired_overhead(raw: dict, total: str, part: str) -> dict[str, float]:
    """:func:`_summary` of ``total - part`` per repetition (the time outside ``part``)."""
    return _summary(raw[total][0] - raw[part][0], raw[total][1] - raw[part][1])


def annotator_requests(count: int, image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
                       seed: int = BENCHMARK_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """Annotation requests: objects of synthetic frames and their extreme points.

    Args:
      count: number of requests, at least 1.
      image_size: (H, W) [pixels] of the frames.
      seed: base seed of the frames.

    Returns:
      ``count`` pairs ``(image [H, W, 3] uint8 RGB, points [4, 2] int32 (x, y))``; the
      objects are the frames' instances of at least 100 pixels, in frame order.
    """
    from dcme_keras.data import synthetic
    from dcme_keras.extreme_points import extreme_points

    requests: list[tuple[np.ndarray, np.ndarray]] = []
    frame = 0
    while len(requests) < count:
        image, annotation = synthetic.render_frame(np.random.default_rng([seed, frame]),
                                                   tuple(image_size))
        ids, _ = synthetic.rasterize(annotation)
        for value in np.unique(ids[ids >= 1000]):
            mask = ids == value
            if np.count_nonzero(mask) >= _MIN_AREA and len(requests) < count:
                requests.append((image, extreme_points(mask)))
        frame += 1
    return requests


def benchmark_annotator(tflite_path: str | os.PathLike, threads: int, *, warmup: int = 5,
                        repeats: int = 50, requests: int = 32,
                        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE) -> dict[str, Any]:
    """Latency, throughput and memory of an exported annotator (see the module docstring).

    Args:
      tflite_path: the annotator ``.tflite`` (with its sidecar).
      threads: interpreter threads.
      warmup: untimed runs before each timing.
      repeats: timed runs of invoke and of the whole path.
      requests: objects in the throughput batch (and the pool the timed runs cycle over).
      image_size: (H, W) [pixels] of the synthetic frames.

    Returns:
      ``{"invoke": stats, "total": stats, "overhead": stats, "throughput": objects/s,
      "throughput_unit", "peak_mib", "model_mib", "op_report", "input_shape"}``; stats
      are ``{"p50_ms", "p90_ms", "mean_ms", "cpu_p50_ms"}``.
    """
    from dcme_keras import extreme_points as ep
    from dcme_keras.runtime import ExtremePointsAnnotator, load_metadata

    pool = annotator_requests(requests, image_size)
    # The network inputs of the requests, made with the sidecar's encoding before the
    # model is loaded, so that the memory baseline holds them.
    meta = load_metadata(tflite_path)
    channels = meta["input_channels"]
    inputs = [ep.make_input(image, points, meta["input_size"][0], meta["point_radius"],
                            meta["margin"], mode=meta["point_mode"])[None, ..., :channels]
              for image, points in pool]
    baseline, how = _start_memory()
    ann = ExtremePointsAnnotator(tflite_path, num_threads=threads)
    stats, raw = _time({"invoke": lambda i: ann.model(inputs[i % len(inputs)]),
                        "total": lambda i: ann.polygons(*pool[i % len(pool)])},
                       warmup, repeats)
    ann.segment_many(pool[:warmup])
    start = time.perf_counter()
    ann.segment_many(pool)
    batch_s = time.perf_counter() - start
    return {**stats, "overhead": _paired_overhead(raw, "total", "invoke"),
            "throughput": len(pool) / batch_s, "throughput_unit": "objects/s",
            **_memory_fields(baseline, how),
            "op_report": ann.model.op_report(), "input_shape": list(ann.model.input_shape)}


def reference_outputs(image_hw: Sequence[int], grid_size: int, *, noise_px: float = 1.0,
                      seed: int = BENCHMARK_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Outputs a well-trained DCME network would give on a synthetic frame.

    The decode time depends on the vectors: a random-weight network votes everywhere, a
    trained one votes in clusters. These are the frame's exact vectors
    (``encode_dcme``) with Gaussian noise on instance pixels and one-hot grid logits.

    Args:
      image_hw: (H, W) [pixels] of the frame (the network's input size).
      grid_size: Gs [pixels].
      noise_px: standard deviation of the noise on instance vectors [pixels].
      seed: base seed of the frame and the noise.

    Returns:
      ``(dcme [H, W, 2] float32, grid_logits [H/Gs, W/Gs, 9] float32)``.
    """
    from dcme_keras.classes import NUM_THING_CLASSES
    from dcme_keras.data import synthetic
    from dcme_keras.dcme import codec_np, grid

    _, annotation = synthetic.render_frame(np.random.default_rng([seed, 0]), tuple(image_hw))
    ids, _ = synthetic.rasterize(annotation)
    rng = np.random.default_rng(seed)
    dcme = codec_np.encode_dcme(ids)
    dcme += rng.normal(0.0, noise_px, dcme.shape).astype(np.float32) * (ids >= 1000)[..., None]
    cells = grid.grid_labels(grid.instance_ids_to_label_ids(ids), grid_size)
    return dcme, 10.0 * np.eye(NUM_THING_CLASSES + 1, dtype=np.float32)[cells]


def benchmark_dcme(tflite_path: str | os.PathLike, threads: int, *, warmup: int = 2,
                   repeats: int = 10) -> dict[str, Any]:
    """Latency, throughput and memory of an exported DCME network at its input size.

    Args:
      tflite_path: the DCME ``.tflite`` (with its sidecar).
      threads: interpreter threads.
      warmup: untimed runs before each timing.
      repeats: timed runs of invoke, decode and the whole path.

    Returns:
      ``{"invoke": stats, "decode": stats, "decode_reference": stats, "total": stats,
      "overhead": stats, "throughput": images/s, "throughput_unit", "instances": decoded
      per image, "reference_instances", "peak_mib", "model_mib", "peak_mib_with_decode",
      "op_report", "input_shape"}``; ``decode`` runs on this network's outputs,
      ``decode_reference`` on :func:`reference_outputs`; ``peak_mib`` and ``model_mib``
      are taken after loading and one invoke, before any decoding.
    """
    from dcme_keras import inference, keys
    from dcme_keras.data import synthetic
    from dcme_keras.runtime import DCMESegmenter, load_metadata

    hw = tuple(load_metadata(tflite_path).get("input_size") or ())
    if len(hw) != 2:
        raise UserInputError(f"{tflite_path}'s sidecar has no input_size; re-export it with "
                             "`dcme-keras export`")
    image, _ = synthetic.render_frame(np.random.default_rng([BENCHMARK_SEED, 0]), hw)
    baseline, how = _start_memory()
    seg = DCMESegmenter(tflite_path, num_threads=threads)
    x = image[None].astype(np.float32)
    out = seg.outputs(image)
    reference = reference_outputs(hw, seg.grid_size)

    def decode(dcme, grid_logits):
        return inference.instances_from_outputs(
            dcme, grid_logits, out_size=image.shape[:2], grid_size=seg.grid_size,
            decode_kwargs=seg.decode_kwargs)

    # The model's memory, before decoding: decoded masks ([H, W] bool each) scale with the
    # instance count, which an untrained network inflates to thousands.
    memory = _memory_fields(baseline, how)
    stats, raw = _time({"invoke": lambda i: seg.model(x),
                        "decode": lambda i: decode(out[keys.DCME], out[keys.GRID]),
                        "decode_reference": lambda i: decode(*reference),
                        "total": lambda i: seg.instances(image)}, warmup, repeats)
    return {**stats, "overhead": _paired_overhead(raw, "total", "invoke"),
            "throughput": 1e3 / stats["total"]["mean_ms"], "throughput_unit": "images/s",
            "instances": len(decode(out[keys.DCME], out[keys.GRID])),
            "reference_instances": len(decode(*reference)), **memory,
            "peak_mib_with_decode": _memory_fields(baseline, how)["peak_mib"],
            "op_report": seg.model.op_report(), "input_shape": list(seg.model.input_shape)}


def benchmark_keras(keras_path: str | os.PathLike, threads: int, *, warmup: int = 3,
                    repeats: int = 20) -> dict[str, Any]:
    """Latency of a Keras model on the CPU, batch 1, with ``threads`` intra-op threads.

    Must run in a fresh process (TensorFlow fixes its thread pools when it starts):
    :func:`run_benchmarks` spawns one.

    Args:
      keras_path: the ``.keras`` model.
      threads: TensorFlow intra-op threads (inter-op: 1).
      warmup: untimed calls (the first traces the function).
      repeats: timed calls.

    Returns:
      ``{"invoke": stats, "peak_mib", "model_mib", "input_shape"}``.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from dcme_keras.saving import load_model

    baseline, how = _start_memory()
    model = load_model(keras_path)
    shape = [1, *model.input_shape[1:]]
    x = tf.constant(np.random.default_rng(BENCHMARK_SEED).random(shape, np.float32))
    call = tf.function(lambda t: model(t, training=False))
    # .numpy() waits for the result, so a timing covers the whole computation.
    stats, _ = _time({"invoke": lambda i: [v.numpy() for v in tf.nest.flatten(call(x))]},
                     warmup, repeats)
    return {**stats, **_memory_fields(baseline, how), "input_shape": shape}


def benchmark_tflite(tflite_path: str | os.PathLike, threads: int, **kwargs) -> dict[str, Any]:
    """:func:`benchmark_annotator` or :func:`benchmark_dcme`, by the sidecar's ``kind``.

    Args:
      tflite_path: the ``.tflite`` (with its sidecar).
      threads: interpreter threads.
      **kwargs: ``warmup``, ``repeats`` and, for an annotator, ``requests`` and
        ``image_size``.

    Returns:
      The kind's result, plus ``kind`` and ``quantization``.
    """
    from dcme_keras.runtime import load_metadata

    meta = load_metadata(tflite_path)
    if meta.get("kind") == "annotator":
        result = benchmark_annotator(tflite_path, threads, **kwargs)
    elif meta.get("kind") == "dcme":
        kwargs = {k: v for k, v in kwargs.items() if k in ("warmup", "repeats")}
        result = benchmark_dcme(tflite_path, threads, **kwargs)
    else:
        raise UserInputError(f"{tflite_path} has kind {meta.get('kind')!r}; re-export it with "
                             "`dcme-keras export`")
    return {"kind": meta["kind"], "quantization": meta.get("quantization", "?"), **result}


def _isolated(fn: Callable[..., dict], *args, **kwargs) -> dict:
    """Run ``fn(*args, **kwargs)`` in a fresh spawned process and return its result."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def run_benchmarks(tflite_paths: Sequence[str | os.PathLike], threads: Sequence[int], *,
                   keras_path: str | os.PathLike | None = None, warmup: int | None = None,
                   repeats: int | None = None, requests: int = 32,
                   image_size: Sequence[int] = DEFAULT_IMAGE_SIZE) -> dict[str, Any]:
    """Benchmark every model at every thread count, each in its own process.

    Args:
      tflite_paths: exported models (annotators and/or DCME networks).
      threads: thread counts, each at least 1.
      keras_path: a ``.keras`` model to time under TensorFlow for the ratio column; its
        input shape must match the TFLite models'.
      warmup: untimed runs; ``None`` keeps each kind's default.
      repeats: timed runs; ``None`` keeps each kind's default.
      requests: annotator objects per throughput batch.
      image_size: (H, W) [pixels] of the annotator's synthetic frames.

    Returns:
      ``{"cpu", "cpu_count", "data": "synthetic", "rows": [...], "keras": {threads:
      result}, "paper": {...}}``; each row is a :func:`benchmark_tflite` result with
      ``model``, ``threads`` and, with Keras, ``keras_ratio``.

    Raises:
      UserInputError: for a bad thread count, a missing file, or a Keras model whose
        input shape differs from a TFLite model's.
    """
    from dcme_keras.runtime import load_metadata

    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1:
        raise UserInputError(f"threads {threads} must be whole numbers >= 1, e.g. --threads 1,2")
    if not tflite_paths:
        raise UserInputError("no model given; pass one or more .tflite files")
    shapes = {}
    for path in tflite_paths:
        if not Path(path).is_file():
            raise UserInputError(f"model file {path} does not exist; check the path")
        meta = load_metadata(path)  # fails early, with the fix, on a file without its sidecar
        shapes[path] = [1, *meta.get("input_size", []), meta.get("input_channels")]
    if keras_path is not None and not Path(keras_path).is_file():
        raise UserInputError(f"Keras model {keras_path} does not exist; check --keras")
    timing = {k: v for k, v in (("warmup", warmup), ("repeats", repeats)) if v is not None}
    rows, keras_results = [], {}
    for t in threads:
        if keras_path is not None:
            keras_results[t] = _isolated(benchmark_keras, os.fspath(keras_path), t, **timing)
            for path, shape in shapes.items():
                if keras_results[t]["input_shape"] != shape:
                    raise UserInputError(
                        f"--keras input {keras_results[t]['input_shape']} differs from "
                        f"{path}'s {shape}; pass the model it was exported from")
        for path in tflite_paths:
            row = _isolated(benchmark_tflite, os.fspath(path), t, requests=requests,
                            image_size=tuple(image_size), **timing)
            row.update(model=Path(path).name, threads=t)
            if keras_path is not None:
                row["keras_ratio"] = (keras_results[t]["invoke"]["p50_ms"]
                                      / row["invoke"]["p50_ms"])
            rows.append(row)
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "data": "synthetic",
            "rows": rows, "keras": keras_results,
            "paper": {"annotator_ms": PAPER_ANNOTATOR_MS,
                      "annotator_target_ms": PAPER_ANNOTATOR_TARGET_MS,
                      "dcme_s": PAPER_DCME_S}}


def _pair(stats: dict | None, cpu: bool = False) -> str:
    """``p50 / p90`` [ms], with the CPU-time median in brackets when ``cpu``."""
    if stats is None:
        return "-"
    text = f"{stats['p50_ms']:.1f} / {stats['p90_ms']:.1f}"
    return f"{text} ({stats['cpu_p50_ms']:.1f})" if cpu else text


def _decode_cell(row: dict) -> str:
    """Decode p50 / p90 of the network's outputs, with the reference outputs' p50."""
    if "decode" not in row:
        return "-"
    return f"{_pair(row['decode'])} ({row['decode_reference']['p50_ms']:.1f})"


def format_table(result: dict[str, Any]) -> str:
    """The benchmark as plain-text tables, one per thread count, then the papers' rows.

    Args:
      result: what :func:`run_benchmarks` returned.

    Returns:
      Lines of text, no trailing newline.
    """
    header = ("model", "kind", "quant", "invoke p50/p90 (CPU)", "total p50/p90",
              "total-invoke p50/p90", "decode p50/p90 (ref. p50)", "throughput",
              "peak (model) MiB", "Keras/TFLite", "XNNPACK")
    lines = [f"CPU: {result['cpu']} ({result['cpu_count']} logical CPUs); synthetic data; "
             "times in ms, wall clock (CPU-time median of the process in brackets)"]
    for t in sorted({row["threads"] for row in result["rows"]}):
        table = [header]
        keras = result["keras"].get(t)
        for row in (r for r in result["rows"] if r["threads"] == t):
            ops = row["op_report"]
            table.append((
                row["model"], row["kind"], row["quantization"], _pair(row["invoke"], cpu=True),
                _pair(row["total"]), _pair(row["overhead"]), _decode_cell(row),
                f"{row['throughput']:.1f} {row['throughput_unit']}",
                f"{row['peak_mib']:.0f} ({row['model_mib']:+.0f})",
                f"{row['keras_ratio']:.2f}x" if "keras_ratio" in row else "-",
                f"{ops['delegated']}/{ops['ops']} ops, {ops['partitions']} part."))
        if keras is not None:
            table.append(("Keras (tf.function)", "", "float32", _pair(keras["invoke"], cpu=True),
                          "-", "-", "-", "-",
                          f"{keras['peak_mib']:.0f} ({keras['model_mib']:+.0f})", "1.00x", "-"))
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines += ["", f"threads {t}"]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                  for r in table]
    paper = result["paper"]
    lines += ["", "reference (papers, other hardware):",
              f"  paper 003 annotator (U-Net + extreme points, i5-6300U): about "
              f"{paper['annotator_ms']:.0f} ms per object, target < "
              f"{paper['annotator_target_ms']:.0f} ms",
              f"  paper 000 DCME (VGG16 DeepLabv3+, 512x1024): {paper['dcme_s'] * 1e3:.0f} ms "
              "per image"]
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the benchmark result as JSON, atomically.

    Args:
      result: what :func:`run_benchmarks` returned.
      path: the destination file.

    Returns:
      ``path`` as a Path.
    """
    from dcme_keras.fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path

