"""Train the default model and write a model directory the server can load.

``python -m model_server.train --output-dir /opt/model`` fits
``RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0)`` on scikit-learn's
bundled iris data (no download), holding out 20 % (stratified, seeded) to measure accuracy,
and writes:

* ``model.skops``: the estimator in skops format (no pickle);
* ``metadata.json``: name, version, created, library versions, feature and class names,
  the artifact's SHA-256, held-out accuracy, the training feature means and the reference
  distribution for drift (model_server.monitoring.reference), all built by model_server.package.

``--repository DIR`` instead publishes the same directory atomically as a new version of a model
repository, ``DIR/<name>/<version>`` (model_server.tools.publish; an existing version is refused).

Everything is seeded, so predictions are reproducible; ``SOURCE_DATE_EPOCH`` fixes ``created``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from .package import write_model_dir
from .publish import PublishError, publish

PARAMS = {"n_estimators": 50, "max_depth": 8, "random_state": 0}


def train(output_dir: Path, name: str = "iris-rf", version: str = "1") -> dict[str, Any]:
    """Fit the default model, write artifact + metadata into ``output_dir``; return the metadata."""
    output_dir.mkdir(parents=True, exist_ok=True)
    return _fit_and_write(output_dir, name, version)


def train_into_repository(repository: Path, name: str = "iris-rf", version: str = "1") -> tuple[Path, dict[str, Any]]:
    """Fit the default model and publish it as ``<repository>/<name>/<version>``; return that path and the metadata."""
    return publish(repository, name, version, lambda directory: _fit_and_write(directory, name, version))


def _fit_and_write(directory: Path, name: str, version: str) -> dict[str, Any]:
    """The training recipe, and the only one: fit on 80 %, measure on the held-out 20 %."""
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0
    )
    model = RandomForestClassifier(**PARAMS)
    model.fit(x_train, y_train)
    accuracy = float(accuracy_score(y_test, model.predict(x_test)))
    return write_model_dir(
        directory,
        model,
        x_train,
        name=name,
        version=version,
        feature_names=list(iris.feature_names),
        class_names=[str(c) for c in iris.target_names],
        metrics={"accuracy": accuracy, "test_rows": len(y_test), "train_rows": len(y_train)},
        extra={"params": PARAMS, "dataset": "sklearn.datasets.load_iris"},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--output-dir", type=Path, help="write the model directory here")
    where.add_argument("--repository", type=Path, help="publish <repository>/<name>/<version> atomically instead")
    parser.add_argument("--name", default="iris-rf")
    parser.add_argument("--version", default="1")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {}
    if args.repository is not None:
        try:
            path, metadata = train_into_repository(args.repository, args.name, args.version)
        except PublishError as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
        summary["path"] = str(path)
    else:
        metadata = train(args.output_dir, args.name, args.version)
    print(json.dumps({k: metadata[k] for k in ("name", "version", "sha256", "metrics")} | summary))


if __name__ == "__main__":
    main()
