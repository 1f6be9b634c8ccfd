"""cityscapes_instances: Cityscapes frames with their gtFine instance ground truth.

The builder stores raw data only (image, instanceIds, labelIds, per-object records).
Training targets such as DCME vectors and grid labels are computed in the tf.data
pipeline, so changing the codec never changes this dataset's version.

Build it from Python, because the ``tfds`` command-line tool does not import on this
stack (see ``dcme-keras build``)::

    builder = tfds.builder("cityscapes_instances", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import zipfile
from collections.abc import Iterator, Mapping

import cv2
import numpy as np
import tensorflow_datasets.public_api as tfds
from cityscapesscripts.helpers.labels import id2label, name2label
from etils import epath
from PIL import Image, ImageDraw
from skimage.measure import regionprops

from dcme_keras import keys
from dcme_keras.classes import GROUP_SUFFIX
from dcme_keras.errors import UserInputError

_DOWNLOAD_PAGE = "https://www.cityscapes-dataset.com/downloads/"
_LOG = logging.getLogger(__name__)

#: Top-level Cityscapes folder -> official archive whose members start with that folder.
ARCHIVES: dict[str, str] = {
    "leftImg8bit": "leftImg8bit_trainvaltest.zip",
    "gtFine": "gtFine_trainvaltest.zip",
}

#: TFDS split -> Cityscapes split folder. `test` is left out on purpose: its public gtFine
#: files are placeholders without instance labels.
SPLITS: dict[str, str] = {"train": "train", "validation": "val"}

_IMAGE_SUFFIX = "_leftImg8bit.png"
_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"
_POLYGONS_SUFFIX = "_gtFine_polygons.json"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(eq=False)
class CityscapesInstancesConfig(tfds.core.BuilderConfig):
    """A stored resolution of cityscapes_instances.

    Attributes:
      scale: stored size over source size, per side. Images are resized with area
        averaging, id maps with nearest neighbour at pixel centres, polygons are scaled
        with them.
        Object areas stay in source pixels (see README.md).
    """

    scale: float = 1.0


class Builder(tfds.core.GeneratorBasedBuilder):
    """Cityscapes gtFine instance segmentation, from the official zips or extracted folders.

    Example:
      >>> import tfds_cityscapes.cityscapes_instances  # registers the builder
      >>> ds = tfds.load("cityscapes_instances/half", split="train", data_dir=data_dir)
      >>> ex = next(iter(ds))
      >>> ex["instance_ids"].shape, ex["objects"]["polygon"].shape
      (TensorShape([512, 1024, 1]), TensorShape([N, None, 2]))
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        CityscapesInstancesConfig(
            name="full",
            description="Source resolution (2048x1024 on Cityscapes).",
            scale=1.0,
        ),
        CityscapesInstancesConfig(
            name="half",
            description=("Half resolution per side (1024x512 on Cityscapes), the size the "
                         "DCME paper trains and evaluates at; object areas stay in source "
                         "pixels."),
            scale=0.5,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "full"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Cityscapes needs a free registration at https://www.cityscapes-dataset.com/login/.
    From {_DOWNLOAD_PAGE} download
      * leftImg8bit_trainvaltest.zip (11 GB), the left 8-bit images, and
      * gtFine_trainvaltest.zip (241 MB), the fine annotations,
    and put both zips into the manual dir (`--manual_dir`, by default
    `~/tensorflow_datasets/downloads/manual/`). They are read as they are; there is no
    need to extract them. Folders that were already extracted work too: the manual dir
    then holds `leftImg8bit/` and `gtFine/`, each with `train/` and `val/` inside.
    Data in the same layout that is not Cityscapes (for example `dcme-keras synth`
    output) builds the same way.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                keys.IMAGE_ID: tfds.features.Text(
                    doc="<city>_<sequence>_<frame>, the file stem shared by the frame's files"),
                keys.IMAGE: tfds.features.Image(
                    shape=(None, None, 3), dtype=np.uint8, encoding_format="png",
                    doc="leftImg8bit, RGB"),
                keys.INSTANCE_IDS: tfds.features.Image(
                    shape=(None, None, 1), dtype=np.uint16, encoding_format="png",
                    doc="gtFine instanceIds: class_id * 1000 + k (k from 0) for instances, "
                        "the plain label id elsewhere (groups, stuff), 0 unlabeled"),
                keys.LABEL_IDS: tfds.features.Image(
                    shape=(None, None, 1), dtype=np.uint8, encoding_format="png",
                    doc="gtFine labelIds, Cityscapes label ids"),
                keys.OBJECTS: tfds.features.Sequence({
                    keys.OBJECT_ID: tfds.features.Scalar(
                        np.int32, doc="value the object holds in instance_ids"),
                    keys.OBJECT_LABEL: tfds.features.Scalar(
                        np.int32, doc="Cityscapes label id"),
                    keys.OBJECT_BBOX: tfds.features.BBoxFeature(
                        doc="box of the visible pixels; of the polygon when none is visible"),
                    keys.OBJECT_AREA: tfds.features.Scalar(
                        np.int32, doc="visible pixels, counted at source resolution"),
                    keys.OBJECT_IS_CROWD: tfds.features.Scalar(
                        np.bool_, doc="group region of an instance class, e.g. cargroup"),
                    # A nested Sequence, because TFDS cannot parse two unknown dimensions
                    # of one Tensor; it reads back as a ragged [N, None, 2] tensor.
                    keys.OBJECT_POLYGON: tfds.features.Sequence(
                        tfds.features.Tensor(shape=(2,), dtype=np.float32),
                        doc="(x, y) pixels of the stored image; empty when the frame has "
                            "no gtFine_polygons.json"),
                }),
            }),
            homepage="https://www.cityscapes-dataset.com",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = epath.Path(dl_manager.manual_dir)
        # Check every split before the first example is written, so that a broken
        # manual dir fails in seconds instead of after the train split.
        with open_trees(manual_dir) as (images, gt):
            present = present_splits(images)
            for cs_split in present.values():
                list_frames(images, gt, cs_split)
        return {split: self._generate_examples(manual_dir, cs_split)
                for split, cs_split in present.items()}

    def _generate_examples(self, manual_dir: epath.Path, cs_split: str):
        scale = self.builder_config.scale
        with open_trees(manual_dir) as (images, gt):
            for frame in list_frames(images, gt, cs_split):
                polygons = (None if frame.polygons is None
                            else _read_json(gt.read(frame.polygons), gt.describe(frame.polygons)))
                example = frame_example(
                    images.read(frame.image), gt.read(frame.instance_ids), gt.read(frame.label_ids),
                    polygons, scale=scale, name=images.describe(frame.image))
                yield frame.stem, {keys.IMAGE_ID: frame.stem, **example}


