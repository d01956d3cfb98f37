"""The exact fast runtime: Treelite where it reproduces scikit-learn, scikit-learn otherwise."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from flask import Flask
from model_server.serving import runtime
from model_server.serving.runtime import (
    PROBABILITY_TOLERANCE,
    SklearnRuntime,
    TreeliteRuntime,
    select_runtime,
    validation_rows,
)
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from harness import penguins

from ..helpers import MODEL


def test_default_forest_served_by_treelite_exactly(estimator: Any, rows: np.ndarray) -> None:
    choice = select_runtime(estimator)
    assert isinstance(choice.runtime, TreeliteRuntime)
    assert "labels identical" in choice.reason
    probe = np.vstack([rows, validation_rows(estimator, n=2000, seed=7)])
    labels, probabilities = choice.runtime.predict_with_probabilities(probe)
    assert np.array_equal(labels, estimator.predict(probe))
    assert np.abs(probabilities - estimator.predict_proba(probe)).max() <= PROBABILITY_TOLERANCE
    assert np.array_equal(choice.runtime.predict(probe), labels)


def test_inputs_are_rounded_to_float32_as_scikit_learn_does(estimator: Any) -> None:
    tree = estimator.estimators_[0].tree_
    node = int(np.flatnonzero(tree.feature >= 0)[0])
    row = np.full((1, estimator.n_features_in_), 1.0)
    # The value just above a threshold in float64 that rounds onto it in float32.
    threshold = float(np.float32(tree.threshold[node]))
    row[0, tree.feature[node]] = np.nextafter(threshold, np.inf)
    fast = TreeliteRuntime(estimator)
    assert np.array_equal(fast.predict_proba(row), estimator.predict_proba(row))


def test_validation_rows_probe_every_threshold(estimator: Any) -> None:
    probe = validation_rows(estimator)
    tree = estimator.estimators_[3].tree_
    for feature, threshold in zip(tree.feature, tree.threshold, strict=True):
        if feature >= 0:
            assert threshold in probe[:, feature]
            below = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
            assert below in probe[:, feature]


def test_sklearn_forced_by_setting(estimator: Any) -> None:
    choice = select_runtime(estimator, "sklearn")
    assert isinstance(choice.runtime, SklearnRuntime)
    assert choice.reason == "MODEL_RUNTIME=sklearn"


def test_other_estimators_stay_on_sklearn() -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    choice = select_runtime(model)
    assert isinstance(choice.runtime, SklearnRuntime)
    assert choice.reason == "no exact fast runtime for LogisticRegression"


def test_a_runtime_that_differs_is_refused(estimator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    original = TreeliteRuntime._raw

    def off_by_a_little(self: TreeliteRuntime, rows: np.ndarray) -> np.ndarray:
        return original(self, rows) + 1e-9

    monkeypatch.setattr(TreeliteRuntime, "_raw", off_by_a_little)
    choice = select_runtime(estimator)
    assert isinstance(choice.runtime, SklearnRuntime)
    assert "probabilities differ by up to 1e-09" in choice.reason


def test_labels_that_differ_are_refused(estimator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TreeliteRuntime, "_labels", lambda self, raw: np.zeros(len(raw), dtype=int))
    choice = select_runtime(estimator)
    assert isinstance(choice.runtime, SklearnRuntime)
    assert "labels differ" in choice.reason


def test_a_failing_runtime_falls_back(estimator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: TreeliteRuntime, _estimator: Any) -> None:
        raise RuntimeError("no luck")

    monkeypatch.setattr(TreeliteRuntime, "__init__", broken)
    choice = select_runtime(estimator)
    assert isinstance(choice.runtime, SklearnRuntime)
    assert choice.reason == "treelite failed on RandomForestClassifier: RuntimeError: no luck"


@pytest.mark.parametrize(
    "model",
    [
        ExtraTreesClassifier(n_estimators=20, random_state=0).fit(*load_iris(return_X_y=True)),
        RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(*load_diabetes(return_X_y=True)),
    ],
    ids=["extra-trees-classifier", "forest-regressor"],
)
def test_other_forests_are_served_exactly(model: Any) -> None:
    choice = select_runtime(model)
    probe = validation_rows(model, n=1000, seed=3)
    assert np.array_equal(choice.runtime.predict(probe), model.predict(probe))
    assert type(model).__name__ in runtime.TREELITE_ESTIMATORS
    assert isinstance(choice.runtime, TreeliteRuntime), choice.reason


def test_metadata_and_metrics_name_the_runtime(app_factory: Any) -> None:
    for setting, expected in (("auto", "treelite"), ("sklearn", "sklearn")):
        app: Flask = app_factory(model_runtime=setting)
        body = app.test_client().get(f"/v2/models/{MODEL}").get_json()
        assert body["parameters"]["runtime"] == expected
        assert body["parameters"]["runtime_reason"]
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert f'runtime="{expected}"' in metrics


def test_both_runtimes_answer_alike_through_the_api(app_factory: Any, rows: np.ndarray) -> None:
    body = {"features": rows.tolist(), "return_probabilities": True}
    fast = app_factory(model_runtime="auto").test_client().post("/predict", json=body).get_json()
    slow = app_factory(model_runtime="sklearn").test_client().post("/predict", json=body).get_json()
    assert fast["prediction"] == slow["prediction"]
    assert np.abs(np.array(fast["probabilities"]) - np.array(slow["probabilities"])).max() <= PROBABILITY_TOLERANCE


def test_a_pipeline_ending_in_a_forest_runs_its_trees_on_treelite_and_its_preprocessing_in_sklearn() -> None:
    forest, frame = penguins.forest(), penguins.features()
    choice = select_runtime(forest)

    assert choice.runtime.name == "sklearn+treelite"
    assert choice.reason.startswith(
        "Pipeline: its steps columntransformer on scikit-learn (not compiled: no signature), its RandomForestClassifier"
    )
    labels, probabilities = choice.runtime.predict_with_probabilities(frame)  # missing values and strings included
    np.testing.assert_array_equal(labels, forest.predict(frame))
    np.testing.assert_array_equal(probabilities, forest.predict_proba(frame))
    assert select_runtime(forest, "sklearn").runtime.name == "sklearn"
    logistic = select_runtime(penguins.logistic())
    assert (logistic.runtime.name, logistic.reason) == ("sklearn", "no exact fast runtime for Pipeline")


def test_a_model_fitted_on_named_number_columns_takes_arrays_without_a_warning() -> None:
    """The server gives such a model its rows as an array in signature order: no "valid feature names" warning
    (it was logged by every worker at every load); any other warning still goes through."""
    iris = load_iris(as_frame=True)
    named = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    rows = iris.data.to_numpy()[:5]
    with pytest.warns(UserWarning, match="valid feature names"):
        named.predict(rows)  # scikit-learn's own behaviour, which the runtime keeps quiet
    for estimator in (named, RandomForestRegressor(n_estimators=3, random_state=0).fit(iris.data, iris.target)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            choice = select_runtime(estimator)
            choice.runtime.predict(rows)
            if hasattr(estimator, "predict_proba"):
                choice.runtime.predict_with_probabilities(rows)
    with pytest.warns(UserWarning, match="X has feature names"):  # the reverse case is not silenced
        SklearnRuntime(LogisticRegression(max_iter=500).fit(iris.data.to_numpy(), iris.target)).predict(iris.data)
