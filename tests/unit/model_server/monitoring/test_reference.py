"""model_server.monitoring.reference: decile edges, the bin of a value, and shares that sum to 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from model_server.monitoring.drift import read_reference
from model_server.monitoring.reference import (
    N_BINS,
    bin_index,
    bin_shares,
    boolean_reference,
    column_references,
    decile_edges,
    feature_reference,
    prediction_shares,
    round_shares,
)
from model_server.repository.signature import Column, Signature

PROPERTY = settings(max_examples=300, deadline=None, database=None)
EDGES = np.arange(1.0, 10.0)  # 1, 2, ..., 9

columns = hnp.arrays(
    np.float64,
    st.integers(1, 200),
    elements=st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 1.0, 2.5]),  # repeated values: repeated edges
    ),
)


def direct_counts(edges: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Bin i holds edges[i-1] <= v < edges[i], counted one bin at a time."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    return np.array([np.count_nonzero((bounds[i] <= column) & (column < bounds[i + 1])) for i in range(N_BINS)])


def test_edges_are_the_inner_deciles() -> None:
    column = np.random.default_rng(0).normal(size=1000)

    edges = decile_edges(column)

    assert edges.shape == (9,)
    np.testing.assert_array_equal(edges, np.quantile(column, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))
    assert (np.diff(edges) >= 0).all()


def test_edges_interpolate_between_sample_values() -> None:
    """numpy's default "linear" method: the 0.1 quantile of 0..10 is 1, of 0..9 it is 0.9."""
    np.testing.assert_allclose(decile_edges(np.arange(11.0)), np.arange(1.0, 10.0))
    np.testing.assert_allclose(decile_edges(np.arange(10.0)), np.arange(1.0, 10.0) * 0.9)


def test_values_on_an_edge_go_to_the_bin_above() -> None:
    np.testing.assert_array_equal(bin_index(EDGES, EDGES), np.arange(1, 10))


def test_values_between_edges() -> None:
    np.testing.assert_array_equal(bin_index(EDGES, np.array([1.5, 4.999, 8.9999999])), [1, 4, 8])


def test_values_outside_the_training_range_go_to_the_end_bins() -> None:
    values = np.array([-1e300, -5.0, 0.999, 9.0, 9.5, 1e300, -np.inf, np.inf])

    np.testing.assert_array_equal(bin_index(EDGES, values), [0, 0, 0, 9, 9, 9, 0, 9])


def test_a_constant_feature_keeps_ten_bins_with_all_rows_in_the_last() -> None:
    column = np.full(50, 3.5)

    edges = decile_edges(column)

    np.testing.assert_array_equal(edges, np.full(9, 3.5))
    assert bin_shares(edges, column) == [0.0] * 9 + [1.0]
    np.testing.assert_array_equal(bin_index(edges, np.array([3.4, 3.5, 3.6])), [0, 9, 9])


def test_a_binary_feature_fills_the_bins_above_each_repeated_edge() -> None:
    column = np.array([0.0] * 50 + [1.0] * 50)

    edges = decile_edges(column)

    np.testing.assert_array_equal(edges, [0, 0, 0, 0, 0.5, 1, 1, 1, 1])
    assert bin_shares(edges, column) == [0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5]


def test_shares_of_a_skewed_feature_match_a_direct_count() -> None:
    column = np.random.default_rng(1).poisson(1.5, size=997).astype(float)  # few values, many ties
    edges = decile_edges(column)

    shares = bin_shares(edges, column)

    np.testing.assert_allclose(shares, direct_counts(edges, column) / len(column), atol=1e-6)
    assert sum(shares) == pytest.approx(1, abs=1e-12)


@PROPERTY
@given(columns)
def test_bins_follow_the_rule_and_shares_match_the_counts(column: np.ndarray) -> None:
    edges = decile_edges(column)

    shares = bin_shares(edges, column)

    assert len(shares) == N_BINS
    np.testing.assert_array_equal(np.bincount(bin_index(edges, column), minlength=N_BINS), direct_counts(edges, column))
    np.testing.assert_allclose(shares, direct_counts(edges, column) / len(column), rtol=0, atol=1e-6)
    assert abs(sum(shares) - 1) <= 1e-9
    assert all(round(s, 6) == s for s in shares)


@PROPERTY
@given(columns, columns)
def test_live_values_bin_like_the_training_values(training: np.ndarray, live: np.ndarray) -> None:
    edges = decile_edges(training)

    index = bin_index(edges, live)

    assert ((index >= 0) & (index < N_BINS)).all()
    np.testing.assert_array_equal(np.bincount(index, minlength=N_BINS), direct_counts(edges, live))