class Tree:
    """One top-level Cityscapes folder (``leftImg8bit`` or ``gtFine``), extracted or zipped.

    Paths are relative to that folder (``train/aachen/aachen_000000_000019_leftImg8bit.png``)
    in both shapes, so the caller never sees which one it reads. Members of a zip are read
    in place: an 11 GB archive is never extracted.

    Args:
      manual_dir: folder that holds ``<top>/`` or the official ``ARCHIVES[top]`` zip; the
        folder wins when both exist.
      top: ``"leftImg8bit"`` or ``"gtFine"``.

    Raises:
      UserInputError: when neither the folder nor the zip is there.
    """

    def __init__(self, manual_dir: epath.Path, top: str):
        self._folder = manual_dir / top
        self._zip_path = manual_dir / ARCHIVES[top]
        self._prefix = f"{top}/"
        self._zip: zipfile.ZipFile | None = None
        self._stack = contextlib.ExitStack()
        if self._folder.is_dir():
            self.where = str(self._folder)
        elif self._zip_path.is_file():
            self.where = str(self._zip_path)
            handle = self._stack.enter_context(self._zip_path.open("rb"))
            try:
                self._zip = self._stack.enter_context(zipfile.ZipFile(handle))
            except zipfile.BadZipFile:
                self._stack.close()
                raise UserInputError(
                    f"{self._zip_path} is not a readable zip (an interrupted download?); "
                    f"download it again from {_DOWNLOAD_PAGE}") from None
        else:
            raise UserInputError(
                f"{manual_dir} holds neither {top}/ nor {ARCHIVES[top]}; download "
                f"{ARCHIVES[top]} from {_DOWNLOAD_PAGE} into {manual_dir} (no need to extract it)")

    def close(self) -> None:
        """Closes the zip, if one is open."""
        self._stack.close()

    def list(self, split: str) -> set[str]:
        """Files in ``<split>/<city>/``, as paths relative to the top folder."""
        if self._zip is None:
            split_dir = self._folder / split
            if not split_dir.is_dir():
                return set()
            return {f"{split}/{p.parent.name}/{p.name}" for p in split_dir.glob("*/*")}
        start = f"{self._prefix}{split}/"
        names = (n[len(self._prefix):] for n in self._zip.namelist() if n.startswith(start))
        return {n for n in names if n.count("/") == 2 and not n.endswith("/")}

    def read(self, relpath: str) -> bytes:
        """Bytes of one file, ``relpath`` as returned by :meth:`list`."""
        if self._zip is None:
            return (self._folder / relpath).read_bytes()
        return self._zip.read(self._prefix + relpath)

    def describe(self, relpath: str) -> str:
        """Where a file is, for error messages: a path, or ``archive.zip:member``."""
        if self._zip is None:
            return str(self._folder / relpath)
        return f"{self._zip_path}:{self._prefix}{relpath}"


