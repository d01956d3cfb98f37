"""Loading a gradient-boosted model file (repository/boosted.py): what is refused, each with its reason. The versions
are packaged by model_server.package from models the native libraries fitted (harness/boosted.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_server.repository.artifact import ModelLoadError, load_artifact, sha256_of
from model_server.tools.package import PackageError, package

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


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("model.json", "the file's objective is 'binary:logitraw', metadata.json says 'binary:logistic'"),
        # UBJSON is not parsed here: Treelite's reading of its output transformation refuses it.
        ("model.ubj", "the file holds a binary classifier whose output goes through 'identity', not a binary:logistic"),
    ],
)
def test_a_file_whose_objective_is_not_the_one_recorded_is_refused(tmp_path: Path, file: str, message: str) -> None:
    import xgboost

    frame, species = boosted.penguin_frame()
    model = xgboost.XGBModel(objective="binary:logitraw", n_estimators=3, enable_categorical=True)
    version = tmp_path / "repo" / "gb" / "1"
    version.mkdir(parents=True)
    model.fit(frame.drop(columns=boosted.CATEGORICAL), species == "Adelie").save_model(version / file)
    reference = {"rows": [[40.0, 18.0, 190.0, 3700.0, 2008]], "outputs": [[0.5]]}
    metadata = {"artifact": file, "sha256": sha256_of(version / file),
                "boosted": {"library": "xgboost", "objective": "binary:logistic", "reference": reference}}  # fmt: skip
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert message in refused(version)


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


class FakeTree:
    """A tree as Treelite's accessor gives it: node 0 the root; 1 and 2 its children, leaves 3 to 6 theirs."""

    def __init__(self, **fields: list[int]) -> None:
        self.fields = {
            "num_nodes": [7], "node_type": [1, 1, 2, 0, 0, 0, 0], "cleft": [1, 3, 5, -1, -1, -1, -1],
            "cright": [2, 4, 6, -1, -1, -1, -1], "split_index": [0, 1, 2, -1, -1, -1, -1],
            "category_list": [0, 2], "category_list_begin": [0, 0, 0, 0, 0, 0, 0],
            "category_list_end": [0, 0, 2, 0, 0, 0, 0], "leaf_vector": [], "leaf_vector_begin": [0] * 7,
            "leaf_vector_end": [0] * 7, **fields,
        }  # fmt: skip

    def get_field(self, name: str) -> np.ndarray:
        return np.asarray(self.fields[name])


class FakeModel:
    num_feature, num_tree = 3, 1

    def __init__(self, tree: FakeTree) -> None:
        self.tree = tree

    def get_tree_accessor(self, index: int) -> FakeTree:
        return self.tree


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"cleft": [1, 0, 5, -1, -1, -1, -1]}, "a node other than the root is not the child of exactly one node"),
        ({"cleft": [1, 3, 4, -1, -1, -1, -1]}, "a node other than the root is not the child of exactly one node"),
        ({"cleft": [1, 3, 9, -1, -1, -1, -1]}, "a node other than the root is not the child of exactly one node"),
        ({"split_index": [0, 3, 2, -1, -1, -1, -1]}, "a split on a feature outside the model's 3"),
        ({"category_list_end": [0, 0, 3, 0, 0, 0, 0]}, "a category list or a leaf vector lies outside its array"),
        ({"leaf_vector_end": [0, 0, 0, 1, 0, 0, 0]}, "a category list or a leaf vector lies outside its array"),
        ({"num_nodes": [8]}, "its node arrays disagree on its size"),
    ],
)
def test_a_tree_treelite_could_not_walk_safely_is_refused(fields: dict[str, list[int]], problem: str) -> None:
    from model_server.repository.boosted import _check_trees

    _check_trees("model.json", FakeModel(FakeTree()))  # the tree as it should be
    with pytest.raises(ModelLoadError, match=f"model.json: tree 0 cannot be evaluated safely: {problem}"):
        _check_trees("model.json", FakeModel(FakeTree(**fields)))


def test_an_objective_the_file_names_otherwise_is_refused(tmp_path: Path) -> None:
    made = boosted.lightgbm_cancer(tmp_path / "made")
    path, _ = package(made.path, made.csv, name="gb", version="1", repository=tmp_path / "repo", target_column="target")
    text = (path / "model.txt").read_text()
    (path / "model.txt").write_text(text.replace("objective=binary sigmoid:1", "objective=cross_entropy", 1))
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["sha256"] = sha256_of(path / "model.txt")
    (path / "metadata.json").write_text(json.dumps(metadata))
    assert "the file's objective is 'cross_entropy', metadata.json says 'binary'" in refused(path)


def test_a_model_of_several_targets_is_refused(tmp_path: Path) -> None:
    import xgboost

    frame, _ = boosted.penguin_frame()
    known = frame.dropna(subset=["body_mass_g", "flipper_length_mm"])
    x, y = known[["bill_length_mm", "bill_depth_mm"]], known[["body_mass_g", "flipper_length_mm"]]
    version = tmp_path / "repo" / "gb" / "1"
    version.mkdir(parents=True)
    xgboost.XGBRegressor(n_estimators=3, tree_method="hist").fit(x, y).save_model(version / "model.json")
    reference = {"rows": [[40.0, 18.0]], "outputs": [[4000.0]]}
    metadata = {"sha256": sha256_of(version / "model.json"),
                "boosted": {"library": "xgboost", "objective": "reg:squarederror", "reference": reference}}  # fmt: skip
    (version / "metadata.json").write_text(json.dumps(metadata))
    assert "a model of 2 targets; served: one" in refused(version)
    x.assign(body_mass_g=y["body_mass_g"]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(PackageError, match="a model of 2 targets; served: one"):
        package(version / "model.json", tmp_path / "train.csv", name="gb", version="2", repository=tmp_path / "repo")
