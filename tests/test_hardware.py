"""Hardware names for figure captions."""

import subprocess
import sys

from dcme_keras import hardware


def test_describe_names_the_cpu_cores_and_threads():
    text = hardware.describe(threads=1)
    assert text.startswith(("CPU ", "GPU "))
    if text.startswith("CPU "):
        assert hardware.cpu_name() in text and text.endswith(", 1 thread")
        assert hardware.describe(threads=2).endswith(", 2 threads")


def test_describe_does_not_import_tensorflow():
    code = ("import sys; from dcme_keras import hardware; hardware.describe(2); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
