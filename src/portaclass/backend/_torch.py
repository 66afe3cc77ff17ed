"""The adaptation layer for Keras' PyTorch backend."""

from __future__ import annotations

import base64
import contextlib

import keras
import ml_dtypes
import numpy as np
import torch

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
from portaclass.backend._torch_conv import use_lean_conv
from portaclass.backend._torch_graph import use_lean_graph
from portaclass.backend._torch_norm import use_lean_norm

NAME = "torch"
# Eager ops run at any shape without recompiling.
COMPILES_PER_SHAPE = False

keep_tensorflow_out_of_saving()
use_lean_conv()
use_lean_graph()
use_lean_norm()


def _leaf_to_numpy(x):
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, torch.Tensor):
        # CUDA/MPS tensors must come to host first, and autograd tensors must
        # be detached: np.array(t) fails on either.
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16; ml_dtypes does
            return x.to(torch.float32).numpy().astype(ml_dtypes.bfloat16)
        return x.numpy()
    return np.asarray(x)


def to_numpy(x):
    """Any tensor (or nested lists/tuples/dicts of them) as NumPy, on the host."""
    return map_structure(_leaf_to_numpy, x)


def _device_from_torch(device: torch.device) -> Device:
    if device.type == "cpu":
        return cpu_device()
    index = device.index or 0
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(index)
        return Device("gpu", index, props.name, int(props.total_memory))
    return Device("gpu", index, device.type, None)  # mps and friends


def device_of(x) -> Device:
    if isinstance(x, keras.Variable):
        x = x.value
    if not isinstance(x, torch.Tensor):
        return cpu_device()
    return _device_from_torch(x.device)


def list_devices() -> list[Device]:
    devices = [cpu_device()]
    if torch.cuda.is_available():
        devices += [_device_from_torch(torch.device("cuda", i)) for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append(Device("gpu", 0, "mps", None))
    return devices


def _torch_device(kind: str, index: int) -> torch.device:
    if kind == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", index)
    return torch.device("mps")


@contextlib.contextmanager
def on_device(spec: str):
    """Create new tensors and variables on ``spec`` ("cpu", "gpu", "gpu:1")."""
    kind, index = parse_device_spec(spec)
    require_device(kind, index, list_devices())
    target = _torch_device(kind, index)
    # keras.device alone: torch.device as a context would also move torch's own
    # factory calls, and the DataLoader behind model.fit(arrays) draws its
    # shuffle order with a CPU generator (RuntimeError on a GPU).
    keras_name = "cpu" if kind == "cpu" else f"{target.type}:{target.index or 0}"
    with keras.device(keras_name):
        yield


def cpu_copy(model):
    """A copy of ``model`` whose variables live on the CPU."""
    with on_device("cpu"):
        return clone_on_current_device(model)


def peak_memory(device: str | None = None) -> int:
    """Peak bytes: device memory allocated on a GPU, process RSS on the CPU."""
    kind, index = parse_device_spec(device or ("gpu" if torch.cuda.is_available() else "cpu"))
    if kind == "gpu" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(index))
    if kind == "gpu":
        require_device(kind, index, list_devices())
    return peak_rss_bytes()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    seed_python_and_numpy(seed)
    seed_keras_without_tensorflow(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        enable_determinism()
        torch.backends.cudnn.benchmark = False
    # both ways: the switch is process-wide (see the TensorFlow backend). Only
    # when it changes: the call imports torch._inductor (and TorchDynamo with
    # it), 0.85 s and 72 MB that a run without --deterministic has no use for.
    if deterministic or torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def enable_determinism(log=None) -> None:
    """cuBLAS is deterministic only with a fixed workspace, read when its
    first handle is made (torch's reproducibility notes): set it before any
    matrix product runs."""
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def rng_state() -> dict:
    """The framework's own global random state, for checkpoints: Keras'
    torch backend draws unseeded Dropout masks from torch's global generator
    (``keras/src/backend/torch/random.py``), which Keras does not save."""
    state = {"cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode()
                         for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    def tensor(text):
        return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())

    if "cpu" in state:
        torch.set_rng_state(tensor(state["cpu"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensor(s) for s in state["cuda"]])


def value_and_grad(fn, x):
    """``fn(x)`` and the gradient of that scalar with respect to ``x``, both
    as NumPy: ``(value, grad)``, ``grad`` shaped like ``x``.

    ``x`` is a floating-point array or tensor; ``fn`` maps a tensor to a
    scalar tensor with ``keras.ops`` and Keras layers or models (call models
    with ``training=False``). Keras has no backend-agnostic gradient, so
    each backend module implements this with its framework's own: torch.autograd.
    A value that does not depend on ``x`` has a zero gradient.
    """
    x = keras.ops.convert_to_tensor(x)
    check_gradient_input(keras.backend.standardize_dtype(x.dtype))
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():  # also inside a caller's torch.no_grad()
        value = fn(x)
    check_scalar_output(np.shape(value))
    grad = None
    if isinstance(value, torch.Tensor) and value.requires_grad:
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    if grad is None:  # the value does not depend on x
        grad = torch.zeros_like(x)
    return np.asarray(to_numpy(value)), to_numpy(grad)
