"""Running a snippet or the CLI under a chosen backend in a fresh interpreter
(cross-backend tests, and checks that need a clean process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

BACKENDS = ("tensorflow", "torch", "jax")


def subprocess_env(backend: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PORTACLASS_BACKEND",)}
    env.update({"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return env


def run_python(code: str, backend: str, timeout: int = 300, **extra_env: str):
    """Run ``code`` in a fresh interpreter under ``backend``; returns the
    CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=subprocess_env(backend, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python_json(code: str, backend: str, timeout: int = 300, **extra_env: str):
    """Like run_python, but the snippet prints one JSON document as its last line."""
    result = run_python(code, backend, timeout, **extra_env)
    assert result.returncode == 0, f"{backend} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], backend: str | None = None, timeout: int = 300, **extra_env: str):
    env = subprocess_env(backend or os.environ.get("KERAS_BACKEND", "torch"), **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "portaclass", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def on_each_backend(run, backends=BACKENDS) -> dict:
    """``{backend: run(backend)}``, the backends' subprocesses side by side:
    each is mostly one busy core, so cross tests take the longest one's time
    rather than the sum."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(backends)) as pool:
        futures = {b: pool.submit(run, b) for b in backends}
        return {b: f.result() for b, f in futures.items()}
