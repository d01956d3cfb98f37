"""model_server.monitoring.drift: the reference read from the metadata, and the live values counted in its bins.

Every expected count is computed independently of the counting: by comparisons, bin by bin
(:func:`.helpers.expected_bins`), or by ``reference.bin_index`` feature by feature. The counting
tests use a registry of their own; those through the app count under a model name of their own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from model_server.monitoring.drift import (
    BooleanReference,
    CategoryBins,
    CategoryReference,
    DriftReference,
    FeatureBins,
    FeatureReference,
    InvalidReference,
    read_reference,
)
from model_server.monitoring.reference import bin_index
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from ..helpers import expected_bins, json_logs, scrape, scraped, v2_input
from ..versions import ROW, publish_iris, write_iris

PROPERTY = settings(max_examples=200, deadline=None, database=None)
FEATURES = ("a", "b", "c", "d")
EDGES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
SHARES = [0.1] * 10
OK = {"edges": EDGES, "shares": SHARES}
LABELS = ["model", "version", "feature", "bin"]
DRIFT_OFF = "model version served without drift monitoring: invalid reference statistics"


def unique(prefix: str) -> str:
    """A model name no other test counts under (the app's counters are in the process-wide registry)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Bins:
    """A FeatureBins on a registry of its own, over features a, b, ... with the given edges."""

    def __init__(self, edges: list[Any], columns: list[int] | None = None) -> None:
        self.registry = CollectorRegistry()
        counter = Counter("model_server_feature_bin", "help", LABELS, registry=self.registry)
        columns = columns if columns is not None else list(range(len(edges)))
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        features = [
            FeatureReference(name=FEATURES[c], column=c, edges=e, shares=tuple(SHARES))
            for c, e in zip(columns, self.edges, strict=True)
        ]
        self.bins = FeatureBins("m", "1", features, counter)

    def counts(self, feature: str = "a") -> np.ndarray:
        values = [self.value(feature, i) for i in range(10)]
        assert None not in values, "all 10 children exist"
        return np.array(values)

    def value(self, feature: str, bin_: int) -> float | None:
        labels = {"model": "m", "version": "1", "feature": feature, "bin": str(bin_)}
        return self.registry.get_sample_value("model_server_feature_bin_total", labels)

    def all_counts(self) -> np.ndarray:
        return np.array([self.counts(FEATURES[j]) for j in range(len(self.edges))])


# --- counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "values"),
    [
        (EDGES, EDGES),  # exactly on every edge: the bin above it
        (EDGES, [-1e30, 0.999, 0.0, -0.0]),  # below the first edge: bin 0
        (EDGES, [9.0, 9.0001, 1e30, 3.4e38]),  # from the last edge on: bin 9
        ([1, 2, 2, 2, 5, 6, 6, 7, 7], [2.0, 2.0, 1.999, 6.0, 7.0, 6.5, 5.0]),  # repeated edges: empty bins between
        ([0.0] * 9, [-0.0, 0.0, -1e-300, 1e-300]),  # a constant feature; -0.0 equals the edge 0.0
        (EDGES, [4.5]),  # one value
    ],
    ids=["on-edges", "below", "above", "repeated-edges", "constant", "one"],
)
def test_values_are_counted_in_the_reference_bins(edges: list[float], values: list[float]) -> None:
    bins = Bins([edges])

    bins.bins.observe(np.asarray(values, dtype=np.float64).reshape(-1, 1))

    np.testing.assert_array_equal(bins.counts(), expected_bins(edges, values))


def test_all_children_exist_at_zero_once_built() -> None:
    bins = Bins([EDGES, EDGES])

    np.testing.assert_array_equal(bins.all_counts(), np.zeros((2, 10)))


