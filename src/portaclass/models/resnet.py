"""ResNet-18/34 (basic blocks) from stock Keras layers, laid out like
torchvision's: bias-free convs with BatchNormalization, explicit zero padding
(so strided convs pad like PyTorch's, not Keras' asymmetric "same"), and a
Dense head with bias."""

from __future__ import annotations

from portaclass.errors import UsageError
from portaclass.layout import model_input_shape
from portaclass.models.registry import Preprocessing, register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREPROCESSING = Preprocessing(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
_STEMS = ("auto", "imagenet", "cifar")


def resolve_stem(stem: str, input_shape: tuple[int, int, int]) -> str:
    """"auto" -> "cifar" for inputs up to 64 px (a 7x7/2 conv and a pool
    would shrink a 32x32 image to 8x8 before the first block), else "imagenet"."""
    if stem not in _STEMS:
        raise UsageError(f"unknown stem {stem!r}; choose one of {', '.join(_STEMS)}")
    if stem == "auto":
        return "cifar" if max(input_shape[:2]) <= 64 else "imagenet"
    return stem


def _channel_axis() -> int:
    import keras

    return 1 if keras.config.image_data_format() == "channels_first" else -1


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    """Conv (padded like PyTorch's ``padding=kernel // 2``) -> BN -> ReLU."""
    from keras import initializers, layers

    pad = kernel // 2
    if stride > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    # torchvision's kaiming_normal_(mode="fan_out") init
    init = initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=init, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=_channel_axis(), momentum=0.9, epsilon=1e-5,
                                  name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    from keras import layers

    shortcut = x
    if stride != 1 or x.shape[_channel_axis()] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_down", relu=False)
    x = _conv_bn(x, filters, 3, stride, f"{name}_1")
    x = _conv_bn(x, filters, 3, 1, f"{name}_2", relu=False)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def build_resnet(num_classes, input_shape, blocks_per_stage, name, stem="auto",
                 width=64, dropout=0.0):
    import keras
    from keras import layers

    stem = resolve_stem(stem, input_shape)
    inputs = keras.Input(shape=model_input_shape(input_shape), name="image")
    if stem == "imagenet":
        x = _conv_bn(inputs, width, 7, 2, "stem")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # after ReLU: same as -inf pad
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    else:
        x = _conv_bn(inputs, width, 3, 1, "stem")
    for stage, blocks in enumerate(blocks_per_stage):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width * 2**stage, stride, f"stage{stage + 1}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model("resnet18", _PREPROCESSING)
def resnet18(num_classes: int, input_shape: tuple[int, int, int], stem: str = "auto",
             width: int = 64, dropout: float = 0.0):
    """ResNet-18, basic blocks [2, 2, 2, 2]; stem "cifar" for inputs <= 64 px."""
    return build_resnet(num_classes, input_shape, (2, 2, 2, 2), "resnet18", stem, width, dropout)


@register_model("resnet34", _PREPROCESSING)
def resnet34(num_classes: int, input_shape: tuple[int, int, int], stem: str = "auto",
             width: int = 64, dropout: float = 0.0):
    """ResNet-34, basic blocks [3, 4, 6, 3]; stem "cifar" for inputs <= 64 px."""
    return build_resnet(num_classes, input_shape, (3, 4, 6, 3), "resnet34", stem, width, dropout)
