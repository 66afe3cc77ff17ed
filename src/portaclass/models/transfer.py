"""Fine-tuning a frozen base (Keras' transfer-learning guide): ``unfreeze``
all or part of it, with BatchNormalization kept in inference mode unless
asked to adapt. ``models.builder.build_transfer_model`` builds base + head.

Typical use::

    model, base = build_transfer_model("mobilenet_v2", 5, (96, 96, 3), weights="imagenet")
    compile + fit (phase 1: only the head learns)
    unfreeze(base, "top:20"); compile again with a ~10x lower learning rate; fit
"""

from __future__ import annotations

from portaclass import checks
from portaclass._lazy import keras
from portaclass.errors import UsageError
from portaclass.models.constants import BATCHNORM_MODES


def parse_unfreeze(spec: str) -> tuple[str, str]:
    """``"all"`` | ``"top:K"`` | ``"from:LAYER_NAME"`` -> (kind, value);
    checked before any model is built."""
    spec = str(spec).strip()
    kind, _, value = spec.partition(":")
    if (kind == "all" and not value) or (kind == "top" and value.isdigit() and int(value) > 0) \
            or (kind == "from" and value):
        return kind, value
    raise UsageError.for_option("unfreeze", f"must be 'all', 'top:K' or 'from:LAYER_NAME'; received {spec!r}")


def _leaf_layers(model):
    """Layers in topological order, nested models expanded."""
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Model", "Sequential"):
            yield from _leaf_layers(layer)
        else:
            yield layer


def unfreeze(base_model, spec: str = "all", batchnorm: str = "frozen") -> int:
    """Make (part of) a frozen base trainable for fine-tuning.

    ``spec``: ``all``; ``top:K`` (the last K layers with weights, not
    counting BatchNormalization); ``from:LAYER_NAME`` (that layer and
    everything after it). BatchNormalization layers stay frozen unless
    ``batchnorm="adapt"``, which unfreezes those in the unfrozen part too.
    Recompile the model afterwards. Returns the number of layers with weights
    (BatchNormalization aside) now trainable.
    """
    checks.choice("batchnorm", batchnorm, BATCHNORM_MODES)
    kind, value = parse_unfreeze(spec)
    batch_norm = keras.layers.BatchNormalization
    leaves = list(_leaf_layers(base_model))
    weighted = [layer for layer in leaves if layer.weights and not isinstance(layer, batch_norm)]
    if kind == "all":
        start = 0
    elif kind == "top":
        start = max(0, len(weighted) - int(value))
    else:
        names = [layer.name for layer in leaves]
        if value not in names:
            raise UsageError.for_option("unfreeze", f"names no layer {value!r} of the base model")
        after = set(names[names.index(value):])
        start = next((i for i, layer in enumerate(weighted) if layer.name in after), len(weighted))
    base_model.trainable = True
    for index, layer in enumerate(weighted):
        layer.trainable = index >= start
    first = leaves.index(weighted[start]) if start < len(weighted) else len(leaves)
    for position, layer in enumerate(leaves):
        if isinstance(layer, batch_norm):
            # A non-trainable BatchNormalization runs in inference mode and
            # keeps its moving statistics fixed (Keras 3 semantics).
            layer.trainable = batchnorm == "adapt" and position >= first
    return len(weighted) - start
