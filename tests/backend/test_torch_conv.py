"""torch only: portaclass' lean route for Keras' channels_last convolutions
computes exactly what Keras' own torch ``conv`` does, forward and backward,
for every kind of convolution the registry's models use."""

from __future__ import annotations

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="a torch backend patch")

CASES = {  # input (N, H, W, C), kernel (kh, kw, in, out), strides, padding, dilation
    "3x3 same": ((2, 9, 9, 4), (3, 3, 4, 6), 1, "same", 1),
    "3x3 stride 2 same (asymmetric pad)": ((2, 8, 8, 4), (3, 3, 4, 6), 2, "same", 1),
    "1x1 stride 2 valid": ((2, 8, 8, 4), (1, 1, 4, 6), 2, "valid", 1),
    "5x5 valid": ((1, 11, 7, 3), (5, 5, 3, 2), 1, "valid", 1),
    "dilated 3x3": ((1, 12, 12, 2), (3, 3, 2, 2), 1, "same", 2),
    "depthwise (Keras' reshaped kernel)": ((2, 8, 8, 4), (3, 3, 1, 8), 1, "same", 1),
    "grouped": ((2, 8, 8, 6), (3, 3, 2, 9), 1, "valid", 1),
}


@pytest.mark.parametrize("case", CASES)
def test_lean_conv_matches_keras_conv_forward_and_backward(case):
    import torch
    from keras.src.backend.torch import nn

    from portaclass import backend  # noqa: F401  (loading the torch module installs the route)

    assert getattr(nn.conv, "portaclass_lean", False)
    keras_conv = nn.conv.__wrapped__
    shape, kernel_shape, strides, padding, dilation = CASES[case]
    rng = np.random.default_rng(0)
    results = []
    for conv in (nn.conv, keras_conv):
        x = torch.tensor(rng.normal(size=shape).astype("float32"), requires_grad=True)
        k = torch.tensor(np.random.default_rng(1).normal(size=kernel_shape).astype("float32"), requires_grad=True)
        y = conv(x, k, strides, padding, "channels_last", dilation)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).sin()).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy(), k.grad.numpy()))
        rng = np.random.default_rng(0)
    (y, gx, gk), (y_keras, gx_keras, gk_keras) = results
    assert y.shape == y_keras.shape
    for ours, theirs in ((y, y_keras), (gx, gx_keras), (gk, gk_keras)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_lean_conv_leaves_channels_first_and_3d_to_keras():
    import torch
    from keras.src.backend.torch import nn

    x = torch.ones(1, 2, 5, 5)
    k = torch.ones(3, 3, 2, 4)
    np.testing.assert_allclose(nn.conv(x, k, 1, "valid", "channels_first").numpy(),
                               nn.conv.__wrapped__(x, k, 1, "valid", "channels_first").numpy())
    x3 = torch.ones(1, 4, 4, 4, 2)
    k3 = torch.ones(2, 2, 2, 2, 3)
    assert tuple(nn.conv(x3, k3, 1, "valid", "channels_last").shape) == (1, 3, 3, 3, 3)
