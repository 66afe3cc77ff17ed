"""The adaptation layer for Keras' JAX backend."""

from __future__ import annotations

import contextlib

import jax
import keras
import numpy as np

from portaclass.backend._common import (
    Device,
    check_gradient_input,
    check_scalar_output,
    clone_on_current_device,
    cpu_device,
    keep_tensorflow_out_of_saving,
    map_structure,
    parse_device_spec,
    peak_rss_bytes,
    require_device,
    seed_keras_without_tensorflow,
    seed_python_and_numpy,
)

NAME = "jax"
# Eager JAX ops are jit-compiled per input shape (~0.2-2 s each): callers
# that vary batch sizes should keep to a few sizes.
COMPILES_PER_SHAPE = True

keep_tensorflow_out_of_saving()

# Off with PORTACLASS_JAX_CACHE=0; a cache the user chose (JAX_COMPILATION_CACHE_DIR) wins.
CACHE_SWITCH = "PORTACLASS_JAX_CACHE"


def use_persistent_compilation_cache() -> None:
    """XLA compiles each train and eval step anew in every process (seconds to
    tens of seconds on a CPU); JAX's persistent cache keeps compiled programs on
    disk, keyed by the program, JAX version and device, so the next run of the
    same model and shapes starts without compiling (docs/benchmarks.md)."""
    import os

    from portaclass import config

    if os.environ.get(CACHE_SWITCH, "1") == "0" or jax.config.jax_compilation_cache_dir:
        return
    folder = config.cache_dir() / "jax"
    try:  # a read-only home: no cache, rather than a warning at every compile
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    if os.access(folder, os.W_OK):
        jax.config.update("jax_compilation_cache_dir", str(folder))


use_persistent_compilation_cache()


def _leaf_to_numpy(x):
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, jax.Array):
        # np.asarray gathers a sharded array that this process can address in
        # full; jax.device_get covers arrays committed to an accelerator.
        return np.asarray(jax.device_get(x))
    return np.asarray(x)


def to_numpy(x):
    """Any array (or nested lists/tuples/dicts of them) as NumPy, on the host."""
    return map_structure(_leaf_to_numpy, x)


def _kind(platform: str) -> str:
    return "cpu" if platform == "cpu" else "gpu"


def _device_from_jax(device) -> Device:
    if device.platform == "cpu":
        return cpu_device()
    memory = None
    try:
        memory = (device.memory_stats() or {}).get("bytes_limit")
    except Exception:  # not every platform reports memory
        pass
    index = [d.id for d in jax.devices(device.platform)].index(device.id)
    return Device(_kind(device.platform), index, device.device_kind, memory)


def device_of(x) -> Device:
    """The device holding ``x``; a sharded array reports its first device."""
    if isinstance(x, keras.Variable):
        x = x.value
    if not isinstance(x, jax.Array):
        return cpu_device()
    devices = sorted(x.devices(), key=lambda d: d.id)
    return _device_from_jax(devices[0])


def _accelerators():
    try:
        return [d for d in jax.devices() if d.platform != "cpu"]
    except RuntimeError:
        return []


def list_devices() -> list[Device]:
    return [cpu_device()] + [_device_from_jax(d) for d in _accelerators()]


def _jax_device(kind: str, index: int):
    return jax.devices("cpu")[0] if kind == "cpu" else _accelerators()[index]


@contextlib.contextmanager
def on_device(spec: str):
    """Create new arrays and variables on ``spec`` ("cpu", "gpu", "gpu:1")."""
    kind, index = parse_device_spec(spec)
    require_device(kind, index, list_devices())
    with keras.device(_jax_device(kind, index)):
        yield


def cpu_copy(model):
    """A copy of ``model`` whose variables live on the CPU."""
    with on_device("cpu"):
        return clone_on_current_device(model)


def peak_memory(device: str | None = None) -> int:
    """Peak bytes: device memory in use on a GPU, process RSS on the CPU."""
    kind, index = parse_device_spec(device or ("gpu" if _accelerators() else "cpu"))
    if kind == "gpu":
        require_device(kind, index, list_devices())
        stats = _accelerators()[index].memory_stats() or {}
        return int(stats.get("peak_bytes_in_use", stats.get("bytes_in_use", 0)))
    return peak_rss_bytes()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    # JAX has no global RNG state; keras' SeedGenerator draws from the global
    # seed that set_random_seed fixes. XLA on CPU is deterministic; on a GPU
    # ``deterministic`` needs the flag ``enable_determinism`` sets at start.
    seed_python_and_numpy(seed)
    seed_keras_without_tensorflow(seed)
    if deterministic:
        enable_determinism()


def enable_determinism(log=None) -> None:
    """Deterministic GPU reductions and kernels: XLA reads ``XLA_FLAGS`` once,
    when JAX first starts its backends, so this must run before anything asks
    for a device; where that has happened already (a notebook), ``log`` says
    so in one line."""
    import os

    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_gpu_deterministic_ops" in flags:
        return
    os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
    if log is not None and xla_bridge.backends_are_initialized() and any(
            d.kind == "gpu" for d in list_devices()):
        log("deterministic: JAX started its GPU backend before --deterministic was set, so XLA's "
            "deterministic-ops flag cannot apply in this process; run from a fresh process "
            "(the CLI does) or set XLA_FLAGS=--xla_gpu_deterministic_ops=true before importing jax")


def rng_state() -> dict:
    """The framework's own global random state, for checkpoints: none here,
    Keras draws every random number from its SeedGenerators."""
    return {}


def set_rng_state(state: dict) -> None:
    """Nothing to restore (see ``rng_state``)."""


def value_and_grad(fn, x):
    """``fn(x)`` and the gradient of that scalar with respect to ``x``, both
    as NumPy: ``(value, grad)``, ``grad`` shaped like ``x``.

    ``x`` is a floating-point array or tensor; ``fn`` maps a tensor to a
    scalar tensor with ``keras.ops`` and Keras layers or models (call models
    with ``training=False``). Keras has no backend-agnostic gradient, so
    each backend module implements this with its framework's own: jax.value_and_grad.
    A value that does not depend on ``x`` has a zero gradient.
    """
    x = keras.ops.convert_to_tensor(x)
    check_gradient_input(keras.backend.standardize_dtype(x.dtype))

    def scalar_fn(x):
        value = fn(x)
        check_scalar_output(np.shape(value))  # before JAX's own, differently worded check
        return value

    value, grad = jax.value_and_grad(scalar_fn)(x)
    return np.asarray(to_numpy(value)), to_numpy(grad)
