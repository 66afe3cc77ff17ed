"""Pretrained backbones from ``keras.applications`` (no top), each declaring
the preprocessing of its ``preprocess_input``. ``models.builder`` adds the
classifier head and loads local weights files.

``weights="imagenet"``: Keras downloads into its cache (``$KERAS_HOME/models``)
and reuses the file afterwards.
"""

from __future__ import annotations

from portaclass._lazy import keras
from portaclass.errors import ModelFileError
from portaclass.layout import model_input_shape
from portaclass.models.constants import BACKBONE
from portaclass.models.registry import Preprocessing, register_model

# keras.applications' preprocess_input conventions, as Preprocessing:
_TF_MODE = dict(scale=1.0 / 127.5, offset=-1.0)  # mode "tf": [-1, 1]
_RAW = dict(scale=1.0, offset=0.0)  # rescaling is a layer inside the model
_CAFFE = dict(  # mode "caffe": RGB -> BGR, subtract the BGR ImageNet mean
    scale=1.0, offset=0.0, channel_order="bgr",
    mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
)
HEAD_DROPOUT = 0.2

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


def application_base(name: str, input_shape: tuple[int, int, int], weights=None):
    """The keras.applications model of a family, without its top, named
    ``backbone``; ``weights`` None or "imagenet"."""
    application = getattr(keras.applications, FAMILIES[name][0])
    try:
        return application(include_top=False, weights=weights,
                           input_shape=model_input_shape(input_shape), name=BACKBONE)
    except Exception as error:  # download failure (offline), bad cached file
        if weights != "imagenet":
            raise
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ModelFileError(
            f"could not get imagenet weights for {name}: {reason} "
            "(offline? put the file in $KERAS_HOME/models, default ~/.keras/models)"
        ) from error


def _register(name: str, keras_name: str, size: int, preprocessing: dict) -> None:
    def features(input_shape, weights=None):
        return application_base(name, input_shape, weights)

    features.__doc__ = f"keras.applications.{keras_name} (no top) + pooling, dropout, dense head."
    register_model(
        name,
        Preprocessing(input_size=(size, size), min_input_size=(32, 32), **preprocessing),
        pretrained=f"ImageNet (keras.applications.{keras_name})",
        head_dropout=HEAD_DROPOUT,
    )(features)


for _name, (_keras_name, _size, _preprocessing) in FAMILIES.items():
    _register(_name, _keras_name, _size, _preprocessing)
