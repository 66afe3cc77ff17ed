"""RandAugment (Cubuk et al., 2019) built from Keras' own image-op layers.

Each image draws ``num_ops`` operations, uniformly from the paper's 14, and
applies them at one global ``magnitude``. ``keras.layers.RandAugment`` is not
used directly for two reasons, both measured (docs/benchmarks.md):

* it computes every one of its 11 ops on the whole batch at each step and
  keeps one (a graph-friendly ``where``), 11x the work: ~2 s per 32 images of
  224 px on the torch backend, slower than decoding them;
* it draws the ops once per batch, so all images of a batch get the same pair.

Here ops are drawn per image and each op runs only on the images that drew it.
Equalize is done in NumPy: ``keras.layers.Equalization`` pools one histogram
over the whole batch (each image should get its own) and on JAX counts its 256
bins in a Python loop (~0.25 s for 4 images).
On JAX, whose eager ops compile once per input shape, those sub-batches are
padded to a power of two so that a few shapes are compiled, not every size.
"""

from __future__ import annotations

import numpy as np

from portaclass._lazy import backend, keras

# Geometric ops leave black corners: "reflect" (Keras' default) is ~20x slower
# on the torch backend.
from portaclass.data.constants import FILL_MODE

# The paper's maximum strength of each op (AutoAugment's ranges); ``magnitude``
# in [0, 1] scales all of them. 0.5 is RandAugment's M=5 of 10.
MAX_SHEAR = 0.3  # shear factor
MAX_TRANSLATE = 0.45  # fraction of the image side (150 px of 331 in the paper)
MAX_ROTATE_DEGREES = 30.0
MAX_ENHANCE = 0.9  # colour / contrast / sharpness: the paper's 0.1..1.9 range
MAX_BRIGHTNESS = 0.4  # Keras adds a delta (fraction of the value range) instead of scaling
MAX_POSTERIZE_DROP_BITS = 4
DEFAULT_MAGNITUDE = 0.5

OPS = ("identity", "auto_contrast", "equalize", "rotate", "solarize", "color", "posterize",
       "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")
# Ops that need three channels (rgb_to_grayscale).
COLOUR_ONLY = frozenset({"color"})


def _op_layer(name: str, magnitude: float, seed: int, value_range):
    """The Keras layer for one op at ``magnitude`` (None for identity)."""
    layers = keras.layers
    m = magnitude
    fmt = {"data_format": "channels_last"}  # batches are NHWC whatever keras.config says
    geometric = {"fill_mode": FILL_MODE, "seed": seed, **fmt}
    tonal = {"value_range": value_range, "seed": seed, **fmt}
    if name == "identity":
        return None
    if name == "auto_contrast":
        return layers.AutoContrast(value_range=value_range, **fmt)
    if name == "equalize":
        return Equalize(value_range)
    if name == "rotate":
        return layers.RandomRotation(MAX_ROTATE_DEGREES / 360.0 * m, **geometric)
    if name == "solarize":
        # pixels above a threshold drawn in [255 * (1 - m), 255] are inverted
        return layers.Solarization(threshold_factor=(1.0 - m, 1.0), **tonal)
    if name == "color":
        return layers.RandomColorDegeneration(MAX_ENHANCE * m, **tonal)
    if name == "posterize":
        keep_min = 8 - int(round(MAX_POSTERIZE_DROP_BITS * m))
        return layers.RandomPosterization((keep_min, 8), **tonal)
    if name == "contrast":
        return layers.RandomContrast(MAX_ENHANCE * m, **tonal)
    if name == "brightness":
        return layers.RandomBrightness(MAX_BRIGHTNESS * m, **tonal)
    if name == "sharpness":
        return layers.RandomSharpness(MAX_ENHANCE * m, **tonal)
    if name == "shear_x":
        return layers.RandomShear(x_factor=MAX_SHEAR * m, y_factor=0.0, **geometric)
    if name == "shear_y":
        return layers.RandomShear(x_factor=0.0, y_factor=MAX_SHEAR * m, **geometric)
    if name == "translate_x":
        return layers.RandomTranslation(0.0, MAX_TRANSLATE * m, **geometric)
    if name == "translate_y":
        return layers.RandomTranslation(MAX_TRANSLATE * m, 0.0, **geometric)
    raise ValueError(f"unknown RandAugment op {name!r}")


