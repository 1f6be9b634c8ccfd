"""``dcme-keras evaluate``: score a network, ``evaluate dcme ...`` or ``evaluate annotator ...``.

    dcme-keras evaluate dcme --model /tmp/dcme/best.keras --cityscapes_root /tmp/synth \\
        --out /tmp/eval --oracles --figures 4
    dcme-keras evaluate annotator --model /tmp/annotator/best.keras ...

``dcme-keras evaluate <network> --help`` lists the flags of one evaluator. Each
network's evaluator is its own module, ``dcme_keras.cli.evaluate_<network>``, and only
the chosen one is imported.
"""

from __future__ import annotations

import sys

from dcme_keras.cli.common import route

#: network -> one-line help. The evaluator is ``dcme_keras.cli.evaluate_<network>``.
NETWORKS: dict[str, str] = {
    "dcme": "official Cityscapes AP of the DCME network, and the paper's oracles",
    "annotator": "mask and polygon quality of the extreme-points annotator",
}


def run(argv: list[str]) -> None:
    """Entry point: ``argv`` is ``["dcme-keras evaluate", network, --flags...]``."""
    route(argv, NETWORKS, "dcme_keras.cli.evaluate_")


if __name__ == "__main__":
    run(["dcme-keras evaluate"] + sys.argv[1:])
