"""Names of model outputs, targets and dataset features, defined once.

The losses, the tf.data targets, the post-processing and the TFDS builder all use these
constants, so a renamed key fails loudly in one place instead of silently in four.
"""

# --- Model outputs / training targets (DCME network) ---
DCME = "dcme"  # [B, H, W, 2] float32, (dy, dx) pixels to the instance's center of mass
GRID = "grid"  # [B, H/Gs, W/Gs, num_classes + 1] logits; class 0 is background
# Optional, beyond the paper: [B, H, W, 1] logits that a pixel belongs to an instance
# (target: 1 on instance pixels, 0 elsewhere, group / void pixels weighted 0). When a
# network has it, the decoder votes with sigmoid(logits) >= 0.5 as its foreground.
FOREGROUND = "foreground"

# --- Model outputs / training targets (extreme-points annotator) ---
MASK = "mask"  # [B, 128, 128, 1] logits of the object's mask

# --- Dataset features (tfds_cityscapes/cityscapes_instances) ---
IMAGE_ID = "image_id"
IMAGE = "image"  # [H, W, 3] uint8
INSTANCE_IDS = "instance_ids"  # [H, W, 1] uint16, class_id * 1000 + k, k from 0
LABEL_IDS = "label_ids"  # [H, W, 1] uint8, Cityscapes label ids
OBJECTS = "objects"
OBJECT_ID = "id"  # int32, instance id (or plain label id for groups / polygon-only objects)
OBJECT_LABEL = "label"  # int32, Cityscapes label id
OBJECT_BBOX = "bbox"  # tfds BBox, normalized (ymin, xmin, ymax, xmax)
OBJECT_AREA = "area"  # int32, pixels at full resolution
OBJECT_IS_CROWD = "is_crowd"  # bool, group region
OBJECT_POLYGON = "polygon"  # [P, 2] float32, (x, y) pixels; empty when derived from ids
