"""Data-parallel training (``--devices``, ``--coordinator``) on each backend's
own engine, on CPU: ``PORTACLASS_CPU_DEVICES=2`` shows two virtual devices
(XLA's host platform for JAX, logical devices for TensorFlow, two gloo
processes for PyTorch), and two processes over 127.0.0.1 stand in for two
hosts."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from portaclass.backend_process import subprocess_env
from portaclass.run import Run
from portaclass.train.options import TrainOptions
from portaclass.train.runner import run_training
from tests.helpers import run_cli

TWO_DEVICES = {"PORTACLASS_CPU_DEVICES": "2"}
# vit_tiny has no BatchNorm (whose batch statistics are per replica on
# TensorFlow and PyTorch, as in their engines), and SGD is linear in the
# gradient: the same global batch must give the same weights up to
# summation order.
EQUIVALENT = dict(data="digits", model="vit_tiny", image_size=16, channels=1, steps=3, batch_size=64,
                  seed=3, optimizer="sgd", learning_rate=0.05, dropout=0.0, report=False)
# measured 1.5e-7 on all three backends (docs/distributed.md)
WEIGHT_TOLERANCE = 1e-5


def flags(options: dict) -> list[str]:
    names = {"learning_rate": "lr"}
    out = []
    for name, value in options.items():
        flag = "--" + names.get(name, name).replace("_", "-")
        out += [flag] if value is True else ["--no-report"] if name == "report" else [flag, str(value)]
    return out


def weights(run_dir):
    import keras

    model = keras.saving.load_model(Run.open(run_dir).model_path)  # plain Keras, one device
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def test_two_devices_train_as_one_device_does_and_end_in_sync(tmp_path, backend_name):
    one = run_training(TrainOptions(**EQUIVALENT, out=str(tmp_path / "one"), quiet=True), log=lambda _: None)
    result = run_cli(["train", *flags(EQUIVALENT), "--devices", "2", "--out", str(tmp_path / "two")],
                     backend_name, **TWO_DEVICES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data parallel: 2 cpu replicas" in result.stdout
    assert "not rescaled for 2 replicas" in result.stdout

    metrics = Run.open(tmp_path / "two").metrics()
    assert (metrics["replicas"], metrics["replicas_in_sync"]) == (2, True), metrics
    assert Run.open(tmp_path / "two").options["devices"] == 2
    single, parallel = weights(one.run_dir), weights(tmp_path / "two")
    assert single.keys() == parallel.keys()
    worst = max(single, key=lambda k: float(np.max(np.abs(single[k] - parallel[k]))))
    np.testing.assert_allclose(parallel[worst], single[worst], rtol=0, atol=WEIGHT_TOLERANCE, err_msg=worst)


def test_a_batch_that_does_not_split_over_the_devices_is_refused_before_any_folder(tmp_path, backend_name):
    out = tmp_path / "run"
    result = run_cli(["train", "--data", "digits", "--batch-size", "63", "--devices", "2", "--out", str(out)],
                     backend_name, **TWO_DEVICES)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --batch-size 63 does not split over 2 replicas: use a multiple of 2 (the batch is global)")
    assert not out.exists()


def test_more_devices_than_the_host_shows_is_one_line_naming_them(tmp_path, backend_name, capsys):
    from portaclass.cli import main

    code = main(["train", "--data", "digits", "--devices", "3", "--out", str(tmp_path / "run")])
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: --devices 3 requested, but this host shows 1: cpu:0; without GPUs, "
                           "PORTACLASS_CPU_DEVICES=3 splits the CPU"), line
    assert not (tmp_path / "run").exists()


EPOCHS = 3
KILLABLE = ["--data", "digits", "--image-size", "16", "--channels", "1", "--epochs", str(EPOCHS),
            "--batch-size", "64", "--seed", "3", "--no-report", "--quiet"]


def start_cli(args, backend, **env):
    return subprocess.Popen([sys.executable, "-m", "portaclass", *args], env=subprocess_env(backend, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir, process, timeout=300):
    """Block until the first epoch's checkpoint is in place (or the process ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "checkpoints" / "last.keras").is_file():
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"no checkpoint within {timeout} s")


def worker_pids(launcher_pid: int) -> list[int]:
    """The torch worker processes the launcher started."""
    children = (open(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read().split())
    return [int(pid) for pid in children
            if "portaclass.train.distributed.worker" in open(f"/proc/{pid}/cmdline").read()]


def test_a_two_device_run_stopped_hard_resumes_on_one_device(tmp_path, backend_name):
    """JAX and TensorFlow: the process is killed; PyTorch: one worker is,
    and the command names it. The run resumes on one device and ends with
    every epoch once."""
    run_dir = tmp_path / "run"
    first = start_cli(["train", *KILLABLE, "--devices", "2", "--out", str(run_dir)], backend_name, **TWO_DEVICES)
    wait_for_checkpoint(run_dir, first)
    if backend_name == "torch":
        workers = worker_pids(first.pid)
        assert len(workers) == 2
        import os

        os.kill(workers[-1], signal.SIGKILL)
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 1, stderr[-2000:]
        line = stderr.strip().splitlines()[-1]
        assert line.startswith("error: worker rank ") and " was killed (SIGKILL); the other workers were stopped" in line
        assert line.endswith(f"portaclass train --resume {run_dir}"), line
    else:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)

    second = start_cli(["train", "--resume", str(run_dir), "--devices", "1", "--quiet"], backend_name)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    run = Run.open(run_dir)
    assert [int(row["epoch"]) for row in run.history()] == list(range(1, EPOCHS + 1))
    assert run.finished and run.metrics()["resumed_after_epoch"] >= 1
    assert "replicas" not in run.metrics()  # the end ran on one device


