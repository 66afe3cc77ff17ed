"""Lazy package attributes (PEP 562), so ``import portaclass`` and
``import portaclass.data`` import no framework until a name is used."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, table: dict[str, str], namespace: dict):
    """A module ``__getattr__`` resolving ``table`` (name -> module defining
    it) on first access and caching the value in ``namespace``. A name equal to
    its module's last component (``"backend": "portaclass.backend"``) is the
    module itself."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(table[name])
        value = module if table[name].rsplit(".", 1)[-1] == name else getattr(module, name)
        namespace[name] = value
        return value

    return __getattr__
