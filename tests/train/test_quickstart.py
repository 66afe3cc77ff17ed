"""The quickstart: the run directory it writes, and the accuracy it promises."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from portaclass.train.quickstart import run_quickstart
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The quickstart exactly as `portaclass quickstart` runs it (default epochs)."""
    return run_quickstart(out=str(tmp_path_factory.mktemp("qs") / "run"), quiet=True)


def test_quickstart_reaches_97_percent(full_run, backend_name):
    assert full_run.backend == backend_name
    assert full_run.accuracy >= 0.97, f"{backend_name}: {full_run.accuracy:.4f}"


def test_run_directory_holds_model_history_metrics_config_env(full_run, backend_name):
    run = full_run.run_dir
    assert {p.name for p in run.iterdir()} >= {
        "model.keras", "history.csv", "metrics.json", "config.json", "env.json", "checkpoints"
    }
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == backend_name and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["accuracy"] == pytest.approx(full_run.accuracy)
    env = json.loads((run / "env.json").read_text())
    assert env["backend"] == backend_name and env["devices"][0]["kind"] == "cpu"
    config = json.loads((run / "config.json").read_text())
    split = config["split"]
    assert split["train"] + split["test"] == 1797 and abs(split["test"] - 0.2 * 1797) < 10
    assert (run / "checkpoints" / "last.keras").exists()


def test_saved_model_loads_with_plain_keras_and_scores_the_same(full_run):
    from portaclass.data.builtin import load_digits
    from portaclass.data.split import split_stratified
    from portaclass.layout import to_model_layout

    model = keras.saving.load_model(full_run.run_dir / "model.keras")
    images, labels, _ = load_digits(32)
    test = split_stratified(labels, {"train": 0, "test": 0.2}, seed=0)["test"]
    x = to_model_layout(images[test].astype("float32") / 255.0)
    predicted = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).argmax(1)
    assert np.mean(predicted == labels[test]) == pytest.approx(full_run.accuracy)


def test_existing_run_folder_is_never_overwritten(full_run):
    from portaclass.errors import UsageError

    with pytest.raises(UsageError, match="already holds a run"):
        run_quickstart(out=str(full_run.run_dir), epochs=1, quiet=True)


def test_quiet_cli_prints_only_the_final_line(tmp_path, backend_name):
    result = run_cli(["quickstart", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")],
                     backend_name)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{backend_name}: held-out accuracy")
