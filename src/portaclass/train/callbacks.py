"""Keras callbacks for portaclass runs: per-epoch CSV history and a Rich
progress bar."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from portaclass._lazy import keras


class EpochHistoryCSV(keras.callbacks.Callback):
    """Appends one row per epoch to the run's history.csv as soon as the
    epoch ends, with ``epoch`` counting from 1; a later phase
    (``initial_epoch > 0``) in the same run appends to the same file.
    ``extra`` columns (e.g. ``phase``) are written on every row."""

    def __init__(self, run, extra: dict | None = None):
        super().__init__()
        self.run = run
        self.extra = dict(extra or {})
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **self.extra}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        row["epoch_seconds"] = round(time.perf_counter() - self._start, 3)
        self.run.append_history(row)


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
        if self._progress is not None:
            self._progress.stop()
