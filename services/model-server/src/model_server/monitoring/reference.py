"""The training reference for drift, and the binning rule that the live counting shares with it.

The packager cuts each feature of the training sample into 10 equal-frequency bins (deciles) and
records in metadata.json the 9 inner edges and each bin's share of the rows; the server counts
live values into the same bins, and Prometheus compares the live shares with the recorded ones.
Both sides call this module, so they bin by exactly the same rule:

* Edges: ``np.quantile(column, [0.1, 0.2, ..., 0.9])`` with numpy's default ``"linear"`` method
  (Hyndman & Fan type 7: an edge between two sample values is interpolated between them).
* Bin ``i`` holds ``edges[i-1] <= v < edges[i]``: ``np.searchsorted(edges, v, side="right")``.
  A value equal to an edge goes to the bin above it; values below the first edge fall into bin
  0 and values at or above the last edge into bin 9, so live values outside the training range
  still land somewhere.
* A constant or low-cardinality feature gives repeated edges. There are still 10 bins; those
  between equal edges are empty, and shares come from the actual counts (a constant feature
  has all its rows in bin 9, since every value equals the last edge).
* Shares are rounded to 6 decimals by the largest-remainder method, so they still sum to 1
  (exactly, in millionths) and an empty bin keeps share 0.

Non-finite values must never reach the edges: the training sample is refused (the packager
names the cell) and the server refuses non-finite input before any counting. A missing value
(NaN, in a nullable column of a model fitted on a DataFrame) is in no decile: the column's
``missing`` share records how many there were, and the server counts them in a bin of their own.

A string column's reference is its most frequent categories (up to 9), each with its share, and
``other`` for the rest; the server counts unseen categories as other. A boolean column's is the
share of false and of true among its values present (``{"shares": {"false": f, "true": t}}``).
Every column's ``missing`` share (nullable columns only) is also the training side of the
missing-value rate that Prometheus tracks (prometheus/rules/quality.yml).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..repository.signature import Signature

N_BINS = 10
MAX_CATEGORY_BINS = 9  # a string column's categories with a bin of their own: the most frequent in training
MAX_CATEGORY_LABEL = 64  # characters: a longer category counts as other (metric labels stay short and distinct)
RESERVED_BINS = ("other", "missing")  # the bins of a string column's other categories and of missing values
BOOLEAN_BINS = ("false", "true")  # a boolean column's bins (and the keys of its reference's shares)
QUANTILES = tuple(i / N_BINS for i in range(1, N_BINS))  # 0.1 .. 0.9: the 9 inner edges
SHARE_DIGITS = 6


def decile_edges(column: np.ndarray) -> np.ndarray:
    """The 9 inner edges of 10 equal-frequency bins of a 1-D sample of finite values (ascending)."""
    values = _finite(column)
    return np.quantile(values, QUANTILES)


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin (0..9) of each value: bin i holds ``edges[i-1] <= v < edges[i]``."""
    return np.searchsorted(edges, values, side="right")


def bin_shares(edges: np.ndarray, column: np.ndarray) -> list[float]:
    """Each bin's share of ``column`` (10 shares, rounded to 6 decimals, summing to 1)."""
    counts = np.bincount(bin_index(edges, _finite(column)), minlength=len(edges) + 1)
    return round_shares(counts)


