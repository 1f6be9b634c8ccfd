"""Builds the ``cityscapes_instances`` TFDS dataset from a manual dir, from Python.

The ``tfds`` command-line tool does not import on this stack (it needs apache_beam and
mlcroissant), so ``dcme-keras build``, the demo and the benchmarks call
:func:`build_dataset`. TensorFlow Datasets is imported only once the manual dir has been
checked, so a wrong path fails in a fraction of a second.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcme_keras.errors import UserInputError


def build_dataset(manual_dir: str | os.PathLike, data_dir: str | os.PathLike, *,
                  config: str = "full") -> dict[str, int]:
    """Prepares ``cityscapes_instances/<config>`` under ``data_dir``.

    A dataset that is already prepared there is reused, not rebuilt.

    Args:
      manual_dir: folder with the official zips or the extracted Cityscapes folders.
      data_dir: TFDS data dir to write into.
      config: name of a ``CityscapesInstancesConfig``, ``"full"`` or ``"half"``.

    Returns:
      Number of examples per split, e.g. ``{"train": 2975, "validation": 500}``; only
      the splits the manual dir holds (a missing one is logged as a warning).

    Raises:
      UserInputError: for a missing or incomplete manual dir, or an unknown config.
    """
    manual_dir = Path(manual_dir).expanduser()
    if not manual_dir.is_dir():
        raise UserInputError(
            f"--manual_dir {manual_dir} is not a folder; pass the folder that holds "
            "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (or leftImg8bit/ and "
            "gtFine/)")
    # Imported here so that `dcme-keras build --help` stays fast.
    import tensorflow_datasets as tfds

    from tfds_cityscapes.cityscapes_instances import Builder

    names = [c.name for c in Builder.BUILDER_CONFIGS]
    if config not in names:
        raise UserInputError(f"--config {config!r} is unknown; use one of {', '.join(names)}")
    builder = Builder(config=config, data_dir=os.fspath(Path(data_dir).expanduser()))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
    return {name: split.num_examples for name, split in builder.info.splits.items()}