def test_a_one_row_call_and_a_thousand_row_call_count_every_value() -> None:
    rng = np.random.default_rng(7)
    edges = np.sort(rng.normal(size=(4, 9)), axis=1)
    edges[2, 3:6] = edges[2, 3]  # a repeated edge
    bins = Bins(list(edges))
    one = rng.normal(size=(1, 4))
    many = rng.normal(scale=1.5, size=(1000, 4))
    many[:50, 2] = edges[2, 3]  # on the repeated edge
    many[50:100] = edges.T[rng.integers(0, 9, size=(50, 4)), np.arange(4)]  # on an edge of their own feature

    bins.bins.observe(one)
    np.testing.assert_array_equal(bins.all_counts(), [expected_bins(e, one[:, j]) for j, e in enumerate(edges)])
    bins.bins.observe(many)

    both = np.vstack([one, many])
    np.testing.assert_array_equal(bins.all_counts(), [expected_bins(e, both[:, j]) for j, e in enumerate(edges)])
    numpy_direct = [np.bincount(bin_index(e, both[:, j]), minlength=10) for j, e in enumerate(edges)]
    np.testing.assert_array_equal(bins.all_counts(), numpy_direct)
    assert bins.all_counts().sum() == 4 * 1001


def test_monitored_columns_need_not_be_the_first() -> None:
    # Features b and d have a reference, a and c not: columns 1 and 3 are counted, each by its own edges.
    bins = Bins([EDGES, np.asarray(EDGES) * 10], columns=[1, 3])
    rows = np.array([[100.0, 1.0, 100.0, 10.0], [-5.0, 8.5, -5.0, 85.0], [0.0, 9.0, 0.0, 0.0]])

    bins.bins.observe(rows)

    np.testing.assert_array_equal(bins.counts("b"), expected_bins(EDGES, rows[:, 1]))
    np.testing.assert_array_equal(bins.counts("d"), expected_bins(np.asarray(EDGES) * 10, rows[:, 3]))
    assert bins.value("a", 0) is None and bins.value("c", 0) is None


edges_strategy = hnp.arrays(
    np.float64, 9, elements=st.floats(-100, 100, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0])
).map(np.sort)
values_strategy = st.floats(-200, 200, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, 3.4e38, -3.4e38])


@PROPERTY
@given(edges=st.lists(edges_strategy, min_size=1, max_size=4), data=st.data())
def test_counts_equal_bin_index_per_feature(edges: list[np.ndarray], data: st.DataObject) -> None:
    rows = data.draw(hnp.arrays(np.float64, (data.draw(st.integers(1, 30)), len(edges)), elements=values_strategy))
    bins = Bins(edges)

    bins.bins.observe(rows)

    direct = [np.bincount(bin_index(e, rows[:, j]), minlength=10) for j, e in enumerate(edges)]
    np.testing.assert_array_equal(bins.all_counts(), direct)


def test_infinite_values_never_reach_the_bins() -> None:
    bins = Bins([EDGES])

    for bad in (np.inf, -np.inf):
        with pytest.raises(AssertionError, match="infinite"):
            bins.bins.observe(np.array([[1.0], [bad]]))

    assert bins.counts().sum() == 0, "nothing counted, not even the finite row"


def test_missing_values_are_left_out_of_the_bins() -> None:
    # A nullable column's missing value (NaN) is in no bin; the other values of its row are counted.
    bins = Bins([EDGES, EDGES])
    rows = np.array([[1.0, np.nan], [np.nan, 9.5], [2.5, 3.0]])

    bins.bins.observe(rows)

    np.testing.assert_array_equal(bins.counts("a"), expected_bins(EDGES, [1.0, 2.5]))
    np.testing.assert_array_equal(bins.counts("b"), expected_bins(EDGES, [9.5, 3.0]))
    bins.bins.observe(np.array([[np.nan, np.nan]]))
    assert bins.all_counts().sum() == 4


# --- reading the reference ----------------------------------------------------------------------


def read(reference: Any, max_features: int = 32, class_names: tuple[str, ...] | None = ("x", "y")) -> DriftReference:
    return read_reference({"reference": reference}, FEATURES, class_names, max_features)


