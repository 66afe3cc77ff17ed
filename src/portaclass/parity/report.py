"""``ParityReport``: what ``portaclass parity`` found for one model, as a
JSON document (``to_dict``) or Rich tables (``print_report``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from portaclass.parity.compare import (
    MATRIX_TOLERANCE,
    NOISE_CALIBRATED,
    NOISE_MARGIN,
    TOLERANCES,
    Difference,
)


@dataclass
class ParityReport:
    """One model's comparison across backends.

    ``differences``: per backend (the reference left out), one ``Difference``
    per quantity of ``TOLERANCES``. ``matrix[saved_on][loaded_on]``: the
    largest difference of the probabilities of a stepped model saved on one
    backend and run on another from its own backend's, or the error.
    ``divergence[backend][mode]``: ``(layer, relative difference)`` of the
    first layer that differs, or None. ``failures``: backends whose process
    crashed, with the reason. ``neutralised``: Dropout-like layers (and
    their rates) set to 0 for the training-mode passes and the step."""

    model: str
    options: dict
    image_size: int
    batch_size: int
    seed: int
    learning_rate: float
    backends: tuple[str, ...]
    neutralised: dict = field(default_factory=dict)
    differences: dict[str, list[Difference]] = field(default_factory=dict)
    matrix: dict[str, dict] = field(default_factory=dict)
    divergence: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, case, key: str, backends, batch_size: int, job: dict, measured: dict) -> ParityReport:
        """A report of ``case`` (``key`` in the workers' results) with what
        the backends measured (``measured``: per backend, its worker's
        result or the reason it failed)."""
        results = {b: r[key] for b, r in measured.items() if not isinstance(r, str)}
        first = next(iter(results.values()), {})
        return cls(model=case.model, options=case.options, image_size=case.image_size,
                   batch_size=batch_size, seed=job["seed"], learning_rate=job["learning_rate"],
                   backends=tuple(backends),
                   neutralised=first.get("neutralised", {}),
                   failures={b: r for b, r in measured.items() if isinstance(r, str)},
                   seconds={b: round(r["seconds"], 2) for b, r in results.items()})

    @property
    def reference(self) -> str:
        return self.backends[0]

    def disagreeing(self) -> list[str]:
        """Backends with a quantity beyond tolerance."""
        return [b for b, found in self.differences.items() if not all(d.passed for d in found)]

    def matrix_failures(self) -> list[tuple[str, str]]:
        """(saved on, loaded on) pairs whose predictions differ beyond tolerance or failed."""
        return [(source, target) for source, row in self.matrix.items() for target, value in row.items()
                if isinstance(value, str) or not value <= MATRIX_TOLERANCE]

    @property
    def passed(self) -> bool:
        return not (self.failures or self.disagreeing() or self.matrix_failures())

    def problems(self) -> list[str]:
        """One line per thing beyond tolerance, saying where."""
        lines = [f"{b} failed: {reason}" for b, reason in self.failures.items()]
        for backend, found in self.differences.items():
            for d in found:
                if not d.passed:
                    where = f" (worst: {d.worst})" if d.worst else ""
                    lines.append(f"{backend} vs {self.reference}: {d.quantity} differ by "
                                 f"{d.relative:.2e} relative > {d.allowed:.1e} allowed{where}")
        for backend, modes in self.divergence.items():
            if "error" in modes:
                lines.append(f"{backend}: could not run the model layer by layer: {modes['error']}")
                continue
            for mode, found in modes.items():
                lines.append(f"{backend}: {_divergence_text(mode, found)}")
        for source, target in self.matrix_failures():
            value = self.matrix[source][target]
            shown = (value if isinstance(value, str) else
                     f"max |difference| {value:.2e} > {MATRIX_TOLERANCE:.0e}")
            lines.append(f"saved on {source}, loaded on {target}: {shown}")
        return lines

    def notes(self) -> list[str]:
        """What the user should know to read the numbers."""
        lines = [f"logits: the softmax head's input times its kernel, plus its bias (training mode: those "
                 f"of the step's own forward pass); relative = max|a - b| / max|b| per tensor, b on "
                 f"{self.reference}",
                 f"a training-mode quantity passes up to its tolerance, or up to {NOISE_MARGIN:g} x its "
                 f"rounding noise (how far {self.reference} moves from itself when the input gets "
                 "rounding-sized noise) where that is larger"]
        noisy = [d.quantity for d in next(iter(self.differences.values()), []) if d.noise > d.tolerance]
        if noisy:
            lines.append(f"{', '.join(noisy)}: rounding noise alone exceeds the tolerance here (ReLU units "
                         "within rounding of zero flip, BatchNormalization divides by the spread of few "
                         "values): a larger --image-size or --batch-size gives a sharper check")
        if self.neutralised:
            layers = ", ".join(f"{name} ({rate:g})" for name, rate in self.neutralised.items())
            lines.append(f"Dropout-like layers set to rate 0 for the training step (restored before saving): "
                         f"{layers}")
        return lines

    def to_dict(self) -> dict:
        return {
            "model": self.model, "options": self.options, "image_size": self.image_size,
            "batch_size": self.batch_size, "seed": self.seed, "learning_rate": self.learning_rate,
            "backends": list(self.backends), "reference": self.reference,
            "neutralised": self.neutralised, "passed": self.passed,
            "differences": {b: {d.quantity: d.to_dict() for d in found}
                            for b, found in self.differences.items()},
            "matrix": {s: {t: _json_number(v) for t, v in row.items()} for s, row in self.matrix.items()},
            "matrix_tolerance": MATRIX_TOLERANCE,
            "first_divergent_layer": {b: _divergence_json(modes) for b, modes in self.divergence.items()},
            "failures": self.failures, "seconds": self.seconds,
            "problems": self.problems(), "notes": self.notes(),
        }


def _divergence_json(modes: dict) -> dict:
    if "error" in modes:
        return modes
    return {mode: {"layer": found[0], "relative": _json_number(found[1])} if found else None
            for mode, found in modes.items()}


def _divergence_text(mode: str, found) -> str:
    if found is not None:
        layer, relative = found
        return f"first layer whose {mode}-mode output differs: {layer} ({relative:.2e} relative)"
    if mode == "training":
        return "every layer's training-mode output agrees: the difference is in the backward pass or the step"
    return "every layer's inference-mode output agrees"


def _json_number(value):
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    return value


def print_report(report: ParityReport, console=None) -> None:
    """The differences and the portability matrix as Rich tables (what is
    beyond tolerance in red), then the problems and the notes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    options = "".join(f", {k}={v}" for k, v in report.options.items())
    table = Table(title=f"{report.model}{options} at {report.image_size}x{report.image_size}, batch "
                  f"{report.batch_size}, seed {report.seed}: relative difference from {report.reference} "
                  "(max abs)")
    table.add_column("quantity")
    table.add_column("tolerance", justify="right")
    table.add_column(f"{report.reference}'s\nrounding noise", justify="right")
    others = [b for b in report.backends[1:] if b in report.differences]
    for backend in others:
        table.add_column(backend, justify="right")
    for quantity, tolerance in TOLERANCES.items():
        found = [next(d for d in report.differences[b] if d.quantity == quantity) for b in others]
        noise = f"{found[0].noise:.1e}" if found and quantity in NOISE_CALIBRATED else "-"
        table.add_row(quantity, f"{tolerance:.0e}", noise, *(_difference_cell(d) for d in found))
    console.print(table)
    if report.matrix:
        matrix = Table(title="portability: stepped model saved on (row), loaded on (column)",
                       caption=f"max |difference| of probabilities from the saving backend's own; "
                       f"tolerance {MATRIX_TOLERANCE:.0e}")
        matrix.add_column("saved on")
        for target in report.matrix:
            matrix.add_column(target, justify="right")
        for source, row in report.matrix.items():
            matrix.add_row(source, *(_matrix_cell(row[t]) for t in report.matrix))
        console.print(matrix)
    for line in report.problems():
        console.print(f"[red]{line}[/red]", highlight=False)
    for line in report.notes():
        console.print(line, highlight=False)


def _difference_cell(d: Difference) -> str:
    text = f"{d.relative:.1e} ({d.max_abs:.1e})"
    if d.passed:
        return text
    return f"[red]{text}[/red]" + (f"\n{d.worst}" if d.worst else "")


def _matrix_cell(value) -> str:
    if isinstance(value, str):
        return f"[red]{value}[/red]"
    text = f"{value:.1e}"
    return text if value <= MATRIX_TOLERANCE else f"[red]{text}[/red]"
