"""TF-free inference for embedding: TFLite through ai-edge-litert, NumPy and OpenCV.

This module imports no TensorFlow, so a labeling tool can embed it without the training
stack: it needs ai-edge-litert, NumPy, OpenCV, SciPy, scikit-image, pycocotools and
cityscapesScripts' label table (the decoder, the polygons and the class ids are the
package's own NumPy modules, shared with the Keras path). A ``.tflite`` file comes with
the sidecar ``M.tflite.json`` that ``dcme-keras export`` writes (kind, input size and
normalisation, point radius and margin, classes, grid size, quantization, parity report,
package version).

Example:
  >>> annotator = ExtremePointsAnnotator("annotator_int8.tflite", num_threads=2)
  >>> mask = annotator.segment(image, [(10, 50), (40, 12), (90, 48), (45, 99)])
  >>> polygons = annotator.polygons(image, [(10, 50), (40, 12), (90, 48), (45, 99)])
  >>> segmenter = DCMESegmenter("dcme_float16.tflite", num_threads=2)
  >>> instances = segmenter.instances(image)  # [(mask [H, W] bool, label_id, score)]
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dcme_keras import extreme_points as ep
from dcme_keras import classes, inference, keys
from dcme_keras.errors import UserInputError

METADATA_FORMAT = "dcme-keras-tflite/1"
#: The annotator the package ships (int8, with its sidecar ``.json``), trained on synthetic
#: Cityscapes by ``tools/bundled_annotator.py``; the sidecar's ``provenance`` says how.
BUNDLED_ANNOTATOR = Path(__file__).resolve().parent / "models_data" / "annotator_int8.tflite"
#: Mask probability threshold of an annotator whose sidecar names none.
DEFAULT_THRESHOLD = 0.5


def metadata_path(tflite_path: str | Path) -> Path:
    """Sidecar metadata file of a ``.tflite``: ``M.tflite`` -> ``M.tflite.json``."""
    return Path(str(tflite_path) + ".json")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32; the models export logits (PITFALLS: int8 LOGISTIC)."""
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float32)))).astype(np.float32)


def load_metadata(tflite_path: str | Path) -> dict:
    """Read the sidecar ``M.tflite.json`` that ``dcme-keras export`` wrote.

    Raises:
      UserInputError: if it is missing or not ours.
    """
    meta_path = metadata_path(tflite_path)
    if not meta_path.is_file():
        raise UserInputError(
            f"{meta_path} is missing: a model needs the metadata sidecar that "
            "`dcme-keras export` writes next to it; re-export the model")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise UserInputError(f"{meta_path} is not valid JSON ({err}); re-export the "
                             "model") from None
    if meta.get("format") != METADATA_FORMAT:
        raise UserInputError(f"{meta_path} is not dcme-keras metadata (format "
                             f"{meta.get('format')!r}); re-export with `dcme-keras export`")
    return meta


@runtime_checkable
class InferenceModel(Protocol):
    """What the annotator and the segmenter need of a model: a named-output callable.

    :class:`TFLiteModel` satisfies it, and so does the Keras adapter
    :class:`dcme_keras.keras_annotator.KerasModel`, so :class:`ExtremePointsAnnotator` runs a
    ``.keras`` model through the very same pre- and post-processing as its export.

    Attributes:
      metadata: what the ``.tflite`` sidecar holds (at least ``kind``; ``point_radius``,
        ``margin``, ``point_mode`` for an annotator).
      input_shape: ``(1, H, W, C)``, the batch-1 input [pixels, channels].
      output_shapes: output name -> batch-1 shape, e.g. ``{"mask": (1, S, S, 1)}``.
      num_threads: CPU threads the model runs on.
    """

    metadata: dict[str, Any]
    input_shape: tuple[int, ...]
    output_shapes: dict[str, tuple[int, ...]]
    num_threads: int

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``[1, H, W, C]`` float32 -> named outputs ``[1, ...]`` (logits)."""

    def predict_on_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``[B, H, W, C]`` float32 -> named outputs ``[B, ...]``."""

    def replica(self) -> InferenceModel:
        """The same model for another thread (or a clear refusal)."""


