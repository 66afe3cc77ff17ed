"""Pieces every backend module shares: the Device record, device-spec parsing,
nested-structure mapping, CPU memory, the framework-free part of seeding, and
the checks (and so the error wording) of ``value_and_grad``."""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from portaclass import config
from portaclass.errors import BackendError


@dataclass(frozen=True)
class Device:
    """One compute device as portaclass reports it, the same on every backend."""

    kind: str  # "cpu" or "gpu"
    index: int
    name: str
    memory_bytes: int | None = None

    @property
    def spec(self) -> str:
        """The string ``on_device`` accepts for this device, e.g. ``gpu:1``."""
        return f"{self.kind}:{self.index}"


def parse_device_spec(spec: str) -> tuple[str, int]:
    """``"cpu"``, ``"gpu"``, ``"gpu:1"``, ``"cuda:0"`` -> ``("gpu", 1)``."""
    text = str(spec).strip().lower()
    kind, _, index = text.partition(":")
    kind = {"cuda": "gpu", "mps": "gpu"}.get(kind, kind)
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()):
        raise BackendError(f"bad device {spec!r}: use 'cpu', 'gpu' or 'gpu:N'")
    return kind, int(index or 0)


def require_device(kind: str, index: int, devices: list[Device]) -> Device:
    """The matching device from ``devices``, or a BackendError that lists them."""
    for device in devices:
        if device.kind == kind and device.index == index:
            return device
    have = ", ".join(d.spec for d in devices) or "none"
    raise BackendError(f"no device {kind}:{index} on this machine (available: {have})")


