"""The learning-rate range test (fastai's ``lr_find``, after Leslie Smith's
"Cyclical Learning Rates for Training Neural Networks", 2017).

Train for up to ``steps`` batches with a learning rate growing geometrically
from ``start_lr`` to ``end_lr``, record the loss at every step, and stop as
soon as the smoothed loss explodes. The model's weights (trainable and not:
BatchNormalization statistics, seed states) are put back exactly as they
were, so the run that follows starts from the same initial weights as a run
without the test. The optimizer state is not: the caller compiles again.

The suggested rate is where the smoothed loss falls fastest (fastai's
``steep`` rule, made robust to noise: ``suggest_learning_rate``).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from portaclass import checks
from portaclass._lazy import backend
from portaclass.errors import PortaclassError, UsageError
from portaclass.run import write_json_atomic

JSON_NAME = "lr_find.json"
PLOT_NAME = "lr_find.png"
SMOOTHING = 0.98  # fastai's beta for the exponentially weighted loss
MIN_STEPS = 10
# The suggestion ignores the first tenth of the planned steps (fastai's
# ``num_it // 10``): the smoothed loss averages only a few batches there, so
# its slope is mostly batch-to-batch noise.
SKIP_FRACTION = 0.1
SLOPE_HALF_WIDTH_FRACTION = 0.05  # the suggestion's slopes span ±5% of the planned steps
MIN_SLOPE_POINTS = 5  # points past the skipped ones needed for a suggestion


class LRFindError(PortaclassError):
    """The range test could not suggest a rate (the loss diverged too early)."""


@dataclass
class LRFindResult:
    """What the range test saw: one learning rate and loss per step taken."""

    learning_rates: list[float]
    losses: list[float]  # raw training loss of each step's batch
    smoothed: list[float]  # exponentially smoothed (beta 0.98), bias-corrected
    suggestion: float
    stopped_early: bool  # the loss exploded before end_lr was reached

    def to_dict(self) -> dict:
        """The fields, JSON-ready: a NaN or infinite loss is written as None."""
        values = asdict(self)
        for key in ("losses", "smoothed"):
            values[key] = [v if math.isfinite(v) else None for v in values[key]]
        return values

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """``lr_find.json`` (every field) and ``lr_find.png`` (the plot) in
        ``out_dir``; returns their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = write_json_atomic(out_dir / JSON_NAME, self.to_dict())
        return json_path, plot_lr_find(self, out_dir / PLOT_NAME)


def find_learning_rate(model, train_data, *, compile_model, start_lr: float = 1e-7,
                       end_lr: float = 10.0, steps: int = 100,
                       diverge_factor: float = 4.0) -> LRFindResult:
    """Run the learning-rate range test on ``model`` and suggest a rate.

    Args:
        model: a built Keras model (compiled or not); its weights are the
            same, bit for bit, when this returns or raises.
        train_data: a Keras PyDataset (``data.make_pipeline``): ``len()``,
            ``[i] -> (x, y)`` and ``on_epoch_end()``, called at each wrap.
        compile_model: ``compile_model(model, learning_rate)`` compiles the
            model as the run will train it, with a float learning rate (so
            the optimizer's rate is a variable this function can set).
        start_lr: the first step's learning rate.
        end_lr: the last step's; step ``i`` uses
            ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``.
        steps: steps at most, at least 10; the data is cycled as needed.
        diverge_factor: stop when the smoothed loss exceeds this times its
            minimum so far (or is not finite). Keras' cross-entropy on
            softmax outputs clips probabilities at 1e-7, so a loss never
            exceeds ~16.1: where the smoothed loss stays above 16.1 /
            ``diverge_factor`` (many classes, little learning), the test
            runs on to ``end_lr`` instead of stopping early.

    Returns:
        An ``LRFindResult``. Raises ``UsageError`` for a bad argument
        (before anything is trained) and ``LRFindError`` when no rate can be
        suggested (``suggest_learning_rate``).
    """
    checks.positive("start_lr", start_lr)
    checks.positive("end_lr", end_lr)
    if end_lr <= start_lr:
        raise UsageError.for_option("end_lr", f"must be above start_lr ({start_lr}); received {end_lr}")
    if not isinstance(steps, int) or steps < MIN_STEPS:
        raise UsageError.for_option("steps", f"must be an integer of at least {MIN_STEPS} (the "
                                    f"suggestion needs a slope past the first noisy steps); "
                                    f"received {steps!r}")
    checks.at_least("diverge_factor", diverge_factor, 1)
    if len(train_data) == 0:
        raise UsageError.for_option("train_data", "has no batches")

    rates = learning_rates(start_lr, end_lr, steps)
    saved = [np.array(backend.to_numpy(v.value), copy=True) for v in model.variables]
    try:
        compile_model(model, float(start_lr))
        rate = model.optimizer.learning_rate
        if not hasattr(rate, "assign"):
            raise TypeError("compile_model must compile with a float learning rate, so the "
                            f"optimizer's rate is a variable; got {type(rate).__name__}")
        losses, smoothed, stopped = _range_test(model, train_data, rate, rates, diverge_factor)
    finally:
        for variable, value in zip(model.variables, saved):
            variable.assign(value)
    taken = rates[:len(losses)]
    suggestion = suggest_learning_rate(taken, smoothed, planned_steps=steps)
    return LRFindResult(learning_rates=taken, losses=losses, smoothed=smoothed,
                        suggestion=suggestion, stopped_early=stopped)


