"""Tabular models for the endpoint tests: the penguins Pipelines, packaged once, and an app serving each by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from model_server.app import create_app
from model_server.config import Settings
from sklearn.pipeline import Pipeline

from harness import penguins


@pytest.fixture(scope="session")
def fitted() -> dict[str, Pipeline]:
    """The penguins Pipelines as fitted, by model name: what every answer is compared with."""
    return {penguins.FOREST: penguins.forest(), penguins.LOGISTIC: penguins.logistic()}


@pytest.fixture(scope="session")
def penguin_repository(fitted: dict[str, Pipeline], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, work = tmp_path_factory.mktemp("repository"), tmp_path_factory.mktemp("work")
    for name, estimator in fitted.items():
        penguins.publish_penguins(root, work, name, estimator)
    return root


@pytest.fixture(scope="session")
def apps(penguin_repository: Path) -> dict[str, Flask]:
    """An app on the penguins repository per model, serving it as the default model (/predict, /invocations)."""
    return {
        name: create_app(Settings(model_repository=penguin_repository, default_model=name))
        for name in (penguins.FOREST, penguins.LOGISTIC)
    }


@pytest.fixture(scope="session")
def tabular(apps: dict[str, Flask]) -> Flask:
    return apps[penguins.LOGISTIC]
