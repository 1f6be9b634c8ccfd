"""What a measurement ran on, so every published figure can name its hardware."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, or what ``platform`` knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow sees; empty when TensorFlow is not imported.

    Never imports TensorFlow itself, so TF-free code (the runtime, benchmarks of
    ``.tflite`` files) can call it for free.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]


def describe(threads: int | None = None) -> str:
    """One line for captions: the GPUs in use, else the CPU, its cores and the threads.

    Examples: ``"GPU NVIDIA H100 80GB HBM3"``,
    ``"CPU Intel(R) Xeon(R) Processor, 2 cores, 1 thread"``.
    """
    gpus = gpu_names()
    if gpus:
        return "GPU " + ", ".join(gpus)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"CPU {cpu_name()}, {cores} cores"
    return f"{text}, {threads} thread{'s' if threads != 1 else ''}" if threads else text
