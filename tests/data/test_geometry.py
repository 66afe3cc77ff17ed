"""Per-image affine maps: composition order, Pillow's conventions, and the
cheap crop path giving exactly what the resampling path gives."""

from __future__ import annotations

import numpy as np
from PIL import Image

from portaclass.data.geometry import chain, mirror, rotation, shear, shift, warp


def noise(height=30, width=40, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (height, width, 3), np.uint8))


def resampled(image, matrix, size_hw):
    height, width = size_hw
    return image.transform((width, height), Image.AFFINE, tuple(matrix[:2].ravel()),
                           resample=Image.BILINEAR, fillcolor=0)


def test_windows_and_flips_are_cut_exactly_as_resampling_would():
    image = noise()
    for matrix in (shift(3, 4), chain(shift(3, 4), mirror(20)), chain(shift(-5, 2), mirror(20)),
                   shift(25, 0)):
        np.testing.assert_array_equal(np.asarray(warp(image, matrix, (24, 20))),
                                      np.asarray(resampled(image, matrix, (24, 20))))
    window = np.asarray(warp(image, shift(-2, 0), (30, 40)))
    assert (window[:, :2] == 0).all()  # beyond the image: black, as the resampled path fills


def test_rotation_turns_as_pillow_rotate_does_and_resamples_as_smoothly():
    rows, cols = np.mgrid[0:41, 0:41]
    ramp = Image.fromarray(np.stack([rows * 6, cols * 6, 255 - rows * 3], axis=-1).astype(np.uint8))
    ours = np.asarray(warp(ramp, rotation(12.0, (20.5, 20.5)), (41, 41)), np.float64)
    pillow = np.asarray(ramp.rotate(12.0, resample=Image.BILINEAR), np.float64)
    # the same turn, sampled at 2x2 points per pixel instead of bilinearly:
    # within a level or two on a smooth image, nowhere more than a few (away
    # from the corners, where each blends in the black fill its own way)
    difference = np.abs(ours - pillow)[8:33, 8:33]
    assert difference.mean() < 1.5 and difference.max() <= 6


def test_shear_keeps_the_top_left_corner_in_place():
    image = noise()
    sheared = np.asarray(warp(image, shear(x_factor=0.2), (30, 40)))
    np.testing.assert_array_equal(sheared[0, :], np.asarray(image)[0, :])  # row 0 does not move
    assert not np.array_equal(sheared[-1], np.asarray(image)[-1])


def test_chain_applies_the_steps_in_the_order_given():
    """Cut a window at (x=5, y=0), then flip it: column 0 of the result is
    the window's last column, i.e. the source's column 5 + 19."""
    image = noise()
    out = np.asarray(warp(image, chain(shift(5, 0), mirror(20)), (30, 20)))
    np.testing.assert_array_equal(out[:, 0], np.asarray(image)[:, 24])
