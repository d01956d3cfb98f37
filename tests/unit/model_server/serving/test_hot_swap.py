"""The swap under load: versions published and loaded while requests flow, and not one goes wrong.

Client threads send ``/predict`` and ``/v2/models/iris-rf/infer`` without a pause while the
test publishes new versions (a hidden temp folder renamed into place, as
``model_server.tools.publish`` does), syncs the repository again and again, and finally removes the
newest version (a roll back). Every version predicts differently on the same row
(:func:`.versions.label_of`), so each response shows which version computed it.

Checked for every response: it succeeded; the version it names was serving at some moment
between the request's start and its end (from a record of every snapshot published); and its
prediction is that version's, so no request mixed two versions.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from ..helpers import INFER, MODEL, v2_input
from ..versions import ROW, Replica, label_of, publish_iris, remove

CLIENTS = 6
NEWEST = 7  # versions 2..NEWEST are published during the run
SYNCS_PER_VERSION = 3


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    status: int
    version: int
    prediction: int


@dataclass(frozen=True)
class Published:
    before: float  # just before the snapshot was assigned
    after: float  # just after
    versions: frozenset[int]


def ask(replica: Replica, use_v2: bool) -> Answer:
    started = time.monotonic()
    if use_v2:
        response = replica.client.post(INFER, json={"inputs": [v2_input(ROW, [1, 4])]})
        body = response.get_json()
        ended = time.monotonic()
        if response.status_code != 200:
            return Answer(started, ended, response.status_code, -1, -1)
        return Answer(started, ended, 200, int(body["model_version"]), body["outputs"][0]["data"][0])
    response = replica.client.post("/predict", json={"features": ROW})
    ended = time.monotonic()
    if response.status_code != 200:
        return Answer(started, ended, response.status_code, -1, -1)
    return Answer(started, ended, 200, int(response.headers["X-Model-Version"]), response.get_json()["prediction"][0])


def serving_during(history: list[Published], started: float, ended: float) -> set[int]:
    """Versions that served at some moment of [started, ended]: snapshot i serves from its
    assignment until the next one's (both widened to the bounds measured around them)."""
    versions: set[int] = set()
    for i, state in enumerate(history):
        until = history[i + 1].after if i + 1 < len(history) else math.inf
        if state.before <= ended and until >= started:
            versions |= state.versions
    return versions


def test_versions_swap_under_concurrent_requests(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    repository = tmp_path / "models"
    publish_iris(repository, 1)
    replica = Replica(app_factory(model_repository=repository, model_poll_seconds=60))
    history = [Published(-math.inf, -math.inf, frozenset(replica.loaded()))]
    publish = replica.live_models.publish

    def recorded_publish(snapshot) -> None:  # only the syncing thread publishes
        before = time.monotonic()
        publish(snapshot)
        history.append(Published(before, time.monotonic(), frozenset(snapshot.models.get(MODEL, {}))))

    replica.live_models.publish = recorded_publish  # type: ignore[method-assign]
    stop = threading.Event()
    answers: list[list[Answer]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            while not stop.is_set():
                answers[index].append(ask(replica, use_v2=len(answers[index]) % 2 == index % 2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for version in range(2, NEWEST + 1):
            publish_iris(repository, version)
            for _ in range(SYNCS_PER_VERSION):
                replica.sync()
                time.sleep(0.02)
        remove(repository / MODEL / str(NEWEST))  # roll back to the previous version
        for _ in range(SYNCS_PER_VERSION):
            replica.sync()
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert not errors
    flat = [answer for per_client in answers for answer in per_client]
    assert [a for a in flat if a.status != 200] == [], "no request failed"
    for answer in flat:
        assert answer.prediction == label_of(answer.version), f"version {answer.version} answered for another"
        serving = serving_during(history, answer.started, answer.ended)
        assert answer.version in serving, f"{answer} named a version not serving then ({sorted(serving)})"
    seen = {answer.version for answer in flat}
    assert len(seen) >= 4, f"requests overlapped the swaps: versions seen {sorted(seen)}"
    assert replica.loaded() == [NEWEST - 1]
    assert replica.predict() == (NEWEST - 1, label_of(NEWEST - 1))
