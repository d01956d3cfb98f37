"""Input drift on the replica side: a version's reference bins, read from its metadata, and the
live values counted in them. The statistics (shares, PSI) are computed by Prometheus
(prometheus/rules/quality.yml); a replica only counts.

The reference is what the packager recorded (:mod:`.reference`, :mod:`..tools.package`):
``reference.features[<feature>] = {"edges": [9 inner edges], "shares": [10 shares]}`` (a number column;
a string column's ``{"categories", "shares"}``, a boolean column's ``{"shares": {"false", "true"}}``, and
``"missing"`` where the column is nullable) and ``reference.predictions = {<class name>: share}``.
:func:`read_reference` checks it. Invalid reference statistics never make a version unservable:
the loader serves the version without drift monitoring and logs the reason once
(:mod:`..serving.repository_poller`).

Counting (:class:`FeatureBins`) uses the packager's rule, :func:`.reference.bin_index`, for every
value of every model call, in one numpy pass and one ``inc`` per non-zero bin. Each feature has
its own edges, and ``searchsorted`` takes one sorted array; the trick: search every value in the
*merged* sorted edges of all features. ``p = bin_index(merged, v)`` is the number of edges of all
features that are <= v, so ``merged[:p]`` holds exactly those edges, and the number of them that
belong to feature ``j`` is the bin of ``v`` under feature ``j``'s own edges
(``bin_index(edges_j, v)``: the count of ``edges_j`` <= v). A table built once per version,
``table[j, p]``, holds that number (offset by ``10 * j``), so a call is one ``searchsorted`` over
the whole ``(rows, features)`` block, one ``take`` and one ``bincount``. Only comparisons are
involved: a value on an edge, repeated edges and -0.0 land exactly where ``bin_index`` puts them
(tests/unit/model_server/monitoring/test_drift.py checks it against per-feature ``bin_index``). Why: most
model calls hold a few rows, where numpy's cost is per call, not per value; one ``searchsorted``
per feature would cost up to DRIFT_MAX_FEATURES calls for a one-row request. The price, a
binary search over ``9 * features`` edges rather than 9, shows only in calls of many rows.

Invariant: only finite values are binned. ``searchsorted`` would put NaN in the last bin: a
missing value (NaN, where a model's signature allows one) is left out of the bins; the request
validation refuses infinite input (:func:`..rest.validation.check_finite`, :mod:`..rest.records`),
and :meth:`FeatureBins.observe` asserts it.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter

from . import metrics
from .reference import BOOLEAN_BINS, MAX_CATEGORY_BINS, MAX_CATEGORY_LABEL, N_BINS, RESERVED_BINS, bin_index

N_EDGES = N_BINS - 1
SHARE_TOLERANCE = 1e-3  # shares are rounded to 6 decimals; hand-written ones to fewer
BIN_LABELS = tuple(str(i) for i in range(N_BINS))
OTHER_BIN, MISSING_BIN = RESERVED_BINS  # a string column's other categories (unseen ones too); missing values


class InvalidReference(ValueError):
    """The metadata's ``reference`` cannot be used; the message says where and why."""


@dataclass(frozen=True)
class FeatureReference:
    name: str
    column: int  # the feature's column in the model's numeric input
    edges: np.ndarray  # 9 inner edges, ascending
    shares: tuple[float, ...]  # 10 shares of the values present, summing to 1
    missing: float | None = None  # the share of missing values in training (a nullable column); None: never missing

    def bin_shares(self) -> dict[str, float]:
        """Each bin's share of all training values, missing ones included (what the live counts compare with)."""
        return _with_missing(dict(zip(BIN_LABELS, self.shares, strict=True)), self.missing)


@dataclass(frozen=True)
class CategoryReference:
    """A string column's reference: its most frequent training categories, the others, and the missing values."""

    name: str
    column: int  # the column's position in the model's rows
    categories: tuple[str, ...]  # each with a bin of its own
    shares: tuple[float, ...]  # of the values present: one per category, then "other"; summing to 1
    missing: float | None = None

    def bin_shares(self) -> dict[str, float]:
        return _with_missing(dict(zip((*self.categories, OTHER_BIN), self.shares, strict=True)), self.missing)


