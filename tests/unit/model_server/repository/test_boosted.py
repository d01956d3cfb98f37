"""Loading a gradient-boosted model file (repository/boosted.py): what is refused, each with its reason. The versions
are packaged by model_server.package from models the native libraries fitted (harness/boosted.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from model_server.repository.artifact import ModelLoadError, load_artifact, sha256_of
from model_server.tools.package import package

from harness import boosted

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def xgboost_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged XGBoost multiclass model on the penguins (categorical splits): its version folder."""
    folder = tmp_path_factory.mktemp("xgboost")
    made = boosted.xgboost_penguins(folder / "made")
    path, _ = package(made.path, made.csv, name="gb", version="1", repository=folder / "repo", target_column="species")
    return path


def copy(version: Path, tmp_path: Path) -> Path:
    target = tmp_path / "repo" / "gb" / "1"
    target.mkdir(parents=True)
    for file in version.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def rewrite(version: Path, change: Any, *, rehash: bool = True) -> None:
    """Change the model file's JSON (and record its new digest, as a careless repackaging would)."""
    model = version / "model.json"
    document = json.loads(model.read_text())
    change(document)
    model.write_text(json.dumps(document))
    if rehash:
        metadata = json.loads((version / "metadata.json").read_text())
        metadata["sha256"] = sha256_of(model)
        (version / "metadata.json").write_text(json.dumps(metadata))


def refused(version: Path) -> str:
    with pytest.raises(ModelLoadError) as error:
        load_artifact(version)
    return str(error.value)


def test_the_packaged_version_loads(xgboost_version: Path, tmp_path: Path) -> None:
    artifact = load_artifact(copy(xgboost_version, tmp_path))
    assert (artifact.estimator.library, artifact.estimator.task) == ("xgboost", "multiclass")
    assert artifact.estimator.classes_.tolist() == ["Adelie", "Chinstrap", "Gentoo"]


def test_a_tampered_file_is_refused_by_its_digest(xgboost_version: Path, tmp_path: Path) -> None:
    version = copy(xgboost_version, tmp_path)
    rewrite(version, lambda doc: doc["learner"]["attributes"].update(note="x"), rehash=False)
    assert "has SHA-256" in refused(version) and "but metadata.json records" in refused(version)


def test_a_file_that_predicts_otherwise_is_refused_by_the_references(xgboost_version: Path, tmp_path: Path) -> None:
    version = copy(xgboost_version, tmp_path)

    def shift_a_leaf(doc: dict[str, Any]) -> None:
        tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
        leaf = tree["left_children"].index(-1)
        tree["base_weights"][leaf] += 0.5
        tree["split_conditions"][leaf] += 0.5  # XGBoost's leaf value

    rewrite(version, shift_a_leaf)
    assert "Treelite's predictions differ from xgboost's references (row " in refused(version)


def test_an_unsupported_objective_is_refused_naming_it(xgboost_version: Path, tmp_path: Path) -> None:
    version = copy(xgboost_version, tmp_path)
    metadata = json.loads((version / "metadata.json").read_text())
    metadata["boosted"]["objective"] = "multi:softmax"  # labels, not probabilities
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert "unsupported objective 'multi:softmax' (metadata.json; served: binary:logistic, " in refused(version)


def test_a_file_whose_output_is_not_the_objective_recorded_is_refused(tmp_path: Path) -> None:
    import xgboost

    frame, species = boosted.penguin_frame()
    model = xgboost.XGBModel(objective="binary:logitraw", n_estimators=3, enable_categorical=True)
    version = tmp_path / "repo" / "gb" / "1"
    version.mkdir(parents=True)
    model.fit(frame.drop(columns=boosted.CATEGORICAL), species == "Adelie").save_model(version / "model.json")
    reference = {"rows": [[40.0, 18.0, 190.0, 3700.0, 2008]], "outputs": [[0.5]]}
    metadata = {"sha256": sha256_of(version / "model.json"),
                "boosted": {"library": "xgboost", "objective": "binary:logistic", "reference": reference}}  # fmt: skip
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert "the file holds a binary classifier whose output goes through 'identity', not a binary:logistic model" in (
        refused(version)
    )


def test_categories_left_in_an_xgboost_file_are_refused_with_the_way_out(tmp_path: Path) -> None:
    made = boosted.xgboost_penguins(tmp_path / "made")
    version = tmp_path / "repo" / "gb" / "1"
    version.mkdir(parents=True)
    (version / "model.json").write_bytes(made.path.read_bytes())  # as XGBoost wrote it: with its categories
    reference = {"rows": [], "outputs": []}
    metadata = {
        "sha256": sha256_of(version / "model.json"),
        "boosted": {"objective": "multi:softprob", "reference": reference},
    }
    (version / "metadata.json").write_text(json.dumps(metadata))
    message = refused(version)
    assert "model.json is not a xgboost model Treelite reads" in message
    assert "python -m model_server.package moves them to the signature" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("boosted"), "metadata.json has no 'boosted' section"),
        (lambda m: m["boosted"].pop("reference"), "metadata 'boosted.reference' must hold 'rows' and 'outputs'"),
        (lambda m: m["boosted"]["reference"].update(rows=[[1.0, 2.0]]), "the reference rows must be a matrix of 7"),
        (lambda m: m.update(classes=["a", "b"]), "metadata 'classes' must list the model's 3 classes, each once"),
        (lambda m: m.update(classes=["a", "a", "b"]), "metadata 'classes' must list the model's 3 classes, each once"),
        (lambda m: m.update(classes=["a", None, "b"]), "metadata 'classes' must list the model's 3 classes, each once"),
        (lambda m: m["boosted"].update(objective=["multi:softprob"]), "unsupported objective ['multi:softprob']"),
        (lambda m: m["boosted"].update(library="lightgbm"), "metadata.json says 'lightgbm' wrote it"),
    ],
)
def test_metadata_that_does_not_describe_the_file_is_refused(
    xgboost_version: Path, tmp_path: Path, change: Any, message: str
) -> None:
    version = copy(xgboost_version, tmp_path)
    metadata = json.loads((version / "metadata.json").read_text())
    change(metadata)
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert message in refused(version)


@pytest.mark.parametrize("name", ["model.json", "model.ubj", "model.txt"])
def test_a_file_that_is_no_model_is_refused(tmp_path: Path, name: str) -> None:
    version = tmp_path / "repo" / "gb" / "1"
    version.mkdir(parents=True)
    (version / name).write_bytes(b'{"not": "a model"}\n')
    library = "lightgbm" if name.endswith(".txt") else "xgboost"
    objective = "binary" if library == "lightgbm" else "binary:logistic"
    metadata = {"artifact": name, "sha256": sha256_of(version / name), "boosted": {"objective": objective}}
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert f"{name} is not a {library} model Treelite reads" in refused(version)
