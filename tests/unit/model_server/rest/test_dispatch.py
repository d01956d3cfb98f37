"""rest/dispatch.py: one routing step per request, its result passed on explicitly, and the
per-version request metrics counted by the inference endpoints themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, g
from model_server.rest.dispatch import inference_endpoint

from ..helpers import INFER, MODEL, sample, v2_input
from ..versions import ROW, Replica, write_iris


def version_requests(status: str, version: str = "1") -> float:
    return sample("model_server_model_requests_total", model=MODEL, version=version, status=status)


def test_every_request_is_counted_for_the_version_that_answered_whatever_its_status(app: Flask) -> None:
    client = app.test_client()
    before = {status: version_requests(status) for status in ("200", "422")}

    assert client.post("/predict", json={"features": ROW}).status_code == 200
    assert client.post("/predict", json={"features": [1, 2]}).status_code == 422
    assert client.post(INFER, json={"inputs": [v2_input([ROW], [1, 4])]}).status_code == 200
    assert client.post(f"/v2/models/{MODEL}/versions/1/infer", json={"inputs": []}).status_code == 422

    assert version_requests("200") - before["200"] == 2
    assert version_requests("422") - before["422"] == 2


def test_requests_that_infer_nothing_are_not_counted_per_version(app: Flask) -> None:
    client = app.test_client()
    before = sample("model_server_model_request_duration_seconds_count", model=MODEL, version="1")

    assert client.get(f"/v2/models/{MODEL}").status_code == 200
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready").status_code == 200
    assert client.post("/feedback", json={"prediction": [0], "truth": [0]}).status_code == 200
    assert client.post("/v2/models/wine/infer", json={}).status_code == 404, "no version: nothing to count for"

    assert sample("model_server_model_request_duration_seconds_count", model=MODEL, version="1") == before


def test_the_inference_endpoints_are_the_decorated_views(app: Flask) -> None:
    decorated = {rule.rule for rule in app.url_map.iter_rules() if _is_inference(app.view_functions[rule.endpoint])}

    assert decorated == {
        "/predict",
        "/invocations",
        "/v2/models/<name>/infer",
        "/v2/models/<name>/versions/<version>/infer",
    }


def _is_inference(view: Callable[..., object]) -> bool:
    wrapped = getattr(view, "__wrapped__", None)
    return wrapped is not None and view.__code__ is inference_endpoint(wrapped).__code__


def test_no_routing_result_is_kept_in_flask_g(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write_iris(root / MODEL / "1", 1)
    write_iris(root / MODEL / "2", 2)
    (root / MODEL / "config.json").write_text(
        json.dumps({"version_policy": {"all": {}}, "traffic": {"1": 1}, "shadow": {"version": 2, "percent": 100}})
    )
    replica = Replica(app_factory(model_repository=root))
    kept: list[list[str]] = []

    @replica.app.after_request
    def _look(response: object) -> object:
        kept.append(sorted(g))
        return response

    assert replica.client.post("/predict", json={"features": ROW}).headers["X-Model-Version"] == "1"
    assert replica.client.post(INFER, json={"inputs": [v2_input([ROW], [1, 4])]}).status_code == 200
    assert replica.app.extensions["model_server"].shadow.wait_idle(10)

    assert kept == [["request_id"], ["request_id"]]


@pytest.mark.parametrize(
    ("unknown", "error"),
    [
        ("/v2/models/wine/infer", "model 'wine' not found; models served: 'iris-rf'"),
        (f"/v2/models/{MODEL}/versions/9/infer", "model 'iris-rf' has no version '9' loaded; loaded versions: '1'"),
        (
            f"/v2/models/{MODEL}/versions/01/infer",
            "model 'iris-rf' has no version '01': versions are positive integers",
        ),
    ],
)
def test_a_miss_is_a_404_that_says_what_is_served(app: Flask, unknown: str, error: str) -> None:
    response = app.test_client().post(unknown, json={})

    assert response.status_code == 404
    assert response.get_json()["error"] == error
