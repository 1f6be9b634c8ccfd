"""Writing outputs so that a failure never leaves anything half-written.

Every command that produces files writes them into a temporary sibling first and moves
them into place only once everything succeeded (``os.replace`` is atomic on one
filesystem).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    Works for a file or a directory: the caller creates whatever it wants at the yielded
    path. On an exception the temporary is removed and ``path`` is left untouched.

    Example:
      >>> with atomic_path("out.json") as tmp:
      ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        if tmp.exists():
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def read_rgb(path: str | os.PathLike, fix: str = "pass an existing PNG or JPEG file", *,
             what: str = "image") -> np.ndarray:
    """An image file as ``[H, W, 3]`` uint8 RGB.

    Args:
      path: the image file.
      fix: what the user should do, appended to the error message.
      what: how the message names the file, e.g. ``"input image"``.

    Raises:
      UserInputError: for a missing or undecodable file, naming it and ``fix``.
    """
    import cv2

    from dcme_keras.errors import UserInputError

    path = Path(path)
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        raise UserInputError(f"cannot read the {what} {path}; {fix}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
