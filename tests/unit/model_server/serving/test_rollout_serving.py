"""Rollouts on a replica: the split read from the responses, sticky users, config changes, and the shadow.

Version ``v`` of the test model predicts ``10 * v`` + the iris class (versions.py), so every
answer names the version that computed it, besides its ``X-Model-Version`` header.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from model_server.serving.predictor import Prediction
from model_server.serving.shadow import ShadowJob

from ..helpers import INFER, MODEL, json_logs, sample, v2_input
from ..versions import ROW, Replica, label_of, publish_iris, write_iris

N = 2_000


def set_config(repository: Path, **fields: Any) -> None:
    (repository / MODEL / "config.json").write_text(json.dumps(fields), encoding="utf-8")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    publish_iris(root, 1)
    publish_iris(root, 2)
    return root


@pytest.fixture
def replica(app_factory: Callable[..., Flask], repository: Path) -> Replica:
    set_config(repository, version_policy={"all": {}})
    return Replica(app_factory(model_repository=repository))


def served_versions(replica: Replica, n: int = N, headers: dict[str, str] | None = None) -> Counter[int]:
    """The version of each of ``n`` /predict answers, by header; each answer's class agrees with it."""
    versions: Counter[int] = Counter()
    for _ in range(n):
        response = replica.client.post("/predict", json={"features": ROW}, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        version = int(response.headers["X-Model-Version"])
        assert response.get_json()["prediction"] == [label_of(version)]
        versions[version] += 1
    return versions


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_unversioned_requests_follow_the_weights(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 90, "2": 10})
    replica.sync()

    versions = served_versions(replica)

    assert set(versions) == {1, 2}
    assert within_binomial(versions[2], N, 0.10), versions
    v2 = replica.client.post(INFER, json={"inputs": [v2_input([ROW], [1, 4])]})
    assert v2.get_json()["model_version"] in {"1", "2"}


def test_versioned_urls_always_reach_their_version(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100, "2": 0})
    replica.sync()

    for _ in range(50):
        response = replica.client.post(
            f"/v2/models/{MODEL}/versions/2/infer", json={"inputs": [v2_input([ROW], [1, 4])]}
        )
        assert response.get_json()["model_version"] == "2"
        assert response.get_json()["outputs"][0]["data"] == [label_of(2)]
    assert served_versions(replica, 200) == {1: 200}


def test_a_sticky_header_keeps_each_user_on_one_version(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 50, "2": 50}, sticky_header="X-User-Id")
    replica.sync()

    per_user = {user: served_versions(replica, 20, {"X-User-Id": user}) for user in (f"u{i}" for i in range(60))}

    assert all(len(versions) == 1 for versions in per_user.values()), per_user
    assert {next(iter(v)) for v in per_user.values()} == {1, 2}  # the users spread over both
    assert set(served_versions(replica, 200)) == {1, 2}  # without the header: per request


def test_a_weight_change_applies_at_the_next_poll_to_whole_requests(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100})
    replica.sync()
    assert served_versions(replica, 200) == {1: 200}

    set_config(repository, version_policy={"all": {}}, traffic={"2": 100})
    assert served_versions(replica, 50) == {1: 50}  # nothing changes before the poll
    replica.sync()
    assert served_versions(replica, 200) == {2: 200}


def test_the_primary_gets_unversioned_feedback_and_the_metrics_say_the_roles(
    replica: Replica, repository: Path
) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 90, "2": 10}, shadow={"version": 2, "percent": 5})
    replica.sync()

    response = replica.client.post("/feedback", json={"prediction": [label_of(1)], "truth": [label_of(1)]})

    assert response.get_json()["model_version"] == "1"
    samples = replica.scrape()
    assert samples[("model_server_traffic_share", (("model", MODEL), ("version", "1")))] == pytest.approx(0.9)
    assert samples[("model_server_traffic_share", (("model", MODEL), ("version", "2")))] == pytest.approx(0.1)
    roles = {
        (dict(labels)["version"], dict(labels)["role"])
        for name, labels in samples
        if name == "model_server_rollout_role"
    }
    assert roles == {("1", "primary"), ("2", "canary"), ("2", "shadow")}
    assert samples[("model_server_model_config_invalid", (("model", MODEL),))] == 0


