"""Tiny models exported once per session through the real `dcme-keras export` command.

absl flags are process-global, so the CLI runs in subprocesses. To import TensorFlow
once per model rather than once per export, a driver process runs several
``dcme-keras export`` command lines one after another through the real entry point
(``dcme_keras.cli.main.run``), resetting the flags in between; the annotator's and the
DCME network's drivers run at the same time.
"""

import json
import subprocess
import sys

import pytest

from dcme_keras import annotate
from dcme_keras.data import synthetic
from dcme_keras.models.deeplab_dcme import build_deeplab_dcme
from dcme_keras.models.unet import build_unet_preset

#: Small enough for a fast test, large enough to hold a few objects of >= 100 px.
FRAME_SIZE = (128, 256)

_DRIVER = """
import contextlib, io, json, sys
from absl import flags
from dcme_keras.cli import main
results = {}
for name, args in json.loads(sys.argv[1]).items():
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main.run(["dcme-keras", "export", *args, "--noprogress"])
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code
    results[name] = [code, out.getvalue(), err.getvalue()]
print("RESULTS " + json.dumps(results))
"""


def _start(commands):
    """Run ``{name: export args}`` in one driver process; returns the Popen."""
    args = {name: [str(a) for a in cmd] for name, cmd in commands.items()}
    return subprocess.Popen([sys.executable, "-c", _DRIVER, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    out, err = proc.communicate(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, err[-3000:]
    return {name: tuple(result) for name, result in json.loads(lines[-1][8:]).items()}


@pytest.fixture(scope="session")
def cli_exports(tmp_path_factory):
    """``(folder, results)``: the folder holds ``ann.keras`` (U-Net tiny, 64x64x4, with a
    training ``config.json``: radius 2, margin 0.15, classes car and person; the int8
    export overrides the radius with 4),
    ``dcme.keras`` (DCME tiny, 64x128x3) and ``{ann,dcme}_{float32,int8}.tflite`` with
    sidecars; ``results[(kind, name)] = (exit code, stdout, stderr)`` for ``name`` in
    float32, int8 and ``refused`` (an int8 export the gate refuses)."""
    tmp = tmp_path_factory.mktemp("cli_export")
    build_unet_preset("tiny").save(tmp / "ann.keras")
    # A training run's record of the input encoding, which export copies to the sidecar.
    annotate.write_config(tmp, annotate.AnnotatorConfig(
        filters=4, size=64, point_radius=2, margin=0.15, classes=("car", "person")))
    build_deeplab_dcme("tiny", input_shape=(64, 128, 3)).save(tmp / "dcme.keras")
    synthetic.write_dataset(tmp / "synth", frames=2, size=FRAME_SIZE, progress=False)
    (tmp / "refused").mkdir()
    fast = ["--parity_samples", "8", "--calibration_samples", "8"]
    fast_dcme = ["--parity_samples", "1", "--calibration_samples", "2"]
    annotator = _start({
        "float32": ["--model", tmp / "ann.keras", "--out", tmp / "ann_float32.tflite", *fast],
        "int8": ["--model", tmp / "ann.keras", "--quantization", "int8", "--point_radius", "4",
                 "--representative", tmp / "synth", "--out", tmp / "ann_int8.tflite", *fast],
        # A drop is at least -100 points, so this limit refuses whatever the model does.
        "refused": ["--model", tmp / "ann.keras", "--quantization", "int8",
                    "--max_iou_drop=-101", "--out", tmp / "refused" / "ann.tflite", *fast],
    })
    dcme = _start({
        "float32": ["--model", tmp / "dcme.keras", "--out", tmp / "dcme_float32.tflite",
                    *fast_dcme],
        "int8": ["--model", tmp / "dcme.keras", "--quantization", "int8",
                 "--representative", "synthetic", "--out", tmp / "dcme_int8.tflite", *fast_dcme],
        # Detection accuracy drops at least -100 points: this limit refuses any model.
        "refused": ["--model", tmp / "dcme.keras", "--quantization", "int8",
                    "--representative", "synthetic", "--max_detection_drop=-101",
                    "--out", tmp / "refused" / "dcme.tflite", *fast_dcme],
    })
    results = {("annotator", k): v for k, v in _finish(annotator).items()}
    results.update({("dcme", k): v for k, v in _finish(dcme).items()})
    return tmp, results
