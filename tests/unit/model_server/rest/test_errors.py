"""Every error is ``{"error": "..."}`` as application/json: routing errors, limits, unexpected failures."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ..helpers import INFER, assert_error, sample, served


@pytest.mark.parametrize("path", ["/", "/nope", "/predict/", "/v2/models", "/v2/health", "/static/x.css"])
def test_unknown_path_is_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 404, "not found", "/openapi.json")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/predict", "POST"),
        ("PUT", "/predict", "POST"),
        ("DELETE", "/predict", "POST"),
        ("GET", INFER, "POST"),
        ("POST", "/v2", "GET"),
        ("POST", "/v2/health/ready", "GET"),
        ("POST", "/v2/models/iris-rf", "GET"),
        ("POST", "/metrics", "GET"),
        ("PATCH", "/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(client: FlaskClient, method: str, path: str, allowed: str) -> None:
    response = client.open(path, method=method)

    assert_error(response, 405, "method not allowed")
    assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}


def test_body_over_the_limit_is_413_on_v2_too(app_factory) -> None:
    client = app_factory(max_body_bytes=1024).test_client()

    assert_error(client.post(INFER, data=b"{" + b" " * 2000 + b"}"), 413, "too large")


def test_unexpected_exception_is_a_json_500_without_details(
    app: Flask, client: FlaskClient, log_lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = served(app).predictor

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(predictor, "predict", broken)
    in_flight_before = sample("model_server_requests_in_flight")

    response = client.post("/predict", json={"features": [1, 2, 3, 4]}, headers={"X-Request-ID": "req-500"})

    message = assert_error(response, 500, "internal error", "X-Request-ID")
    assert "secret" not in message
    assert response.headers["X-Request-ID"] == "req-500"
    assert sample("model_server_requests_in_flight") == in_flight_before
    [logged] = [line for line in log_lines() if line["message"] == "unhandled error"]
    assert logged["level"] == "ERROR"
    assert logged["request_id"] == "req-500"
    assert "secret internals" in logged["exc_info"]
