"""ViT-Tiny from stock Keras layers: Conv2D patchify, a learned position
embedding, pre-norm transformer blocks, global average pooling (instead of a
class token, which would need a custom layer) and a Dense head."""

from __future__ import annotations

from portaclass._lazy import keras
from portaclass.errors import UsageError
from portaclass.layout import model_input_shape
from portaclass.models.constants import BACKBONE, IMAGENET_MEAN, IMAGENET_STD, INPUT
from portaclass.models.registry import Preprocessing, register_model


def _patch_size(input_shape, patch_size):
    if patch_size is None:
        patch_size = 16 if min(input_shape[:2]) >= 128 else 4
    if input_shape[0] % patch_size or input_shape[1] % patch_size:
        raise UsageError.for_option(
            "image_size", f"{input_shape[:2]} is not divisible by vit_tiny's patch size {patch_size}")
    return patch_size


def _encoder_block(x, dim, heads, mlp_dim, dropout, name):
    layers = keras.layers
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name=f"{name}_attn")(y, y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
    y = layers.Dropout(dropout, name=f"{name}_drop")(y)
    y = layers.Dense(dim, name=f"{name}_mlp2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


@register_model(
    "vit_tiny",
    Preprocessing(input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  min_input_size=(16, 16)),
)
def vit_tiny(input_shape: tuple[int, int, int], patch_size: int | None = None, dim: int = 192,
             depth: int = 12, heads: int = 3, mlp_ratio: int = 4, encoder_dropout: float = 0.0):
    """ViT-Tiny (dim 192, 12 blocks, 3 heads); patch 16 at >= 128 px, else 4."""
    layers = keras.layers
    patch = _patch_size(input_shape, patch_size)
    inputs = keras.Input(shape=model_input_shape(input_shape), name=INPUT)
    x = layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(inputs)
    if keras.config.image_data_format() == "channels_first":
        x = layers.Permute((2, 3, 1), name="to_channels_last")(x)
    num_patches = (input_shape[0] // patch) * (input_shape[1] // patch)
    x = layers.Reshape((num_patches, dim), name="tokens")(x)
    # Learned position embedding with a stock layer: the bias of this
    # EinsumDense is one (num_patches, dim) table added to the tokens; its
    # per-channel kernel starts at 1 (a harmless learned scale).
    x = layers.EinsumDense(
        "bnd,d->bnd", output_shape=(num_patches, dim), bias_axes="nd",
        kernel_initializer="ones",
        bias_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="pos_embed",
    )(x)
    x = layers.Dropout(encoder_dropout, name="pos_drop")(x)
    for block in range(depth):
        x = _encoder_block(x, dim, heads, dim * mlp_ratio, encoder_dropout, f"block{block + 1}")
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    return keras.Model(inputs, x, name=BACKBONE)
