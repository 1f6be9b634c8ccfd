"""``dcme-keras train``: train a network, ``train dcme ...`` or ``train annotator ...``.

    dcme-keras train dcme --data_dir /tmp/tfds --preset tiny --model_dir /tmp/dcme
    dcme-keras train annotator --data_dir /tmp/tfds --model_dir /tmp/annotator

``dcme-keras train <network> --help`` lists the flags of one trainer. Each network's
trainer is its own module, ``dcme_keras.cli.train_<network>``; only the chosen one is
imported, so the two trainers' flags (both have ``--data_dir``, ``--epochs``, ...) never
meet in one process.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping

#: network -> one-line help. The trainer is ``dcme_keras.cli.train_<network>``.
NETWORKS: dict[str, str] = {
    "dcme": "the DCME instance-segmentation network (paper 000)",
    "annotator": "the extreme-points annotator U-Net (paper 003)",
}

_HELP = ("-h", "--help", "-help", "help")


def _usage(command: str, choices: Mapping[str, str]) -> str:
    width = max(map(len, choices))
    rows = "\n".join(f"  {k:<{width}}  {v}" for k, v in choices.items())
    return (f"usage: {command} <network> [--flags]\n\nnetworks:\n{rows}\n\n"
            f"`{command} <network> --help` lists a network's flags.")


def route(argv: list[str], choices: Mapping[str, str], module_prefix: str) -> None:
    """Run the module that the first argument names, with the remaining flags.

    ``argv[1]`` picks ``<module_prefix><choice>``, which has a ``main(argv)`` and defines
    its absl flags at import or in a ``define_flags()`` function. Exits like
    ``dcme-keras`` itself: 0 after help, 2 with a one-line reason on bad input.

    Args:
      argv: ``[command, choice, --flags...]``, e.g. ``["dcme-keras train", "dcme",
        "--epochs=2"]``.
      choices: choice -> one-line help.
      module_prefix: e.g. ``"dcme_keras.cli.train_"``.
    """
    command = argv[0]
    if len(argv) < 2 or argv[1] in _HELP:
        print(_usage(command, choices))
        sys.exit(0 if len(argv) >= 2 else 2)
    choice = argv[1]
    if choice not in choices:
        print(f"{command}: error: unknown network {choice!r}; use one of "
              f"{', '.join(choices)}\n\n{_usage(command, choices)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"{module_prefix}{choice}")
    define_flags = getattr(module, "define_flags", None)
    if define_flags is not None:
        define_flags()
    if any(a in _HELP[:3] for a in argv[2:]):
        # absl's own --help lists the flags of __main__ only, not the chosen module's.
        from absl import flags

        print(f"usage: {command} {choice} [--flags]\n\n{(module.__doc__ or '').strip()}\n")
        print(flags.FLAGS.module_help(module))
        sys.exit(0)
    from dcme_keras.cli import common

    common.run_subcommand(module.main, [f"{command} {choice}"] + argv[2:])


def run(argv: list[str]) -> None:
    """Entry point: ``argv`` is ``["dcme-keras train", network, --flags...]``."""
    route(argv, NETWORKS, "dcme_keras.cli.train_")


if __name__ == "__main__":
    run(["dcme-keras train"] + sys.argv[1:])