class TFLiteModel:
    """A ``.tflite`` model with its metadata, run through LiteRT's interpreter (XNNPACK).

    It satisfies :class:`InferenceModel`.

    It also stands in for a Keras model in :func:`dcme_keras.inference.model_outputs`
    (through :meth:`predict_on_batch`), so Keras and TFLite share one post-processing.

    Args:
      tflite_path: the model file; its ``.json`` sidecar must sit next to it.
      num_threads: interpreter threads (PITFALLS: None behaves like 1).
      kind: the expected ``kind`` in the metadata, ``"annotator"`` or ``"dcme"``.

    Raises:
      UserInputError: for a missing file or sidecar, a model of another kind, a file
        that is no TFLite model, or a signature other than one ``image`` input.
    """

    def __init__(self, tflite_path: str | Path, *, num_threads: int = 1, kind: str):
        path = Path(tflite_path)
        if not path.is_file():
            raise UserInputError(f"model file {path} does not exist; check the path")
        self._open({"model_path": str(path)}, load_metadata(path), str(path), num_threads, kind)

    @classmethod
    def from_bytes(cls, flatbuffer: bytes, metadata: dict, *, num_threads: int = 1,
                   kind: str) -> TFLiteModel:
        """A model held in memory, e.g. a conversion that is checked before it is written.

        Args:
          flatbuffer: the ``.tflite`` bytes.
          metadata: what the sidecar would hold (at least ``kind``).
          num_threads: interpreter threads.
          kind: the expected ``kind``.
        """
        model = cls.__new__(cls)
        model._open({"model_content": bytes(flatbuffer)}, dict(metadata), "the converted model",
                    num_threads, kind)
        return model

    def replica(self) -> TFLiteModel:
        """The same model in a new interpreter, for another thread.

        One interpreter must not run in two threads at once; LiteRT releases the GIL
        while it invokes, so one replica per worker thread keeps several cores busy.
        """
        model = type(self).__new__(type(self))
        model._open(self._source, self.metadata, self._where, self.num_threads,
                    self.metadata["kind"])
        return model

    def _open(self, source: dict, metadata: dict, where: str, num_threads: int,
              kind: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.metadata = metadata
        self._source, self._where = source, where
        if metadata.get("kind") != kind:
            raise UserInputError(
                f"{where} is a {metadata.get('kind')!r} model, not {kind!r}; pass the "
                f"{kind} model's .tflite")
        if int(num_threads) < 1:
            raise UserInputError(f"num_threads={num_threads} must be at least 1")
        try:
            self._interpreter = Interpreter(**source, num_threads=int(num_threads))
            # XNNPACK takes over the graph here, not lazily at the first call.
            self._interpreter.allocate_tensors()
            self._runner = self._interpreter.get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as err:
            raise UserInputError(f"{where} is not a loadable TFLite model ({err}); export one "
                                 "with `dcme-keras export`") from None
        details = self._runner.get_input_details()
        if list(details) != ["image"]:
            raise UserInputError(f"{where} has inputs {list(details)}, expected one named "
                                 "'image'; export it with `dcme-keras export`")
        self.input_shape = tuple(int(d) for d in details["image"]["shape"])
        #: Output name -> shape, e.g. ``{"mask": (1, 128, 128, 1)}``.
        self.output_shapes = {name: tuple(int(d) for d in info["shape"])
                              for name, info in self._runner.get_output_details().items()}
        self.num_threads = int(num_threads)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one input ``[1, H, W, C]`` float32; returns the named outputs ``[1, ...]``."""
        if batch.shape != self.input_shape:
            raise UserInputError(f"input shape {batch.shape} != model's {self.input_shape}")
        return self._runner(image=np.ascontiguousarray(batch, np.float32))

    def predict_on_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Keras-style batch call: ``[B, H, W, C]`` -> named outputs ``[B, ...]``.

        The interpreter runs batch 1 (the plan XNNPACK makes fastest on a CPU), so the
        items run one after another.
        """
        results = [self(item[None]) for item in np.asarray(batch, np.float32)]
        return {name: np.concatenate([r[name] for r in results]) for name in self.output_shapes}

    def op_report(self) -> dict:
        """How the interpreter runs the graph: XNNPACK delegation and operator dtypes.

        An operator XNNPACK does not take runs in TFLite's own kernels and splits the
        graph into several delegated partitions, each with its own entry cost; a float
        operator left in an int8 graph means a quantization gap.

        Returns:
          ``{"ops": N, "delegated": n, "partitions": P, "not_delegated": {op: count},
          "dtypes": {first output's dtype: count}}`` over the operators of the converted
          graph.
        """
        # The interpreter exposes its nodes only through this private helper; a DELEGATE
        # node stands for the original nodes it took over, which stay listed.
        nodes = self._interpreter._get_ops_details()
        original = [n for n in nodes if n["op_name"] != "DELEGATE"]
        producer = {int(t): n for n in original for t in n["outputs"]}
        producer.update({int(t): n for n in nodes if n["op_name"] == "DELEGATE"
                         for t in n["outputs"]})
        # Walk back from the outputs through what actually executes.
        stack = [int(d["index"]) for d in self._interpreter.get_output_details()]
        executed = {}
        while stack:
            node = producer.get(stack.pop())
            if node is None or node["index"] in executed:
                continue
            executed[node["index"]] = node
            stack.extend(int(t) for t in node["inputs"] if t >= 0)
        kept = [n["op_name"] for n in executed.values() if n["op_name"] != "DELEGATE"]
        return {
            "ops": len(original),
            "delegated": len(original) - len(kept),
            "partitions": sum(n["op_name"] == "DELEGATE" for n in executed.values()),
            "not_delegated": dict(sorted(Counter(kept).items())),
            "dtypes": dict(sorted(Counter(np.dtype(n["result_types"][0]).name
                                          for n in original if n["result_types"]).items())),
        }


def _as_model(tflite: str | Path | InferenceModel, num_threads: int, kind: str
              ) -> InferenceModel:
    """A :class:`TFLiteModel` from a path, or the given model after checking its kind."""
    if isinstance(tflite, InferenceModel):
        if tflite.metadata.get("kind") != kind:
            raise UserInputError(f"the model is a {tflite.metadata.get('kind')!r} model, not "
                                 f"{kind!r}; pass the {kind} model")
        return tflite
    return TFLiteModel(tflite, num_threads=num_threads, kind=kind)


def box_to_points(box_xyxy: Sequence[float]) -> np.ndarray:
    """Pseudo extreme points of a box: the midpoints of its sides, left, top, right, bottom.

    Args:
      box_xyxy: ``(x0, y0, x1, y1)`` pixels, inclusive corners as a person drags them.

    Returns:
      ``[4, 2]`` float32 ``(x, y)``.
    """
    if len(box_xyxy) != 4:
        raise UserInputError(f"a box needs 4 numbers x0,y0,x1,y1, got {list(box_xyxy)}")
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    if x1 <= x0 or y1 <= y0:
        raise UserInputError(f"box {list(box_xyxy)} is empty; give x0<x1 and y0<y1")
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[x0, cy], [cx, y0], [x1, cy], [cx, y1]], np.float32)