@contextlib.contextmanager
def open_trees(manual_dir: epath.Path) -> Iterator[tuple[Tree, Tree]]:
    """Opens ``(leftImg8bit, gtFine)`` of a manual dir and closes them afterwards.

    Args:
      manual_dir: folder with the official zips or the extracted folders.

    Yields:
      The two :class:`Tree` objects, leftImg8bit first.

    Raises:
      UserInputError: when ``manual_dir`` is not a folder, or lacks one of the two.
    """
    manual_dir = epath.Path(manual_dir)
    if not manual_dir.is_dir():
        raise UserInputError(
            f"manual dir {manual_dir} is not a folder; create it and put {ARCHIVES['leftImg8bit']}"
            f" and {ARCHIVES['gtFine']} from {_DOWNLOAD_PAGE} into it")
    with contextlib.ExitStack() as stack:
        trees = []
        for top in ARCHIVES:
            tree = Tree(manual_dir, top)
            stack.callback(tree.close)
            trees.append(tree)
        yield trees[0], trees[1]


def present_splits(images: Tree) -> dict[str, str]:
    """The splits of :data:`SPLITS` that have images; logs a warning naming the others.

    A manual dir with only some splits extracted (e.g. only ``train/``) still builds: the
    splits that are there become the dataset's splits.

    Args:
      images: the leftImg8bit tree.

    Returns:
      TFDS split -> Cityscapes split folder, for the splits with at least one image.

    Raises:
      UserInputError: when no split has an image.
    """
    present = {split: cs_split for split, cs_split in SPLITS.items()
               if any(p.endswith(_IMAGE_SUFFIX) for p in images.list(cs_split))}
    folders = " nor ".join(f"{cs_split}/<city>/*{_IMAGE_SUFFIX}" for cs_split in SPLITS.values())
    if not present:
        raise UserInputError(
            f"{images.where} holds neither {folders}; put the complete "
            f"{ARCHIVES['leftImg8bit']} from {_DOWNLOAD_PAGE} there")
    missing = [f"{split} ({cs_split}/)" for split, cs_split in SPLITS.items()
               if split not in present]
    if missing:
        _LOG.warning("%s has no images for split(s) %s; building only %s", images.where,
                     ", ".join(missing), ", ".join(present))
    return present


