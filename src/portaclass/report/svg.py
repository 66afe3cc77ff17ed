"""The report's two figures as SVG text: training curves and the confusion
matrix.

Drawn by hand, not with matplotlib: importing matplotlib and laying out its
figures was 0.35 s of the 0.6 s report every training run writes, and a
chart of a few dozen epochs is a handful of lines, ticks and labels. SVG
also stays sharp at any zoom and its text can be selected. ``portaclass
evaluate`` still writes confusion_matrix.png with matplotlib
(``report/plots.py``): a file users put in slides.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c")
INK, GRID, MUTED = "#222", "#e5e5e5", "#888"
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'
# Above this many classes the cells are too small for their counts.
ANNOTATE_UP_TO = 20
# The confusion matrix's white-to-blue ramp (matplotlib's "Blues", 5 stops).
BLUES = ((247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107))


def _document(width: float, height: float, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT}>'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>')


def _text(x: float, y: float, text, *, size: int = 11, anchor: str = "middle", fill: str = INK,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'{extra}>{escape(str(text))}</text>')


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart)
    covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * 0.999)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _tick_label(value: float) -> str:
    return f"{value:.4g}"


class _Panel:
    """One chart's plot area: data -> pixel coordinates, axes, ticks."""

    def __init__(self, left: float, top: float, width: float, height: float,
                 x_range: tuple[float, float], y_ticks: list[float], log: bool):
        self.left, self.top, self.width, self.height = left, top, width, height
        self.x_low, self.x_high = x_range
        self.log = log
        self.y_ticks = y_ticks
        values = [math.log10(t) for t in y_ticks] if log else y_ticks
        self.y_low, self.y_high = values[0], values[-1]

    def x(self, value: float) -> float:
        span = (self.x_high - self.x_low) or 1.0
        return self.left + (value - self.x_low) / span * self.width

    def y(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        span = (self.y_high - self.y_low) or 1.0
        return self.top + self.height - (value - self.y_low) / span * self.height


def _y_ticks(values: np.ndarray, log: bool) -> list[float]:
    finite = values[np.isfinite(values) & ((values > 0) if log else True)]
    if finite.size == 0:
        return [0.0, 1.0] if not log else [0.1, 1.0]
    low, high = float(finite.min()), float(finite.max())
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        last = max(last, first + 1)
        return [10.0 ** k for k in range(first, last + 1)]
    return nice_ticks(low, high)


def _polylines(panel: _Panel, epochs: np.ndarray, values: np.ndarray, color: str) -> list[str]:
    """The series as lines with a dot per epoch, broken where a value is missing."""
    parts, run = [], []
    for epoch, value in zip(epochs, values):
        usable = math.isfinite(value) and (value > 0 or not panel.log)
        if usable:
            run.append((panel.x(epoch), panel.y(value)))
        if (not usable or epoch == epochs[-1]) and run:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"/>')
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{color}"/>' for x, y in run)
            run = []
    return parts


def _column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(row[name]) if row.get(name) not in (None, "") else np.nan for row in rows])


PANELS = (("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")),
          ("learning rate", ("lr",)))


def training_curves(history: list[dict]) -> str:
    """Loss, accuracy and learning rate per epoch (history.csv rows), the
    learning rate on a log scale; where a transfer run's second phase
    (fine-tuning) starts, a dashed line."""
    width, height, panel_width, gap = 1080.0, 306.0, 290.0, 64.0
    epochs = _column(history, "epoch")
    phases = _column(history, "phase") if history and "phase" in history[0] else None
    second = float(epochs[np.argmax(phases == 2)]) if phases is not None and (phases == 2).any() else None
    x_low, x_high = float(np.nanmin(epochs)), float(np.nanmax(epochs))
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    x_ticks = [t for t in nice_ticks(x_low, x_high, 6) if x_low <= t <= x_high and float(t).is_integer()]
    body = []
    for i, (title, columns) in enumerate(PANELS):
        series = [(name, _column(history, name)) for name in columns if history and name in history[0]]
        series = [(name, values) for name, values in series if not np.isnan(values).all()]
        log = title == "learning rate"
        everything = np.concatenate([values for _, values in series]) if series else np.array([])
        panel = _Panel(gap + i * (panel_width + gap), 30, panel_width, 220, (x_low, x_high),
                       _y_ticks(everything, log), log)
        body.append(_text(panel.left + panel_width / 2, 19, title, size=14))
        for tick in panel.y_ticks:
            y = panel.y(tick)
            body.append(f'<line x1="{panel.left:.1f}" x2="{panel.left + panel_width:.1f}" y1="{y:.1f}" '
                        f'y2="{y:.1f}" stroke="{GRID}"/>')
            label = f"1e{round(math.log10(tick))}" if log else _tick_label(tick)
            body.append(_text(panel.left - 6, y + 4, label, size=11, anchor="end"))
        bottom = panel.top + panel.height
        for tick in x_ticks:
            body.append(_text(panel.x(tick), bottom + 16, f"{tick:g}", size=11))
        body.append(_text(panel.left + panel_width / 2, bottom + 34, "epoch", size=12))
        body.append(f'<rect x="{panel.left:.1f}" y="{panel.top:.1f}" width="{panel_width:.1f}" '
                    f'height="{panel.height:.1f}" fill="none" stroke="{INK}" stroke-width="0.8"/>')
        if second is not None:
            x = panel.x(second - 0.5)
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{panel.top:.1f}" y2="{bottom:.1f}" '
                        f'stroke="{MUTED}" stroke-dasharray="4 3" class="phase-2"/>')
            body.append(_text(x + 4, bottom - 6, "phase 2: fine-tuning", size=10, anchor="start",
                              fill=MUTED))
        for j, (_, values) in enumerate(series):
            body.extend(_polylines(panel, epochs, values, COLORS[j]))
        if len(series) > 1:  # a legend: which line is which, in the corner the lines leave free
            body.extend(_legend(panel, epochs, series))
    return _document(width, height, body)