def test_weights_to_versions_not_loaded_are_ignored_with_one_log_line(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 90, "7": 10})
    with json_logs() as lines:
        replica.sync(times=3)

    ignored = [line for line in lines() if line["message"] == "model rollout setting ignored"]
    assert [line["reason"] for line in ignored] == [
        f"model {MODEL}: traffic weight of version 7 ignored: that version is not loaded"
    ]
    assert served_versions(replica, 100) == {1: 100}


def test_an_invalid_config_keeps_the_last_valid_one_and_is_reported(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100})
    replica.sync()
    (repository / MODEL / "config.json").write_text('{"version_policy": {"all": {}}, "traffic": {"1": -5}}')

    with json_logs() as lines:
        replica.sync(times=2)

    assert served_versions(replica, 100) == {1: 100}
    assert [line["message"] for line in lines() if line["level"] == "ERROR"] == [
        "model config invalid; keeping the last valid one"
    ]
    assert replica.scrape()[("model_server_model_config_invalid", (("model", MODEL),))] == 1
    set_config(repository, version_policy={"all": {}}, traffic={"2": 100})
    replica.sync()
    assert replica.scrape()[("model_server_model_config_invalid", (("model", MODEL),))] == 0
    assert served_versions(replica, 100) == {2: 100}


# --- shadow ----------------------------------------------------------------------------------------
def shadow_count(result: str, shadow: str = "2", primary: str = "1") -> float:
    return sample("model_server_shadow_requests_total", model=MODEL, version=shadow, primary=primary, result=result)


def runner(replica: Replica) -> Any:
    return replica.app.extensions["model_server"].shadow


def shadow_predictor(replica: Replica, version: int = 2) -> Any:
    return replica.live_models.snapshot.models[MODEL][version].predictor


def test_every_shadowed_request_is_compared_exactly_once(replica: Replica, repository: Path) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100}, shadow={"version": "2", "percent": 100})
    replica.sync()
    before = {r: shadow_count(r) for r in ("agree", "disagree", "error", "dropped")}
    served_by_2 = sample("model_server_model_requests_total", model=MODEL, version="2", status="200")
    predictions_of_2 = sample("model_server_predictions_total", model=MODEL, version="2", **{"class": "20"})

    assert served_versions(replica, 300) == {1: 300}
    assert runner(replica).wait_idle(10)

    # Version 2 answers 10 more than version 1 on every row: every comparison disagrees.
    after = {r: shadow_count(r) - before[r] for r in before}
    assert after == {"agree": 0, "disagree": 300, "error": 0, "dropped": 0}
    # The shadow never counts as served: no request, no prediction for version 2.
    assert sample("model_server_model_requests_total", model=MODEL, version="2", status="200") == served_by_2
    assert sample("model_server_predictions_total", model=MODEL, version="2", **{"class": "20"}) == predictions_of_2


def test_a_gathered_group_is_compared_job_by_job(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    # One model call for the rows of 4 jobs of two served versions (a canary and its primary):
    # each job agrees or not on its own rows, and its probability difference is its own mean.
    root = tmp_path / "same"
    write_iris(root / MODEL / "1", 1)
    write_iris(root / MODEL / "5", 1)  # version 5 holds version 1's model (5: counts of its own)
    replica = Replica(app_factory(model_repository=root))
    shadow = replica.live_models.snapshot.models[MODEL][5]
    rows = np.array([ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]] * 2)
    truth = shadow.predictor.predict_quietly(rows, True)
    labels, probabilities = truth.labels, truth.probabilities
    assert labels is not None and probabilities is not None
    other = labels + 1  # a class no row gets
    nudged = probabilities.copy()
    nudged[1, 0] += 0.3  # job B: one cell of its first row
    jobs = [  # (primary, rows, served labels, served probabilities)
        ("1", slice(0, 1), labels[0:1], probabilities[0:1]),  # A: agrees, difference 0
        ("1", slice(1, 3), np.r_[labels[1:2], other[2:3]], nudged[1:3]),  # B: one row differs
        ("2", slice(3, 6), labels[3:6], probabilities[3:6] + 0.05),  # C: agrees, difference 0.05
        ("2", slice(6, 7), other[6:7], probabilities[6:7]),  # D: differs, difference 0
    ]
    before = {(p, r): shadow_count(r, "5", p) for p in ("1", "2") for r in ("agree", "disagree")}

    def difference(primary: str, part: str) -> float:
        name = f"model_server_shadow_probability_difference_{part}"
        return sample(name, model=MODEL, version="5", primary=primary)

    differences = {(p, part): difference(p, part) for p in ("1", "2") for part in ("count", "sum")}

    runner(replica).run(
        [ShadowJob(shadow, p, rows[r], Prediction(labels=lab, probabilities=prob)) for p, r, lab, prob in jobs]
    )

    counted = {key: shadow_count(key[1], "5", key[0]) - value for key, value in before.items()}
    assert counted == {("1", "agree"): 1, ("1", "disagree"): 1, ("2", "agree"): 1, ("2", "disagree"): 1}
    assert difference("1", "count") - differences[("1", "count")] == 2
    assert difference("2", "count") - differences[("2", "count")] == 2
    # Job by job: the mean absolute difference over the job's rows and classes.
    assert difference("1", "sum") - differences[("1", "sum")] == pytest.approx(0 + 0.3 / (2 * 3))
    assert difference("2", "sum") - differences[("2", "sum")] == pytest.approx(0.05 + 0)


