"""The adaptation layer for Keras' TensorFlow backend."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from portaclass.backend._common import (
    Device,
    check_gradient_input,
    check_scalar_output,
    clone_on_current_device,
    cpu_device,
    map_structure,
    parse_device_spec,
    peak_rss_bytes,
    require_device,
    seed_python_and_numpy,
)

NAME = "tensorflow"


def _split_cpu() -> None:
    """``PORTACLASS_CPU_DEVICES=N``: N logical CPU devices (what
    MirroredStrategy replicates over on a machine without GPUs). TensorFlow
    takes the split only before its runtime starts, which importing does not do."""
    from portaclass import config

    count = config.cpu_devices()
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:  # the runtime already started (a user's session): as it is
            pass


_split_cpu()
# Eager ops run at any shape without recompiling.
COMPILES_PER_SHAPE = False


def _leaf_to_numpy(x):
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return x.numpy()  # copies from the GPU when the tensor lives there
    if isinstance(x, tf.RaggedTensor):
        return x.to_tensor().numpy()
    return np.asarray(x)


def to_numpy(x):
    """Any tensor (or nested lists/tuples/dicts of them) as NumPy, on the host."""
    return map_structure(_leaf_to_numpy, x)


def _gpus():
    return tf.config.list_physical_devices("GPU")


def _gpu_device(index: int) -> Device:
    details = tf.config.experimental.get_device_details(_gpus()[index])
    return Device("gpu", index, details.get("device_name", f"GPU:{index}"), None)


def device_of(x) -> Device:
    if isinstance(x, keras.Variable):
        x = x.value
    name = getattr(x, "device", "") or ""
    spec = tf.DeviceSpec.from_string(name) if name else None
    if spec is None or (spec.device_type or "CPU").upper() == "CPU":
        return cpu_device()
    return _gpu_device(spec.device_index or 0)


def list_devices() -> list[Device]:
    return [cpu_device()] + [_gpu_device(i) for i in range(len(_gpus()))]


@contextlib.contextmanager
def on_device(spec: str):
    """Create new tensors and variables on ``spec`` ("cpu", "gpu", "gpu:1")."""
    kind, index = parse_device_spec(spec)
    require_device(kind, index, list_devices())
    with keras.device(f"/{kind.upper()}:{index}"):
        yield


def cpu_copy(model):
    """A copy of ``model`` whose variables live on the CPU.

    XLA (``jit_compile``, on by default on a GPU) compiles for the device the
    variables were created on, so the copy is compiled without it.
    """
    with on_device("cpu"):
        clone = clone_on_current_device(model)
    clone.jit_compile = False
    return clone


def peak_memory(device: str | None = None) -> int:
    """Peak bytes: device memory in use on a GPU, process RSS on the CPU."""
    kind, index = parse_device_spec(device or ("gpu" if _gpus() else "cpu"))
    if kind == "gpu":
        require_device(kind, index, list_devices())
        return int(tf.config.experimental.get_memory_info(f"GPU:{index}")["peak"])
    return peak_rss_bytes()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    seed_python_and_numpy(seed)
    keras.utils.set_random_seed(seed)
    # both ways: the switch is process-wide, and a deterministic run must not
    # change the arithmetic of the next run in the same process (a notebook)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        # no public "disable" in TF 2.21
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()


def enable_determinism(log=None) -> None:
    """Nothing to set before start-up: TensorFlow's op determinism is a
    switch ``seed_everything`` flips at any time."""


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
    each backend module implements this with its framework's own: tf.GradientTape.
    A value that does not depend on ``x`` has a zero gradient.
    """
    x = keras.ops.convert_to_tensor(x)
    check_gradient_input(keras.backend.standardize_dtype(x.dtype))

    # As a graph: a convolution's gradient then computes only the input
    # gradient asked for. Eagerly TensorFlow also runs the kernel's gradient
    # (Conv2DBackpropFilter), whose oneDNN kernel segfaults on CPUs where
    # TensorFlow turns oneDNN on by default (seen on AVX512_BF16 machines).
    @tf.function(autograph=False)
    def value_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return value, tape.gradient(value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    value, grad = value_and_gradient(x)
    check_scalar_output(np.shape(value))
    return np.asarray(to_numpy(value)), to_numpy(grad)