@dataclasses.dataclass(frozen=True)
class Frame:
    """The files of one frame, as paths relative to their top folder.

    Attributes:
      stem: ``<city>_<sequence>_<frame>``, the example key and ``image_id``.
      image: ``<split>/<city>/<stem>_leftImg8bit.png`` in leftImg8bit.
      instance_ids: ``..._gtFine_instanceIds.png`` in gtFine.
      label_ids: ``..._gtFine_labelIds.png`` in gtFine.
      polygons: ``..._gtFine_polygons.json`` in gtFine, or None when absent.
    """

    stem: str
    image: str
    instance_ids: str
    label_ids: str
    polygons: str | None


def list_frames(images: Tree, gt: Tree, cs_split: str) -> list[Frame]:
    """Pairs each image of a split with its gtFine files, sorted by stem.

    Args:
      images: the leftImg8bit tree.
      gt: the gtFine tree.
      cs_split: Cityscapes split folder, ``"train"`` or ``"val"``.

    Raises:
      UserInputError: when the split has no image, or an image lacks its instanceIds or
        labelIds PNG. A missing polygons JSON is allowed: objects then come from the PNG.
    """
    image_paths = sorted(p for p in images.list(cs_split) if p.endswith(_IMAGE_SUFFIX))
    if not image_paths:
        raise UserInputError(
            f"no {cs_split}/<city>/*{_IMAGE_SUFFIX} in {images.where}; put the complete "
            f"{ARCHIVES['leftImg8bit']} from {_DOWNLOAD_PAGE} there")
    gt_paths = gt.list(cs_split)
    frames, missing = [], []
    for image_path in image_paths:
        base = image_path[: -len(_IMAGE_SUFFIX)]
        instance_path, label_path = base + _INSTANCE_SUFFIX, base + _LABEL_SUFFIX
        missing += [p for p in (instance_path, label_path) if p not in gt_paths]
        polygons_path = base + _POLYGONS_SUFFIX
        frames.append(Frame(
            stem=base.rsplit("/", 1)[-1], image=image_path, instance_ids=instance_path,
            label_ids=label_path, polygons=polygons_path if polygons_path in gt_paths else None))
    if missing:
        raise UserInputError(
            f"{len(missing)} gtFine file(s) of {cs_split} images are missing from {gt.where}, "
            f"e.g. {missing[0]}; put the complete {ARCHIVES['gtFine']} from {_DOWNLOAD_PAGE} "
            "beside the images")
    return frames


def frame_example(image_png: bytes, instance_png: bytes, label_png: bytes,
                  polygons: Mapping | None = None, *, scale: float = 1.0,
                  name: str = "frame") -> dict:
    """One example of the dataset from a frame's encoded files.

    Args:
      image_png: leftImg8bit PNG bytes (8-bit, gray, RGB or RGBA).
      instance_png: gtFine instanceIds PNG bytes, single-channel 8- or 16-bit.
      label_png: gtFine labelIds PNG bytes, single-channel 8-bit.
      polygons: the parsed gtFine_polygons.json, or None to derive objects from the PNG.
      scale: stored size over source size, per side.
      name: where the frame comes from, for error messages.

    Returns:
      Feature dict for ``Builder.info.features`` without ``image_id``. A PNG that already
      holds what the feature stores is passed through as bytes, so a full-resolution
      build does not re-encode it.

    Raises:
      UserInputError: for an undecodable file, a wrong pixel format, or sizes that disagree.
    """
    image = _decode_png(image_png, name)
    instances = _decode_png(instance_png, f"instanceIds of {name}")
    labels = _decode_png(label_png, f"labelIds of {name}")
    _check_pixel_formats(image, instances, labels, name)
    height, width = labels.shape
    instance_ids = instances.astype(np.uint16)
    if polygons is None:
        objects = objects_from_instance_ids(instance_ids)
    else:
        objects = objects_from_polygons(polygons, instance_ids, name=name)

    if scale == 1.0:
        # PNGs that already hold what a feature stores pass through as bytes, so a
        # full-resolution build re-encodes nothing.
        stored = {
            keys.IMAGE: image_png if _is_png(image_png, image, 3) else _to_rgb(image),
            keys.INSTANCE_IDS: (instance_png if _is_png(instance_png, instances, 1, np.uint16)
                                else instance_ids[..., None]),
            keys.LABEL_IDS: label_png if _is_png(label_png, labels, 1) else labels[..., None],
        }
    else:
        size_wh = (max(round(width * scale), 1), max(round(height * scale), 1))
        # Nearest neighbour keeps ids valid. The _EXACT variant samples at output pixel
        # centres like tf.image.resize(method="nearest"), so `half` stores the very maps a
        # tf.data pipeline would make from `full`; plain INTER_NEAREST is a pixel off.
        nearest = cv2.INTER_NEAREST_EXACT
        stored = {
            keys.IMAGE: cv2.resize(_to_rgb(image), size_wh, interpolation=cv2.INTER_AREA),
            keys.INSTANCE_IDS: cv2.resize(instance_ids, size_wh, interpolation=nearest)[..., None],
            keys.LABEL_IDS: cv2.resize(labels, size_wh, interpolation=nearest)[..., None],
        }
        xy_scale = np.array([size_wh[0] / width, size_wh[1] / height], np.float32)
        objects[keys.OBJECT_POLYGON] = [p * xy_scale for p in objects[keys.OBJECT_POLYGON]]
    return {**stored, keys.OBJECTS: objects}


