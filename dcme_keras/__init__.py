"""dcme-keras: DCME instance segmentation and an extreme-points annotator for Keras.

Importing the package is cheap: it pulls in neither TensorFlow nor Keras. Import the
submodules you need (``dcme_keras.dcme.codec_np`` is NumPy-only, ``dcme_keras.runtime``
runs TFLite without TensorFlow).

It still registers every custom Keras object: as soon as Keras is imported (before or after
this package), the layers, losses and metrics modules are imported too, so
``keras.models.load_model(path)`` reads any ``.keras`` file the package writes, in safe
mode. See :mod:`dcme_keras.registration`.
"""

from dcme_keras import registration as _registration

__version__ = "0.1.0"

_registration.install()
