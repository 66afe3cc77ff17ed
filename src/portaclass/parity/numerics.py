"""What one backend computes for the parity check, inside its own process:
logits, the loss and every trainable variable's gradient on a fixed batch,
one optimizer step through ``train_on_batch``, and every layer's output.

Only ``keras.ops``, Keras models and ``portaclass.backend`` here: the same
code runs on TensorFlow, PyTorch and JAX (``parity.worker`` calls it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portaclass._lazy import backend, keras
from portaclass.errors import UsageError
from portaclass.models.constants import HEAD_DENSE

# Layers that draw random numbers in training mode, and the attribute whose
# zero makes them the identity (Keras' Dropout family tests ``rate > 0``;
# GaussianNoise tests ``stddev > 0``).
RANDOM_LAYERS = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
                 "SpatialDropout3D": "rate", "GaussianDropout": "rate", "AlphaDropout": "rate",
                 "GaussianNoise": "stddev"}
# The relative size of ``with_rounding_noise``'s change: 32 float32 ulps,
# a few times what different kernels' rounding does to a layer's output
# (measured: ~1e-6 relative deep in mobilenet_v2), so that it flips at least
# the ReLU units another backend's rounding flips; and how many draws.
ROUNDING_NOISE = 2.0**-18
NOISE_DRAWS = 2
# The relative size of the change ``perturb_layer`` makes: far above the
# float32 noise of a forward pass (~1e-6), small enough to look like a bug.
PERTURBATION = 1e-3


def all_layers(model) -> list:
    """Every layer of ``model``, nested models' layers included, each after
    the model holding it (depth first, in the order the models list them)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(all_layers(layer))
    return found


def neutralise_random_layers(model) -> dict:
    """Make every Dropout-like layer the identity in training mode too, so a
    training-mode pass is the same function on every backend (each draws its
    masks from its own generator). Returns ``{layer name: old value}``, for
    ``restore_random_layers``; the layers that draw nothing (rate 0) are left out."""
    changed = {}
    for layer in all_layers(model):
        attribute = RANDOM_LAYERS.get(type(layer).__name__)
        if attribute and getattr(layer, attribute, 0):
            changed[layer.name] = getattr(layer, attribute)
            setattr(layer, attribute, 0.0)
    return changed


def restore_random_layers(model, changed: dict) -> None:
    """Undo ``neutralise_random_layers`` (before the model is saved)."""
    for layer in all_layers(model):
        if layer.name in changed:
            setattr(layer, RANDOM_LAYERS[type(layer).__name__], changed[layer.name])


