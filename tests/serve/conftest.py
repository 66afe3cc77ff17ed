"""A real ``portaclass serve`` process on a free loopback port, driven by a
real HTTP client (httpx)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 240  # loading and warming every batch shape; JAX compiles each


class ServerProcess:
    """``portaclass serve SOURCE --port 0 ARGS`` in a subprocess; ``url``
    once it has said where it listens; ``stop()`` sends SIGTERM."""

    def __init__(self, source, *args: str, backend: str | None = None):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if backend:
            env["KERAS_BACKEND"] = backend
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portaclass", "serve", str(source), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_address()
        self.name = self.url.rsplit("/", 1)[1]
        self.port = int(re.search(r":(\d+)/", self.url).group(1))
        self.client = httpx.Client(base_url=self.url.split("/v1/")[0], timeout=60)

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"serve exited ({self.process.wait()}) before listening:\n{self.output}")
            found = re.search(r"at (http://\S+/v1/models/\S+)", line)
            if found:
                return found.group(1)
        self.process.kill()
        raise AssertionError(f"serve did not listen within {START_TIMEOUT_S} s:\n{self.output}")

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def model_path(self, suffix: str = "") -> str:
        return f"/v1/models/{self.name}{suffix}"

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.client.close()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.client.close()


@pytest.fixture(scope="session")
def served_run(trained_run):
    """The shared trained run's folder."""
    return Path(trained_run[0].run_dir)


def metric_values(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in Prometheus text format."""
    values = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            values[key[len(name):]] = float(value)
    return values