def objects_from_polygons(annotation: Mapping, instance_ids: np.ndarray, *,
                          name: str = "frame") -> dict[str, list]:
    """Objects of a gtFine_polygons.json, with ids assigned as cityscapesscripts rasterizes.

    Ids follow ``json2instanceImg.createInstanceImage(annotation, "ids")``: objects are taken
    in file order; deleted ones and those with a negative label id (license plate, never
    drawn) are skipped; an instance class gets ``class_id * 1000 + k`` with k counted from
    0 per class; a group (``cargroup``) or a class without instances gets its plain label id.

    Area and box count the pixels that the object owns in ``instance_ids``:
      * an instance: every pixel holding its id, exactly as in the PNG;
      * any other object: the pixels inside its polygon (rasterized by PIL, as
        cityscapesscripts does) that hold its plain id and that no later polygon drew
        over. Polygons sharing a plain id (two ``vegetation`` regions) thus split that
        id's pixels between them, as the painter's order of the rasterizer did;
      * an object with no such pixel (fully occluded): area 0 and the box of its polygon,
        so a caller can keep or drop it with ``area > 0``.

    Args:
      annotation: parsed JSON with ``imgHeight``, ``imgWidth`` and ``objects``.
      instance_ids: [H, W] uint16, the frame's instanceIds.
      name: where the frame comes from, for error messages.

    Returns:
      Dict keyed by ``dcme_keras.keys.OBJECT_*`` with lists of length N: id, label (int),
      bbox ([4] float32, normalized ymin, xmin, ymax, xmax), area (int, pixels), is_crowd
      (bool) and polygon ([P, 2] float32, (x, y) pixels of ``instance_ids``).

    Raises:
      UserInputError: for an unknown label, an empty polygon, or a size that does not
        match ``instance_ids``.
    """
    height, width = instance_ids.shape
    size = (annotation.get("imgHeight", height), annotation.get("imgWidth", width))
    if tuple(size) != (height, width):
        raise UserInputError(f"polygons of {name} are for {size[0]}x{size[1]} but its instanceIds "
                             f"are {height}x{width}; use the gtFine files of this image")
    counts: dict[str, int] = {}
    drawn = []  # (object_id, label_id, is_group, polygon) in drawing order
    for obj in annotation.get("objects", []):
        if obj.get("deleted", 0):
            continue
        label_name = obj["label"]
        is_group = label_name not in name2label and label_name.endswith(GROUP_SUFFIX)
        if is_group:
            label_name = label_name[: -len(GROUP_SUFFIX)]
        if label_name not in name2label:
            raise UserInputError(f"unknown label {obj['label']!r} in polygons of {name}; use "
                                 "Cityscapes label names (cityscapesscripts.helpers.labels)")
        label = name2label[label_name]
        if label.id < 0:
            continue
        polygon = np.asarray(obj["polygon"], np.float32).reshape(-1, 2)
        if not len(polygon):
            raise UserInputError(f"a {obj['label']!r} object of {name} has an empty polygon; "
                                 "delete the object or mark it deleted")
        object_id = label.id
        if label.hasInstances and not is_group:
            object_id = label.id * 1000 + counts.get(label_name, 0)
            counts[label_name] = counts.get(label_name, 0) + 1
        drawn.append((object_id, label.id, is_group, polygon))

    regions = {r.label: r for r in regionprops(instance_ids)}
    # The last polygon drawn over a pixel owns it, so walk backwards and claim pixels.
    claimed = np.zeros(instance_ids.shape, bool)
    measured = []
    for object_id, _, _, polygon in reversed(drawn):
        if object_id >= 1000:
            region = regions.get(object_id)
            measured.append((0, None) if region is None
                            else (int(region.num_pixels), region.bbox))
        else:
            measured.append(_claim_pixels(polygon, instance_ids, object_id, claimed))
    objects = _empty_objects()
    for (object_id, label_id, is_group, polygon), (area, box) in zip(drawn, measured[::-1]):
        if box is None:
            box = _polygon_box(polygon, height, width)
        _append(objects, object_id, label_id, _normalize(box, height, width), area, is_group,
                polygon)
    return objects


