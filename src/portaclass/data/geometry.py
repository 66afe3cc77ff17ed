"""Per-image geometry as one affine map, applied by Pillow in the decode threads.

Every geometric step of a preset (the crop window, the flip, the rotation,
RandAugment's shears and translations) is an affine map of pixel
coordinates. They compose into one 3x3 matrix per image, and Pillow
resamples the image once (``Image.transform``, black fill, 2x2
supersampled: see ``warp``), in the pipeline's worker threads: 0.9 ms per
224 px RGB image on the 2-core development machine, against ~0.4 s per
batch of 32 (12 ms an image) for Keras' affine layers on the torch backend.
A map that only shifts and mirrors (``light``, and every image that drew no
rotation or shear) is cut with ``Image.crop`` and ``transpose`` instead:
exact, and 20x cheaper again.

Matrices map *output* coordinates to *input* coordinates (what Pillow's
AFFINE data means), in continuous pixel units with pixel centres at +0.5,
and x (column) before y (row).
"""

from __future__ import annotations

from functools import reduce

import numpy as np
from PIL import Image

# A coefficient this close to an integer is one (float error of composing).
_EXACT = 1e-6
SUPERSAMPLE = 2


def shift(dx: float, dy: float) -> np.ndarray:
    """Output point (x, y) reads input point (x + dx, y + dy): a window whose
    top-left corner is at (dx, dy), or content moved left/up by (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def mirror(width: float) -> np.ndarray:
    """A left-right flip of an image ``width`` pixels wide."""
    return np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def rotation(degrees: float, centre_xy: tuple[float, float]) -> np.ndarray:
    """Turn the content by ``degrees`` about ``centre_xy``, counter-clockwise
    on screen for positive angles (as ``PIL.Image.rotate``)."""
    theta = np.radians(degrees)
    cos, sin = np.cos(theta), np.sin(theta)
    cx, cy = centre_xy
    turn = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    return shift(cx, cy) @ turn @ shift(-cx, -cy)


def shear(x_factor: float = 0.0, y_factor: float = 0.0) -> np.ndarray:
    """Shear about the top-left corner, as AutoAugment, timm and Keras'
    ``RandomShear`` do: output (x, y) reads input (x + kx * y, y + ky * x)."""
    return np.array([[1.0, x_factor, 0.0], [y_factor, 1.0, 0.0], [0.0, 0.0, 1.0]])


def chain(*maps: np.ndarray) -> np.ndarray:
    """One matrix for the maps of steps applied to the image in the order
    given (the first step's map is applied last to output coordinates)."""
    return reduce(np.matmul, maps, np.eye(3))


def warp(image: Image.Image, matrix: np.ndarray, size_hw: tuple[int, int]) -> Image.Image:
    """``image`` resampled through ``matrix`` onto a (height, width) canvas;
    points that fall outside the image are black."""
    height, width = size_hw
    (a, b, c), (d, e, f) = matrix[0], matrix[1]
    shift_only = (abs(b) < _EXACT and abs(d) < _EXACT and abs(abs(a) - 1) < _EXACT
                  and abs(e - 1) < _EXACT and _is_integer(c) and _is_integer(f))
    if shift_only:
        left = round(c) if a > 0 else round(c) - width
        top = round(f)
        window = image.crop((left, top, left + width, top + height))  # black outside the image
        return window.transpose(Image.FLIP_LEFT_RIGHT) if a < 0 else window
    # Nearest neighbours on a grid SUPERSAMPLE times finer, averaged over
    # each SUPERSAMPLE x SUPERSAMPLE block: 0.9 ms per 224 px RGB image on
    # the development machine, against 1.9 ms for Pillow's bilinear affine
    # (a generic per-pixel filter), and ~1 level of 255 away from it on
    # average on photos (plain nearest: 0.2 ms, 2.5 levels, jagged edges).
    fine = matrix @ np.diag([1 / SUPERSAMPLE, 1 / SUPERSAMPLE, 1.0])
    sampled = image.transform((width * SUPERSAMPLE, height * SUPERSAMPLE), Image.AFFINE,
                              tuple(fine[:2].ravel()), resample=Image.NEAREST, fillcolor=0)
    return sampled.reduce(SUPERSAMPLE)


def _is_integer(value: float) -> bool:
    return abs(value - round(value)) < _EXACT
