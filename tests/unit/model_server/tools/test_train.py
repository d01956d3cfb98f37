"""model_server.tools.train: the default iris model, its metadata, and reproducibility."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sklearn
import skops.io
from model_server.monitoring.reference import bin_shares, decile_edges, prediction_shares
from model_server.repository.artifact import DEFAULT_TRUSTED_TYPES, load_artifact
from model_server.repository.layout import scan
from model_server.tools.train import main, train
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


def test_reference_is_the_training_split(metadata: dict, estimator) -> None:
    iris = load_iris()
    x_train, *_ = train_test_split(iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0)
    reference = metadata["reference"]

    assert metadata["training_rows"] == 120
    assert list(reference["features"]) == metadata["feature_names"]
    for j, name in enumerate(metadata["feature_names"]):
        edges = decile_edges(x_train[:, j])
        assert reference["features"][name] == {"edges": edges.tolist(), "shares": bin_shares(edges, x_train[:, j])}
    assert reference["predictions"] == prediction_shares(
        estimator.predict(x_train), [0, 1, 2], ["setosa", "versicolor", "virginica"]
    )


def test_repository_publishes_the_same_model_as_a_version(
    tmp_path: Path, metadata: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "models"

    main(["--repository", str(repository), "--version", "2"])

    path = repository / "iris-rf" / "2"
    written = json.loads((path / "metadata.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"path": str(path), **{k: written[k] for k in ("name", "version", "sha256", "metrics")}}
    assert scan(repository)["iris-rf"].versions == {2: path}
    assert sorted(p.name for p in path.parent.iterdir()) == ["2"]  # no temp folder left
    assert load_artifact(path).sha256 == written["sha256"]
    differs = {"created", "version", "sha256"}  # skops files carry a timestamp
    assert {k: v for k, v in written.items() if k not in differs} == {
        k: v for k, v in metadata.items() if k not in differs
    }


def test_repository_refuses_an_existing_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--repository", str(tmp_path)])
    capsys.readouterr()

    with pytest.raises(SystemExit) as exited:
        main(["--repository", str(tmp_path)])

    assert exited.value.code == 2
    assert f"{tmp_path}/iris-rf/1 already exists" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "iris-rf").iterdir()) == ["1"]


def test_repository_versions_are_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--repository", str(tmp_path), "--version", "v2"])

    assert exited.value.code == 2
    assert "version 'v2' is invalid" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_output_dir_and_repository_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--output-dir", str(tmp_path / "a"), "--repository", str(tmp_path / "b")])

    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
