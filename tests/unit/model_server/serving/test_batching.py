"""Micro-batching: concurrent requests share model calls, each gets its own answer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from model_server.app import write_held_metrics
from model_server.monitoring import metrics
from model_server.serving import batching
from model_server.serving.batching import PROBE_EVERY, BatchInterrupted, MicroBatcher
from model_server.serving.predictor import Prediction

from ..helpers import INFER, assert_error, sample, v2_input

HANG = 5.0  # seconds: a request not answered by then would never be
GEVENT_SCENARIOS = Path(__file__).with_name("gevent_batching.py")  # run, never imported: it patches the stdlib


class FakeModel:
    """Labels are each row's first value plus ``offset``; probabilities its first two. Records every call."""

    def __init__(self, delay: float = 0.0, offset: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.offset = offset
        self.lock = threading.Lock()

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        with self.lock:
            self.calls.append(len(rows))
        time.sleep(self.delay)
        if (rows < 0).any():
            raise ValueError("negative input")
        probabilities = rows[:, :2].copy() if with_probabilities else None
        return Prediction(labels=rows[:, 0] + self.offset, probabilities=probabilities)


class OneModel:
    """A batcher in front of one model, as a version's Servable uses the worker's batcher."""

    def __init__(self, model: Any, **settings: Any) -> None:
        self.model, self.batcher = model, MicroBatcher(**settings)

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        return self.batcher.predict(self.model, rows, with_probabilities)


def rows_of(value: float, count: int = 1) -> np.ndarray:
    return np.full((count, 4), value)


def test_a_lone_request_runs_at_once_alone() -> None:
    model = FakeModel()
    batcher = OneModel(model, max_rows=64)
    result = batcher.predict(rows_of(3.0, 2), with_probabilities=True)
    assert result.labels.tolist() == [3.0, 3.0]
    assert result.probabilities is not None and result.probabilities.shape == (2, 2)
    assert model.calls == [2]


def test_requests_arriving_during_a_call_share_the_next_one() -> None:
    model = FakeModel(delay=0.2)
    batcher = OneModel(model, max_rows=64)
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
    batcher = OneModel(model, max_rows=64)
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
    batcher = OneModel(model, max_rows=4)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(batcher.predict, rows_of(float(i), 2)) for i in range(12)]
        assert [f.result(timeout=10).labels.tolist() for f in futures] == [[float(i)] * 2 for i in range(12)]
    assert max(model.calls) <= 4
    big = batcher.predict(rows_of(1.0, 10))  # one request over the limit still runs, alone
    assert len(big.labels) == 10 and model.calls[-1] == 10


def test_max_wait_lets_a_leader_gather_more() -> None:
    model = FakeModel()
    batcher = OneModel(model, max_rows=64, max_wait_seconds=0.3)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.predict, rows_of(float(i))) for i in range(4)]
        assert sorted(f.result(timeout=10).labels[0] for f in futures) == [0.0, 1.0, 2.0, 3.0]
    assert model.calls == [4]


def test_one_gathering_makes_one_call_per_model_and_answers_each_from_its_model() -> None:
    # A canary's requests wait in the same queue as the primary's: one gathering, one call per model.
    primary, canary = FakeModel(delay=0.2), FakeModel(offset=1000)
    batcher = MicroBatcher(max_rows=64)
    calls = sample("model_server_batch_size_count")
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.predict, primary, rows_of(100.0))
        time.sleep(0.05)  # the first call is running: these queue behind it, the models interleaved
        models = [primary, canary, primary, primary, canary, primary]
        rest = [pool.submit(batcher.predict, m, rows_of(float(i), 2), i == 1) for i, m in enumerate(models)]
        results = [f.result(timeout=10) for f in rest]
    assert first.result().labels.tolist() == [100.0]
    assert primary.calls == [1, 8] and canary.calls == [4], (primary.calls, canary.calls)
    assert sample("model_server_batch_size_count") - calls == 3
    for i, (model, result) in enumerate(zip(models, results, strict=True)):
        assert result.labels.tolist() == [float(i) + (1000 if model is canary else 0)] * 2
        assert (result.probabilities is not None) == (i == 1)


