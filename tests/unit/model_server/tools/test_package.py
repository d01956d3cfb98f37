"""model_server.tools.package (with model_server.tools.dataset and model_server.tools.publish): a fitted estimator and a
sample of its training data become a complete version folder, published atomically."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from model_server.monitoring.reference import bin_shares, decile_edges, prediction_shares
from model_server.repository.artifact import load_artifact
from model_server.repository.layout import scan
from model_server.tools.dataset import DataError
from model_server.tools.package import PackageError, main, package, untrusted_types
from model_server.tools.publish import PublishError, publish
from sklearn.datasets import load_iris, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

IRIS = load_iris()
FEATURES = [name.replace(" (cm)", "").replace(" ", "_") for name in IRIS.feature_names]
X_TRAIN, X_TEST, Y_TRAIN, Y_TEST = train_test_split(
    IRIS.data, IRIS.target, test_size=0.2, stratify=IRIS.target, random_state=0
)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X_TRAIN, Y_TRAIN)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repository"


@pytest.fixture
def forest_file(tmp_path: Path, forest: RandomForestClassifier) -> Path:
    path = tmp_path / "forest.skops"
    skops.io.dump(forest, path)
    return path


def write_csv(path: Path, header: Sequence[str], rows: Any) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def iris_csv(path: Path, x: np.ndarray = X_TRAIN, y: np.ndarray | None = Y_TRAIN) -> Path:
    if y is None:
        return write_csv(path, FEATURES, x.tolist())
    return write_csv(
        path, [*FEATURES[:2], "species", *FEATURES[2:]], [[*r[:2], t, *r[2:]] for r, t in zip(x, y, strict=True)]
    )


def publish_iris(repo: Path, forest_file: Path, tmp_path: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    options = {"name": "iris", "version": "1", "repository": repo, "target_column": "species", **options}
    return package(forest_file, iris_csv(tmp_path / "train.csv"), **options)


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- a complete version --------------------------------------------------------------------------


def test_a_csv_sample_publishes_a_version_the_server_loads(
    repo: Path, forest_file: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path, metadata = publish_iris(repo, forest_file, tmp_path)

    assert path == repo / "iris" / "1"
    assert entries(repo / "iris") == ["1"]  # no temp folder left behind
    assert entries(path) == ["metadata.json", "model.skops"]
    assert json.loads((path / "metadata.json").read_text()) == metadata
    loaded = load_artifact(path)  # the server's loader: skops, default trusted types, SHA-256 check
    assert loaded.sha256 == metadata["sha256"] == hashlib.sha256((path / "model.skops").read_bytes()).hexdigest()
    np.testing.assert_array_equal(loaded.estimator.predict(X_TEST), forest.predict(X_TEST))
    assert scan(repo)["iris"].versions == {1: path}


def test_metadata_describes_the_model_and_its_training_sample(
    repo: Path, forest_file: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    _, metadata = publish_iris(repo, forest_file, tmp_path)

    assert list(metadata) == [
        "name", "version", "created", "artifact", "sha256", "estimator", "sklearn_version", "numpy_version",
        "python_version", "feature_names", "signature", "class_names", "feature_means", "training_rows", "reference",
    ]  # fmt: skip
    assert metadata["signature"] == {"inputs": [{"name": f, "type": "double", "nullable": False} for f in FEATURES],
                                     "frame": False}  # fmt: skip
    assert (metadata["name"], metadata["version"], metadata["artifact"]) == ("iris", "1", "model.skops")
    assert metadata["estimator"] == "RandomForestClassifier"
    assert metadata["feature_names"] == FEATURES  # the header without the target column
    assert metadata["class_names"] == ["0", "1", "2"]
    assert metadata["training_rows"] == len(X_TRAIN) == 120
    np.testing.assert_allclose(metadata["feature_means"], X_TRAIN.mean(axis=0), atol=1e-6)


def test_class_names_name_a_classifiers_integer_classes(
    repo: Path, forest_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["setosa", "versicolor", "virginica"]
    _, metadata = publish_iris(repo, forest_file, tmp_path, class_names=names)
    assert metadata["class_names"] == names
    assert list(metadata["reference"]["predictions"]) == names  # the predicted-class shares, by name
    main(["--estimator", str(forest_file), "--train-data", str(iris_csv(tmp_path / "cli.csv")), "--target-column",
          "species", "--name", "iris", "--version", "2", "--repository", str(repo),
          "--class-names", "setosa, versicolor,virginica"])  # fmt: skip
    assert json.loads((repo / "iris" / "2" / "metadata.json").read_text())["class_names"] == names
    for wrong, message in [
        (["setosa", "versicolor"], "--class-names gives 2 names for the model's 3 classes (0, 1, 2)"),
        (["a", "a", "b"], "--class-names must be distinct and non-empty"),
    ]:
        with pytest.raises(PackageError, match=re.escape(message)):
            publish_iris(repo, forest_file, tmp_path, version="3", class_names=wrong)
    assert entries(repo / "iris") == ["1", "2"]


def test_the_reference_is_the_training_distribution(
    repo: Path, forest_file: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    _, metadata = publish_iris(repo, forest_file, tmp_path)
    reference = metadata["reference"]

    assert list(reference["features"]) == FEATURES
    for j, name in enumerate(FEATURES):
        edges = decile_edges(X_TRAIN[:, j])
        assert reference["features"][name] == {"edges": edges.tolist(), "shares": bin_shares(edges, X_TRAIN[:, j])}
    expected = np.bincount(forest.predict(X_TRAIN), minlength=3) / len(X_TRAIN)
    assert list(reference["predictions"]) == ["0", "1", "2"]
    np.testing.assert_allclose(list(reference["predictions"].values()), expected, atol=1e-6)
    assert sum(reference["predictions"].values()) == pytest.approx(1, abs=1e-6)


def test_max_features_limits_the_binned_features(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    _, metadata = publish_iris(repo, forest_file, tmp_path, max_features=2)

    assert list(metadata["reference"]["features"]) == FEATURES[:2]
    assert metadata["feature_names"] == FEATURES


def test_source_date_epoch_fixes_created(
    repo: Path, forest_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")

    assert publish_iris(repo, forest_file, tmp_path)[1]["created"] == "2026-01-01T00:00:00+00:00"


def test_a_csv_without_a_target_column(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    path, metadata = package(
        forest_file, iris_csv(tmp_path / "x.csv", y=None), name="iris", version="3", repository=repo
    )

    assert path == repo / "iris" / "3"
    assert metadata["feature_names"] == FEATURES


@pytest.mark.parametrize("target", [None, "0", "4", "-1"])
def test_a_npy_sample_with_or_without_a_target_index(
    repo: Path, forest_file: Path, tmp_path: Path, target: str | None
) -> None:
    data = X_TRAIN if target is None else np.insert(X_TRAIN, int(target) % 5, Y_TRAIN, axis=1)
    np.save(tmp_path / "train.npy", data)

    _, metadata = package(
        forest_file, tmp_path / "train.npy", name="iris", version="1", repository=repo, target_column=target
    )

    assert metadata["feature_names"] == ["x0", "x1", "x2", "x3"]  # no header, no feature_names_in_
    assert metadata["reference"]["features"]["x2"]["edges"] == decile_edges(X_TRAIN[:, 2]).tolist()


def test_feature_names_from_the_estimator_when_the_data_has_none(
    repo: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    named = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_TRAIN, Y_TRAIN)
    named.feature_names_in_ = np.array(FEATURES, dtype=object)  # as if fitted on a named table
    joblib.dump(named, tmp_path / "named.joblib")
    np.save(tmp_path / "train.npy", X_TRAIN)

    _, metadata = package(tmp_path / "named.joblib", tmp_path / "train.npy", name="iris", version="1", repository=repo)

    assert metadata["feature_names"] == FEATURES


def test_a_header_that_differs_from_the_estimators_feature_names_is_refused(repo: Path, tmp_path: Path) -> None:
    named = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_TRAIN, Y_TRAIN)
    named.feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)
    joblib.dump(named, tmp_path / "named.joblib")

    with pytest.raises(PackageError, match=r"x.csv has no column 'a', which the estimator was fitted on"):
        package(tmp_path / "named.joblib", iris_csv(tmp_path / "x.csv", y=None), name="i", version="1", repository=repo)


@pytest.mark.parametrize("suffix", [".skops", ".joblib", ".pkl"])
def test_every_estimator_format_becomes_model_skops(
    repo: Path, tmp_path: Path, forest: RandomForestClassifier, suffix: str
) -> None:
    source = tmp_path / f"forest{suffix}"
    if suffix == ".skops":
        skops.io.dump(forest, source)
    elif suffix == ".joblib":
        joblib.dump(forest, source)
    else:
        source.write_bytes(pickle.dumps(forest))

    path, _ = package(
        source, iris_csv(tmp_path / "t.csv"), name="iris", version="1", repository=repo, target_column="species"
    )

    assert entries(path) == ["metadata.json", "model.skops"]
    np.testing.assert_array_equal(load_artifact(path).estimator.predict(X_TEST), forest.predict(X_TEST))


# --- held-out accuracy, and a second example: wine --------------------------------------------


def test_eval_data_records_held_out_accuracy(
    repo: Path, forest_file: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    _, metadata = publish_iris(repo, forest_file, tmp_path, eval_path=iris_csv(tmp_path / "eval.csv", X_TEST, Y_TEST))

    assert metadata["metrics"] == {"accuracy": forest.score(X_TEST, Y_TEST), "eval_rows": 30}


def test_wine_logistic_regression_with_text_labels(repo: Path, tmp_path: Path) -> None:
    wine = load_wine()
    labels = wine.target_names[wine.target]  # "class_0", "class_1", "class_2"
    x_train, x_test, y_train, y_test = train_test_split(wine.data, labels, test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    joblib.dump(model, tmp_path / "wine.joblib")
    header = [*wine.feature_names, "cultivar"]
    train_csv = write_csv(
        tmp_path / "train.csv", header, [[*r, t] for r, t in zip(x_train.tolist(), y_train, strict=True)]
    )
    eval_csv = write_csv(tmp_path / "eval.csv", header, [[*r, t] for r, t in zip(x_test.tolist(), y_test, strict=True)])

    path, metadata = package(
        tmp_path / "wine.joblib",
        train_csv,
        name="wine-lr",
        version="1",
        repository=repo,
        target_column="cultivar",
        eval_path=eval_csv,
        max_features=5,
    )

    assert metadata["estimator"] == "Pipeline"
    assert metadata["feature_names"] == list(wine.feature_names)
    assert metadata["class_names"] == ["class_0", "class_1", "class_2"]
    assert len(metadata["reference"]["features"]) == 5
    assert metadata["reference"]["predictions"] == prediction_shares(
        model.predict(x_train), model.classes_, ["class_0", "class_1", "class_2"]
    )
    assert metadata["metrics"] == {"accuracy": model.score(x_test, y_test), "eval_rows": len(y_test)}
    assert metadata["metrics"]["accuracy"] > 0.9
    assert untrusted_types(path / "model.skops") == []
    np.testing.assert_array_equal(load_artifact(path).estimator.predict(x_test), model.predict(x_test))


def test_eval_targets_written_as_floats_name_integer_classes(
    repo: Path, forest_file: Path, tmp_path: Path, forest: RandomForestClassifier
) -> None:
    np.save(tmp_path / "train.npy", np.column_stack([X_TRAIN, Y_TRAIN.astype(float)]))  # the same layout
    np.save(tmp_path / "eval.npy", np.column_stack([X_TEST, Y_TEST.astype(float)]))

    _, metadata = package(
        forest_file,
        tmp_path / "train.npy",
        name="iris",
        version="1",
        repository=repo,
        target_column="4",
        eval_path=tmp_path / "eval.npy",
    )

    assert metadata["metrics"]["accuracy"] == forest.score(X_TEST, Y_TEST)


def test_eval_data_needs_the_target_column(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="--eval-data needs --target-column"):
        package(
            forest_file,
            iris_csv(tmp_path / "x.csv", y=None),
            name="iris",
            version="1",
            repository=repo,
            eval_path=iris_csv(tmp_path / "eval.csv", X_TEST, Y_TEST),
        )


def test_eval_data_with_an_unknown_label_is_refused(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    y = Y_TEST.astype(object)
    y[4] = "setosa"

    with pytest.raises(PackageError, match=r"eval.csv: target 'setosa' of data row 5 is not a class \(0, 1, 2\)"):
        publish_iris(repo, forest_file, tmp_path, eval_path=iris_csv(tmp_path / "eval.csv", X_TEST, y))


def test_eval_data_with_other_columns_is_refused(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    rows = [[*r, t] for r, t in zip(X_TEST.tolist(), Y_TEST, strict=True)]
    eval_csv = write_csv(tmp_path / "eval.csv", ["a", "b", "c", "d", "species"], rows)

    with pytest.raises(PackageError, match=r"eval.csv: its columns .* differ from .*train.csv's"):
        publish_iris(repo, forest_file, tmp_path, eval_path=eval_csv)


def test_eval_data_for_a_regressor_is_refused(repo: Path, tmp_path: Path) -> None:
    joblib.dump(LinearRegression().fit(X_TRAIN, Y_TRAIN), tmp_path / "linear.joblib")
    train_csv = iris_csv(tmp_path / "train.csv")

    with pytest.raises(PackageError, match="accuracy, which needs a classifier"):
        package(
            tmp_path / "linear.joblib",
            train_csv,
            name="r",
            version="1",
            repository=repo,
            target_column="species",
            eval_path=train_csv,
        )


def test_a_regressor_has_no_classes_and_no_prediction_shares(repo: Path, tmp_path: Path) -> None:
    joblib.dump(LinearRegression().fit(X_TRAIN, Y_TRAIN), tmp_path / "linear.joblib")

    _, metadata = package(
        tmp_path / "linear.joblib",
        iris_csv(tmp_path / "train.csv"),
        name="r",
        version="1",
        repository=repo,
        target_column="species",
    )

    assert "class_names" not in metadata
    assert list(metadata["reference"]) == ["features"]


# --- refusals: the estimator ------------------------------------------------------------------


def test_the_column_count_must_match_the_estimator(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"train.csv has 5 feature columns, but the estimator takes 4"):
        publish_iris(repo, forest_file, tmp_path, target_column=None)  # the target column taken for a feature
    with pytest.raises(PackageError, match=r"x.csv has 3 feature columns, but the estimator takes 4"):
        package(
            forest_file,
            write_csv(tmp_path / "x.csv", FEATURES[:3], X_TRAIN[:, :3].tolist()),
            name="iris",
            version="1",
            repository=repo,
        )
    assert not repo.exists()


@pytest.mark.parametrize(
    ("file", "content", "fragment"),
    [
        ("model.csv", b"", "unsupported estimator format '.csv'; expected .skops, .joblib or .pkl"),
        ("model.skops", b"not a zip", "model.skops could not be loaded: "),
        ("model.pkl", b"not a pickle", "model.pkl could not be loaded: "),
        ("model.pkl", pickle.dumps({"weights": [1, 2]}), "model.pkl holds a dict, which has no predict()"),
        ("model.pkl", pickle.dumps(RandomForestClassifier()), "without n_features_in_: is it fitted?"),
    ],
)
def test_unusable_estimator_files(repo: Path, tmp_path: Path, file: str, content: bytes, fragment: str) -> None:
    (tmp_path / file).write_bytes(content)

    with pytest.raises(PackageError) as raised:
        package(tmp_path / file, iris_csv(tmp_path / "t.csv"), name="i", version="1", repository=repo)

    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


# --- refusals: the data ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_non_finite_training_values_are_refused_naming_line_and_column(
    repo: Path, forest_file: Path, tmp_path: Path, bad: str
) -> None:
    rows = X_TRAIN.tolist()
    rows[6][2] = bad
    data = write_csv(tmp_path / "x.csv", FEATURES, rows)

    with pytest.raises(DataError, match=rf"x.csv: line 8, column 'petal_length': {bad} is not a finite number$"):
        package(forest_file, data, name="iris", version="1", repository=repo)
    assert not repo.exists()


def test_non_finite_npy_values_are_refused_naming_row_and_column(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    data = np.insert(X_TRAIN, 0, Y_TRAIN, axis=1)
    data[7, 3] = np.inf
    np.save(tmp_path / "x.npy", data)

    with pytest.raises(DataError, match=r"x.npy: row index 7, column index 3: inf is not a finite number$"):
        package(forest_file, tmp_path / "x.npy", name="iris", version="1", repository=repo, target_column="0")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", None, "x.csv is empty; expected a header row of column names"),
        ("a,b\n", None, "x.csv has no data rows"),
        ("a,b\n1,2\n3\n", None, "x.csv: line 3 has 1 cells, the header has 2"),
        ("a,a\n1,2\n", None, "x.csv: the header must name every column once, got ['a', 'a']"),
        ("a,\n1,2\n", None, "x.csv: the header must name every column once, got ['a', '']"),
        ("a,b\n1,2\n", "c", "x.csv has no column 'c' (columns: a, b)"),
        ("y\n1\n", "y", "x.csv has no feature columns"),
        ("a,b\n1,2\n3,\n", None, "x.csv: line 3, column 'b': '' is not a number"),
        ("a,b\n1,2\n\n3,1.5.2\n", None, "x.csv: line 4, column 'b': '1.5.2' is not a number"),
        ("a,b\n1,2\n3,1,5\n", None, "x.csv: line 3 has 3 cells, the header has 2"),
    ],
)
def test_unusable_csv(tmp_path: Path, forest_file: Path, text: str, target: str | None, message: str) -> None:
    (tmp_path / "x.csv").write_text(text)

    with pytest.raises(DataError) as raised:
        package(forest_file, tmp_path / "x.csv", name="i", version="1", repository=tmp_path, target_column=target)

    assert str(raised.value) == f"{tmp_path}/{message}"


def test_a_csv_with_a_byte_order_mark_and_blank_lines(repo: Path, tmp_path: Path, forest_file: Path) -> None:
    lines = [",".join(FEATURES), "", *(",".join(map(repr, row)) for row in X_TRAIN.tolist()), ""]
    (tmp_path / "x.csv").write_text("\ufeff" + "\r\n".join(lines), encoding="utf-8")

    _, metadata = package(forest_file, tmp_path / "x.csv", name="iris", version="1", repository=repo)

    assert metadata["feature_names"] == FEATURES
    assert metadata["training_rows"] == 120


@pytest.mark.parametrize(
    ("array", "target", "fragment"),
    [
        (np.ones(4), None, "must hold a 2-D array (rows, columns), got shape (4,)"),
        (np.array([["a", "b"]]), None, "holds <U1 values; expected numbers"),
        (np.ones((3, 5)), "5", "target column index 5 is out of range (5 columns)"),
        (np.ones((3, 5)), "species", "the target column of a .npy file is a column index, got 'species'"),
        (np.ones((0, 4)), None, "has no data rows"),
    ],
)
def test_unusable_npy(tmp_path: Path, forest_file: Path, array: np.ndarray, target: str | None, fragment: str) -> None:
    np.save(tmp_path / "x.npy", array)

    with pytest.raises(DataError) as raised:
        package(forest_file, tmp_path / "x.npy", name="i", version="1", repository=tmp_path, target_column=target)

    assert fragment in str(raised.value)


def test_unusable_data_files(tmp_path: Path, forest_file: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    (tmp_path / "x.parquet").write_bytes(b"")

    with pytest.raises(DataError, match=r"x\.npy is not a readable \.npy file"):
        package(forest_file, tmp_path / "x.npy", name="i", version="1", repository=tmp_path)
    with pytest.raises(DataError, match=r"unsupported format '.parquet'; expected .csv \(with a header\) or .npy"):
        package(forest_file, tmp_path / "x.parquet", name="i", version="1", repository=tmp_path)
    with pytest.raises(DataError, match=r"missing\.csv cannot be read as CSV"):
        package(forest_file, tmp_path / "missing.csv", name="i", version="1", repository=tmp_path)


# --- publishing ------------------------------------------------------------------------------


def test_an_existing_version_is_refused_and_left_alone(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    path, _ = publish_iris(repo, forest_file, tmp_path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    with pytest.raises(PublishError, match=r"iris/1 already exists; versions are immutable, publish a new version"):
        publish_iris(repo, forest_file, tmp_path)

    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert entries(repo / "iris") == ["1"]


@pytest.mark.parametrize(
    ("name", "version", "fragment"),
    [
        ("iris", "01", "version '01' is invalid: a positive integer without leading zeros"),
        ("iris", "0", "version '0' is invalid"),
        ("iris", "v2", "version 'v2' is invalid"),
        ("-iris", "1", "model name '-iris' is invalid"),
        ("iris/rf", "1", "model name 'iris/rf' is invalid"),
        (".iris", "1", "model name '.iris' is invalid"),
    ],
)
def test_names_the_repository_would_skip_are_refused(
    repo: Path, forest_file: Path, tmp_path: Path, name: str, version: str, fragment: str
) -> None:
    with pytest.raises(PublishError, match=fragment):
        publish_iris(repo, forest_file, tmp_path, name=name, version=version)


def test_a_version_is_invisible_until_it_is_complete(repo: Path) -> None:
    (repo / "iris").mkdir(parents=True)
    seen = {}

    def write(folder: Path) -> str:
        (folder / "model.skops").write_bytes(b"half")
        seen.update(scan(repo)["iris"].versions)
        return "written"

    path, result = publish(repo, "iris", "1", write)

    assert seen == {}  # the temp folder is hidden from a scan
    assert (path, result) == (repo / "iris" / "1", "written")
    assert scan(repo)["iris"].versions == {1: path}


def test_a_failure_leaves_no_temp_folder_and_no_new_model_folder(repo: Path) -> None:
    def fail(folder: Path) -> None:
        (folder / "model.skops").write_bytes(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        publish(repo, "iris", "1", fail)

    assert entries(repo) == []


def test_a_failure_keeps_an_existing_model_folder_and_its_versions(
    repo: Path, forest_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_iris(repo, forest_file, tmp_path)

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(skops.io, "dump", disk_full)

    with pytest.raises(PublishError, match=r"^cannot publish .*iris/2: .*No space left on device$"):
        publish_iris(repo, forest_file, tmp_path, version="2")

    assert entries(repo / "iris") == ["1"]


def test_a_version_published_meanwhile_by_someone_else_wins(repo: Path) -> None:
    def race(folder: Path) -> None:
        (folder / "mine").write_text("mine")
        (repo / "iris" / "1").mkdir()  # another publisher renamed its version into place
        (repo / "iris" / "1" / "theirs").write_text("theirs")

    with pytest.raises(PublishError, match="already exists"):
        publish(repo, "iris", "1", race)

    assert entries(repo / "iris") == ["1"]
    assert entries(repo / "iris" / "1") == ["theirs"]


def test_a_published_version_has_the_usual_permissions(repo: Path, tmp_path: Path) -> None:
    """Readable by the server's user: mkdir and open honour the umask (a mkdtemp folder would be 0700)."""
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference.txt").write_text("")

    path, _ = publish(repo, "iris", "1", lambda folder: (folder / "model.skops").write_text(""))

    assert path.stat().st_mode == (tmp_path / "reference").stat().st_mode
    assert (path / "model.skops").stat().st_mode == (tmp_path / "reference.txt").stat().st_mode