def objects_from_instance_ids(instance_ids: np.ndarray) -> dict[str, list]:
    """Objects of an instanceIds map alone: one per distinct non-zero value, ascending.

    Args:
      instance_ids: [H, W] uint16, Cityscapes encoding.

    Returns:
      Same layout as :func:`objects_from_polygons`, with empty [0, 2] polygons. A value
      below 1000 of a class with instances is a group region (``is_crowd``); 0
      (unlabeled) is no object.

    Raises:
      UserInputError: for a value whose label id Cityscapes does not know.
    """
    height, width = instance_ids.shape
    objects = _empty_objects()
    for region in regionprops(instance_ids):
        object_id = int(region.label)
        label_id = object_id // 1000 if object_id >= 1000 else object_id
        if label_id not in id2label:
            raise UserInputError(f"instanceIds holds {object_id}, whose label id {label_id} is not "
                                 "a Cityscapes label; encode ids as label_id * 1000 + k")
        is_crowd = object_id < 1000 and id2label[label_id].hasInstances
        _append(objects, object_id, label_id, _normalize(region.bbox, height, width),
                int(region.num_pixels), is_crowd, np.zeros((0, 2), np.float32))
    return objects


def _empty_objects() -> dict[str, list]:
    return {k: [] for k in (keys.OBJECT_ID, keys.OBJECT_LABEL, keys.OBJECT_BBOX,
                            keys.OBJECT_AREA, keys.OBJECT_IS_CROWD, keys.OBJECT_POLYGON)}


def _append(objects: dict[str, list], object_id: int, label_id: int, bbox: np.ndarray,
            area: int, is_crowd: bool, polygon: np.ndarray) -> None:
    for key, value in ((keys.OBJECT_ID, object_id), (keys.OBJECT_LABEL, label_id),
                       (keys.OBJECT_BBOX, bbox), (keys.OBJECT_AREA, area),
                       (keys.OBJECT_IS_CROWD, is_crowd), (keys.OBJECT_POLYGON, polygon)):
        objects[key].append(value)