def test_round_shares_keeps_the_sum_at_one() -> None:
    assert round_shares([1, 1, 1]) == [0.333334, 0.333333, 0.333333]
    assert round_shares([2, 0, 1]) == [0.666667, 0.0, 0.333333]
    assert round_shares(np.array([7])) == [1.0]
    assert sum(round_shares([1] * 7 + [0] * 3)) == pytest.approx(1, abs=1e-12)


@PROPERTY
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=20).filter(any))
def test_rounded_shares_are_within_a_millionth_and_sum_to_one(counts: list[int]) -> None:
    shares = round_shares(counts)

    np.testing.assert_allclose(shares, np.array(counts) / sum(counts), rtol=0, atol=1e-6)
    assert abs(sum(shares) - 1) <= 1e-9
    assert all(s == 0 for s, c in zip(shares, counts, strict=True) if c == 0)


@pytest.mark.parametrize("counts", [[], [0, 0], [3, -1]])
def test_round_shares_needs_a_positive_total(counts: list[int]) -> None:
    with pytest.raises(ValueError, match="positive total"):
        round_shares(counts)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_never_reach_the_edges(bad: float) -> None:
    column = np.array([1.0, 2.0, bad])

    with pytest.raises(ValueError, match="finite"):
        decile_edges(column)
    with pytest.raises(ValueError, match="finite"):
        bin_shares(EDGES, column)


@pytest.mark.parametrize("column", [np.array([]), np.ones((3, 2))])
def test_a_column_is_a_non_empty_vector(column: np.ndarray) -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        decile_edges(column)


def test_feature_reference_covers_the_first_features_and_survives_json() -> None:
    matrix = np.random.default_rng(2).normal(size=(300, 4)) * [1, 1e-9, 1e9, 1 / 3]

    reference = feature_reference(matrix, ["a", "b", "c", "d"], max_features=3)

    assert list(reference) == ["a", "b", "c"]
    for j, name in enumerate(reference):
        assert reference[name]["edges"] == decile_edges(matrix[:, j]).tolist()
        assert reference[name]["shares"] == bin_shares(decile_edges(matrix[:, j]), matrix[:, j])
    assert json.loads(json.dumps(reference)) == reference  # edges round-trip as float repr


def test_feature_reference_of_no_features() -> None:
    assert feature_reference(np.ones((5, 2)), ["a", "b"], max_features=0) == {}


def test_a_boolean_columns_reference_is_its_false_and_true_shares_and_missing_share() -> None:
    assert boolean_reference([True, False, True, True]) == {"shares": {"false": 0.25, "true": 0.75}}
    assert boolean_reference([np.True_, None, False, None, np.False_], nullable=True) == {
        "shares": {"false": 0.666667, "true": 0.333333},
        "missing": 0.4,
    }
    assert boolean_reference([None, None], nullable=True) is None, "no value present: no reference"


def test_column_references_of_a_frame_cover_its_boolean_columns() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "n": [1.0, 2.0, None, 4.0],
            "flag": [True, False, True, True],  # bool dtype
            "maybe": [True, None, False, None],  # object, as pandas reads a boolean column with an empty cell
            "seen": pd.array([True, pd.NA, True, True], dtype="boolean"),
        }
    )
    signature = Signature(
        inputs=(
            Column(name="n", type="double", nullable=True),
            Column(name="flag", type="boolean"),
            Column(name="maybe", type="boolean", nullable=True),
            Column(name="seen", type="boolean", nullable=True),
        ),
        frame=True,
    )

    references = column_references(frame, signature, max_features=32)

    assert list(references) == ["n", "flag", "maybe", "seen"]
    assert references["flag"] == {"shares": {"false": 0.25, "true": 0.75}}
    assert references["maybe"] == {"shares": {"false": 0.5, "true": 0.5}, "missing": 0.5}
    assert references["seen"] == {"shares": {"false": 0.0, "true": 1.0}, "missing": 0.25}
    assert list(column_references(frame, signature, max_features=2)) == ["n", "flag"]
    # what the server reads back: every column, with the missing share the live rate is compared with
    read = read_reference({"reference": {"features": json.loads(json.dumps(references))}}, ["n"], None, 32, None,
                          {"flag": 1, "maybe": 2, "seen": 3})  # fmt: skip
    assert [(c.name, c.missing) for c in read.columns] == [("n", 0.25), ("flag", None), ("maybe", 0.5), ("seen", 0.25)]


def test_prediction_shares_list_every_class() -> None:
    predicted = np.array([2, 0, 2, 2])

    assert prediction_shares(predicted, [0, 1, 2], ["setosa", "versicolor", "virginica"]) == {
        "setosa": 0.25,
        "versicolor": 0.0,
        "virginica": 0.75,
    }


def test_prediction_shares_of_text_labels() -> None:
    predicted = np.array(["b", "a", "b"])

    assert prediction_shares(predicted, ["a", "b"], ["a", "b"]) == {"a": 0.333333, "b": 0.666667}
