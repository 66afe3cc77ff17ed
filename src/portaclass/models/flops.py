"""Forward cost of a Keras model in multiply-accumulates (MACs), summed from
layer shapes: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, EinsumDense and
the two matmuls of MultiHeadAttention. Elementwise ops, pooling and
normalization are ignored (they are a few percent of a CNN's cost), as in the
FLOP counts papers quote for ResNet or MobileNet."""

from __future__ import annotations

import math

from portaclass._lazy import keras


def _spatial_size(shape) -> int:
    return math.prod(int(d) for d in shape[1:])


def _conv_macs(layer) -> int:
    out = layer.output.shape
    kh, kw = layer.kernel_size
    channels_first = layer.data_format == "channels_first"
    out_channels = out[1] if channels_first else out[-1]
    positions = _spatial_size(out) // out_channels
    in_channels = layer.input.shape[1 if channels_first else -1]
    groups = getattr(layer, "groups", 1) or 1
    return positions * out_channels * kh * kw * in_channels // groups


def _depthwise_macs(layer) -> int:
    out = layer.output.shape
    kh, kw = layer.kernel_size
    return _spatial_size(out) * kh * kw  # one k*k filter per output channel


def _separable_macs(layer) -> int:
    out = layer.output.shape
    channels_first = layer.data_format == "channels_first"
    in_shape = layer.input.shape
    in_channels = in_shape[1 if channels_first else -1]
    out_channels = out[1 if channels_first else -1]
    positions = _spatial_size(out) // out_channels
    kh, kw = layer.kernel_size
    depth_mult = layer.depth_multiplier
    return positions * in_channels * depth_mult * (kh * kw + out_channels)


def _dense_macs(layer) -> int:
    kernel = layer.kernel
    positions = _spatial_size(layer.output.shape) // int(kernel.shape[-1])
    return positions * math.prod(kernel.shape)


def _einsum_macs(layer, output_shape=None) -> int:
    """prod(output) * prod(kernel dims contracted away)."""
    equation = layer.equation.replace(" ", "")
    inputs, out_spec = equation.split("->")
    kernel_spec = inputs.split(",")[1]
    sizes = dict(zip(kernel_spec, (int(d) for d in layer.kernel.shape)))
    contracted = math.prod(sizes[c] for c in kernel_spec if c not in out_spec)
    output_shape = output_shape or layer.output.shape
    return _spatial_size(output_shape) * contracted


def _attention_macs(layer) -> int:
    node_inputs = layer._inbound_nodes[0].input_tensors  # (query, value[, key])
    query_shape, value_shape = node_inputs[0].shape, node_inputs[1].shape
    queries, keys = int(query_shape[1]), int(value_shape[1])
    projections = 0
    for dense, length in ((layer._query_dense, queries), (layer._key_dense, keys),
                          (layer._value_dense, keys), (layer._output_dense, queries)):
        projections += length * math.prod(dense.kernel.shape)
    heads, key_dim = layer.num_heads, layer.key_dim
    value_dim = layer.value_dim or key_dim
    return projections + heads * queries * keys * (key_dim + value_dim)


def _counters(layers):
    """(layer class, counter) pairs, first match wins: separable and depthwise
    convolutions are checked before plain Conv2D."""
    return (
        (layers.SeparableConv2D, _separable_macs),
        (layers.DepthwiseConv2D, _depthwise_macs),
        (layers.Conv2D, _conv_macs),
        (layers.Dense, _dense_macs),
        (layers.EinsumDense, _einsum_macs),
        (layers.MultiHeadAttention, _attention_macs),
    )


def count_flops(model) -> int:
    """Forward multiply-accumulates for one image (batch size 1)."""
    layers = keras.layers
    counters = _counters(layers)
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers") and not isinstance(layer, layers.MultiHeadAttention):
            total += count_flops(layer)  # a nested model (backbone)
            continue
        counter = next((count for cls, count in counters if isinstance(layer, cls)), None)
        if counter is not None:
            total += counter(layer)
    return int(total)
