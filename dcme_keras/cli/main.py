"""Entry point of the ``dcme-keras`` command.

Each subcommand lives in its own module ``dcme_keras.cli.<name>`` that defines absl flags
and a ``main(argv)``. Only the chosen module is imported, so flags of different
subcommands never collide and ``dcme-keras --help`` does not import TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import sys

#: subcommand -> one-line help. The module is ``dcme_keras.cli.<subcommand>``.
SUBCOMMANDS: dict[str, str] = {
    "synth": "write synthetic Cityscapes-layout frames (the embedded default data)",
    "build": "build the cityscapes_instances TFDS dataset from a --manual_dir",
    "train": "train a network: `train dcme ...` or `train annotator ...`",
    "evaluate": "official Cityscapes instance AP, oracles and annotator metrics",
    "export": "export a .keras model to (quantized) TFLite",
    "benchmark": "CPU latency / throughput of a .tflite model against Keras and the papers",
    "annotate": "masks and polygons from extreme points or boxes",
    "demo": "run the whole pipeline on synthetic data and write a report",
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {k:<{width}}  {v}" for k, v in SUBCOMMANDS.items())
    return (f"usage: dcme-keras <subcommand> [--flags]\n\nsubcommands:\n{rows}\n\n"
            "`dcme-keras <subcommand> --help` lists a subcommand's flags.")


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits with the subcommand's status."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    sub = argv[1]
    if sub not in SUBCOMMANDS:
        print(f"dcme-keras: error: unknown subcommand {sub!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) buries the output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module = importlib.import_module(f"dcme_keras.cli.{sub}")
    if hasattr(module, "run"):
        # A router such as `train` picks its own sub-module from the next argument.
        module.run([f"dcme-keras {sub}"] + argv[2:])
        return
    if any(a in ("-h", "--help", "-help") for a in argv[2:]):
        # absl's own --help lists the flags of __main__ only, not the subcommand's.
        from absl import flags

        print(f"usage: dcme-keras {sub} [--flags]\n\n{(module.__doc__ or '').strip()}\n")
        print(flags.FLAGS.module_help(module))
        sys.exit(0)
    from dcme_keras.cli import common

    common.run_subcommand(module.main, [f"dcme-keras {sub}"] + argv[2:])


if __name__ == "__main__":
    run()
