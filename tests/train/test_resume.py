"""Crash-safe runs, with real processes and real signals: Ctrl-C exits 130
with the resume command, SIGKILL mid-run loses nothing, and a resumed run
ends with the very weights an uninterrupted one reaches (bit for bit, on CPU,
on every backend). Also: a kill during a checkpoint write keeps the previous
checkpoint, and --resume refuses what it can't honour, in one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from portaclass.backend_process import run_python, subprocess_env
from portaclass.run import Run
from portaclass.train.options import TrainOptions
from portaclass.train.runner import run_training

EPOCHS = 5
# digits at 16 px: ~20 steps an epoch, long enough to signal a run mid-epoch
RUN_ARGS = ["--data", "digits", "--image-size", "16", "--channels", "1", "--epochs", str(EPOCHS),
            "--batch-size", "64", "--val-split", "0.2", "--test-split", "0.1", "--seed", "3", "--no-report"]


def start_cli(args, backend):
    return subprocess.Popen([sys.executable, "-m", "portaclass", *args], env=subprocess_env(backend),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(run_dir, count, process, timeout=300):
    """Block until history.csv holds ``count`` epochs (or the process ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "history.csv").is_file() and len(Run(run_dir).history()) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before epoch {count}: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"no epoch {count} within {timeout} s")


def final_weights(run_dir):
    import keras

    model = keras.saving.load_model(run_dir / "model.keras")
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_interrupted_and_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, backend_name):
    uninterrupted = tmp_path / "uninterrupted"
    run_training(TrainOptions(data="digits", image_size=16, channels=1, epochs=EPOCHS, batch_size=64, report=False,
                              val_split=0.2, test_split=0.1, seed=3, out=str(uninterrupted), quiet=True),
                 log=lambda line: None)

    crashed = tmp_path / "crashed"
    first = start_cli(["train", *RUN_ARGS, "--out", str(crashed), "--quiet"], backend_name)
    wait_for_epochs(crashed, 1, first)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].endswith(f"portaclass train --resume {crashed}")

    second = start_cli(["train", "--resume", str(crashed), "--quiet"], backend_name)
    wait_for_epochs(crashed, 3, second)
    second.send_signal(signal.SIGKILL)  # no chance to clean up
    second.communicate(timeout=60)

    third = start_cli(["train", "--resume", str(crashed), "--quiet"], backend_name)
    _, stderr = third.communicate(timeout=600)
    assert third.returncode == 0, stderr[-3000:]
    run = Run.open(crashed)
    assert [int(row["epoch"]) for row in run.history()] == list(range(1, EPOCHS + 1))
    assert run.finished and run.metrics()["resumed_after_epoch"] >= 1
    for resumed, straight in zip(final_weights(crashed), final_weights(uninterrupted)):
        np.testing.assert_array_equal(resumed, straight)


SLOW_CHECKPOINT = """
import os, pathlib, sys, time
import portaclass.train.checkpoint as checkpoint
from portaclass.cli import main

real_replace = os.replace
def slow_replace(src, dst):
    # the epoch-2 checkpoint is written in full but not yet renamed into place
    if pathlib.Path(dst).name == "last.keras" and len(list(pathlib.Path(dst).parent.parent.glob("history.csv"))) \\
            and sum(1 for _ in open(pathlib.Path(dst).parent.parent / "history.csv")) == 3:
        pathlib.Path({marker!r}).touch()
        time.sleep(300)
    return real_replace(src, dst)
checkpoint.os.replace = slow_replace
sys.exit(main({args!r}))
"""


def test_a_kill_during_the_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, backend_name):
    import keras

    from portaclass.train.checkpoint import read_state

    if backend_name != "torch":
        pytest.skip("file-level behaviour, the same code on every backend: run on torch")
    out, marker = tmp_path / "run", tmp_path / "writing"
    code = SLOW_CHECKPOINT.format(marker=str(marker),
                                  args=["train", *RUN_ARGS, "--out", str(out), "--quiet"])
    process = subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(backend_name),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the second checkpoint write never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    last = out / "checkpoints" / "last.keras"
    assert read_state(last)["epoch"] == 1  # the previous checkpoint, whole
    keras.saving.load_model(last)
    resumed = start_cli(["train", "--resume", str(out), "--quiet"], backend_name)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    assert [int(row["epoch"]) for row in Run.open(out).history()] == list(range(1, EPOCHS + 1))
    assert not list((out / "checkpoints").glob(".*"))  # no temporary file left behind


