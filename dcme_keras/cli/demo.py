"""``dcme-keras demo``: the whole pipeline on synthetic data, ending in ``report.md``.

    dcme-keras demo --workdir runs/demo            # 11 minutes measured on 2 CPU cores
    dcme-keras demo --workdir runs/quick --quick   # 2.5 minutes, every artifact

Synthesizes Cityscapes-layout frames, builds the TFDS dataset, trains the annotator
(paper preset) and the DCME network (tiny preset), evaluates both with the official
metrics, exports int8 and float16 TFLite, benchmarks them on the CPU, and writes
``<workdir>/report.md`` with the tables and figures (see ``dcme_keras.demo``).
"""

from __future__ import annotations

import time

from absl import flags

from dcme_keras import demo

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "output folder of the demo")
_QUICK = flags.DEFINE_bool("quick", False, "tiny sizes: about 3 minutes, every artifact")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for the benchmark rows",
                                lower_bound=1)


def main(argv: list[str]) -> int:
    """Run the demo and print where the report is."""
    del argv
    start = time.perf_counter()
    report = demo.run_demo(_WORKDIR.value, quick=_QUICK.value, threads=_THREADS.value)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; report: {report}")
    return 0
