"""Models: a registry of stock-Keras classifiers (``create_model``, ``list_models``),
one builder for every model, transfer-learning blocks, NumPy initialisation and
FLOP counting.

Names resolve lazily (PEP 562), so ``import portaclass.models.constants``
(which the CLI needs for its choices) loads neither NumPy nor a family.
"""

from __future__ import annotations

from portaclass._lazy import lazy_getattr

_LAZY = {
    "ModelSpec": "portaclass.models.registry",
    "Preprocessing": "portaclass.models.registry",
    "get_spec": "portaclass.models.registry",
    "list_models": "portaclass.models.registry",
    "register_model": "portaclass.models.registry",
    "create_model": "portaclass.models.builder",
    "build_transfer_model": "portaclass.models.builder",
    "unfreeze": "portaclass.models.transfer",
    "count_flops": "portaclass.models.flops",
    "initialize_weights": "portaclass.models.init",
}

__getattr__ = lazy_getattr("portaclass.models", _LAZY, globals())

__all__ = sorted(_LAZY)
