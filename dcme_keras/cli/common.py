"""Shared plumbing for subcommands: error reporting, routing to a network's module and
common flag parsers."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from dcme_keras.errors import UserInputError


def run_subcommand(main: Callable[[list[str]], int | None], argv: list[str]) -> None:
    """Parse absl flags from ``argv`` and run ``main``.

    A :class:`UserInputError` (and absl's own flag errors) becomes one line on stderr and
    exit status 2; any other exception keeps its traceback and exits 1.
    """

    def wrapped(args):
        try:
            return main(args)
        except UserInputError as err:
            print(f"{argv[0]}: error: {err}", file=sys.stderr)
            sys.exit(2)

    def parse_flags(args):
        try:
            remaining = flags.FLAGS(args)
            if not flags.FLAGS["verbosity"].present:
                # TFDS and Keras log at INFO/WARNING through absl; --verbosity=0 shows them.
                logging.set_verbosity(logging.ERROR)
            return remaining
        except flags.Error as err:
            # absl would print two lines and exit 1; keep the one-line, exit-2 contract.
            print(f"{argv[0]}: error: {err}; see `{argv[0]} --help`", file=sys.stderr)
            sys.exit(2)

    app.run(wrapped, argv=argv, flags_parser=parse_flags)


def define_once(define: Callable[[], None]) -> Callable[[], None]:
    """Decorate a command's ``define_flags`` so it defines its absl flags once per process.

    The routed subcommands (``train dcme`` and ``train annotator``, ``evaluate ...``)
    share flag names, so each defines its flags only when it runs, and absl refuses a
    flag defined twice. The flag is set before the definitions, so a failure midway is
    not retried either.
    """
    done = False

    @functools.wraps(define)
    def define_flags() -> None:
        nonlocal done
        if done:
            return
        done = True
        define()

    return define_flags


def train_main(argv: list[str], command: str, config_from_flags: Callable[[], Any],
               train: Callable[[Any], Any], written: str) -> None:
    """The body of ``dcme-keras <command>``: train as the flags say, then say where.

    Args:
      argv: absl's remaining arguments; anything after the program name is refused.
      command: the command's words, e.g. ``"train dcme"``, for the error message.
      config_from_flags: builds the run's config from the parsed flags.
      train: runs (or resumes) training on that config; returns a Keras ``History``.
      written: what ``model_dir`` receives, e.g. ``"best.keras, last.keras"``.
    """
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; {command} takes only "
                             "--flags")
    config = config_from_flags()
    history = train(config)
    model_dir = os.fspath(Path(config.model_dir).expanduser())
    ran = f"epochs {history.epoch[0]}..{history.epoch[-1]}" if history.epoch else "no epoch"
    print(f"ran {ran} of {config.epochs}; {model_dir}: {written}")


def parse_hw(text: str) -> tuple[int, int]:
    """Parse ``"512x1024"`` into ``(512, 1024)`` (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserInputError(f"size {text!r} is not HxW, e.g. 512x1024") from None
    if h <= 0 or w <= 0:
        raise UserInputError(f"size {text!r} must be positive, e.g. 512x1024")
    return h, w


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
    run_subcommand(module.main, [f"{command} {choice}"] + argv[2:])
