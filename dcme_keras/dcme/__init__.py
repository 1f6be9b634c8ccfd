"""DCME: the Distance to Center of Mass Encoding of instances (paper 000).

* ``codec_np``: encode and decode DCME maps in NumPy / OpenCV, without TensorFlow (for
  evaluation, the TFLite runtime and annotation tools).
* ``codec``: the same encoder in TensorFlow, for tf.data pipelines.

Import the submodule you need; this package imports neither.
"""
