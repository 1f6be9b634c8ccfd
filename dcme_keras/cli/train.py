"""``dcme-keras train``: train a network, ``train dcme ...`` or ``train annotator ...``.

    dcme-keras train dcme --data_dir /tmp/tfds --preset tiny --model_dir /tmp/dcme
    dcme-keras train annotator --data_dir /tmp/tfds --model_dir /tmp/annotator

``dcme-keras train <network> --help`` lists the flags of one trainer. Each network's
flags are their own module, ``dcme_keras.cli.train_<network>``, which calls the library's
trainer ``dcme_keras.train_<network>``; only the chosen one is imported, so the two
trainers' flags (both have ``--data_dir``, ``--epochs``, ...) never meet in one process.
"""

from __future__ import annotations

import sys

from dcme_keras.cli.common import route

#: network -> one-line help. Its flags are ``dcme_keras.cli.train_<network>``.
NETWORKS: dict[str, str] = {
    "dcme": "the DCME instance-segmentation network (paper 000)",
    "annotator": "the extreme-points annotator U-Net (paper 003)",
}


def run(argv: list[str]) -> None:
    """Entry point: ``argv`` is ``["dcme-keras train", network, --flags...]``."""
    route(argv, NETWORKS, "dcme_keras.cli.train_")


if __name__ == "__main__":
    run(["dcme-keras train"] + sys.argv[1:])
