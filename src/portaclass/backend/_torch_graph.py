"""Keras functional models on torch, each activation freed after its last use.

Keras 3.15 runs a functional model (``ops.function.Function``) by putting
every layer's output in a dict that lives until the whole forward pass has
ended. Under JAX's ``jit`` and TensorFlow's graphs that costs nothing (the
compiled program frees a tensor after its last reader), but torch runs
eagerly, so every intermediate of the network is alive at the end of each
call: in inference (``predict``, validation, the report's evaluation) that is
all activations at once, +500 MB for a ResNet-18 at 96 px and batch 64 where
the largest one is 38 MB; in training, the outputs autograd does not keep
(BatchNormalization's, residual sums) stay alive through the forward pass
too. tf.keras 2 released each tensor once its last consumer had run, as
plain PyTorch code does; so does this walk of the graph.

Same nodes, same order, same operations (Keras' NNX mapping and the
``operation_fn`` that passes ``training=`` included): only references are
dropped sooner, so results are bit-identical (tests/backend/test_torch_graph.py).
Symbolic walks (``call_fn``: output specs, cloning) stay Keras' own.
``PORTACLASS_TORCH_LEAN_GRAPH=0`` turns it off.
"""

from __future__ import annotations

import functools
import weakref

from keras import tree
from keras.src.ops.function import Function

from portaclass.backend._common import replace_once

SWITCH = "PORTACLASS_TORCH_LEAN_GRAPH"

# Function -> its nodes in execution order, each with the ids of the tensors
# read for the last time by it. The graph of a built Function never changes.
_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(function) -> list[tuple[object, tuple[int, ...]]]:
    plan = _plans.get(function)
    if plan is not None:
        return plan
    nodes = [node for depth in sorted(function._nodes_by_depth, reverse=True)
             for node in function._nodes_by_depth[depth]
             if node.operation and not node.is_input]
    last_reader = {}
    for index, node in enumerate(nodes):
        for tensor in node.input_tensors:
            last_reader[id(tensor)] = index
    kept = {id(tensor) for tensor in function.outputs}
    released: list[list[int]] = [[] for _ in nodes]
    for tensor_id, index in last_reader.items():
        if tensor_id not in kept:
            released[index].append(tensor_id)
    plan = [(node, tuple(ids)) for node, ids in zip(nodes, released)]
    _plans[function] = plan
    return plan


def _releasing(keras_run):
    @functools.wraps(keras_run)
    def run_through_graph(self, inputs, operation_fn=lambda op: op, call_fn=None):
        if call_fn is not None:
            return keras_run(self, inputs, operation_fn=operation_fn, call_fn=call_fn)
        operation_of = getattr(self, "_get_operation_for_node", lambda node: node.operation)
        values = {id(x): y for x, y in zip(self.inputs, tree.flatten(inputs))}
        for node, last_read in _plan(self):
            if all(id(x) in values for x in node.input_tensors):
                args, kwargs = node.arguments.fill_in(values)
                outputs = operation_fn(operation_of(node))(*args, **kwargs)
                values.update(zip((id(x) for x in node.outputs), tree.flatten(outputs)))
                del args, kwargs, outputs  # else they hold this node's tensors until the next one
            for tensor_id in last_read:
                values.pop(tensor_id, None)
        for index, x in enumerate(self.outputs):
            if id(x) not in values:  # as Keras' walk says it
                path = ".".join(str(p) for p in tree.flatten_with_path(self._outputs_struct)[index][0])
                raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
        return tree.pack_sequence_as(self._outputs_struct, [values[id(x)] for x in self.outputs])

    run_through_graph.portaclass_lean = True
    return run_through_graph


def use_lean_graph() -> None:
    """Route eager functional calls through ``_releasing``."""
    replace_once(Function, "_run_through_graph", _releasing, SWITCH)
