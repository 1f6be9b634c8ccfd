"""``dcme-keras build``: build the cityscapes_instances TFDS dataset from a manual dir.

The ``tfds`` command-line tool does not import on this stack (it needs apache_beam and
mlcroissant), so this subcommand calls ``download_and_prepare`` from Python::

    dcme-keras build --manual_dir ~/cityscapes --data_dir ~/tensorflow_datasets
    dcme-keras build --manual_dir /tmp/synth --data_dir /tmp/tfds --config half

The manual dir holds the official ``leftImg8bit_trainvaltest.zip`` and
``gtFine_trainvaltest.zip`` (read in place), or the extracted ``leftImg8bit/`` and
``gtFine/`` folders, for example what ``dcme-keras synth`` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags

from dcme_keras.errors import UserInputError

_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None,
    "folder holding leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "cityscapes-dataset.com, or the extracted leftImg8bit/ and gtFine/ folders")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "where TFDS writes the prepared dataset; pass the same folder to "
    "tfds.load(..., data_dir=...)")
_CONFIG = flags.DEFINE_string(
    "config", "full", "builder config: full (source resolution) or half (half per side)")
flags.mark_flags_as_required(["manual_dir", "data_dir"])


def build_dataset(manual_dir: str | os.PathLike, data_dir: str | os.PathLike, *,
                  config: str = "full") -> dict[str, int]:
    """Prepares ``cityscapes_instances/<config>`` under ``data_dir``.

    A dataset that is already prepared there is reused, not rebuilt.

    Args:
      manual_dir: folder with the official zips or the extracted Cityscapes folders.
      data_dir: TFDS data dir to write into.
      config: name of a ``CityscapesInstancesConfig``, ``"full"`` or ``"half"``.

    Returns:
      Number of examples per split, e.g. ``{"train": 2975, "validation": 500}``.

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


def main(argv: list[str]) -> None:
    """Builds the dataset and prints its split sizes."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; build takes only --flags")
    sizes = build_dataset(_MANUAL_DIR.value, _DATA_DIR.value, config=_CONFIG.value)
    counts = ", ".join(f"{split} {n}" for split, n in sizes.items())
    print(f"cityscapes_instances/{_CONFIG.value} in {_DATA_DIR.value}: {counts}")
