"""The backend adaptation layer: the same functions on every Keras backend.

The backend is resolved once (``portaclass.config``), then the matching module
is imported and its functions re-exported, as keras/src/backend does. Each
module (``_tensorflow``, ``_torch``, ``_jax``) implements:

- ``to_numpy(x)``: tensors on any device, and nested structures of them, to NumPy
- ``device_of(x)`` and ``list_devices()``: ``Device(kind, index, name, memory_bytes)``
- ``on_device(spec)``: context manager placing new tensors/variables on a device
- ``cpu_copy(model)``: a copy of a model with its variables on the CPU
- ``peak_memory(device=None)``: peak process RSS on CPU, peak device bytes on GPU
- ``seed_everything(seed, deterministic=False)``
- ``enable_determinism(log=None)``: what must be set before the framework
  starts its devices (XLA_FLAGS on JAX, cuBLAS' workspace on torch)
- ``rng_state()`` / ``set_rng_state(state)``: the framework's global random
  state as JSON-able data (checkpoints; torch's Dropout draws from it)
- ``value_and_grad(fn, x)``: a scalar function's value and its gradient with
  respect to ``x``, as NumPy (Grad-CAM; Keras has no backend-agnostic gradient)
- ``COMPILES_PER_SHAPE``: whether eager ops compile once per input shape (JAX)
"""

from __future__ import annotations

import contextlib
import importlib

from portaclass import config
from portaclass.backend._common import (
    Device,
    parse_device_spec,
    tensorflow_start_up_quiet,
    unneeded_frameworks_hidden,
)

_quiet = tensorflow_start_up_quiet() if config.active_backend() == "tensorflow" else contextlib.nullcontext()
with unneeded_frameworks_hidden(config.active_backend()), _quiet:
    _module = importlib.import_module(f"portaclass.backend._{config.active_backend()}")

NAME: str = _module.NAME
COMPILES_PER_SHAPE: bool = _module.COMPILES_PER_SHAPE
to_numpy = _module.to_numpy
device_of = _module.device_of
list_devices = _module.list_devices
on_device = _module.on_device
cpu_copy = _module.cpu_copy
peak_memory = _module.peak_memory
seed_everything = _module.seed_everything
enable_determinism = _module.enable_determinism
rng_state = _module.rng_state
set_rng_state = _module.set_rng_state
value_and_grad = _module.value_and_grad


def has_gpu() -> bool:
    return any(d.kind == "gpu" for d in list_devices())


__all__ = [
    "COMPILES_PER_SHAPE",
    "NAME",
    "Device",
    "cpu_copy",
    "device_of",
    "enable_determinism",
    "has_gpu",
    "list_devices",
    "on_device",
    "parse_device_spec",
    "peak_memory",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "to_numpy",
    "value_and_grad",
]
