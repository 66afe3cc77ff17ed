"""Grad-CAM (Selvaraju et al., 2017): where in an image a classifier found
the evidence for a class, on every backend.

The heatmap of class ``c`` over a feature map ``A`` (``K`` channels) is
``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of
``d score_c / d A_k``. That needs the gradient with respect to an
intermediate tensor, which Keras has no backend-agnostic API for: the
classifier is split at the feature map into ``image -> A`` and ``(image, A)
-> score``, and the second part is differentiated with
``backend.value_and_grad`` (tf.GradientTape, torch.autograd or
jax.value_and_grad underneath), so ``A`` itself is the variable.

The score is the class's logit, before the softmax (as in the paper): the
softmax probability's gradient vanishes as the probability nears 1, which
is exactly the confident case a user wants explained.

The feature map is found automatically: the 4-D tensor the global pooling
of the head reads, inside a nested ``backbone`` sub-model where there is one
(pretrained keras.applications bases and transfer models keep theirs
nested). Or a layer is named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image

from portaclass import layout
from portaclass._lazy import backend, keras
from portaclass.errors import UsageError

# Layers that reduce a feature map to one vector per image: the target is
# what the last of them reads (models/builder.py cuts saved models there too).
GLOBAL_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
                  "GlobalMaxPooling1D", "Flatten")
LAYERS_LISTED = 5  # in an error naming a layer the model does not have


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM of a batch: ``heatmaps`` ``(N, h, w)`` float32 in [0, 1] at
    the feature map's resolution (each image's maximum is 1, or all zero
    when nothing speaks for the class), the ``class_indices`` explained,
    the model's ``probabilities`` ``(N, classes)``, the ``channel_weights``
    ``alpha`` ``(N, K)`` and the ``layer`` used (``backbone/out_relu`` for
    a layer inside a nested model)."""

    heatmaps: np.ndarray
    class_indices: np.ndarray
    probabilities: np.ndarray
    channel_weights: np.ndarray
    layer: str


def gradcam(model, images, *, class_index=None, layer: str | None = None) -> GradCam:
    """Grad-CAM heatmaps of a classifier for a batch of images.

    Args:
        model: a functional ``keras.Model`` with one image input, ending in
            a softmax Dense layer (as portaclass builds them) or in scores.
        images: the model-ready batch: preprocessed, in the model's layout
            (NCHW when it was built channels_first).
        class_index: the class to explain, an int or one per image; default
            each image's predicted class.
        layer: the name of a layer with a 4-D output, searched in nested
            sub-models too; default the feature map the head pools.

    Returns:
        A ``GradCam``.
    """
    if len(model.inputs) != 1:
        raise UsageError(f"Grad-CAM needs a model with one image input; {model.name} has "
                         f"{len(model.inputs)}")
    path = find_target_layer(model, layer)
    to_features, to_scores = _split(model, path)
    x = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
    maps = np.asarray(backend.to_numpy(to_features(x)), np.float32)
    probabilities = np.asarray(backend.to_numpy(model(x, training=False)), np.float32)
    classes = _classes(class_index, probabilities)
    chosen = keras.ops.convert_to_tensor(np.eye(probabilities.shape[1], dtype=np.float32)[classes])

    def class_score(feature_map):  # the chosen classes' logits, summed over the batch:
        # images are independent (inference mode), so each gets its own gradient
        return keras.ops.sum(keras.ops.cast(to_scores(x, feature_map), "float32") * chosen)

    _, grads = backend.value_and_grad(class_score, maps)
    if _data_format(model) == layout.CHANNELS_FIRST:
        maps, grads = layout.to_channels_last(maps), layout.to_channels_last(grads)
    weights = grads.mean(axis=(1, 2))  # (N, K)
    heatmaps = np.maximum(np.einsum("nhwk,nk->nhw", maps, weights), 0.0)
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    heatmaps = np.where(peaks > 0, heatmaps / np.where(peaks > 0, peaks, 1.0), 0.0)
    return GradCam(heatmaps.astype(np.float32), classes, probabilities, weights.astype(np.float32),
                   "/".join(path))


