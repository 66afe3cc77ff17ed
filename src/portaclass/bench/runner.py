"""``portaclass bench``: every row in fresh interpreters, rounds interleaved,
medians reported, bench.json + bench.png written and the result cached for
``--backend auto``.

This process never imports a framework: each measurement is
``python -m portaclass.bench.measure`` under its backend (Keras chooses its
backend once per process, and a process's peak memory is then the row's
own). A row that fails (out of memory at a large batch, a backend that
cannot run the model) is recorded with its reason; the others still run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from portaclass.backend_process import subprocess_env
from portaclass.bench.cache import cpu_model
from portaclass.bench.measure import timed
from portaclass.bench.options import NATIVE_TORCH, ONNXRUNTIME, BenchOptions
from portaclass.errors import BackendError, PortaclassError

# The memory errors of the runtimes, and the exit of a process the kernel's
# OOM killer ended: a row that hits one is "out of memory", not a crash.
OUT_OF_MEMORY_SIGNS = ("out of memory", "outofmemory", "resource_exhausted", "memoryerror",
                       "failed to allocate", "cannot allocate memory")
# The row's process settings: no TensorFlow banners, and no JAX program
# loaded from portaclass' compilation cache, so compile_s is a compile.
ROW_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "PORTACLASS_JAX_CACHE": "0"}


class BenchError(PortaclassError):
    """Nothing could be measured (exit code 1: the options were fine)."""

    exit_code = 1


@dataclass
class BenchReport:
    """What a bench run measured: one result per row and batch size."""

    options: BenchOptions
    results: list[dict]
    machine: dict
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        opts = self.options
        return {"model": opts.model, "image_size": opts.image_size, "steps": opts.steps,
                "rounds": opts.rounds, "real_data": opts.real_data is not None,
                "results": self.results, "machine": self.machine, "notes": self.notes}

    def fastest_native(self, batch_size: int) -> dict | None:
        rows = [r for r in self.results if r["backend"].startswith(NATIVE_TORCH)
                and r["batch_size"] == batch_size and r.get("step_time_s")]
        return min(rows, key=lambda r: r["step_time_s"], default=None)


def machine_info() -> dict:
    """The machine and the versions measured, read without importing a framework."""
    versions = {}
    for package in ("keras", "tensorflow", "tensorflow-cpu", "torch", "jax", "jaxlib", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_bytes": _memory_bytes(),
            "platform": platform.platform(), "python": platform.python_version(), "versions": versions}


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """The CPU's practical float32 peak: NumPy's BLAS on a square matmul,
    best of ``repeats`` (a convolution counted as direct multiply-adds can
    beat it: oneDNN's Winograd kernels do fewer multiplies)."""
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a  # BLAS's threads start here
    best = min(timed(lambda: a @ a) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def run_job(job: dict, backend: str, timeout: float | None = None) -> dict:
    """One ``bench.measure`` process; ``{"error": reason}`` when it fails."""
    command = [sys.executable, "-m", "portaclass.bench.measure", json.dumps(job)]
    try:
        done = subprocess.run(command, env=subprocess_env(backend, **ROW_ENVIRONMENT),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    return {"error": failure_reason(done.returncode, done.stderr, job.get("batch_size"))}


def failure_reason(returncode: int, stderr: str, batch_size: int | None) -> str:
    """One line: out of memory (said as such), else the error's last line."""
    text = stderr.lower()
    if returncode == -9 or any(sign in text for sign in OUT_OF_MEMORY_SIGNS):
        return f"out of memory at batch size {batch_size}"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit code {returncode}"
    return re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", last)[:300]  # portaclass.errors.X: -> X:


def run_bench(options: BenchOptions, log=print) -> BenchReport:
    """Measure every row of ``options`` and write bench.json and bench.png
    into ``options.out_dir``; cache the result for ``--backend auto``."""
    notes = options.skipped_rows()
    for note in notes:
        log(note)
    if options.device:
        _check_device(options)
    rows = options.rows
    with tempfile.TemporaryDirectory(prefix="portaclass-bench-") as folder:
        prepared, unprepared = _prepare(options, rows, folder, log)
        notes += [f"{row}: not measured, {reason}" for row, reason in unprepared.items()]
        rows = [row for row in rows if row not in unprepared]
        measured = _rounds(options, rows, prepared, log)
    machine = {**machine_info(), "matmul_gflops_per_s": matmul_gflops()}
    report = BenchReport(options, _aggregate(options, rows, measured), machine, notes)
    from portaclass.bench.output import write_outputs

    write_outputs(report, options.out_dir)
    if all("error" in result for result in report.results):
        raise BenchError(f"every row failed (the first: {report.results[0]['error']}); "
                         f"details in {options.out_dir / 'bench.json'}")
    if options.cache:
        from portaclass.bench.cache import record

        record(report)
    return report


def _check_device(options: BenchOptions) -> None:
    """A device the first backend cannot see is bad input, found before
    any row runs (one framework start-up, only when --device is given)."""
    result = run_job({"row": "check_device", "device": options.device}, options.backends[0])
    if "error" in result:
        raise BackendError(result["error"].split(": ", 1)[-1])


def _prepare(options: BenchOptions, rows: list[str], folder: str, log) -> tuple[dict, dict[str, str]]:
    """The files the native and onnxruntime rows start from, written once
    under torch (which the native twin needs) or the first backend; and
    ``{row: why it cannot be measured}`` for the rows left without them."""
    wants_native = any(row.startswith(NATIVE_TORCH) for row in rows)
    wants_onnx = ONNXRUNTIME in rows
    if not (wants_native or wants_onnx):
        return {}, {}
    from portaclass import config

    backend = "torch" if config.is_installed("torch") else options.backends[0]
    log(f"preparing the shared weights{' and the ONNX export' if wants_onnx else ''} on {backend}")
    job = {"row": "prepare", "folder": folder, "model": options.model, "image_size": options.image_size,
           "num_classes": options.num_classes, "seed": options.seed,
           "native": wants_native and backend == "torch", "onnx": wants_onnx}
    result = run_job(job, backend)
    unprepared = {}
    if "error" in result:
        unprepared = {row: f"preparing its files failed: {result['error']}" for row in rows
                      if row.startswith(NATIVE_TORCH) or row == ONNXRUNTIME}
    elif wants_native and "native_weights" not in result:
        unprepared = {row: "torch is not installed" for row in rows if row.startswith(NATIVE_TORCH)}
    for row, reason in unprepared.items():
        log(f"{row}: not measured, {reason}")
    return result, unprepared


def _rounds(options: BenchOptions, rows: list[str], prepared: dict, log) -> dict:
    """``{(row, batch size): [result of each round]}``, rows interleaved."""
    measured: dict = {(row, size): [] for row in rows for size in options.batch_sizes}
    total = options.rounds * len(measured)
    done = 0
    for round_index in range(1, options.rounds + 1):
        for size in options.batch_sizes:
            for row in rows:
                done += 1
                job = {"row": row, "model": options.model, "image_size": options.image_size,
                       "batch_size": size, "steps": options.steps, "num_classes": options.num_classes,
                       "seed": options.seed, "device": options.device,
                       "real_data": str(Path(options.real_data).expanduser()) if options.real_data else None,
                       **prepared}
                start = time.perf_counter()
                result = run_job(job, _process_backend(row, options))
                measured[(row, size)].append(result)
                log(f"[{done}/{total}] round {round_index}, {row}, batch {size}: "
                    f"{_describe(result)} ({time.perf_counter() - start:.0f} s)")
    return measured


def _process_backend(row: str, options: BenchOptions) -> str:
    """KERAS_BACKEND for a row's process: its own, torch for the native rows
    (which import torch but not keras), the first asked for ONNX Runtime."""
    if row in options.backends:
        return row
    return "torch" if row.startswith(NATIVE_TORCH) else options.backends[0]


def _describe(result: dict) -> str:
    if "error" in result:
        return f"failed: {result['error']}"
    if result.get("step_time_s"):
        return f"{result['step_time_s'] * 1000:.0f} ms/step"
    return f"{result['predict_time_s'] * 1000:.0f} ms/predict"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _aggregate(options: BenchOptions, rows: list[str], measured: dict) -> list[dict]:
    """One row per (row, batch size): medians over rounds, the highest peak."""
    results = []
    # Training FLOPs: 2 per multiply-accumulate, forward + backward ~ 3 forwards.
    macs = next((r["forward_macs"] for rounds in measured.values() for r in rounds if r.get("forward_macs")), None)
    for size in options.batch_sizes:
        for row in rows:
            rounds = measured[(row, size)]
            good = [r for r in rounds if "error" not in r]
            entry = {"backend": row, "batch_size": size}
            if not good:
                entry["error"] = rounds[-1]["error"]
                results.append(entry)
                continue
            for key in ("step_time_s", "compile_s", "predict_time_s", "predict_compile_s"):
                entry[key] = _median(r.get(key) for r in good)
            step, predict = entry["step_time_s"], entry["predict_time_s"]
            entry["images_per_s"] = size / step if step else None
            entry["predict_images_per_s"] = size / predict if predict else None
            entry["train_gflops_per_s"] = 6 * macs * size / step / 1e9 if macs and step else None
            entry["peak_memory_bytes"] = max(r["peak_memory_bytes"] for r in good)
            entry["device"] = good[0]["device"]
            entry["data_format"] = good[0]["data_format"]
            entry["step_times_by_round"] = [r.get("step_time_s") for r in good]
            if len(good) < len(rounds):
                entry["failed_rounds"] = [r["error"] for r in rounds if "error" in r]
            results.append(entry)
    return results
