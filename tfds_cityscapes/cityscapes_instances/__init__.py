"""tfds_cityscapes/cityscapes_instances."""