def round_shares(counts: Sequence[int] | np.ndarray) -> list[float]:
    """Counts as shares of their total, rounded to 6 decimals by largest remainder (the shares sum to 1)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total <= 0 or (counts < 0).any():
        raise ValueError("shares need non-negative counts with a positive total")
    scale = 10**SHARE_DIGITS
    units, remainders = np.divmod(counts * scale, total)  # integers: no float error in the sum
    missing = scale - int(units.sum())
    units[np.argsort(-remainders, kind="stable")[:missing]] += 1
    return [int(unit) / scale for unit in units]


def feature_reference(matrix: np.ndarray, feature_names: Sequence[str], max_features: int) -> dict[str, Any]:
    """``{name: {"edges": [9 floats], "shares": [10 floats]}}`` for the first ``max_features`` columns of a matrix."""
    reference = {}
    for j, name in enumerate(feature_names[:max_features]):
        entry = numeric_reference(matrix[:, j])
        if entry is not None:
            reference[name] = entry
    return reference


def numeric_reference(column: np.ndarray, nullable: bool = False) -> dict[str, Any] | None:
    """A number column's ``{"edges", "shares"}`` over its values present (NaN: missing), and with ``nullable`` the
    share of missing values (``"missing"``); None if no value is present."""
    column = np.asarray(column, dtype=np.float64)
    present = column[~np.isnan(column)]
    if not present.size:
        return None
    edges = decile_edges(present)
    entry: dict[str, Any] = {"edges": [float(e) for e in edges], "shares": bin_shares(edges, present)}
    if nullable:
        entry["missing"] = round((len(column) - len(present)) / len(column), SHARE_DIGITS)
    return entry


def category_reference(values: Sequence[Any], nullable: bool = False) -> dict[str, Any] | None:
    """A string column's ``{"categories": [the most frequent, up to 9], "shares": [each, then other]}`` over its
    values present (None or NaN: missing), and with ``nullable`` the share of missing values; None if none is present.

    A category longer than 64 characters, or named ``other`` or ``missing``, has no bin of its own: it counts as other.
    """
    present = [v for v in values if isinstance(v, str)]
    if not present:
        return None
    counts = collections.Counter(present)
    eligible = [c for c, _ in counts.most_common() if len(c) <= MAX_CATEGORY_LABEL and c not in RESERVED_BINS]
    categories = sorted(eligible[:MAX_CATEGORY_BINS])
    shown = [counts[c] for c in categories]
    entry: dict[str, Any] = {"categories": categories, "shares": round_shares([*shown, len(present) - sum(shown)])}
    if nullable:
        entry["missing"] = round((len(values) - len(present)) / len(values), SHARE_DIGITS)
    return entry


def boolean_reference(values: Sequence[Any], nullable: bool = False) -> dict[str, Any] | None:
    """A boolean column's ``{"shares": {"false": f, "true": t}}`` over its values present (None or NaN: missing), and
    with ``nullable`` the share of missing values (``"missing"``); None if no value is present."""
    present = [bool(v) for v in values if isinstance(v, bool | np.bool_)]
    if not present:
        return None
    true = sum(present)
    entry: dict[str, Any] = {"shares": dict(zip(BOOLEAN_BINS, round_shares([len(present) - true, true]), strict=True))}
    if nullable:
        entry["missing"] = round((len(values) - len(present)) / len(values), SHARE_DIGITS)
    return entry


def prediction_shares(predicted: np.ndarray, classes: Sequence[Any], class_names: Sequence[str]) -> dict[str, float]:
    """Each class's share of the predicted labels (every class listed, in the estimator's order)."""
    predicted = np.asarray(predicted)
    counts = [int(np.count_nonzero(predicted == cls)) for cls in classes]
    return dict(zip(class_names, round_shares(counts), strict=True))


def _finite(column: np.ndarray) -> np.ndarray:
    values = np.asarray(column, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"a reference needs a non-empty 1-D column, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("a reference column must hold finite values only")
    return values


def column_references(frame: Any, signature: Signature, max_features: int) -> dict[str, Any]:
    """The drift reference of the first ``max_features`` columns of a training DataFrame (in the model's order, as
    ``signature`` lists them) that have one: numbers' deciles, strings' categories, booleans' false and true shares,
    and the share of missing values of every nullable column."""
    references: dict[str, Any] = {}
    for column in signature.inputs:
        if len(references) >= max_features:
            break
        values = frame[column.name]
        if column.numeric:
            entry = numeric_reference(values.to_numpy(dtype=np.float64, na_value=np.nan), column.nullable)
        elif column.type == "string":
            entry = category_reference(values.astype(object).where(values.notna(), None).tolist(), column.nullable)
        else:  # boolean
            entry = boolean_reference(values.astype(object).where(values.notna(), None).tolist(), column.nullable)
        if entry is not None:
            references[column.name] = entry
    return references
