"""Pixel normalisation as a model declares it (``models.Preprocessing``)."""

from __future__ import annotations

import numpy as np


def normalize(images: np.ndarray, preprocessing) -> np.ndarray:
    """uint8-range channels_last images -> float32 model inputs.

    ``channel_order="bgr"`` (Caffe-style weights such as ResNet50's) flips RGB
    to BGR first; ``mean``/``std`` are then given in BGR order too."""
    if getattr(preprocessing, "channel_order", "rgb") == "bgr" and images.shape[-1] == 3:
        images = images[..., ::-1]
    x = images.astype(np.float32) * np.float32(preprocessing.scale) + np.float32(preprocessing.offset)
    if preprocessing.mean is not None:
        channels = x.shape[-1]
        mean = np.asarray(preprocessing.mean, np.float32)[:channels]
        std = np.asarray(preprocessing.std, np.float32)[:channels]
        x = (x - mean) / std
    return x
