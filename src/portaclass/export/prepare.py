"""The graph that gets exported: the classifier without its training-only
layers, taking channels_last images whatever the Keras layout, optionally
with its preprocessing inside, and called once (Keras refuses to export a
model that was never called, and on JAX ``predict`` does not count).
"""

from __future__ import annotations

import numpy as np

from portaclass import layout
from portaclass._lazy import keras

# Layers that are the identity at inference: random augmentation (whose
# exporters fail on their RNG ops) and noise/dropout regularisers. RandomCrop
# is not here: at inference it resizes, so removing it would change the model.
TRAINING_ONLY = frozenset({
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness", "RandomHue", "RandomSaturation", "RandomSharpness", "RandomColorJitter",
    "RandomGrayscale", "RandomErasing", "RandomShear", "RandomPerspective", "RandomInvert",
    "RandomPosterization", "RandomColorDegeneration", "RandomGaussianBlur",
    "RandomElasticTransform", "RandAugment", "AugMix", "MixUp", "CutMix",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout", "ActivityRegularization",
})
PREPROCESSING_LAYER = "preprocessing"
EXPORT_INPUT = "image"


def strip_training_layers(model):
    """``(model without TRAINING_ONLY layers, names removed)``; the weights
    are shared with ``model`` (its other layers are reused, not copied)."""
    removed: list[str] = []

    def replace(layer):
        if type(layer).__name__ in TRAINING_ONLY:
            removed.append(f"{layer.name} ({type(layer).__name__})")
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.Model) and _holds_training_layers(layer):
            return keras.models.clone_model(layer, clone_function=replace)
        return layer

    if not _holds_training_layers(model):
        return model, removed
    return keras.models.clone_model(model, clone_function=replace), removed


def _holds_training_layers(model) -> bool:
    return any(type(layer).__name__ in TRAINING_ONLY
               for layer in model._flatten_layers(include_self=False))


def inference_graph(model, input_shape: tuple[int, int, int], preprocessing=None):
    """``(graph, names of the layers removed)``: ``model``'s layers re-applied
    as one flat graph (nested models inlined: torch's ONNX exporter fails on a
    model inside a model) without TRAINING_ONLY layers, behind a channels_last
    float32 input (H, W, C). With ``preprocessing`` (a ``models.Preprocessing``)
    the input is pixels in [0, 255] and the model's own scaling runs inside, as
    one fixed 1x1 convolution. Called on one batch, so every exporter takes it.
    The layers (and weights) are shared with ``model``."""
    h, w, c = input_shape
    inputs = keras.Input((h, w, c), name=EXPORT_INPUT, dtype="float32")
    x = inputs
    if preprocessing is not None:
        x = _preprocessing_layer(preprocessing, c)(x)
    if built_channels_first(model):
        x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
    removed: list[str] = []
    outputs = _inlined(model, x, removed)
    graph = keras.Model(inputs, outputs, name=model.name)
    graph(np.zeros((1, h, w, c), np.float32))
    return graph, removed


def built_channels_first(model) -> bool:
    """True when ``model``'s image layers run channels_first (it was built
    under that ``image_data_format``, on whichever backend loads it now)."""
    return any(getattr(layer, "data_format", None) == layout.CHANNELS_FIRST
               for layer in model._flatten_layers(include_self=False))


def _inlined(model, x, removed: list[str]):
    """``model``'s graph applied to the symbolic ``x`` layer by layer."""
    functional = getattr(model, "_functional", None) or model  # a Sequential's graph

    def operation(layer):
        if type(layer).__name__ in TRAINING_ONLY:
            removed.append(f"{layer.name} ({type(layer).__name__})")
            return lambda tensor, *args, **kwargs: tensor
        if isinstance(layer, keras.Model) and hasattr(getattr(layer, "_functional", None) or layer,
                                                      "_run_through_graph"):
            return lambda tensor, *args, **kwargs: _inlined(layer, tensor, removed)
        return layer

    outputs = functional._run_through_graph(x, operation_fn=operation)
    return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


def _preprocessing_layer(preprocessing, channels: int):
    """``normalize`` (data.normalize) as a 1x1 convolution with fixed
    weights: channel order, scale, offset, mean and std in one layer that
    every exporter knows (Rescaling + Normalization cannot reorder channels)."""
    scale = np.float32(preprocessing.scale)
    offset = np.float32(preprocessing.offset)
    mean = np.zeros(channels, np.float32)
    std = np.ones(channels, np.float32)
    if preprocessing.mean is not None:
        mean = np.asarray(preprocessing.mean, np.float32)[:channels]
        std = np.asarray(preprocessing.std, np.float32)[:channels]
    order = np.arange(channels)
    if preprocessing.channel_order == "bgr" and channels == 3:
        order = order[::-1]
    kernel = np.zeros((1, 1, channels, channels), np.float32)
    for out_channel, in_channel in enumerate(order):
        kernel[0, 0, in_channel, out_channel] = scale / std[out_channel]
    bias = (offset - mean) / std
    conv = keras.layers.Conv2D(channels, 1, data_format="channels_last", name=PREPROCESSING_LAYER,
                               trainable=False, dtype="float32")
    conv.build((None, None, None, channels))
    conv.set_weights([kernel, bias.astype(np.float32)])
    return conv
