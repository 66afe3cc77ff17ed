"""Keras' 2D convolution on torch without its layout copies.

For channels_last tensors Keras 3.15's torch ``conv`` makes the input
contiguous in NCHW order (one copy), converts it to torch's channels_last
memory format (a second copy, back to the NHWC order it started in), and
makes the kernel (kh, kw, in, out) contiguous as channels_last
(out, in, kh, kw) (a third); autograd then copies each gradient back
through the same steps. Yet an NHWC tensor *is* an NCHW tensor in
channels_last memory format, and torch's convolution takes strided
kernels: ``permute`` views are enough. On portaclass' resnet18 these copies
were a sixth of the training step (``torch.profiler``; docs/benchmarks.md,
"Where each backend loses time").

This replaces ``keras.src.backend.torch.nn.conv`` for 2D channels_last
convolutions (depthwise ones included: Keras routes them through ``conv``)
and hands every other case to Keras' own function. Same kernel, same
arithmetic: only where the bytes sit changes. Models and files are
untouched. ``PORTACLASS_TORCH_LEAN_CONV=0`` turns it off.
"""

from __future__ import annotations

import functools

import torch
from keras.src.backend import standardize_data_format
from keras.src.backend.torch import nn as keras_torch_nn
from keras.src.backend.torch.core import convert_to_tensor
from keras.src.utils.argument_validation import standardize_tuple

from portaclass.backend._common import replace_once

SWITCH = "PORTACLASS_TORCH_LEAN_CONV"


def _channels_last_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Keras' (kh, kw, in, out) kernel as torch's (out, in, kh, kw) in
    channels_last memory, i.e. stored (out, kh, kw, in): one 2D transpose
    of the (kh*kw*in, out) matrix, 3-4x faster than the 4D permute copy
    (1.1 vs 4.6 ms for a 3x3x512x512 kernel on the 2-core CPU)."""
    kh, kw, cin, cout = kernel.shape
    stored = kernel.reshape(-1, cout).t().contiguous().view(cout, kh, kw, cin)
    return stored.permute(0, 3, 1, 2)


def _lean_conv(keras_conv):
    @functools.wraps(keras_conv)
    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        data_format = standardize_data_format(data_format)
        if data_format != "channels_last" or len(inputs.shape) != 4 or len(kernel.shape) != 4:
            return keras_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
        x = convert_to_tensor(inputs).permute(0, 3, 1, 2)  # NCHW view of the NHWC bytes
        w = _channels_last_kernel(convert_to_tensor(kernel))
        if x.shape[1] % w.shape[1]:
            return keras_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
        strides = standardize_tuple(strides, 2, "strides")
        dilation_rate = standardize_tuple(dilation_rate, 2, "dilation_rate")
        pad = 0
        if padding == "same":  # Keras' rule: symmetric padding passed on, else padded here
            x, pad = keras_torch_nn._apply_same_padding(x, w.shape[2:], strides, "channels_first",
                                                        "conv", dilation_rate)
        outputs = torch.nn.functional.conv2d(x, w, stride=strides, padding=pad, dilation=dilation_rate,
                                             groups=x.shape[1] // w.shape[1])
        return outputs.permute(0, 2, 3, 1)  # NHWC view: contiguous, as the input was

    conv.portaclass_lean = True
    return conv


def use_lean_conv() -> None:
    """Route Keras' torch ``conv`` through ``_lean_conv``."""
    replace_once(keras_torch_nn, "conv", _lean_conv, SWITCH)
