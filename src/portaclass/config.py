"""Which Keras backend portaclass runs on, decided once, before keras loads,
and the process settings that must precede keras' import.

Keras reads ``KERAS_BACKEND`` when it is first imported and cannot switch
afterwards, so the choice has to be made here, before anything imports keras.
Order of precedence: an explicit choice (CLI ``--backend`` or
``use_backend``), then ``PORTACLASS_BACKEND``, then ``KERAS_BACKEND``, then
auto.
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import os
import sys
from pathlib import Path

from portaclass.errors import BackendError

BACKENDS = ("tensorflow", "torch", "jax")
# Order for "auto": torch trains small CNNs fastest on CPU in our measurements
# (docs/benchmarks.md); jax next; tensorflow last.
AUTO_ORDER = ("torch", "jax", "tensorflow")
CHOICES = ("auto",) + BACKENDS

# The package a backend needs importable, and the extra that installs it.
_MODULE_OF = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}

_chosen: str | None = None
# How "auto" chose, one line for the run's log and env.json; None when the
# backend was named.
backend_choice: str | None = None

# True in the console script's process (``cli.main``), where no user code runs:
# keras is then imported without the libraries it loads for features
# portaclass never uses (``backend._common.UNUSED_BY_PORTACLASS``).
command_line_process = False


def is_installed(backend: str) -> bool:
    return importlib.util.find_spec(_MODULE_OF[backend]) is not None


def _loaded_keras_backend() -> str | None:
    """The backend of an already imported keras, or None if keras is not loaded."""
    if "keras" not in sys.modules:
        return None
    try:
        return sys.modules["keras"].backend.backend()
    except AttributeError:  # keras only partially imported
        return os.environ.get("KERAS_BACKEND")


def _auto() -> str:
    global backend_choice
    loaded = _loaded_keras_backend()
    if loaded:
        backend_choice = f"backend auto: {loaded}, the one keras is already running on"
        return loaded
    env = os.environ.get("KERAS_BACKEND")
    if env and env != "auto":
        backend_choice = f"backend auto: {env}, from KERAS_BACKEND"
        return env
    for backend in AUTO_ORDER:
        if is_installed(backend):
            backend_choice = f"backend auto: {backend}, the first installed of {', '.join(AUTO_ORDER)}"
            return backend
    raise BackendError(
        "no backend is installed: pip install 'portaclass[torch]' (or [jax], [tensorflow], [all])"
    )


def _validate(name: str, source: str) -> str:
    name = name.strip().lower()
    if name not in CHOICES:
        raise BackendError(
            f"unknown backend {name!r} (from {source}); choose one of {', '.join(CHOICES)}"
        )
    return name


def _requested_name(explicit: str | None) -> str:
    """The first name given, by precedence ("auto" when none is)."""
    for value, source in (
        (explicit, "--backend"),
        (os.environ.get("PORTACLASS_BACKEND"), "PORTACLASS_BACKEND"),
        (os.environ.get("KERAS_BACKEND"), "KERAS_BACKEND"),
    ):
        if value:
            return _validate(value, source)
    return "auto"


def auto_requested(explicit: str | None = None) -> bool:
    """True when the precedence rules leave the choice to "auto"."""
    return _requested_name(explicit) == "auto"


def requested_backend(explicit: str | None = None) -> str:
    """The backend the user asked for, with precedence applied; 'auto' resolved."""
    global backend_choice
    name = _requested_name(explicit)
    if name == "auto":
        return _auto()
    backend_choice = None
    return name


def use_backend(name: str | None = None, *, reason: str | None = None) -> str:
    """Choose the backend for this process; call before anything imports keras.

    ``None`` or ``"auto"`` applies the precedence rules. ``reason`` says why
    this backend (``backend_choice``; the CLI passes bench's verdict for
    ``--backend auto``). Returns the backend chosen. Raises BackendError if
    the backend is unknown, not installed, or keras is already loaded with a
    different one.
    """
    global _chosen, backend_choice
    backend = requested_backend(name)
    if reason:
        backend_choice = reason
    if not is_installed(backend):
        raise BackendError(
            f"backend {backend!r} is not installed: pip install 'portaclass[{backend}]'"
        )
    loaded = _loaded_keras_backend()
    if loaded and loaded != backend:
        raise BackendError(
            f"keras is already imported with backend {loaded!r}, cannot switch to {backend!r}: "
            f"call portaclass.use_backend({backend!r}) before importing keras, "
            f"or set KERAS_BACKEND={backend} before starting Python"
        )
    os.environ["KERAS_BACKEND"] = backend
    # TensorFlow's C++ start-up banner (CPU features, absl) drowns the CLI's
    # output, on its own backend or when --tensorboard loads it under another;
    # the user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "jax" and (count := cpu_devices()) > 1:
        _split_jax_cpu(count)
    _chosen = backend
    return backend


CPU_DEVICES_VARIABLE = "PORTACLASS_CPU_DEVICES"


def cpu_devices() -> int:
    """How many devices a machine without accelerators shows: 1, or
    ``PORTACLASS_CPU_DEVICES``, which splits the CPU into virtual devices so
    a data-parallel run (``--devices``) can be tried and tested without
    GPUs. It must be set before the framework starts, so it is an
    environment variable, read here."""
    value = os.environ.get(CPU_DEVICES_VARIABLE, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BackendError(f"{CPU_DEVICES_VARIABLE}={value!r}: must be a whole number of devices, 1 or more")
    return int(value)


def _split_jax_cpu(count: int) -> None:
    """XLA's host platform shows ``count`` CPU devices (read once, when JAX
    starts); a count the user put in XLA_FLAGS wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def active_backend() -> str:
    """The backend in use, choosing it by the precedence rules on first call."""
    if _chosen is None:
        return use_backend(None)
    return _chosen


def start_command_line_process() -> None:
    """Process settings for the console script: keras imported lean (above),
    and glibc's malloc held to two arenas per core. Pillow decodes in worker
    threads, and each thread's arena keeps freed image buffers: measured on a
    ResNet-18 run, the cap lowers peak RSS by ~0.15 GB at the same epoch time
    (docs/benchmarks.md). ``MALLOC_ARENA_MAX`` set by the user wins."""
    global command_line_process
    if not command_line_process:
        # At exit, Python's collector walks every object left (Keras layers,
        # torch modules...) before the memory goes back to the OS anyway:
        # 0.45 s of a ResNet-18 run's end. Frozen, they are skipped. atexit
        # runs it after the other exit handlers registered later.
        atexit.register(gc.freeze)
    command_line_process = True
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-8, 2 * (os.cpu_count() or 1))  # -8: M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc (musl): nothing to cap
            pass


def cache_dir() -> Path:
    """Where portaclass keeps what it can recompute (the bad-file scans, JAX's
    compiled programs): ``$PORTACLASS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/portaclass``, else ``~/.cache/portaclass``."""
    explicit = os.environ.get("PORTACLASS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "portaclass"