def _claim_pixels(polygon: np.ndarray, instance_ids: np.ndarray, object_id: int,
                  claimed: np.ndarray) -> tuple[int, tuple[int, int, int, int] | None]:
    """Claims the unclaimed pixels inside ``polygon`` that hold ``object_id``.

    Args:
      polygon: [P, 2] float32, (x, y) pixels.
      instance_ids: [H, W] uint16.
      object_id: the plain id the polygon was drawn with.
      claimed: [H, W] bool, pixels owned by polygons drawn later; updated in place.

    Returns:
      Area [pixels] and pixel box (row0, col0, row1, col1; end exclusive) of the claimed
      pixels, or ``(0, None)`` when there are none.
    """
    height, width = instance_ids.shape
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
    x1 = min(int(np.ceil(polygon[:, 0].max())) + 1, width)
    y1 = min(int(np.ceil(polygon[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return 0, None
    # Rasterizing only the polygon's window costs its size instead of a full 2048x1024
    # canvas per object; an integer shift leaves PIL's rasterization unchanged.
    canvas = Image.new("1", (int(x1 - x0), int(y1 - y0)), 0)
    ImageDraw.Draw(canvas).polygon([(float(x) - x0, float(y) - y0) for x, y in polygon], fill=1)
    window = (slice(y0, y1), slice(x0, x1))
    owned = np.asarray(canvas) & (instance_ids[window] == object_id) & ~claimed[window]
    claimed[window] |= owned
    rows, cols = np.nonzero(owned)
    if not len(rows):
        return 0, None
    return len(rows), (int(y0 + rows.min()), int(x0 + cols.min()),
                       int(y0 + rows.max() + 1), int(x0 + cols.max() + 1))


def _polygon_box(polygon: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel box of the pixels a polygon's vertices fall on, clipped to the image."""
    (x0, y0), (x1, y1) = np.floor(polygon.min(axis=0)), np.floor(polygon.max(axis=0)) + 1
    return (int(np.clip(y0, 0, height)), int(np.clip(x0, 0, width)),
            int(np.clip(y1, 0, height)), int(np.clip(x1, 0, width)))


def _normalize(box: tuple[int, int, int, int], height: int, width: int) -> tfds.features.BBox:
    """Pixel box (row0, col0, row1, col1; end exclusive) -> normalized tfds BBox."""
    row0, col0, row1, col1 = box
    return tfds.features.BBox(ymin=row0 / height, xmin=col0 / width,
                              ymax=row1 / height, xmax=col1 / width)


def _decode_png(data: bytes, name: str) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise UserInputError(f"cannot decode {name} as an image; re-download or re-extract it")
    return array


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """OpenCV's gray / BGR / BGRA [H, W(, C)] uint8 -> [H, W, 3] uint8 RGB."""
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _is_png(data: bytes, decoded: np.ndarray, channels: int, dtype: type = np.uint8) -> bool:
    """Whether TFDS can store ``data`` as is: a PNG of ``channels`` x ``dtype`` pixels.

    Anything else is re-encoded from the array, because TensorFlow's PNG decoder would
    silently rescale an 8-bit PNG read as uint16 (x257).
    """
    decoded_channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    return (data.startswith(_PNG_SIGNATURE) and decoded.dtype == dtype
            and decoded_channels == channels)


def _check_pixel_formats(image: np.ndarray, instances: np.ndarray, labels: np.ndarray,
                         name: str) -> None:
    """Raises UserInputError unless the three decoded PNGs of a frame fit together."""
    if image.dtype != np.uint8:
        raise UserInputError(f"{name} is {image.dtype}, not 8-bit; save it as 8-bit RGB")
    if instances.ndim != 2 or instances.dtype not in (np.uint8, np.uint16):
        raise UserInputError(
            f"instanceIds of {name} must be a single-channel 8/16-bit PNG, got "
            f"{instances.dtype} {instances.shape}; write it as 16-bit gray")
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise UserInputError(f"labelIds of {name} must be a single-channel 8-bit PNG, got "
                             f"{labels.dtype} {labels.shape}; write it as 8-bit gray")
    if not image.shape[:2] == instances.shape == labels.shape:
        raise UserInputError(
            f"{name} is {image.shape[0]}x{image.shape[1]} but its instanceIds / labelIds "
            f"are {instances.shape} / {labels.shape}; use the gtFine files of this image")


def _read_json(data: bytes, name: str) -> dict:
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"{name} is not valid JSON ({err}); re-download or re-extract it") from None
