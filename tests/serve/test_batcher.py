"""The dynamic batcher on its own, with a stand-in model: requests that
arrive together share one call, each gets its own rows, a request that makes
the model fail fails alone, and stopping answers what is queued."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from portaclass.serve.batcher import DynamicBatcher

pytestmark = pytest.mark.one_backend  # no framework involved


class CountingModel:
    """Rows = the images' first pixel; raises on any image whose pixels are 13."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, pixels):
        self.calls.append(len(pixels))
        if (pixels == 13).all(axis=(1, 2, 3)).any():
            raise ValueError("poisoned image")
        return pixels[:, 0, 0, :].astype(np.float32)


def _images(value, count=1):
    return np.full((count, 2, 2, 1), value, np.uint8)


def _submit_together(batcher, values):
    """Submit one request per value from as many threads at once."""
    futures = [None] * len(values)
    start = threading.Barrier(len(values))

    def submit(i):
        start.wait()
        futures[i] = batcher.submit(_images(values[i]))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(values))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return futures


def test_requests_arriving_together_share_one_call_and_get_their_own_rows():
    model, batches = CountingModel(), []
    batcher = DynamicBatcher(model, max_batch=32, max_wait_s=0.5,
                             on_batch=lambda images, requests: batches.append(requests)).start()
    try:
        futures = _submit_together(batcher, list(range(1, 9)))
        results = [future.result(10) for future in futures]
    finally:
        batcher.stop()
    assert [int(r[0, 0]) for r in results] == list(range(1, 9))
    assert sum(batches) == 8 and len(model.calls) < 8


def test_a_batch_never_exceeds_max_batch():
    model = CountingModel()
    batcher = DynamicBatcher(model, max_batch=4, max_wait_s=0.3).start()
    try:
        futures = _submit_together(batcher, list(range(1, 11)))
        assert [int(f.result(10)[0, 0]) for f in futures] == list(range(1, 11))
    finally:
        batcher.stop()
    assert max(model.calls) <= 4 and sum(model.calls) == 10


def test_a_request_that_makes_the_model_fail_fails_alone():
    model = CountingModel()
    batcher = DynamicBatcher(model, max_batch=32, max_wait_s=0.5).start()
    try:
        futures = _submit_together(batcher, [1, 2, 13, 4])
        with pytest.raises(ValueError, match="poisoned"):
            futures[2].result(10)
        assert [int(futures[i].result(10)[0, 0]) for i in (0, 1, 3)] == [1, 2, 4]
    finally:
        batcher.stop()


def test_stop_answers_what_is_queued_then_refuses_new_requests():
    model = CountingModel()
    batcher = DynamicBatcher(model, max_batch=2, max_wait_s=5.0).start()
    futures = [batcher.submit(_images(v)) for v in (1, 2, 3, 4, 5)]
    batcher.stop()
    assert [int(f.result(0)[0, 0]) for f in futures] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="not running"):
        batcher.submit(_images(6)).result(1)


def test_a_batch_holding_every_request_on_its_way_runs_without_waiting():
    model = CountingModel()
    # max_wait of a minute: the answer can only come back in time if the batch did not wait
    batcher = DynamicBatcher(model, max_batch=32, max_wait_s=60.0, coming=lambda: 1).start()
    try:
        assert int(batcher.submit(_images(7)).result(20)[0, 0]) == 7
    finally:
        batcher.stop()
