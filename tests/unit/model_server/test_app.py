"""The application factory's Flask subclass."""

from __future__ import annotations

import gc

import flask
import model_server.app
import pytest
from flask import Flask, Response
from flask.testing import FlaskClient


def test_each_view_and_hook_is_checked_for_a_coroutine_once(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = []
    real = model_server.app.iscoroutinefunction
    monkeypatch.setattr(model_server.app, "iscoroutinefunction", lambda func: checked.append(func) or real(func))

    for _ in range(3):
        assert client.get("/v2/health/live").status_code == 200
        assert client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200

    assert len(checked) >= 4  # the two views and the request hooks
    assert len(checked) == len(set(checked))  # ... each once, not once per request


def test_a_callable_made_per_request_does_not_stay_in_the_cache(app: Flask, client: FlaskClient) -> None:
    def respond() -> Response:
        flask.after_this_request(lambda response: response)  # a new closure every request
        return flask.jsonify(ok=True)

    app.add_url_rule("/per-request", view_func=respond)
    assert client.get("/per-request").status_code == 200
    gc.collect()
    cached = len(app._coroutine)

    for _ in range(20):
        assert client.get("/per-request").status_code == 200
    gc.collect()

    assert len(app._coroutine) == cached