@dataclass(frozen=True)
class BooleanReference:
    """A boolean column's reference: the shares of false and true among the values present, and the missing values."""

    name: str
    column: int  # the column's position in the model's rows
    shares: tuple[float, float]  # false, true; summing to 1
    missing: float | None = None

    def bin_shares(self) -> dict[str, float]:
        return _with_missing(dict(zip(BOOLEAN_BINS, self.shares, strict=True)), self.missing)


@dataclass(frozen=True)
class DriftReference:
    """What a version is compared with: per monitored column its bins, and the predicted classes' shares."""

    features: tuple[FeatureReference, ...] = ()
    predictions: Mapping[str, float] | None = field(default=None)  # by class name, as recorded
    categories: tuple[CategoryReference, ...] = ()
    booleans: tuple[BooleanReference, ...] = ()

    @property
    def columns(self) -> tuple[FeatureReference | CategoryReference | BooleanReference, ...]:
        """Every monitored column's reference: numbers, strings, booleans."""
        return (*self.features, *self.categories, *self.booleans)


def _with_missing(shares: dict[str, float], missing: float | None) -> dict[str, float]:
    if missing is None:
        return shares
    return {**{label: share * (1 - missing) for label, share in shares.items()}, MISSING_BIN: missing}


def read_reference(
    metadata: Mapping[str, Any],
    feature_names: Sequence[str],
    class_names: Sequence[str] | None,
    max_features: int,
    string_columns: Mapping[str, int] | None = None,
    boolean_columns: Mapping[str, int] | None = None,
) -> DriftReference:
    """The metadata's reference for the first ``max_features`` columns that have one; InvalidReference if broken.

    ``feature_names``: the numeric columns, in the order of the numeric input; ``string_columns`` and
    ``boolean_columns``: those columns' positions in the model's rows (the columns count in that order,
    numeric ones first where the positions are not known).
    """
    reference = metadata.get("reference")
    if reference is None:
        return DriftReference()
    if not isinstance(reference, dict):
        raise InvalidReference(f"'reference' must be an object, got {_type(reference)}")
    numeric, categorical, booleans = _features(
        reference.get("features"), feature_names, string_columns or {}, boolean_columns or {}, max_features
    )
    return DriftReference(
        features=numeric,
        predictions=_predictions(reference.get("predictions"), class_names),
        categories=categorical,
        booleans=booleans,
    )


def _features(
    entries: Any,
    feature_names: Sequence[str],
    string_columns: Mapping[str, int],
    boolean_columns: Mapping[str, int],
    max_features: int,
) -> tuple[tuple[FeatureReference, ...], tuple[CategoryReference, ...], tuple[BooleanReference, ...]]:
    if entries is None:
        return (), (), ()
    if not isinstance(entries, dict):
        raise InvalidReference(f"'reference.features' must be an object, got {_type(entries)}")
    positions = {**string_columns, **boolean_columns}
    unknown = [name for name in entries if name not in feature_names and name not in positions]
    if unknown:
        raise InvalidReference(f"'reference.features' names {unknown[0]!r}, which is not a feature of the model")
    features: list[FeatureReference] = []
    categories: list[CategoryReference] = []
    booleans: list[BooleanReference] = []
    other_names = sorted(positions, key=positions.__getitem__)  # strings and booleans, in the rows' order
    numeric_columns = {name: j for j, name in enumerate(feature_names)}
    for name in [*feature_names, *other_names]:
        if name not in entries or len(features) + len(categories) + len(booleans) >= max_features:
            continue  # the cap bounds the feature label's values
        if name in string_columns:
            categories.append(_category(name, string_columns[name], entries[name]))
        elif name in boolean_columns:
            booleans.append(_boolean(name, boolean_columns[name], entries[name]))
        else:
            features.append(_feature(name, numeric_columns[name], entries[name]))
    return tuple(features), tuple(categories), tuple(booleans)


