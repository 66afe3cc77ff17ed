"""channels_last <-> channels_first at the edges, and shape math that matches Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from portaclass import layout
from portaclass.errors import UsageError


def test_round_trip_between_layouts():
    batch = np.arange(2 * 5 * 4 * 3).reshape(2, 5, 4, 3)
    first = layout.to_channels_first(batch)
    assert first.shape == (2, 3, 5, 4)
    assert first[1, 2, 4, 3] == batch[1, 4, 3, 2]
    np.testing.assert_array_equal(layout.to_channels_last(first), batch)
    assert layout.to_channels_first(batch[0]).shape == (3, 5, 4)


def test_model_input_shape_follows_the_data_format():
    assert layout.model_input_shape((32, 24, 3), "channels_last") == (32, 24, 3)
    assert layout.model_input_shape((32, 24, 3), "channels_first") == (3, 32, 24)


@pytest.mark.parametrize("shape", [(32, 32), (3, 32, 32), (32, 32, 0)])
def test_bad_image_shapes_say_what_is_expected(shape):
    with pytest.raises(UsageError, match="height, width, channels|channels"):
        layout.model_input_shape(shape, "channels_last")


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, "valid"), (7, 2, "same"), (3, 2, "valid"), (5, 3, "same")])
def test_conv_output_size_matches_keras(kernel, stride, padding):
    fmt = keras.config.image_data_format()
    shape = layout.model_input_shape((33, 33, 3))
    out = keras.layers.Conv2D(4, kernel, strides=stride, padding=padding).compute_output_shape((1, *shape))
    spatial = out[2] if fmt == "channels_first" else out[1]
    assert layout.conv_output_size(33, kernel, stride, padding) == spatial
