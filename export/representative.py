"""Calibration and parity data for the export stage: real 0-255 images and object crops.

Both come from the package's own data code, so they are exactly what the networks see:

* frames from a Cityscapes-layout folder (``dcme-keras synth`` output or the real
  dataset) through :func:`dcme_keras.data.pipelines.cityscapes_frames`, or synthetic
  frames rendered in memory by :func:`dcme_keras.data.synthetic.render_frame` with a
  fixed seed;
* annotator inputs through :func:`dcme_keras.data.pipelines.annotator_examples_np`
  (extreme points, crop, point channel: the tool's own preprocessing);
* DCME inputs as RGB 0..255 at the network's size, resized like
  :func:`dcme_keras.inference.model_outputs` resizes.

Full-int8 calibration must see real 0-255 images (PITFALLS: the input range comes from
the representative data, and other ranges clip bright pixels). Parity data is rendered
with :data:`PARITY_SEED`, which no calibration uses, so the check is held out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dcme_keras import inference, keys
from dcme_keras.classes import ANNOTATOR_CLASSES
from dcme_keras.data import pipelines, synthetic
from dcme_keras.errors import UserInputError

#: ``--representative`` value that renders synthetic frames instead of reading a folder.
SYNTHETIC = "synthetic"
#: Seed of synthetic calibration frames.
CALIBRATION_SEED = 0
#: Seed of the held-out parity frames; differs from every calibration seed.
PARITY_SEED = 1
#: Size of synthetic frames for the annotator [pixels]: half-resolution Cityscapes,
#: what ``dcme-keras synth`` writes by default.
ANNOTATOR_FRAME_SIZE = synthetic.DEFAULT_SIZE
#: Split of a Cityscapes-layout folder that calibration reads.
CALIBRATION_SPLIT = "train"


def synthetic_frames(seed: int, size_hw: tuple[int, int]) -> Iterator[dict]:
    """Endless synthetic frames, frame ``i`` drawn from ``np.random.default_rng([seed, i])``.

    Args:
      seed: base seed.
      size_hw: (H, W) [pixels] of the frames.

    Yields:
      Frames as :func:`dcme_keras.data.pipelines.cityscapes_frames` yields them:
      ``{keys.IMAGE_ID: str, keys.IMAGE: [H, W, 3] uint8 RGB, keys.INSTANCE_IDS: [H, W]
      uint16, keys.OBJECTS: dict}``.
    """
    from tfds_cityscapes.cityscapes_instances import cityscapes_instances_dataset_builder as b

    for i in itertools.count():
        image, annotation = synthetic.render_frame(np.random.default_rng([seed, i]), size_hw)
        ids, _ = synthetic.rasterize(annotation)
        name = f"synthetic_{seed}_{i}"
        yield {keys.IMAGE_ID: name, keys.IMAGE: image, keys.INSTANCE_IDS: ids,
               keys.OBJECTS: b.objects_from_polygons(annotation, ids, name=name)}


def check_source(source: str) -> None:
    """Raise unless ``source`` is :data:`SYNTHETIC` or an existing folder.

    Raises:
      UserInputError: naming both accepted forms.
    """
    if source != SYNTHETIC and not Path(source).is_dir():
        raise UserInputError(
            f"--representative {source!r} is neither a folder nor {SYNTHETIC!r}; pass a "
            "Cityscapes-layout folder (e.g. `dcme-keras synth --out DIR`) or synthetic")


def frames(source: str, *, size_hw: tuple[int, int], seed: int = CALIBRATION_SEED
           ) -> Iterator[dict]:
    """Frames of ``--representative``: a Cityscapes-layout folder or ``"synthetic"``.

    Args:
      source: a folder with ``leftImg8bit/`` and ``gtFine/`` (its ``train`` split is
        read), or :data:`SYNTHETIC`.
      size_hw: (H, W) [pixels] of synthetic frames; a folder's frames keep their size.
      seed: base seed of synthetic frames.

    Yields:
      Frames as :func:`synthetic_frames` yields them; a folder's run out at its end.

    Raises:
      UserInputError: for a source that is neither a folder nor ``"synthetic"``.
    """
    check_source(source)
    if source == SYNTHETIC:
        return synthetic_frames(seed, size_hw)
    return pipelines.cityscapes_frames(source, CALIBRATION_SPLIT)


def annotator_samples(frame_iter: Iterator[dict], count: int, *, size: int, channels: int,
                      radius: int, margin: float,
                      classes: Sequence[str] = ANNOTATOR_CLASSES
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` annotator examples (one per object) of some frames.

    Args:
      frame_iter: frames as :func:`frames` yields them.
      count: number of examples, at least 1.
      size: S, the network's input side [pixels].
      channels: 4 (RGB + point channel) or 3 (RGB only).
      radius: point circle radius [pixels of the S x S crop].
      margin: crop margin around the points' box, a fraction of its size.
      classes: Cityscapes class names of the objects to take.

    Returns:
      inputs: [N, S, S, channels] float32, RGB / 255 then the point channel;
      targets: [N, S, S, 1] float32 0/1. N is ``count``, or fewer when a folder runs out.

    Raises:
      UserInputError: when the frames hold no object at all.
    """
    inputs, targets, have = [], [], 0
    for frame in frame_iter:
        x, y = pipelines.annotator_examples_np(
            frame[keys.IMAGE], frame[keys.INSTANCE_IDS], frame[keys.OBJECTS], classes=classes,
            size=size, radius=radius, margin=margin, points=channels == 4)
        inputs.append(x)
        targets.append(y)
        have += len(x)
        if have >= count:
            break
    if not have:
        raise UserInputError("the representative frames hold no annotator object; pass a "
                             "folder with annotated objects, or synthetic")
    return np.concatenate(inputs)[:count], np.concatenate(targets)[:count]


