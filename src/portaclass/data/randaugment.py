"""RandAugment (Cubuk et al., 2019), drawn per image and applied with Pillow.

Each image draws ``num_ops`` operations, uniformly from the paper's 14, and
a strength for each within the range that the global ``magnitude`` allows;
both come from the image's own random source (``data/draws.py``), so they
do not depend on the batch or on thread timing. ``keras.layers.RandAugment``
is not used, for three reasons, all measured (docs/benchmarks.md):

* it computes every one of its 11 ops on the whole batch at each step and
  keeps one (a graph-friendly ``where``): ~2.8 s per 32 images of 224 px on
  the torch backend, slower than decoding them;
* it draws one op pair per batch, so all images of a batch get the same pair;
* its random state advances with each call, so which batch gets which draw
  depends on which worker thread calls first.

The geometric ops (rotate, shear, translate) join the image's one affine
map (``data/geometry.py``), so an image is resampled once whatever it drew;
the pixel-value ops (``data/tonal.py``) follow, in the order drawn. Doing
the geometry first is the one departure from the paper's strict sequence:
when equalize or auto-contrast is drawn with a rotation, it sees the black
corners whichever came first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portaclass.data import geometry, tonal
from portaclass.errors import UsageError

# The paper's maximum strength of each op (AutoAugment's ranges); ``magnitude``
# in [0, 1] scales all of them. 0.5 is RandAugment's M=5 of 10.
MAX_SHEAR = 0.3  # shear factor
MAX_TRANSLATE = 0.45  # fraction of the image side (150 px of 331 in the paper)
MAX_ROTATE_DEGREES = 30.0
MAX_ENHANCE = 0.9  # colour / contrast / sharpness factor 1 +- 0.9: the paper's 0.1..1.9
MAX_BRIGHTNESS = 0.4  # an offset, as a fraction of 0..255 (Keras' RandomBrightness formula)
MAX_POSTERIZE_DROP_BITS = 4
DEFAULT_MAGNITUDE = 0.5

OPS = ("identity", "auto_contrast", "equalize", "rotate", "solarize", "color", "posterize",
       "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")
GEOMETRIC = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})
# Ops that need three channels (a greyscale image has no colour to change).
COLOUR_ONLY = frozenset({"color"})

_TONAL = {
    "auto_contrast": tonal.auto_contrast,
    "equalize": tonal.equalize,
    "solarize": tonal.solarize,
    "color": tonal.color,
    "posterize": tonal.posterize,
    "contrast": tonal.contrast,
    "brightness": tonal.brightness,
    "sharpness": tonal.sharpness,
}


@dataclass(frozen=True)
class Op:
    """One drawn op and its strength: degrees (rotate), a shear factor, a
    fraction of the side (translate), an enhance factor (color, contrast,
    sharpness), a level offset (brightness), a threshold (solarize) or a
    bit count (posterize); unused by identity, auto_contrast and equalize."""

    name: str
    value: float = 0.0


class RandAugment:
    """Draws ops per image (``draw``); ``geometry`` and ``tone`` apply them."""

    def __init__(self, num_ops: int = 2, magnitude: float = DEFAULT_MAGNITUDE):
        if not 0.0 <= magnitude <= 1.0:
            raise UsageError.for_option("magnitude", f"must be in [0, 1]; received {magnitude}")
        self.num_ops = num_ops
        self.magnitude = magnitude

    @staticmethod
    def ops_for(channels: int) -> tuple[str, ...]:
        """The ops that apply to images of ``channels``."""
        return tuple(op for op in OPS if channels == 3 or op not in COLOUR_ONLY)

    def draw(self, rng: np.random.Generator, channels: int = 3) -> tuple[Op, ...]:
        """``num_ops`` ops, each with its strength, from ``rng``."""
        allowed = self.ops_for(channels)
        picks = rng.integers(len(allowed), size=self.num_ops)
        return tuple(Op(allowed[k], self._strength(allowed[k], rng)) for k in picks)

    def _strength(self, name: str, rng: np.random.Generator) -> float:
        m = self.magnitude
        if name == "rotate":
            return float(rng.uniform(-1, 1) * MAX_ROTATE_DEGREES * m)
        if name in ("shear_x", "shear_y"):
            return float(rng.uniform(-1, 1) * MAX_SHEAR * m)
        if name in ("translate_x", "translate_y"):
            return float(rng.uniform(-1, 1) * MAX_TRANSLATE * m)
        if name in ("color", "contrast", "sharpness"):
            return float(1.0 + rng.uniform(-1, 1) * MAX_ENHANCE * m)
        if name == "brightness":
            return float(rng.uniform(-1, 1) * MAX_BRIGHTNESS * m * 255.0)
        if name == "solarize":  # levels above a threshold in [255 * (1 - m), 255] are inverted
            return float(255.0 * (1.0 - m * rng.uniform()))
        if name == "posterize":  # keep 8 - round(4m) .. 7 bits (Keras' RandomPosterization range)
            keep_min = 8 - int(round(MAX_POSTERIZE_DROP_BITS * m))
            return float(rng.integers(keep_min, 8)) if keep_min < 8 else 8.0
        return 0.0  # identity, auto_contrast, equalize: nothing to draw

    @staticmethod
    def geometry(ops: tuple[Op, ...], size_hw: tuple[int, int]) -> np.ndarray:
        """The affine map of the geometric ops, in the order drawn, on an
        image of ``size_hw``."""
        height, width = size_hw
        maps = [_geometric_map(op, width, height) for op in ops if op.name in GEOMETRIC]
        return geometry.chain(*maps)

    @staticmethod
    def tone(image, ops: tuple[Op, ...]):
        """``image`` (PIL) through the pixel-value ops, in the order drawn."""
        for op in ops:
            apply = _TONAL.get(op.name)
            if apply is not None:
                image = apply(image, op.value)
        return image


def _geometric_map(op: Op, width: int, height: int) -> np.ndarray:
    if op.name == "rotate":
        return geometry.rotation(op.value, (width / 2, height / 2))
    if op.name == "shear_x":
        return geometry.shear(x_factor=op.value)
    if op.name == "shear_y":
        return geometry.shear(y_factor=op.value)
    if op.name == "translate_x":  # whole pixels: the window is then cut, not resampled
        return geometry.shift(round(op.value * width), 0)
    return geometry.shift(0, round(op.value * height))