def test_a_model_that_fails_its_gathered_call_fails_no_request_of_another_model() -> None:
    good, failing = FakeModel(delay=0.2), FakeModel()
    batcher = MicroBatcher(max_rows=64)
    with ThreadPoolExecutor(6) as pool:
        pool.submit(batcher.predict, good, rows_of(9.0))
        time.sleep(0.05)
        asked = [(good, 1.0), (failing, -1.0), (good, 2.0), (failing, 3.0)]
        futures = [pool.submit(batcher.predict, model, rows_of(value)) for model, value in asked]
        assert futures[0].result(timeout=10).labels.tolist() == [1.0]
        assert futures[2].result(timeout=10).labels.tolist() == [2.0]
        assert futures[3].result(timeout=10).labels.tolist() == [3.0]  # retried alone, without the bad row
        with pytest.raises(ValueError, match="negative input"):
            futures[1].result(timeout=10)
    assert good.calls == [1, 2] and failing.calls == [2, 1, 1], (good.calls, failing.calls)


def test_batch_metrics_recorded() -> None:
    before_count = sample("model_server_batch_size_count")
    before_sum = sample("model_server_batch_size_sum")
    waits = sample("model_server_batch_queue_wait_seconds_count")
    model = FakeModel(delay=0.1)
    batcher = OneModel(model, max_rows=64)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.predict, rows_of(1.0))
        time.sleep(0.03)
        rest = [pool.submit(batcher.predict, rows_of(2.0)) for _ in range(3)]
        [f.result(timeout=10) for f in (first, *rest)]
    assert sample("model_server_batch_size_count") - before_count == 2  # two model calls
    assert sample("model_server_batch_size_sum") - before_sum == 4  # four requests
    assert sample("model_server_batch_queue_wait_seconds_count") - waits == 4


def recorded_yields(monkeypatch: pytest.MonkeyPatch, model: FakeModel) -> list[int]:
    """The batcher's own yields (its ``time.sleep(0)``), each as the number of ``model``'s calls before it."""
    yields: list[int] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        yields.append(len(model.calls))
        real_sleep(seconds)

    monkeypatch.setattr(batching, "time", SimpleNamespace(sleep=sleep, perf_counter=time.perf_counter))
    return yields


# A fresh batcher takes load for granted (its share of gatherings that found company starts at 1). Each
# gathering that finds nobody leaves 7/8 of the share (COMPANY_SMOOTHING 8), and under LONE_BELOW (0.1) an idle
# worker's requests answer alone: 0.875 ** 17 = 0.103, 0.875 ** 18 = 0.090, so the first 18 requests gather.
GATHERED_FIRST = 18


def test_the_constants_the_tests_count_with() -> None:
    assert (batching.COMPANY_SMOOTHING, batching.LONE_BELOW) == (8, 0.1)


def settled(batcher: OneModel) -> None:
    """The first GATHERED_FIRST requests, one at a time: afterwards the batcher answers an idle worker's alone."""
    for _ in range(GATHERED_FIRST):
        batcher.predict(rows_of(1.0))


def test_an_idle_worker_pays_no_yield_once_gatherings_find_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel()
    batcher = OneModel(model, max_rows=64)
    yields = recorded_yields(monkeypatch, model)
    names = ("batch_size_count", "batch_size_sum", "batch_queue_wait_seconds_count")
    before = {name: sample(f"model_server_{name}") for name in names}
    waited_0 = sample("model_server_batch_queue_wait_seconds_bucket", le="0.0001")
    requests = GATHERED_FIRST + 2 * PROBE_EVERY
    answers = [batcher.predict(rows_of(float(i))).labels.tolist() for i in range(requests)]

    assert answers == [[float(i)] for i in range(requests)]
    assert model.calls == [1] * requests
    # Each of the first 18 looks for company and finds none; then one lead in PROBE_EVERY looks again.
    first_probe = GATHERED_FIRST + PROBE_EVERY - 1
    assert yields == [*range(GATHERED_FIRST), first_probe, first_probe + PROBE_EVERY]
    # Lone requests are counted as batches of one that waited 0 s, like gathered ones, once written.
    batcher.batcher.write_metrics()
    after = {name: sample(f"model_server_{name}") for name in before}
    assert {name: after[name] - before[name] for name in before} == dict.fromkeys(before, requests)
    lone = requests - len(yields)  # those never queued: 0 s (a gathered request's yield may take longer)
    assert sample("model_server_batch_queue_wait_seconds_bucket", le="0.0001") - waited_0 >= lone


