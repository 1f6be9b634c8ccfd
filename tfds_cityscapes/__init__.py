"""TFDS dataset builders of dcme-keras.

Each dataset lives in its own folder in the TFDS template layout (builder, test,
dummy_data/, checksums.tsv, README.md, CITATIONS.bib). Importing this package registers
every builder with TFDS, so ``import tfds_cityscapes`` is enough for
``tfds.builder("cityscapes_instances")``.
"""

from tfds_cityscapes import cityscapes_instances  # noqa: F401  (registers the builder)