def _category(name: str, column: int, entry: Any) -> CategoryReference:
    where = f"reference.features[{name!r}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("categories"), list):
        raise InvalidReference(f"{where} of a string column must be an object with 'categories' and 'shares'")
    categories = entry["categories"]
    if len(categories) > MAX_CATEGORY_BINS or len(set(categories)) != len(categories):
        raise InvalidReference(f"{where}.categories must be at most {MAX_CATEGORY_BINS} distinct categories")
    for category in categories:
        if not isinstance(category, str) or len(category) > MAX_CATEGORY_LABEL or category in (OTHER_BIN, MISSING_BIN):
            raise InvalidReference(
                f"{where}.categories: {category!r} is not a category name of at most {MAX_CATEGORY_LABEL} "
                f"characters other than {OTHER_BIN!r} and {MISSING_BIN!r}"
            )
    shares = _numbers(entry.get("shares"), len(categories) + 1, f"{where}.shares")
    _check_shares(shares, where + ".shares")
    return CategoryReference(name, column, tuple(categories), tuple(shares), _missing(entry, where))


def _boolean(name: str, column: int, entry: Any) -> BooleanReference:
    where = f"reference.features[{name!r}]"
    shares = entry.get("shares") if isinstance(entry, dict) else None
    if not isinstance(shares, dict) or sorted(shares) != sorted(BOOLEAN_BINS):
        raise InvalidReference(f"{where} of a boolean column must be an object with 'shares' of 'false' and 'true'")
    values = _numbers([shares[label] for label in BOOLEAN_BINS], len(BOOLEAN_BINS), f"{where}.shares")
    _check_shares(values, where + ".shares")
    return BooleanReference(name, column, (values[0], values[1]), _missing(entry, where))


def _missing(entry: dict[str, Any], where: str) -> float | None:
    if "missing" not in entry:
        return None
    [share] = _numbers([entry["missing"]], 1, f"{where}.missing")
    if not 0 <= share <= 1:
        raise InvalidReference(f"{where}.missing must be between 0 and 1, got {share}")
    return share


def _feature(name: str, column: int, entry: Any) -> FeatureReference:
    where = f"reference.features[{name!r}]"
    if not isinstance(entry, dict):
        raise InvalidReference(f"{where} must be an object with 'edges' and 'shares', got {_type(entry)}")
    edges = _numbers(entry.get("edges"), N_EDGES, f"{where}.edges")
    shares = _numbers(entry.get("shares"), N_BINS, f"{where}.shares")
    if any(b < a for a, b in itertools.pairwise(edges)):
        raise InvalidReference(f"{where}.edges must be ascending (repeated edges are allowed), got {edges}")
    _check_shares(shares, where + ".shares")
    for i in range(1, N_EDGES):
        if edges[i - 1] == edges[i] and shares[i] != 0:
            raise InvalidReference(f"{where}.shares[{i}] is {shares[i]}, but bin {i} is empty: its edges are equal")
    return FeatureReference(
        name=name,
        column=column,
        edges=np.array(edges, dtype=np.float64),
        shares=tuple(shares),
        missing=_missing(entry, where),
    )


def _predictions(entries: Any, class_names: Sequence[str] | None) -> dict[str, float] | None:
    if entries is None:
        return None
    where = "reference.predictions"
    if not isinstance(entries, dict):
        raise InvalidReference(f"'{where}' must be an object of class name: share, got {_type(entries)}")
    if not entries:
        raise InvalidReference(f"'{where}' is empty")
    if class_names is None:
        raise InvalidReference(f"'{where}' is given, but the model has no classes")
    unknown = [name for name in entries if name not in class_names]
    if unknown:
        raise InvalidReference(f"'{where}' names {unknown[0]!r}, which is not a class of the model")
    shares = _numbers(list(entries.values()), len(entries), where)
    _check_shares(shares, where)
    return dict(zip(entries, shares, strict=True))


def _numbers(values: Any, length: int, where: str) -> list[float]:
    if not isinstance(values, list) or len(values) != length:
        got = f"{len(values)} items" if isinstance(values, list) else _type(values)
        raise InvalidReference(f"{where} must be an array of {length} numbers, got {got}")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidReference(f"{where}[{i}] must be a finite number, got {value!r}")
    return [float(v) for v in values]


