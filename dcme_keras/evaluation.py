"""Cityscapes instance AP through the official evaluator, and the paper's experiments.

The public names of the evaluation, in one place; each lives in the module of its
concern:

* :mod:`dcme_keras.cityscapes_eval`: the results format and the official evaluator
  (:func:`write_cityscapes_results`, :func:`evaluate_predictions`, ground-truth files);
* :mod:`dcme_keras.oracles`: the experiments of paper 000, Sec. V:
  :func:`evaluate_outputs` (Table I, left), :func:`gt_oracle` (Table I, right),
  :func:`instance_oracle` (Tables II and III), :func:`class_oracle` (Table IV) and
  :func:`detection_accuracy` (Table V), and its in-memory twins for training runs,
  :func:`instance_detections` and :func:`dcme_scores`;
* :mod:`dcme_keras.tables`: :func:`format_table` and :func:`save_result`.

Example:
  >>> from dcme_keras import evaluation
  >>> print(evaluation.format_table(evaluation.gt_oracle("cityscapes", "val", 0.5)))
"""

from dcme_keras.cityscapes_eval import (evaluate_predictions, frame_stem, gt_instance_files,
                                        image_path, read_instance_ids,
                                        write_cityscapes_results)
from dcme_keras.oracles import (Outputs, class_oracle, dcme_scores, detection_accuracy,
                                evaluate_outputs, gt_oracle, instance_detections,
                                instance_oracle)
from dcme_keras.tables import format_table, save_result

__all__ = [
    "Outputs", "class_oracle", "dcme_scores", "detection_accuracy", "evaluate_outputs",
    "evaluate_predictions", "format_table", "frame_stem", "gt_instance_files", "gt_oracle",
    "image_path", "instance_detections", "instance_oracle", "read_instance_ids",
    "save_result",
    "write_cityscapes_results",
]
