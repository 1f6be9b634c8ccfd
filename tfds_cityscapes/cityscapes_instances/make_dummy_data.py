"""Regenerates dummy_data/, the tiny manual dir of the builder test.

Run from the repository root::

    python -m tfds_cityscapes.cityscapes_instances.make_dummy_data

It writes 3 synthetic frames at 64x128 (2 train, 1 val, a few kilobytes each) in the
extracted Cityscapes layout with ``dcme_keras.data.synthetic.write_dataset``. The same
seed gives the same bytes, so rerunning it changes nothing unless the generator changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcme_keras.data.synthetic import write_dataset

DUMMY_DATA = Path(__file__).resolve().parent / "dummy_data"


def make_dummy_data(out_dir: str | os.PathLike = DUMMY_DATA) -> dict:
    """Writes the dummy manual dir; returns the generator's summary.

    Args:
      out_dir: folder to (re)write; replaced atomically by the generator.
    """
    return write_dataset(out_dir, frames=3, size=(64, 128), seed=0, val_fraction=1 / 3,
                         progress=False)


if __name__ == "__main__":
    print(make_dummy_data()["frames"])
