"""``portaclass bench``: every backend beside native PyTorch and ONNX Runtime
from one command, its files, its bad input, and ``--backend auto`` learning
from what it measured."""

from __future__ import annotations

import json
import types

import pytest
from rich.console import Console

from portaclass import config
from portaclass.backend_process import run_cli
from portaclass.bench import cache
from portaclass.bench.options import BenchOptions
from portaclass.bench.output import add_ratios, print_table, table_rows
from portaclass.bench.runner import BenchReport, _aggregate, failure_reason

from ..helpers import invoke_cli

# The rows every bench command can measure here: each Keras backend, the two
# hand-written PyTorch rows and ONNX Runtime.
ALL_ROWS = ["tensorflow", "torch", "jax", "native-torch", "native-torch-channels-last", "onnxruntime"]


@pytest.fixture
def bench_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PORTACLASS_CACHE_DIR", str(folder))
    return folder


@pytest.mark.cross
def test_bench_measures_every_backend_beside_native_torch_and_onnxruntime(tmp_path, bench_cache):
    out = tmp_path / "bench"
    result = run_cli(["bench", "--model", "resnet18", "--image-size", "8", "--batch-sizes", "4",
                      "--steps", "2", "--rounds", "1", "--out", str(out)], timeout=600,
                     PORTACLASS_CACHE_DIR=str(bench_cache), COLUMNS="200")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    assert report["model"] == "resnet18" and report["machine"]["cores"] >= 1
    assert report["machine"]["versions"]["keras"] and report["machine"]["matmul_gflops_per_s"] > 0
    rows = {(r["backend"], r["batch_size"]): r for r in report["results"]}
    assert sorted(rows) == sorted((row, 4) for row in ALL_ROWS)
    for (row, size), r in rows.items():
        assert "error" not in r, f"{row} failed: {r.get('error')}"
        assert r["predict_images_per_s"] > 0 and r["peak_memory_bytes"] > 2**20
        assert r["device"] == "cpu"
        if row == "onnxruntime":  # predicts only
            assert r["step_time_s"] is None and r["images_per_s"] is None
            continue
        assert r["step_time_s"] > 0 and r["compile_s"] > 0
        assert r["images_per_s"] == pytest.approx(size / r["step_time_s"])
        fastest_native = min(rows[(n, size)]["step_time_s"] for n in ALL_ROWS if n.startswith("native"))
        assert r["ratio_to_native"] == pytest.approx(r["step_time_s"] / fastest_native)
        assert r["train_gflops_per_s"] > 0
        assert r["share_of_matmul_peak"] == pytest.approx(
            r["train_gflops_per_s"] / report["machine"]["matmul_gflops_per_s"])
    assert rows[("native-torch-channels-last", 4)]["data_format"] == "channels_last"
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in ALL_ROWS:  # the table names every row
        assert row in result.stdout
    # Remembered for --backend auto: the Keras backends' step times.
    entry = json.loads(next((bench_cache / "bench").glob("*.json")).read_text())["entries"]["resnet18@8"]
    assert set(entry["step_time_s"]["4"]) == {"tensorflow", "torch", "jax"}


