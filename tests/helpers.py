"""The fresh-interpreter harness for tests (``portaclass.backend_process``),
under the names the tests use."""

from __future__ import annotations

from portaclass.backend_process import (
    on_each_backend,
    run_cli,
    run_python,
    run_python_json,
    subprocess_env,
)
from portaclass.config import BACKENDS

__all__ = ["BACKENDS", "invoke_cli", "on_each_backend", "run_cli", "run_python", "run_python_json",
           "preview_spy", "saved_model_accuracy", "subprocess_env"]


def saved_model_accuracy(run_dir) -> float:
    """Accuracy of a run's model.keras, loaded with plain Keras, on the run's
    held-out split read back through ``Run`` (what a later evaluate sees)."""
    import keras
    import numpy as np

    from portaclass import layout
    from portaclass.data import make_pipeline
    from portaclass.run import Run

    run = Run.open(run_dir)
    model = keras.saving.load_model(run.model_path)
    height, width, channels = run.input_shape
    batches = make_pipeline(run.split(), 64, preprocessing=run.preprocessing, image_size=(height, width),
                            channels=channels, shuffle=False,
                            channels_first=layout.data_format() == layout.CHANNELS_FIRST)
    hits = total = 0
    for i in range(len(batches)):
        x, y = batches[i]
        predicted = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).argmax(1)
        truth = y.argmax(1) if y.ndim == 2 else y
        hits += int(np.sum(predicted == truth))
        total += len(truth)
    return hits / total


def preview_spy(monkeypatch) -> list:
    """The datasets the report hands ``write_preview`` (which still runs)."""
    from portaclass.report import preview

    real, handed = preview.write_preview, []

    def spy(data_spec, **options):
        handed.append(data_spec)
        return real(data_spec, **options)

    monkeypatch.setattr(preview, "write_preview", spy)
    return handed


def invoke_cli(args: list[str], **env: str):
    """``portaclass ARGS`` in this process (Typer's test runner): the
    commands' behaviour without starting an interpreter and keras again.
    ``env`` is set for the call (``COLUMNS="200"``: Rich tables that don't
    fold long paths). Returns the result (``exit_code``, ``stdout``, ``stderr``)."""
    from typer.testing import CliRunner

    from portaclass.cli import app

    return CliRunner().invoke(app, args, env=env or None)