def test_distributed_options_are_checked_before_anything_loads(tmp_path):
    from portaclass.errors import UsageError

    cases = {
        "devices": (dict(devices="two"), "--devices must be a number of devices or all; received 'two'"),
        "zero": (dict(devices=0), "--devices must be at least 1"),
        "scale": (dict(scale_lr="square"), "--scale-lr"),
        "coordinator": (dict(coordinator="nohost", num_processes=2, process_id=0), "--coordinator must be HOST:PORT"),
        "index": (dict(coordinator="h:1", num_processes=2, process_id=2), "--process-id must be 0 to 1 for 2"),
        "incomplete": (dict(coordinator="h:1"), "--num-processes is needed too"),
        "lr_find": (dict(devices=2, lr_find=True), "--lr-find runs on one device"),
    }
    from portaclass.cli import cli_flag

    for name, (values, expected) in cases.items():
        with pytest.raises(UsageError) as caught:
            TrainOptions(data="digits", **values).check()
        assert expected in caught.value.with_flags(cli_flag), (name, caught.value.with_flags(cli_flag))


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_distributed_help_prints_the_launch_lines_of_the_backend(backend):
    from portaclass.train.distributed.help import launch_lines

    lines = launch_lines(backend)
    assert f"portaclass train --backend {backend} --data DATA --devices all" in lines
    expected = {"jax": "--coordinator HOST0:29400 --num-processes 2 --process-id 1",
                "torch": "torchrun --nnodes 2", "tensorflow": "export TF_CONFIG="}[backend]
    assert expected in lines


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held open together while chosen, so
    the kernel cannot hand out one twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


HOSTS = ["--data", "digits", "--image-size", "16", "--channels", "1", "--epochs", "2", "--batch-size", "64",
         "--seed", "3", "--no-report"]


def host_options(backend: str, index: int, count: int, ports: list[int]) -> tuple[list[str], dict]:
    """How process ``index`` of ``count`` finds the others: flags on JAX and
    torch, TF_CONFIG on TensorFlow."""
    if backend == "tensorflow":
        cluster = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                   "task": {"type": "worker", "index": index}}
        return [], {"TF_CONFIG": json.dumps(cluster)}
    return ["--coordinator", f"127.0.0.1:{ports[0]}", "--num-processes", str(count),
            "--process-id", str(index)], {}


@pytest.mark.cross
@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_two_processes_over_loopback_train_as_two_hosts(tmp_path, backend):
    ports = free_ports(2)
    processes = []
    for i in (0, 1):
        flags_, env = host_options(backend, i, 2, ports)
        processes.append(start_cli(["train", *HOSTS, *flags_, "--out", str(tmp_path / f"host{i}")], backend,
                                   PORTACLASS_CPU_DEVICES="1", **env))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert outputs[1][0].strip().splitlines()[-1] == f"{backend}: this process's part is done; process 0 writes the run"
    assert not (tmp_path / "host1").exists()
    run = Run.open(tmp_path / "host0")
    metrics = run.metrics()
    assert (metrics["replicas"], metrics["processes"], metrics["replicas_in_sync"]) == (2, 2, True), metrics
    assert [int(row["epoch"]) for row in run.history()] == [1, 2]
    assert metrics["accuracy"] > 0.5  # digits learns in two epochs; a broken all-reduce does not


@pytest.mark.cross
@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_a_host_whose_peers_never_arrive_gives_up_after_the_timeout(tmp_path, backend):
    flags_, env = host_options(backend, 0, 2, free_ports(2))
    result = run_cli(["train", "--data", "digits", *flags_, "--peer-timeout", "3", "--out", str(tmp_path / "run")],
                     backend, timeout=120, **env)
    assert result.returncode == 1, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "did not join" in line and "within 3 s" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.one_backend
def test_ctrl_c_stops_every_torch_worker_and_keeps_the_checkpoint(tmp_path):
    """The terminal's Ctrl-C reaches the launcher only (workers have sessions
    of their own): it stops them, exit 130, and the run resumes."""
    run_dir = tmp_path / "run"
    first = start_cli(["train", *KILLABLE, "--devices", "2", "--out", str(run_dir)], "torch", **TWO_DEVICES)
    wait_for_checkpoint(run_dir, first)
    workers = worker_pids(first.pid)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].endswith(f"portaclass train --resume {run_dir}")
    import os

    for pid in workers:  # none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (run_dir / "checkpoints" / "last.keras").is_file()
