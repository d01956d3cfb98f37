"""The container health check: exit status 0 only when /v2/health/ready answers 200."""

from __future__ import annotations

import pytest
from flask import Flask
from model_server.process import healthcheck

from ..helpers import free_port, serving


def test_ready_server(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(app) as port:
        monkeypatch.setenv("PORT", str(port))
        assert healthcheck.main() == 0


def test_server_that_is_not_ready(app_factory, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # A repository with nothing servable yet, polled: the server runs, and is not ready.
    app = app_factory(model_repository=tmp_path, model_poll_seconds=60)
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