def dcme_samples(frame_iter: Iterator[dict], count: int, *, size_hw: tuple[int, int]
                 ) -> Iterator[np.ndarray]:
    """DCME network inputs: frames resized to the network's size, RGB 0..255.

    Args:
      frame_iter: frames as :func:`frames` yields them.
      count: the most inputs to yield.
      size_hw: (H, W) [pixels], the network's input size.

    Yields:
      [H, W, 3] float32 in 0..255.
    """
    for frame in itertools.islice(frame_iter, count):
        # The resize of the Keras inference path, so calibration sees what runs later.
        yield inference._resize_image(frame[keys.IMAGE], tuple(size_hw)).astype(np.float32)


def representative_dataset(kind: str, source: str, count: int, *,
                           input_shape: tuple[int, ...], radius: int, margin: float,
                           classes: Sequence[str] = ANNOTATOR_CLASSES
                           ) -> Callable[[], Iterator[np.ndarray]]:
    """The ``representative`` callable of :func:`dcme_keras.export.convert.convert`.

    Args:
      kind: ``"annotator"`` or ``"dcme"``.
      source: a Cityscapes-layout folder or :data:`SYNTHETIC` (seed
        :data:`CALIBRATION_SEED`).
      count: calibration samples: objects (annotator) or frames (DCME).
      input_shape: the model's input ``(H, W, C)``.
      radius, margin, classes: the annotator's point radius, crop margin and classes.

    Returns:
      A function that yields ``[1, H, W, C]`` float32 inputs, as the model sees them.
    """
    height, width, channels = (int(v) for v in input_shape)

    def annotator() -> Iterator[np.ndarray]:
        frame_iter = frames(source, size_hw=ANNOTATOR_FRAME_SIZE)
        inputs, _ = annotator_samples(frame_iter, count, size=height, channels=channels,
                                      radius=radius, margin=margin, classes=classes)
        return (x[None] for x in inputs)

    def dcme() -> Iterator[np.ndarray]:
        frame_iter = frames(source, size_hw=(height, width))
        return (x[None] for x in dcme_samples(frame_iter, count, size_hw=(height, width)))

    return annotator if kind == "annotator" else dcme
