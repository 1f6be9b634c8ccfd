"""``dcme-keras benchmark``: CPU latency of exported models, against Keras and the papers.

Every model runs at every thread count in a fresh process, on synthetic data, after
warm-up runs. Annotators: the interpreter alone and the whole tool path (crop, point
channel, invoke, paste-back, polygons) per object, and objects/s over a batch of
requests. DCME networks: invoke and decode at the network's input size::

    dcme-keras benchmark unet_f32.tflite unet_int8.tflite --threads 1,2
    dcme-keras benchmark unet_int8.tflite --threads 1,2 --keras unet.keras --json bench.json
    dcme-keras benchmark dcme_f16.tflite --threads 2

The table gives p50 / p90 in milliseconds, peak resident memory of the process (and
its increase from loading and running the model), the Keras/TFLite latency ratio with
``--keras``, XNNPACK's share of the graph, and the papers' timings as reference rows.
"""

from __future__ import annotations

from absl import flags

from dcme_keras.cli.common import parse_hw
from dcme_keras.errors import UserInputError

_THREADS = flags.DEFINE_string("threads", "1,2", "comma-separated interpreter thread counts")
_KERAS = flags.DEFINE_string("keras", None, "the .keras model the .tflite files came from, "
                             "timed under TensorFlow with the same threads for a ratio")
_JSON = flags.DEFINE_string("json", None, "also write the results to this JSON file")
_WARMUP = flags.DEFINE_integer("warmup", None, "untimed runs before each timing (default: 5 "
                               "per annotator, 2 per DCME network)", lower_bound=0)
_REPEATS = flags.DEFINE_integer("repeats", None, "timed runs (default: 50 per annotator, "
                                "10 per DCME network)", lower_bound=1)
_REQUESTS = flags.DEFINE_integer("requests", 32, "annotator objects per throughput batch",
                                 lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_string("image_size", "1024x2048", "size HxW of the annotator's "
                                  "synthetic images (full-resolution Cityscapes)")


def _parse_threads(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``."""
    try:
        threads = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserInputError(f"--threads {text!r} is not a comma-separated list of whole "
                             "numbers, e.g. 1,2") from None
    if not threads or min(threads) < 1:
        raise UserInputError(f"--threads {text!r} needs counts >= 1, e.g. 1,2")
    return threads


def main(argv: list[str]) -> None:
    """Runs the benchmarks and prints the table (and writes ``--json``)."""
    if len(argv) < 2:
        raise UserInputError("no model given; pass one or more .tflite files, e.g. "
                             "`dcme-keras benchmark model.tflite --threads 1,2`")
    threads = _parse_threads(_THREADS.value)
    # Imported here so that `dcme-keras benchmark --help` and flag errors stay fast.
    from dcme_keras.export import latency

    result = latency.run_benchmarks(argv[1:], threads, keras_path=_KERAS.value,
                                    warmup=_WARMUP.value, repeats=_REPEATS.value,
                                    requests=_REQUESTS.value,
                                    image_size=parse_hw(_IMAGE_SIZE.value))
    print(latency.format_table(result))
    if _JSON.value:
        print(f"wrote {latency.write_json(result, _JSON.value)}")