def _check_shares(shares: list[float], where: str) -> None:
    if any(not 0 <= s <= 1 for s in shares):
        raise InvalidReference(f"{where} must each be between 0 and 1, got {shares}")
    if abs(sum(shares) - 1) > SHARE_TOLERANCE:
        raise InvalidReference(f"{where} must sum to 1, got {sum(shares):.6f}")


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class FeatureBins:
    """``model_server_feature_bin_total`` of one version: every value of every model call, in its bin."""

    def __init__(
        self, model: str, version: str, features: Sequence[FeatureReference], counter: Counter = metrics.FEATURE_BINS
    ) -> None:
        self.features = tuple(features)
        # All 10 children at 0 from the start, so that Prometheus' increase() sees the first counts.
        self._counters = [counter.labels(model, version, f.name, label) for f in self.features for label in BIN_LABELS]
        if not self.features:
            return
        columns = [f.column for f in self.features]
        prefix = columns == list(range(len(columns)))
        self._columns: slice | np.ndarray = slice(0, len(columns)) if prefix else np.array(columns)  # a view if it can
        merged = np.concatenate([f.edges for f in self.features])
        order = np.argsort(merged, kind="stable")
        self._merged = merged[order]
        # table[j, p]: how many of feature j's edges are among the first p merged edges, plus 10 * j.
        owner = np.repeat(np.arange(len(self.features)), N_EDGES)[order]
        table = np.zeros((len(self.features), len(merged) + 1), dtype=np.intp)
        table[owner, np.arange(1, len(merged) + 1)] = 1
        table = np.cumsum(table, axis=1) + N_BINS * np.arange(len(self.features))[:, None]
        self._table = table.ravel()
        self._row_offsets = np.arange(len(self.features)) * (len(merged) + 1)  # feature j's row of the table
        # A nullable column's missing values (NaN) in a bin of their own, "missing", at 0 from the start.
        self._missing = {
            j: counter.labels(model, version, f.name, MISSING_BIN)
            for j, f in enumerate(self.features)
            if f.missing is not None
        }

    def observe(self, rows: np.ndarray) -> None:
        """Count each value of the monitored columns of a ``(n_rows, n_features)`` matrix; NaN (missing) as missing."""
        if not self._counters:
            return
        values = rows[:, self._columns]
        bins = self._table.take(bin_index(self._merged, values) + self._row_offsets)
        missing = np.isnan(values)
        if missing.any():  # a nullable column's missing values: in its "missing" bin, not in a decile
            for j, count in enumerate(missing.sum(axis=0).tolist()):
                if count and j in self._missing:
                    self._missing[j].inc(count)
            bins = bins[~missing]
        else:
            assert np.isfinite(values).all(), "infinite input reached the drift bins: validation must refuse it"
        bins = bins.ravel()
        if len(values) == 1:  # one value per feature: each bin touched is touched once, no bincount needed
            for index in bins.tolist():
                self._counters[index].inc()
            return
        counts = np.bincount(bins, minlength=len(self._counters))
        touched = counts.nonzero()[0]
        for index, count in zip(touched.tolist(), counts[touched].tolist(), strict=True):
            self._counters[index].inc(count)


class CategoryBins:
    """``model_server_feature_bin_total`` of one version's string and boolean columns: a string in its category's bin,
    ``other`` (outside the reference's categories, unseen ones included) or ``missing``; a boolean in ``false``,
    ``true`` or ``missing``."""

    def __init__(
        self,
        model: str,
        version: str,
        columns: Sequence[CategoryReference | BooleanReference],
        counter: Counter = metrics.FEATURE_BINS,
    ) -> None:
        self._columns = []
        for reference in columns:  # every bin at 0 from the start
            bins: dict[Any, Any]
            other = None
            if isinstance(reference, BooleanReference):  # the rows hold Python bools
                bins = {value: counter.labels(model, version, reference.name, label)
                        for value, label in zip((False, True), BOOLEAN_BINS, strict=True)}  # fmt: skip
            else:
                bins = {c: counter.labels(model, version, reference.name, c) for c in reference.categories}
                other = counter.labels(model, version, reference.name, OTHER_BIN)
            missing = None if reference.missing is None else counter.labels(model, version, reference.name, MISSING_BIN)
            self._columns.append((reference.column, bins, other, missing))

    def observe(self, rows: np.ndarray) -> None:
        """Count each value of the monitored string and boolean columns of an object matrix (None: missing)."""
        for position, bins, other, missing in self._columns:
            for value, count in collections.Counter(rows[:, position].tolist()).items():
                counter = missing if value is None else bins.get(value, other)
                if counter is not None:  # a missing value where the column has no missing bin is not counted
                    counter.inc(count)
