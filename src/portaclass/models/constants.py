"""Names and numbers several model families share (timm keeps its ImageNet
statistics in ``timm/data/constants.py`` for the same reason)."""

# ImageNet channel statistics for inputs scaled to [0, 1] (torchvision's).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Layer names of the classifier head every builder attaches, and of the
# nested feature extractor of a transfer or keras.applications model. Later
# commands find these layers by name (freezing, Grad-CAM, export).
BACKBONE = "backbone"
HEAD_POOL = "avg_pool"
HEAD_DROPOUT = "head_dropout"
HEAD_DENSE = "predictions"
INPUT = "image"

# How a transfer base's BatchNormalization behaves (``build_transfer_model``).
BATCHNORM_MODES = ("frozen", "adapt")
