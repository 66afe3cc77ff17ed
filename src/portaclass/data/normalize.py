"""Pixel normalisation as a model declares it (``models.Preprocessing``)."""

from __future__ import annotations

import numpy as np


def normalize(images: np.ndarray, preprocessing) -> np.ndarray:
    """uint8-range channels_last images -> float32 model inputs."""
    x = images.astype(np.float32) * np.float32(preprocessing.scale) + np.float32(preprocessing.offset)
    if preprocessing.mean is not None:
        channels = x.shape[-1]
        mean = np.asarray(preprocessing.mean, np.float32)[:channels]
        std = np.asarray(preprocessing.std, np.float32)[:channels]
        x = (x - mean) / std
    return x