RESUME_MISUSE = """
import contextlib, io, json, sys
from portaclass.cli import main
out = []
for argv in {cases!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def test_resume_refuses_what_it_cannot_honour_in_one_line(tmp_path, backend_name):
    import json

    finished = tmp_path / "finished"
    run_training(TrainOptions(data="digits", image_size=8, channels=1, epochs=1, out=str(finished), report=False,
                              quiet=True), log=lambda line: None)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (finished / "metrics.json").rename(tmp_path / "kept.json")
    (finished / "model.keras").rename(tmp_path / "kept.keras")
    import shutil

    shutil.copytree(finished, unfinished, dirs_exist_ok=True)  # a run killed after its last epoch
    (tmp_path / "kept.json").rename(finished / "metrics.json")
    (tmp_path / "kept.keras").rename(finished / "model.keras")
    (tmp_path / "config.toml").write_text("epochs = 3\n")
    cases = [
        (["train", "--resume", str(tmp_path / "nowhere")], "no such folder"),
        (["train", "--resume", str(tmp_path)], "not a run folder"),
        (["train", "--resume", str(finished)], "has finished"),
        (["train", "--resume", str(unfinished), "--epochs", "7", "--lr", "0.5"], "--epochs"),
        (["train", "--resume", str(unfinished), "--config", str(tmp_path / "config.toml")], "--config"),
    ]
    result = run_python(RESUME_MISUSE.format(cases=[argv for argv, _ in cases]), backend_name)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    for (code, stderr), (_, expected) in zip(reports, cases):
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], stderr
    clash = reports[3][1]
    assert "--epochs" in clash and "--lr" in clash and "learning_rate" not in clash  # flags, all of them


def test_a_transfer_run_killed_in_phase_two_resumes_in_phase_two(tiny_options, tmp_path, monkeypatch):
    """In-process: a crash right after phase 2's first checkpoint, then
    --resume: the base is unfrozen again, phase 2 continues with its own
    optimizer, and the run ends where an uninterrupted one does."""
    import portaclass.train.callbacks as callbacks
    from portaclass.train.runner import resume_training

    def options(name):
        return tiny_options(freeze_base=True, epochs=2, fine_tune_epochs=2, fine_tune_lr=1e-3,
                            unfreeze="top:2", out=str(tmp_path / name))

    run_training(options("straight"), log=lambda line: None)

    class Crash(Exception):
        pass

    real = callbacks.RunCheckpoints.on_epoch_end

    def crash_after_phase_two_starts(self, epoch, logs=None):
        real(self, epoch, logs)
        if self.state["phase"] == 2:
            raise Crash

    monkeypatch.setattr(callbacks.RunCheckpoints, "on_epoch_end", crash_after_phase_two_starts)
    with pytest.raises(Crash):
        run_training(options("crashed"), log=lambda line: None)
    monkeypatch.setattr(callbacks.RunCheckpoints, "on_epoch_end", real)
    lines = []
    resume_training(tmp_path / "crashed", quiet=True, log=lines.append)
    assert any("after epoch 3 (phase 2)" in line for line in lines)
    run = Run.open(tmp_path / "crashed")
    assert [(int(r["epoch"]), int(float(r["phase"]))) for r in run.history()] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    for resumed, straight in zip(final_weights(tmp_path / "crashed"), final_weights(tmp_path / "straight")):
        np.testing.assert_array_equal(resumed, straight)


@pytest.mark.one_backend  # file-level checks before any training
def test_resume_refuses_data_whose_files_or_classes_changed_and_keeps_the_checkpoint(tiny_images, tmp_path):
    """A file or class added since the run started, or a file unreadable now,
    would re-split the data (or break the weights' load): one line naming
    what changed, exit 2,
    checkpoint untouched; with the data restored the run resumes."""
    import shutil

    from tests.helpers import invoke_cli

    data = shutil.copytree(tiny_images, tmp_path / "data")
    run_dir = tmp_path / "run"
    run_training(TrainOptions(data=str(data), image_size=16, batch_size=8, epochs=1, val_split=0.25,
                              test_split=0.0, out=str(run_dir), report=False, quiet=True), log=lambda line: None)
    for finished_marker in ("metrics.json", "model.keras"):  # a run killed after its last checkpoint
        (run_dir / finished_marker).unlink()
    checkpoint = (run_dir / "checkpoints" / "last.keras").read_bytes()

    extra = data / "circle" / "extra.png"
    shutil.copy(next((data / "square").glob("*.png")), extra)
    added_file = invoke_cli(["train", "--resume", str(run_dir), "--quiet"])
    extra.unlink()
    shutil.copytree(data / "star", data / "hexagon")
    added_class = invoke_cli(["train", "--resume", str(run_dir), "--quiet"])
    shutil.rmtree(data / "hexagon")
    corrupt = next((data / "star").glob("*.png"))
    good_bytes = corrupt.read_bytes()
    corrupt.write_bytes(b"not a png any more")
    unreadable = invoke_cli(["train", "--resume", str(run_dir), "--quiet"])
    corrupt.write_bytes(good_bytes)

    for result, named in ((added_file, "split is not the one the run"), (added_class, "hexagon"),
                          (unreadable, f"{corrupt}: cannot be read any more")):
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and str(data) in lines[0], result.stderr
    assert (run_dir / "checkpoints" / "last.keras").read_bytes() == checkpoint
    resumed = invoke_cli(["train", "--resume", str(run_dir), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert Run.open(run_dir).finished
