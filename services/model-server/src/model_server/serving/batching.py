"""Adaptive micro-batching: concurrent requests of one worker share model calls.

Leader/follower, no thread of its own, one batcher per worker for all the models it serves. A
request that finds the batcher idle leads a gathering: it first yields once (``time.sleep(0)``),
so that every request already received by this worker reaches the queue, then takes the queue (up
to ``max_rows`` rows) and makes one model call per model among the requests taken, in the order
they came. Requests that arrive meanwhile queue up; when the gathering ends, the first of them
leads the next one. Batch size therefore follows the load by itself. ``max_wait`` (default 0)
optionally lets a leader wait a little longer for more requests.

Free when the worker is idle. Under gevent the yield is a turn of the event loop, which costs a
lone request more than the rest of the batcher (measured: about 35 µs in a replica, 7 % of its
requests per second at concurrency 1). So the batcher keeps a running share of its recent
gatherings that found company (an average over about ``COMPANY_SMOOTHING`` of them), and while
that share is under ``LONE_BELOW``, a request that finds the batcher idle and no other request
in flight in its worker (``metrics.in_flight_here``) answers alone: one model call, no queue, no
yield. Every ``PROBE_EVERY``-th lead still gathers, to look for company again; one that finds it
raises the share, and the leads after it gather again. Under gevent a request the worker has
accepted but not yet read is not in flight, so in-flight alone cannot tell load from idleness:
the share can. A lone request's batch metrics (a batch of 1, a wait of 0 s) are counted in
memory and written in bulk within ``LONE_METRICS_SECONDS`` (by a timer in the background;
:meth:`MicroBatcher.write_metrics` when the worker exits): the batch metrics lag by up to that
long, and a worker killed outright loses at most that much of them. With ``max_wait`` set,
every request gathers.

One batcher per worker, not one per model: under gevent (the server's worker) a model call holds
the worker's only thread anyway, so calls never overlap, and one gathering for every model keeps
the requests of a version with a small share of the traffic (a canary at 10 %) in the gathering
of the others. A batcher per version made each such request a gathering of its own: more model
calls and more leaders for the same traffic.

The yield is what makes batching work under gevent: a greenlet runs until it blocks, so without
it a leader would never see the requests its worker has not yet read. With threads it hands the
GIL to request threads that are ready.

Results are split back per request. If a batched call fails, each request of that call is
retried alone, so one bad request never fails its batch-mates, and one model's failure never
fails the requests for another.

Invariant: a leader always passes leadership on and answers every request of its batch, whatever
happens in it. Its work runs in ``try``/``finally``: an error outside the model calls (a metrics
write) or a ``BaseException`` (``gevent.Timeout``, ``GreenletExit`` when a greenlet is killed)
still reaches the leader itself, while its batch-mates get :class:`BatchInterrupted` instead of
waiting forever. Leadership must never go to a dead waiter either: a follower interrupted while
it waits leaves the queue, and passes leadership on if it had just been handed to it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..monitoring import metrics
from .predictor import Prediction


class BatchInterrupted(Exception):
    """The request was fine, but the leader of its batch failed before answering it; retry it."""


class Model(Protocol):
    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction: ...


@dataclass(eq=False)
class _Request:
    model: Model
    rows: np.ndarray
    with_probabilities: bool
    queued_at: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: Prediction | None = None
    error: BaseException | None = None


COMPANY_SMOOTHING = 8  # the share of gatherings that found company averages over about this many of them
LONE_BELOW = 0.1  # under this share, an idle worker's request answers alone
PROBE_EVERY = 64  # and yet one lead in this many gathers, to look for company
LONE_METRICS_SECONDS = 1.0  # the longest a lone request's batch metrics wait in memory


class MicroBatcher:
    """Thread-safe front of a worker's models: ``predict`` may be called from many greenlets or threads."""

    def __init__(self, max_rows: int, max_wait_seconds: float = 0.0) -> None:
        self._max_rows = max_rows
        self._max_wait = max_wait_seconds
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Request] = []
        self._busy = False  # a leader is running; invariant: not busy => queue empty
        self._company = 1.0  # the share of recent gatherings that found company (from 1: load until shown otherwise)
        self._lone_leads = 0  # requests answered alone since the last gathering
        self._lone_size = metrics.FixedObservation(metrics.BATCH_SIZE, 1)
        self._lone_wait = metrics.FixedObservation(metrics.BATCH_QUEUE_WAIT, 0.0)
        self._lone_unwritten = 0  # lone requests whose batch metrics are not written yet
        self._writing = False  # a write of them is scheduled

    def predict(self, model: Model, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        """``model.predict(rows, with_probabilities)``, in a model call shared with concurrent requests."""
        with self._lock:
            if (
                not self._busy
                and self._company < LONE_BELOW
                and self._lone_leads < PROBE_EVERY - 1
                and self._max_wait <= 0
                and metrics.in_flight_here() <= 1
            ):
                self._busy = True  # the worker is idle, and gatherings have found nobody lately: answer alone
                self._lone_leads += 1
                alone = True
            else:
                alone = False
                request = _Request(model, rows, with_probabilities)
                self._queue.append(request)
                if self._max_wait > 0:  # only a leader that waits for batch-mates listens
                    self._arrived.notify()
                follower = self._busy
                if not follower:
                    self._busy = request.lead = True
        if alone:
            return self._answer_alone(model, rows, with_probabilities)
        if follower:
            self._follow(request)
            if not request.lead:
                return _outcome(request)
        self._lead(request)
        return _outcome(request)

    def _answer_alone(self, model: Model, rows: np.ndarray, with_probabilities: bool) -> Prediction:
        """One model call for a request answered alone (it never queues); then leadership passes on, always."""
        try:
            return model.predict(rows, with_probabilities)
        finally:
            with self._lock:
                self._pass_on()
                self._lone_unwritten += 1
                schedule = not self._writing
                self._writing = True
            if schedule:  # outside the lock
                try:
                    _call_later(LONE_METRICS_SECONDS, self.write_metrics)
                except Exception:  # no thread or greenlet to be had: write them now, and try a timer next time
                    self.write_metrics()

    def write_metrics(self) -> None:
        """Write the batch metrics of the lone requests answered since the last write (a batch of 1 each, a wait of
        0 s). A timer calls it within LONE_METRICS_SECONDS of a lone request; the worker, before it exits."""
        with self._lock:
            unwritten, self._lone_unwritten, self._writing = self._lone_unwritten, 0, False
        if unwritten:
            self._lone_size.observe(unwritten)
            self._lone_wait.observe(unwritten)

    def _follow(self, request: _Request) -> None:
        """Wait until the request is answered or made leader; if interrupted, leave the queue."""
        try:
            request.done.wait()
        except BaseException:  # gevent.Timeout, GreenletExit: nobody will act on a handed-over lead
            with self._lock:
                if request in self._queue:  # not yet taken into a batch, so never will be
                    self._queue.remove(request)
                    if request.lead:
                        self._pass_on()
            raise

    def _lead(self, request: _Request) -> None:
        """Run one batch (``request`` first in the queue), then pass leadership on, whatever happens."""
        batch: list[_Request] = []
        failure: BaseException | None = None
        try:
            time.sleep(0)  # let the requests this worker has already received join the batch
            with self._lock:
                if self._max_wait > 0:
                    deadline = time.perf_counter() + self._max_wait
                    while _rows(self._queue) < self._max_rows and (left := deadline - time.perf_counter()) > 0:
                        self._arrived.wait(left)
                batch = _take(self._queue, self._max_rows)
                found = len(batch) > 1 or bool(self._queue)
                self._company += (found - self._company) / COMPANY_SMOOTHING
                self._lone_leads = 0
            started = time.perf_counter()
            metrics.observe_many(metrics.BATCH_QUEUE_WAIT, [started - r.queued_at for r in batch])
            self._run(batch)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            with self._lock:
                if request in self._queue:  # interrupted before it took its batch
                    self._queue.remove(request)
                self._pass_on()
            for member in batch:
                if member.result is None and member.error is None:
                    member.error = BatchInterrupted(
                        f"the request leading this request's batch failed with {type(failure).__name__}"
                    )
                member.done.set()

    def _pass_on(self) -> None:
        """Hand leadership to the first queued request, or mark the batcher idle (lock held)."""
        if self._queue:
            successor = self._queue[0]
            successor.lead = True
            successor.done.set()
        else:
            self._busy = False

    def _run(self, batch: list[_Request]) -> None:
        """One model call per model among ``batch``'s requests, in the order of each model's first request."""
        by_model: dict[int, list[_Request]] = {}
        for request in batch:
            by_model.setdefault(id(request.model), []).append(request)
        for requests in by_model.values():
            metrics.BATCH_SIZE.observe(len(requests))
            _call(requests)


def _call_later(seconds: float, function: Callable[[], None]) -> None:
    """``function()`` in ``seconds``, in the background: a greenlet where gevent patched threading (spawning one
    does not yield, unlike a patched thread's ``start``), else a daemon thread."""
    monkey = sys.modules.get("gevent.monkey")  # gevent imported without its monkey module patched nothing
    if monkey is not None and monkey.is_module_patched("threading"):
        sys.modules["gevent"].spawn_later(seconds, function)
        return
    timer = threading.Timer(seconds, function)
    timer.daemon = True
    timer.start()


def _call(requests: list[_Request]) -> None:
    """One call of the requests' model (all the same) for all their rows; each alone if it fails."""
    model = requests[0].model
    if len(requests) == 1:
        _settle(requests[0])
        return
    with_probabilities = any(r.with_probabilities for r in requests)
    try:
        joined = model.predict(np.concatenate([r.rows for r in requests]), with_probabilities)
    except Exception:
        for request in requests:  # isolate the failure: each request alone
            _settle(request)
        return
    start = 0
    for request in requests:
        end = start + len(request.rows)
        probabilities = joined.probabilities if request.with_probabilities else None
        request.result = Prediction(
            labels=joined.labels[start:end],
            probabilities=probabilities[start:end] if probabilities is not None else None,
        )
        start = end


def _settle(request: _Request) -> None:
    try:
        request.result = request.model.predict(request.rows, request.with_probabilities)
    except Exception as exc:
        request.error = exc


def _outcome(request: _Request) -> Prediction:
    if request.error is not None:
        raise request.error
    assert request.result is not None
    return request.result


def _rows(queue: list[_Request]) -> int:
    return sum(len(r.rows) for r in queue)


def _take(queue: list[_Request], max_rows: int) -> list[_Request]:
    """The head of the queue up to ``max_rows`` rows (always at least one request)."""
    count, rows = 1, len(queue[0].rows)
    while count < len(queue) and rows + len(queue[count].rows) <= max_rows:
        rows += len(queue[count].rows)
        count += 1
    batch = queue[:count]
    del queue[:count]
    return batch
