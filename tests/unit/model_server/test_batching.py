"""Micro-batching: concurrent requests share model calls, each gets its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from model_server.batching import MicroBatcher
from model_server.predictor import Prediction

from .helpers import sample


class FakeModel:
    """Labels are each row's first value; probabilities its first two. Records every call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        with self.lock:
            self.calls.append(len(rows))
        time.sleep(self.delay)
        if (rows < 0).any():
            raise ValueError("negative input")
        return Prediction(labels=rows[:, 0].copy(), probabilities=rows[:, :2].copy() if with_probabilities else None)


def rows_of(value: float, count: int = 1) -> np.ndarray:
    return np.full((count, 4), value)


def test_a_lone_request_runs_at_once_alone() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, max_rows=64)
    result = batcher.predict(rows_of(3.0, 2), with_probabilities=True)
    assert result.labels.tolist() == [3.0, 3.0]
    assert result.probabilities is not None and result.probabilities.shape == (2, 2)
    assert model.calls == [2]


def test_requests_arriving_during_a_call_share_the_next_one() -> None:
    model = FakeModel(delay=0.2)
    batcher = MicroBatcher(model, max_rows=64)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.predict, rows_of(100.0))
        time.sleep(0.05)  # the first call is running: these queue behind it
        rest = [pool.submit(batcher.predict, rows_of(float(i), i % 3 + 1), i % 2 == 0) for i in range(1, 8)]
        results = [f.result(timeout=10) for f in rest]
    assert first.result().labels.tolist() == [100.0]
    assert model.calls[0] == 1 and sum(model.calls) == 1 + sum(i % 3 + 1 for i in range(1, 8))
    assert len(model.calls) == 2, f"expected one batched call after the first, got {model.calls}"
    for i, result in enumerate(results, start=1):
        assert result.labels.tolist() == [float(i)] * (i % 3 + 1)
        if i % 2 == 0:
            assert result.probabilities is not None and result.probabilities.shape == (i % 3 + 1, 2)
        else:
            assert result.probabilities is None


def test_a_bad_request_does_not_fail_its_batch_mates() -> None:
    model = FakeModel(delay=0.1)
    batcher = MicroBatcher(model, max_rows=64)
    with ThreadPoolExecutor(6) as pool:
        pool.submit(batcher.predict, rows_of(9.0))
        time.sleep(0.03)
        good = [pool.submit(batcher.predict, rows_of(float(i))) for i in range(4)]
        bad = pool.submit(batcher.predict, rows_of(-1.0))
        assert [g.result(timeout=10).labels.tolist() for g in good] == [[0.0], [1.0], [2.0], [3.0]]
        with pytest.raises(ValueError, match="negative input"):
            bad.result(timeout=10)


def test_batches_stop_at_max_rows() -> None:
    model = FakeModel(delay=0.05)
    batcher = MicroBatcher(model, max_rows=4)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(batcher.predict, rows_of(float(i), 2)) for i in range(12)]
        assert [f.result(timeout=10).labels.tolist() for f in futures] == [[float(i)] * 2 for i in range(12)]
    assert max(model.calls) <= 4
    big = batcher.predict(rows_of(1.0, 10))  # one request over the limit still runs, alone
    assert len(big.labels) == 10 and model.calls[-1] == 10


def test_max_wait_lets_a_leader_gather_more() -> None:
    model = FakeModel()
    batcher = MicroBatcher(model, max_rows=64, max_wait_seconds=0.3)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.predict, rows_of(float(i))) for i in range(4)]
        assert sorted(f.result(timeout=10).labels[0] for f in futures) == [0.0, 1.0, 2.0, 3.0]
    assert model.calls == [4]


def test_batch_metrics_recorded() -> None:
    before_count = sample("model_server_batch_size_count")
    before_sum = sample("model_server_batch_size_sum")
    waits = sample("model_server_batch_queue_wait_seconds_count")
    model = FakeModel(delay=0.1)
    batcher = MicroBatcher(model, max_rows=64)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.predict, rows_of(1.0))
        time.sleep(0.03)
        rest = [pool.submit(batcher.predict, rows_of(2.0)) for _ in range(3)]
        [f.result(timeout=10) for f in (first, *rest)]
    assert sample("model_server_batch_size_count") - before_count == 2  # two model calls
    assert sample("model_server_batch_size_sum") - before_sum == 4  # four requests
    assert sample("model_server_batch_queue_wait_seconds_count") - waits == 4


def test_concurrent_api_requests_get_their_own_predictions(app_factory: Any, estimator: Any, rows: np.ndarray) -> None:
    client_app = app_factory(batch_max_rows=64)
    chunks = [rows[i : i + 3] for i in range(0, 60, 3)]

    def ask(chunk: np.ndarray) -> list:
        with client_app.test_client() as client:
            return client.post("/predict", json={"features": chunk.tolist()}).get_json()["prediction"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, chunks))
    assert answers == [estimator.predict(chunk).tolist() for chunk in chunks]


def test_batching_can_be_turned_off(app_factory: Any) -> None:
    app = app_factory(batch_max_rows=0)
    assert app.extensions["model_server"].batcher is None
    before = sample("model_server_batch_size_count")
    response = app.test_client().post("/predict", json={"features": [1, 2, 3, 4]})
    assert response.status_code == 200
    assert sample("model_server_batch_size_count") == before
