"""Keras' batch normalization on torch, keeping one activation for backward.

Keras 3.15's torch ``batch_normalization`` computes
``(x - mean) * (scale * rsqrt(variance + epsilon)) + offset`` with in-place
ops, so autograd keeps a copy of ``x - mean`` for the backward pass, beside
the ``x`` that the batch moments (``E[x^2] - E[x]^2``) keep already: two
activations per BatchNormalization where torch's own layer keeps one. On a
ResNet-18 training step (96 px, batch 32) that is 265 MB of saved tensors
against 175 MB for the same network in plain PyTorch (207 MB this way).

Here the same forward arithmetic (same ops, same order: bit-identical
outputs) runs inside an autograd Function that saves ``x`` (the tensor the
moments hold anyway) and the per-channel factors, and the backward pass
computes the gradients from them: equal to autograd's up to float rounding
(tests/backend/test_torch_norm.py). Step time is unchanged. Inference, and
anything traced for export, runs Keras' function unchanged: the route is
taken only for batch statistics that carry a gradient (training).
``PORTACLASS_TORCH_LEAN_NORM=0`` turns it off.
"""

from __future__ import annotations

import functools

import torch
from keras.src.backend.torch import nn as keras_torch_nn
from keras.src.backend.torch.core import convert_to_tensor

from portaclass.backend._common import replace_once

SWITCH = "PORTACLASS_TORCH_LEAN_NORM"


class _Normalize(torch.autograd.Function):
    """y = (x - mean) * (scale * rsqrt(variance + epsilon)) + offset, the
    statistics and parameters broadcast over x (shape 1 on reduced axes)."""

    @staticmethod
    def forward(ctx, x, mean, variance, scale, offset, epsilon):
        inverse_std = variance.add(epsilon).rsqrt_()
        ctx.save_for_backward(x, mean, inverse_std, scale)
        return x.subtract(mean).mul_(inverse_std.mul(scale)).add_(offset)

    @staticmethod
    def backward(ctx, grad):
        x, mean, inverse_std, scale = ctx.saved_tensors
        reduced = [axis for axis in range(grad.dim()) if mean.shape[axis] == 1]
        grad_sum = grad.sum(reduced, keepdim=True)
        wants = ctx.needs_input_grad
        grad_x = grad * (inverse_std * scale) if wants[0] else None
        grad_mean = -grad_sum * (inverse_std * scale) if wants[1] else None
        grad_variance = grad_scale = None
        if wants[2] or wants[3]:
            centred = (grad * (x - mean)).sum(reduced, keepdim=True)
            if wants[2]:
                grad_variance = centred * scale * (-0.5) * inverse_std.pow(3)
            if wants[3]:
                grad_scale = centred * inverse_std
        return grad_x, grad_mean, grad_variance, grad_scale, grad_sum if wants[4] else None, None


def _lean_batch_normalization(keras_batch_normalization):
    @functools.wraps(keras_batch_normalization)
    def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
        x, mean, variance = convert_to_tensor(x), convert_to_tensor(mean), convert_to_tensor(variance)
        # Batch statistics that carry a gradient: training. With the moving
        # statistics (inference, Grad-CAM, a model traced for export) Keras'
        # function runs: nothing is kept for a backward pass there anyway.
        if not (torch.is_grad_enabled() and (mean.requires_grad or variance.requires_grad)):
            return keras_batch_normalization(x, mean, variance, axis, offset, scale, epsilon)
        shape = [1] * x.dim()
        shape[axis] = mean.shape[0]
        mean, variance = mean.reshape(shape), variance.reshape(shape)
        offset = convert_to_tensor(offset).reshape(shape) if offset is not None else torch.zeros_like(mean)
        scale = convert_to_tensor(scale).reshape(shape) if scale is not None else torch.ones_like(variance)
        return _Normalize.apply(x, mean, variance, scale, offset, epsilon)

    batch_normalization.portaclass_lean = True
    return batch_normalization


def use_lean_norm() -> None:
    """Route Keras' torch ``batch_normalization`` through ``_lean_batch_normalization``."""
    replace_once(keras_torch_nn, "batch_normalization", _lean_batch_normalization, SWITCH)
