"""Fixtures of the model server's unit tests, after Flask's tutorial: an app factory and a client.

The model is trained once per session into a temporary directory that no test modifies (tests
that need a broken model directory copy it first). Every app is built from explicit Settings;
the Settings environment variables of the shell running pytest are removed, so they cannot leak
into a test.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# prometheus_client picks its single- or multi-process value class once, on import: the
# in-process tests use the default registry, so a PROMETHEUS_MULTIPROC_DIR exported by the
# calling shell must not reach it. (test_gunicorn passes the variable to its subprocesses.)
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import numpy as np
import pytest
import skops.io
from flask import Flask
from flask.testing import FlaskClient
from model_server.app import create_app
from model_server.config import Settings
from model_server.tools.train import train
from sklearn.datasets import load_iris

from .helpers import MODEL, SETTINGS_ENV, json_logs, repository_of


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in {*SETTINGS_ENV, "PROMETHEUS_MULTIPROC_DIR", "PORT"}:  # Settings ignores case
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default iris model, trained once; read-only for the tests."""
    path = tmp_path_factory.mktemp("model")
    train(path)
    return path


@pytest.fixture(scope="session")
def metadata(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def estimator(model_dir: Path) -> Any:
    """The trained estimator, loaded by the test itself (not through the server's loader)."""
    path = model_dir / "model.skops"
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


@pytest.fixture(scope="session")
def rows() -> np.ndarray:
    """Realistic inputs: every iris sample, plus seeded random rows around them."""
    data = load_iris().data
    rng = np.random.default_rng(0)
    noise = rng.uniform(data.min(axis=0) - 1, data.max(axis=0) + 1, size=(50, 4)).round(2)
    return np.vstack([data, noise])


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the trained model directory."""
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


@pytest.fixture(scope="session")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the default model as iris-rf version 1; read-only for the tests."""
    root = tmp_path_factory.mktemp("repository")
    shutil.copytree(model_dir, root / MODEL / "1")
    return root


@pytest.fixture
def app_factory(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Flask]:
    """Apps on the test repository, loaded once (MODEL_POLL_SECONDS=0: no poller thread; tests that
    exercise polling call ``manager.sync()``). ``model_dir=DIR`` serves DIR as iris-rf version 1."""

    def make(**overrides: Any) -> Flask:
        model_dir = overrides.pop("model_dir", None)
        if model_dir is not None:
            overrides["model_repository"] = repository_of(model_dir, tmp_path_factory.mktemp("repository"))
        overrides.setdefault("model_repository", repository)
        overrides.setdefault("model_poll_seconds", 0)
        return create_app(Settings(**overrides))  # production config: TESTING stays off

    return make


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def log_lines(app: Flask) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines the app's root handler writes from now on (parsed)."""
    with json_logs() as lines:
        yield lines
