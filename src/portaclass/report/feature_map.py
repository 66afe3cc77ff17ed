"""Where Grad-CAM cuts a classifier: the feature map to explain, and the
model split at it.

Grad-CAM needs the gradient of a class score with respect to an
intermediate tensor, and Keras differentiates only a function's inputs. So
the classifier becomes two functions, ``image -> A`` and ``(image, A) ->
class scores``, and the second is differentiated with respect to ``A``
(``backend.value_and_grad``). The image goes into the second part too: a
layer inside a residual block has paths around it.

The feature map is found automatically: the 4-D tensor that the head's
global pooling reads, followed into a nested ``backbone`` sub-model where
there is one (pretrained keras.applications bases and transfer models keep
theirs nested). Or a layer is named, in the model or a nested sub-model.
"""

from __future__ import annotations

from portaclass import layout
from portaclass._lazy import keras
from portaclass.errors import UsageError

# Layers that reduce a feature map to one vector per image: the target is
# what the last of them reads (models/builder.py cuts saved models there too).
GLOBAL_POOLING = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
                  "GlobalMaxPooling1D", "Flatten")
LAYERS_LISTED = 5  # in an error naming a layer the model does not have


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


def feature_data_format(model) -> str:
    """The layout of ``model``'s feature maps: that of its first layer that
    has one (a model saved channels_first keeps it, whatever Keras'
    setting is now)."""
    for lay in model.layers:
        if isinstance(lay, keras.Model):
            return feature_data_format(lay)
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


def split_at(model, path):
    """``(to_features, to_scores)``: ``image -> A`` and ``(image, A) ->
    class scores``, ``A`` the output of the layer at ``path``
    (``find_target_layer``). The scores are the logits when the output
    layer is a softmax Dense (Grad-CAM's score is the one before the
    softmax, whose gradient vanishes as a probability nears 1), else the
    outputs."""
    to_features, to_outputs = _split_at(model, path, _score_input(model))
    return to_features, lambda x, feature_map: _scores(model, to_outputs(x, feature_map))


def _split_at(model, path, outputs):
    image = model.inputs[0]
    layer = model.get_layer(path[0])
    if len(path) == 1:
        target = layer.output
        return _called(keras.Model(image, target)), _from(image, target, outputs)
    inner_features, inner_rest = _split_at(layer, path[1:], layer.outputs[0])
    call = _only_call(layer)
    entry, exit_ = call.input_tensors[0], call.output_tensors[0]
    before = (lambda x: x) if entry is image else _called(keras.Model(image, entry))
    after = _from(image, exit_, outputs)
    return (lambda x: inner_features(before(x)),
            lambda x, feature_map: after(x, inner_rest(before(x), feature_map)))


def _called(model):
    return lambda x: model(x, training=False)


def _from(image, tensor, outputs):
    """``(x, value of tensor) -> outputs``, the part of the graph after ``tensor``."""
    if tensor is outputs:  # nothing after it
        return lambda x, value: value
    rest = keras.Model([image, tensor], outputs)
    return lambda x, value: rest([x, value], training=False)


def ends_in_softmax(model) -> bool:
    """Whether ``model``'s scores (``split_at``) are logits a softmax Dense
    layer turns into its outputs."""
    return _softmax_dense(model) is not None


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
