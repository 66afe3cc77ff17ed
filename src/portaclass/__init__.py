"""portaclass: one code path for image classifiers on TensorFlow, PyTorch and JAX.

Importing portaclass imports no framework: call ``use_backend`` first if you
want a particular one, then use the functions below (each imports keras and the
backend on first use).
"""

from __future__ import annotations

import importlib

from portaclass.config import active_backend, use_backend
from portaclass.errors import (
    BackendError,
    DataError,
    ModelFileError,
    PortaclassError,
    UsageError,
)

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "create_model": "portaclass.models",
    "list_models": "portaclass.models",
    "run_quickstart": "portaclass.train.quickstart",
    "backend": "portaclass.backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "backend" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'portaclass' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "DataError",
    "ModelFileError",
    "PortaclassError",
    "UsageError",
    "active_backend",
    "use_backend",
    *_LAZY,
]