def test_a_valid_reference_is_read_in_feature_order() -> None:
    reference = read({"features": {"c": OK, "a": {**OK, "edges": [0] * 9, "shares": [0] * 9 + [1]}}})

    assert [(f.name, f.column) for f in reference.features] == [("a", 0), ("c", 2)]
    np.testing.assert_array_equal(reference.features[1].edges, EDGES)
    assert reference.features[1].shares == tuple(SHARES)
    assert reference.predictions is None


def test_the_first_max_features_that_have_a_reference_are_monitored() -> None:
    reference = {"features": {"b": OK, "c": OK, "d": OK}}

    assert [f.name for f in read(reference, max_features=2).features] == ["b", "c"]
    assert read(reference, max_features=0).features == ()


@pytest.mark.parametrize("metadata", [{}, {"reference": None}, {"reference": {}}, {"reference": {"features": {}}}])
def test_no_reference_is_not_an_error(metadata: dict[str, Any]) -> None:
    assert read_reference(metadata, FEATURES, None, 32) == DriftReference()


def test_prediction_shares_are_read_by_class_name() -> None:
    reference = read({"features": {"a": OK}, "predictions": {"y": 0.25, "x": 0.75}})

    assert reference.predictions == {"y": 0.25, "x": 0.75}


INVALID = {
    "not an object": ([1, 2], "'reference' must be an object, got list"),
    "features not an object": ({"features": [OK]}, "'reference.features' must be an object"),
    "unknown feature": ({"features": {"e": OK}}, "names 'e', which is not a feature"),
    "entry not an object": ({"features": {"a": EDGES}}, "reference.features['a'] must be an object"),
    "edges missing": ({"features": {"a": {"shares": SHARES}}}, "edges must be an array of 9 numbers, got null"),
    "8 edges": ({"features": {"a": {**OK, "edges": EDGES[:8]}}}, "edges must be an array of 9 numbers, got 8 items"),
    "11 shares": ({"features": {"a": {**OK, "shares": [*SHARES, 0]}}}, "shares must be an array of 10 numbers"),
    "descending edges": ({"features": {"a": {**OK, "edges": EDGES[::-1]}}}, "edges must be ascending"),
    "one edge back": ({"features": {"a": {**OK, "edges": [1, 2, 3, 5, 4, 6, 7, 8, 9]}}}, "edges must be ascending"),
    "shares over 1": ({"features": {"a": {**OK, "shares": [0.2] * 10}}}, "must sum to 1, got 2.000000"),
    "shares under 1": ({"features": {"a": {**OK, "shares": [0.09] * 10}}}, "must sum to 1, got 0.900000"),
    "negative share": ({"features": {"a": {**OK, "shares": [-0.1, 0.3, *[0.1] * 8]}}}, "between 0 and 1"),
    "string edge": ({"features": {"a": {**OK, "edges": ["1", *EDGES[1:]]}}}, "edges[0] must be a finite number"),
    "null share": ({"features": {"a": {**OK, "shares": [None, *SHARES[1:]]}}}, "shares[0] must be a finite number"),
    "boolean edge": ({"features": {"a": {**OK, "edges": [True, *EDGES[1:]]}}}, "edges[0] must be a finite number"),
    "NaN edge": ({"features": {"a": {**OK, "edges": [*EDGES[:4], float("nan"), *EDGES[5:]]}}}, "edges[4] must be"),
    "infinite edge": ({"features": {"a": {**OK, "edges": [*EDGES[:8], float("inf")]}}}, "edges[8] must be"),
    "share between equal edges": (
        {"features": {"a": {"edges": [1, 2, 2, 4, 5, 6, 7, 8, 9], "shares": SHARES}}},
        "shares[2] is 0.1, but bin 2 is empty",
    ),
    "predictions not an object": ({"features": {"a": OK}, "predictions": [1.0]}, "'reference.predictions' must be"),
    "predictions empty": ({"predictions": {}}, "'reference.predictions' is empty"),
    "unknown class": ({"predictions": {"x": 0.5, "z": 0.5}}, "names 'z', which is not a class"),
    "prediction shares": ({"predictions": {"x": 0.5, "y": 0.6}}, "must sum to 1"),
    "prediction share a string": ({"predictions": {"x": "1"}}, "reference.predictions[0] must be a finite number"),
}