def test_agreement_and_probability_difference_of_an_identical_shadow(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    root = tmp_path / "same"
    write_iris(root / MODEL / "1", 1)
    write_iris(root / MODEL / "3", 1)  # version 3 holds version 1's model: always agrees
    set_config(root, version_policy={"all": {}}, traffic={"1": 1}, shadow={"version": "3", "percent": 100})
    replica = Replica(app_factory(model_repository=root))
    agree, differences = (
        shadow_count("agree", "3"),
        sample("model_server_shadow_probability_difference_count", model=MODEL, version="3", primary="1"),
    )

    rows = [ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    for _ in range(40):
        response = replica.client.post("/predict", json={"features": rows})
        assert response.status_code == 200
        assert set(response.get_json()) == {"prediction"}  # compared probabilities are never returned unasked
    assert runner(replica).wait_idle(10)

    assert shadow_count("agree", "3") - agree == 40
    labels = {"model": MODEL, "version": "3", "primary": "1"}
    assert sample("model_server_shadow_probability_difference_count", **labels) - differences == 40
    assert sample("model_server_shadow_probability_difference_sum", **labels) == 0


def test_a_failing_shadow_never_reaches_the_client(
    replica: Replica, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100}, shadow={"version": "2", "percent": 100})
    replica.sync()

    def broken(rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        raise RuntimeError("shadow exploded")

    monkeypatch.setattr(shadow_predictor(replica), "predict_quietly", broken)
    errors = shadow_count("error")
    with json_logs() as lines:
        assert served_versions(replica, 50) == {1: 50}
        assert runner(replica).wait_idle(10)

    assert shadow_count("error") - errors == 50
    logged = [line for line in lines() if line["message"].startswith("shadow version failed")]
    assert [line["reason"] for line in logged] == ["RuntimeError: shadow exploded"]  # once, not 50 times


def test_a_slow_shadow_never_delays_the_answer_and_sheds_what_it_cannot_hold(
    app_factory: Callable[..., Flask], repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_config(repository, version_policy={"all": {}}, traffic={"1": 100}, shadow={"version": "2", "percent": 100})
    replica = Replica(app_factory(model_repository=repository, shadow_queue_rows=3))
    original = shadow_predictor(replica).predict_quietly
    release, started = threading.Event(), threading.Event()

    def stuck(rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        started.set()
        assert release.wait(30), "the test never released the shadow"
        return original(rows, with_probabilities)

    monkeypatch.setattr(shadow_predictor(replica), "predict_quietly", stuck)
    before = {r: shadow_count(r) for r in ("disagree", "dropped")}

    # Every answer arrives while the shadow is stuck: had a request waited for it, this would hang.
    assert served_versions(replica, 1) == {1: 1}
    assert started.wait(10)  # the runner took the first job and is stuck in it
    assert served_versions(replica, 10) == {1: 10}  # 3 wait in the queue (SHADOW_QUEUE_ROWS=3), 7 are dropped
    release.set()
    assert runner(replica).wait_idle(10)

    assert {r: shadow_count(r) - before[r] for r in before} == {"disagree": 4, "dropped": 7}
