"""Transfer-learning building blocks (Keras' transfer-learning guide):
a frozen base called with ``training=False`` under a new head, then
``unfreeze`` for fine-tuning with BatchNormalization kept in inference mode.

Typical use::

    model, base = build_transfer_model("mobilenet_v2", 5, (96, 96, 3), weights="imagenet")
    compile + fit (phase 1: only the head learns)
    unfreeze(base, "top:20"); compile again with a ~10x lower learning rate; fit
"""

from __future__ import annotations

from pathlib import Path

from portaclass.errors import ModelFileError, UsageError
from portaclass.layout import model_input_shape

# Layers that end a feature extractor: the base is cut at the input of the
# last of them (or, without any, at the input of the trailing Dense layers).
_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
            "GlobalMaxPooling1D", "Flatten")


def _is_model_file(base) -> bool:
    return isinstance(base, Path) or str(base).endswith((".keras", ".h5"))


def load_backbone(path: Path):
    """A ``.keras`` classifier trained earlier (any backend), cut before its
    head: at the input of its last global pooling / Flatten layer, else of its
    trailing Dense layers."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"backbone model not found: {path}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ModelFileError(f"cannot load backbone {path}: {str(error).splitlines()[0][:200]}") from error
    names = [type(layer).__name__ for layer in model.layers]
    cut = max((i for i, n in enumerate(names) if n in _POOLING), default=None)
    if cut is None:
        cut = len(names)
        while cut > 1 and names[cut - 1] in ("Dense", "Dropout", "Activation", "Softmax"):
            cut -= 1
        if cut == len(names) or cut <= 1:
            raise ModelFileError(f"cannot find a classifier head to cut in {path}")
    features = model.layers[cut].input if cut < len(names) else model.layers[cut - 1].output
    return keras.Model(model.inputs[0], features, name="backbone")


def _registry_backbone(name: str, input_shape, weights, seed):
    """The backbone of a registered model: keras.applications families come
    without their top (and with ``weights``); from-scratch models are built
    and cut like a saved model."""
    from portaclass.models import applications
    from portaclass.models.registry import create_model, get_spec

    spec = get_spec(name)
    if name in applications.FAMILIES:
        if weights == "imagenet" and input_shape[-1] != 3:
            raise ModelFileError(f"imagenet weights for {name} need 3-channel input")
        base, path = applications.build_base(name, input_shape, weights)
        if path is not None:
            try:
                base.load_weights(path)
            except Exception as error:
                raise ModelFileError(f"cannot load weights from {path}: {str(error).splitlines()[0][:200]}") from error
        return base
    if weights is not None:
        raise UsageError(f"model {spec.name!r} has no pretrained weights; use weights=None")
    import keras

    full = create_model(name, 2, input_shape, seed=seed)
    names = [type(layer).__name__ for layer in full.layers]
    cut = max(i for i, n in enumerate(names) if n in _POOLING)
    return keras.Model(full.inputs, full.layers[cut].input, name="backbone")


BATCHNORM_MODES = ("frozen", "adapt")


def _check_batchnorm(batchnorm: str) -> None:
    if batchnorm not in BATCHNORM_MODES:
        raise UsageError(f"unknown base batchnorm mode {batchnorm!r}; choose frozen or adapt")


def build_transfer_model(base: str | Path, num_classes: int, input_shape=None,
                         weights=None, dropout: float = 0.2, seed: int | None = None,
                         batchnorm: str = "frozen"):
    """``inputs -> base(inputs, training=False) -> pooling -> Dropout -> Dense``.

    ``batchnorm="frozen"`` (the Keras guide's rule, right for ImageNet bases)
    keeps the base's BatchNormalization in inference mode in both phases.
    ``"adapt"`` calls the base without ``training=False``, so once ``unfreeze``
    (with the same mode) makes them trainable, BatchNormalization layers
    re-estimate their statistics on the new data: better when the new images
    look nothing like the base's (docs/benchmarks.md: shapes -> digits).

    ``base`` is a registered model name (pretrained families without their
    top, with ``weights`` None/"imagenet"/path) or a path to a ``.keras``
    classifier saved earlier on any backend, which is cut before its head
    (its own input shape is used). Returns ``(model, base_model)`` with the
    base frozen. With ``seed`` the new head (and a randomly initialised base)
    is drawn identically on every backend.
    """
    import keras
    from keras import layers

    from portaclass import config

    config.active_backend()
    _check_batchnorm(batchnorm)
    if num_classes < 2:
        raise UsageError(f"num_classes must be at least 2, got {num_classes}")
    if seed is not None:
        from portaclass import backend

        backend.seed_everything(seed)
    if _is_model_file(base):
        base_model = load_backbone(Path(base))
        inputs = keras.Input(shape=tuple(base_model.inputs[0].shape[1:]), name="image")
        pretrained = True
    else:
        if input_shape is None:
            from portaclass.models.registry import get_spec

            input_shape = (*get_spec(base).preprocessing.input_size, 3)
        base_model = _registry_backbone(str(base), tuple(input_shape), weights, seed)
        inputs = keras.Input(shape=model_input_shape(tuple(input_shape)), name="image")
        pretrained = weights is not None
    base_model.trainable = False
    # training=False keeps BatchNormalization in inference mode even after
    # the base is unfrozen for fine-tuning.
    x = base_model(inputs, training=False) if batchnorm == "frozen" else base_model(inputs)
    rank = len(x.shape)
    if rank == 4:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif rank == 3:
        x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="transfer")
    if seed is not None:
        from portaclass.models.init import initialize_weights

        initialize_weights(model, seed, skip_layers=("backbone",) if pretrained else ())
    return model, base_model


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
    counting BatchNormalization);
    ``from:LAYER_NAME`` (that layer and everything after it). BatchNormalization
    layers stay frozen unless ``batchnorm="adapt"``, which unfreezes those in
    the unfrozen part too. Recompile the model afterwards. Returns the number
    of layers with weights (BatchNormalization aside) now trainable.
    """
    from keras import layers

    _check_batchnorm(batchnorm)
    spec = str(spec).strip()
    kind, _, value = spec.partition(":")
    leaves = list(_leaf_layers(base_model))
    weighted = [layer for layer in leaves
                if layer.weights and not isinstance(layer, layers.BatchNormalization)]
    if kind == "all" and not value:
        start = 0
    elif kind == "top" and value.isdigit() and int(value) > 0:
        start = max(0, len(weighted) - int(value))
    elif kind == "from" and value:
        names = [layer.name for layer in leaves]
        if value not in names:
            raise UsageError(f"unfreeze: no layer named {value!r} in the base model")
        after = set(names[names.index(value):])
        start = next((i for i, layer in enumerate(weighted) if layer.name in after), len(weighted))
    else:
        raise UsageError(f"bad unfreeze spec {spec!r}: use 'all', 'top:K' or 'from:LAYER_NAME'")
    base_model.trainable = True
    for index, layer in enumerate(weighted):
        layer.trainable = index >= start
    first = leaves.index(weighted[start]) if start < len(weighted) else len(leaves)
    for position, layer in enumerate(leaves):
        if isinstance(layer, layers.BatchNormalization):
            # A non-trainable BatchNormalization runs in inference mode and
            # keeps its moving statistics fixed (Keras 3 semantics).
            layer.trainable = batchnorm == "adapt" and position >= first
    return len(weighted) - start
