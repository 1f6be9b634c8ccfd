"""cityscapes_instances: Cityscapes gtFine instance ground truth as a TFDS dataset.

Importing this package registers the builder under the name ``cityscapes_instances``.
"""

from tfds_cityscapes.cityscapes_instances.cityscapes_instances_dataset_builder import (
    Builder,
    CityscapesInstancesConfig,
)

__all__ = ["Builder", "CityscapesInstancesConfig"]
