"""Pretrained backbones from ``keras.applications`` (no top) with a new
classifier head. Each declares the preprocessing of its ``preprocess_input``.

``weights``: None, "imagenet" (Keras downloads into its cache,
``$KERAS_HOME/models``, and reuses the file afterwards) or a local ``.h5``,
``.weights.h5`` or ``.keras`` file holding either the backbone's weights or
the whole model's.
"""

from __future__ import annotations

from pathlib import Path

from portaclass.errors import ModelFileError
from portaclass.layout import model_input_shape
from portaclass.models.registry import Preprocessing, register_model

BACKBONE = "backbone"  # name of the nested base model inside a created model

# keras.applications' preprocess_input conventions, as Preprocessing:
_TF_MODE = dict(scale=1.0 / 127.5, offset=-1.0)  # mode "tf": [-1, 1]
_RAW = dict(scale=1.0, offset=0.0)  # rescaling is a layer inside the model
_CAFFE = dict(  # mode "caffe": RGB -> BGR, subtract the BGR ImageNet mean
    scale=1.0, offset=0.0, channel_order="bgr",
    mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
)

# name -> (keras.applications attribute, default size, preprocessing kwargs)
FAMILIES = {
    "mobilenet_v2": ("MobileNetV2", 224, _TF_MODE),
    "mobilenet_v3_small": ("MobileNetV3Small", 224, _RAW),
    "efficientnet_b0": ("EfficientNetB0", 224, _RAW),
    "efficientnet_b1": ("EfficientNetB1", 240, _RAW),
    "efficientnet_b2": ("EfficientNetB2", 260, _RAW),
    "efficientnet_b3": ("EfficientNetB3", 300, _RAW),
    "resnet50": ("ResNet50", 224, _CAFFE),
}


def build_base(name: str, input_shape: tuple[int, int, int], weights=None):
    """The keras.applications model for a family name, without its top, named
    "backbone", with ``weights`` None, "imagenet" or a path."""
    import keras

    application = getattr(keras.applications, FAMILIES[name][0])
    path = None if weights in (None, "imagenet") else Path(weights)
    if path is not None and not path.is_file():
        raise ModelFileError(f"weights file not found: {path}")
    try:
        base = application(include_top=False, weights=None if path else weights,
                           input_shape=model_input_shape(input_shape), name=BACKBONE)
    except ModelFileError:
        raise
    except Exception as error:  # download failure (offline), bad cached file
        if weights != "imagenet":
            raise
        raise ModelFileError(
            f"could not get imagenet weights for {name}: {_first_line(error)} "
            "(offline? put the file in $KERAS_HOME/models, default ~/.keras/models)"
        ) from error
    return base, path


def load_weights_file(model, base, path: Path) -> None:
    """Load a local weights file into the backbone, or failing that into the
    whole model; ModelFileError naming the file if it fits neither."""
    errors = []
    for target in (base, model):
        try:
            target.load_weights(path)
            return
        except Exception as error:  # shape/layer-count mismatch, bad file
            errors.append(_first_line(error))
    raise ModelFileError(f"cannot load weights from {path}: {errors[-1]}")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def build_application(name, num_classes, input_shape, weights=None, dropout=0.2):
    import keras
    from keras import layers

    if weights == "imagenet" and input_shape[-1] != 3:
        raise ModelFileError(f"imagenet weights for {name} need 3-channel input, got {input_shape}")
    base, path = build_base(name, input_shape, weights)
    inputs = keras.Input(shape=model_input_shape(input_shape), name="image")
    x = base(inputs)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=name)
    if path is not None:
        load_weights_file(model, base, path)
    return model


def _register(name: str, keras_name: str, size: int, preprocessing: dict) -> None:
    def build(num_classes, input_shape, weights=None, dropout=0.2):
        return build_application(name, num_classes, input_shape, weights, dropout)

    build.__doc__ = f"keras.applications.{keras_name} (no top) + pooling, dropout, dense head."
    register_model(
        name,
        Preprocessing(input_size=(size, size), min_input_size=(32, 32), **preprocessing),
        pretrained=f"ImageNet (keras.applications.{keras_name})",
        tags=("pretrained",),
    )(build)


for _name, (_keras_name, _size, _preprocessing) in FAMILIES.items():
    _register(_name, _keras_name, _size, _preprocessing)