# --- the command line ------------------------------------------------------------------------


def cli(repo: Path, estimator: Path, data: Path, *options: str) -> list[str]:
    return [
        "--estimator",
        str(estimator),
        "--train-data",
        str(data),
        "--name",
        "iris",
        "--version",
        "1",
        "--repository",
        str(repo),
        *options,
    ]


def test_cli_publishes_and_prints_a_summary(
    repo: Path, forest_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_csv = iris_csv(tmp_path / "eval.csv", X_TEST, Y_TEST)

    main(
        cli(
            repo,
            forest_file,
            iris_csv(tmp_path / "t.csv"),
            "--target-column",
            "species",
            "--eval-data",
            str(eval_csv),
            "--max-features",
            "1",
        )
    )

    out, err = capsys.readouterr()
    written = json.loads((repo / "iris/1/metadata.json").read_text())
    assert json.loads(out) == {
        "path": str(repo / "iris/1"),
        **{k: written[k] for k in ("name", "version", "sha256")},
        "metrics": written["metrics"],
    }
    assert list(written["reference"]["features"]) == FEATURES[:1]
    assert err == ""  # a forest needs no trust beyond the server's defaults


def test_cli_tells_which_types_to_trust(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    joblib.dump(HistGradientBoostingClassifier(max_iter=5).fit(X_TRAIN, Y_TRAIN), tmp_path / "hgb.joblib")

    main(cli(repo, tmp_path / "hgb.joblib", iris_csv(tmp_path / "t.csv", y=None)))

    err = capsys.readouterr().err
    assert "MODEL_TRUSTED_TYPES=sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in err
    assert untrusted_types(repo / "iris/1/model.skops") == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]


def test_cli_refuses_an_existing_version_with_status_2(
    repo: Path, forest_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = cli(repo, forest_file, iris_csv(tmp_path / "t.csv", y=None))
    main(argv)
    capsys.readouterr()

    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err == f"python -m model_server.package: error: {repo}/iris/1 already exists; versions are immutable, "
        "publish a new version number\n"
    )


def test_cli_refuses_bad_data_with_status_2(
    repo: Path, forest_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = X_TRAIN.tolist()
    rows[0][0] = "nan"

    with pytest.raises(SystemExit) as exited:
        main(cli(repo, forest_file, write_csv(tmp_path / "t.csv", FEATURES, rows)))

    assert exited.value.code == 2
    assert "t.csv: line 2, column 'sepal_length': nan is not a finite number" in capsys.readouterr().err
    assert not repo.exists()


def test_cli_needs_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--estimator", "m.skops"])

    assert exited.value.code == 2
    assert "--train-data" in capsys.readouterr().err


def test_cli_max_features_is_a_count(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(cli(tmp_path, tmp_path / "m.skops", tmp_path / "t.csv", "--max-features", "-1"))

    assert "must be 0 or more, got -1" in capsys.readouterr().err


def test_the_module_runs_as_a_program(repo: Path, forest_file: Path, tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "model_server.package",
        *cli(repo, forest_file, iris_csv(tmp_path / "t.csv", y=None)),
    ]

    first = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    assert (first.returncode, first.stderr) == (0, "")
    assert json.loads(first.stdout)["path"] == str(repo / "iris/1")
    assert again.returncode == 2
    assert "already exists" in again.stderr


# --- a model fitted on a DataFrame --------------------------------------------------------------


def test_a_pipeline_fitted_on_a_dataframe_is_packaged_from_its_csv_with_a_signature(tmp_path: Path) -> None:
    from harness import penguins

    model = penguins.logistic()
    path = penguins.publish_penguins(tmp_path / "repository", tmp_path / "work", "penguins", model)
    metadata = json.loads((path / "metadata.json").read_text())

    assert metadata["feature_names"] == list(penguins.features().columns)
    signature = metadata["signature"]
    assert signature["frame"] is True
    assert signature["inputs"][0] == {
        "name": "island", "type": "string", "nullable": True, "categories": ["Biscoe", "Dream", "Torgersen"],
        "unknown": "refuse", "dtype": "str",
    }  # fmt: skip
    assert signature["inputs"][6] == {"name": "year", "type": "long", "nullable": True, "dtype": "int64"}
    assert metadata["input_example"]["island"] == "Torgersen"
    # The numeric columns' statistics over their values present, and the share of missing ones; the string
    # columns' most frequent categories (other: the rest) and missing share.
    numbers = penguins.features()[penguins.NUMBERS]
    assert metadata["feature_means"] == [round(float(m), 6) for m in numbers.mean()]
    references = metadata["reference"]["features"]
    assert list(references) == list(penguins.features().columns)
    column = numbers["bill_length_mm"].dropna().to_numpy()
    assert references["bill_length_mm"]["shares"] == bin_shares(decile_edges(column), column)
    assert references["bill_length_mm"]["missing"] == round(2 / 344, 6)
    assert references["island"] == {
        "categories": ["Biscoe", "Dream", "Torgersen"], "shares": [0.488372, 0.360465, 0.151163, 0.0], "missing": 0.0,
    }  # fmt: skip
    assert references["sex"] == {
        "categories": ["female", "male"],
        "shares": [0.495495, 0.504505, 0.0],
        "missing": 0.031977,
    }
    loaded = load_artifact(path)  # the server's loader and its default trusted types
    assert loaded.estimator.predict(penguins.features()).tolist() == model.predict(penguins.features()).tolist()


def test_a_dataframe_models_data_must_hold_its_columns(tmp_path: Path) -> None:
    from harness import penguins

    work = tmp_path / "work"
    work.mkdir()
    penguins.data().drop(columns="sex").to_csv(work / "penguins.csv", index=False)
    with pytest.raises(PackageError, match="has no column 'sex', which the estimator was fitted on"):
        penguins.publish_penguins(tmp_path / "repository", work, "penguins", penguins.forest())
    (work / "x.txt").write_text("island\nBiscoe\n")
    with pytest.raises(DataError, match=r"unsupported format '\.txt'"):
        package(work / "penguins.joblib", work / "x.txt", name="p", version="1", repository=tmp_path / "r")


@pytest.mark.parametrize("dtypes", ["as read", "nullable", "pyarrow"])
def test_a_parquet_sample_gives_what_the_csv_gives(tmp_path: Path, dtypes: str) -> None:
    # The same penguins as CSV and as Parquet (pandas' own dtypes, its nullable ones, or pyarrow-backed ones, as
    # convert_dtypes makes them): the same signature, reference and example, and the same served predictions.
    import pandas as pd
    from model_server.app import create_app
    from model_server.config import Settings

    from harness import penguins

    model, work, repository = penguins.logistic(), tmp_path / "work", tmp_path / "repository"
    penguins.publish_penguins(repository, work, "csv", model)
    frame = penguins.data()
    if dtypes != "as read":
        frame = frame.convert_dtypes(dtype_backend="pyarrow" if dtypes == "pyarrow" else "numpy_nullable")
        assert str(frame["year"].dtype) == ("int64[pyarrow]" if dtypes == "pyarrow" else "Int64")
    frame.to_parquet(work / "penguins.parquet", index=False)
    read = pd.read_parquet(work / "penguins.parquet")
    assert (read["year"].dtype, read["flipper_length_mm"].dtype) == (
        frame["year"].dtype,
        frame["flipper_length_mm"].dtype,
    )
    package(
        work / "csv.joblib", work / "penguins.parquet", name="parquet", version="1", repository=repository,
        target_column=penguins.TARGET,
    )  # fmt: skip

    from_csv, from_parquet = (json.loads((repository / n / "1/metadata.json").read_text()) for n in ("csv", "parquet"))
    for key in ("feature_names", "signature", "input_example", "feature_means", "training_rows", "reference"):
        assert from_parquet[key] == from_csv[key], key
    records = penguins.records()
    expected = model.predict(penguins.features()).tolist()
    for name in ("csv", "parquet"):
        client = create_app(Settings(model_repository=repository, default_model=name)).test_client()
        response = client.post("/predict", json={"features": records})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["prediction"] == expected