@pytest.mark.parametrize("kind", INVALID)
def test_invalid_references_are_refused_with_the_reason(kind: str) -> None:
    reference, fragment = INVALID[kind]

    with pytest.raises(InvalidReference) as caught:
        read(reference)

    assert fragment in str(caught.value)


# --- string columns, and missing values ---------------------------------------------------------

ISLAND = {"categories": ["Biscoe", "Dream"], "shares": [0.5, 0.3, 0.2], "missing": 0.1}


def test_a_string_columns_reference_is_its_categories_other_and_missing() -> None:
    reference = read_reference(
        {"reference": {"features": {"island": ISLAND, "a": {**OK, "missing": 0.25}}}}, FEATURES, None, 32, {"island": 5}
    )

    [island] = reference.categories
    assert island == CategoryReference("island", 5, ("Biscoe", "Dream"), (0.5, 0.3, 0.2), 0.1)
    assert island.bin_shares() == pytest.approx({"Biscoe": 0.45, "Dream": 0.27, "other": 0.18, "missing": 0.1})
    [a] = reference.features
    assert a.bin_shares() == pytest.approx({**{str(i): 0.075 for i in range(10)}, "missing": 0.25})
    assert read({"features": {"a": OK}}).features[0].bin_shares() == {str(i): 0.1 for i in range(10)}


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"categories": "Biscoe", "shares": [1.0]}, "must be an object with 'categories' and 'shares'"),
        ({**ISLAND, "shares": [0.5, 0.5]}, "shares must be an array of 3 numbers"),
        ({**ISLAND, "categories": ["Biscoe", "Biscoe"]}, "at most 9 distinct categories"),
        ({**ISLAND, "categories": [str(i) for i in range(10)], "shares": [0.0] * 10 + [1.0]}, "at most 9"),
        ({**ISLAND, "categories": ["other", "Dream"]}, "'other' is not a category name"),
        ({**ISLAND, "categories": ["x" * 65, "Dream"]}, "of at most 64 characters"),
        ({**ISLAND, "missing": 1.5}, "missing must be between 0 and 1"),
        ({**ISLAND, "missing": "0.1"}, "missing[0] must be a finite number"),
    ],
)
def test_an_invalid_string_column_reference_is_refused(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        read_reference({"reference": {"features": {"island": entry}}}, FEATURES, None, 32, {"island": 5})
    assert fragment in str(caught.value)


def test_string_values_are_counted_by_category_other_and_missing() -> None:
    registry = CollectorRegistry()
    counter = Counter("model_server_feature_bin", "help", LABELS, registry=registry)
    reference = CategoryReference("island", 1, ("Biscoe", "Dream"), (0.5, 0.3, 0.2), 0.1)
    bins = CategoryBins("m", "1", [reference], counter)
    rows = np.array([[1.0, "Biscoe"], [2.0, None], [3.0, "Atlantis"], [4.0, "Biscoe"], [5.0, "other"]], dtype=object)

    bins.observe(rows)

    counted = {
        label: registry.get_sample_value(
            "model_server_feature_bin_total", {"model": "m", "version": "1", "feature": "island", "bin": label}
        )
        for label in ("Biscoe", "Dream", "other", "missing")
    }
    assert counted == {"Biscoe": 2, "Dream": 0, "other": 2, "missing": 1}, "a category named 'other' is other"


def test_a_nullable_numbers_missing_values_are_counted_in_their_bin() -> None:
    registry = CollectorRegistry()
    counter = Counter("model_server_feature_bin", "help", LABELS, registry=registry)
    features = [FeatureReference("a", 0, np.array(EDGES), tuple(SHARES), missing=0.1), FeatureReference(
        "b", 1, np.array(EDGES), tuple(SHARES))]  # fmt: skip
    bins = FeatureBins("m", "1", features, counter)

    bins.observe(np.array([[np.nan, 1.5], [np.nan, 2.5], [9.5, np.nan]]))

    def value(feature: str, label: str) -> float | None:
        labels = {"model": "m", "version": "1", "feature": feature, "bin": label}
        return registry.get_sample_value("model_server_feature_bin_total", labels)

    assert value("a", "missing") == 2 and value("a", "9") == 1
    assert value("b", "missing") is None, "a column never missing has no missing bin"
    assert value("b", "1") == 1 and value("b", "2") == 1


# --- boolean columns ------------------------------------------------------------------------------

FLAG = {"shares": {"false": 0.4, "true": 0.6}, "missing": 0.1}


def test_a_boolean_columns_reference_is_false_true_and_missing() -> None:
    reference = read_reference(
        {"reference": {"features": {"flag": FLAG, "island": ISLAND, "a": OK}}}, FEATURES, None, 32, {"island": 5},
        {"flag": 4},
    )  # fmt: skip

    [flag] = reference.booleans
    assert flag == BooleanReference("flag", 4, (0.4, 0.6), 0.1)
    assert flag.bin_shares() == pytest.approx({"false": 0.36, "true": 0.54, "missing": 0.1})
    assert [c.name for c in reference.columns] == ["a", "island", "flag"]  # numbers, strings, booleans
    never_missing = read_reference({"reference": {"features": {"flag": {"shares": FLAG["shares"]}}}}, (), None, 32,
                                   None, {"flag": 0}).booleans[0]  # fmt: skip
    assert never_missing.bin_shares() == {"false": 0.4, "true": 0.6}, "no missing bin where none can be sent"


def test_the_feature_cap_counts_boolean_columns_too() -> None:
    entries = {"a": OK, "b": OK, "flag": FLAG, "island": ISLAND}

    reference = read_reference({"reference": {"features": entries}}, FEATURES, None, 3, {"island": 6}, {"flag": 5})

    assert [c.name for c in reference.columns] == ["a", "b", "flag"], "the first 3 columns, in the rows' order"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"shares": [0.4, 0.6]}, "of a boolean column must be an object with 'shares' of 'false' and 'true'"),
        ({"shares": {"false": 0.4}}, "of a boolean column must be an object with 'shares' of 'false' and 'true'"),
        ({"shares": {"false": 0.4, "true": 0.6, "other": 0.0}}, "with 'shares' of 'false' and 'true'"),
        ({"edges": EDGES, "shares": SHARES}, "with 'shares' of 'false' and 'true'"),
        ({"shares": {"false": 0.5, "true": 0.6}}, "shares must sum to 1"),
        ({"shares": {"false": True, "true": 0.6}}, "shares[0] must be a finite number"),
        ({**FLAG, "missing": -0.1}, "missing must be between 0 and 1"),
    ],
)
def test_an_invalid_boolean_column_reference_is_refused(entry: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        read_reference({"reference": {"features": {"flag": entry}}}, FEATURES, None, 32, None, {"flag": 4})
    assert fragment in str(caught.value)


def test_a_reference_for_a_boolean_column_the_server_is_not_told_of_is_refused() -> None:
    with pytest.raises(InvalidReference, match="names 'flag', which is not a feature of the model"):
        read_reference({"reference": {"features": {"flag": FLAG}}}, FEATURES, None, 32)


def test_boolean_values_are_counted_in_false_true_and_missing() -> None:
    registry = CollectorRegistry()
    counter = Counter("model_server_feature_bin", "help", LABELS, registry=registry)
    references = [BooleanReference("flag", 1, (0.4, 0.6), 0.1), BooleanReference("sure", 2, (0.5, 0.5))]
    bins = CategoryBins("m", "1", references, counter)
    rows = np.array([[1.0, True, False], [2.0, None, True], [3.0, False, True], [4.0, True, True],
                     [5.0, np.True_, False]], dtype=object)  # fmt: skip

    bins.observe(rows)

    def value(feature: str, label: str) -> float | None:
        labels = {"model": "m", "version": "1", "feature": feature, "bin": label}
        return registry.get_sample_value("model_server_feature_bin_total", labels)

    assert {label: value("flag", label) for label in ("false", "true", "missing")} == {
        "false": 1, "true": 3, "missing": 1
    }  # fmt: skip
    assert (value("sure", "false"), value("sure", "true"), value("sure", "missing")) == (2, 3, None)
    assert value("flag", "other") is None, "a boolean column has no other bin"


def test_a_served_boolean_column_is_binned_and_its_reference_exported(
    empty_replica: tuple[Flask, Path], tmp_path: Path
) -> None:
    """Packaged from a CSV with a nullable boolean column: the reference has its shares and missing share, the
    replica counts the live values in false, true and missing, and exports the reference for Prometheus."""
    import joblib
    import pandas as pd
    from model_server.tools.package import package
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    app, root = empty_replica
    name = unique("flags")
    flags = [True, False, True, None] * 10  # 20 true, 10 false, 10 missing
    frame = pd.DataFrame({"flag": flags, "n": [float(i % 7) for i in range(40)], "y": [i % 2 for i in range(40)]})
    work = tmp_path / "work"
    work.mkdir()
    frame.to_csv(work / "train.csv", index=False)
    x = pd.read_csv(work / "train.csv").drop(columns="y")  # as the packager reads it: flag is object, NaN missing
    encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    model = make_pipeline(make_column_transformer((encode, ["flag"]), ("passthrough", ["n"])), LogisticRegression())
    joblib.dump(model.fit(x, frame["y"]), work / "model.joblib")
    path, _ = package(work / "model.joblib", work / "train.csv", name=name, version="1", repository=root,
                      target_column="y")  # fmt: skip
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["reference"]["features"]["flag"] == {
        "shares": {"false": 0.333333, "true": 0.666667},
        "missing": 0.25,
    }
    sync(app)
    client = app.test_client()

    rows = [{"flag": True, "n": 1.0}, {"flag": None, "n": 2.0}, {"flag": None, "n": 3.0}, {"flag": False, "n": 4.0}]
    response = client.post(f"/v2/models/{name}/infer", json={"parameters": {"content_type": "pd"}, "inputs": [
        {"name": "flag", "shape": [4], "datatype": "BOOL", "data": [r["flag"] for r in rows]},
        {"name": "n", "shape": [4], "datatype": "FP64", "data": [r["n"] for r in rows]},
    ]})  # fmt: skip

    assert response.status_code == 200, response.get_data(as_text=True)
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    counted = {b: scraped(samples, "model_server_feature_bin_total", model=name, version="1", feature="flag", bin=b)
               for b in ("false", "true", "missing")}  # fmt: skip
    assert counted == {"false": 1, "true": 1, "missing": 2}
    exported = {b: scraped(samples, "model_server_feature_reference_share", model=name, version="1", feature="flag",
                           bin=b) for b in ("false", "true", "missing")}  # fmt: skip
    assert exported == pytest.approx({"false": 0.25, "true": 0.5, "missing": 0.25}, abs=1e-6)
    assert scraped(samples, "model_server_drift_reference", model=name, version="1") == 1


def test_prediction_shares_of_a_model_without_classes_are_refused() -> None:
    with pytest.raises(InvalidReference, match="the model has no classes"):
        read({"features": {"a": OK}, "predictions": {"x": 1.0}}, class_names=None)


# --- through the app --------------------------------------------------------------------------


@pytest.fixture
def empty_replica(app_factory: Callable[..., Flask], tmp_path: Path) -> tuple[Flask, Path]:
    """An app on an empty repository (it polls: nothing servable is not fatal); the test publishes versions."""
    root = tmp_path / "models"
    root.mkdir()
    return app_factory(model_repository=root, model_poll_seconds=60), root


def rewrite_metadata(directory: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    change(metadata)
    path.write_text(json.dumps(metadata), encoding="utf-8")
    return metadata


def sync(app: Flask, times: int = 1) -> None:
    for _ in range(times):
        app.extensions["model_server"].poller.sync()


def test_a_version_without_reference_has_no_bin_counters_and_drift_reference_0(
    empty_replica: tuple[Flask, Path],
) -> None:
    app, root = empty_replica
    name = unique("plain")
    rewrite_metadata(write_iris(root / name / "1", 1, name), lambda m: m.pop("reference"))
    sync(app)
    client = app.test_client()

    response = client.post(f"/v2/models/{name}/infer", json={"inputs": [v2_input(ROW, [4])]})

    assert response.status_code == 200
    assert not [s for f in REGISTRY.collect() for s in f.samples if s.labels.get("model") == name and "bin" in s.labels]
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert scraped(samples, "model_server_drift_reference", model=name, version="1") == 0
    assert not [k for k in samples if "reference_share" in k[0] and dict(k[1]).get("model") == name]


def _entry(metadata: dict[str, Any], feature: str = "sepal length (cm)") -> dict[str, Any]:
    return metadata["reference"]["features"][feature]


INVALID_IN_METADATA: dict[str, Callable[[dict[str, Any]], Any]] = {
    "wrong lengths": lambda m: _entry(m, "petal width (cm)")["edges"].pop(),
    "non-monotonic edges": lambda m: _entry(m, "sepal width (cm)")["edges"].reverse(),
    "shares not summing to 1": lambda m: _entry(m)["shares"].append(_entry(m)["shares"].pop() + 0.5),
    "not numbers": lambda m: _entry(m).update(edges=["x"] * 9),
    "not an object": lambda m: m.update(reference="deciles"),
}


@pytest.mark.parametrize("kind", INVALID_IN_METADATA)
def test_invalid_reference_metadata_serves_the_version_without_drift_monitoring(
    empty_replica: tuple[Flask, Path], kind: str
) -> None:
    app, root = empty_replica
    name = unique("broken")
    rewrite_metadata(write_iris(root / name / "1", 1, name), INVALID_IN_METADATA[kind])

    with json_logs() as lines:
        sync(app, times=3)  # three polls: logged once, at load

    client = app.test_client()
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": [v2_input(ROW, [4])]})
    assert response.status_code == 200, "served all the same"
    [logged] = [line for line in lines() if line["message"] == DRIFT_OFF]
    assert (logged["level"], logged["model"], logged["version"]) == ("WARNING", name, "1")
    assert "reference" in logged["reason"]
    [ready] = [line for line in lines() if line["message"] == "model version ready"]
    assert ready["drift_reference"] is False
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    assert scraped(samples, "model_server_drift_reference", model=name, version="1") == 0
    assert not [k for k in samples if "reference_share" in k[0] and dict(k[1]).get("model") == name]
    assert not [s for f in REGISTRY.collect() for s in f.samples if s.labels.get("model") == name and "bin" in s.labels]


def test_a_valid_reference_is_not_logged_as_a_problem(empty_replica: tuple[Flask, Path]) -> None:
    app, root = empty_replica
    name = unique("fine")
    publish_iris(root, 1, name)

    with json_logs() as lines:
        sync(app)

    assert not [line for line in lines() if line["message"] == DRIFT_OFF]
    [ready] = [line for line in lines() if line["message"] == "model version ready"]
    assert ready["drift_reference"] is True
    samples = scrape(app.test_client().get("/metrics").get_data(as_text=True))
    assert scraped(samples, "model_server_drift_reference", model=name, version="1") == 1


def test_drift_max_features_0_turns_drift_monitoring_off(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(drift_max_features=0).test_client()

    samples = scrape(client.get("/metrics").get_data(as_text=True))

    assert scraped(samples, "model_server_drift_reference", model="iris-rf", version="1") == 0
    assert not [k for k in samples if k[0] == "model_server_feature_reference_share"]
