"""Plots for evaluation and the run report, drawn with matplotlib's Agg
canvas (no display needed, the user's pyplot backend left alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Above this many classes the cells are too small for their counts.
ANNOTATE_UP_TO = 20


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path, dpi: int = 90, *, fit: bool = True):
    """PNG to ``path``, or into a file object (the report inlines its images);
    ``fit``: margins fitted to the labels (matplotlib's tight layout, which
    measures every label: half of a small plot's time)."""
    if fit:
        figure.tight_layout()
    if hasattr(path, "write"):
        figure.savefig(path, dpi=dpi, format="png")
        return path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], path, *, title: str = "") -> Path:
    """Counts with truth on the rows, predictions on the columns; each row
    coloured by its share, so small classes read as clearly as large ones."""
    n = len(class_names)
    side = min(14.0, 2.5 + 0.45 * n)
    figure = new_figure(side, side * 0.9)
    axes = figure.add_subplot(1, 1, 1)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = np.arange(n)
    axes.set_xticks(ticks, class_names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if n <= ANNOTATE_UP_TO:
        for i in range(n):
            for j in range(n):
                axes.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=9,
                          color="white" if shares[i, j] > 0.5 else "black")
    if title:
        axes.set_title(title, fontsize=10)
    return save(figure, path)


def _column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(row[name]) if row.get(name) not in (None, "") else np.nan for row in rows])


def plot_training_curves(history: list[dict], path) -> Path:
    """Loss, accuracy and learning rate per epoch (history.csv rows); where
    a transfer run's second phase (fine-tuning) starts, a dashed line."""
    epochs = _column(history, "epoch")
    panels = [("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")),
              ("learning rate", ("lr",))]
    figure = new_figure(12.0, 3.4)
    phases = _column(history, "phase") if history and "phase" in history[0] else None
    second = epochs[np.argmax(phases == 2)] if phases is not None and (phases == 2).any() else None
    for i, (title, columns) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 3, i)
        for name in columns:
            values = _column(history, name) if history and name in history[0] else None
            if values is not None and not np.isnan(values).all():
                axes.plot(epochs, values, marker="o", markersize=3, label=name)
        if title == "learning rate":
            axes.set_yscale("log")
        if second is not None:
            axes.axvline(second - 0.5, color="grey", linestyle="--", linewidth=1)
            axes.text(second - 0.4, 0.97, "phase 2: fine-tuning", transform=axes.get_xaxis_transform(),
                      fontsize=7, va="top", color="grey")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        if len(columns) > 1:
            axes.legend(fontsize=8)
    # the labels are numbers of a few digits: fixed margins fit them
    figure.subplots_adjust(left=0.055, right=0.99, bottom=0.15, top=0.91, wspace=0.22)
    return save(figure, path, fit=False)
