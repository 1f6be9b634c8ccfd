"""`dcme-keras benchmark`: the table and JSON on tiny models (no timing asserts)."""

import json
import subprocess
import sys

import pytest

from dcme_keras.export import latency


@pytest.fixture(scope="module")
def models(cli_exports):
    """The float32 exports of ``cli_exports`` (conftest.py), checked to exist."""
    tmp, results = cli_exports
    assert results[("annotator", "float32")][0] == 0 and results[("dcme", "float32")][0] == 0
    return tmp, {"ann": tmp / "ann_float32.tflite", "dcme": tmp / "dcme_float32.tflite"}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dcme_keras.cli.main", "benchmark",
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_prints_the_table_with_keras_and_paper_rows(models):
    tmp, paths = models
    out = _cli(paths["ann"], "--threads", "1", "--keras", tmp / "ann.keras", "--warmup", "1",
               "--repeats", "2", "--requests", "2", "--image_size", "128x256",
               "--json", tmp / "bench.json")
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout
    for text in ("synthetic data", "threads 1", "ann_float32.tflite", "annotator", "float32",
                 "Keras (tf.function)", "paper 003", "140 ms", "4416 ms", "objects/s"):
        assert text in table, text
    result = json.loads((tmp / "bench.json").read_text())
    (row,) = result["rows"]
    assert row["threads"] == 1 and row["kind"] == "annotator"
    assert row["total"]["p50_ms"] > 0 and row["invoke"]["p90_ms"] >= row["invoke"]["p50_ms"]
    assert set(row["overhead"]) == {"p50_ms", "p90_ms", "mean_ms", "cpu_p50_ms"}
    assert row["keras_ratio"] > 0 and row["peak_mib"] > 0 and row["throughput"] > 0
    assert row["input_shape"] == [1, 64, 64, 4] == result["keras"]["1"]["input_shape"]


def test_dcme_benchmark_times_invoke_and_decode(models):
    _, paths = models
    row = latency.benchmark_tflite(paths["dcme"], 1, warmup=1, repeats=2)
    assert row["kind"] == "dcme" and row["throughput_unit"] == "images/s"
    assert set(row) >= {"invoke", "decode", "decode_reference", "total", "peak_mib",
                        "op_report"}
    assert row["reference_instances"] >= 1  # exact vectors of a synthetic frame decode
    assert row["input_shape"] == [1, 64, 128, 3]


def test_annotator_requests_are_objects_with_their_extreme_points():
    requests = latency.annotator_requests(3, (128, 256))
    assert len(requests) == 3
    for image, points in requests:
        assert image.shape == (128, 256, 3) and points.shape == (4, 2)
        left, top, right, bottom = points
        assert left[0] <= top[0] <= right[0] and top[1] <= left[1] <= bottom[1]


@pytest.mark.parametrize("args,message", [
    (["--threads", "0"], "--threads '0' needs counts >= 1"),
    (["--threads", "one"], "not a comma-separated list"),
    ([], "no model given"),
])
def test_bad_arguments_are_one_line_errors(models, args, message):
    _, paths = models
    model = [] if not args else [paths["ann"]]
    out = _cli(*model, *args)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("dcme-keras benchmark: error: ") and message in line


def test_a_missing_model_file_is_named(models, tmp_path):
    out = _cli(tmp_path / "missing.tflite", "--threads", "1")
    assert out.returncode == 2
    assert "missing.tflite does not exist" in out.stderr.strip().splitlines()[-1]
