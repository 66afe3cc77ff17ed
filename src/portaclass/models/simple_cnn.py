"""A small VGG-style CNN: fast on a CPU, enough for digits, shapes and CIFAR."""

from __future__ import annotations

from portaclass._lazy import keras
from portaclass.layout import model_input_shape
from portaclass.models.constants import BACKBONE, INPUT
from portaclass.models.registry import Preprocessing, register_model


@register_model("simple_cnn", Preprocessing(input_size=(32, 32)), head_dropout=0.2)
def simple_cnn(input_shape: tuple[int, int, int], width: int = 32):
    """Three conv blocks (conv-BN-ReLU, max-pool), global pooling, dense head."""
    layers = keras.layers
    inputs = keras.Input(shape=model_input_shape(input_shape), name=INPUT)
    x = inputs
    for block, filters in enumerate((width, width * 2, width * 4), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn")(x)
        x = layers.ReLU(name=f"block{block}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name=BACKBONE)
