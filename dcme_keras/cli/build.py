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

from absl import flags

from dcme_keras.data.build import build_dataset
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


def main(argv: list[str]) -> None:
    """Builds the dataset and prints its split sizes."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; build takes only --flags")
    sizes = build_dataset(_MANUAL_DIR.value, _DATA_DIR.value, config=_CONFIG.value)
    counts = ", ".join(f"{split} {n}" for split, n in sizes.items())
    print(f"cityscapes_instances/{_CONFIG.value} in {_DATA_DIR.value}: {counts}")
