"""Train the default model and write a model directory the server can load.

``python -m model_server.train --output-dir /opt/model`` fits
``RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0)`` on scikit-learn's
bundled iris data (no download), holding out 20 % (stratified, seeded) to measure accuracy,
and writes:

* ``model.skops``: the estimator in skops format (no pickle);
* ``metadata.json``: name, version, created, library versions, feature and class names,
  the artifact's SHA-256, held-out accuracy, and the training feature means (drift reference).

Everything is seeded, so predictions are reproducible; ``SOURCE_DATE_EPOCH`` fixes ``created``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from .artifact import METADATA_NAME, sha256_of

ARTIFACT_NAME = "model.skops"


def train(output_dir: Path, name: str = "iris-rf", version: str = "1") -> dict[str, Any]:
    """Fit the default model, write artifact + metadata into ``output_dir``; return the metadata."""
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0
    )
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0)
    model.fit(x_train, y_train)
    accuracy = float(accuracy_score(y_test, model.predict(x_test)))

    output_dir.mkdir(parents=True, exist_ok=True)
    artifact = output_dir / ARTIFACT_NAME
    skops.io.dump(model, artifact)

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    created = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    metadata = {
        "name": name,
        "version": version,
        "created": created.isoformat(timespec="seconds"),
        "artifact": ARTIFACT_NAME,
        "sha256": sha256_of(artifact),
        "estimator": type(model).__name__,
        "params": {"n_estimators": 50, "max_depth": 8, "random_state": 0},
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "dataset": "sklearn.datasets.load_iris",
        "feature_names": list(iris.feature_names),
        "class_names": [str(c) for c in iris.target_names],
        "feature_means": [round(float(m), 6) for m in x_train.mean(axis=0)],
        "metrics": {"accuracy": accuracy, "test_rows": len(y_test), "train_rows": len(y_train)},
    }
    (output_dir / METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--name", default="iris-rf")
    parser.add_argument("--version", default="1")
    args = parser.parse_args(argv)
    metadata = train(args.output_dir, args.name, args.version)
    print(json.dumps({k: metadata[k] for k in ("name", "version", "sha256", "metrics")}))


if __name__ == "__main__":
    main()
