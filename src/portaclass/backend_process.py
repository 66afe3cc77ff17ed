"""Code or the CLI under a chosen backend, in a fresh interpreter.

Keras picks its backend once per process, so anything that compares
backends (the cross-backend tests, benchmarks, and later bench and parity)
runs each one in a subprocess of its own: one harness for all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

from portaclass.config import BACKENDS


def subprocess_env(backend: str, **extra: str) -> dict:
    """This process's environment with ``KERAS_BACKEND`` set to ``backend``
    (and ``PORTACLASS_BACKEND`` removed, which would override it)."""
    env = {k: v for k, v in os.environ.items() if k != "PORTACLASS_BACKEND"}
    env.update({"KERAS_BACKEND": backend, **extra})
    return env


def run_python(code: str, backend: str, timeout: float = 300, **extra_env: str):
    """Run ``code`` (dedented) in a fresh interpreter under ``backend``;
    returns the ``CompletedProcess`` (text mode)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=subprocess_env(backend, **extra_env), capture_output=True, text=True, timeout=timeout,
    )


def run_python_json(code: str, backend: str, timeout: float = 300, **extra_env: str):
    """Like ``run_python``, for a snippet whose last stdout line is one JSON
    document; RuntimeError with the end of stderr when it fails."""
    result = run_python(code, backend, timeout, **extra_env)
    if result.returncode != 0:
        raise RuntimeError(f"{backend} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_script_json(args: list[str], backend: str, timeout: float | None = None, **extra_env: str):
    """``python ARGS...`` under ``backend``; the last stdout line parsed as JSON."""
    result = subprocess.run([sys.executable, *args], env=subprocess_env(backend, **extra_env),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{backend}: {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], backend: str | None = None, timeout: float = 300, **extra_env: str):
    """``python -m portaclass ARGS...`` under ``backend`` (default: this
    process's ``KERAS_BACKEND``, else torch)."""
    env = subprocess_env(backend or os.environ.get("KERAS_BACKEND", "torch"), **extra_env)
    return subprocess.run([sys.executable, "-m", "portaclass", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def on_each_backend(run, backends=BACKENDS) -> dict:
    """``{backend: run(backend)}``, the backends' subprocesses side by side:
    each is mostly one busy core, so this takes the longest one's time rather
    than the sum."""
    with ThreadPoolExecutor(max_workers=len(backends)) as pool:
        futures = {b: pool.submit(run, b) for b in backends}
        return {b: f.result() for b, f in futures.items()}


def interleaved_rounds(script: str, script_args: list[str], jobs: dict[str, tuple],
                       repeats: int, report=print) -> dict[str, list]:
    """``repeats`` rounds over ``jobs`` (name -> (extra args, backend), or
    (extra args, backend, environment variables)), one fresh interpreter per
    run of ``script``, jobs interleaved A B C A B C so machine drift hits all
    alike. Returns each job's JSON results in round order."""
    results: dict[str, list] = {name: [] for name in jobs}
    for round_index in range(repeats):
        for name, (extra, backend, *env) in jobs.items():
            value = run_script_json([script, *script_args, *extra], backend, TF_CPP_MIN_LOG_LEVEL="3",
                                    **(env[0] if env else {}))
            results[name].append(value)
            report(f"round {round_index + 1}: {name}: {value}")
    return results
