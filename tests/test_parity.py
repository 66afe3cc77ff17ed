"""``portaclass parity``: the same model file gives the same logits, loss,
gradients and SGD step on every backend, each backend's saved model runs
the same on the others, and a planted difference is found and named."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from portaclass.parity import compare
from portaclass.parity.report import ParityReport, print_report
from portaclass.parity.runner import ParityCase, run_parity_cases

from .helpers import invoke_cli

# One of each kind, at its smallest input: residual with BatchNormalization,
# attention, and a keras.applications backbone nested in our head with a
# Dropout (simple_cnn runs in the CLI test below, on two backends). Options
# keep them cheap; the layers are the same. About 45 s on 2 cores.
REPRESENTATIVE = [ParityCase("resnet18", 8, {"width": 16}), ParityCase("vit_tiny", 16, {"depth": 2}),
                  ParityCase("mobilenet_v2", 32)]


def _smallest(name: str) -> ParityCase:
    from portaclass.models import get_spec

    return ParityCase(name, max(get_spec(name).preprocessing.min_input_size))


def _assert_agree(reports: list[ParityReport]) -> None:
    from portaclass.models import get_spec

    for report in reports:
        assert report.passed, f"{report.model}: {report.problems()}"
        assert set(report.differences) == set(report.backends[1:])
        for found in report.differences.values():
            inference = next(d for d in found if d.quantity == "logits (inference)")
            assert inference.relative <= 1e-5, f"{report.model}: {inference}"
        assert set(report.matrix) == set(report.backends)
        assert all(set(row) == set(report.backends) and max(row.values()) <= compare.MATRIX_TOLERANCE
                   for row in report.matrix.values()), report.matrix
        assert ("head_dropout" in report.neutralised) == (get_spec(report.model).head_dropout > 0)


@pytest.mark.cross
def test_representative_models_agree_on_every_backend():
    _assert_agree(run_parity_cases(REPRESENTATIVE, batch_size=4))


@pytest.mark.cross
@pytest.mark.slow
def test_every_other_registry_model_agrees_on_every_backend():
    from portaclass.models import list_models

    checked = {case.model for case in REPRESENTATIVE}
    assert checked <= set(list_models())
    _assert_agree(run_parity_cases([_smallest(n) for n in list_models() if n not in checked],
                                   batch_size=4))


@pytest.mark.cross
def test_a_layer_changed_on_one_backend_fails_and_is_named():
    result = invoke_cli(["parity", "--model", "simple_cnn", "--image-size", "16", "--batch-size", "4",
                         "--backends", "torch,tensorflow", "--perturb", "tensorflow:block2_conv", "--json"])
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["reference"] == "torch"
    assert not report["differences"]["tensorflow"]["logits (inference)"]["passed"]
    assert report["first_divergent_layer"]["tensorflow"]["inference"]["layer"] == "block2_conv"
    assert report["first_divergent_layer"]["tensorflow"]["training"]["layer"] == "block2_conv"
    assert set(report["matrix"]) == {"torch", "tensorflow"}
    assert report["neutralised"] == {"head_dropout": 0.2}
    assert result.stderr.strip().splitlines()[-1].startswith("error: simple_cnn disagrees across backends")


@pytest.mark.one_backend
@pytest.mark.parametrize("args, message", [
    (["--model", "resnet"], "--model must be one of"),
    (["--model", "simple_cnn", "--backends", "torch"], "--backends needs at least two backends"),
    (["--model", "simple_cnn", "--backends", "torch,mxnet"], "--backends must be one of"),
    (["--model", "simple_cnn", "--backends", "torch,jax,torch"], "--backends names a backend twice"),
    (["--model", "mobilenet_v2", "--image-size", "16"], "--image-size must be at least 32x32"),
    (["--model", "simple_cnn", "--perturb", "jax"], "--perturb must be BACKEND:LAYER"),
    (["--model", "simple_cnn", "--perturb", "mxnet:block1_conv"], "--perturb must be one of"),
])
def test_bad_input_is_one_line_and_exit_code_2_before_any_backend_starts(args, message, monkeypatch):
    from portaclass.parity import runner

    monkeypatch.setattr(runner, "_worker", lambda *a: pytest.fail("a backend process was started"))
    result = invoke_cli(["parity", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}") and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.one_backend
def test_a_backend_that_is_not_installed_names_its_extra(monkeypatch):
    from portaclass import config

    monkeypatch.setattr(config, "is_installed", lambda name: name != "jax")
    result = invoke_cli(["parity", "--model", "simple_cnn"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: backend 'jax' is not installed: pip install 'portaclass[jax]'"


@pytest.mark.one_backend
def test_relative_difference_is_measured_against_the_reference_tensor_scale():
    reference = np.array([1.0, -4.0, 0.001])
    assert compare.relative_difference(reference, reference) == 0.0
    assert compare.relative_difference(reference + [0, 0, 0.002], reference) == pytest.approx(0.0005)
    assert compare.relative_difference(np.ones(2), np.zeros(2)) == math.inf
    assert compare.relative_difference(np.array([np.nan, 1.0]), np.ones(2)) == math.inf
    assert compare.relative_difference(np.ones(3), np.ones(2)) == math.inf


@pytest.mark.one_backend
def test_numerically_zero_tensors_are_measured_against_the_largest_ones():
    big, noise = np.full(4, 2.0), np.full(4, 1e-9)
    found = compare.compare_tensors("gradients", [big * (1 + 1e-5), -noise], [big, noise], ["kernel", "bias"])
    assert found.worst == "kernel" and found.relative == pytest.approx(1e-5)  # the bias: 1e-6
    real = compare.compare_tensors("gradients", [big, noise * 3e6], [big, noise], ["kernel", "bias"])
    assert real.worst == "bias" and not real.passed


@pytest.mark.one_backend
def test_training_mode_quantities_are_allowed_their_rounding_noise_inference_is_not():
    assert compare.Difference("gradients", 1.0, 0.05, noise=0.03).passed
    assert not compare.Difference("gradients", 1.0, 0.05, noise=0.02).passed
    assert not compare.Difference("logits (inference)", 1.0, 2e-5, noise=1.0).passed


@pytest.mark.one_backend
def test_the_first_divergent_layer_is_the_first_in_running_order():
    reference = {"conv1": np.ones(3), "conv2": np.ones(3), "dense": np.ones(3)}
    other = {"conv1": np.ones(3), "conv2": np.full(3, 1.01), "dense": np.full(3, 2.0)}
    assert compare.first_divergent_layer(other, reference, 1e-5) == ("conv2", pytest.approx(0.01))
    assert compare.first_divergent_layer(reference, reference, 1e-5) is None


@pytest.mark.one_backend
def test_the_table_and_the_json_say_where_the_backends_disagree():
    report = ParityReport(model="simple_cnn", options={}, image_size=16, batch_size=4, seed=0,
                          learning_rate=2**-7, backends=("torch", "jax"),
                          neutralised={"head_dropout": 0.2})
    agreeing = [compare.Difference(q, 1e-7, 1e-7) for q in compare.TOLERANCES if q != "gradients"]
    report.differences = {"jax": [*agreeing, compare.Difference("gradients", 0.1, 0.2, "block2_conv/kernel")]}
    report.divergence = {"jax": {"inference": None, "training": ("block2_bn", 3e-4)}}
    report.matrix = {"torch": {"torch": 0.0, "jax": 1e-7}, "jax": {"torch": 0.5, "jax": 0.0}}
    from rich.console import Console

    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "block2_conv/kernel" in text and "block2_bn" in text
    assert "saved on jax, loaded on torch" in text and "head_dropout (0.2)" in text
    document = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert document["passed"] is False
    assert document["differences"]["jax"]["gradients"]["worst"] == "block2_conv/kernel"
    assert document["first_divergent_layer"]["jax"]["training"]["layer"] == "block2_bn"


# What runs inside each backend's process, checked on the backend under test.

def _tiny_classifier():
    from portaclass.models import create_model

    return create_model("simple_cnn", 3, (8, 8, 3), seed=0, width=4)


def _batch():
    from portaclass.layout import to_model_layout

    x = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype("float32")
    return to_model_layout(x), np.array([0, 1, 2, 0])


def test_the_step_applies_exactly_the_gradients_it_reports():
    from portaclass.backend import to_numpy
    from portaclass.parity.numerics import sgd_step

    model, (x, y) = _tiny_classifier(), _batch()
    before = [np.array(to_numpy(v)) for v in model.trainable_variables]  # a copy: torch shares memory
    rate = np.float32(2**-7)
    step = sgd_step(model, x, y, float(rate))
    assert np.isfinite(step.loss) and len(step.gradients) == len(before)
    for variable, start, gradient in zip(model.trainable_variables, before, step.gradients):
        assert np.any(gradient != 0), variable.path
        # w - rate * g, to the last bit or two (TensorFlow's graph rounds the update its own way)
        np.testing.assert_allclose(to_numpy(variable), start - rate * gradient, rtol=2.5e-7, atol=1e-12,
                                   err_msg=variable.path)


def test_dropout_is_neutralised_for_training_mode_and_restored():
    from portaclass.backend import to_numpy
    from portaclass.parity.numerics import neutralise_random_layers, restore_random_layers

    model, (x, _) = _tiny_classifier(), _batch()
    changed = neutralise_random_layers(model)
    assert changed == {"head_dropout": pytest.approx(0.2)}
    np.testing.assert_array_equal(to_numpy(model(x, training=True)), to_numpy(model(x, training=True)))
    restore_random_layers(model, changed)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.2)


def test_logits_are_what_the_softmax_head_squashes_in_both_modes():
    from portaclass.backend import to_numpy
    from portaclass.parity.numerics import (
        inference_logits,
        logits_model,
        neutralise_random_layers,
        sgd_step,
    )

    def softmax(logits):
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    model, (x, y) = _tiny_classifier(), _batch()
    logits = inference_logits(model, logits_model(model), x)
    np.testing.assert_allclose(softmax(logits), to_numpy(model(x)), atol=1e-6)
    neutralise_random_layers(model)
    training = to_numpy(model(x, training=True))  # BatchNormalization on the batch's statistics
    np.testing.assert_allclose(softmax(sgd_step(model, x, y, 2**-7).logits), training, atol=1e-6)


def test_layer_outputs_open_a_nested_model_before_its_own_output():
    import keras

    from portaclass.backend import to_numpy
    from portaclass.parity.numerics import layer_outputs

    inner_input = keras.Input((3,))
    inner = keras.Model(inner_input, keras.layers.Dense(4, name="inner_dense")(inner_input), name="inner")
    outer_input = keras.Input((3,))
    outer = keras.Model(outer_input, keras.layers.Dense(2, name="outer_dense")(inner(outer_input)))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    outputs = layer_outputs(outer, x, training=False)
    assert list(outputs) == ["inner/inner_dense", "inner", "outer_dense"]
    np.testing.assert_allclose(outputs["inner"], to_numpy(inner(x)), rtol=1e-6)
    np.testing.assert_allclose(outputs["outer_dense"], to_numpy(outer(x)), rtol=1e-6)
