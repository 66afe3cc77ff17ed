"""portaclass: one code path for image classifiers on TensorFlow, PyTorch and JAX.

Importing portaclass imports no framework: call ``use_backend`` first if you
want a particular one, then use the functions below (each imports keras and the
backend on first use).
"""

from __future__ import annotations

from portaclass._lazy import lazy_getattr
from portaclass.config import active_backend, use_backend
from portaclass.errors import (
    BackendError,
    DataError,
    ModelFileError,
    PortaclassError,
    RunError,
    UsageError,
)

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "create_model": "portaclass.models",
    "list_models": "portaclass.models",
    "run_quickstart": "portaclass.train.quickstart",
    "run_training": "portaclass.train.runner",
    "resume_training": "portaclass.train.runner",
    "train": "portaclass.train",
    "evaluate": "portaclass.evaluate",
    "predict": "portaclass.predict",
    "TrainOptions": "portaclass.train.options",
    "Run": "portaclass.run",
    "backend": "portaclass.backend",
}


__getattr__ = lazy_getattr('portaclass', _LAZY, globals())


__all__ = [
    "BackendError",
    "DataError",
    "ModelFileError",
    "PortaclassError",
    "RunError",
    "UsageError",
    "active_backend",
    "use_backend",
    *_LAZY,
]