def learning_rates(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` rates growing geometrically from ``start_lr`` to ``end_lr``."""
    return [float(v) for v in np.geomspace(start_lr, end_lr, steps)]


def suggest_learning_rate(learning_rates, smoothed, *, planned_steps: int | None = None) -> float:
    """The rate where the smoothed loss falls fastest against log(rate)
    (fastai's ``steep`` suggestion), on the way down to its minimum.

    The slope at point ``i`` is a central difference over ``h`` points each
    side, ``(loss[i+h] - loss[i-h]) / (log lr[i+h] - log lr[i-h])`` with
    ``h`` = 5% of the planned steps (``slope_half_width``); the suggestion
    is ``lr[i]`` of the most negative slope. Left out: the first 10% of the
    planned steps (``skipped_steps``: the smoothed loss averages only a few
    batches there), everything from the first non-finite loss on, and
    everything past the smoothed loss's minimum.

    Two departures from fastai, both against noise. fastai differences
    neighbouring points: on simple_cnn/shapes (100 steps, 1e-7..10) that
    picked 5.0e-6, a wiggle of the barely warmed-up average, while the
    loss really falls between 1e-4 and 1 (±5 points: 7.6e-4). And past the
    minimum the loss only climbs; where it has exploded it swings by more
    per step than a real descent falls, so a swing there could pass for
    the steepest drop. The result lies strictly inside the tested range,
    below the rate where the loss exploded.

    Args:
        learning_rates: the rate of each step taken.
        smoothed: the smoothed loss of each step taken.
        planned_steps: the steps the test was set to run (default: as many
            as were taken); the skipped and differenced spans scale with it.

    Raises:
        LRFindError: fewer than ``MIN_SLOPE_POINTS`` finite points past the
            skipped ones, or a loss that does not fall past them.
    """
    lrs = np.asarray(learning_rates, np.float64)
    loss = np.asarray(smoothed, np.float64)
    planned = planned_steps or len(lrs)
    skip = skipped_steps(planned)
    finite = np.isfinite(loss)
    usable = len(loss) if finite.all() else int(np.argmin(finite))
    if usable - skip < MIN_SLOPE_POINTS:
        where = (f"the loss was not finite at step {usable + 1} (lr {lrs[usable]:.3g})" if usable < len(lrs)
                 else f"the loss exploded after {usable} steps (lr {lrs[-1]:.3g})")
        raise LRFindError(
            f"{where}, too early to suggest a learning rate "
            f"(the first {skip} steps are skipped as noise, then {MIN_SLOPE_POINTS} are needed): "
            "start the range test at a lower rate")
    lrs, loss = lrs[skip:usable], loss[skip:usable]
    lowest = int(np.argmin(loss))
    if lowest < 2:
        raise LRFindError(
            f"the smoothed loss did not fall past lr {lrs[0]:.3g} (step {skip + 1}), so there is "
            "no descent to suggest a rate from: test a wider range of rates")
    half = min(slope_half_width(planned), lowest // 2)
    centre = np.arange(half, lowest - half + 1)
    slopes = (loss[centre + half] - loss[centre - half]) / np.log(lrs[centre + half] / lrs[centre - half])
    return float(lrs[centre[int(np.argmin(slopes))]])


def skipped_steps(planned_steps: int) -> int:
    """How many first points the suggestion ignores (fastai's ``num_it // 10``)."""
    return max(1, int(planned_steps * SKIP_FRACTION))


def slope_half_width(planned_steps: int) -> int:
    """Points each side of the suggestion's central difference."""
    return max(1, int(planned_steps * SLOPE_HALF_WIDTH_FRACTION))


def plot_lr_find(result: LRFindResult, path: Path) -> Path:
    """Loss against learning rate (log axis): the raw losses faint, the
    smoothed curve bold, the suggestion marked and labelled."""
    # Imported here: matplotlib costs ~0.3 s, and every `portaclass train`
    # imports this module whether or not it runs the range test.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    lrs = np.asarray(result.learning_rates)
    axes.plot(lrs, result.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    axes.plot(lrs, result.smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    index = int(np.argmin(np.abs(np.log(lrs) - math.log(result.suggestion))))
    point = result.smoothed[index]
    axes.plot([result.suggestion], [point], "o", color="tab:red", markersize=8,
              label=f"suggested {result.suggestion:.2e}")
    axes.annotate(f"{result.suggestion:.2e}", (result.suggestion, point), textcoords="offset points",
                  xytext=(0, -18), ha="center", color="tab:red")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:  # keep the exploded tail from flattening the interesting part
        low, high = min(finite), max(finite[: max(1, len(finite) - 1)])
        axes.set_ylim(low - 0.1 * (high - low + 1e-12), high + 0.25 * (high - low + 1e-12))
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    stop = "stopped when the loss exploded" if result.stopped_early else "full range"
    axes.set_title(f"Learning-rate range test ({len(lrs)} steps, {stop})", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def _range_test(model, data, rate_variable, rates, diverge_factor):
    """(losses, smoothed, stopped_early): one ``train_on_batch`` per rate
    until the smoothed loss explodes."""
    losses, smoothed = [], []
    average, best = 0.0, math.inf
    batches = _cycled_batches(data, workers=int(getattr(data, "workers", 1) or 1))
    try:
        for step, (rate, (x, y)) in enumerate(zip(rates, batches), start=1):
            rate_variable.assign(rate)
            logs = model.train_on_batch(x, y, return_dict=True)
            loss = float(logs["loss"])
            average = SMOOTHING * average + (1 - SMOOTHING) * loss
            value = average / (1 - SMOOTHING**step)
            losses.append(loss)
            smoothed.append(value)
            best = min(best, value)
            if not math.isfinite(value) or value > diverge_factor * best:
                return losses, smoothed, True
    finally:
        batches.close()
    return losses, smoothed, False


def _cycled_batches(data, *, workers: int):
    """The batches of ``data`` in order, epoch after epoch (``on_epoch_end``
    between them), with up to ``workers`` batches decoded ahead by threads:
    the pipeline decodes with Pillow, which releases the GIL, so the next
    batches are ready while the model trains on this one."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            indices = iter(range(len(data)))
            pending = deque(pool.submit(data.__getitem__, i) for i in itertools.islice(indices, workers))
            while pending:
                batch = pending.popleft().result()
                following = next(indices, None)
                if following is not None:
                    pending.append(pool.submit(data.__getitem__, following))
                yield batch
            data.on_epoch_end()


__all__ = ["LRFindError", "LRFindResult", "find_learning_rate", "learning_rates",
           "plot_lr_find", "skipped_steps", "slope_half_width", "suggest_learning_rate"]
