"""Models: a registry of stock-Keras classifiers (``create_model``, ``list_models``)."""

from portaclass.models.registry import (
    ModelSpec,
    Preprocessing,
    create_model,
    get_spec,
    list_models,
    register_model,
)

__all__ = ["ModelSpec", "Preprocessing", "create_model", "get_spec", "list_models", "register_model"]
