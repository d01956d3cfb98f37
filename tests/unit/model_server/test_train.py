"""model_server.train: the default iris model, its metadata, and reproducibility."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sklearn
import skops.io
from model_server.artifact import DEFAULT_TRUSTED_TYPES, load_artifact
from model_server.train import main, train
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split


def load(model_dir: Path):
    return load_artifact(model_dir).estimator


def test_writes_artifact_and_metadata(model_dir: Path, metadata: dict) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == ["metadata.json", "model.skops"]
    assert metadata["name"] == "iris-rf"
    assert metadata["version"] == "1"
    assert metadata["artifact"] == "model.skops"
    assert metadata["estimator"] == "RandomForestClassifier"
    assert metadata["sklearn_version"] == sklearn.__version__
    assert metadata["numpy_version"] == np.__version__
    assert metadata["feature_names"] == list(load_iris().feature_names)
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert datetime.fromisoformat(metadata["created"]).tzinfo is not None


def test_metadata_sha256_is_the_artifact_digest(model_dir: Path, metadata: dict) -> None:
    assert metadata["sha256"] == hashlib.sha256((model_dir / "model.skops").read_bytes()).hexdigest()


def test_accuracy_is_measured_on_held_out_rows(model_dir: Path, metadata: dict) -> None:
    iris = load_iris()
    _, x_test, _, y_test = train_test_split(iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0)

    accuracy = accuracy_score(y_test, load(model_dir).predict(x_test))

    assert metadata["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert accuracy >= 0.9
    assert metadata["metrics"]["test_rows"] == len(y_test) == 30
    assert metadata["metrics"]["train_rows"] == 120


def test_feature_means_are_the_training_means(metadata: dict) -> None:
    iris = load_iris()
    x_train, *_ = train_test_split(iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0)

    np.testing.assert_allclose(metadata["feature_means"], x_train.mean(axis=0), atol=1e-6)


def test_artifact_needs_no_trust_beyond_the_defaults(model_dir: Path) -> None:
    assert set(skops.io.get_untrusted_types(file=model_dir / "model.skops")) <= set(DEFAULT_TRUSTED_TYPES)


def test_two_runs_predict_identically(model_dir: Path, tmp_path: Path, rows: np.ndarray) -> None:
    again = train(tmp_path / "again")

    first, second = load(model_dir), load(tmp_path / "again")
    np.testing.assert_array_equal(first.predict(rows), second.predict(rows))
    np.testing.assert_array_equal(first.predict_proba(rows), second.predict_proba(rows))
    assert again["metrics"] == json.loads((model_dir / "metadata.json").read_text())["metrics"]


def test_source_date_epoch_fixes_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")

    assert train(tmp_path)["created"] == "2026-01-01T00:00:00+00:00"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--output-dir", str(tmp_path / "out"), "--name", "flowers", "--version", "3"])

    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert printed == {k: written[k] for k in ("name", "version", "sha256", "metrics")}
    assert (printed["name"], printed["version"]) == ("flowers", "3")


def test_cli_needs_an_output_dir(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "--output-dir" in capsys.readouterr().err
