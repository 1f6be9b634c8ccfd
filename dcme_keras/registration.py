"""Registers the package's Keras objects as soon as Keras is importable, at no import cost.

``keras.models.load_model`` looks custom classes up by their registered name
(``"dcme_keras>DCMEHead"``), so the modules that define them must have run before a
``.keras`` file is read. Importing them from ``dcme_keras/__init__.py`` directly would pull
TensorFlow into every ``import dcme_keras``, which the TFLite runtime
(:mod:`dcme_keras.runtime`) and the NumPy codec must not do. Instead:

* if Keras is already imported, the registering modules are imported right away;
* otherwise a finder on ``sys.meta_path`` waits for the first import of ``keras`` (or of
  ``tensorflow``, which imports Keras half-way through its own ``__init__``) and imports
  them once the outermost of those imports has finished, so neither sees a half-initialised
  TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: The modules whose import registers a Keras object (``register_keras_serializable``):
#: the layers (``BackbonePreprocessing``, ``DCMEHead``, ``GridClassifier``), the losses a
#: compiled model carries and the metrics. The first of them to be imported triggers the
#: registration from its own ``import keras`` line, while it is still half-initialised,
#: so none of them may take names from another one at import time
#: (``from dcme_keras.layers import X`` at module level).
REGISTERING_MODULES = ("dcme_keras.layers", "dcme_keras.losses", "dcme_keras.metrics")

_WATCHED = ("keras", "tensorflow")


def register_keras_objects() -> None:
    """Imports every module that registers a Keras object with ``dcme_keras``.

    Idempotent: a second call finds the modules in ``sys.modules``.
    """
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _RegisterAfterKerasImport(importlib.abc.MetaPathFinder):
    """Wraps the loaders of ``keras`` and ``tensorflow`` to register once both are done."""

    def __init__(self) -> None:
        self._depth = 0  # watched imports currently executing (TF imports Keras inside)

    def find_spec(self, fullname, path, target=None):
        if fullname not in _WATCHED or fullname in sys.modules:
            return None
        sys.meta_path.remove(self)  # let the real finders answer, without recursing here
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            self._depth += 1
            try:
                exec_module(module)
            finally:
                self._depth -= 1
            if self._depth == 0 and "keras" in sys.modules:
                self.uninstall()
                register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    """Registers now if Keras is loaded, else on the first import of Keras or TensorFlow."""
    if "keras" in sys.modules:
        register_keras_objects()
        return
    if not any(isinstance(finder, _RegisterAfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterKerasImport())