class ExtremePointsAnnotator:
    """Object mask and polygons from 4 extreme points (or a box, for an RGB-only model).

    Paper 003: the crop around the points (with a relative margin) is resized to the
    network's size, a 4th channel holds the points as small circles, the network returns
    mask logits, and the mask is pasted back into the full image.

    Args:
      tflite: an annotator model exported by ``dcme-keras export`` (its path, or a
        :class:`InferenceModel` of kind ``"annotator"``); None takes the one the package
        ships, :data:`BUNDLED_ANNOTATOR`.
      num_threads: interpreter threads (ignored for a model object).
      threshold: probability from which a pixel is object; None takes the sidecar's
        ``threshold`` (calibrated on validation objects, as the bundled model's is), else
        :data:`DEFAULT_THRESHOLD`.

    Raises:
      UserInputError: for a model of another kind or with another signature than
        ``image [1, S, S, 4 or 3] -> mask [1, S, S, 1]``, or no model given when the
        bundled one is missing from this installation.

    Example:
      >>> ann = ExtremePointsAnnotator()  # the bundled int8 model
      >>> mask = ann.segment(image_rgb_uint8, points_xy)  # [H, W] bool
    """

    def __init__(self, tflite: str | Path | InferenceModel | None = None, *,
                 num_threads: int = 1, threshold: float | None = None):
        if tflite is None:
            if not BUNDLED_ANNOTATOR.is_file():
                raise UserInputError(f"the bundled annotator {BUNDLED_ANNOTATOR} is missing "
                                     "from this installation; reinstall dcme-keras or pass "
                                     "a .tflite model")
            tflite = BUNDLED_ANNOTATOR
        self.model = _as_model(tflite, num_threads, "annotator")
        meta = self.model.metadata
        _, h, w, channels = self.model.input_shape
        if h != w or channels not in (3, 4):
            raise UserInputError(f"{tflite} has input {self.model.input_shape}; an "
                                 "annotator takes [1, S, S, 4] (points) or [1, S, S, 3] (box)")
        if self.model.output_shapes != {keys.MASK: (1, h, w, 1)}:
            raise UserInputError(f"{tflite} has outputs {self.model.output_shapes}; an "
                                 f"annotator returns {keys.MASK!r} [1, {h}, {w}, 1] logits; "
                                 "export it with `dcme-keras export`")
        self.size = h
        self.uses_points = channels == 4
        self.radius = int(meta.get("point_radius", ep.DEFAULT_RADIUS))
        self.margin = float(meta.get("margin", ep.DEFAULT_MARGIN))
        self.point_mode = meta.get("point_mode", "circle")
        if threshold is None:
            threshold = meta.get("threshold", DEFAULT_THRESHOLD)
        if not 0.0 < float(threshold) < 1.0:
            raise UserInputError(f"threshold {threshold!r} must be in (0, 1), e.g. "
                                 f"{DEFAULT_THRESHOLD}")
        self.threshold = float(threshold)

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UserInputError(f"image must be [H, W, 3] uint8 RGB, got {image.shape} "
                                 f"{image.dtype}")
        return image

    def probability(self, image_rgb_uint8: np.ndarray, points_xy) -> tuple[np.ndarray, tuple]:
        """Mask probability in the crop, and the crop box.

        Args:
          image_rgb_uint8: ``[H, W, 3]`` uint8 RGB.
          points_xy: ``[4, 2]`` (x, y) pixels, left, top, right, bottom.

        Returns:
          ``([S, S] float32 probability, (x0, y0, x1, y1) crop box, end exclusive)``.
        """
        image = self._check_image(image_rgb_uint8)
        x = ep.make_input(image, points_xy, size=self.size, radius=self.radius,
                          margin=self.margin, mode=self.point_mode)
        if not self.uses_points:
            x = x[..., :3]
        logits = self.model(x[None])[keys.MASK][0, ..., 0]
        box = ep.crop_box(points_xy, image.shape[:2], self.margin)
        return sigmoid(logits), box

    def segment(self, image_rgb_uint8: np.ndarray, points_xy) -> np.ndarray:
        """Object mask ``[H, W]`` bool from 4 extreme points ``[4, 2]`` (x, y)."""
        prob, box = self.probability(image_rgb_uint8, points_xy)
        return ep.paste_back(prob, box, image_rgb_uint8.shape[:2], self.threshold)

    def segment_box(self, image_rgb_uint8: np.ndarray, box_xyxy) -> np.ndarray:
        """Object mask ``[H, W]`` bool from a box ``(x0, y0, x1, y1)``.

        Meant for an RGB-only model (the paper's baseline input); with a points model the
        side midpoints stand in for extreme points, which is a rough guess.
        """
        return self.segment(image_rgb_uint8, box_to_points(box_xyxy))

    def polygons(self, image_rgb_uint8: np.ndarray, points_xy, *, tolerance_px: float = 1.0):
        """Polygons (outer ring plus holes, (x, y) image pixels) of :meth:`segment`'s mask.

        See :func:`dcme_keras.polygons.mask_to_polygons` for the structure.
        """
        from dcme_keras.polygons import Polygon, mask_to_polygons

        prob, (x0, y0, x1, y1) = self.probability(image_rgb_uint8, points_xy)
        # The mask is empty outside the crop box, so tracing the box alone gives the same
        # polygons; tracing a whole 1024x2048 mask would cost about 1 ms more.
        crop_hw = (y1 - y0, x1 - x0)
        mask = ep.paste_back(prob, (0, 0, crop_hw[1], crop_hw[0]), crop_hw, self.threshold)
        offset = np.array([x0, y0], np.float64)
        return [Polygon(p.exterior + offset, [hole + offset for hole in p.holes])
                for p in mask_to_polygons(mask, tolerance_px=tolerance_px)]

    def replica(self) -> ExtremePointsAnnotator:
        """This annotator on its own model copy (:meth:`InferenceModel.replica`), for a thread."""
        return type(self)(self.model.replica(), threshold=self.threshold)

    def segment_many(self, requests: Iterable[tuple[np.ndarray, Sequence]], *,
                     workers: int = 1) -> list[np.ndarray]:
        """Batch pre-annotation: one mask per ``(image, points)`` request, in order.

        The interpreter runs batch 1 (the fastest plan on a CPU). With ``workers`` > 1 the
        requests run in that many threads, each with its own :meth:`replica` (crop,
        invoke and paste-back release the GIL), so ``workers`` cores share the work.

        Args:
          requests: ``(image [H, W, 3] uint8 RGB, points [4, 2] (x, y))`` pairs.
          workers: threads, each with one interpreter of ``num_threads`` threads.

        Returns:
          ``[H, W]`` bool masks, in request order.

        Raises:
          UserInputError: for ``workers`` < 1 or bad requests.
        """
        return map_with_replicas(self, lambda annotator, request: annotator.segment(*request),
                                 requests, workers=workers)