def test_a_request_with_others_in_flight_in_its_worker_looks_for_company(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel()
    batcher = OneModel(model, max_rows=64)
    yields = recorded_yields(monkeypatch, model)
    in_flight = [1.0]
    monkeypatch.setattr(metrics, "in_flight_here", lambda: in_flight[0])
    settled(batcher)
    for _ in range(2):  # alone in the worker: answered alone
        batcher.predict(rows_of(1.0))
    in_flight[0] = 3.0  # two more requests are being read by this worker
    for _ in range(2):
        batcher.predict(rows_of(1.0))
    assert yields == [*range(GATHERED_FIRST), GATHERED_FIRST + 2, GATHERED_FIRST + 3]


def test_a_timer_writes_the_lone_requests_metrics_within_a_second_and_the_worker_before_it_exits(
    monkeypatch: pytest.MonkeyPatch, app_factory: Any
) -> None:
    monkeypatch.setattr(batching, "LONE_METRICS_SECONDS", 0.2)
    batcher = OneModel(FakeModel(), max_rows=64)
    settled(batcher)  # gathered: written at once
    before, before_sum = sample("model_server_batch_size_count"), sample("model_server_batch_size_sum")
    for _ in range(4):  # answered alone
        batcher.predict(rows_of(1.0))
    assert sample("model_server_batch_size_count") - before == 0, "the lone requests' metrics are held"
    deadline = time.monotonic() + HANG
    while sample("model_server_batch_size_count") - before < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sample("model_server_batch_size_count") - before == 4
    assert sample("model_server_batch_size_sum") - before_sum == 4

    monkeypatch.setattr(batching, "LONE_METRICS_SECONDS", 3600.0)  # no timer before the worker exits
    app = app_factory()
    client = app.test_client()
    for _ in range(GATHERED_FIRST + 2):
        assert client.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 200
    held = sample("model_server_batch_size_count")
    write_held_metrics(app)  # gunicorn.conf.py's worker_exit
    assert sample("model_server_batch_size_count") - held == 2, "the two requests answered alone"
    write_held_metrics(lambda environ, start_response: [])  # gunicorn's app for a worker that failed to load: none


def test_gevent_imported_without_its_monkey_patching_leaves_the_timer_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def unpatched(*args: Any) -> None:
        raise AssertionError("not a greenlet: gevent patched nothing")

    monkeypatch.setitem(sys.modules, "gevent", SimpleNamespace(spawn_later=unpatched))  # no gevent.monkey
    monkeypatch.delitem(sys.modules, "gevent.monkey", raising=False)
    done = threading.Event()
    batching._call_later(0.01, done.set)
    assert done.wait(HANG)


def test_a_gathering_that_finds_company_makes_the_next_leads_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeModel()
    batcher = OneModel(model, max_rows=64)
    yields = recorded_yields(monkeypatch, model)
    settled(batcher)
    batcher.predict(rows_of(1.0))  # answered alone
    assert yields == [*range(GATHERED_FIRST)]
    model.delay = 0.2
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.predict, rows_of(2.0))  # alone: no yield
        time.sleep(0.05)
        rest = [pool.submit(batcher.predict, rows_of(3.0)) for _ in range(3)]  # they queue behind it
        assert [f.result(timeout=HANG).labels.tolist() for f in (first, *rest)] == [[2.0], [3.0], [3.0], [3.0]]
    assert model.calls[-2:] == [1, 3], "the three that queued are gathered into one call"
    model.delay = 0.0
    batcher.predict(rows_of(4.0))
    calls = GATHERED_FIRST + 2  # before the queued requests' call
    assert yields[GATHERED_FIRST:] == [calls, calls + 1], "their leader looked for company, and so does the next lead"


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


# --- whatever happens in a batch, every request gets an answer and the next one is served -----


def ask(batcher: OneModel, rows: np.ndarray) -> Future:
    """``batcher.predict(rows)`` in a daemon thread: a request that hangs cannot hang the tests."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(batcher.predict(rows))
        except BaseException as exc:  # the leader's own BaseException is part of what is checked
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def outcomes(futures: list[Future]) -> list[Any]:
    """Each request's labels, or the exception it raised; fails if one gets no answer."""
    results: list[Any] = []
    for future in futures:
        try:
            results.append(future.result(timeout=HANG).labels.tolist())
        except TimeoutError:
            pytest.fail("a request of the batch hangs: it got neither an answer nor an error")
        except BaseException as exc:
            results.append(exc)
    return results


def behind_a_running_call(batcher: OneModel, values: list[float]) -> tuple[Future, list[Future]]:
    """One request in a model call (label 100), then requests queued behind it, in this order."""
    first = ask(batcher, rows_of(100.0))
    time.sleep(0.05)
    queued = []
    for value in values:
        queued.append(ask(batcher, rows_of(value)))
        time.sleep(0.01)  # in this order: the first of them leads the next batch
    return first, queued


