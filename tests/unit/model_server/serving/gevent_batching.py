"""Micro-batching under gevent, as in the server's worker; run by test_batching.py in a subprocess.

The standard library is patched first, as gunicorn.conf.py does, so the batcher's locks and
events are gevent's and its greenlets can be interrupted the way a worker's are: killed
(``GreenletExit``, e.g. at the end of a graceful shutdown) or cut short by a ``gevent.Timeout``.
Every scenario ends with one more prediction, which a batcher left without a leader would never
answer; a hang is cut by a ``gevent.Timeout`` and reported as a failure.

Usage: ``python gevent_batching.py SCENARIO``; prints ``ok`` and exits 0 on success.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402
from model_server.serving.batching import BatchInterrupted, MicroBatcher  # noqa: E402
from model_server.serving.predictor import Prediction  # noqa: E402

HANG = 5.0  # seconds: far more than any scenario needs


class SlowModel:
    """Labels are each row's first value; every call sleeps (yields) for ``delay`` seconds."""

    def __init__(self, delay: float, on_call: Callable[[], None] | None = None) -> None:
        self.delay = delay
        self.on_call = on_call
        self.calls: list[list[float]] = []

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        self.calls.append(rows[:, 0].tolist())
        time.sleep(self.delay)  # patched: other greenlets run meanwhile
        if self.on_call is not None:
            self.on_call()
        return Prediction(labels=rows[:, 0].copy())


class OneModel:
    """A batcher in front of one model, as the worker's batcher serves each version."""

    def __init__(self, model: Any, **settings: Any) -> None:
        self.model, self.batcher = model, MicroBatcher(**settings)

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        return self.batcher.predict(self.model, rows, with_probabilities)


def rows_of(value: float) -> np.ndarray:
    return np.full((1, 4), value)


def ask(batcher: OneModel, value: float, deadline: float | None = None) -> gevent.Greenlet:
    """A request in a greenlet of its own; its value is the prediction or what it raised."""

    def run() -> Prediction | BaseException:
        try:
            with gevent.Timeout(deadline):  # None: no deadline
                return batcher.predict(rows_of(value))
        except BaseException as exc:  # GreenletExit and gevent.Timeout too: the outcome under test
            return exc

    return gevent.spawn(run)


def outcome(greenlet: gevent.Greenlet) -> float | BaseException:
    """The label predicted for the request, or what it raised; fails if it has no answer yet."""
    greenlet.join(timeout=HANG)
    assert greenlet.dead, "a request hangs: it never got an answer or an error"
    value = greenlet.value
    return value if isinstance(value, BaseException) else float(value.labels[0])


def still_serves(batcher: OneModel) -> None:
    assert outcome(ask(batcher, 42.0)) == 42.0, "a later request is served"


def follower_killed_while_waiting() -> None:
    batcher = OneModel(SlowModel(0.1), max_rows=64)
    leader = ask(batcher, 1.0)
    gevent.sleep(0.02)  # the leader is in its model call
    doomed = ask(batcher, 2.0)  # first in line: the next leader
    survivor = ask(batcher, 3.0)
    gevent.sleep(0.02)
    doomed.kill()
    assert (outcome(leader), outcome(survivor)) == (1.0, 3.0)
    still_serves(batcher)


def follower_killed_as_leadership_is_handed_to_it() -> None:
    # The kill is scheduled inside the leader's model call, so it lands after the hand-over and
    # before the new leader wakes: the follower dies in its wait, already chosen as leader.
    victims: list[gevent.Greenlet] = []
    batcher = OneModel(SlowModel(0.05, on_call=lambda: victims and victims.pop().kill(block=False)), max_rows=64)
    leader = ask(batcher, 1.0)
    gevent.sleep(0.01)
    doomed = ask(batcher, 2.0)
    survivor = ask(batcher, 3.0)
    gevent.sleep(0.01)
    victims.append(doomed)
    assert (outcome(leader), outcome(survivor)) == (1.0, 3.0)
    assert isinstance(outcome(doomed), gevent.GreenletExit)
    still_serves(batcher)


def follower_killed_as_it_starts_to_lead() -> None:
    # Killed right after the previous leader returns: the new leader wakes first, then dies
    # before it has taken its batch.
    batcher = OneModel(SlowModel(0.05), max_rows=64)
    victims: list[gevent.Greenlet] = []

    def lead_then_kill() -> Prediction:
        result = batcher.predict(rows_of(1.0))
        victims.pop().kill(block=False)
        return result

    leader = gevent.spawn(lead_then_kill)
    gevent.sleep(0.01)
    victims.append(ask(batcher, 2.0))
    survivor = ask(batcher, 3.0)
    leader.join(timeout=HANG)
    assert leader.successful() and leader.value.labels.tolist() == [1.0]
    assert outcome(survivor) == 3.0
    still_serves(batcher)


def _interrupted_leader(deadline: float | None, interrupt: Callable[[gevent.Greenlet], None]) -> BaseException:
    """Four requests arrive together (three fit a batch); the leader is interrupted in its model call.

    Returns what the leader raised; its batch-mates must get an error, the fourth its answer.
    """
    model = SlowModel(0.2)
    batcher = OneModel(model, max_rows=3)
    leader = ask(batcher, 0.0, deadline)
    requests = [leader, *(ask(batcher, float(i)) for i in range(1, 4))]
    gevent.sleep(0.1)  # the leader (request 0) is in its model call with requests 1 and 2
    assert model.calls == [[0.0, 1.0, 2.0]], model.calls
    interrupt(leader)
    outcomes = [outcome(r) for r in requests]
    for mate in outcomes[1:3]:
        assert isinstance(mate, BatchInterrupted), mate
    assert outcomes[3] == 3.0, "the request queued behind the interrupted batch is served"
    still_serves(batcher)
    assert isinstance(outcomes[0], BaseException)
    return outcomes[0]


def leader_killed_in_its_model_call() -> None:
    assert isinstance(_interrupted_leader(None, lambda leader: leader.kill()), gevent.GreenletExit)


def leader_timed_out_in_its_model_call() -> None:
    # A gevent.Timeout started in the leader's own greenlet (as a request deadline would be).
    assert isinstance(_interrupted_leader(0.15, lambda leader: None), gevent.Timeout)


SCENARIOS = {
    f.__name__: f
    for f in (
        follower_killed_while_waiting,
        follower_killed_as_leadership_is_handed_to_it,
        follower_killed_as_it_starts_to_lead,
        leader_killed_in_its_model_call,
        leader_timed_out_in_its_model_call,
    )
}

if __name__ == "__main__":
    with gevent.Timeout(4 * HANG, AssertionError("the scenario hangs")):
        SCENARIOS[sys.argv[1]]()
    print("ok")
