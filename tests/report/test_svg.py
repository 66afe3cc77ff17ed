"""The report's figures drawn as SVG: well-formed documents whose lines,
cells and labels carry the run's numbers."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from portaclass.report import svg

# Drawing needs no backend: run once, on torch.
pytestmark = pytest.mark.one_backend

NS = "{http://www.w3.org/2000/svg}"


def _parse(text: str) -> ET.Element:
    root = ET.fromstring(text)  # raises on anything not well-formed (an unescaped "<" or "&")
    assert root.tag == f"{NS}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [element.text for element in root.iter(f"{NS}text")]


def _history(epochs: int, phase_two_from: int | None = None) -> list[dict]:
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append({"epoch": epoch, "phase": 2 if phase_two_from and epoch >= phase_two_from else 1,
                     "loss": 2.0 / epoch, "val_loss": 2.5 / epoch, "accuracy": 0.5 + epoch / 40,
                     "val_accuracy": 0.4 + epoch / 50, "lr": 1e-3 * 0.5 ** epoch})
    return rows


def test_nice_ticks_are_round_and_cover_the_range():
    for low, high in ((0.013, 2.47), (0.0, 1.0), (0.48, 0.52), (3.0, 3.0), (-1.5, 7.25)):
        ticks = svg.nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high
        steps = np.diff(ticks)
        np.testing.assert_allclose(steps, steps[0])
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)
        assert 2 <= len(ticks) <= 8


def test_curves_draw_each_series_through_its_values():
    root = _parse(svg.training_curves(_history(6)))
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 5  # loss, val_loss, accuracy, val_accuracy, lr
    for line in lines:
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        assert len(points) == 6
        xs = [x for x, _ in points]
        assert xs == sorted(xs)  # one point per epoch, left to right
    loss, _val_loss, accuracy, _val_accuracy, lr = lines
    # SVG's y grows downwards: a falling loss and learning rate climb down, a rising accuracy up
    ys = [float(p.split(",")[1]) for p in loss.get("points").split()]
    assert ys == sorted(ys)
    ys = [float(p.split(",")[1]) for p in accuracy.get("points").split()]
    assert ys == sorted(ys, reverse=True)
    lr_ys = [float(p.split(",")[1]) for p in lr.get("points").split()]
    np.testing.assert_allclose(np.diff(lr_ys), np.diff(lr_ys)[0], rtol=1e-2)  # halving: even steps on a log axis
    texts = _texts(root)
    assert {"loss", "accuracy", "learning rate", "val_loss", "val_accuracy"} <= set(texts)
    assert "1e-3" in texts and "phase 2: fine-tuning" not in texts
    assert not root.findall(f".//{NS}line[@class='phase-2']")


def test_legends_sit_where_no_point_is():
    """Accuracy climbs to the top right, where a legend goes by default:
    there it would hide the last epochs."""
    history = _history(10)
    for row in history:
        row["accuracy"], row["val_accuracy"] = 0.2 + row["epoch"] * 0.08, 0.15 + row["epoch"] * 0.08
    root = _parse(svg.training_curves(history))
    legends = root.findall(f"{NS}rect[@class='legend']")
    assert len(legends) == 2  # loss and accuracy; the learning rate is one line
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in root.findall(f"{NS}circle")]
    for legend in legends:
        x, y = float(legend.get("x")), float(legend.get("y"))
        w, h = float(legend.get("width")), float(legend.get("height"))
        assert not [(cx, cy) for cx, cy in dots if x <= cx <= x + w and y <= cy <= y + h]


def test_a_missing_value_breaks_the_line_and_phase_two_is_marked():
    history = _history(6, phase_two_from=4)
    history[2]["val_loss"] = ""  # epoch 3 not validated
    root = _parse(svg.training_curves(history))
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 6  # val_loss is two lines: epochs 1-2 and 4-6
    assert [len(line.get("points").split()) for line in lines[1:3]] == [2, 3]
    assert len(root.findall(f".//{NS}line[@class='phase-2']")) == 3  # one per panel
    assert "phase 2: fine-tuning" in _texts(root)


def test_a_one_epoch_run_still_draws():
    root = _parse(svg.training_curves(_history(1)))
    assert not root.findall(f"{NS}polyline")
    assert len(root.findall(f"{NS}circle")) == 5
    assert "1" in _texts(root)


def test_confusion_matrix_cells_hold_the_counts_coloured_by_row_share():
    matrix = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])
    names = ["cat", "<dog & fox>", "owl"]
    root = _parse(svg.confusion_matrix(matrix, names))
    cells = root.findall(f"{NS}rect[@class='cell']")
    counts = [int(t.text) for t in root.findall(f"{NS}text[@class='count']")]
    assert len(cells) == 9 and counts == matrix.ravel().tolist()
    fills = [cell.get("fill") for cell in cells]
    assert fills[6] == fills[7] == fills[8] == svg._blue(0.0)  # a class with no images stays white
    assert fills[4] == svg._blue(0.5) and fills[0] == svg._blue(0.8)
    assert "<dog & fox>" in _texts(root) and {"predicted", "true"} <= set(_texts(root))


def test_a_large_matrix_leaves_the_counts_out():
    classes = 30
    matrix = np.eye(classes, dtype=int) * 5
    root = _parse(svg.confusion_matrix(matrix, [f"class {i}" for i in range(classes)]))
    assert len(root.findall(f"{NS}rect[@class='cell']")) == classes ** 2
    assert not root.findall(f"{NS}text[@class='count']")
