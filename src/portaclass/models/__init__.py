"""Models: a registry of stock-Keras classifiers (``create_model``, ``list_models``),
transfer-learning blocks, NumPy initialisation and FLOP counting.

Nothing here imports keras at module level; builders import it when called.
"""

from portaclass.models.flops import count_flops
from portaclass.models.init import initialize_weights
from portaclass.models.registry import (
    ModelSpec,
    Preprocessing,
    create_model,
    get_spec,
    list_models,
    register_model,
)
from portaclass.models.transfer import build_transfer_model, unfreeze

__all__ = [
    "ModelSpec",
    "Preprocessing",
    "build_transfer_model",
    "count_flops",
    "create_model",
    "get_spec",
    "initialize_weights",
    "list_models",
    "register_model",
    "unfreeze",
]
