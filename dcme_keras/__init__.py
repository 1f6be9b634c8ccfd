"""dcme-keras: DCME instance segmentation and an extreme-points annotator for Keras.

Importing the package is cheap: it pulls in neither TensorFlow nor Keras. Import the
submodules you need (``dcme_keras.dcme.codec_np`` is NumPy-only, ``dcme_keras.runtime``
runs TFLite without TensorFlow).
"""

__version__ = "0.1.0"
