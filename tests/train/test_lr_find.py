"""The learning-rate range test: geometric rates, weights put back bit for
bit, a stop when the loss explodes, a suggestion inside the tested range,
and the JSON and PNG it leaves behind."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from portaclass.errors import UsageError
from portaclass.train.lr_find import (
    LRFindError,
    find_learning_rate,
    skipped_steps,
    suggest_learning_rate,
)

EXPLODE = {"start_lr": 1e-3, "end_lr": 1e5, "steps": 60}  # rates past ~0.1 wreck the model


def compile_model(model, learning_rate):
    import keras

    from portaclass.train.fit import compile_classifier

    compile_classifier(model, keras.optimizers.Adam(learning_rate))


def variable_bytes(model) -> list[tuple[str, bytes]]:
    from portaclass import backend

    return [(v.path, np.array(backend.to_numpy(v.value), copy=True).tobytes()) for v in model.variables]


@pytest.fixture(scope="module")
def shapes_batches():
    from portaclass import layout
    from portaclass.data import load_dataset, make_pipeline

    dataset = load_dataset("shapes", 16, val_split=0.1, test_split=0.0, seed=0)
    return make_pipeline(dataset.train, 32, image_size=16, workers=2,
                         channels_first=layout.data_format() == layout.CHANNELS_FIRST)


@pytest.fixture(scope="module")
def model():
    from portaclass.models import create_model

    return create_model("simple_cnn", 4, (16, 16, 3), seed=0)


@pytest.fixture(scope="module")
def exploded(model, shapes_batches):
    """A range test up to absurd rates; the model's variables before, after
    the last training step (a spy on train_on_batch) and after the test."""
    before = variable_bytes(model)
    seen = {}
    train_on_batch = model.train_on_batch

    def spy(*args, **kwargs):
        logs = train_on_batch(*args, **kwargs)
        seen["last_step"] = variable_bytes(model)
        return logs

    model.train_on_batch = spy
    try:
        result = find_learning_rate(model, shapes_batches, compile_model=compile_model, **EXPLODE)
    finally:
        del model.train_on_batch
    return result, before, seen["last_step"], variable_bytes(model)


def test_rates_grow_geometrically_from_start_lr(exploded):
    result = exploded[0]
    rates = np.array(result.learning_rates)
    ratio = (EXPLODE["end_lr"] / EXPLODE["start_lr"]) ** (1 / (EXPLODE["steps"] - 1))
    assert rates[0] == pytest.approx(EXPLODE["start_lr"])
    np.testing.assert_allclose(rates[1:] / rates[:-1], ratio, rtol=1e-9)
    assert len(result.losses) == len(result.smoothed) == len(rates)


def test_a_gentle_range_runs_every_step_up_to_end_lr(model, shapes_batches):
    result = find_learning_rate(model, shapes_batches, compile_model=compile_model,
                                start_lr=1e-3, end_lr=1e-2, steps=12)
    assert not result.stopped_early
    assert len(result.learning_rates) == 12
    assert result.learning_rates[0] == pytest.approx(1e-3)
    assert result.learning_rates[-1] == pytest.approx(1e-2)
    assert all(math.isfinite(v) for v in result.losses)


def test_weights_are_restored_bit_for_bit(exploded):
    _, before, last_step, after = exploded
    assert [path for path, _ in after] == [path for path, _ in before]
    moved = {path for (path, a), (_, b) in zip(before, last_step) if a != b}
    # training did move kernels and BatchNormalization statistics...
    assert any(path.endswith("kernel") for path in moved)
    assert any(path.endswith("moving_mean") for path in moved)
    # ...and every variable, trainable or not, is back as it was
    assert [path for (path, a), (_, b) in zip(before, after) if a != b] == []


def test_stops_early_when_the_loss_explodes(exploded):
    result = exploded[0]
    smoothed = result.smoothed
    assert result.stopped_early
    assert len(smoothed) < EXPLODE["steps"]
    exploded_at_end = not math.isfinite(smoothed[-1]) or smoothed[-1] > 4 * min(smoothed[:-1])
    assert exploded_at_end
    # it stopped at the first step past the limit, not later
    assert all(value <= 4 * min(smoothed[: i + 1]) for i, value in enumerate(smoothed[:-1]))


def test_suggestion_lies_inside_the_range_where_the_loss_falls(exploded):
    result = exploded[0]
    rates, smoothed = result.learning_rates, result.smoothed
    assert rates[0] < result.suggestion < rates[-1]  # rates[-1]: where the loss exploded
    skip = skipped_steps(EXPLODE["steps"])  # the noisy first points
    lowest = skip + int(np.nanargmin(smoothed[skip:]))
    index = rates.index(result.suggestion)
    assert skip <= index < lowest  # on the way down to the lowest loss
    assert smoothed[index] > smoothed[lowest]


def test_steepest_descent_rule_on_a_known_curve():
    rates = np.geomspace(1e-6, 1.0, 61)  # 10 points per decade
    position = np.log10(rates)
    loss = 2.0 - 1.5 / (1 + np.exp(-4 * (position + 3)))  # falls fastest at 1e-3
    loss = loss + np.where(position > -1, 30 * (position + 1) ** 2, 0.0)  # then explodes
    assert 10**-3.2 < suggest_learning_rate(rates, loss) < 10**-2.8
    # what the smoothed loss of a real test also holds must not move it:
    loss[0] = 4.0  # the first steps' average of a few batches
    loss[10] -= 0.4  # a one-point dip (batch noise)
    loss[-8:] = np.linspace(40.0, 1.0, 8)  # an exploded tail swinging down, above the minimum
    assert 10**-3.2 < suggest_learning_rate(rates, loss) < 10**-2.8


def test_no_suggestion_when_the_loss_diverges_at_once():
    rates = np.geomspace(1e-7, 10.0, 100)
    smoothed = [2.0, 2.1, 5.0, float("nan")]
    with pytest.raises(LRFindError, match=r"not finite at step 4 \(lr 1.75e-07\), too early .* lower rate$"):
        suggest_learning_rate(rates[:4], smoothed, planned_steps=100)


def test_too_few_steps_is_a_usage_error_before_any_training(model, shapes_batches):
    calls = []
    with pytest.raises(UsageError, match="^`steps` must be an integer of at least 10"):
        find_learning_rate(model, shapes_batches, compile_model=lambda m, lr: calls.append(lr), steps=5)
    with pytest.raises(UsageError, match="^`end_lr` must be above start_lr"):
        find_learning_rate(model, shapes_batches, compile_model=lambda m, lr: calls.append(lr),
                           start_lr=1.0, end_lr=0.1)
    assert calls == []


def test_writes_json_and_a_plot(exploded, tmp_path):
    from PIL import Image

    result = exploded[0]
    json_path, png_path = result.write(tmp_path / "run")
    assert json_path.name == "lr_find.json" and png_path.name == "lr_find.png"
    saved = json.loads(json_path.read_text())
    assert saved == result.to_dict()
    assert saved["suggestion"] == result.suggestion and saved["stopped_early"] is True
    assert len(saved["learning_rates"]) == len(saved["losses"]) == len(saved["smoothed"])
    with Image.open(png_path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # curves, labels: not a blank canvas
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 20  # the suggestion's marker (tab:red)
