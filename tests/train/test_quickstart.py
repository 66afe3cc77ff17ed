"""The quickstart: the run directory it writes, and the accuracy it promises."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from portaclass.train.quickstart import run_quickstart
from tests.helpers import on_each_backend, run_cli


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    return run_quickstart(out=str(tmp_path_factory.mktemp("qs") / "run"), epochs=2, quiet=True)


def test_run_directory_holds_model_history_metrics_config_env(short_run, backend_name):
    run = short_run.run_dir
    assert {p.name for p in run.iterdir()} >= {
        "model.keras", "history.csv", "metrics.json", "config.json", "env.json", "checkpoints"
    }
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == backend_name and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["accuracy"] == pytest.approx(short_run.accuracy)
    env = json.loads((run / "env.json").read_text())
    assert env["backend"] == backend_name and env["devices"][0]["kind"] == "cpu"
    config = json.loads((run / "config.json").read_text())
    split = config["split"]
    assert split["train"] + split["test"] == 1797 and abs(split["test"] - 0.2 * 1797) < 10
    assert (run / "checkpoints" / "last.keras").exists()


def test_saved_model_loads_with_plain_keras_and_scores_the_same(short_run):
    from portaclass.data.builtin import load_digits
    from portaclass.data.split import split_stratified
    from portaclass.layout import to_model_layout

    model = keras.saving.load_model(short_run.run_dir / "model.keras")
    images, labels, _ = load_digits(32)
    test = split_stratified(labels, {"train": 0, "test": 0.2}, seed=0)["test"]
    x = to_model_layout(images[test].astype("float32") / 255.0)
    predicted = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).argmax(1)
    assert np.mean(predicted == labels[test]) == pytest.approx(short_run.accuracy)


def test_existing_run_folder_is_never_overwritten(short_run):
    from portaclass.errors import UsageError

    with pytest.raises(UsageError, match="already holds a run"):
        run_quickstart(out=str(short_run.run_dir), epochs=1, quiet=True)


@pytest.mark.cross
def test_quickstart_reaches_97_percent_on_every_backend(tmp_path):
    results = on_each_backend(
        lambda b: run_cli(["quickstart", "--quiet", "--out", str(tmp_path / b)], b, timeout=600))
    for backend, result in results.items():
        assert result.returncode == 0, f"{backend}: {result.stderr[-2000:]}"
        assert result.stdout.count("\n") == 1, result.stdout  # --quiet: the final line only
        metrics = json.loads((tmp_path / backend / "metrics.json").read_text())
        assert metrics["backend"] == backend
        assert metrics["accuracy"] >= 0.97, f"{backend}: {metrics['accuracy']:.4f}"
