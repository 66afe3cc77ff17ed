"""Serving throughput and latency: `portaclass serve` against the naive
server users write (benchmarks/naive_serve.py: FastAPI calling
`model.predict` per request), both real processes on 127.0.0.1, driven by the
same bounded load in the same run.

For each concurrency level, each server gets `--requests` requests of one
image each (TF Serving's `{"instances": [...]}` JSON), sent over `concurrency`
keep-alive connections by a minimal asyncio client (`drive`), after a warm-up of 2 x
concurrency requests; servers alternate A B A B over `--rounds`. Reported per
server and level: requests answered per second, p50 and p99 latency of
the answered requests (median over rounds), errors (non-200 answers: counted,
not fatal), and portaclass's throughput as a ratio of the naive one.

    python benchmarks/serve.py                        # a 1-epoch simple_cnn run at 32 px, torch
    python benchmarks/serve.py --run RUN --backend jax --requests 2000 --concurrency 1,8,32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def tiny_run(folder: Path, image_size: int) -> Path:
    """A 1-epoch simple_cnn run on drawn shapes: a small model, as the goal states."""
    code = (
        "import sys; from portaclass.data import write_shapes; "
        "from portaclass.train.options import TrainOptions; from portaclass.train.runner import run_training; "
        f"root = write_shapes(sys.argv[1] + '/shapes', n_per_class=32, image_size={image_size}, seed=0); "
        f"run_training(TrainOptions(data=str(root), model='simple_cnn', image_size={image_size}, epochs=1, "
        "batch_size=32, out=sys.argv[1] + '/run', quiet=True, report=False), log=lambda line: None)")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)
    return folder / "run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, command: list[str], ready: str, port: int | None):
        self.name, self.port = name, port
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.process.stdout:
            found = re.search(r"127\.0\.0\.1:(\d+)", line)
            if found and self.port is None:
                self.port = int(found.group(1))
            if ready in line:
                break
        else:
            raise RuntimeError(f"{name} exited before it was ready ({self.process.wait()})")
        self.log: list[str] = []  # drained, so a server that logs a lot never blocks on its pipe
        threading.Thread(target=lambda: self.log.extend(self.process.stdout), daemon=True).start()
        self._wait_listening()

    def last_error(self) -> str | None:
        """The last exception line the server logged (a traceback's final line),
        or how it ended if it died."""
        if self.process.poll() is not None:
            return f"the server exited with {self.process.returncode}: {' '.join(self.log[-3:])[:300]}"
        lines = [line.strip() for line in self.log if re.match(r"^\w+(\.\w+)*(Error|Exception)\b", line)]
        return lines[-1][:300] if lines else None

    def _wait_listening(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} never listened on {self.port}")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def drive(port: int, path: str, bodies: list[bytes], concurrency: int):
    """Send every body with ``concurrency`` keep-alive connections; (seconds,
    latencies of the answered requests, error status lines). A minimal HTTP/1.1 client on asyncio streams: httpx spent
    11 ms of CPU per request here, on the same 2 cores as the server, and
    capped both servers alike."""
    latencies: list[float] = []
    errors: list[str] = []
    pending = list(reversed(bodies))

    async def connection():
        try:
            await requests_on_one_connection()
        except (ConnectionError, asyncio.IncompleteReadError) as error:  # the server died
            errors.append(f"connection lost: {error!r}")

    async def requests_on_one_connection():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while pending:
                body = pending.pop()
                started = time.perf_counter()
                writer.write(f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(body)}\r\n\r\n".encode() + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.perf_counter() - started)
                else:  # counted, not fatal: the naive server fails under load on some backends
                    errors.append(head.splitlines()[0].decode(errors="replace"))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    errors.extend(["not sent: no server left"] * len(pending))
    return time.perf_counter() - started, latencies, errors


def measure(server: Server, model_name: str, bodies: list[bytes], concurrency: int) -> dict:
    path = f"/v1/models/{model_name}:predict"
    asyncio.run(drive(server.port, path, bodies[: 2 * concurrency], concurrency))  # warm-up: threads
    seconds, latencies, errors = asyncio.run(drive(server.port, path, bodies, concurrency))
    latencies.sort()
    answered = len(latencies)
    return {"server": server.name, "concurrency": concurrency, "requests": len(bodies),
            "errors": len(errors), "error": (errors[0], server.last_error()) if errors else None,
            "requests_per_s": answered / seconds,  # answered correctly, per second
            "p50_ms": 1000 * latencies[answered // 2] if answered else float("nan"),
            "p99_ms": 1000 * latencies[min(answered - 1, int(answered * 0.99))] if answered else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run folder to serve (default: a fresh 1-epoch simple_cnn run)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve-args", default="", help="extra `portaclass serve` options")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    levels = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        run = Path(args.run) if args.run else tiny_run(Path(scratch), args.image_size)
        from portaclass.run import Run

        h, w, c = Run.open(run).model_info()["input_shape"]
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (64, h, w, c)).tolist()
        bodies = [json.dumps({"instances": [images[i % 64]]}).encode() for i in range(args.requests)]
        model_name = "bench"
        servers = {
            "portaclass serve": [sys.executable, "-m", "portaclass", "serve", str(run), "--port", "0",
                                 "--name", model_name, *args.serve_args.split()],
            "naive model.predict": [sys.executable, str(HERE / "naive_serve.py"), str(run / "model.keras")],
        }
        results = []
        for _ in range(args.rounds):
            for level in levels:
                for name, command in servers.items():  # A B A B: drift hits both alike
                    port = None if "--port" in command else free_port()
                    server = Server(name, command + ([str(port)] if port else []),
                                    "serving" if port is None else "ready", port)
                    try:
                        results.append(measure(server, model_name, bodies, level))
                        print(json.dumps(results[-1]), flush=True)
                    finally:
                        server.stop()
        report(results, levels, args, f"{h}x{w}")


def report(results: list[dict], levels: list[int], args, size: str) -> None:
    def median(server, level, key):
        return statistics.median(r[key] for r in results if r["server"] == server and r["concurrency"] == level)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; backend {args.backend}; "
          f"{args.requests} requests per level, one {size} image each; {args.rounds} round(s)")
    print("| concurrency | server | requests/s | p50 ms | p99 ms | errors | throughput vs naive |")
    print("|---|---|---|---|---|---|---|")
    for level in levels:
        naive = median("naive model.predict", level, "requests_per_s")
        for server in ("portaclass serve", "naive model.predict"):
            rate = median(server, level, "requests_per_s")
            errors = sum(r["errors"] for r in results if r["server"] == server and r["concurrency"] == level)
            ratio = f"{rate / naive:.2f}x" if naive else "n/a"
            print(f"| {level} | {server} | {rate:.0f} | {median(server, level, 'p50_ms'):.1f} | "
                  f"{median(server, level, 'p99_ms'):.1f} | {errors} | {ratio} |")


if __name__ == "__main__":
    main()
