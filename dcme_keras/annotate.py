"""The extreme-points annotator (paper 003) on the Keras side: the public names in one place.

Each lives in the module of its concern:

* :mod:`dcme_keras.models.annotator`: the network and its ``config.json``:
  :class:`AnnotatorConfig`, :func:`read_config`, :func:`write_config`,
  :func:`build_annotator`, :func:`make_loss`, :func:`compile_annotator`;
* :mod:`dcme_keras.keras_annotator`: a ``.keras`` model behind the runtime's annotator:
  :class:`KerasModel`, :class:`KerasAnnotator`, :func:`inspect_model`,
  :func:`open_annotator`;
* :mod:`dcme_keras.evaluate_annotator`: mask quality and speed:
  :func:`evaluate_annotator`, :func:`iter_objects`, :func:`iter_folder_objects`,
  :func:`jitter_clicks`, :func:`iou_scores`, :func:`time_inference`,
  :func:`format_tables`;
* :mod:`dcme_keras.figures`: :func:`border_histogram_figure` (paper 003, Fig. 3).

Example:
  >>> from dcme_keras import annotate
  >>> annotator = annotate.open_annotator("runs/annotator/best.keras")
  >>> print(annotate.format_tables(annotate.evaluate_annotator(annotator, "/tmp/tfds")))
"""

from dcme_keras.evaluate_annotator import (REAL_MIN_AREA, evaluate_annotator, format_tables,
                                           iou_scores, iter_folder_objects, iter_objects,
                                           jitter_clicks, time_inference)
from dcme_keras.figures import border_histogram_figure
from dcme_keras.keras_annotator import (MODEL_SUFFIXES, KerasAnnotator, KerasModel,
                                        inspect_model, open_annotator)
from dcme_keras.models.annotator import (CONFIG_FILE, KIND, LOSSES, MONITOR, POINT_MODE,
                                         AnnotatorConfig, build_annotator, compile_annotator,
                                         config_path, make_loss, read_config, write_config)

__all__ = [
    "CONFIG_FILE", "KIND", "LOSSES", "MODEL_SUFFIXES", "MONITOR", "POINT_MODE",
    "REAL_MIN_AREA", "AnnotatorConfig", "KerasAnnotator", "KerasModel",
    "border_histogram_figure", "build_annotator", "compile_annotator", "config_path",
    "evaluate_annotator", "format_tables", "inspect_model", "iou_scores",
    "iter_folder_objects", "iter_objects", "jitter_clicks", "make_loss", "open_annotator",
    "read_config", "time_inference", "write_config",
]
