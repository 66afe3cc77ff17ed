"""The quickstart: a train run with fixed options, the accuracy it promises,
and a run folder like any other run's."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from portaclass.layout import to_model_layout
from portaclass.run import Run
from portaclass.train.quickstart import QUICKSTART_EPOCHS, run_quickstart
from tests.helpers import on_each_backend, run_cli

SHORT_EPOCHS = 2


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """The quickstart's options and code path, for two epochs."""
    return run_quickstart(epochs=SHORT_EPOCHS, out=str(tmp_path_factory.mktemp("qs") / "run"), quiet=True)


@pytest.mark.cross
def test_quickstart_reaches_97_percent_on_every_backend(tmp_path):
    """`portaclass quickstart --quiet` as users run it, one process per
    backend side by side: the full 12 epochs, the accuracy it promises, and
    nothing on the terminal but the final line (no framework banners,
    warnings or log lines)."""
    results = on_each_backend(lambda b: run_cli(["quickstart", "--quiet", "--out", str(tmp_path / b)], b,
                                                timeout=900))
    for backend_name, result in results.items():
        assert result.returncode == 0, f"{backend_name}: {result.stderr[-2000:]}"
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{backend_name}: held-out accuracy")
        assert result.stderr == "", backend_name
        run = Run.open(tmp_path / backend_name)
        assert len(run.history()) == QUICKSTART_EPOCHS and run.metrics()["backend"] == backend_name
        accuracy = run.metrics()["accuracy"]
        assert accuracy >= 0.97, f"{backend_name}: {accuracy:.4f}"


@pytest.mark.one_backend  # every backend runs the full quickstart: the cross test above
def test_run_folder_is_a_train_run_scored_on_the_held_out_fifth(short_run, backend_name):
    run = Run.open(short_run.run_dir)
    assert run.command == "quickstart" and run.finished
    assert run.options["data"] == "digits" and run.options["model"] == "simple_cnn"
    assert run.input_shape == (32, 32, 1) and run.class_names == [str(i) for i in range(10)]
    counts = run.config["data"]["counts"]
    assert counts["train"] + counts["val"] == 1797 and abs(counts["val"] - 0.2 * 1797) < 10
    assert run.held_out == "val"
    history = run.history()
    assert [int(r["epoch"]) for r in history] == list(range(1, SHORT_EPOCHS + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    metrics = run.metrics()
    assert metrics["backend"] == backend_name and metrics["scored_on"] == "val"
    # the held-out split is the validation split: its last epoch's result is the score
    assert metrics["accuracy"] == pytest.approx(float(history[-1]["val_accuracy"]))
    assert run.env()["backend"] == backend_name
    assert (run.checkpoints / "last.keras").is_file()


@pytest.mark.one_backend  # every backend runs the full quickstart: the cross test above
def test_saved_model_loads_with_plain_keras_and_scores_the_same(short_run):
    run = Run.open(short_run.run_dir)
    model = keras.saving.load_model(run.model_path)
    held_out = run.split()
    assert len(held_out) == run.metrics()["images"]
    x = to_model_layout(held_out.images.astype("float32") / 255.0)
    predicted = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).argmax(1)
    assert np.mean(predicted == held_out.labels) == pytest.approx(short_run.accuracy, abs=1e-6)


@pytest.mark.one_backend  # every backend runs the full quickstart: the cross test above
def test_existing_run_folder_is_never_overwritten(short_run):
    from portaclass.errors import UsageError

    with pytest.raises(UsageError, match="already holds a run"):
        run_quickstart(out=str(short_run.run_dir), epochs=1, quiet=True)
