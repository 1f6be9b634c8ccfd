"""``dcme-keras synth``: write synthetic street scenes in the Cityscapes layout.

This is the package's embedded default data (no Cityscapes copy can be downloaded
everywhere). The output is what the official zips hold once extracted, so every other
command reads it like the real dataset::

    dcme-keras synth --out /tmp/synth --frames 40
    dcme-keras synth --out /tmp/synth_small --frames 200 --size 256x512 --seed 1
    dcme-keras build --manual_dir /tmp/synth --data_dir /tmp/tfds

An existing ``--out`` must be empty or an earlier ``synth`` output, which is replaced.
"""

from __future__ import annotations

from absl import flags

from dcme_keras.cli.common import parse_hw
from dcme_keras.errors import UserInputError

_OUT = flags.DEFINE_string(
    "out", None, "dataset root to write leftImg8bit/ and gtFine/ into; must be new, empty, "
    "or an earlier synth output (replaced)")
_FRAMES = flags.DEFINE_integer("frames", 40, "number of frames to write (train + val)")
_SIZE = flags.DEFINE_string("size", "512x1024", "frame size HxW in pixels (real Cityscapes "
                            "is 1024x2048; half of it is the default)")
_SEED = flags.DEFINE_integer("seed", 0, "random seed; the same flags write the same bytes")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.25, "share of frames in the val split (at least one frame each "
    "when --frames >= 2)")
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar")
flags.mark_flag_as_required("out")


def main(argv: list[str]) -> None:
    """Writes the frames and prints one line with the split sizes and instance counts."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; synth takes only --flags")
    # Imported here so that `dcme-keras synth --help` and flag errors stay fast.
    from dcme_keras.data.synthetic import write_dataset

    size = parse_hw(_SIZE.value)
    summary = write_dataset(_OUT.value, frames=_FRAMES.value, size=size, seed=_SEED.value,
                            val_fraction=_VAL_FRACTION.value, progress=_PROGRESS.value)
    frames = ", ".join(f"{split} {n}" for split, n in summary["frames"].items())
    train = summary["instances"]["train"]
    instances = ", ".join(f"{name} {n}" for name, n in train.items())
    print(f"synthetic Cityscapes {size[0]}x{size[1]} in {_OUT.value}: {frames} frames; "
          f"train instances: {instances}")
