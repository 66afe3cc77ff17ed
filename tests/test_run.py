"""The run folder contract: what `train` writes, read back by the one reader
(``Run.open``), and the clear errors for folders that are not runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from portaclass.errors import RunError
from portaclass.models import get_spec
from portaclass.run import SCHEMA, Run
from portaclass.train.options import TrainOptions
from portaclass.train.runner import run_training

# The run folder is files and JSON, written and read the same way on every backend.
pytestmark = pytest.mark.one_backend


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """One epoch of simple_cnn on a folder of PNGs (a file dataset)."""
    from portaclass.data import write_shapes

    root = write_shapes(tmp_path_factory.mktemp("data") / "shapes", n_per_class=10, image_size=24)
    out = tmp_path_factory.mktemp("runs") / "folder"
    options = TrainOptions(data=str(root), image_size=16, epochs=1, report=False, batch_size=8, val_split=0.2,
                           test_split=0.2, out=str(out), quiet=True)
    return run_training(options, log=lambda line: None), root


def test_train_run_reads_back_through_one_reader(folder_run, backend_name):
    result, root = folder_run
    run = Run.open(result.run_dir)
    assert run.config["schema"] == SCHEMA and run.command == "train" and run.finished
    assert set(run.config) >= {"schema", "command", "portaclass", "created", "options", "data", "model"}
    assert run.class_names == ["circle", "square", "star", "triangle"]
    assert run.input_shape == (16, 16, 3)
    assert run.preprocessing == get_spec("simple_cnn").preprocessing
    assert run.held_out == "test" and run.metrics()["scored_on"] == "test"
    assert run.env()["backend"] == backend_name
    assert [int(r["epoch"]) for r in run.history()] == [1]


def test_held_out_split_is_the_very_files_held_out(folder_run):
    result, root = folder_run
    run = Run.open(result.run_dir)
    test = run.split()
    listed = (run.path / "splits" / "test.csv").read_text().splitlines()[1:]
    assert [f"{p.relative_to(root).as_posix()},{run.class_names[label]}"
            for p, label in zip(test.paths, test.labels)] == listed
    assert len(test) == run.metrics()["images"] == run.config["data"]["counts"]["test"]
    assert all(p.is_file() for p in test.paths)


def test_config_records_only_what_ran(folder_run):
    run = Run.open(folder_run[0].run_dir)
    options = run.options
    assert options["dropout"] == 0.2  # simple_cnn's head dropout, as built
    assert run.config["model"]["head_dropout"] == 0.2
    # no transfer: the transfer options did not apply
    assert options["unfreeze"] is None and options["fine_tune_lr"] is None
    assert options["base_batchnorm"] is None
    assert options["image_size"] == 16 and options["out"] == str(run.path)
    assert run.config["model"]["parameters"] > 0


def test_a_model_without_head_dropout_records_none(tmp_path):
    from portaclass.models import create_model
    from portaclass.models.builder import head_dropout

    # resnet18 has no head Dropout: a run of it must not claim the default 0.2
    assert head_dropout(create_model("resnet18", 3, (16, 16, 3), width=8)) is None
    options = TrainOptions(data="digits", image_size=16, channels=1, steps=2, report=False, dropout=0.0,
                           val_split=0.0, test_split=0.0, out=str(tmp_path / "r"), quiet=True)
    run = Run.open(run_training(options, log=lambda line: None).run_dir)
    assert run.options["dropout"] is None and run.config["model"]["head_dropout"] is None
    assert run.held_out is None and run.metrics()["accuracy"] is None
    with pytest.raises(RunError, match="no held-out split"):
        run.split()


def test_in_memory_builtin_split_is_rebuilt_exactly(tmp_path):
    options = TrainOptions(data="digits", image_size=16, channels=1, epochs=1, val_split=0.1, report=False,
                           test_split=0.1, out=str(tmp_path / "d"), quiet=True)
    run = Run.open(run_training(options, log=lambda line: None).run_dir)
    test = run.split("test")
    from portaclass.data import load_dataset

    again = load_dataset("digits", 16, channels=1, val_split=0.1, test_split=0.1, seed=0).test
    assert np.array_equal(test.images, again.images) and np.array_equal(test.labels, again.labels)


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path):
    with pytest.raises(RunError, match="no such folder"):
        Run.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        Run.open(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        Run.open(tmp_path / "broken")


def test_a_newer_schema_is_refused_not_misread(folder_run, tmp_path):
    config = json.loads((folder_run[0].run_dir / "config.json").read_text())
    config["schema"] = SCHEMA + 1
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="newer portaclass"):
        Run.open(tmp_path / "future")


def test_runs_from_before_the_schema_still_read(tmp_path):
    """config.json as train wrote it before the contract was versioned."""
    legacy = {"command": "train", "data": "shapes", "model": "simple_cnn", "image_size": 24,
              "channels": 3, "class_names": ["a", "b"], "seed": 0,
              "preprocessing": {"input_size": [32, 32], "scale": 0.5}}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(legacy))
    run = Run.open(tmp_path / "old")
    assert run.class_names == ["a", "b"] and run.input_shape == (24, 24, 3)
    assert run.preprocessing.scale == 0.5 and run.options["data"] == "shapes"


def test_history_gains_columns_without_losing_rows(tmp_path):
    run = Run.create(tmp_path / "h")
    run.append_history({"epoch": 1, "loss": 1.0})
    run.append_history({"epoch": 2, "loss": 0.5, "phase": 2})
    rows = run.history()
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["phase"] == "" and rows[1]["phase"] == "2"
    assert not list(run.path.glob(".*tmp*"))  # no temporary file left behind
