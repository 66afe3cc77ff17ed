"""The one model builder (timm's ``build_model_with_cfg`` idea): every
classifier portaclass makes is a feature extractor plus the same head, built
here, whatever the features come from:

* a registered family (``models.registry``): its layers become the
  classifier's own (pretrained keras.applications bases stay nested, named
  ``backbone``, so their weights can be loaded and frozen as one);
* for transfer learning, a frozen base: a registered family's features, or a
  ``.keras`` classifier saved earlier on any backend, cut before its head.

Weights loading, the 3-channel check of imagenet weights, cutting a saved
model and the seeded NumPy initialisation live here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

from portaclass import checks
from portaclass._lazy import backend, keras
from portaclass.errors import ModelFileError, first_line
from portaclass.layout import check_image_shape, model_input_shape
from portaclass.model_files import check_weights_file, load_keras_file
from portaclass.models.constants import (
    BACKBONE,
    BATCHNORM_MODES,
    HEAD_DENSE,
    HEAD_DROPOUT,
    HEAD_POOL,
    INPUT,
)
from portaclass.models.init import initialize_weights
from portaclass.models.registry import check_input_size, check_weights, get_spec

# Layers that end a feature extractor: a saved classifier is cut at the input
# of the last of them (or, without any, at the input of its trailing Dense layers).
_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
            "GlobalMaxPooling1D", "Flatten")
_HEAD_LAYERS = ("Dense", "Dropout", "Activation", "Softmax")
TRANSFER_DROPOUT = 0.2  # the Keras transfer-learning guide's head


def create_model(name: str, num_classes: int, input_shape: tuple[int, int, int] | None = None, *,
                 weights: str | None = None, seed: int | None = None, dropout: float | None = None,
                 **options):
    """Build a registered model as a classifier.

    Args:
        name: a registered model name (``list_models()``).
        num_classes: size of the softmax output, at least 2.
        input_shape: channels_last (H, W, C); default the model's declared
            input size with 3 channels.
        weights: None (random init), "imagenet" (Keras' download and cache)
            or a path to a ``.h5``/``.weights.h5``/``.keras`` file holding the
            base's or the whole model's weights; pretrained families only.
        seed: draw the initial weights with NumPy from this seed, so they are
            identical on every backend (loaded weights are kept as loaded).
        dropout: Dropout rate before the classifier layer; default the
            model's own (``ModelSpec.head_dropout``).
        **options: family options (``stem`` and ``width`` for resnets,
            ``patch_size``, ``depth``... for vit_tiny).

    Returns:
        A functional ``keras.Model`` with softmax output.
    """
    spec = get_spec(name)
    input_shape = _checked_shape(spec, input_shape, num_classes, weights)
    weights_file = _weights_file(weights)
    _seed(seed)
    if spec.pretrained is not None:
        base = spec.features(input_shape, weights=None if weights_file else weights, **options)
        inputs = keras.Input(shape=model_input_shape(input_shape), name=INPUT)
        features = base(inputs)
    else:
        base = spec.features(input_shape, **options)
        inputs, features = base.inputs[0], base.outputs[0]
    rate = spec.head_dropout if dropout is None else dropout
    model = keras.Model(inputs, classifier_head(features, num_classes, rate, seed), name=name)
    if weights_file is not None:
        _load_weights_file(model, base, weights_file)
    if seed is not None:
        initialize_weights(model, seed, skip_layers=(BACKBONE,) if weights is not None else ())
    return model


def build_transfer_model(base: str | Path, num_classes: int, input_shape=None, *,
                         weights=None, dropout: float | None = None, seed: int | None = None,
                         batchnorm: str = "frozen", unsafe: bool = False):
    """``inputs -> base(inputs) -> pooling -> Dropout -> Dense``, base frozen.

    Args:
        base: a registered model name (pretrained families come without their
            top, with ``weights``), or a path to a ``.keras`` classifier saved
            earlier on any backend, cut before its head (its own input shape
            is used).
        num_classes: size of the new softmax output.
        input_shape: channels_last (H, W, C) for a registered base; default
            its declared size with 3 channels.
        weights: None, "imagenet" or a path, as for ``create_model``.
        dropout: Dropout rate of the new head (default 0.2).
        seed: draw the new head (and a randomly initialised base) with NumPy.
        batchnorm: "frozen" (the Keras guide's rule, right for ImageNet bases)
            calls the base with ``training=False`` in both phases, so its
            BatchNormalization stays in inference mode; "adapt" lets them
            re-estimate their statistics once ``unfreeze`` (same mode) makes
            them trainable: better when the new images look nothing like the
            base's (docs/benchmarks.md: shapes -> digits).
        unsafe: load a backbone file without ``model_files``' safety checks
            (a Lambda layer, a legacy ``.h5``): only for files the user trusts.

    Returns:
        ``(model, base_model)`` with the base frozen (``trainable=False``).
    """
    checks.choice("batchnorm", batchnorm, BATCHNORM_MODES)
    _check_classes(num_classes)
    _seed(seed)
    if _is_model_file(base):
        base_model = load_backbone(Path(base), unsafe=unsafe)
        shape = tuple(base_model.inputs[0].shape[1:])
        pretrained = True
    else:
        spec = get_spec(str(base), option="base")
        input_shape = _checked_shape(spec, input_shape, num_classes, weights)
        base_model = _registry_base(spec, input_shape, weights)
        shape = model_input_shape(input_shape)
        pretrained = weights is not None
    base_model.trainable = False
    inputs = keras.Input(shape=shape, name=INPUT)
    # training=False keeps BatchNormalization in inference mode even after
    # the base is unfrozen for fine-tuning.
    features = base_model(inputs, training=False) if batchnorm == "frozen" else base_model(inputs)
    rate = TRANSFER_DROPOUT if dropout is None else dropout
    model = keras.Model(inputs, classifier_head(features, num_classes, rate, seed), name="transfer")
    if seed is not None:
        initialize_weights(model, seed, skip_layers=(BACKBONE,) if pretrained else ())
    return model, base_model


def classifier_head(features, num_classes: int, dropout: float, seed: int | None = None):
    """Global average pooling (2-D maps or token sequences), Dropout when
    ``dropout`` > 0, and the softmax Dense layer. The softmax layer computes
    in float32 under a mixed-precision policy, so probabilities and the loss
    never lose range to float16.

    With ``seed`` the Dropout draws its masks from its own Keras
    SeedGenerator on every backend (an unseeded one on torch draws from
    torch's global generator, which the DataLoader Keras wraps around the
    data also draws from), so a resumed run can restore its random state."""
    layers = keras.layers
    if len(features.shape) == 4:
        x = layers.GlobalAveragePooling2D(name=HEAD_POOL)(features)
    elif len(features.shape) == 3:
        x = layers.GlobalAveragePooling1D(name=HEAD_POOL)(features)
    else:
        x = features
    if dropout:
        x = layers.Dropout(dropout, seed=seed, name=HEAD_DROPOUT)(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=HEAD_DENSE)(x)


def head_dropout(model) -> float | None:
    """The Dropout rate of a built classifier's head, None when it has none."""
    try:
        return float(model.get_layer(HEAD_DROPOUT).rate)
    except ValueError:
        return None


def load_backbone(path: Path, *, unsafe: bool = False):
    """A ``.keras`` classifier trained earlier (any backend), cut before its
    head: at the input of its last global pooling / Flatten layer, else of its
    trailing Dense layers; named ``backbone``. Loaded through
    ``model_files.load_keras_file`` (safe mode unless ``unsafe``)."""
    model = load_keras_file(path, unsafe=unsafe, what="backbone")
    features = _cut_before_head(model)
    if features is None:
        raise ModelFileError(f"cannot find a classifier head to cut in {path}")
    return keras.Model(model.inputs[0], features, name=BACKBONE)


def _cut_before_head(model):
    """The tensor feeding a classifier's head, or None when there is no head."""
    names = [type(layer).__name__ for layer in model.layers]
    cut = max((i for i, n in enumerate(names) if n in _POOLING), default=None)
    if cut is not None:
        return model.layers[cut].input
    cut = len(names)
    while cut > 1 and names[cut - 1] in _HEAD_LAYERS:
        cut -= 1
    if cut == len(names) or cut <= 1:
        return None
    return model.layers[cut - 1].output


def _registry_base(spec, input_shape, weights):
    """A registered family's feature extractor as a frozen-able base, with
    ``weights`` loaded (pretrained families)."""
    weights_file = _weights_file(weights)
    if spec.pretrained is None:
        return spec.features(input_shape)
    base = spec.features(input_shape, weights=None if weights_file else weights)
    if weights_file is not None:
        _load_weights_file(base, base, weights_file)
    return base


def _checked_shape(spec, input_shape, num_classes, weights) -> tuple[int, int, int]:
    _check_classes(num_classes)
    if input_shape is None:
        input_shape = (*spec.preprocessing.input_size, 3)
    input_shape = tuple(int(d) for d in input_shape)
    check_image_shape(input_shape)
    check_input_size(spec, input_shape)
    check_weights(spec, weights, input_shape)
    return input_shape


def _check_classes(num_classes: int) -> None:
    checks.at_least("num_classes", num_classes, 2)


def _seed(seed) -> None:
    if seed is not None:
        backend.seed_everything(seed)


def _is_model_file(base) -> bool:
    return isinstance(base, Path) or str(base).endswith((".keras", ".h5"))


def _weights_file(weights) -> Path | None:
    """The local file ``weights`` names (None for None/"imagenet")."""
    if weights in (None, "imagenet"):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelFileError(f"weights file not found: {path}")
    return check_weights_file(path)


def _load_weights_file(model, base, path: Path) -> None:
    """Load a local weights file into the base, or failing that into the
    whole model; ModelFileError naming the file if it fits neither."""
    errors = []
    for target in (base, model):
        try:
            target.load_weights(path)
            return
        except Exception as error:  # shape/layer-count mismatch, bad file
            errors.append(first_line(error))
    raise ModelFileError(f"cannot load weights from {path}: {errors[-1]}")