def _classes(class_index, probabilities: np.ndarray) -> np.ndarray:
    count, num_classes = probabilities.shape
    if class_index is None:
        return probabilities.argmax(axis=1)
    classes = np.broadcast_to(np.asarray(class_index), (count,)).astype(np.int64)
    if np.any((classes < 0) | (classes >= num_classes)):
        raise UsageError.for_option("class_index", f"must be in [0, {num_classes}); "
                                    f"received {class_index!r}")
    return classes


# --- finding the feature map ------------------------------------------------------------


def find_target_layer(model, layer: str | None = None) -> tuple[str, ...]:
    """The layer Grad-CAM differentiates at, as a path of names from
    ``model`` down through nested sub-models (``("backbone", "out_relu")``).

    Default: the producer of the 4-D map the head's global pooling reads.
    ``layer``: a name, looked up in ``model`` and then in its nested
    sub-models; UsageError naming it (and some 4-D layers that would do)
    when there is no such layer or its output is not 4-D.
    """
    if layer is None:
        return _pooled_map_path(model)
    path = _path_to(model, layer)
    if path is None:
        raise UsageError.for_option(
            "layer", f"{layer!r} is not a layer of {model.name}; its last 4-D layers: "
            f"{', '.join(_four_d_layers(model)[-LAYERS_LISTED:]) or 'none'}")
    shape = _output_shape(_layer_at(model, path))
    if shape is None or len(shape) != 4:
        raise UsageError.for_option(
            "layer", f"{layer!r} outputs shape {shape}; Grad-CAM needs a 4-D feature map, "
            f"such as: {', '.join(_four_d_layers(model)[-LAYERS_LISTED:]) or 'none'}")
    return path


def _pooled_map_path(model) -> tuple[str, ...]:
    pools = [lay for lay in model.layers if type(lay).__name__ in GLOBAL_POOLING]
    if not pools:
        raise UsageError(f"{model.name} has no global pooling layer to find its feature map by: "
                         "name one with `layer`", option="layer")
    pooled = pools[-1].input
    if len(pooled.shape) != 4:
        raise UsageError(
            f"{model.name} has no 4-D feature map: its {type(pools[-1]).__name__} pools shape "
            f"{tuple(pooled.shape)} (tokens, as in a vision transformer); Grad-CAM needs a "
            "convolutional feature map (name a 4-D layer with `layer`)", option="layer")
    return _output_path(_producer(pooled))


def _output_path(layer) -> tuple[str, ...]:
    """``layer``'s name, followed, for a nested model, by the path of the
    layer that makes its output."""
    if isinstance(layer, keras.Model):
        return (layer.name, *_output_path(_producer(layer.outputs[0])))
    return (layer.name,)


def _path_to(model, name: str) -> tuple[str, ...] | None:
    """The path to the layer called ``name``: ``model``'s own layers first,
    then those of nested sub-models."""
    for lay in model.layers:
        if lay.name == name:
            return (name,)
    for lay in model.layers:
        if isinstance(lay, keras.Model):
            inner = _path_to(lay, name)
            if inner is not None:
                return (lay.name, *inner)
    return None


def _layer_at(model, path):
    for name in path:
        model = model.get_layer(name)
    return model


def _four_d_layers(model, prefix: str = "") -> list[str]:
    """Names of the layers with a 4-D output, in model order, nested
    sub-models' layers in place (the sub-model itself stands for its last)."""
    names = []
    for lay in model.layers:
        if isinstance(lay, keras.Model):
            names += _four_d_layers(lay, prefix)
        elif type(lay).__name__ != "InputLayer" and len(_output_shape(lay) or ()) == 4:
            names.append(prefix + lay.name)
    return names


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):  # never called, or several outputs
        return None


