"""The container health check: exit status 0 only when /v2/health/ready answers 200."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from model_server import healthcheck
from model_server.artifact import load_artifact
from model_server.predictor import Predictor
from model_server.state import ServerState
from werkzeug.serving import make_server

from .helpers import free_port


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_ready_server(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(app) as port:
        monkeypatch.setenv("PORT", str(port))
        assert healthcheck.main() == 0


def test_server_that_is_not_ready(app: Flask, model_dir, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    state = app.extensions["model_server"]
    app.extensions["model_server"] = ServerState(state.settings, Predictor(load_artifact(model_dir)))
    with serving(app) as port:
        monkeypatch.setenv("PORT", str(port))
        assert healthcheck.main() == 1
    assert "503" in capsys.readouterr().err


def test_nothing_listening(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("PORT", str(free_port()))

    assert healthcheck.main() == 1
    assert "not ready" in capsys.readouterr().err


def test_another_server_on_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    other = Flask("other")  # answers 404 on /v2/health/ready
    with serving(other) as port:
        monkeypatch.setenv("PORT", str(port))
        assert healthcheck.main() == 1
