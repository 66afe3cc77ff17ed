"""What ``portaclass bench`` leaves behind: ``bench.json``, a bar chart
(``bench.png``) and the Rich table shaped like the seed article's
framework comparison (seconds per step, images/s, memory, per batch size),
with every row's step time as a ratio to the fastest native PyTorch row."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from portaclass.report.plots import new_figure, save

COLUMNS = ("row", "batch", "1st step s", "s/step", "img/s", "x native", "GFLOP/s", "% matmul",
           "predict img/s", "peak GiB")


def add_ratios(report) -> None:
    """Each result's ``ratio_to_native``: its step time over the fastest
    native PyTorch row's at the same batch size (below 1: faster); and
    ``share_of_matmul_peak``: its training FLOP rate over the machine's
    float32 matmul rate."""
    peak = report.machine.get("matmul_gflops_per_s")
    for result in report.results:
        native = report.fastest_native(result["batch_size"])
        step, rate = result.get("step_time_s"), result.get("train_gflops_per_s")
        result["ratio_to_native"] = step / native["step_time_s"] if native and step else None
        result["share_of_matmul_peak"] = rate / peak if rate and peak and result.get("device") == "cpu" else None


def write_outputs(report, folder: Path) -> None:
    """bench.json and bench.png in ``folder``, each written whole or not at all."""
    add_ratios(report)
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / ".bench.json.partial"
    staged.write_text(json.dumps(report.as_json(), indent=1))
    os.replace(staged, folder / "bench.json")
    plot_bench(report, folder / "bench.png")


def _text(value, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def table_rows(report) -> list[tuple[str, ...]]:
    """The table's cells, one tuple per result."""
    rows = []
    for r in report.results:
        if "error" in r:
            rows.append((r["backend"], str(r["batch_size"]), "failed", *[""] * 7))
            continue
        memory = r["peak_memory_bytes"] / 2**30
        rows.append((r["backend"], str(r["batch_size"]), _text(r.get("compile_s"), ".2f"),
                     _text(r.get("step_time_s"), ".3f"), _text(r.get("images_per_s"), ".0f"),
                     _text(r.get("ratio_to_native"), ".2f"), _text(r.get("train_gflops_per_s"), ".0f"),
                     _text(r.get("share_of_matmul_peak") and 100 * r["share_of_matmul_peak"], ".0f"),
                     _text(r.get("predict_images_per_s"), ".0f"),
                     f"{memory:.2f}" + (" GPU" if r["device"] == "gpu" else "")))
    return rows


def print_table(report, console=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    opts = report.options
    title = (f"{opts.model} at {opts.image_size} px, {'real data' if opts.real_data else 'synthetic batch'}, "
             f"median of {opts.steps} steps x {opts.rounds} rounds on {report.machine['cpu']} "
             f"({report.machine['cores']} cores)")
    table = Table(title=title, box=box.SIMPLE_HEAD, caption="peak GiB: process RSS on the CPU, device memory on a GPU; "
                  "x native: step time over the fastest native PyTorch row's; GFLOP/s: "
                  "6 x the model's multiply-adds per image x images/s; % matmul: of NumPy's "
                  f"float32 matmul rate here ({report.machine.get('matmul_gflops_per_s') or 0:.0f} GFLOP/s)")
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for cells in table_rows(report):
        table.add_row(*cells)
    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: no reason to wrap at 80
            console = Console(width=120)
    console.print(table)
    for r in report.results:
        if "error" in r:
            console.print(f"failed: {r['backend']} at batch {r['batch_size']}: {r['error']}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)


def plot_bench(report, path: Path) -> Path:
    """Training images/s per row, one group of bars per batch size (predict
    images/s as a second panel: the onnxruntime row only predicts)."""
    sizes = report.options.batch_sizes
    rows = list(dict.fromkeys(r["backend"] for r in report.results))
    figure = new_figure(12, 4)
    panels = figure.subplots(1, 2)
    width = 0.8 / max(len(rows), 1)
    for panel, key, title in ((panels[0], "images_per_s", "training images/s"),
                              (panels[1], "predict_images_per_s", "predict images/s")):
        for index, row in enumerate(rows):
            values = [next((r.get(key) or 0 for r in report.results
                            if r["backend"] == row and r["batch_size"] == size), 0) for size in sizes]
            panel.bar(np.arange(len(sizes)) + index * width, values, width, label=row)
        panel.set_xticks(np.arange(len(sizes)) + width * (len(rows) - 1) / 2)
        panel.set_xticklabels([f"batch {size}" for size in sizes])
        panel.set_title(title)
    panels[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle(f"portaclass bench: {report.options.model} at {report.options.image_size} px")
    return save(figure, path)