def _data_format(model) -> str:
    """The layout of ``model``'s feature maps: that of its first layer that
    has one (a model saved channels_first keeps it, whatever Keras'
    setting is now)."""
    for lay in model.layers:
        if isinstance(lay, keras.Model):
            return _data_format(lay)
        fmt = getattr(lay, "data_format", None)
        if fmt in (layout.CHANNELS_FIRST, layout.CHANNELS_LAST):
            return fmt
    return layout.data_format()


# --- splitting the model at the feature map --------------------------------------------
# Keras keeps a functional graph as nodes: ``tensor._keras_history`` names the
# layer (and call) that made a tensor, ``layer._inbound_nodes`` the calls of a
# layer (models/flops.py reads them too). A model made from an intermediate
# tensor stops its graph there, so it reads that tensor as an input.


def _producer(tensor):
    return tensor._keras_history.operation


def _only_call(layer):
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise UsageError(f"Grad-CAM cannot look inside {layer.name}: the model calls it "
                         f"{len(nodes)} times", option="layer")
    return nodes[0]


def _split(model, path):
    """``(to_features, to_scores)``: ``image -> A`` and ``(image, A) ->
    class scores`` (the logits when the output layer is a softmax Dense),
    with ``A`` the output of the layer at ``path``. The image goes into the
    second part too: a layer inside a residual block has paths around it."""
    to_features, to_outputs = _split_at(model, path, _score_input(model))
    return to_features, lambda x, feature_map: _scores(model, to_outputs(x, feature_map))


def _split_at(model, path, outputs):
    image = model.inputs[0]
    layer = model.get_layer(path[0])
    if len(path) == 1:
        target = layer.output
        features = _called(keras.Model(image, target))
        if target is outputs:  # the map is the (sub-)model's output
            return features, lambda x, feature_map: feature_map
        rest = keras.Model([image, target], outputs)
        return features, lambda x, feature_map: rest([x, feature_map], training=False)
    inner_features, inner_rest = _split_at(layer, path[1:], layer.outputs[0])
    call = _only_call(layer)
    entry, exit_ = call.input_tensors[0], call.output_tensors[0]
    before = (lambda x: x) if entry is image else _called(keras.Model(image, entry))
    after = keras.Model([image, exit_], outputs)
    return (lambda x: inner_features(before(x)),
            lambda x, feature_map: after([x, inner_rest(before(x), feature_map)], training=False))


def _called(model):
    return lambda x: model(x, training=False)


def _softmax_dense(model):
    """The model's output layer when it is a Dense layer with a softmax."""
    last = _producer(model.outputs[0])
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    return last if type(last).__name__ == "Dense" and activation == "softmax" else None


def _score_input(model):
    dense = _softmax_dense(model)
    return dense.input if dense is not None else model.outputs[0]


def _scores(model, values):
    """The logits from the output layer's input (what its softmax would read)."""
    dense = _softmax_dense(model)
    if dense is None:
        return values
    logits = keras.ops.matmul(keras.ops.cast(values, dense.kernel.dtype), dense.kernel)
    return logits + dense.bias if dense.use_bias else logits


# --- pictures -------------------------------------------------------------------------


def resize_heatmap(heatmap: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A heatmap ``(h, w)`` bilinearly resized to ``size_hw``, still in [0, 1]."""
    height, width = size_hw
    resized = Image.fromarray(np.asarray(heatmap, np.float32)).resize((width, height), Image.BILINEAR)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45,
            colormap: str = "jet") -> np.ndarray:
    """``image`` (uint8 ``(H, W, C)``, C 1 or 3) with ``heatmap`` resized
    to it, coloured with a matplotlib colormap and blended in with weight
    ``alpha``: uint8 ``(H, W, 3)``."""
    image = np.asarray(image)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    heat = resize_heatmap(heatmap, rgb.shape[:2])
    colours = colormaps[colormap](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
