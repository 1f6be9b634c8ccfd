"""TFDS dataset builders of dcme-keras.

Each dataset lives in its own folder in the TFDS template layout (builder, test,
dummy_data/, checksums.tsv, README.md, CITATIONS.bib). Import a dataset's package to
register its builder, e.g. ``import tfds_cityscapes.cityscapes_instances``.
"""
