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
from collections.abc import Iterator, Sequence
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
    with atomic_files([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_files(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path beside each of ``paths``; move them all into place at the end.

    For outputs that belong together (a model and its sidecar, one file per image): when
    the block raises, every temporary is removed, no target is touched and folders made
    for the targets are removed again if empty. When moving one of them fails, the targets
    already moved that did not exist before are removed, so no partial set stays behind.
    Each target may be a file or a directory, as with :func:`atomic_path`.

    Example:
      >>> with atomic_files(["m.tflite", "m.tflite.json"]) as (model, sidecar):
      ...     model.write_bytes(flatbuffer)
      ...     sidecar.write_text("{}")

    Args:
      paths: distinct target paths.

    Yields:
      The temporary paths, in the order of ``paths``.
    """
    paths = [Path(p) for p in paths]
    if len(set(paths)) != len(paths):
        raise ValueError(f"atomic_files got a target twice: {sorted(map(str, paths))}")
    made_dirs = [d for d in dict.fromkeys(d for p in paths for d in (p.parent, *p.parent.parents))
                 if not d.exists()]
    tmp_dirs: list[Path] = []
    done = False
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp_dirs.append(Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)))
        yield [d / p.name for d, p in zip(tmp_dirs, paths)]
        _move_all([d / p.name for d, p in zip(tmp_dirs, paths)], paths)
        done = True
    finally:
        for tmp_dir in tmp_dirs:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        if not done:
            for folder in sorted(made_dirs, key=lambda d: len(d.parts), reverse=True):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty


def _move_all(tmps: Sequence[Path], paths: Sequence[Path]) -> None:
    """``os.replace`` each temporary onto its target; undo the new targets on failure."""
    placed = []
    try:
        for tmp, path in zip(tmps, paths):
            if not tmp.exists():
                continue
            existed = path.exists()
            if tmp.is_dir() and path.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
            if not existed:
                placed.append(path)
    except BaseException:
        for path in placed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


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
