"""model_server.package on gradient-boosted model files, then the server serving them: every format and objective,
each answer checked against the native library (xgboost, lightgbm: installed for the tests only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from model_server.app import create_app
from model_server.config import Settings
from model_server.repository.artifact import load_artifact
from model_server.repository.boosted import BoostedClassifier
from model_server.tools.package import PackageError, main, package

from harness import boosted, penguins

from ..helpers import sample

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")

MAKERS: dict[str, Callable[[Path], boosted.Boosted]] = {
    "xgboost multiclass, categories, JSON": boosted.xgboost_penguins,
    "xgboost multiclass, categories, UBJSON": lambda folder: boosted.xgboost_penguins(folder, file="model.ubj"),
    "lightgbm multiclass, categories": boosted.lightgbm_penguins,
    "xgboost binary": boosted.xgboost_cancer,
    "xgboost binary, UBJSON": lambda folder: boosted.xgboost_cancer(folder, file="model.ubj"),
    "lightgbm binary": boosted.lightgbm_cancer,
    "xgboost regression": lambda folder: boosted.regression(folder, "xgboost"),
    "xgboost regression, numbers only, UBJSON": lambda folder: boosted.regression(
        folder, "xgboost", file="model.ubj", numbers_only=True
    ),
    "lightgbm regression": lambda folder: boosted.regression(folder, "lightgbm"),
}
# The file each version serves: the model file as written, but an XGBoost file with categories (moved to the
# signature) is rewritten as model.json (REWRITTEN); so a UBJSON file without categories is served as UBJSON.
REWRITTEN = {"xgboost multiclass, categories, JSON", "xgboost multiclass, categories, UBJSON", "xgboost regression"}
SERVED_FILE = {
    "xgboost multiclass, categories, JSON": "model.json",
    "xgboost multiclass, categories, UBJSON": "model.json",
    "lightgbm multiclass, categories": "model.txt",
    "xgboost binary": "model.json",
    "xgboost binary, UBJSON": "model.ubj",
    "lightgbm binary": "model.txt",
    "xgboost regression": "model.json",
    "xgboost regression, numbers only, UBJSON": "model.ubj",
    "lightgbm regression": "model.txt",
}


def packaged(tmp_path: Path, made: boosted.Boosted, name: str = "gb") -> tuple[Path, dict[str, Any]]:
    return package(made.path, made.csv, name=name, version="1", repository=tmp_path / "repo", target_column=made.target)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return penguins.records(frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"}))


def infer(app: Flask, frame: pd.DataFrame, outputs: list[str]) -> list[dict[str, Any]]:
    body = {**penguins.pandas_codec_request(records(frame)), "outputs": [{"name": name} for name in outputs]}
    response = app.test_client().post("/v2/models/gb/infer", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["outputs"]


@pytest.mark.parametrize("kind", list(MAKERS))
def test_every_row_is_served_as_the_native_library_predicts_it(tmp_path: Path, kind: str) -> None:
    made = MAKERS[kind](tmp_path / "made")
    path, metadata = packaged(tmp_path, made)
    assert metadata["artifact"] == SERVED_FILE[kind]
    assert sorted(p.name for p in path.iterdir()) == sorted([SERVED_FILE[kind], "metadata.json"])
    kept = (path / SERVED_FILE[kind]).read_bytes() == made.path.read_bytes()
    assert kept == (kind not in REWRITTEN)  # byte for byte as written, unless its categories moved out
    app = create_app(Settings(model_repository=tmp_path / "repo", default_model="gb"))
    native = np.asarray(made.native(), dtype=np.float64)
    classifier = native.ndim == 2
    outputs = infer(app, made.frame, ["predict", "predict_proba"] if classifier else ["predict"])
    if classifier:
        classes = metadata["classes"]
        assert outputs[1]["shape"] == [len(made.frame), len(classes)]
        served = np.reshape(outputs[1]["data"], native.shape)
        np.testing.assert_allclose(served, native, rtol=0, atol=1e-6)
        assert outputs[0]["data"] == [classes[i] for i in native.argmax(axis=1)]
    else:
        np.testing.assert_allclose(outputs[0]["data"], native, rtol=1e-6)  # grams: sums of float32 leaves
    assert not (path / "model.skops").exists()
    description = app.test_client().get("/v2/models/gb").get_json()
    assert description["parameters"]["runtime"] == "treelite"
    assert description["platform"] == metadata["boosted"]["library"]
    assert (
        description["parameters"]["estimator"] == f"{metadata['boosted']['library']} {metadata['boosted']['objective']}"
    )
    assert (
        f"{metadata['boosted']['library']} {metadata['boosted']['objective']}"
        in (description["parameters"]["runtime_reason"])
    )


def test_the_classes_are_the_target_columns_names_in_sorted_order(tmp_path: Path) -> None:
    made = boosted.xgboost_penguins(tmp_path / "made")
    _, metadata = packaged(tmp_path, made)
    assert metadata["classes"] == metadata["class_names"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert metadata["boosted"]["task"] == "multiclass"
    cancer = boosted.lightgbm_cancer(tmp_path / "cancer")
    _, cancer_metadata = packaged(tmp_path, cancer, "cancer")
    assert cancer_metadata["classes"] == ["benign", "malignant"]  # class 1: malignant, as fitted


def test_xgboost_categories_move_from_the_model_file_to_the_signature(tmp_path: Path) -> None:
    made = boosted.xgboost_penguins(tmp_path / "made", file="model.ubj")
    path, metadata = packaged(tmp_path, made)
    assert metadata["artifact"] == "model.json"  # rewritten: Treelite reads no categories section
    cats = json.loads((path / "model.json").read_text())["learner"]["gradient_booster"]["model"]["cats"]
    assert cats == {"enc": [], "feature_segments": [], "sorted_idx": []}
    columns = {column["name"]: column for column in metadata["signature"]["inputs"]}
    assert columns["island"] == {
        "name": "island", "type": "string", "nullable": False, "categories": ["Biscoe", "Dream", "Torgersen"],
        "unknown": "accept", "coded": True,
    }  # fmt: skip
    assert (columns["sex"]["categories"], columns["sex"]["nullable"]) == (["female", "male"], True)
    # Nullable where training had missing values, as for a scikit-learn model.
    assert columns["year"] == {"name": "year", "type": "long", "nullable": False}
    assert columns["bill_length_mm"] == {"name": "bill_length_mm", "type": "double", "nullable": True}
    assert list(columns) == list(made.frame.columns)  # the model's order
    assert len(metadata["boosted"]["reference"]["rows"]) == 256
    assert set(metadata["reference"]["features"]["island"]["categories"]) == {"Biscoe", "Dream", "Torgersen"}


def test_a_file_without_categories_is_kept_as_written(tmp_path: Path) -> None:
    made = boosted.lightgbm_cancer(tmp_path / "made")
    path, metadata = packaged(tmp_path, made)
    assert (path / "model.txt").read_bytes() == made.path.read_bytes()
    assert metadata["artifact"] == "model.txt" and metadata["boosted"]["library"] == "lightgbm"


def test_an_unknown_category_is_taken_as_missing_and_counted(tmp_path: Path) -> None:
    made = boosted.xgboost_penguins(tmp_path / "made")
    packaged(tmp_path, made)
    app = create_app(Settings(model_repository=tmp_path / "repo", default_model="gb"))
    row, counted = records(made.frame.iloc[:1])[0], {"model": "gb", "version": "1", "column": "island"}
    before = sample("model_server_unknown_categories_total", **counted)
    islands = pd.Categorical([np.nan], categories=made.frame["island"].cat.categories)
    missing = made.native(made.frame.iloc[:1].assign(island=islands))  # what xgboost makes of a missing island
    unknown = app.test_client().post(
        "/v2/models/gb/infer",
        json={**penguins.pandas_codec_request([{**row, "island": "Atlantis"}]), "outputs": [{"name": "predict_proba"}]},
    )
    assert unknown.status_code == 200, unknown.get_json()
    np.testing.assert_allclose(unknown.get_json()["outputs"][0]["data"], missing.ravel(), rtol=0, atol=1e-6)
    assert sample("model_server_unknown_categories_total", **counted) == before + 1


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ("binary:logitraw", "unsupported objective 'binary:logitraw'"),
        ("reg:gamma", "unsupported objective 'reg:gamma'"),
        ("multi:softmax", "unsupported objective 'multi:softmax'"),
    ],
)
def test_an_unsupported_objective_is_refused_at_packaging(tmp_path: Path, objective: str, message: str) -> None:
    import xgboost

    frame, species = boosted.penguin_frame()
    target = pd.Categorical(species).codes
    y = target % 2 if objective == "binary:logitraw" else (target + 1 if objective == "reg:gamma" else target)
    extra = {"num_class": 3} if objective == "multi:softmax" else {}
    model = xgboost.XGBModel(objective=objective, n_estimators=3, enable_categorical=True, **extra).fit(frame, y)
    model.save_model(tmp_path / "model.json")
    frame.assign(species=species).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(PackageError, match=message):
        package(tmp_path / "model.json", tmp_path / "train.csv", name="gb", version="1",
                repository=tmp_path / "repo", target_column="species")  # fmt: skip
    assert not (tmp_path / "repo" / "gb").exists()


@pytest.mark.parametrize("objective", ["regression_l1", "huber", "multiclassova"])
def test_an_unsupported_lightgbm_objective_is_refused_at_packaging(tmp_path: Path, objective: str) -> None:
    import lightgbm

    frame, species = boosted.penguin_frame()
    codes = pd.Categorical(species).codes
    y = frame["body_mass_g"].fillna(4000.0) if objective != "multiclassova" else codes
    extra = {"num_class": 3} if objective == "multiclassova" else {}
    model = lightgbm.LGBMModel(objective=objective, n_estimators=3, num_leaves=4, verbose=-1, **extra)
    model.fit(frame.drop(columns="body_mass_g"), y)
    model.booster_.save_model(tmp_path / "model.txt")
    assert f"objective={objective}" in (tmp_path / "model.txt").read_text()  # what LightGBM wrote
    frame.drop(columns="body_mass_g").assign(y=y).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(PackageError, match=rf"unsupported objective '{objective}' \(served: binary, multiclass"):
        package(tmp_path / "model.txt", tmp_path / "train.csv", name="gb", version="1",
                repository=tmp_path / "repo", target_column="y")  # fmt: skip
    assert not (tmp_path / "repo" / "gb").exists()


def test_the_command_line_packages_a_boosted_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = boosted.lightgbm_cancer(tmp_path / "made")
    main(["--estimator", str(made.path), "--train-data", str(made.csv), "--target-column", made.target,
          "--name", "cancer", "--version", "3", "--repository", str(tmp_path / "repo")])  # fmt: skip
    out, err = capsys.readouterr()
    assert json.loads(out)["path"] == str(tmp_path / "repo" / "cancer" / "3") and err == ""
    loaded = load_artifact(tmp_path / "repo" / "cancer" / "3")
    assert isinstance(loaded.estimator, BoostedClassifier)


def test_the_data_must_hold_the_models_columns_and_a_class_per_output(tmp_path: Path) -> None:
    made = boosted.xgboost_penguins(tmp_path / "made")
    pd.read_csv(made.csv).drop(columns="sex").to_csv(tmp_path / "no-sex.csv", index=False)
    with pytest.raises(PackageError, match="has no column 'sex', which the model takes"):
        package(made.path, tmp_path / "no-sex.csv", name="gb", version="1", repository=tmp_path / "repo",
                target_column="species")  # fmt: skip
    data = pd.read_csv(made.csv)
    data[data.species != "Gentoo"].to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(PackageError, match="the target column has 2 distinct values, the model 3 classes"):
        package(made.path, tmp_path / "two.csv", name="gb", version="1", repository=tmp_path / "repo",
                target_column="species")  # fmt: skip


def test_a_version_the_server_would_refuse_is_not_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model_server.repository.boosted as loader

    made = boosted.lightgbm_cancer(tmp_path / "made")
    monkeypatch.setattr(loader, "REFERENCE_TOLERANCE", -1.0)  # no prediction can be close enough
    with pytest.raises(
        PackageError, match=r"the server would refuse this version: .*differ from lightgbm's references"
    ):
        packaged(tmp_path, made)
    assert not (tmp_path / "repo" / "gb").exists()


def test_an_all_numeric_model_without_missing_values_keeps_the_float_matrix(tmp_path: Path) -> None:
    made = boosted.lightgbm_cancer(tmp_path / "made")
    _, metadata = packaged(tmp_path, made)
    app = create_app(Settings(model_repository=tmp_path / "repo", default_model="gb"))
    rows, native = made.frame.to_numpy(), made.native()
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    response = app.test_client().post(
        "/v2/models/gb/infer", json={"inputs": [tensor], "outputs": [{"name": "predict_proba"}]}
    )
    assert response.status_code == 200, response.get_json()
    np.testing.assert_allclose(np.reshape(response.get_json()["outputs"][0]["data"], native.shape), native, atol=1e-6)
    predicted = app.test_client().post("/predict", json={"features": rows[:20].tolist()}).get_json()["prediction"]
    assert predicted == [metadata["classes"][i] for i in native[:20].argmax(axis=1)]


def test_a_boolean_target_gives_classes_false_and_true(tmp_path: Path) -> None:
    import xgboost

    frame, species = boosted.penguin_frame()
    adelie = species == "Adelie"
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, enable_categorical=True).fit(frame, adelie)
    model.save_model(tmp_path / "model.json")
    frame.assign(adelie=adelie).to_csv(tmp_path / "train.csv", index=False)
    _, metadata = package(tmp_path / "model.json", tmp_path / "train.csv", name="gb", version="1",
                          repository=tmp_path / "repo", target_column="adelie")  # fmt: skip
    assert metadata["classes"] == ["False", "True"]
    app = create_app(Settings(model_repository=tmp_path / "repo", default_model="gb"))
    labels = infer(app, frame, ["predict"])[0]["data"]
    assert labels == [str(bool(v)) for v in model.predict(frame)]


def test_categories_that_are_not_text_and_repeated_class_names_are_refused(tmp_path: Path) -> None:
    import lightgbm

    frame, species = boosted.penguin_frame()
    years = frame.assign(year=frame["year"].astype("category"))
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(years, pd.Categorical(species).codes)
    model.booster_.save_model(tmp_path / "model.txt")
    frame.assign(species=species).to_csv(tmp_path / "train.csv", index=False)
    options = {"name": "gb", "version": "1", "repository": tmp_path / "repo", "target_column": "species"}
    with pytest.raises(PackageError, match="a categorical feature whose categories are not text"):
        package(tmp_path / "model.txt", tmp_path / "train.csv", **options)
    made = boosted.xgboost_penguins(tmp_path / "made")
    with pytest.raises(PackageError, match="--class-names must be distinct and non-empty"):
        package(made.path, made.csv, **options, class_names=["a", "a", "b"])
    with pytest.raises(PackageError, match="--class-names gives 2 names for the model's 3 classes"):
        package(made.path, made.csv, **options, class_names=["a", "b"])
