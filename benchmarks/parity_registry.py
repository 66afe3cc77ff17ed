"""The figures of docs/parity.md: ``portaclass parity`` on every registry
model (or those named), in one run (one process per backend for all of
them), printed as a Markdown table, one row per model and backend.

    python benchmarks/parity_registry.py --size min --batch-size 4
    python benchmarks/parity_registry.py --size default --batch-size 8 --models resnet18,mobilenet_v2

Each cell is the relative difference from the reference backend (the first
of --backends); "noise" rows are the reference's own rounding noise, the
allowance of the training-mode columns (docs/parity.md).
"""

from __future__ import annotations

import argparse
import sys
import time

from portaclass.parity import run_parity_cases
from portaclass.parity.compare import TOLERANCES
from portaclass.parity.runner import ParityCase

SHORT = {"logits (inference)": "logits inf.", "logits (training)": "logits train.", "loss": "loss",
         "gradients": "gradients", "weights after one step": "weights"}


def cases(names: list[str], size: str) -> list[ParityCase]:
    from portaclass.models import get_spec

    chosen = []
    for name in names:
        preprocessing = get_spec(name).preprocessing
        chosen.append(ParityCase(name, max(preprocessing.min_input_size if size == "min" else
                                           preprocessing.input_size)))
    return chosen


def markdown(reports) -> str:
    header = ["model", "size", "backend", *SHORT.values(), "worst gradient", "matrix max", "passed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for report in reports:
        rows = {"noise": {d.quantity: d.noise for d in next(iter(report.differences.values()), [])}}
        rows.update({b: {d.quantity: d.relative for d in found} for b, found in report.differences.items()})
        worst = {b: next(d.worst for d in found if d.quantity == "gradients")
                 for b, found in report.differences.items()}
        matrix = max((v for row in report.matrix.values() for v in row.values() if isinstance(v, float)),
                     default=float("nan"))
        for backend, values in rows.items():
            cells = [f"{values[q]:.1e}" if backend != "noise" or q != "logits (inference)" else "-"
                     for q in TOLERANCES]
            label = f"{report.reference} noise" if backend == "noise" else f"{backend} vs {report.reference}"
            lines.append("| " + " | ".join([report.model, str(report.image_size), label, *cells,
                                            worst.get(backend, ""), f"{matrix:.0e}" if backend == "noise" else "",
                                            "" if backend == "noise" else _passed(report, backend)]) + " |")
    return "\n".join(lines)


def _passed(report, backend: str) -> str:
    """yes/no for one backend: its differences and its row and column of the matrix."""
    matrix = [(s, t) for s, t in report.matrix_failures() if backend in (s, t)]
    return "yes" if backend not in report.disagreeing() and not matrix else "**no**"


def main() -> None:
    from portaclass.models import list_models

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("min", "default"), default="min")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--models", default=",".join(list_models()))
    parser.add_argument("--backends", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    options = {"backends": args.backends} if args.backends else {}
    reports = run_parity_cases(cases(args.models.split(","), args.size), batch_size=args.batch_size,
                               log=lambda line: print(f"parity: {line}", file=sys.stderr), **options)
    print(markdown(reports))
    for report in reports:
        for line in report.problems():
            print(f"- {report.model}: {line}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
