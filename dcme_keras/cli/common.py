"""Shared plumbing for subcommands: error reporting and common flag parsers."""

from __future__ import annotations

import sys
from collections.abc import Callable

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


def parse_hw(text: str) -> tuple[int, int]:
    """Parse ``"512x1024"`` into ``(512, 1024)`` (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserInputError(f"size {text!r} is not HxW, e.g. 512x1024") from None
    if h <= 0 or w <= 0:
        raise UserInputError(f"size {text!r} must be positive, e.g. 512x1024")
    return h, w
