"""TFDS's declarative builder test of cityscapes_instances on dummy_data/.

dummy_data/ holds 2 train and 1 validation frame at 64x128 in the extracted layout,
written by ``python -m tfds_cityscapes.cityscapes_instances.make_dummy_data``. The
DatasetBuilderTestCase builds every config from it with ``os`` and ``open`` mocked out,
checks the split sizes, that no key holds the dummy-data path and that splits do not
overlap.
"""

import tensorflow_datasets as tfds

from tfds_cityscapes.cityscapes_instances import cityscapes_instances_dataset_builder


class CityscapesInstancesTest(tfds.testing.DatasetBuilderTestCase):
    """Builds `full` and `half` from dummy_data/."""

    DATASET_CLASS = cityscapes_instances_dataset_builder.Builder
    SPLITS = {"train": 2, "validation": 1}


if __name__ == "__main__":
    tfds.testing.test_main()
