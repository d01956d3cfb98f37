"""Model versions for the repository tests: small, quick to build, and told apart by their answers.

Version ``v`` of an iris model here is a decision tree fitted on the iris labels plus ``10 * v``,
so on any row it predicts ``10 * v`` + the iris class: a response's prediction names the version
that computed it (:func:`label_of`), and a response that mixed two versions would show it.
``wine`` is a second model with another feature count (13) and another estimator.

Versions are published as a publisher should (:func:`model_server.tools.publish.publish`: a hidden
temp folder renamed into place), or written in place where a test wants a half-copied one.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from flask import Flask
from model_server.tools.package import write_model_dir
from model_server.tools.publish import publish
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from .helpers import MODEL, scrape

ROW = [5.1, 3.5, 1.4, 0.2]  # an iris setosa (class 0)
WINE = "wine"


def label_of(version: int) -> int:
    """What version ``version`` of the iris model predicts on ROW."""
    return 10 * version


@cache
def iris_tree(version: int) -> DecisionTreeClassifier:
    iris = load_iris()
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(iris.data, iris.target + label_of(version))


@cache
def wine_model() -> Any:
    wine = load_wine()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(wine.data, wine.target)


def write_iris(directory: Path, version: int, name: str = MODEL) -> Path:
    """Write iris version ``version`` (artifact and metadata) into ``directory``, created if need be."""
    directory.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    write_model_dir(
        directory, iris_tree(version), iris.data, name=name, version=str(version), feature_names=iris.feature_names
    )
    return directory


def publish_iris(repository: Path, version: int, name: str = MODEL) -> Path:
    """Publish iris version ``version`` atomically: ``<repository>/<name>/<version>``."""
    path, _ = publish(repository, name, str(version), lambda directory: write_iris(directory, version, name))
    return path


def publish_wine(repository: Path, version: int = 1, name: str = WINE) -> Path:
    wine = load_wine()

    def write(directory: Path) -> None:
        write_model_dir(
            directory, wine_model(), wine.data, name=name, version=str(version), feature_names=wine.feature_names
        )

    path, _ = publish(repository, name, str(version), write)
    return path


def wine_rows() -> np.ndarray:
    return load_wine().data[::20]


def set_policy(repository: Path, policy: dict[str, Any] | str, name: str = MODEL) -> None:
    """Write ``<repository>/<name>/config.json``: ``{"version_policy": policy}``, or the text given."""
    text = policy if isinstance(policy, str) else json.dumps({"version_policy": policy})
    (repository / name / "config.json").write_text(text, encoding="utf-8")


def remove(path: Path) -> None:
    shutil.rmtree(path)


def dump_untrusted(directory: Path) -> None:
    """A version whose skops file holds a type no one trusted (a custom function step)."""
    from sklearn.preprocessing import FunctionTransformer

    from . import custom_steps

    iris = load_iris()
    model = make_pipeline(FunctionTransformer(custom_steps.double), DecisionTreeClassifier(max_depth=2)).fit(
        iris.data, iris.target
    )
    directory.mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, directory / "model.skops")


class Replica:
    """An app on a repository, seen as a user sees it: its endpoints, and its poller's ``sync``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.poller = app.extensions["model_server"].poller
        self.live_models = app.extensions["model_server"].live_models

    def sync(self, times: int = 1) -> None:
        for _ in range(times):
            self.poller.sync()

    def loaded(self, name: str = MODEL) -> list[int]:
        """The versions of ``name`` that serve right now."""
        return sorted(self.live_models.snapshot.models.get(name, {}))

    def index(self, **body: Any) -> list[dict[str, str]]:
        response = self.client.post("/v2/repository/index", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def states(self, name: str = MODEL) -> dict[int, str]:
        return {int(e["version"]): e["state"] for e in self.index() if e["name"] == name}

    def scrape(self) -> dict:
        return scrape(self.client.get("/metrics").get_data(as_text=True))

    def predict(self, row: list[float] = ROW) -> tuple[int, int]:
        """(X-Model-Version, prediction) of /predict on ``row``."""
        response = self.client.post("/predict", json={"features": row})
        assert response.status_code == 200, response.get_data(as_text=True)
        return int(response.headers["X-Model-Version"]), response.get_json()["prediction"][0]


def scraped_versions(samples: dict, metric: str, name: str = MODEL) -> list[int]:
    """The ``version`` labels of ``metric``'s samples for model ``name``."""
    return sorted(
        int(dict(labels)["version"])
        for sample_name, labels in samples
        if sample_name == metric and dict(labels).get("model") == name
    )
