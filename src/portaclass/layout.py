"""channels_last is the canonical layout in portaclass' public API and files;
these functions convert at the edges, for a backend whose Keras
``image_data_format`` is channels_first (common with PyTorch)."""

from __future__ import annotations

import numpy as np

from portaclass._lazy import keras
from portaclass.errors import UsageError

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"


def data_format() -> str:
    return keras.config.image_data_format()


def model_input_shape(shape_hwc: tuple[int, int, int], fmt: str | None = None) -> tuple[int, int, int]:
    """The Keras ``Input`` shape for a canonical (H, W, C) image shape."""
    check_image_shape(shape_hwc)
    fmt = fmt or data_format()
    h, w, c = shape_hwc
    return (c, h, w) if fmt == CHANNELS_FIRST else (h, w, c)


def check_image_shape(shape_hwc) -> None:
    if len(shape_hwc) != 3 or any(int(d) < 1 for d in shape_hwc):
        raise UsageError(f"image shape must be (height, width, channels), got {tuple(shape_hwc)}")
    if shape_hwc[-1] not in (1, 3, 4):
        raise UsageError(
            f"image shape {tuple(shape_hwc)} has {shape_hwc[-1]} channels; expected 1, 3 or 4 "
            "(portaclass takes channels_last (H, W, C) shapes)"
        )


def to_channels_first(batch: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW (or HWC -> CHW)."""
    axes = (0, 3, 1, 2) if batch.ndim == 4 else (2, 0, 1)
    return np.ascontiguousarray(np.transpose(batch, axes))


def to_channels_last(batch: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC (or CHW -> HWC)."""
    axes = (0, 2, 3, 1) if batch.ndim == 4 else (1, 2, 0)
    return np.ascontiguousarray(np.transpose(batch, axes))


def to_model_layout(batch: np.ndarray, fmt: str | None = None) -> np.ndarray:
    """A canonical channels_last batch in the layout the model's input expects."""
    fmt = fmt or data_format()
    return to_channels_first(batch) if fmt == CHANNELS_FIRST else batch


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: str = "valid",
                     dilation: int = 1) -> int:
    """Spatial output size of a Keras Conv2D/pooling layer along one axis."""
    if padding == "same":
        return -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    return (size - effective) // stride + 1
