"""Figures written to files, drawn with matplotlib's Agg canvas (no display
needed, the user's pyplot backend left alone): ``evaluate``'s
confusion_matrix.png, and the canvas helpers ``bench`` uses. The report's
own figures are SVG (``report/svg.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from portaclass.report.svg import ANNOTATE_UP_TO, row_shares


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path, dpi: int = 90):
    """PNG to ``path``, or into a file object."""
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
    shares = row_shares(matrix)
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
