"""ResNet-18/34 (basic blocks) from stock Keras layers, laid out like
torchvision's: bias-free convs with BatchNormalization, explicit zero padding
(so strided convs pad like PyTorch's, not Keras' asymmetric "same"), and a
Dense head with bias."""

from __future__ import annotations

from portaclass import checks
from portaclass._lazy import keras
from portaclass.layout import model_input_shape
from portaclass.models.constants import BACKBONE, IMAGENET_MEAN, IMAGENET_STD, INPUT
from portaclass.models.registry import Preprocessing, register_model

_PREPROCESSING = Preprocessing(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
STEMS = ("auto", "imagenet", "cifar")


def resolve_stem(stem: str, input_shape: tuple[int, int, int]) -> str:
    """"auto" -> "cifar" for inputs up to 64 px (a 7x7/2 conv and a pool
    would shrink a 32x32 image to 8x8 before the first block), else "imagenet"."""
    checks.choice("stem", stem, STEMS)
    if stem == "auto":
        return "cifar" if max(input_shape[:2]) <= 64 else "imagenet"
    return stem


def _channel_axis() -> int:
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    """Conv (padded like PyTorch's ``padding=kernel // 2``) -> BN -> ReLU."""
    layers = keras.layers
    pad = kernel // 2
    if stride > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    # torchvision's kaiming_normal_(mode="fan_out") init
    init = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=init, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=_channel_axis(), momentum=0.9, epsilon=1e-5,
                                  name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    shortcut = x
    if stride != 1 or x.shape[_channel_axis()] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_down", relu=False)
    x = _conv_bn(x, filters, 3, stride, f"{name}_1")
    x = _conv_bn(x, filters, 3, 1, f"{name}_2", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def resnet_features(input_shape, blocks_per_stage, stem="auto", width=64):
    """Stem and residual stages, up to the last block's output."""
    layers = keras.layers
    stem = resolve_stem(stem, input_shape)
    inputs = keras.Input(shape=model_input_shape(input_shape), name=INPUT)
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
    return keras.Model(inputs, x, name=BACKBONE)


@register_model("resnet18", _PREPROCESSING)
def resnet18(input_shape: tuple[int, int, int], stem: str = "auto", width: int = 64):
    """ResNet-18, basic blocks [2, 2, 2, 2]; stem "cifar" for inputs <= 64 px."""
    return resnet_features(input_shape, (2, 2, 2, 2), stem, width)


@register_model("resnet34", _PREPROCESSING)
def resnet34(input_shape: tuple[int, int, int], stem: str = "auto", width: int = 64):
    """ResNet-34, basic blocks [3, 4, 6, 3]; stem "cifar" for inputs <= 64 px."""
    return resnet_features(input_shape, (3, 4, 6, 3), stem, width)
