"""Lazy handles, so ``import portaclass`` (and any portaclass module) imports
no framework until one is used.

``keras`` and ``backend`` here are module proxies: the first attribute access
resolves the Keras backend (``config.active_backend``, which sets
``KERAS_BACKEND``) and only then imports the real module. Every portaclass
module takes keras from here (``from portaclass._lazy import keras``) at the
top of the file, so "the backend is chosen before keras loads" holds by
construction rather than by remembering to import inside functions (Keras'
own ``keras/src/utils/module_utils.LazyModule`` idea).
"""

from __future__ import annotations

import importlib
import sys
import types

from portaclass import config

_MODULE_DUNDERS = ("__version__", "__file__", "__path__", "__spec__", "__all__", "__dict__")


class LazyModule:
    """A module imported on first attribute access, after the backend is chosen."""

    def __init__(self, name: str, *, via: str | None = None):
        self._name = name
        self._via = via  # a module to import first, which imports this one its own way
        self._module = None

    def _load(self):
        if self._module is None:
            config.active_backend()
            if self._via:
                importlib.import_module(self._via)
            self._module = importlib.import_module(self._name)
        return self._module

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def __getattr__(self, attr: str):
        if self._module is None and attr.startswith("__") and attr not in _MODULE_DUNDERS:
            # copy, pickle and inspect probe objects for dunders: not a reason to import keras
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (loaded)' if self.loaded else ''}>"


# keras is imported by portaclass.backend, which keeps the other frameworks
# out of the import (backend._common.other_frameworks_hidden).
keras = LazyModule("keras", via="portaclass.backend")
backend = LazyModule("portaclass.backend")


def lazy_getattr(package: str, table: dict[str, str], namespace: dict):
    """A module ``__getattr__`` (PEP 562) resolving ``table`` (name -> module
    defining it) on first access and caching the value in ``namespace``. A
    name equal to its module's last component (``"backend":
    "portaclass.backend"``) is the module itself."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(table[name])
        value = module if table[name].rsplit(".", 1)[-1] == name else getattr(module, name)
        namespace[name] = value
        return value

    return __getattr__


def make_module_callable(module_name: str, function) -> None:
    """Let module ``module_name`` be called as ``function`` (``portaclass.evaluate(...)``
    although ``portaclass.evaluate`` is also the module: importing a submodule
    sets the package attribute to the module, so the module must be the function)."""
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    _CallableModule.__call__.__doc__ = function.__doc__
    module.__class__ = _CallableModule
