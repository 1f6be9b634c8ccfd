"""``dcme-keras evaluate dcme``: official Cityscapes AP of a DCME network and the paper's oracles.

    dcme-keras evaluate dcme --model /tmp/dcme_tiny/best.keras --cityscapes_root /tmp/synth \\
        --split val --out /tmp/eval --oracles --figures 4

Reads a Cityscapes-layout folder (``gtFine/`` and ``leftImg8bit/``: real Cityscapes or
what ``dcme-keras synth`` writes), because the official evaluator scores against the
ground-truth files. Every image is resized to the model's input size; masks are scored
at the ground truth's full resolution.

Tables (paper 000, Sec. V; AP and AP50 in percent):

* always, Table I (left): instances decoded from the predicted DCME, classes and scores
  from the grid cell of their center of mass;
* with ``--oracles``: Table I (right), the ground truth through a DCME round trip at
  ``--oracle_scale``; Tables II and III, the instance oracle (ground-truth instances,
  encoder classes, plus the classification accuracy); Table IV, the class oracle
  (decoded instances, ground-truth classes); Table V, the detection accuracy at IoU 0.25,
  0.5 and 0.75.

Each table prints as text, labelled with the data (marked "synthetic" for a
``dcme-keras synth`` folder), and with ``--out`` is saved as ``<table>.json`` plus all of
them in ``tables.txt``. ``--figures N`` saves, for the first N frames, the paper's Fig. 4
(input, grid class map, instance masks) and Fig. 2 (predicted and ground-truth DCME
magnitudes) as PNGs in ``--out/figures``. With ``--oracles`` the network runs once per
image; its outputs are kept in a temporary folder (about 4 MB per 512x1024 image) for
the other tables.
"""

from __future__ import annotations

import os

from absl import flags

from dcme_keras import evaluate_dcme, saving
from dcme_keras.cli.common import define_once, parse_hw
from dcme_keras.errors import UserInputError


@define_once
def define_flags() -> None:
    """Define this command's absl flags, once per process."""
    flags.DEFINE_string("model", None, "the DCME network, a .keras file written by "
                        "`dcme-keras train dcme` (best.keras or last.keras)", required=True)
    flags.DEFINE_string("cityscapes_root", None, "Cityscapes-layout folder holding gtFine/ "
                        "and leftImg8bit/ (real Cityscapes or `dcme-keras synth --out`)",
                        required=True)
    flags.DEFINE_string("split", "val", "split folder under gtFine/ to evaluate")
    flags.DEFINE_string("image_size", None, "network input HxW; default: the model's own")
    flags.DEFINE_integer("max_images", None, "evaluate only the first N frames (name order)",
                         lower_bound=1)
    flags.DEFINE_string("out", None, "folder for the JSON tables, tables.txt and figures; "
                        "default: print only")
    flags.DEFINE_bool("oracles", False, "also the GT, instance and class oracles and the "
                      "detection accuracy (Tables I right to V)")
    flags.DEFINE_float("oracle_scale", 0.5, "resolution of the GT oracle's round trip "
                       "relative to the ground truth (the paper: 0.5 = 512x1024)")
    flags.DEFINE_integer("figures", 0, "save Fig. 4 and DCME magnitude PNGs of the first N "
                         "frames into --out/figures", lower_bound=0)
    flags.DEFINE_bool("progress", True, "show progress bars")


def main(argv: list[str]) -> None:
    """Evaluates and prints the tables."""
    if len(argv) > 1:
        raise UserInputError(f"unexpected argument(s) {argv[1:]}; evaluate dcme takes only "
                             "--flags")
    f = flags.FLAGS
    if not 0.0 < f.oracle_scale <= 1.0:
        raise UserInputError(f"--oracle_scale {f.oracle_scale} must be in (0, 1], e.g. 0.5")
    image_size = parse_hw(f.image_size) if f.image_size else None
    model = saving.load_model(f.model, kind="dcme")
    tables = evaluate_dcme.evaluate_model(
        model, f.cityscapes_root, split=f.split, image_size=image_size,
        max_images=f.max_images, oracles=f.oracles, oracle_scale=f.oracle_scale,
        num_figures=f.figures, out=f.out, model_name=os.fspath(f.model),
        progress=f.progress)
    print(evaluate_dcme.format_tables(tables, oracle_scale=f.oracle_scale))
    if f.out:
        print(f"\nsaved {', '.join(f'{n}.json' for n in tables)} and tables.txt"
              f"{' and figures/' if f.figures else ''} in {f.out}")
