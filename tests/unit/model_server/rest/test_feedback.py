"""Feedback: POST /feedback, /v2/models/{name}/feedback and /v2/models/{name}/versions/{version}/feedback.

Every refusal with its status and message, and every accepted pair counted exactly once in
``model_server_feedback_total{model,version,predicted,truth}``. The counters are in the
process-wide default registry: tests compare before and after, or count under a model of their own.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.monitoring.version_metrics import MAX_CLASS_LABELS
from model_server.tools.package import write_model_dir
from model_server.tools.publish import publish
from prometheus_client import REGISTRY
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ..helpers import MODEL, assert_error, sample, scrape, scraped
from ..versions import publish_iris, set_policy

NAMES = ("setosa", "versicolor", "virginica")
URLS = ("/feedback", f"/v2/models/{MODEL}/feedback", f"/v2/models/{MODEL}/versions/1/feedback")


def feedback_counts(model: str = MODEL, version: str = "1") -> Counter[tuple[str, str]]:
    """model_server_feedback_total of one version, by (predicted, truth)."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == "model_server_feedback_total" and (s.labels["model"], s.labels["version"]) == (model, version):
                counts[(s.labels["predicted"], s.labels["truth"])] += s.value
    return counts


def counted_since(before: Counter[tuple[str, str]], model: str = MODEL, version: str = "1") -> dict:
    after = feedback_counts(model, version)
    return {pair: after[pair] - before[pair] for pair in after if after[pair] != before[pair]}


def results(model: str = MODEL, version: str = "1") -> dict[str, float]:
    """model_server_feedback_results_total of a version: right and wrong pairs."""
    return {r: sample("model_server_feedback_results_total", model=model, version=version, result=r) for r in RESULTS}


RESULTS = ("correct", "wrong")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", URLS)
def test_each_pair_is_counted_exactly_by_class_name(client: FlaskClient, url: str) -> None:
    rng = np.random.default_rng(len(url))
    predicted = rng.integers(0, 3, 200)
    truth = np.where(rng.random(200) < 0.8, predicted, rng.integers(0, 3, 200))
    # Items as /predict returns them (0, 1, 2) or as names, mixed freely.
    as_sent = [[int(c) if i % 3 else NAMES[c] for i, c in enumerate(column)] for column in (predicted, truth)]
    before = feedback_counts()
    results_before = results()

    response = client.post(url, json={"prediction": as_sent[0], "truth": as_sent[1]})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"model_name": MODEL, "model_version": "1", "accepted": 200}
    expected = Counter((NAMES[p], NAMES[t]) for p, t in zip(predicted, truth, strict=True))
    assert counted_since(before) == expected
    right = int(np.count_nonzero(predicted == truth))
    assert {r: n - results_before[r] for r, n in results().items()} == {"correct": right, "wrong": 200 - right}


def test_class_values_and_names_name_the_same_class(client: FlaskClient) -> None:
    before = feedback_counts()

    body = {"prediction": [2, "virginica", 2.0, 0, "setosa"], "truth": ["virginica", 2, 1, "setosa", 0]}
    assert client.post("/feedback", json=body).status_code == 200

    expected = {("virginica", "virginica"): 2, ("virginica", "versicolor"): 1, ("setosa", "setosa"): 2}
    assert counted_since(before) == expected


def test_one_pair_and_the_limit_of_max_batch_rows(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_batch_rows=5).test_client()
    before = feedback_counts()

    assert client.post("/feedback", json={"prediction": [1], "truth": ["versicolor"]}).get_json()["accepted"] == 1
    assert client.post("/feedback", json={"prediction": [0] * 5, "truth": [1] * 5}).get_json()["accepted"] == 5

    assert counted_since(before) == {("versicolor", "versicolor"): 1, ("setosa", "versicolor"): 5}
    too_many = client.post("/feedback", json={"prediction": [0] * 6, "truth": [1] * 6})
    assert_error(too_many, 413, "6 items in 'prediction'", "limit of 5", "MAX_BATCH_ROWS")
    assert counted_since(before) == {("versicolor", "versicolor"): 1, ("setosa", "versicolor"): 5}


