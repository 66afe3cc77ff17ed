"""Optimizers, schedules and class weights as the PyTorch recipe names them,
built from Keras' own classes."""

from __future__ import annotations

import numpy as np
import pytest

from portaclass.train.optim import (
    PhasePlan,
    balanced_class_weights,
    learning_rate_schedule,
    make_optimizer,
)

PLAN = PhasePlan(learning_rate=0.1, steps_per_epoch=10, epochs=5, total_steps=50)


def _rates(schedule, steps):
    from portaclass._lazy import keras

    if isinstance(schedule, float):
        return [schedule] * len(steps)
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]


def test_step_schedule_is_steplr():
    # StepLR(step_size=2 epochs, gamma=0.5): 0.1 for epochs 0-1, 0.05 for 2-3, 0.025 after
    rates = _rates(learning_rate_schedule("step", PLAN, step_size=2, gamma=0.5), [0, 19, 20, 39, 40])
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)


def test_cosine_decays_to_zero_and_warms_up_linearly():
    rates = _rates(learning_rate_schedule("cosine", PLAN), [0, 25, 50])
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.0], atol=1e-7)
    warm = PhasePlan(learning_rate=0.1, steps_per_epoch=10, epochs=5, total_steps=50, warmup_steps=10)
    rates = _rates(learning_rate_schedule("cosine", warm), [0, 5, 10, 50])
    np.testing.assert_allclose(rates, [0.0, 0.05, 0.1, 0.0], atol=1e-7)


def test_onecycle_rises_to_the_peak_then_anneals_far_below_the_start():
    rates = _rates(learning_rate_schedule("onecycle", PLAN), [0, 15, 35, 50])
    assert rates[0] == pytest.approx(0.1 / 25)
    assert rates[1] == pytest.approx(0.1)  # the peak, after 30% of the steps
    assert rates[1] > rates[2] > rates[3]
    assert rates[3] == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)


def test_constant_with_warmup_holds_the_rate_after_it():
    warm = PhasePlan(learning_rate=0.1, steps_per_epoch=10, epochs=5, total_steps=50, warmup_steps=10)
    np.testing.assert_allclose(_rates(learning_rate_schedule("constant", warm), [0, 5, 10, 30, 50]),
                               [0.0, 0.05, 0.1, 0.1, 0.1], atol=1e-7)
    assert learning_rate_schedule("constant", PLAN) == 0.1


def test_optimizers_carry_the_recipe_settings():
    sgd = make_optimizer("sgd", 0.1, momentum=0.8, nesterov=True, clip_norm=1.0)
    assert type(sgd).__name__ == "SGD" and sgd.momentum == 0.8 and sgd.nesterov
    assert sgd.global_clipnorm == 1.0
    adamw = make_optimizer("adamw", 0.1)
    assert type(adamw).__name__ == "AdamW" and adamw.weight_decay == pytest.approx(0.004)
    adam = make_optimizer("adam", 0.1, weight_decay=0.01)
    assert type(adam).__name__ == "Adam" and adam.weight_decay == pytest.approx(0.01)


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 30 + [1] * 10 + [2] * 5)
    ours = balanced_class_weights(labels, 3)
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose([ours[c] for c in range(3)], theirs)