class Equalize:
    """Histogram equalisation of each image and channel (PIL's ``equalize``
    with Keras' lookup-table formula), NumPy, NHWC."""

    def __init__(self, value_range=(0, 255)):
        self.value_range = value_range

    def __call__(self, images, training: bool = True) -> np.ndarray:
        lo, hi = self.value_range
        x = np.asarray(images, dtype=np.float32)
        if not training:
            return x
        n, h, w, c = x.shape
        levels = np.clip((x - lo) * 255.0 / (hi - lo), 0, 255).astype(np.int64)
        # one histogram per (image, channel): offset each row's bins, one bincount
        rows = levels.transpose(0, 3, 1, 2).reshape(n * c, h * w)
        offsets = (np.arange(n * c) * 256)[:, None]
        hist = np.bincount((rows + offsets).ravel(), minlength=n * c * 256).reshape(n * c, 256)
        cdf = np.cumsum(hist, axis=1)
        cdf_min = cdf[np.arange(n * c), np.argmax(cdf > 0, axis=1)][:, None]
        span = cdf[:, -1:] - cdf_min
        lut = np.clip(np.round((cdf - cdf_min) * 255.0 / np.where(span == 0, 1, span)), 0, 255)
        # a channel of one level has nothing to spread: leave it as it is
        flat = (np.count_nonzero(hist, axis=1) <= 1)[:, None]
        out = np.where(flat, rows, np.take_along_axis(lut, rows, axis=1))
        out = out.reshape(n, c, h, w).transpose(0, 2, 3, 1).astype(np.float32)
        return out * (hi - lo) / 255.0 + lo


class RandAugment:
    """Callable on NHWC float batches in ``value_range``; returns float32 NumPy.

    One per thread (the op layers hold seed state; Augmenter sees to it).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = DEFAULT_MAGNITUDE, seed: int = 0,
                 value_range=(0, 255)):
        if not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"RandAugment magnitude must be in [0, 1], got {magnitude}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.value_range = value_range
        self.layers = {name: _op_layer(name, magnitude, seed + 100 + k, value_range)
                       for k, name in enumerate(OPS)}
        self._rng = np.random.default_rng([seed, 7919])
        self.last_ops: np.ndarray | None = None  # (num_ops, batch) op indices of the last call

    def ops_for(self, channels: int) -> np.ndarray:
        """Indices into ``OPS`` of the ops that apply to ``channels``."""
        return np.array([k for k, op in enumerate(OPS) if channels == 3 or op not in COLOUR_ONLY])

    def __call__(self, images, training: bool = True) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if not training:
            return x
        allowed = self.ops_for(x.shape[-1])
        drawn = allowed[self._rng.integers(len(allowed), size=(self.num_ops, len(x)))]
        for step in drawn:
            out = x.copy()
            for k in np.unique(step):
                layer = self.layers[OPS[k]]
                if layer is None:
                    continue
                rows = np.flatnonzero(step == k)
                out[rows] = _apply(layer, x[rows], pad_to_power_of_two=backend.COMPILES_PER_SHAPE)
            x = np.clip(out, *self.value_range)
        self.last_ops = drawn
        return x


def _apply(layer, images: np.ndarray, pad_to_power_of_two: bool) -> np.ndarray:
    n = len(images)
    if pad_to_power_of_two and n & (n - 1):
        padded = 1 << n.bit_length()
        images = np.concatenate([images, np.repeat(images[-1:], padded - n, axis=0)])
    return backend.to_numpy(layer(images, training=True))[:n]