def _legend(panel: _Panel, epochs: np.ndarray, series: list) -> list[str]:
    width, height = 112.0, 8.0 + 16.0 * len(series)
    points = [(panel.x(e), panel.y(v)) for _, values in series for e, v in zip(epochs, values)
              if math.isfinite(v) and (v > 0 or not panel.log)]
    corners = [(panel.left + panel.width - width - 4, panel.top + 4),  # top right first, as matplotlib
               (panel.left + panel.width - width - 4, panel.top + panel.height - height - 4),
               (panel.left + 4, panel.top + 4), (panel.left + 4, panel.top + panel.height - height - 4)]
    left, top = min(corners, key=lambda c: sum(c[0] - 6 <= x <= c[0] + width + 6 and c[1] - 6 <= y <= c[1] + height + 6
                                               for x, y in points))
    parts = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" fill="white" '
             f'fill-opacity="0.85" stroke="{GRID}" class="legend"/>']
    for j, (name, _) in enumerate(series):
        y = top + 16 * (j + 1)
        parts.append(f'<line x1="{left + 6:.1f}" x2="{left + 24:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                     f'stroke="{COLORS[j]}" stroke-width="2"/>')
        parts.append(_text(left + 29, y, name, size=11, anchor="start"))
    return parts


def _blue(share: float) -> str:
    position = min(max(share, 0.0), 1.0) * (len(BLUES) - 1)
    low = min(int(position), len(BLUES) - 2)
    t = position - low
    rgb = [round(a + (b - a) * t) for a, b in zip(BLUES[low], BLUES[low + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def row_shares(matrix: np.ndarray) -> np.ndarray:
    """Each count as a share of its row (its true class); 0 in an empty row."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)


def confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> str:
    """Counts with truth on the rows, predictions on the columns; each row
    coloured by its share, so small classes read as clearly as large ones."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    cell = max(12.0, min(90.0, 560.0 / max(n, 1)))
    label_room = 8 + 6.5 * min(24, max((len(str(name)) for name in class_names), default=1))
    rotate = n > 4
    left, top = label_room + 28, 16
    bottom_room = (label_room * 0.75 if rotate else 20) + 28
    width, height = left + n * cell + 16, top + n * cell + bottom_room
    shares = row_shares(matrix)
    body = []
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                        f'fill="{_blue(shares[i, j])}" class="cell"/>')
            if n <= ANNOTATE_UP_TO:
                body.append(_text(x + cell / 2, y + cell / 2 + 4, int(matrix[i, j]), size=11,
                                  fill="white" if shares[i, j] > 0.5 else "black", extra='class="count"'))
    size = 11 if n <= 30 else 8
    for k, name in enumerate(class_names):
        name = str(name) if len(str(name)) <= 24 else str(name)[:23] + "…"
        center = left + k * cell + cell / 2
        body.append(_text(left - 6, top + k * cell + cell / 2 + 4, name, size=size, anchor="end"))
        if rotate:
            y = top + n * cell + 10
            body.append(_text(center, y, name, size=size, anchor="end",
                              extra=f'transform="rotate(-45 {center:.1f} {y:.1f})"'))
        else:
            body.append(_text(center, top + n * cell + 16, name, size=size))
    body.append(_text(left + n * cell / 2, height - 8, "predicted", size=12))
    middle = top + n * cell / 2
    body.append(_text(14, middle, "true", size=12, extra=f'transform="rotate(-90 14 {middle:.1f})"'))
    return _document(width, height, body)
