"""torch only: portaclass' walk of Keras functional models drops each
intermediate tensor after its last use (Keras keeps them all to the end of
the call) and computes exactly what Keras' walk does."""

from __future__ import annotations

import gc
import weakref

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="a torch backend patch")


def _branchy_model():
    """Residual adds, a tensor read twice by one layer, two outputs, and a
    layer taking ``training``: the shapes of graph the walk must keep right."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    skip = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(4, 3, padding="same")(skip)
    y = keras.layers.Add()([y, skip])
    doubled = keras.layers.Multiply()([y, y])
    pooled = keras.layers.GlobalAveragePooling2D()(doubled)
    first = keras.layers.Dense(2, name="first")(pooled)
    second = keras.layers.Dense(3, name="second")(keras.layers.Dropout(0.5)(pooled))
    return keras.Model(inputs, {"first": first, "second": second})


def test_lean_graph_matches_keras_walk_bit_for_bit():
    import torch
    from keras.src.ops.function import Function

    from portaclass import backend  # noqa: F401  (loading the torch module installs the walk)

    assert getattr(Function._run_through_graph, "portaclass_lean", False)
    keras.utils.set_random_seed(0)
    model = _branchy_model()
    x = torch.tensor(np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32"))
    lean = Function._run_through_graph
    outputs = {}
    for name, walk in (("lean", lean), ("keras", lean.__wrapped__)):
        Function._run_through_graph = walk
        try:
            inference = model(x, training=False)
            x_grad = x.clone().requires_grad_()
            training = model(x_grad, training=False)
            training["first"].sum().backward()
            outputs[name] = (inference, x_grad.grad)
        finally:
            Function._run_through_graph = lean
    (ours, our_grad), (theirs, their_grad) = outputs["lean"], outputs["keras"]
    assert set(ours) == {"first", "second"}
    for key in ours:
        assert torch.equal(ours[key], theirs[key])
    assert torch.equal(our_grad, their_grad)


def test_an_intermediate_is_freed_once_its_last_reader_ran():
    import torch

    watched = []

    class Watch(keras.layers.Layer):
        def call(self, x):
            out = x * 2
            watched.append(weakref.ref(out))
            return out

    class AssertFreed(keras.layers.Layer):
        def call(self, x):
            gc.collect()
            assert watched and watched[-1]() is None, "the first layer's output is still held"
            return x + 1

    inputs = keras.Input((4,))
    x = Watch()(inputs)
    x = keras.layers.Dense(4)(x)  # the last reader of Watch's output
    x = AssertFreed()(x)
    model = keras.Model(inputs, x)
    with torch.no_grad():
        model(torch.ones(2, 4))