def test_every_pair_of_a_small_model_exists_from_the_start(client: FlaskClient) -> None:
    samples = scrape(client.get("/metrics").get_data(as_text=True))

    for predicted in NAMES:
        for truth in NAMES:
            labels = {"model": MODEL, "version": "1", "predicted": predicted, "truth": truth}
            assert scraped(samples, "model_server_feedback_total", **labels) is not None, (predicted, truth)


@pytest.fixture
def two_versions(app_factory: Callable[..., Flask], tmp_path: Path) -> tuple[FlaskClient, str]:
    """Versions 1 and 2 of a model of its own, both serving; version v predicts 10 * v + the iris class."""
    name = unique("two")
    root = tmp_path / "models"
    publish_iris(root, 1, name)
    publish_iris(root, 2, name)
    set_policy(root, {"all": {}}, name)
    return app_factory(model_repository=root).test_client(), name


def test_unversioned_feedback_counts_for_the_newest_loaded_version(two_versions: tuple[FlaskClient, str]) -> None:
    client, name = two_versions
    before = {v: feedback_counts(name, v) for v in ("1", "2")}

    newest = client.post(f"/v2/models/{name}/feedback", json={"prediction": [20, "21"], "truth": ["20", 22]})
    first = client.post(f"/v2/models/{name}/versions/1/feedback", json={"prediction": [10], "truth": [11]})

    assert newest.get_json() == {"model_name": name, "model_version": "2", "accepted": 2}
    assert first.get_json() == {"model_name": name, "model_version": "1", "accepted": 1}
    assert counted_since(before["2"], name, "2") == {("20", "20"): 1, ("21", "22"): 1}
    assert counted_since(before["1"], name, "1") == {("10", "11"): 1}
    # The newest version's classes: a class of version 1 only is refused there.
    old_class = client.post(f"/v2/models/{name}/feedback", json={"prediction": [10], "truth": [10]})
    assert_error(old_class, 422, "prediction[0] = 10 is not a class", "20, 21, 22")


# --- refusals ---------------------------------------------------------------------------------

BAD: dict[str, tuple[Any, int, tuple[str, ...]]] = {
    "not JSON": (b'{"prediction": [0', 400, ("not valid JSON",)),
    "empty body": (b"", 400, ("empty",)),
    "not an object": ([0, 1], 422, ("must be a JSON object", "an array")),
    "no prediction": ({"truth": [0]}, 422, ("missing 'prediction'",)),
    "no truth": ({"prediction": [0]}, 422, ("missing 'truth'",)),
    "prediction not an array": ({"prediction": 0, "truth": [0]}, 422, ("'prediction' must be an array", "a number")),
    "truth an object": ({"prediction": [0], "truth": {"0": 1}}, 422, ("'truth' must be an array", "an object")),
    "empty arrays": ({"prediction": [], "truth": []}, 422, ("'prediction' is empty",)),
    "a boolean": ({"prediction": [0, True], "truth": [0, 1]}, 422, ("prediction[1] must be a class", "a boolean")),
    "false in truth": ({"prediction": [0], "truth": [False]}, 422, ("truth[0] must be a class", "a boolean")),
    "a null": ({"prediction": [0, 1, None], "truth": [0, 1, 2]}, 422, ("prediction[2]", "null")),
    "a nested array": ({"prediction": [[0, 1]], "truth": [0]}, 422, ("prediction[0]", "an array")),
    "an object item": ({"prediction": [0], "truth": [{"class": 0}]}, 422, ("truth[0]", "an object")),
    "unknown value": ({"prediction": [0, 3], "truth": [0, 1]}, 422, ("prediction[1] = 3 is not a class", "setosa")),
    "unknown name": ({"prediction": [0], "truth": ["Setosa"]}, 422, ('truth[0] = "Setosa" is not a class',)),
    "a value as text": ({"prediction": ["2"], "truth": [2]}, 422, ('prediction[0] = "2" is not a class',)),
    "a fraction": ({"prediction": [1.5], "truth": [1]}, 422, ("prediction[0] = 1.5 is not a class",)),
    "NaN": (b'{"prediction": [NaN], "truth": [0]}', 422, ("prediction[0] = NaN is not a class",)),
    "a huge number": ({"prediction": [10**300], "truth": [0]}, 422, ("prediction[0] = 1000000000", "...")),
    "truth shorter": ({"prediction": [0, 1, 2], "truth": [0, 1]}, 422, ("truth[2] is missing", "3 items", "'truth' 2")),
    "prediction shorter": ({"prediction": [0], "truth": [0, 1]}, 422, ("prediction[1] is missing",)),
}


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("kind", BAD)
def test_bad_feedback_is_refused_and_counts_nothing(client: FlaskClient, url: str, kind: str) -> None:
    body, status, fragments = BAD[kind]
    before = feedback_counts()

    if isinstance(body, bytes):
        response = client.post(url, data=body, content_type="application/json")
    else:
        response = client.post(url, json=body)

    assert_error(response, status, *fragments)
    assert counted_since(before) == {}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/v2/models/nope/feedback", "model 'nope' not found"),
        (f"/v2/models/{MODEL}/versions/7/feedback", "no version '7' loaded"),
        (f"/v2/models/{MODEL}/versions/x/feedback", "versions are positive integers"),
    ],
)
def test_unknown_models_and_versions_are_404(client: FlaskClient, url: str, fragment: str) -> None:
    assert_error(client.post(url, json={"prediction": [0], "truth": [0]}), 404, fragment)