def map_with_replicas(annotator: ExtremePointsAnnotator, fn: Callable, items: Iterable, *,
                      workers: int = 1) -> list:
    """``fn(annotator, item)`` for every item, in ``workers`` threads, results in order.

    Each thread runs its own :meth:`ExtremePointsAnnotator.replica` (an interpreter must
    not run in two threads at once); one worker runs ``annotator`` itself, in this thread.

    Args:
      annotator: the annotator to replicate.
      fn: the work on one item, given the thread's annotator.
      items: the work items.
      workers: threads (and interpreters).

    Returns:
      ``[fn(..., item) for item in items]``.

    Raises:
      UserInputError: for ``workers`` < 1, or workers > 1 on a model that cannot be
        replicated (a Keras model).
    """
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise UserInputError(f"workers={workers!r} must be a whole number >= 1, e.g. 2")
    if workers == 1:
        return [fn(annotator, item) for item in items]
    import threading
    from concurrent.futures import ThreadPoolExecutor

    first = annotator.replica()  # fails early (a Keras model) before any thread starts
    spare, lock, local = [first], threading.Lock(), threading.local()

    def run(item):
        if not hasattr(local, "annotator"):
            with lock:
                local.annotator = spare.pop() if spare else annotator.replica()
        return fn(local.annotator, item)

    with ThreadPoolExecutor(int(workers)) as pool:
        return list(pool.map(run, items))


