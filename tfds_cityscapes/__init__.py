"""tfds_cityscapes."""
