"""Shared settings for the model tests: small inputs so the registry-wide
tests stay fast on a 2-core CPU, and the heavy models marked ``slow``."""

from __future__ import annotations

import numpy as np
import pytest

# Smallest practical input per model: keras.applications need >= 32x32.
TEST_SHAPE = (32, 32, 3)
NUM_CLASSES = 3
# Big enough that one build + a few steps + a save/load takes seconds, not
# tens of seconds, on a 2-core CPU (JAX compiles each initializer).
HEAVY_MODELS = {"resnet34", "resnet50", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"}
# Training steps JAX compiles for tens of seconds (50-90 s each in make test,
# beside the other suites): make test leaves them to the TensorFlow and torch
# suites (``jax_slow``); the cross test still builds them on every backend.
JAX_SLOW_TRAINING = {"efficientnet_b0", "mobilenet_v3_small", "mobilenet_v2", "vit_tiny"}


def registry_params(jax_slow: frozenset | set = frozenset()):
    """Every registered model as a pytest param; heavy ones marked slow, and
    those in ``jax_slow`` marked jax_slow."""
    from portaclass.models import list_models

    def marks(name):
        return ([pytest.mark.slow] if name in HEAVY_MODELS else []) + (
            [pytest.mark.jax_slow] if name in jax_slow else [])

    return [pytest.param(name, marks=marks(name)) for name in list_models()]


@pytest.fixture
def image_batch():
    """A fixed batch of 8 random 32x32 RGB images in the model's layout, labels 0..2."""
    from portaclass.layout import to_model_layout

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, *TEST_SHAPE)).astype("float32")
    y = np.arange(8) % NUM_CLASSES
    return to_model_layout(x), y
