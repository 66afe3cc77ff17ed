"""Same seed, same initial weights, on every backend (NumPy draws them)."""

from __future__ import annotations

import numpy as np
import pytest

from portaclass.backend import to_numpy
from portaclass.models import create_model, list_models
from portaclass.models.init import draw_initial_value, variable_seed
from portaclass.models.resnet import resolve_stem

from ..helpers import BACKENDS, on_each_backend, run_python_json
from .conftest import NUM_CLASSES, TEST_SHAPE


def _weights(model):
    return [to_numpy(v) for v in model.weights]


def test_same_seed_same_weights_different_seed_differs():
    a = _weights(create_model("resnet18", NUM_CLASSES, TEST_SHAPE, seed=3))
    b = _weights(create_model("resnet18", NUM_CLASSES, TEST_SHAPE, seed=3))
    c = _weights(create_model("resnet18", NUM_CLASSES, TEST_SHAPE, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_draws_follow_the_initializer_statistics():
    import keras

    he = keras.initializers.HeNormal()
    values = draw_initial_value(he, (3, 3, 64, 64), variable_seed(0, "conv/kernel"))
    expected_std = np.sqrt(2.0 / (3 * 3 * 64))
    assert abs(values.std() - expected_std) / expected_std < 0.05
    assert np.abs(values).max() <= 2 * expected_std / 0.8796 + 1e-6  # truncated at 2 sigma
    glorot = draw_initial_value(keras.initializers.GlorotUniform(), (100, 50),
                                variable_seed(0, "dense/kernel"))
    assert np.abs(glorot).max() <= np.sqrt(6.0 / 150)
    ortho = draw_initial_value(keras.initializers.Orthogonal(), (8, 8), variable_seed(0, "o"))
    np.testing.assert_allclose(ortho @ ortho.T, np.eye(8), atol=1e-6)


def test_stem_auto_follows_input_size():
    assert resolve_stem("auto", (32, 32, 3)) == "cifar"
    assert resolve_stem("auto", (224, 224, 3)) == "imagenet"


def test_resnet18_matches_torchvision_parameter_count():
    model = create_model("resnet18", 1000, (224, 224, 3))
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == 11_689_512


_DIGEST_SNIPPET = """
import hashlib, json, numpy as np
from portaclass.backend import to_numpy
from portaclass.models import create_model
out = {{}}
for name in {names!r}:
    model = create_model(name, {classes}, {shape!r}, seed=7)
    out[name] = {{v.path: hashlib.sha256(np.ascontiguousarray(to_numpy(v), dtype="float32")
                 .tobytes()).hexdigest() for v in model.weights}}
print(json.dumps(out))
"""


# Deeper or wider variants of a family built from the same layer types (and
# so the same initialisation code) as a member checked here.
SAME_LAYERS_AS_A_CHECKED_MODEL = {"resnet34": "resnet18", "efficientnet_b1": "efficientnet_b0",
                                  "efficientnet_b2": "efficientnet_b0", "efficientnet_b3": "efficientnet_b0"}


@pytest.mark.cross
def test_initial_weights_identical_on_every_backend():
    """Every registered model but the deeper/wider twins above, seed 7:
    bit-identical weights on TF, torch, JAX."""
    assert set(SAME_LAYERS_AS_A_CHECKED_MODEL) | set(SAME_LAYERS_AS_A_CHECKED_MODEL.values()) <= set(list_models())
    names = [name for name in list_models() if name not in SAME_LAYERS_AS_A_CHECKED_MODEL]
    code = _DIGEST_SNIPPET.format(names=names, classes=NUM_CLASSES, shape=TEST_SHAPE)
    digests = on_each_backend(lambda b: run_python_json(code, b, timeout=600))
    reference = digests[BACKENDS[0]]
    assert sorted(reference) == sorted(names)
    for backend in BACKENDS[1:]:
        for name in names:
            assert reference[name], f"{name} has no weights"
            differing = [p for p, h in reference[name].items() if digests[backend][name].get(p) != h]
            assert not differing, f"{name} on {backend} differs at {differing[:3]}"
