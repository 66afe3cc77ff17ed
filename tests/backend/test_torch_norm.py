"""torch only: portaclass' lean route for Keras' torch batch normalization
computes what Keras' own function does (the same outputs, bit for bit, and
the same gradients up to float rounding) while keeping one activation for
the backward pass instead of two."""

from __future__ import annotations

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="a torch backend patch")


def _normalized(function, dtype, *, scale=True, offset=True, axis=-1):
    import torch
    from keras.src.backend.torch import nn

    generator = torch.Generator().manual_seed(0)
    shape = (4, 5, 6, 3) if axis == -1 else (4, 3, 5, 6)  # channels last / first
    x = (torch.randn(*shape, generator=generator, dtype=dtype) * 3 + 1).requires_grad_()
    gamma = torch.randn(3, generator=generator, dtype=dtype).requires_grad_()
    beta = torch.randn(3, generator=generator, dtype=dtype).requires_grad_()
    upstream = torch.randn(*shape, generator=generator, dtype=dtype)
    reduced = [0, 1, 2] if axis == -1 else [0, 2, 3]
    mean, variance = nn.moments(x, axes=reduced)  # the gradient also flows through the batch statistics
    y = function(x, mean, variance, axis=axis, offset=beta if offset else None, scale=gamma if scale else None,
                 epsilon=1e-3)
    (y * upstream).sum().backward()
    grads = [t.grad for t in (x, gamma, beta) if t.grad is not None]
    return [y.detach(), *grads]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("axis", [-1, 1])
def test_lean_batch_normalization_matches_keras(dtype, affine, axis):
    import torch
    from keras.src.backend.torch import nn

    from portaclass import backend  # noqa: F401  (loading the torch module installs the route)

    assert getattr(nn.batch_normalization, "portaclass_lean", False)
    dtype = getattr(torch, dtype)
    ours = _normalized(nn.batch_normalization, dtype, scale=affine, offset=affine, axis=axis)
    theirs = _normalized(nn.batch_normalization.__wrapped__, dtype, scale=affine, offset=affine, axis=axis)
    assert len(ours) == len(theirs) == (4 if affine else 2)
    assert torch.equal(ours[0], theirs[0])  # the forward pass is Keras' arithmetic
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for mine, keras_grad in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(mine.numpy(), keras_grad.numpy(), rtol=tolerance, atol=tolerance)


def test_it_keeps_one_activation_for_backward():
    import torch
    from keras.src.backend.torch import nn

    def saved_bytes(function):
        storages = {}

        def pack(tensor):
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        x = torch.randn(8, 16, 16, 32, requires_grad=True)
        gamma, beta = torch.ones(32, requires_grad=True), torch.zeros(32, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            mean, variance = nn.moments(x, axes=[0, 1, 2])
            function(x, mean, variance, axis=-1, offset=beta, scale=gamma)
        return sum(storages.values()), x.numel() * 4

    ours, activation = saved_bytes(nn.batch_normalization)
    theirs, _ = saved_bytes(nn.batch_normalization.__wrapped__)
    assert activation <= ours < 1.1 * activation < 1.9 * activation <= theirs


def test_inference_is_keras_own_function():
    """With the moving statistics (inference, Grad-CAM's input gradient, a
    model traced for ONNX or OpenVINO export) Keras' function runs as is:
    an autograd Function in a trace is an operator no exporter knows."""
    import torch
    from keras.src.backend.torch import nn

    x = torch.randn(2, 3, 3, 4, requires_grad=True)
    gamma = torch.ones(4, requires_grad=True)
    mean, variance = torch.zeros(4), torch.ones(4)
    y = nn.batch_normalization(x, mean, variance, axis=-1, scale=gamma)
    assert "Normalize" not in type(y.grad_fn).__name__
    assert torch.equal(y, nn.batch_normalization.__wrapped__(x, mean, variance, axis=-1, scale=gamma))
    with torch.no_grad():
        assert nn.batch_normalization(x, *nn.moments(x, axes=[0, 1, 2]), axis=-1).grad_fn is None


def test_a_training_step_moves_the_weights_as_keras_does():
    """One Adam step of a small conv + BatchNormalization model, the route on
    and off: the same weights and moving statistics (to float rounding)."""
    from keras.src.backend.torch import nn

    def trained(function):
        nn.batch_normalization = function
        try:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                                      keras.layers.BatchNormalization(), keras.layers.ReLU(),
                                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
            x = np.random.default_rng(0).normal(size=(6, 8, 8, 3)).astype("float32")
            model.train_on_batch(x, np.arange(6) % 2)
            return model.get_weights()
        finally:
            nn.batch_normalization = lean

    lean = nn.batch_normalization
    for ours, theirs in zip(trained(lean), trained(lean.__wrapped__)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # and the layer in training does take the route (not Keras' function)
    import torch

    layer = keras.layers.BatchNormalization()
    y = layer(torch.randn(4, 3, 3, 2, requires_grad=True), training=True)
    assert type(y.grad_fn).__name__ == "_NormalizeBackward"
