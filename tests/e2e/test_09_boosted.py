"""Gradient-boosted models through nginx, served by Treelite from their own files, with neither library in the image.

One host repository (MODEL_REPOSITORY=/models, MODEL_HOST_DIR) holds an XGBoost multiclass
model on the Palmer penguins (``island`` and ``sex`` as categorical features: XGBoost 3 wrote
their categories into the model file), a LightGBM binary model on scikit-learn's breast cancer
data and the iris forest, the first two packaged with ``model_server.package`` from their model
files and training CSVs. Every row of each data set, sent through nginx, answers what the native
library (or the forest) predicts here. A tampered model file and a file whose objective is not
served are refused with ModelLoadFailing while the others keep serving; and neither xgboost
nor lightgbm can be imported in the image.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import skops.io
from model_server.repository.artifact import sha256_of
from model_server.tools.package import package
from model_server.tools.train import train_into_repository

from harness import boosted, penguins
from harness.commands import Failed

from .stack import Stack, run, serving_repository, wait_for

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def made() -> Iterator[dict[str, boosted.Boosted]]:
    work = Path(tempfile.mkdtemp(prefix="e2e-boosted-"))
    try:
        yield {
            boosted.XGBOOST: boosted.xgboost_penguins(work / "xgb"),
            boosted.LIGHTGBM: boosted.lightgbm_cancer(work / "lgbm"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def repository(made: dict[str, boosted.Boosted]) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="e2e-boosted-repo-"))
    try:
        for name, model in made.items():
            package(model.path, model.csv, name=name, version="1", repository=root, target_column=model.target)
        train_into_repository(root, "iris-rf", "1")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def served(stack: Stack, repository: Path) -> Iterator[Path]:
    with serving_repository(stack, repository, default_model="iris-rf"):
        yield repository


def infer(stack: Stack, name: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = requests.post(f"{stack.nginx_url}/v2/models/{name}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["outputs"]


def test_every_row_answers_what_the_native_library_predicts(
    stack: Stack, served: Path, made: dict[str, boosted.Boosted]
) -> None:
    # XGBoost, penguins: one input per column as MLServer's pandas codec writes them (strings, missing values).
    xgb = made[boosted.XGBOOST]
    frame = xgb.frame.astype({column: object for column in boosted.CATEGORICAL})
    body = {
        **penguins.pandas_codec_request(penguins.records(frame)),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    labels, probabilities = infer(stack, boosted.XGBOOST, body)
    native = xgb.native()
    np.testing.assert_allclose(np.reshape(probabilities["data"], native.shape), native, rtol=0, atol=1e-6)
    species = ["Adelie", "Chinstrap", "Gentoo"]
    assert labels["data"] == [species[i] for i in native.argmax(axis=1)]
    assert labels["data"] == [species[i] for i in xgb.model.predict(xgb.frame)]

    # LightGBM, breast cancer: the rows as one FP64 tensor, as MLServer's runtimes take them.
    lgbm = made[boosted.LIGHTGBM]
    rows = lgbm.frame.to_numpy()
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    labels, probabilities = infer(
        stack, boosted.LIGHTGBM, {"inputs": [tensor], "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    )
    native = lgbm.native()
    np.testing.assert_allclose(np.reshape(probabilities["data"], native.shape), native, rtol=0, atol=1e-6)
    assert labels["data"] == [["benign", "malignant"][i] for i in lgbm.model.predict(lgbm.frame)]

    # The iris forest beside them, through the tutorial's /predict (the default model).
    forest = skops.io.load(served / "iris-rf" / "1" / "model.skops", trusted=["sklearn.tree._tree.Tree"])
    from sklearn.datasets import load_iris

    iris = load_iris().data
    answer = requests.post(f"{stack.nginx_url}/predict", json={"features": iris.tolist()}, timeout=60).json()
    assert answer["prediction"] == forest.predict(iris).tolist()

    metadata = requests.get(f"{stack.nginx_url}/v2/models/{boosted.XGBOOST}", timeout=10).json()
    assert [i["name"] for i in metadata["inputs"]] == list(xgb.frame.columns)
    assert (metadata["platform"], metadata["parameters"]["runtime"]) == ("xgboost", "treelite")
    print(
        f"\n[e2e] {len(xgb.frame)} penguins rows (XGBoost) and {len(rows)} cancer rows (LightGBM) as predicted natively"
    )


def test_a_tampered_file_and_an_unsupported_objective_are_refused(
    stack: Stack, served: Path, made: dict[str, boosted.Boosted]
) -> None:
    staging = Path(tempfile.mkdtemp(prefix="e2e-boosted-bad-"))
    try:
        # A tampered file: version 2 of the LightGBM model, one threshold changed after packaging.
        tampered = staging / "tampered"
        shutil.copytree(served / boosted.LIGHTGBM / "1", tampered)
        text = (tampered / "model.txt").read_text()
        (tampered / "model.txt").write_text(text.replace("threshold=", "threshold=1", 1))
        # An objective that is not served: an XGBoost gamma regression, its metadata claiming squared error.
        gamma = staging / "gamma"
        _gamma_version(gamma, made[boosted.XGBOOST])
        for path in (tampered, gamma, *tampered.iterdir(), *gamma.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.copytree(tampered, served / boosted.LIGHTGBM / ".2.incoming")
        (served / boosted.LIGHTGBM / ".2.incoming").rename(served / boosted.LIGHTGBM / "2")
        (served / "gamma-xgb").mkdir(mode=0o755)
        shutil.copytree(gamma, served / "gamma-xgb" / ".1.incoming")
        (served / "gamma-xgb" / ".1.incoming").rename(served / "gamma-xgb" / "1")

        def both_firing() -> bool | None:
            firing = {
                (a["labels"].get("model"), a["labels"].get("version"))
                for a in stack.alertmanager_alerts("ModelLoadFailing")
            }
            return {(boosted.LIGHTGBM, "2"), ("gamma-xgb", "1")} <= firing or None

        wait_for("ModelLoadFailing for both versions in Alertmanager", both_firing, timeout=120, interval=2)
        index = {
            (i["name"], i["version"]): i
            for i in requests.post(f"{stack.nginx_url}/v2/repository/index", timeout=10).json()
        }
        assert "SHA-256" in index[(boosted.LIGHTGBM, "2")]["reason"], index[(boosted.LIGHTGBM, "2")]
        assert "the file's objective is 'reg:gamma'" in index[("gamma-xgb", "1")]["reason"], index[("gamma-xgb", "1")]
        # The LightGBM model's version 1 keeps serving.
        rows = made[boosted.LIGHTGBM].frame.to_numpy()[:5]
        tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        response = requests.post(
            f"{stack.nginx_url}/v2/models/{boosted.LIGHTGBM}/infer", json={"inputs": [tensor]}, timeout=10
        )
        assert response.status_code == 200 and response.json()["model_version"] == "1", response.text
    finally:
        shutil.rmtree(served / boosted.LIGHTGBM / "2", ignore_errors=True)
        shutil.rmtree(served / "gamma-xgb", ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    wait_for(
        "ModelLoadFailing to resolve", lambda: not stack.alerts("ModelLoadFailing") or None, timeout=120, interval=2
    )


def _gamma_version(folder: Path, penguins_model: boosted.Boosted) -> None:
    import xgboost

    frame = penguins_model.frame.drop(columns=boosted.CATEGORICAL)
    known = frame["body_mass_g"].notna()
    model = xgboost.XGBRegressor(objective="reg:gamma", n_estimators=5)
    model.fit(frame[known].drop(columns="body_mass_g"), frame.loc[known, "body_mass_g"])
    folder.mkdir()
    model.save_model(folder / "model.json")
    names = [c for c in frame.columns if c != "body_mass_g"]
    metadata = {
        "name": "gamma-xgb", "version": "1", "artifact": "model.json", "sha256": sha256_of(folder / "model.json"),
        "feature_names": names,
        "boosted": {"library": "xgboost", "objective": "reg:squarederror",
                    "reference": {"rows": [[40.0, 18.0, 190.0, 2008]], "outputs": [[4000.0]]}},
    }  # fmt: skip
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_neither_library_is_in_the_image(stack: Stack) -> None:
    replica = stack.container_ids("model")[0]
    for library in ("xgboost", "lightgbm"):
        with pytest.raises(Failed, match=f"No module named '{library}'"):
            run(["docker", "exec", replica, "python", "-c", f"import {library}"], timeout=30)