def decode_defaults(metadata: dict) -> dict:
    """``decode_dcme`` keyword arguments that a DCME model's outputs need.

    An int8 model's vectors lie on a lattice, where votes of unrelated pixels coincide as
    only an encoded ground truth's should, so its outputs are decoded with the
    exact-center path off.

    Args:
      metadata: the model's sidecar (``TFLiteModel.metadata``).

    Returns:
      ``{"exact_tolerance": None}`` for an int8 model, else ``{}``.
    """
    return {"exact_tolerance": None} if metadata.get("quantization") == "int8" else {}


class DCMESegmenter:
    """Instance segmentation of whole images with the DCME network (paper 000), TF-free.

    The image is resized to the network's input, the model runs once, and the instances
    are decoded by :func:`dcme_keras.inference.instances_from_outputs` (the very
    post-processing of the Keras path): DCME voting, the class of the grid cell at each
    center of mass, that class's probability times the vote confidence as the score,
    masks back at the image size. For an int8 model the exact-center path of the decoder
    is off (``exact_tolerance=None``): quantized vectors lie on a lattice, where votes of
    unrelated pixels coincide as only an encoded ground truth's should.

    Args:
      tflite: a DCME model exported by ``dcme-keras export`` (its path, or a
        :class:`InferenceModel` of kind ``"dcme"``).
      num_threads: interpreter threads (ignored for a model object).
      decode_kwargs: extra keyword arguments for ``codec_np.decode_dcme``; they override
        the int8 default above.

    Raises:
      UserInputError: for a model of another kind or with another signature than
        ``image [1, H, W, 3] -> dcme [1, H, W, 2], grid [1, H/Gs, W/Gs, 9]``.

    Example:
      >>> segmenter = DCMESegmenter("dcme_int8.tflite", num_threads=2)
      >>> for mask, label_id, score in segmenter.instances(image_rgb_uint8): ...
    """

    def __init__(self, tflite: str | Path | InferenceModel, *, num_threads: int = 1,
                 decode_kwargs: dict | None = None):
        self.model = _as_model(tflite, num_threads, "dcme")
        _, h, w, channels = self.model.input_shape
        shapes = self.model.output_shapes
        dcme, grid_shape = shapes.get(keys.DCME), shapes.get(keys.GRID)
        extra = set(shapes) - {keys.DCME, keys.GRID}
        if (channels != 3 or not {keys.DCME, keys.GRID} <= set(shapes)
                or extra - {keys.FOREGROUND} or dcme != (1, h, w, 2)
                or shapes.get(keys.FOREGROUND, (1, h, w, 1)) != (1, h, w, 1)
                or grid_shape is None or len(grid_shape) != 4 or grid_shape[0] != 1
                or grid_shape[3] != classes.NUM_THING_CLASSES + 1):
            raise UserInputError(
                f"{tflite} maps {self.model.input_shape} to {shapes}; a DCME model maps "
                f"image [1, H, W, 3] to {keys.DCME!r} [1, H, W, 2] and {keys.GRID!r} "
                f"[1, H/Gs, W/Gs, {classes.NUM_THING_CLASSES + 1}] (and optionally "
                f"{keys.FOREGROUND!r} [1, H, W, 1]); export it with `dcme-keras export`")
        self.input_hw = (h, w)
        self.grid_size = (self.model.metadata.get("grid_size")
                          or inference.infer_grid_size((h, w), grid_shape[1:3]))
        self.decode_kwargs = {**decode_defaults(self.model.metadata), **(decode_kwargs or {})}

    def outputs(self, image_rgb_uint8: np.ndarray) -> dict[str, np.ndarray]:
        """The network's outputs for one image, at the network's resolution.

        Args:
          image_rgb_uint8: ``[H, W, 3]`` uint8 RGB, any size.

        Returns:
          ``{keys.DCME: [h, w, 2] float32 (dy, dx) pixels, keys.GRID: [h/Gs, w/Gs, 9]
          float32 logits}``, and ``keys.FOREGROUND: [h, w, 1]`` logits when the model has
          the foreground head.
        """
        return inference.model_outputs(self.model, [image_rgb_uint8], batch_size=1,
                                       input_size=self.input_hw)[0]

    def instances(self, image_rgb_uint8: np.ndarray) -> list[inference.Instance]:
        """Classified instances of one image.

        Args:
          image_rgb_uint8: ``[H, W, 3]`` uint8 RGB, any size.

        Returns:
          One ``(mask [H, W] bool, label_id int, score float)`` per instance: masks at
          the image's size, regular Cityscapes label ids, scores in [0, 1].
        """
        out = self.outputs(image_rgb_uint8)
        return inference.instances_from_outputs(
            out[keys.DCME], out[keys.GRID], foreground_logits=out.get(keys.FOREGROUND),
            out_size=np.shape(image_rgb_uint8)[:2],
            grid_size=self.grid_size, decode_kwargs=self.decode_kwargs)