def map_structure(fn, value):
    """Apply ``fn`` to every leaf of nested lists, tuples and dicts."""
    if isinstance(value, dict):
        return type(value)((k, map_structure(fn, v)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(map_structure(fn, v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(map_structure(fn, v) for v in value)
    return fn(value)


def check_gradient_input(dtype) -> None:
    """``value_and_grad``'s ``x`` must be floating point (``dtype``: a name
    as ``keras.backend.standardize_dtype`` gives it); one wording on every
    backend."""
    if not str(dtype).startswith(("float", "bfloat")):
        raise BackendError(f"value_and_grad needs a floating-point `x`; received dtype {dtype}")


def check_scalar_output(shape) -> None:
    """``value_and_grad``'s ``fn`` must return one number (shape ``()``)."""
    shape = tuple(shape)
    if shape != ():
        raise BackendError(f"value_and_grad needs `fn` to return a scalar; it returned shape {shape}")


def cpu_device() -> Device:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Device("cpu", 0, "cpu", int(total))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def seed_python_and_numpy(seed: int) -> None:
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)


def seed_keras_without_tensorflow(seed: int) -> None:
    """What ``keras.utils.set_random_seed`` does for Keras' own RNG, minus its
    ``tf.random.set_seed``: that call imports TensorFlow whenever it is
    installed (seconds and hundreds of MB), even under torch and JAX."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)


def clone_on_current_device(model):
    """A copy of ``model`` (architecture + weights + compile config) whose
    variables are created under the device scope active at call time."""
    import keras

    try:
        clone = keras.models.clone_model(model)
    except ValueError:  # subclassed models: rebuild from their config
        clone = model.__class__.from_config(model.get_config())
        clone.build(model.input_shape)
    clone.set_weights(model.get_weights())
    if getattr(model, "compiled", False):
        config = model.get_compile_config()
        if config:
            clone.compile_from_config(config)
    return clone


def replace_once(owner, name: str, wrap, switch: str) -> None:
    """``owner.name = wrap(owner.name)``, once per process, unless the
    environment variable ``switch`` is "0": how the torch backend installs
    its routes around Keras functions (``_torch_conv``, ``_torch_norm``,
    ``_torch_graph``), each with its switch for A/B measurement. ``wrap``
    marks what it returns with ``portaclass_lean``."""
    if os.environ.get(switch, "1") == "0" or getattr(getattr(owner, name), "portaclass_lean", False):
        return
    setattr(owner, name, wrap(getattr(owner, name)))


# Frameworks Keras imports at its own import time without needing them: Keras
# 3.15's callbacks/orbax_checkpoint.py imports JAX whenever it is installed
# (inside ``try: import jax / except ImportError``).
IMPORTED_BY_KERAS_UNASKED = ("jax",)
# Libraries Keras 3.15 imports at its own import (each inside ``try/except
# ImportError``) for features portaclass does not use: keras.wrappers'
# scikit-learn estimators (which pull in SciPy), keras.visualization's
# matplotlib and RemoteMonitor's requests (which TensorFlow itself needs).
# 2.3 s of a torch run's start (benchmarks/lean_run_profile.py). Hidden only
# in the console script's process (``config.command_line_process``): in a
# user's own process those Keras features must keep working.
UNUSED_BY_PORTACLASS = {"sklearn": (), "matplotlib": (), "requests": ("tensorflow",)}  # name: needed by


@contextlib.contextmanager
def unneeded_frameworks_hidden(backend: str):
    """Import keras for ``backend`` without frameworks it does not need.

    Measured: importing JAX costs a torch or TensorFlow run 1-1.5 s and
    ~130 MB of RSS. A ``None`` entry in ``sys.modules`` makes ``import jax``
    raise the ImportError Keras expects, and ``importlib.util.find_spec``
    answer None; the entry is removed after, so the process can still import
    JAX later on purpose. (Hiding torch this way breaks SciPy, which looks
    torch up in ``sys.modules``; Keras does not import torch unasked anyway.)
    """
    unused = [name for name, needed_by in UNUSED_BY_PORTACLASS.items() if backend not in needed_by]
    candidates = IMPORTED_BY_KERAS_UNASKED + (tuple(unused) if config.command_line_process else ())
    hidden = [name for name in candidates if name != backend and name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    deferred = (torch_dynamo_deferred() if backend == "torch" and config.command_line_process
                else contextlib.nullcontext())
    try:
        with deferred:
            yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def torch_dynamo_deferred():
    """Import keras on torch without torch._dynamo (TorchDynamo, the tracer of
    ``torch.compile``): 0.75 s and 72 MB of RSS measured, sympy and torch.fx
    included, in a process that never compiles.

    Keras 3.15 imports it only for the ``@dynamo.disable()`` decorator of two
    seed functions (torch's Generator can't be traced). While keras imports,
    a stand-in module answers ``disable`` with a decorator that leaves the
    function as it is, which is what dynamo's wrapper amounts to outside a
    trace; it is removed after, so a later ``import torch._dynamo`` gets the
    real module. Traced anyway, those two functions would break the graph
    rather than be skipped (same results): the console script never
    compiles on torch (``torch.export`` traces inference, which draws no
    random numbers), and it alone gets the stand-in, like the hidden
    libraries above."""
    import types

    name = "torch._dynamo"
    if name in sys.modules:
        yield
        return

    def disable(fn=None, recursive=True, **options):
        return fn if fn is not None else (lambda function: function)

    stand_in = types.ModuleType(name, "portaclass' stand-in while keras imports (backend._common)")
    stand_in.disable = disable
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


# What TensorFlow's C++ start-up logs before absl's logging is set up, which
# TF_CPP_MIN_LOG_LEVEL does not reach: absl's notice that it writes to stderr,
# and INFO lines (the "oneDNN custom operations are on" notice, printed on
# CPUs where TensorFlow turns oneDNN on by default: AVX512_BF16 and newer).
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} ")


@contextlib.contextmanager
def tensorflow_start_up_quiet():
    """While TensorFlow is imported, keep its C++ start-up lines below
    ``TF_CPP_MIN_LOG_LEVEL`` (which portaclass sets to 2) off the terminal:
    fd 2 goes to a file, and the lines that pass the level are written back."""
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0)
    if level < 1 or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                kind = _ABSL_LINE.match(line)
                if line.startswith(_ABSL_NOTICE) or (kind and "IWEF".index(kind.group(1)) < level):
                    continue
                sys.stderr.write(line)
            sys.stderr.flush()


class TensorFlowIfLoaded:
    """Keras' lazy ``tensorflow`` handle for ``saving.serialization_lib``,
    answering ``available`` only when TensorFlow is already imported.

    serialization_lib asks ``tf.available`` to check whether an object is a
    ``tf.TensorShape``/``tf.DType``/``tf.TypeSpec`` (keras-team/keras#20847),
    and asking imports TensorFlow: seconds and hundreds of MB at the first
    ``model.save`` of a torch or JAX run. Only TensorFlow makes such objects,
    so when it is not loaded the answer is no without importing it.
    """

    def __init__(self, handle):
        self._handle = handle

    @property
    def available(self) -> bool:
        return "tensorflow" in sys.modules and self._handle.available

    def __getattr__(self, name):
        return getattr(self._handle, name)


def keep_tensorflow_out_of_saving() -> None:
    from keras.src.saving import serialization_lib

    if not isinstance(serialization_lib.tf, TensorFlowIfLoaded):
        serialization_lib.tf = TensorFlowIfLoaded(serialization_lib.tf)
