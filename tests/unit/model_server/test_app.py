"""The application factory's Flask subclass."""

from __future__ import annotations

import flask.app
import pytest
from flask.testing import FlaskClient


def test_each_view_and_hook_is_checked_for_a_coroutine_once(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = []
    real = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda func: checked.append(func) or real(func))

    for _ in range(3):
        assert client.get("/v2/health/live").status_code == 200
        assert client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).status_code == 200

    assert len(checked) >= 4  # the two views and the request hooks
    assert len(checked) == len(set(checked))  # ... each once, not once per request
