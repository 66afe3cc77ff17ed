"""Dynamic batching: requests that arrive together run through the model
together.

Requests wait in a queue; one thread takes the first, gathers more until the
batch holds ``max_batch`` images or ``max_wait_s`` has passed since it took the
first, runs the model once and answers each request with its own rows. A
model call is mostly fixed cost on a small model (per-call overhead in Keras,
kernel launches), so at 32 concurrent clients one call of 32 images serves all
of them for about the price of one. One thread owns the model: frameworks run
their own thread pools inside a call, and calls from many threads at once only
contend for the same cores.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

_STOP = object()


@dataclass
class _Request:
    pixels: np.ndarray  # (n, H, W, C) uint8
    future: Future


class DynamicBatcher:
    """Gathers requests into batches for ``run_batch(pixels) -> rows``.

    Args:
        run_batch: the model call, (N, ...) images -> (N, ...) results.
        max_batch: the most images in one call (a single larger request runs
            alone; the model splits it).
        max_wait_s: how long the first request waits for company.
        on_batch: called with (images, requests) after every model call
            (metrics).
        coming: how many requests are on their way to the batcher (received
            by the server, not yet answered); a batch that holds them all
            runs without waiting. At one client at a time this takes the
            whole ``max_wait_s`` off every request.
    """

    def __init__(self, run_batch, *, max_batch: int, max_wait_s: float, on_batch=None, coming=None):
        self._run_batch = run_batch
        self._coming = coming or (lambda: max_batch)
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch or (lambda images, requests: None)
        self._queue: queue.Queue = queue.Queue()
        self._held: _Request | None = None  # taken from the queue but too big for the last batch
        self._thread = threading.Thread(target=self._loop, name="portaclass-batcher", daemon=True)

    def start(self) -> DynamicBatcher:
        self._thread.start()
        return self

    def submit(self, pixels: np.ndarray) -> Future:
        """Queue ``pixels`` (n, H, W, C); the future holds their n rows."""
        future: Future = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("the model is not running (server stopping)"))
        else:
            self._queue.put(_Request(pixels, future))
        return future

    async def run(self, pixels: np.ndarray) -> np.ndarray:
        """``submit`` for async code: await the rows without blocking the loop."""
        return await asyncio.wrap_future(self.submit(pixels))

    def stop(self, timeout: float = 60.0) -> None:
        """Answer everything queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._held or self._queue.get()
            self._held = None
            if first is _STOP:
                return
            batch, stopping = self._gather(first)
            self._answer(batch)
            if stopping:
                self._answer_rest()
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, images = [first], len(first.pixels)
        deadline = time.monotonic() + self._max_wait_s
        while images < self._max_batch and len(batch) < self._coming():
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            if images + len(item.pixels) > self._max_batch:
                self._held = item
                break
            batch.append(item)
            images += len(item.pixels)
        return batch, False

    def _answer_rest(self) -> None:
        rest = [self._held] if self._held else []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP:
                rest.append(item)
        for item in rest:
            self._answer([item])

    def _answer(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            rows = self._run_batch(np.concatenate([r.pixels for r in live]))
        except Exception as error:  # noqa: BLE001 - answered to the request(s), never fatal
            if len(live) == 1:
                live[0].future.set_exception(error)
                return
            # One bad request must not fail its neighbours: run each alone.
            for request in live:
                self._answer_one_started(request)
            return
        self._on_batch(len(rows), len(live))
        start = 0
        for request in live:
            request.future.set_result(rows[start:start + len(request.pixels)])
            start += len(request.pixels)

    def _answer_one_started(self, request: _Request) -> None:
        try:
            rows = self._run_batch(request.pixels)
        except Exception as error:  # noqa: BLE001
            request.future.set_exception(error)
            return
        self._on_batch(len(rows), 1)
        request.future.set_result(rows)
