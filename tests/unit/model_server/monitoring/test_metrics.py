"""Prometheus metrics, in-process (default registry): counters move by exactly what was served.

The registry is process-wide and shared by every app the tests build, so each test compares
values before and after its own requests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.app import write_held_metrics
from model_server.monitoring import metrics
from model_server.serving.state_metrics import heldout_accuracy
from prometheus_client import REGISTRY, CollectorRegistry

from ..helpers import INFER, MODEL, bin_counts, expected_bins, sample, scrape, scraped, served, v2_input

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def test_metrics_endpoint_format(client: FlaskClient) -> None:
    client.post("/predict", json={"features": [1, 2, 3, 4]})

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.headers["Content-Type"]
    names = {name for name, _ in scrape(response.get_data(as_text=True))}
    for expected in (
        "model_server_requests_total",
        "model_server_request_duration_seconds_bucket",
        "model_server_requests_in_flight",
        "model_server_request_rows_bucket",
        "model_server_inference_duration_seconds_count",
        "model_server_predictions_total",
        "model_server_model_info",
        "model_server_model_ready",
        "model_server_feature_value_count",
        "model_server_feature_training_mean",
        "model_server_feature_bin_total",
        "model_server_feedback_total",
        "model_server_feature_reference_share",
        "model_server_prediction_reference_share",
        "model_server_drift_reference",
        "model_server_model_heldout_accuracy",
        "model_server_accuracy_alert_margin",
        "model_server_accuracy_min_feedback",
    ):
        assert expected in names


@pytest.mark.parametrize(
    ("method", "path", "body", "route", "status"),
    [
        ("POST", "/predict", {"features": [1, 2, 3, 4]}, "/predict", "200"),
        ("POST", "/predict", {"features": [1, 2, 3]}, "/predict", "422"),
        ("POST", INFER, {"inputs": [v2_input([1, 2, 3, 4], [4])]}, "/v2/models/<name>/infer", "200"),
        ("POST", "/v2/models/x/infer", {}, "/v2/models/<name>/infer", "404"),
        ("GET", "/v2/models/iris-rf/versions/1", None, "/v2/models/<name>/versions/<version>", "200"),
        ("GET", "/v2/health/ready", None, "/v2/health/ready", "200"),
        ("GET", "/openapi.json", None, "/openapi.json", "200"),
    ],
)
def test_requests_total_by_route_method_status(
    client: FlaskClient, method: str, path: str, body, route: str, status: str
) -> None:
    labels = {"route": route, "method": method, "status": status}
    before = sample("model_server_requests_total", **labels)
    duration_before = sample("model_server_request_duration_seconds_count", route=route, method=method)

    for _ in range(3):
        assert client.open(path, method=method, json=body).status_code == int(status)

    assert sample("model_server_requests_total", **labels) == before + 3
    assert sample("model_server_request_duration_seconds_count", route=route, method=method) == duration_before + 3


def test_unmatched_paths_share_one_bounded_label(client: FlaskClient) -> None:
    labels = {"route": "<unmatched>", "method": "GET", "status": "404"}
    before = sample("model_server_requests_total", **labels)
    random_paths = [f"/{uuid.uuid4().hex}" for _ in range(5)] + [f"/v2/{uuid.uuid4().hex}/models/a.b"]

    for path in random_paths:
        assert client.get(path).status_code == 404

    assert sample("model_server_requests_total", **labels) == before + len(random_paths)
    exposition = client.get("/metrics").get_data(as_text=True)
    seen_labels = {value for family in REGISTRY.collect() for s in family.samples for value in s.labels.values()}
    for path in random_paths:
        assert path not in exposition
        assert path not in seen_labels
        assert path.split("/")[2 if path.startswith("/v2/") else 1] not in exposition


def test_metrics_scrapes_are_not_counted(client: FlaskClient) -> None:
    before = sample("model_server_requests_total", route="/metrics", method="GET", status="200")

    client.get("/metrics")

    assert sample("model_server_requests_total", route="/metrics", method="GET", status="200") == before == 0


def test_predictions_total_by_class_name(client: FlaskClient, estimator, metadata, rows: np.ndarray) -> None:
    names = metadata["class_names"]
    before = {n: sample("model_server_predictions_total", model=MODEL, version="1", **{"class": n}) for n in names}

    assert client.post("/predict", json={"features": rows.tolist()}).status_code == 200
    tensor = v2_input(rows[:30].ravel().tolist(), [30, 4])
    assert client.post(INFER, json={"inputs": [tensor]}).status_code == 200

    expected = Counter(names[i] for i in [*estimator.predict(rows), *estimator.predict(rows[:30])])
    assert len(expected) == 3
    for name in names:
        delta = sample("model_server_predictions_total", model=MODEL, version="1", **{"class": name}) - before[name]
        assert delta == expected[name], name


def test_refused_requests_predict_nothing(client: FlaskClient, metadata) -> None:
    before = sum(
        sample("model_server_predictions_total", model=MODEL, version="1", **{"class": n})
        for n in metadata["class_names"]
    )

    client.post("/predict", json={"features": [1, 2, 3]})
    client.post("/predict", json={"features": [[1, 2, 3, 4], [1, 2, "x", 4]]})
    client.post(INFER, json={"inputs": [v2_input([1, 2, 3, 4], [4])], "outputs": [{"name": "nope"}]})

    after = sum(
        sample("model_server_predictions_total", model=MODEL, version="1", **{"class": n})
        for n in metadata["class_names"]
    )
    assert after == before


@pytest.mark.parametrize(("path", "route"), [("/predict", "/predict"), (INFER, "/v2/models/<name>/infer")])
def test_request_rows(client: FlaskClient, path: str, route: str) -> None:
    count = sample("model_server_request_rows_count", route=route)
    total = sample("model_server_request_rows_sum", route=route)
    le_4 = sample("model_server_request_rows_bucket", route=route, le="4.0")
    inference = sample("model_server_inference_duration_seconds_count", model=MODEL, version="1")

    for n in (1, 3, 17):
        x = [[5.0, 3.0, 1.5, 0.2]] * n
        body = {"features": x} if path == "/predict" else {"inputs": [v2_input(x, [n, 4])]}
        assert client.post(path, json=body).status_code == 200

    assert sample("model_server_request_rows_count", route=route) == count + 3
    assert sample("model_server_request_rows_sum", route=route) == total + 21
    assert sample("model_server_request_rows_bucket", route=route, le="4.0") == le_4 + 2
    assert sample("model_server_inference_duration_seconds_count", model=MODEL, version="1") == inference + 3


def test_feature_values_count_and_sum_every_row_per_feature(client: FlaskClient, rows: np.ndarray) -> None:
    x = rows[::3][:60]

    def count_and_sum(feature: str) -> tuple[float, float]:
        labels = {"model": MODEL, "version": "1", "feature": feature}
        return sample("model_server_feature_value_count", **labels), sample("model_server_feature_value_sum", **labels)

    before = {f: count_and_sum(f) for f in FEATURES}

    assert client.post("/predict", json={"features": x.tolist()}).status_code == 200

    for column, feature in enumerate(FEATURES):
        (count, total), (count_after, total_after) = before[feature], count_and_sum(feature)
        assert count_after - count == len(x), feature
        # Compared as totals: fuzz tests before this one may have left a sum large enough to round a difference.
        assert total_after == pytest.approx(total + x[:, column].sum(), rel=1e-12), feature


def test_feature_values_are_capped_by_drift_max_features(app_factory) -> None:
    client = app_factory(drift_max_features=2).test_client()
    before = [sample("model_server_feature_value_count", model=MODEL, version="1", feature=f) for f in FEATURES]

    assert client.post("/predict", json={"features": [[1, 2, 3, 4]] * 5}).status_code == 200

    after = [sample("model_server_feature_value_count", model=MODEL, version="1", feature=f) for f in FEATURES]
    assert [a - b for a, b in zip(after, before, strict=True)] == [5, 5, 0, 0]


def test_model_info_ready_and_training_means(client: FlaskClient, metadata) -> None:
    samples = scrape(client.get("/metrics").get_data(as_text=True))

    info = {"model": MODEL, "version": "1", "sha256": metadata["sha256"], "runtime": "treelite"}
    assert [labels for name, labels in samples if name == "model_server_model_info"] == [tuple(sorted(info.items()))]
    assert scraped(samples, "model_server_model_info", **info) == 1
    assert scraped(samples, "model_server_model_ready", model=MODEL) == 1
    for feature, mean in zip(metadata["feature_names"], metadata["feature_means"], strict=True):
        assert scraped(samples, "model_server_feature_training_mean", model=MODEL, version="1", feature=feature) == mean
    assert not [name for name, _ in samples if name == "model_server_model_load_failed"], "nothing was refused"


def test_the_serving_gauges_come_from_the_scrape_not_the_default_registry(client: FlaskClient) -> None:
    # They describe what this worker serves now: computed per scrape, so an unloaded version
    # can disappear (a multiprocess gauge could never forget a label set).
    in_registry = {family.name for family in REGISTRY.collect()}
    for name in ("model_info", "model_ready", "feature_training_mean", "model_load_failed"):
        assert f"model_server_{name}" not in in_registry


def test_training_means_are_capped_by_drift_max_features(app_factory) -> None:
    samples = scrape(app_factory(drift_max_features=2).test_client().get("/metrics").get_data(as_text=True))

    means = [dict(labels)["feature"] for name, labels in samples if name == "model_server_feature_training_mean"]
    assert sorted(means) == sorted(FEATURES[:2])


def test_in_flight_counts_requests_being_served_and_returns_to_zero(app: Flask, client: FlaskClient) -> None:
    seen = []

    @app.get("/probe")
    def probe() -> str:
        seen.append(sample("model_server_requests_in_flight"))
        return "ok"

    assert sample("model_server_requests_in_flight") == 0
    client.get("/probe")
    assert seen == [1]

    client.post("/predict", json={"features": [1, 2, 3, 4]})
    client.post("/predict", data=b"{")
    client.get("/nope")
    client.get("/predict")
    assert sample("model_server_requests_in_flight") == 0


def test_a_scrape_does_not_count_itself_in_flight(client: FlaskClient) -> None:
    samples = scrape(client.get("/metrics").get_data(as_text=True))

    assert scraped(samples, "model_server_requests_in_flight") == 0


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    """{(sample name, feature, le): value} of a registry holding one metric labelled by ``feature``."""
    return {
        (s.name, s.labels["feature"], s.labels.get("le", "")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


# A bucket layout with negative, fractional and wide bounds, for the bulk observers.
BUCKETS = (-100, -10, -1, -0.5, 0, 0.5, 1, 2.5, 5, 7.5, 10, 100, 1000)


@pytest.mark.parametrize(
    "values",
    [
        # on every bound, just past it, below the first, past the last finite bound, repeats
        [*BUCKETS, *(b + 0.25 for b in BUCKETS), -1e6, 1e6, 2.5, 2.5, 2.5],
        [0.0],
        [],
        np.random.default_rng(3).choice(np.array([*BUCKETS, 0.25, 7.75, -500.0, 5000.0]), size=40).tolist(),
    ],
    ids=["bounds", "one", "none", "random"],
)
def test_observe_many_equals_observe_per_value(values: list[float]) -> None:
    # observe_many reads prometheus_client's histogram internals: this pins it to observe()'s result.
    def histogram(registry: CollectorRegistry) -> metrics.Histogram:
        return metrics.Histogram("h", "help", ["feature"], buckets=BUCKETS, registry=registry)

    one_by_one, bulk = CollectorRegistry(), CollectorRegistry()
    single = histogram(one_by_one).labels("x")
    for value in values:
        single.observe(value)
    metrics.observe_many(histogram(bulk).labels("x"), values)

    assert _samples(bulk) == _samples(one_by_one)
    assert _samples(bulk)[("h_count", "x", "")] == len(values)


def _one_by_one_and_in_bulk(
    children: Callable[[CollectorRegistry], list], bulk: Callable[[list, np.ndarray], None], matrix: np.ndarray
) -> tuple[dict, dict]:
    """The samples of ``children`` (one per column) fed each value with ``observe``, and fed with ``bulk``."""
    one_by_one, in_bulk = CollectorRegistry(), CollectorRegistry()
    for column, child in enumerate(children(one_by_one)):
        for value in matrix[:, column]:
            child.observe(float(value))
    bulk(children(in_bulk), matrix)
    return _samples(one_by_one), _samples(in_bulk)


def test_observe_column_sums_equals_observe_per_value_per_column() -> None:
    matrix = np.random.default_rng(5).normal(3.0, 40.0, size=(37, 3))

    def summaries(registry: CollectorRegistry) -> list:
        s = metrics.Summary("s", "help", ["feature"], registry=registry)
        return [s.labels(name) for name in ("a", "b", "c")]

    expected, bulk = _one_by_one_and_in_bulk(summaries, metrics.observe_column_sums, matrix)
    assert bulk.keys() == expected.keys()
    for key, value in bulk.items():
        assert value == pytest.approx(expected[key], rel=1e-12), key
    assert bulk[("s_count", "b", "")] == 37


def test_observe_column_sums_leaves_missing_values_out() -> None:
    registry = CollectorRegistry()
    summary = metrics.Summary("s", "help", ["feature"], registry=registry)
    children = [summary.labels(name) for name in ("a", "b", "c")]

    metrics.observe_column_sums(children, np.array([[1.0, np.nan, np.nan], [2.0, 4.0, np.nan]]))

    samples = _samples(registry)
    assert (samples[("s_count", "a", "")], samples[("s_sum", "a", "")]) == (2, 3.0)
    assert (samples[("s_count", "b", "")], samples[("s_sum", "b", "")]) == (1, 4.0)
    assert (samples[("s_count", "c", "")], samples[("s_sum", "c", "")]) == (0, 0.0)


# --- model quality: input bins, references, settings ------------------------------------------


def all_bins() -> np.ndarray:
    return np.array([bin_counts(feature) for feature in FEATURES])


def expected_counts(metadata: dict[str, Any], sent: np.ndarray) -> np.ndarray:
    edges = [metadata["reference"]["features"][feature]["edges"] for feature in FEATURES]
    return np.array([expected_bins(e, sent[:, j]) for j, e in enumerate(edges)])


def binary_infer(client: FlaskClient, matrix: np.ndarray, datatype: str) -> Any:
    """V2 infer with the binary tensor data extension: a JSON header, then the raw tensor."""
    raw = matrix.tobytes()
    tensor = {"name": "input-0", "shape": list(matrix.shape), "datatype": datatype}
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return client.post(INFER, data=header + raw, headers={"Inference-Header-Content-Length": str(len(header))})


def test_feature_bins_count_every_row_of_predict_and_infer(client: FlaskClient, metadata, rows: np.ndarray) -> None:
    before = all_bins()
    v2_rows = rows[::4]

    assert client.post("/predict", json={"features": rows.tolist()}).status_code == 200  # 200 rows, all counted
    assert client.post("/predict", json={"features": rows[7].tolist()}).status_code == 200  # one row
    assert client.post(INFER, json={"inputs": [v2_input(v2_rows.tolist(), list(v2_rows.shape))]}).status_code == 200
    binary = rows[:2].astype(np.float32)  # the binary extension, FP32: counted as the float64 the model gets
    assert binary_infer(client, binary, "FP32").status_code == 200

    sent = np.vstack([rows, rows[7:8], v2_rows, binary.astype(np.float64)])
    np.testing.assert_array_equal(all_bins() - before, expected_counts(metadata, sent))
    assert (all_bins() - before).sum() == sent.size


def test_feature_bins_count_each_row_of_a_micro_batch_once(
    app_factory: Callable[..., Flask], metadata, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory(batch_max_rows=64)
    predictor = served(app).predictor
    call = predictor.predict_quietly

    def slow_call(x: np.ndarray, with_probabilities: bool = False):  # requests queue behind a running call
        time.sleep(0.02)
        return call(x, with_probabilities)

    monkeypatch.setattr(predictor, "predict_quietly", slow_call)
    chunks = [rows[i : i + 1 + i % 3] for i in range(0, 120, 3)]
    before, batches, requests = (
        all_bins(),
        sample("model_server_batch_size_count"),
        sample("model_server_batch_size_sum"),
    )

    def ask(chunk: np.ndarray) -> int:
        with app.test_client() as client:
            return client.post("/predict", json={"features": chunk.tolist()}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(ask, chunks)) == {200}
    write_held_metrics(app)  # those of the requests answered alone

    assert sample("model_server_batch_size_sum") - requests == len(chunks)
    assert sample("model_server_batch_size_count") - batches < len(chunks), "some requests shared a model call"
    np.testing.assert_array_equal(all_bins() - before, expected_counts(metadata, np.vstack(chunks)))


@pytest.mark.parametrize(
    "body",
    [
        b'{"features": [5.1, NaN, 1.4, 0.2]}',
        b'{"features": [[5.1, 3.5, 1.4, 0.2], [Infinity, 3.5, 1.4, 0.2]]}',
        b'{"features": [5.1, 3.5, 1.4, 1e39]}',
    ],
)
def test_non_finite_inputs_are_refused_before_any_bin_is_counted(client: FlaskClient, body: bytes) -> None:
    before = all_bins()

    assert client.post("/predict", data=body).status_code == 422
    assert binary_infer(client, np.array([[5.1, np.nan, 1.4, 0.2]]), "FP64").status_code == 422

    np.testing.assert_array_equal(all_bins(), before)


def test_feature_bins_are_capped_by_drift_max_features(app_factory: Callable[..., Flask], rows: np.ndarray) -> None:
    client = app_factory(drift_max_features=2).test_client()
    before = all_bins()

    assert client.post("/predict", json={"features": rows[:10].tolist()}).status_code == 200

    assert (all_bins() - before).sum(axis=1).tolist() == [10, 10, 0, 0]
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    shared = {dict(labels)["feature"] for name, labels in samples if name == "model_server_feature_reference_share"}
    assert shared == set(FEATURES[:2])


def test_reference_gauges_equal_the_metadata(client: FlaskClient, metadata) -> None:
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    version = {"model": MODEL, "version": "1"}

    for feature, reference in metadata["reference"]["features"].items():
        shares = [
            scraped(samples, "model_server_feature_reference_share", **version, feature=feature, bin=str(i))
            for i in range(10)
        ]
        assert shares == reference["shares"], feature
    for name, share in metadata["reference"]["predictions"].items():
        assert scraped(samples, "model_server_prediction_reference_share", **version, **{"class": name}) == share
    assert len([k for k in samples if k[0] == "model_server_prediction_reference_share"]) == 3
    assert scraped(samples, "model_server_drift_reference", **version) == 1
    assert scraped(samples, "model_server_model_heldout_accuracy", **version) == metadata["metrics"]["accuracy"]


def test_a_class_missing_from_the_reference_has_share_0(app_factory: Callable[..., Flask], model_copy: Path) -> None:
    path = model_copy / "metadata.json"
    changed = json.loads(path.read_text(encoding="utf-8"))
    changed["reference"]["predictions"] = {"setosa": 0.4, "virginica": 0.6}
    del changed["metrics"]
    path.write_text(json.dumps(changed), encoding="utf-8")

    samples = scrape(app_factory(model_dir=model_copy).test_client().get("/metrics").get_data(as_text=True))

    shares = {
        dict(labels)["class"]: value
        for (name, labels), value in samples.items()
        if name == "model_server_prediction_reference_share"
    }
    assert shares == {"setosa": 0.4, "versicolor": 0.0, "virginica": 0.6}
    assert not [k for k in samples if k[0] == "model_server_model_heldout_accuracy"], "no metrics.accuracy: no gauge"


@pytest.mark.parametrize(
    ("metrics_", "expected"),
    [
        ({"accuracy": 0.87}, 0.87),
        ({"accuracy": 1}, 1.0),
        ({"accuracy": 0}, 0.0),
        ({"accuracy": 1.5}, None),
        ({"accuracy": -0.1}, None),
        ({"accuracy": "0.9"}, None),
        ({"accuracy": True}, None),
        ({"accuracy": float("nan")}, None),
        ({"accuracy": None}, None),
        ({}, None),
        ("accurate", None),
    ],
)
def test_heldout_accuracy_is_exported_only_when_a_number_in_0_1(metrics_: Any, expected: float | None) -> None:
    assert heldout_accuracy({"metrics": metrics_}) == expected


def test_settings_gauges(app_factory: Callable[..., Flask]) -> None:
    def gauges(app: Flask) -> tuple[float | None, float | None]:
        samples = scrape(app.test_client().get("/metrics").get_data(as_text=True))
        names = ("model_server_accuracy_alert_margin", "model_server_accuracy_min_feedback")
        return scraped(samples, names[0]), scraped(samples, names[1])

    assert gauges(app_factory()) == (0.05, 100)
    assert gauges(app_factory(accuracy_alert_margin=0.125, accuracy_min_feedback=250)) == (0.125, 250)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.25, -0.5, 1000, 5000.0])
def test_a_fixed_observation_equals_observe(value: float) -> None:
    # FixedObservation reads prometheus_client's histogram internals: this pins it to observe()'s result.
    def histogram(registry: CollectorRegistry) -> metrics.Histogram:
        return metrics.Histogram("h", "help", ["feature"], buckets=BUCKETS, registry=registry)

    one_by_one, fixed = CollectorRegistry(), CollectorRegistry()
    single = histogram(one_by_one).labels("x")
    observation = metrics.FixedObservation(histogram(fixed).labels("x"), value)
    for _ in range(3):
        single.observe(value)
        observation.observe()

    assert _samples(fixed) == _samples(one_by_one)
    assert _samples(fixed)[("h_count", "x", "")] == 3