def test_a_regressor_takes_no_feedback(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    iris = load_iris()
    regressor = DecisionTreeRegressor(max_depth=3, random_state=0).fit(iris.data, iris.data[:, 0])
    name = unique("regressor")
    features = iris.feature_names
    publish(
        tmp_path,
        name,
        "1",
        lambda d: write_model_dir(d, regressor, iris.data, name=name, version="1", feature_names=features),
    )
    client = app_factory(model_repository=tmp_path).test_client()

    response = client.post(f"/v2/models/{name}/feedback", json={"prediction": [5.1], "truth": [5.1]})

    assert_error(response, 422, f"model '{name}' version 1 has no classes", "regressor")
    assert_error(client.post("/feedback", json={"prediction": [5.1], "truth": [5.0]}), 422, "has no classes")
    assert feedback_counts(name) == Counter(), "no feedback counter at all"
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert scraped(samples, "model_server_drift_reference", model=name, version="1") == 1, "inputs are still binned"
    assert not [k for k in samples if k[0] == "model_server_prediction_reference_share"]


def test_classes_beyond_max_class_labels_share_the_other_label(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    n = MAX_CLASS_LABELS + 5
    x = np.arange(n * 4, dtype=np.float64).reshape(-1, 1) % n
    model = DecisionTreeClassifier(random_state=0).fit(x, x[:, 0].astype(int))
    name = unique("many")
    publish(tmp_path, name, "1", lambda d: write_model_dir(d, model, x, name=name, version="1", feature_names=["x"]))
    client = app_factory(model_repository=tmp_path).test_client()

    response = client.post(f"/v2/models/{name}/feedback", json={"prediction": [0, 1, "54"], "truth": [0, 2, 53]})

    assert response.get_json()["accepted"] == 3
    assert counted_since(Counter(), name, "1") == {("other", "other"): 3}
    # Right and wrong by class, not by label: one right (0, 0), two wrong, for live accuracy.
    assert results(name) == {"correct": 1, "wrong": 2}
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    shares = {k: v for k, v in samples.items() if k[0] == "model_server_prediction_reference_share"}
    assert list(shares.values()) == [pytest.approx(1.0)]
    assert scraped(samples, "model_server_prediction_reference_share", model=name, version="1", **{"class": "other"})
