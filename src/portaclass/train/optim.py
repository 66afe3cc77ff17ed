"""Optimizers, learning-rate schedules, losses and class weights, all from
Keras' own classes, so a checkpoint (model + optimizer) loads with plain
``keras.saving.load_model``.

The schedules in PyTorch terms: ``constant``; ``step`` is StepLR
(``ExponentialDecay(staircase=True)``); ``cosine`` is CosineAnnealingLR to
zero; ``onecycle`` is OneCycleLR's shape (up from lr/25 to lr over 30% of the
steps, then cosine down to lr/25e4) with a linear rather than cosine warm-up,
because Keras' ``CosineDecay`` warms up linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portaclass._lazy import keras

ADAMW_WEIGHT_DECAY = 0.004  # Keras' AdamW default
ONECYCLE_WARMUP_SHARE = 0.3  # OneCycleLR's pct_start
ONECYCLE_DIV = 25.0  # OneCycleLR's div_factor
ONECYCLE_FINAL_DIV = 1e4  # OneCycleLR's final_div_factor


@dataclass(frozen=True)
class PhasePlan:
    """The step arithmetic of one training phase."""

    learning_rate: float
    steps_per_epoch: int
    epochs: int
    total_steps: int  # the phase's budget (``--steps`` may end mid-epoch)
    warmup_steps: int = 0


def learning_rate_schedule(schedule: str, plan: PhasePlan, *, step_size: int | None = None,
                           gamma: float = 0.1):
    """The optimizer's learning rate for ``plan``: a float or a Keras schedule."""
    lr, warmup = plan.learning_rate, plan.warmup_steps
    decay_steps = max(1, plan.total_steps - warmup)
    schedules = keras.optimizers.schedules
    if schedule == "step":
        return schedules.ExponentialDecay(lr, decay_steps=step_size * plan.steps_per_epoch,
                                          decay_rate=gamma, staircase=True)
    if schedule == "cosine":
        if warmup:
            return schedules.CosineDecay(0.0, decay_steps, warmup_target=lr, warmup_steps=warmup)
        return schedules.CosineDecay(lr, decay_steps)
    if schedule == "onecycle":
        warmup = warmup or max(1, int(ONECYCLE_WARMUP_SHARE * plan.total_steps))
        start = lr / ONECYCLE_DIV
        return schedules.CosineDecay(start, max(1, plan.total_steps - warmup),
                                     alpha=start / ONECYCLE_FINAL_DIV / lr,
                                     warmup_target=lr, warmup_steps=warmup)
    if warmup:
        # Constant after a linear warm-up: CosineDecay with alpha=1 decays to
        # 100% of its target, i.e. not at all.
        return schedules.CosineDecay(0.0, 1, alpha=1.0, warmup_target=lr, warmup_steps=warmup)
    return lr


def make_optimizer(name: str, learning_rate, *, momentum: float = 0.9, nesterov: bool = False,
                   weight_decay: float | None = None, clip_norm: float | None = None):
    """A Keras optimizer; ``clip_norm`` clips the global gradient norm
    (PyTorch's ``clip_grad_norm_``)."""
    common = {"learning_rate": learning_rate, "global_clipnorm": clip_norm}
    optimizers = keras.optimizers
    if name == "sgd":
        return optimizers.SGD(momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **common)
    if name == "adamw":
        return optimizers.AdamW(weight_decay=ADAMW_WEIGHT_DECAY if weight_decay is None else weight_decay,
                                **common)
    return optimizers.Adam(weight_decay=weight_decay, **common)


def classification_loss(*, one_hot: bool, label_smoothing: float = 0.0):
    """(loss, accuracy metric): sparse for class indices, categorical for
    one-hot rows (MixUp/CutMix, label smoothing). The metric is named
    ``accuracy`` either way, so history.csv keeps its columns."""
    if one_hot:
        return (keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"))
    return (keras.losses.SparseCategoricalCrossentropy(),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"))


def balanced_class_weights(labels, num_classes: int) -> dict[int, float]:
    """scikit-learn's "balanced": n_samples / (n_classes * count of class)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = counts.sum()
    return {c: float(total / (num_classes * n)) if n else 0.0 for c, n in enumerate(counts)}


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer applies at its current step."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
