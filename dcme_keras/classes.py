"""Cityscapes label table, the 8 thing classes, and the grid classifier's class ids.

The table itself is cityscapesscripts' (``cityscapesscripts.helpers.labels``), so ids,
names and colors can never drift from the official evaluator's.

Id spaces used in this package:
  * **label id** (Cityscapes ``id``, 0..33): what ``*_labelIds.png`` holds and what the
    official evaluator's prediction files name.
  * **grid id** (0..8): what the grid classifier predicts. 0 is background (anything that
    is not one of the 8 thing classes), 1..8 follow ``THING_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cityscapesscripts.helpers.labels import id2label, labels, name2label

LABELS = labels

#: The 8 classes the official instance-level benchmark scores, in the benchmark's order.
THING_CLASSES: tuple[str, ...] = (
    "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
#: Label ids of THING_CLASSES, same order.
THING_LABEL_IDS: tuple[int, ...] = tuple(name2label[n].id for n in THING_CLASSES)
#: Number of grid-classifier classes without background.
NUM_THING_CLASSES = len(THING_CLASSES)

#: The annotator's 9 classes (paper 003): the most frequent Cityscapes objects.
ANNOTATOR_CLASSES: tuple[str, ...] = (
    "car", "traffic sign", "bicycle", "person", "rider", "motorcycle", "traffic light",
    "truck", "bus",
)

#: Default grid priority (DESIGN.md): the rarer class, counted in Cityscapes training
#: instances, wins a grid block that holds several classes. First wins.
DEFAULT_PRIORITY: tuple[str, ...] = (
    "train", "bus", "truck", "motorcycle", "rider", "bicycle", "person", "car",
)

GROUP_SUFFIX = "group"


def label_id(name: str) -> int:
    """Cityscapes label id of a class name; ``"cargroup"`` maps to ``car``'s id.

    Raises:
      KeyError: with the list of valid names, for an unknown class.
    """
    if name.endswith(GROUP_SUFFIX) and name not in name2label:
        name = name[: -len(GROUP_SUFFIX)]
    if name not in name2label:
        raise KeyError(f"unknown Cityscapes class {name!r}; valid: {sorted(name2label)}")
    return name2label[name].id


def label_name(label_id_: int) -> str:
    """Cityscapes class name of a label id (0..33, or -1 for 'license plate')."""
    return id2label[int(label_id_)].name


def grid_id_to_label_id(grid_id: int) -> int:
    """Grid class (1..8) to Cityscapes label id; 0 (background) gives 0 (unlabeled)."""
    return 0 if grid_id == 0 else THING_LABEL_IDS[grid_id - 1]


def label_id_to_grid_lut() -> list[int]:
    """Lookup table of length 256: Cityscapes label id -> grid id (0 = background)."""
    lut = [0] * 256
    for k, lid in enumerate(THING_LABEL_IDS, start=1):
        lut[lid] = k
    return lut


def priority_rank(priority: Sequence[str] = DEFAULT_PRIORITY) -> list[int]:
    """Rank of each grid id under ``priority``: lower wins; background ranks last.

    Args:
      priority: thing-class names, highest priority first; must name each of the 8
        thing classes exactly once.

    Returns:
      List of length 9 indexed by grid id. ``rank[0]`` (background) is 9.
    """
    if sorted(priority) != sorted(THING_CLASSES):
        raise ValueError(
            f"priority must list each of the 8 thing classes once, got {list(priority)}")
    rank = [NUM_THING_CLASSES + 1] * (NUM_THING_CLASSES + 1)
    for r, name in enumerate(priority):
        rank[THING_CLASSES.index(name) + 1] = r
    return rank


def priority_from_counts(instance_counts: Mapping[str, int]) -> tuple[str, ...]:
    """Priority list from a dataset's per-class training instance counts: rarest first.

    Ties are broken by the default order, so the result is deterministic.

    Args:
      instance_counts: class name -> number of training instances; classes missing from
        the mapping count as 0 (they never appeared, so they are the rarest).

    Returns:
      The 8 thing-class names, rarest first.
    """
    default = {n: i for i, n in enumerate(DEFAULT_PRIORITY)}
    return tuple(sorted(THING_CLASSES,
                        key=lambda n: (int(instance_counts.get(n, 0)), default[n])))
