"""Normalisation as the model declares it."""

from __future__ import annotations

import numpy as np

from portaclass.data.normalize import normalize
from portaclass.models import Preprocessing, get_spec


def test_default_scales_to_unit_range():
    images = np.array([[[[0, 128, 255]]]], np.uint8)
    np.testing.assert_allclose(normalize(images, Preprocessing()), [[[[0, 128 / 255, 1]]]], rtol=1e-6)


def test_caffe_style_flips_to_bgr_then_subtracts_the_bgr_mean():
    prep = get_spec("resnet50").preprocessing
    assert prep.channel_order == "bgr"
    images = np.array([[[[10, 20, 30]]]], np.uint8)  # R, G, B
    expected = (np.array([30, 20, 10], np.float32) * prep.scale + prep.offset - np.array(prep.mean)) / np.array(prep.std or (1, 1, 1))
    np.testing.assert_allclose(normalize(images, prep)[0, 0, 0], expected, rtol=1e-5)


def test_mobilenet_v2_inputs_land_in_minus_one_to_one():
    out = normalize(np.array([[[[0, 255, 127]]]], np.uint8), get_spec("mobilenet_v2").preprocessing)
    assert out.min() >= -1.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[0, 0, 0, :2], [-1.0, 1.0], atol=1e-6)