class Abort(BaseException):
    """Like gevent.Timeout or GreenletExit: not an Exception, so no ``except Exception`` stops it."""


def kinds(results: list[Any]) -> list[str]:
    return sorted("answer" if isinstance(r, list) else type(r).__name__ for r in results)


@pytest.mark.parametrize("where", ["observe_many", "BATCH_SIZE.observe"])
def test_a_metrics_write_that_fails_in_the_leader_answers_the_batch(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    batcher = OneModel(FakeModel(delay=0.2), max_rows=64)
    first, batch = behind_a_running_call(batcher, [0.0, 1.0, 2.0])
    owner, name = (metrics, where) if "." not in where else (getattr(metrics, where.split(".")[0]), "observe")

    def broken(*_args: Any) -> None:
        raise RuntimeError("metrics storage unavailable")

    monkeypatch.setattr(owner, name, broken)  # while the first call runs: the next batch's leader hits it
    results = outcomes(batch)
    monkeypatch.undo()

    assert outcomes([first]) == [[100.0]]
    # The leader (whichever request queued first) gets its own error, its batch-mates theirs.
    assert kinds(results) == ["BatchInterrupted", "BatchInterrupted", "RuntimeError"], results
    assert all("RuntimeError" in str(r) for r in results if isinstance(r, BatchInterrupted))
    assert outcomes([ask(batcher, rows_of(7.0))]) == [[7.0]], "the next request is served"


def test_a_base_exception_from_the_model_answers_the_batch() -> None:
    class AbortingModel(FakeModel):
        def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
            prediction = super().predict(rows, with_probabilities)
            if len(self.calls) == 2:  # the batch behind the first call
                raise Abort("interrupted")
            return prediction

    batcher = OneModel(AbortingModel(delay=0.2), max_rows=3)
    values = [0.0, 1.0, 2.0, 3.0]
    first, batch = behind_a_running_call(batcher, values)  # a batch of three, and one behind it

    results = outcomes(batch)

    assert outcomes([first]) == [[100.0]]
    # The leader's own BaseException reaches the leader; its batch-mates get an error; the request
    # queued behind the interrupted batch is served by the next leader.
    assert kinds(results) == ["Abort", "BatchInterrupted", "BatchInterrupted", "answer"], results
    assert all(r == [v] for r, v in zip(results, values, strict=True) if isinstance(r, list))
    assert outcomes([ask(batcher, rows_of(7.0))]) == [[7.0]]


@pytest.mark.parametrize("failure", [ValueError, Abort])
def test_a_lone_request_that_fails_leaves_the_batcher_serving(failure: type[BaseException]) -> None:
    class FailingOnce(FakeModel):
        def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
            if len(self.calls) == GATHERED_FIRST:  # the first request answered alone
                self.calls.append(len(rows))
                raise failure("the model failed")
            return super().predict(rows, with_probabilities)

    model = FailingOnce()
    batcher = OneModel(model, max_rows=64)
    settled(batcher)
    with pytest.raises(failure, match="the model failed"):
        batcher.predict(rows_of(2.0))
    assert outcomes([ask(batcher, rows_of(3.0)) for _ in range(1)]) == [[3.0]], "the next request is served"


@pytest.mark.parametrize(
    "scenario",
    [
        "follower_killed_while_waiting",
        "follower_killed_as_leadership_is_handed_to_it",
        "follower_killed_as_it_starts_to_lead",
        "leader_killed_in_its_model_call",
        "leader_timed_out_in_its_model_call",
    ],
)
def test_interrupted_greenlets_never_stall_the_batcher(scenario: str) -> None:
    # Under gevent (the server's worker), in a process of its own: it patches the standard library.
    result = subprocess.run(
        [sys.executable, str(GEVENT_SCENARIOS), scenario],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


@pytest.mark.parametrize("path", ["/predict", INFER])
def test_an_interrupted_batch_is_a_503_that_invites_a_retry(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    app = app_factory(batch_max_rows=64)

    def interrupted(*_args: Any) -> Prediction:
        raise BatchInterrupted("the request leading this request's batch failed with GreenletExit")

    monkeypatch.setattr(app.extensions["model_server"].batcher, "predict", interrupted)
    body = {"features": [1, 2, 3, 4]} if path == "/predict" else {"inputs": [v2_input([1, 2, 3, 4], [1, 4])]}

    response = app.test_client().post(path, json=body)

    assert_error(response, 503, "interrupted", "retry")
    assert response.headers["Retry-After"] == "1"
