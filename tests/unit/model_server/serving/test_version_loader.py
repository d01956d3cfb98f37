"""serving/version_loader.py's ThreadPoolLoads: a polling worker's load in gevent's thread pool.

The poller waits for the load in slices, beating the worker's heartbeat between them (else
gunicorn kills a worker whose load outlasts GUNICORN_TIMEOUT), and abandons it after
MODEL_LOAD_TIMEOUT. Each case runs in a thread of its own, whose gevent hub (and thread pool) it
destroys at the end: nothing outlives the test. The slices and timeouts are shrunk to keep it short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import gevent
import pytest
from model_server.repository.artifact import ModelLoadError
from model_server.serving.version_loader import LoadTimeout, ThreadPoolLoads

T = TypeVar("T")

SLICE = 0.02  # seconds between two heartbeats (1 s in the server)


@pytest.fixture(autouse=True)
def _short_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ThreadPoolLoads, "SLICE", SLICE)


def in_a_hub_of_its_own(call: Callable[[], T]) -> T:
    """``call()`` as the poller's greenlet makes it: in a thread with its own gevent hub, destroyed after."""
    values: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            values.append(call())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)
        finally:
            gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=run, name="poller-greenlet")
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the wait for the load never ended"
    if errors:
        raise errors[0]
    return values[0]


def test_the_heartbeat_beats_between_slices_while_a_slow_load_runs() -> None:
    running = threading.Event()
    beats: list[bool] = []  # for each beat: was the load still running?

    def load() -> str:
        running.set()
        time.sleep(10 * SLICE)
        running.clear()
        return "prepared"

    loads = ThreadPoolLoads(timeout=2.0, heartbeat=lambda: beats.append(running.is_set()))

    assert in_a_hub_of_its_own(lambda: loads(load)) == "prepared"
    assert sum(beats) >= 3, f"beats while the load ran: {beats}"


def test_a_load_done_within_the_first_slice_beats_no_heartbeat() -> None:
    beats: list[int] = []
    loads = ThreadPoolLoads(timeout=2.0, heartbeat=lambda: beats.append(1))

    assert in_a_hub_of_its_own(lambda: loads(lambda: 42)) == 42
    assert beats == []


def test_a_load_over_the_timeout_is_abandoned_with_load_timeout() -> None:
    release = threading.Event()
    beats: list[int] = []
    loads = ThreadPoolLoads(timeout=0.2, heartbeat=lambda: beats.append(1))
    waited: list[float] = []

    def wait() -> bool:
        started = time.monotonic()
        try:
            return loads(lambda: release.wait(timeout=5))
        finally:
            waited.append(time.monotonic() - started)
            release.set()  # the abandoned load's thread ends on its own: the hub's pool can end

    with pytest.raises(LoadTimeout) as abandoned:
        in_a_hub_of_its_own(wait)

    assert str(abandoned.value) == "the load took longer than MODEL_LOAD_TIMEOUT (0.2 s); abandoned"
    assert isinstance(abandoned.value, ModelLoadError), "refused and counted like any failed load"
    assert 0.2 <= waited[0] < 1.0, "abandoned at the timeout, not when the load ends"
    assert len(beats) >= 3, "beating until it gave up"
