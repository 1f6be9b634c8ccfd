"""The one loader of the package's ``.keras`` files, and what a file holds without loading it.

Every command that reads a ``.keras`` model (``evaluate dcme``, ``annotate``, ``export``,
``benchmark``) loads it through :func:`load_model`, in Keras' safe mode. It turns into a
:class:`~dcme_keras.errors.UserInputError` only the errors that mean *the file* is wrong
(missing, not a zip archive, no model config, a class this package does not define, code
that safe mode refuses, a model of the other kind) and chains the original error as the
cause. Any other error, e.g. a bug in one of our layers' ``build``, propagates unchanged.

Reading a file's stored config (:func:`read_archive_config`, :func:`archive_output_names`)
needs neither TensorFlow nor Keras.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from dcme_keras import keys
from dcme_keras.errors import UserInputError

#: Model kind -> (output names it must have, what the user should pass instead).
KINDS: dict[str, tuple[frozenset[str], str]] = {
    "dcme": (frozenset({keys.DCME, keys.GRID}), "a model from `dcme-keras train dcme`"),
    "annotator": (frozenset({keys.MASK}), "a model from `dcme-keras train annotator`"),
}
_KIND_NAMES = {"dcme": "a DCME network", "annotator": "an annotator"}

#: Starts of Keras' messages for a config naming a class or function that nothing
#: registered: the file was written by other code (or another version of this package).
_UNKNOWN_OBJECT_MESSAGES = ("Could not locate ", "Cannot deserialize object of type",
                            "Could not deserialize ")


def read_archive_config(path: str | os.PathLike) -> dict[str, Any]:
    """The model config stored in a ``.keras`` archive (a zip holding ``config.json``).

    Args:
      path: an existing file.

    Returns:
      The parsed ``config.json``: ``{"class_name": ..., "config": {...}, ...}``.

    Raises:
      UserInputError: when the file is no zip or holds no readable ``config.json``; the
        zip or JSON error is chained as the cause.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path} is not a Keras model archive; pass a .keras file "
                             "saved with model.save('M.keras')") from err


def archive_output_names(config: dict[str, Any]) -> list[str] | None:
    """Output names of a functional model's stored config, sorted; None when it has none.

    Args:
      config: what :func:`read_archive_config` returns.
    """
    outputs = config.get("config", {}).get("output_layers") if isinstance(config, dict) else None
    return sorted(outputs) if isinstance(outputs, dict) else None


def check_kind(path: str | os.PathLike, config: dict[str, Any], kind: str) -> None:
    """Refuses a stored model whose outputs are not those of ``kind``.

    Args:
      path: the file, for the message.
      config: its stored config (:func:`read_archive_config`).
      kind: a key of :data:`KINDS`.

    Raises:
      UserInputError: naming the outputs found and the model to pass instead.
    """
    required, advice = KINDS[kind]
    names = archive_output_names(config)
    if names is None or not required <= set(names):
        wanted = " and ".join(repr(n) for n in sorted(required))
        raise UserInputError(f"{path} is not {_KIND_NAMES[kind]} (its outputs are {names}, "
                             f"not {wanted}); pass {advice}")


def load_model(path: str | os.PathLike, *, kind: str | None = None, compile: bool = False):
    """Loads a ``.keras`` model this package wrote, in Keras' safe mode.

    Importing :mod:`dcme_keras` has registered the package's layers, losses and metrics
    by the time Keras runs (see :mod:`dcme_keras.registration`).

    Example:
      >>> model = load_model("runs/dcme/best.keras", kind="dcme")

    Args:
      path: the ``.keras`` file (``~`` is expanded).
      kind: ``"dcme"``, ``"annotator"`` (checked on the stored config before anything is
        built) or None for either.
      compile: restore the loss, metrics and optimizer too; the commands only predict.

    Returns:
      The ``keras.Model``: ``image [B, H, W, 3]`` -> ``{keys.DCME, keys.GRID}`` for a DCME
      network, ``image [B, S, S, 4 or 3]`` -> ``{keys.MASK}`` for an annotator.

    Raises:
      UserInputError: for a missing file, a file that is no ``.keras`` zip, a class this
        package does not define, code safe mode refuses, or a model of another kind. The
        original error is the ``__cause__``. Other errors propagate unchanged.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind {kind!r} is none of {sorted(KINDS)} or None")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"model file {path} is not an existing .keras file; pass "
                             f"{KINDS[kind][1] if kind else 'a .keras file training saved'}")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise UserInputError(f"{path} is not a .keras file (a zip archive); pass a model "
                             "saved with model.save('M.keras')")
    config = read_archive_config(path)
    if kind is not None:
        check_kind(path, config, kind)
    import keras

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (zipfile.BadZipFile, OSError) as err:  # a damaged archive or weights file
        reason = _first_line(err)
        raise UserInputError(f"{path} is damaged ({reason}); save or copy it again") from err
    except (TypeError, ValueError) as err:
        reason = None if isinstance(err, UserInputError) else _foreign_content(err)
        if reason is None:
            raise
        raise UserInputError(f"{path} is not a model this version of dcme_keras can load "
                             f"({_first_line(reason)}); pass a model saved by dcme_keras"
                             ) from err


def _foreign_content(err: BaseException) -> BaseException | None:
    """The error in ``err``'s chain that says the file names unknown or unsafe content.

    Keras re-raises a nested layer's failure as the outer model's "could not be
    deserialized properly" TypeError, with the original as ``__context__``, so the whole
    chain is searched. None when no error in it is about the file's content.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        message = str(err)
        if isinstance(err, (TypeError, ValueError)) and (
                message.startswith(_UNKNOWN_OBJECT_MESSAGES) or "safe_mode" in message):
            return err
        err = err.__cause__ or err.__context__
    return None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__
