"""The training engine on the backend under test: the recipe's options end
up in the run (history's lr column, config.json), budgets and guards stop
where they say, and what a run ships is lean."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from portaclass.errors import UsageError
from portaclass.run import Run
from portaclass.train.runner import run_training
from portaclass.train.session import TrainingFailed


def quiet_log(_line):
    pass


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, tiny_images):
    """The "same classifier in PyTorch" recipe: SGD with momentum, StepLR,
    label smoothing, balanced class weights, gradient clipping."""
    from portaclass.train.options import TrainOptions

    options = TrainOptions(data=str(tiny_images), image_size=16, batch_size=8, epochs=3, val_split=0.25, report=False,
                           test_split=0.0, optimizer="sgd", learning_rate=0.2, momentum=0.9,
                           schedule="step", step_size=1, gamma=0.5, label_smoothing=0.1,
                           class_weight="balanced", clip_norm=1.0, quiet=True,
                           out=str(tmp_path_factory.mktemp("recipe") / "run"))
    return run_training(options, log=quiet_log)


def test_history_records_each_epochs_learning_rate(recipe_run):
    rows = Run.open(recipe_run.run_dir).history()
    # StepLR(step_size=1, gamma=0.5): the rate in force at the end of epoch e is 0.2 * 0.5**e
    np.testing.assert_allclose([float(r["lr"]) for r in rows], [0.1, 0.05, 0.025], rtol=1e-5)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_config_records_the_recipe_as_it_ran(recipe_run):
    options = Run.open(recipe_run.run_dir).options
    assert options["optimizer"] == "sgd" and options["momentum"] == 0.9
    assert options["schedule"] == "step" and options["step_size"] == 1 and options["gamma"] == 0.5
    assert options["label_smoothing"] == 0.1 and options["class_weight"] == "balanced"
    assert options["clip_norm"] == 1.0 and options["epochs"] == 3 and options["learning_rate"] == 0.2
    assert options["precision"] == "float32"


def test_shipped_model_carries_no_optimizer_and_the_checkpoint_does(recipe_run):
    import keras

    run = Run.open(recipe_run.run_dir)
    shipped = keras.saving.load_model(run.model_path)
    assert getattr(shipped, "optimizer", None) is None and not shipped.compiled
    checkpoint = run.checkpoints / "last.keras"
    assert run.model_path.stat().st_size < 0.8 * checkpoint.stat().st_size
    with zipfile.ZipFile(checkpoint) as archive:
        state = json.loads(archive.read("portaclass/state.json"))
    assert state["epoch"] == 3 and state["phase"] == 1
    # the checkpoint still loads in plain Keras, optimizer and all
    assert type(keras.saving.load_model(checkpoint).optimizer).__name__ == "SGD"


def test_metrics_record_time_outside_epochs_and_peak_memory(recipe_run):
    metrics = recipe_run.metrics
    assert 0 < metrics["seconds_in_epochs"] < metrics["seconds"]
    assert metrics["seconds_outside_epochs"] == pytest.approx(
        metrics["seconds"] - metrics["seconds_in_epochs"], abs=0.02)
    assert metrics["peak_rss_bytes"] > 50 * 2**20


def test_best_checkpoint_holds_the_best_validation_epoch(recipe_run):
    run = Run.open(recipe_run.run_dir)
    rows = run.history()
    best = max(range(len(rows)), key=lambda i: float(rows[i]["val_accuracy"]))
    with zipfile.ZipFile(run.checkpoints / "best.keras") as archive:
        state = json.loads(archive.read("portaclass/state.json"))
    assert state["best_epoch"] == best + 1
    assert state["best_val_accuracy"] == pytest.approx(float(rows[best]["val_accuracy"]))
    # for evaluation and export: lean, like model.keras
    assert run.checkpoints.joinpath("best.keras").stat().st_size < 0.8 * run.checkpoints.joinpath(
        "last.keras").stat().st_size


def test_a_step_budget_stops_mid_epoch_at_exactly_that_many_steps(tiny_options):
    import keras

    # 36 training images in batches of 8: 5 steps an epoch; 7 steps end in epoch 2
    result = run_training(tiny_options(epochs=None, steps=7), log=quiet_log)
    run = Run.open(result.run_dir)
    assert [int(r["epoch"]) for r in run.history()] == [1, 2]
    checkpoint = keras.saving.load_model(run.checkpoints / "last.keras")
    assert int(keras.ops.convert_to_numpy(checkpoint.optimizer.iterations)) == 7


def test_a_diverging_loss_stops_with_exit_code_1_and_keeps_the_last_good_checkpoint(tiny_options):
    import keras

    # a sane epoch 1, then StepLR multiplies the rate by 1e32: the weights overflow in epoch 2
    options = tiny_options(optimizer="sgd", learning_rate=0.01, schedule="step", step_size=1, gamma=1e32,
                           epochs=3)
    with pytest.raises(TrainingFailed) as info:
        run_training(options, log=quiet_log)
    message = str(info.value)
    assert info.value.exit_code == 1 and "\n" not in message
    assert "epoch 2, step" in message and "learning rate" in message
    assert message.endswith(f"portaclass train --resume {options.out}")
    run = Run.open(options.out)
    assert not run.finished and [int(r["epoch"]) for r in run.history()] == [1]
    with zipfile.ZipFile(run.checkpoints / "last.keras") as archive:
        assert json.loads(archive.read("portaclass/state.json"))["epoch"] == 1
    kept = keras.saving.load_model(run.checkpoints / "last.keras")
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in kept.weights)


def test_float16_on_a_cpu_falls_back_to_float32_saying_so(tiny_options, backend_name):
    from portaclass import backend

    if backend.has_gpu():
        pytest.skip("this machine has a GPU: mixed_float16 runs there")
    lines = []
    result = run_training(tiny_options(precision="mixed_float16", epochs=1), log=lines.append)
    assert any("mixed_float16" in line and "float32" in line for line in lines)
    options = Run.open(result.run_dir).options
    assert options["precision"] == "float32" and options["precision_requested"] == "mixed_float16"


def test_deterministic_runs_of_one_seed_are_bit_identical(tiny_options, tmp_path):
    import keras

    weights = []
    for name in ("first", "second"):
        result = run_training(tiny_options(deterministic=True, augment="light", epochs=1,
                                           out=str(tmp_path / name)),
                              log=quiet_log)
        model = keras.saving.load_model(result.run_dir / "model.keras")
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_tensorboard_event_files_hold_each_epochs_scalars(tiny_options):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    result = run_training(tiny_options(tensorboard=True), log=quiet_log)
    rows = Run.open(result.run_dir).history()
    for folder, key in (("train", "loss"), ("validation", "val_loss")):
        events = EventAccumulator(str(result.run_dir / "tensorboard" / folder))
        events.Reload()
        # TF2 summaries store scalars as tensor events of the "scalars" plugin
        values = events.Tensors("epoch_loss")
        assert [v.step for v in values] == [0, 1]
        np.testing.assert_allclose([float(make_ndarray(v.tensor_proto)) for v in values],
                                   [float(r[key]) for r in rows], rtol=1e-5)


def test_python_api_trains_and_names_a_misspelt_option(tiny_images, tmp_path):
    import portaclass

    result = portaclass.train(data=str(tiny_images), image_size=16, epochs=1, batch_size=8,
                              val_split=0.25, test_split=0.0, out=str(tmp_path / "api"), quiet=True,
                              log=quiet_log)
    assert Run.open(result.run_dir).finished and 0.0 <= result.accuracy <= 1.0
    with pytest.raises(UsageError, match="'epoch'.*did you mean 'epochs'"):
        portaclass.train(data=str(tiny_images), epoch=3)


def test_early_stopping_counters_survive_a_resume():
    from portaclass.train.callbacks import ResumableEarlyStopping

    class Model:
        stop_training = False

    stopper = ResumableEarlyStopping(patience=2)
    stopper.set_model(Model())
    stopper.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.8, 0.9]):
        stopper.on_epoch_end(epoch, {"val_loss": loss})
    counters = stopper.counters()
    assert counters == {"wait": 1, "best": 0.8}
    resumed = ResumableEarlyStopping(patience=2, counters=json.loads(json.dumps(counters)))
    resumed.set_model(Model())
    resumed.on_train_begin()
    resumed.on_epoch_end(3, {"val_loss": 0.95})  # a second epoch without improvement
    assert resumed.model.stop_training
    assert math.isinf(ResumableEarlyStopping(patience=1).counters()["best"])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_on_a_gpu_with_a_float32_head(tiny_options, precision, tmp_path):
    import keras

    result = run_training(tiny_options(precision=precision, epochs=1, out=str(tmp_path / precision)),
                          log=quiet_log)
    assert Run.open(result.run_dir).options["precision"] == precision
    model = keras.saving.load_model(result.run_dir / "model.keras")
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert np.isfinite(result.metrics["loss"])


@pytest.mark.gpu
def test_deterministic_runs_on_a_gpu_repeat_bit_for_bit(tiny_images, tmp_path, backend_name):
    """On a GPU, --deterministic must make two fresh processes with one seed
    end with the same weights: cuDNN's and XLA's atomic-add kernels are
    replaced (torch needs cuBLAS' workspace, JAX its flag, both before the
    framework starts its devices)."""
    import subprocess
    import sys

    import keras

    from portaclass.backend_process import subprocess_env

    weights = []
    for name in ("first", "second"):
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, "-m", "portaclass", "train", "--data", str(tiny_images), "--image-size", "16",
             "--batch-size", "8", "--epochs", "2", "--val-split", "0.25", "--test-split", "0",
             "--deterministic", "--no-report", "--quiet", "--out", str(out)],
            env=subprocess_env(backend_name), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert Run.open(out).options["deterministic"] is True
        model = keras.saving.load_model(out / "model.keras")
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)


def test_lr_auto_runs_the_range_test_and_trains_with_its_suggestion(tiny_options):
    lines = []
    result = run_training(tiny_options(learning_rate="auto", epochs=1), log=lines.append)
    run = Run.open(result.run_dir)
    found = json.loads((run.path / "lr_find.json").read_text())
    assert (run.path / "lr_find.png").stat().st_size > 0
    assert run.options["learning_rate"] == pytest.approx(found["suggestion"])
    assert float(run.history()[0]["lr"]) == pytest.approx(found["suggestion"], rel=1e-5)
    assert any(f"{found['suggestion']:.3g}" in line for line in lines)


def test_two_runs_of_one_seed_write_the_same_history(tiny_options, tmp_path):
    """The default mode (threaded decoding, per-image augmentation) repeats a
    run exactly: every draw comes from (seed, epoch, image index)."""
    histories = []
    for name in ("first", "second"):
        result = run_training(tiny_options(augment="standard", out=str(tmp_path / name)),
                              log=quiet_log)
        rows = Run.open(result.run_dir).history()
        histories.append([{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows])
    assert histories[0] == histories[1]


def test_a_range_test_without_a_suggestion_leaves_no_run_folder(tiny_options, monkeypatch):
    from portaclass.train import lr_find

    def no_descent(*args, **kwargs):
        raise lr_find.LRFindError("the smoothed loss did not fall past lr 1e-07")

    monkeypatch.setattr(lr_find, "find_learning_rate", no_descent)
    options = tiny_options(learning_rate="auto")
    with pytest.raises(lr_find.LRFindError, match="did not fall"):
        run_training(options, log=quiet_log)
    assert not Path(options.out).exists()