@pytest.mark.one_backend
def test_bench_through_the_real_pipeline_times_input_and_compute(tmp_path, bench_cache):
    from portaclass.data import write_shapes

    data = write_shapes(tmp_path / "photos", n_per_class=4, image_size=20, seed=1)
    out = tmp_path / "bench"
    result = run_cli(["bench", "--backends", "torch", "--model", "resnet18", "--image-size", "16",
                      "--batch-sizes", "4", "--steps", "3", "--rounds", "1", "--real-data", str(data),
                      "--out", str(out), "--json", "--no-cache"], backend="torch", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["real_data"] is True
    assert {r["backend"] for r in report["results"]} == {"torch", "native-torch", "native-torch-channels-last"}
    for r in report["results"]:
        assert "error" not in r and r["step_time_s"] > 0, r
    assert "no onnxruntime row with --real-data" in result.stderr
    assert not (bench_cache / "bench").exists()  # --no-cache


@pytest.mark.one_backend
@pytest.mark.parametrize(("args", "message"), [
    (["--backends", "torch,mxnet"], "--backends must be one of tensorflow, torch, jax; received 'mxnet'"),
    (["--backends", "torch,torch"], "--backends names a backend twice"),
    (["--model", "resnet9000"], "--model must be one of"),
    (["--model", "resnet18", "--image-size", "4"], "--image-size must be at least 8x8 for model 'resnet18'"),
    (["--batch-sizes", "32,lots"], "--batch-sizes must be a comma-separated list of numbers"),
    (["--batch-sizes", "0"], "--batch-sizes must be at least 1"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--real-data", "/no/such/folder"], "--real-data /no/such/folder: no such folder"),
], ids=["unknown-backend", "twice", "unknown-model", "too-small", "not-numbers", "zero-batch",
        "zero-steps", "no-folder"])
def test_bench_refuses_bad_options_in_one_line(args, message, bench_cache):
    result = invoke_cli(["bench", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.one_backend
def test_bench_names_the_extra_of_a_backend_that_is_not_installed(monkeypatch):
    monkeypatch.setattr(config, "is_installed", lambda name: name != "jax")
    with pytest.raises(Exception, match=r"backend 'jax' is not installed: pip install 'portaclass\[jax\]'"):
        BenchOptions(backends=("torch", "jax"))


@pytest.mark.one_backend
def test_a_failing_row_is_reported_with_its_reason_and_the_others_kept():
    options = BenchOptions(backends=("torch", "jax"), batch_sizes=(8, 512), rounds=2)
    good = {"step_time_s": 0.5, "compile_s": 1.0, "predict_time_s": 0.1, "predict_compile_s": 0.2,
            "peak_memory_bytes": 10**9, "device": "cpu", "data_format": "channels_last", "forward_macs": 10**6}
    oom = {"error": failure_reason(1, "RuntimeError: DefaultCPUAllocator: can't allocate memory: "
                                      "you tried to allocate 1 GB\nMemoryError", 512)}
    measured = {("torch", 8): [good, good], ("jax", 8): [good, {"error": "exit code 1"}],
                ("torch", 512): [oom, oom], ("jax", 512): [good, good]}
    results = _aggregate(options, ["torch", "jax"], measured)
    by_row = {(r["backend"], r["batch_size"]): r for r in results}
    assert by_row[("torch", 512)] == {"backend": "torch", "batch_size": 512,
                                      "error": "out of memory at batch size 512"}
    assert by_row[("jax", 512)]["images_per_s"] == pytest.approx(512 / 0.5)
    assert by_row[("jax", 8)]["failed_rounds"] == ["exit code 1"]  # the good round still counts
    report = BenchReport(options, results, {"cpu": "test", "cores": 2})
    add_ratios(report)  # no native rows: no ratio, and no crash
    assert by_row[("jax", 8)]["ratio_to_native"] is None
    cells = {row[:2]: row for row in table_rows(report)}
    assert cells[("torch", "512")][2] == "failed"
    console = Console(record=True, width=200)
    print_table(report, console)
    assert "failed: torch at batch 512: out of memory at batch size 512" in console.export_text()
    assert failure_reason(-9, "", 128) == "out of memory at batch size 128"  # the OOM killer
    assert failure_reason(1, "Traceback ...\nValueError: bad shape\n", 4) == "ValueError: bad shape"
    assert failure_reason(1, "portaclass.errors.BackendError: no device gpu:0\n", 4) == "BackendError: no device gpu:0"


def _report_with(model: str, size: int, times: dict) -> types.SimpleNamespace:
    """A bench report as cache.record reads it: {batch size: {backend: s/step}}."""
    results = [{"backend": backend, "batch_size": batch, "step_time_s": step, "device": "cpu"}
               for batch, steps in times.items() for backend, step in steps.items()]
    results.append({"backend": "native-torch", "batch_size": 32, "step_time_s": 0.01, "device": "cpu"})
    return types.SimpleNamespace(options=BenchOptions(model=model, image_size=size, backends=("torch",)),
                                 results=results)


@pytest.mark.one_backend
def test_cache_picks_the_fastest_installed_backend_at_the_nearest_batch_size(bench_cache, monkeypatch):
    assert cache.fastest_backend("resnet18", 32) is None  # nothing measured yet
    cache.record(_report_with("resnet18", 32, {32: {"torch": 0.3, "jax": 0.2, "tensorflow": 0.4},
                                               128: {"torch": 1.0, "jax": 1.5, "tensorflow": 0.8}}))
    assert cache.fastest_backend("resnet18", 32, batch_size=16).backend == "jax"
    assert cache.fastest_backend("resnet18", 32, batch_size=100).backend == "tensorflow"
    assert cache.fastest_backend("resnet18", 32).backend == "tensorflow"  # the largest batch measured
    assert cache.fastest_backend("resnet18", 64) is None  # another input size
    chosen = cache.fastest_backend("resnet18", 32, batch_size=32)
    assert "jax 0.2 s/step, torch 0.3 s/step, tensorflow 0.4 s/step" in chosen.reason
    monkeypatch.setattr(config, "is_installed", lambda name: name != "jax")
    assert cache.fastest_backend("resnet18", 32, batch_size=32).backend == "torch"
    cache.cache_file().write_text("{not json")
    assert cache.fastest_backend("resnet18", 32) is None  # a broken cache is no cache


@pytest.mark.one_backend
def test_backend_auto_trains_on_the_backend_bench_measured_fastest(tmp_path, bench_cache):
    # Bench said tensorflow for this workload (torch comes first in the fallback order).
    cache.record(_report_with("simple_cnn", 32, {16: {"torch": 0.2, "tensorflow": 0.1}}))
    common = ["train", "--data", "shapes", "--model", "simple_cnn", "--image-size", "32",
              "--batch-size", "16", "--steps", "1", "--no-report", "--backend", "auto"]
    result = run_cli([*common, "--out", str(tmp_path / "run")], backend="torch",
                     PORTACLASS_CACHE_DIR=str(bench_cache))
    assert result.returncode == 0, result.stderr[-2000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith("backend auto: tensorflow, the fastest for simple_cnn at 32 px (batch 16)")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["backend"] == "tensorflow" and env["backend_choice"] == first

    # Another input size: nothing measured, the fallback says so.
    result = run_cli([*common[:5], "--image-size", "24", *common[7:], "--out", str(tmp_path / "other")],
                     backend="torch", PORTACLASS_CACHE_DIR=str(bench_cache))
    assert result.returncode == 0, result.stderr[-2000:]
    env = json.loads((tmp_path / "other" / "env.json").read_text())
    assert env["backend"] == "torch"
    assert env["backend_choice"] == ("backend auto: torch, from KERAS_BACKEND (no portaclass bench "
                                     "result for simple_cnn at 24 px on this machine)")


@pytest.mark.one_backend
def test_a_named_backend_is_not_second_guessed(tmp_path, bench_cache):
    cache.record(_report_with("simple_cnn", 32, {16: {"torch": 0.2, "tensorflow": 0.1}}))
    result = run_cli(["train", "--data", "shapes", "--model", "simple_cnn", "--image-size", "32",
                      "--batch-size", "16", "--steps", "1", "--no-report", "--backend", "torch",
                      "--out", str(tmp_path / "run")], backend="torch", PORTACLASS_CACHE_DIR=str(bench_cache))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not result.stdout.startswith("backend auto")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["backend"] == "torch" and env["backend_choice"] is None


@pytest.mark.gpu
def test_bench_on_a_gpu_times_every_row_there_and_reports_device_memory(tmp_path, bench_cache, backend_name):
    out = tmp_path / "bench"
    result = run_cli(["bench", "--backends", backend_name, "--model", "resnet18", "--image-size", "32",
                      "--batch-sizes", "16", "--steps", "3", "--rounds", "1", "--device", "gpu",
                      "--no-onnx", "--out", str(out)], timeout=600, PORTACLASS_CACHE_DIR=str(bench_cache))
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "bench.json").read_text())["results"]
    assert {r["backend"] for r in results} == {backend_name, "native-torch", "native-torch-channels-last"}
    for r in results:
        assert "error" not in r, r
        assert r["device"] == "gpu" and r["peak_memory_bytes"] > 0 and r["step_time_s"] > 0


@pytest.mark.one_backend
def test_bench_refuses_a_gpu_the_machine_does_not_have(tmp_path, backend_name):
    from portaclass import backend

    if backend.has_gpu():
        pytest.skip("this machine has a GPU")
    result = invoke_cli(["bench", "--backends", backend_name, "--device", "gpu", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no device gpu:0 on this machine (available: cpu:0)"
    assert not (tmp_path / "b").exists()  # nothing measured, nothing written
