"""Same seed, same initial weights on every backend.

Keras draws initial values with each backend's own random generator, so
``keras.utils.set_random_seed(0)`` gives different weights on TensorFlow,
PyTorch and JAX. Here every variable is redrawn with NumPy from its layer's
initializer config, seeded from (seed, variable path), and assigned: the
result depends on neither the backend nor the order variables were created in.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

# variable attribute on a layer -> attributes that may hold its initializer
# (DepthwiseConv2D keeps its kernel in ``kernel`` but its initializer in
# ``depthwise_initializer``)
_INITIALIZER_OF = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "_kernel": ("kernel_initializer",),
    "bias": ("bias_initializer",),
    "gamma": ("gamma_initializer",),
    "beta": ("beta_initializer",),
    "moving_mean": ("moving_mean_initializer",),
    "moving_variance": ("moving_variance_initializer",),
    "embeddings": ("embeddings_initializer",),
    "_embeddings": ("embeddings_initializer",),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
}


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) exactly as keras.initializers computes them."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(rng, shape, stddev, mean=0.0):
    """Normal values resampled until within two standard deviations (Keras'
    truncated normal)."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * stddev + mean


def _variance_scaling(rng, shape, scale, mode, distribution):
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2.0)
    scale = scale / max(1.0, n)
    if distribution == "truncated_normal":
        # 0.879... is the stddev of a unit normal truncated to [-2, 2]
        return _truncated_normal(rng, shape, math.sqrt(scale) / 0.87962566103423978)
    if distribution in ("untruncated_normal", "normal"):
        return rng.standard_normal(shape) * math.sqrt(scale)
    limit = math.sqrt(3.0 * scale)
    return rng.uniform(-limit, limit, shape)


# Named variance-scaling initializers: (scale, mode, distribution)
_VARIANCE_SCALING = {
    "GlorotUniform": (1.0, "fan_avg", "uniform"),
    "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
    "HeUniform": (2.0, "fan_in", "uniform"),
    "HeNormal": (2.0, "fan_in", "truncated_normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"),
    "LecunNormal": (1.0, "fan_in", "truncated_normal"),
}


def draw_initial_value(initializer, shape, rng: np.random.Generator) -> np.ndarray:
    """A NumPy draw following a Keras initializer's class and config."""
    kind = type(initializer).__name__
    config = initializer.get_config() if hasattr(initializer, "get_config") else {}
    shape = tuple(int(d) for d in shape)
    if kind in _VARIANCE_SCALING:
        return _variance_scaling(rng, shape, *_VARIANCE_SCALING[kind])
    if kind == "VarianceScaling":
        return _variance_scaling(
            rng, shape, config["scale"], config["mode"], config["distribution"]
        )
    if kind == "Zeros":
        return np.zeros(shape)
    if kind == "Ones":
        return np.ones(shape)
    if kind == "Constant":
        return np.full(shape, config["value"])
    if kind == "RandomNormal":
        return rng.standard_normal(shape) * config["stddev"] + config["mean"]
    if kind == "RandomUniform":
        return rng.uniform(config["minval"], config["maxval"], shape)
    if kind == "TruncatedNormal":
        return _truncated_normal(rng, shape, config["stddev"], config["mean"])
    if kind == "Orthogonal":
        return _orthogonal(rng, shape, config.get("gain", 1.0))
    raise NotImplementedError(f"no NumPy draw for initializer {kind}")


def _orthogonal(rng, shape, gain):
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # unique decomposition
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def variable_seed(seed: int, path: str) -> np.random.Generator:
    """A generator seeded from (seed, path): independent of creation order."""
    digest = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest])


def _initialized_variables(layer, prefix: str, skip_layers: tuple[str, ...]):
    """(path, variable, initializer) for every variable with a known
    initializer, walking nested models and sub-layers (MultiHeadAttention)."""
    for attr, init_attrs in _INITIALIZER_OF.items():
        variable = layer.__dict__.get(attr)
        found = (getattr(layer, name, None) for name in init_attrs)
        initializer = next((i for i in found if i is not None), None)
        if variable is None or initializer is None or not hasattr(variable, "assign"):
            continue
        yield f"{prefix}{variable.name}", variable, initializer
    for child in layer._flatten_layers(include_self=False, recursive=False):
        if child.name in skip_layers and not prefix:
            continue
        yield from _initialized_variables(child, f"{prefix}{child.name}/", ())


def initialize_weights(model, seed: int, skip_layers: tuple[str, ...] = ()) -> int:
    """Redraw every variable of ``model`` with NumPy from ``seed``; top-level
    layers named in ``skip_layers`` (loaded pretrained weights) are left alone.
    Returns the number of variables assigned. Raises if a trainable variable
    has no initializer we can reproduce, rather than leave it backend-random."""
    done = set()
    for path, variable, initializer in _initialized_variables(model, "", tuple(skip_layers)):
        if id(variable) in done:
            continue
        value = draw_initial_value(initializer, variable.shape, variable_seed(seed, path))
        variable.assign(value.astype(variable.dtype))
        done.add(id(variable))
    skipped = {
        id(v) for layer in model.layers if layer.name in skip_layers for v in layer.weights
    }
    missing = [v.path for v in model.trainable_weights if id(v) not in done | skipped]
    if missing:
        raise NotImplementedError(f"no reproducible initializer for {', '.join(missing[:5])}")
    return len(done)
