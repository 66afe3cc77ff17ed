"""Keras callbacks of a portaclass run: history.csv, checkpoints, guards
against non-finite losses and Ctrl-C, a step budget, resumable early
stopping, and a Rich progress bar."""

from __future__ import annotations

import math
import signal
import threading
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portaclass._lazy import backend, keras
from portaclass.train.checkpoint import (
    save_inference_model,
    seed_generator_states,
    write_keras_atomic,
)
from portaclass.train.optim import current_learning_rate


class TrainingDiverged(Exception):
    """The loss became NaN or infinite at (epoch, step)."""

    def __init__(self, epoch: int, step: int, loss: float, learning_rate: float):
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss, self.learning_rate = epoch, step, loss, learning_rate


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, honoured at the end of a training step (epoch, step)."""

    def __init__(self, epoch: int, step: int | None):
        super().__init__(f"interrupted at epoch {epoch}")
        self.epoch, self.step = epoch, step


class EpochHistoryCSV(keras.callbacks.Callback):
    """Appends one row per epoch to the run's history.csv as soon as the
    epoch ends: ``epoch`` counting from 1, the learning rate in force at the
    end of the epoch (``lr``), the logs, and ``extra`` columns (``phase``)."""

    def __init__(self, run, extra: dict | None = None):
        super().__init__()
        self.run = run
        self.extra = dict(extra or {})
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **self.extra, "lr": current_learning_rate(self.model.optimizer)}
        row.update({k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"})
        row["epoch_seconds"] = round(time.perf_counter() - self._start, 3)
        self.run.append_history(row)


class RunCheckpoints(keras.callbacks.Callback):
    """After every epoch: ``checkpoints/last.keras`` (resumable state) and,
    when ``val_accuracy`` improves, ``checkpoints/best.keras`` (the model
    without optimizer state); both written atomically, each over the space
    of its save before (the run removes those spares when it ends).

    ``state`` is this run's resumable state (phase, epochs done, best score,
    early stopping counters); the runner shares it with the other callbacks.
    """

    def __init__(self, run, state: dict, early_stopping=None):
        super().__init__()
        self.run = run
        self.state = state
        self.early_stopping = early_stopping

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.state["epoch"] = epoch + 1
        self.state["stopped_early"] = bool(self.model.stop_training)  # the phase ends here
        self.state["seed_generators"] = seed_generator_states(self.model)
        self.state["framework_rng"] = backend.rng_state()
        if self.early_stopping is not None:
            self.state["early_stopping"] = self.early_stopping.counters()
        score = logs.get("val_accuracy")
        improved = score is not None and float(score) > self.state.get("best_val_accuracy", -1.0)
        if improved:
            self.state.update(best_val_accuracy=float(score), best_epoch=epoch + 1)
        info = self.run.model_info()
        write_keras_atomic(self.model, self.run.checkpoints / "last.keras", extra=self.state, info=info,
                           reuse_space=True)
        if improved:  # for evaluation and export, not resuming: no optimizer state
            save_inference_model(self.model, self.run.checkpoints / "best.keras", extra=self.state,
                                 info=info, reuse_space=True)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises ``TrainingDiverged`` at the first step whose loss is NaN or
    infinite, before that epoch can be checkpointed."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float(backend.to_numpy((logs or {}).get("loss", 0.0)))
        if not math.isfinite(loss):
            raise TrainingDiverged(self._epoch + 1, batch + 1, loss,
                                   current_learning_rate(self.model.optimizer))


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) finishes the training step in progress, then raises
    ``TrainingInterrupted``; nothing is left half-done, and the last epoch's
    checkpoint stays the one to resume from. A second Ctrl-C stops at once."""

    def __init__(self):
        super().__init__()
        self._requested = False
        self._previous = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame):
        self._requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def restore_handler(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_end(self, logs=None):
        self.restore_handler()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._check(None)

    def on_train_batch_end(self, batch, logs=None):
        self._check(batch + 1)

    def on_test_batch_end(self, batch, logs=None):
        self._check(None)

    def _check(self, step):
        if self._requested:
            self.restore_handler()
            raise TrainingInterrupted(self._epoch + 1, step)


class PipelineFollowsEpoch(keras.callbacks.Callback):
    """Sets the training pipeline to the epoch Keras is about to train, so
    the data of epoch N is the same in a fresh run, a resumed one and either
    phase (Keras also calls the pipeline's ``on_epoch_end`` once when each
    ``fit`` starts, so counting those calls would drift)."""

    def __init__(self, pipeline):
        super().__init__()
        self.pipeline = pipeline

    def on_epoch_begin(self, epoch, logs=None):
        self.pipeline.set_epoch(epoch)


class AverageReplicaStatistics(keras.callbacks.Callback):
    """Makes the replicas' BatchNorm statistics one value (``average``)
    before each validation and at each epoch's end, so validation, the
    checkpoint and the final model see the same statistics on every replica."""

    def __init__(self, average):
        super().__init__()
        self.average = average

    def on_test_begin(self, logs=None):
        self.average(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.average(self.model)


class StepBudget(keras.callbacks.Callback):
    """Stops training after exactly ``steps`` optimizer steps of this fit
    (the last epoch is cut short, then validated and logged as usual)."""

    def __init__(self, steps: int, steps_done: int = 0):
        super().__init__()
        self.steps = steps
        self.done = steps_done

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True


class LastValidationOutputs(keras.callbacks.Callback):
    """The model's outputs over its latest validation pass, in the
    validation data's order (``outputs``, None until a pass completed), so
    the run's report scores the final weights without a second pass over
    the split (0.9 s of a ResNet-18 run's 1.8 s report). Torch only: its
    trainer calls the model eagerly, where a forward hook sees each batch;
    TensorFlow and JAX validate inside compiled functions."""

    def __init__(self):
        super().__init__()
        self.outputs = None
        self._batches: list | None = None
        self._hook = None

    def on_test_begin(self, logs=None):
        self.outputs, self._batches = None, []
        self.detach()
        self._hook = self.model.register_forward_hook(self._keep)

    def _keep(self, module, args, output):
        if self._batches is not None:
            if isinstance(output, (list, tuple, dict)):
                self._batches = None  # a model of several outputs: not a classifier's
            else:
                self._batches.append(backend.to_numpy(output))

    def on_test_end(self, logs=None):
        self.detach()
        if self._batches:
            self.outputs = np.concatenate(self._batches)
        self._batches = None

    def detach(self) -> None:
        """Stop watching (also after a validation an exception cut short)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping on ``val_loss`` whose counters survive a resume."""

    def __init__(self, patience: int, counters: dict | None = None):
        super().__init__(monitor="val_loss", patience=patience)
        self._counters = counters

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._counters:
            self.wait = self._counters["wait"]
            self.best = self._counters["best"]

    def counters(self) -> dict:
        best = self.best if self.best is not None and math.isfinite(self.best) else None
        return {"wait": int(self.wait), "best": best if best is not None else math.inf}


def _format_logs(logs: dict) -> str:
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
    return "  ".join(f"{k} {float(logs[k]):.4f}" for k in keys)


class RichProgress(keras.callbacks.Callback):
    """One Rich progress bar per epoch with the running loss and accuracy."""

    def __init__(self, epochs: int, steps_per_epoch: int | None, console=None):
        super().__init__()
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.console = console or Console(stderr=True)
        self._progress = None
        self._task = None

    def on_train_begin(self, logs=None):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
        )
        self._progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._task = self._progress.add_task(
            f"epoch {epoch + 1}/{self.epochs}", total=self.steps, metrics=""
        )

    def on_train_batch_end(self, batch, logs=None):
        self._progress.update(self._task, completed=batch + 1, metrics=_format_logs(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        task = self._progress.tasks[-1]
        self._progress.update(
            self._task, total=task.completed, completed=task.completed,
            metrics=_format_logs(logs or {}),
        )

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training ends with an exception)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
