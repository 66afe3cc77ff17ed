"""Pixel-value augmentations of one image, with Pillow, on uint8 "L" or "RGB".

Each op takes the strength drawn for that image and returns a new image; they
run in the pipeline's decode threads right after the geometry. Most are one
256-entry lookup table per channel (``Image.point``): 0.07-0.34 ms per 224 px
image on the development machine (sharpness, a 3x3 filter, 1.3 ms). Pillow's
``ImageOps``/``ImageEnhance`` are RandAugment's reference implementations
(the paper's, timm's and torchvision's); contrast and brightness keep the
formulas of Keras' ``RandomContrast``/``RandomBrightness``, which the presets
used before: a per-channel mean, and an added offset.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

_LEVELS = np.arange(256.0)


def contrast_brightness(image: Image.Image, contrast: float = 1.0, brightness: float = 0.0) -> Image.Image:
    """Scale each channel's distance from its mean by ``contrast``, then add
    ``brightness`` (in 0..255 units), clipping after each step."""
    bands = len(image.getbands())
    hist = np.asarray(image.histogram(), np.float64).reshape(bands, 256)
    mean = (hist @ _LEVELS / np.maximum(hist.sum(axis=1), 1.0))[:, None]
    values = np.clip((_LEVELS - mean) * contrast + mean, 0, 255)
    values = np.clip(values + brightness, 0, 255)
    return image.point(np.rint(values).astype(np.uint8).ravel().tolist())


def contrast(image: Image.Image, factor: float) -> Image.Image:
    return contrast_brightness(image, contrast=factor)


def brightness(image: Image.Image, delta: float) -> Image.Image:
    return contrast_brightness(image, brightness=delta)


def auto_contrast(image: Image.Image, _unused: float = 0.0) -> Image.Image:
    """Stretch each channel's darkest..brightest level to 0..255."""
    return ImageOps.autocontrast(image)


def equalize(image: Image.Image, _unused: float = 0.0) -> Image.Image:
    """Histogram equalisation, per channel of this image only."""
    return ImageOps.equalize(image)


def solarize(image: Image.Image, threshold: float) -> Image.Image:
    """Invert the levels at or above ``threshold``."""
    return ImageOps.solarize(image, threshold)


def posterize(image: Image.Image, bits: float) -> Image.Image:
    """Keep the top ``bits`` bits of each level."""
    return ImageOps.posterize(image, int(bits))


def color(image: Image.Image, factor: float) -> Image.Image:
    """Blend with the image's greyscale: 0 grey, 1 unchanged, >1 more saturated."""
    return ImageEnhance.Color(image).enhance(factor)


def sharpness(image: Image.Image, factor: float) -> Image.Image:
    """Blend with a smoothed copy: 0 smoothed, 1 unchanged, >1 sharper."""
    return ImageEnhance.Sharpness(image).enhance(factor)
