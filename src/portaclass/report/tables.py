"""Rich tables the CLI prints for evaluate and predict (stdout)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _percent(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def evaluation_table(evaluation, console: Console | None = None) -> None:
    """The per-class table, then the summary: plain and TTA side by side."""
    console = console or Console()
    plain, tta = evaluation.scores, evaluation.tta_scores
    table = Table(title=f"{evaluation.data}: {evaluation.count} images ({evaluation.backend})")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in plain.per_class:
        table.add_row(row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                      f"{row['f1']:.3f}", str(row["support"]))
    table.add_section()
    for average in ("macro", "weighted"):
        values = getattr(plain, average)
        table.add_row(f"{average} avg", f"{values['precision']:.3f}", f"{values['recall']:.3f}",
                      f"{values['f1']:.3f}", str(evaluation.count))
    console.print(table)

    summary = Table(show_header=True, box=None)
    summary.add_column("")
    summary.add_column("plain", justify="right")
    if tta:
        summary.add_column("with TTA", justify="right")
    rows = [("accuracy", lambda s: _percent(s.accuracy))]
    if plain.top_k:
        rows.append((f"top-{plain.top_k} accuracy", lambda s: _percent(s.top_k_accuracy)))
    rows += [("macro F1", lambda s: f"{s.macro['f1']:.3f}"),
             ("log loss", lambda s: f"{s.log_loss:.4f}"),
             ("calibration error (ECE)", lambda s: f"{s.expected_calibration_error:.4f}")]
    for name, show in rows:
        summary.add_row(name, show(plain), *([show(tta)] if tta else []))
    console.print(summary)
    if evaluation.skipped:
        console.print(f"{len(evaluation.skipped)} images could not be read and were left out: "
                      + ", ".join(name for name, _ in evaluation.skipped[:5])
                      + (" ..." if len(evaluation.skipped) > 5 else ""))
    if evaluation.files:
        console.print(f"wrote {evaluation.files['json']} and {evaluation.files['confusion_matrix']}")


def prediction_table(predictions, console: Console | None = None) -> None:
    """One row per image: the top classes with their probabilities, or the error."""
    console = console or Console()
    k = max((len(p.classes) for p in predictions), default=0)
    table = Table()
    table.add_column("image", overflow="fold")
    for i in range(k):
        table.add_column(f"#{i + 1}")
    table.add_column("error", style="red")
    for p in predictions:
        cells = [f"{c} {prob:.1%}" for c, prob in zip(p.classes, p.probabilities)]
        cells += [""] * (k - len(cells))
        table.add_row(p.name, *cells, p.error or "")
    console.print(table)