def with_rounding_noise(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """``x`` with each value scaled by ``1 + ROUNDING_NOISE * z`` (z drawn
    from a unit normal): the batch as another backend's rounding might see
    it. What a backend's results do under this change is the noise floor
    of the comparison: a ReLU unit whose input is within rounding of zero
    flips, and a network's gradients jump with it."""
    z = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return (x * (1 + np.float32(ROUNDING_NOISE) * z)).astype(np.float32)


def perturb_layer(model, name: str) -> None:
    """Add ``PERTURBATION`` times each weight's largest magnitude, with a
    fixed pattern of signs, to layer ``name``'s trainable weights: the
    deliberate disagreement ``parity --perturb`` uses to show that the report
    finds the layer. UsageError when no layer has that name and weights."""
    layers = [layer for layer in all_layers(model) if layer.name == name and layer.trainable_weights]
    if not layers:
        raise UsageError.for_option("perturb", f"names no layer with weights in model {model.name!r}: "
                                    f"{name!r}")
    rng = np.random.default_rng(0)
    for variable in layers[0].trainable_weights:
        value = backend.to_numpy(variable)
        signs = rng.choice(np.array([-1.0, 1.0], value.dtype), size=value.shape)
        variable.assign(value + signs * np.abs(value).max() * value.dtype.type(PERTURBATION))


def logits_model(model):
    """A model from ``model``'s input to ``[features, probabilities]``, the
    features being what its softmax Dense head (``predictions``, which every
    registry model ends with) reads: with the head's kernel and bias they
    give the logits, before the softmax squashes differences."""
    return keras.Model(model.inputs[0], [model.get_layer(HEAD_DENSE).input, model.outputs[0]])


def run_inference(model, x):
    """``model`` on ``x`` in inference mode, as NumPy. Compiled
    (``predict_on_batch``) where eager ops compile one by one (JAX: one
    program instead of one per layer and shape), a direct call elsewhere
    (TensorFlow would trace a graph for a single call)."""
    outputs = model.predict_on_batch(x) if backend.COMPILES_PER_SHAPE else model(x, training=False)
    return keras.tree.map_structure(backend.to_numpy, outputs)


def head_logits(features, kernel, bias) -> np.ndarray:
    """``features @ kernel + bias``, computed by the backend."""
    return backend.to_numpy(keras.ops.matmul(keras.ops.convert_to_tensor(features), kernel) + bias)


def inference_logits(model, probe, x) -> np.ndarray:
    """The logits of ``model`` on ``x`` in inference mode (``probe``: its ``logits_model``)."""
    features, _ = run_inference(probe, x)
    head = model.get_layer(HEAD_DENSE)
    return head_logits(features, head.kernel, head.bias)


@dataclass(frozen=True)
class Step:
    """What one training step computed: its loss, the gradient of every
    trainable variable, and the logits of its own training-mode forward pass."""

    loss: float
    gradients: list
    logits: np.ndarray


def sgd_step(model, x, y, learning_rate: float) -> Step:
    """One ``train_on_batch`` step with SGD and the sparse cross-entropy
    loss: what ``portaclass train`` runs, compiled as training compiles it
    (XLA on JAX), and what it computed on the way (``Step``).

    The gradients come out of the step itself: Keras' SGD with momentum
    keeps ``velocity = momentum * velocity - learning_rate * gradient`` and
    adds it to the weight, and the velocity starts at zero, so the first
    step is exactly plain SGD's (``w - learning_rate * gradient``, bit for
    bit) and leaves ``-learning_rate * gradient`` in the velocity; with a
    power-of-two ``learning_rate`` the division back is exact. The step
    trains a model with a second output, the head's input, which a metric
    records (it has no loss): the training-mode logits of the very forward
    pass the gradients come from."""
    head = model.get_layer(HEAD_DENSE)
    kernel, bias = (np.array(backend.to_numpy(v)) for v in (head.kernel, head.bias))
    trainer = keras.Model(model.inputs[0], [model.outputs[0], head.input])
    recorder = _recorder((len(x), *head.input.shape[1:]))
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.5)
    trainer.compile(optimizer=optimizer, loss=[keras.losses.SparseCategoricalCrossentropy(), None],
                    metrics=[[], [recorder]])
    results = trainer.train_on_batch(x, (y, np.zeros(recorder.recorded.shape, "float32")))
    velocities = {v.name: v for v in optimizer.momentums}
    gradients = [backend.to_numpy(velocities[f"{v.path.replace('/', '_')}_momentum"])
                 / np.float32(-learning_rate) for v in model.trainable_variables]
    return Step(float(np.asarray(results).reshape(-1)[0]), gradients,
                head_logits(backend.to_numpy(recorder.recorded), kernel, bias))


def _recorder(shape):
    """A Keras metric whose state is the last ``y_pred`` it saw."""

    class Recorder(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="recorded")
            self.recorded = self.add_variable(shape=shape, initializer="zeros", name="recorded")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.recorded.assign(keras.ops.cast(y_pred, self.recorded.dtype))

        def result(self):
            return keras.ops.sum(self.recorded)

    return Recorder()


def float_weights(model) -> list:
    """``model``'s floating-point variables (a Dropout's seed state is not a weight)."""
    return [v for v in model.weights if str(v.dtype).startswith(("float", "bfloat"))]


def layer_outputs(model, x, *, training: bool, prefix: str = "") -> dict[str, np.ndarray]:
    """Every layer's output on ``x``, ``{layer path: array}`` in the order the
    layers run: one ``keras.Model`` with all the layers' outputs as outputs;
    a nested model (a keras.applications backbone) is opened the same way,
    from its input, and its layers come (as ``backbone/<layer>``) before its output."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    tensors = []
    for layer in layers:
        node = _first_call(layer)
        if hasattr(layer, "layers"):  # its input too, to look inside it
            tensors.append(node.input_tensors[0])
        tensors.append(node.output_tensors[0])
    values = iter(keras.Model(model.inputs[0], tensors)(x, training=training))
    found = {}
    for layer in layers:
        if hasattr(layer, "layers"):
            found.update(layer_outputs(layer, next(values), training=training,
                                       prefix=f"{prefix}{layer.name}/"))
        found[prefix + layer.name] = backend.to_numpy(next(values))
    return found


def _first_call(layer):
    """The node of ``layer``'s first call in its model's graph. (A nested
    functional model's ``input``/``output`` are its own graph's ends, not
    the tensors of its call, so ``layer.output`` would not do for it.)"""
    return layer._inbound_nodes[0]
