"""The model every system serves: the one the image trained at build time, copied out and re-saved.

The image's ``/opt/models/iris-rf/1`` is checked (its SHA-256 against ``metadata.json``, its skops
types), loaded, and written as a pickle for the tutorial app and a joblib file for MLServer. The
check rows (iris, the tutorial's row, seeded random rows) get the loaded model's answers, which
every system must give. The training recipe is the model server's own
(``model_server.train``): the benchmark trains once more with it and records whether the result
predicts like the image's model.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.commands import Failed

MODEL_NAME = "iris-rf"
MODEL_VERSION = "1"
IMAGE_MODEL_DIR = f"/opt/models/{MODEL_NAME}/{MODEL_VERSION}"  # the image's built-in repository
TUTORIAL_ROW = [1, 2, 3, 4]
RANDOM_ROWS = 29
# What a random forest's skops file holds beyond skops' default trusted types.
EXPECTED_UNTRUSTED = {"sklearn.tree._tree.Tree"}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model_dir(model_dir: Path) -> tuple[Any, dict[str, Any], str]:
    """(estimator, metadata, artifact SHA-256) of a model directory, refused if the artifact's digest
    differs from its metadata's or it holds types a random forest does not."""
    import skops.io

    metadata = json.loads((model_dir / "metadata.json").read_text())
    artifact = model_dir / metadata.get("artifact", "model.skops")
    digest = sha256_of(artifact)
    if metadata.get("sha256") and metadata["sha256"] != digest:
        raise Failed(f"{artifact} SHA-256 {digest} differs from metadata.json's {metadata['sha256']}")
    untrusted = skops.io.get_untrusted_types(file=artifact)
    unexpected = set(untrusted) - EXPECTED_UNTRUSTED
    if unexpected:
        raise Failed(f"{artifact} holds unexpected types {sorted(unexpected)}")
    return skops.io.load(artifact, trusted=untrusted), metadata, digest


def check_rows() -> list[list[float]]:
    """Iris, the tutorial's row, and random rows within iris' ranges (seeded)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    rng = np.random.default_rng(0)
    random_rows = rng.uniform(iris.data.min(axis=0), iris.data.max(axis=0), size=(RANDOM_ROWS, 4)).round(2)
    return np.vstack([iris.data, [TUTORIAL_ROW], random_rows]).tolist()


def retrained_agrees(model: Any, rows: list[list[float]], scratch: Path) -> bool:
    """Whether a model trained here by ``model_server.train`` predicts ``rows`` like ``model``."""
    from model_server.train import train

    train(scratch, MODEL_NAME, MODEL_VERSION)
    retrained, _, _ = load_model_dir(scratch)
    return bool(np.array_equal(retrained.predict(rows), model.predict(rows)))


def write_artifacts(model: Any, metadata: dict[str, Any], tutorial_pickle: Path, mlserver_repo: Path) -> None:
    """The tutorial's pickle, and MLServer's model folder (a joblib file and ``model-settings.json``)."""
    import joblib

    tutorial_pickle.parent.mkdir(parents=True, exist_ok=True)
    with tutorial_pickle.open("wb") as handle:
        pickle.dump(model, handle)
    folder = mlserver_repo / MODEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": str(metadata.get("version", MODEL_VERSION))},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
