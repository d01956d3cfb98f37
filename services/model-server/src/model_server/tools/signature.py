"""Derive a version's input signature (:mod:`..repository.signature`) from its training data and fitted estimator.

For a model fitted on a pandas DataFrame (it has ``feature_names_in_``), each column's:

* ``type`` from the training data's dtype: floats are ``double``, integers ``long``, booleans
  ``boolean``, text (``str``, ``object`` of strings, ``category``) ``string``; ``dtype`` records
  the dtype itself, so that the server builds the same frame;
* ``nullable``: asked of the model itself. A training row with that column missing (NaN) is
  predicted; if the model answers, it handles a missing value there (an imputer, or a model that
  takes NaN), and the column takes ``null``. Training data with missing values in a column
  whose model fails on them is refused: that model could not have been fitted on it as given;
* ``categories`` (string columns): the training data's values, sorted, and ``unknown`` asked of
  the model the same way, with a value no training row has: ``refuse`` if the model fails on it.
  More than ``max_categories`` values with ``refuse`` is refused (raise the limit).

A model fitted on a plain array takes that many non-null doubles, as before signatures.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..repository.signature import MAX_CATEGORIES, Column, ColumnType, Signature

UNSEEN_CATEGORY = "\x00unseen category\x00"  # no training data holds it


class SignatureDerivationError(ValueError):
    """The training data and the estimator do not give a usable signature; the message says why."""


def derive_signature(frame: Any, estimator: Any, max_categories: int = MAX_CATEGORIES) -> Signature:
    """The signature of ``estimator`` (fitted on a DataFrame) from ``frame``, its training sample (a DataFrame)."""
    names = [str(name) for name in estimator.feature_names_in_]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise SignatureDerivationError(f"the training data has no column {missing[0]!r}, which the model takes")
    frame = frame[names]
    probe_row = frame.iloc[[_most_complete_row(frame)]]
    _predict(estimator, probe_row, "a training row")
    columns = []
    for name in names:
        values = frame[name]
        kind = _column_type(name, values)
        has_missing = bool(values.isna().any())
        nullable = _accepts(estimator, probe_row, name, np.nan)
        if has_missing and not nullable:
            raise SignatureDerivationError(
                f"column {name!r} has missing values in the training data, but the model fails on one"
            )
        categories, unknown = None, "accept"
        if kind == "string":
            seen = sorted({str(v) for v in values.dropna().tolist()})
            refuses = not _accepts(estimator, probe_row, name, UNSEEN_CATEGORY)
            unknown = "refuse" if refuses else "accept"
            if len(seen) > max_categories:
                if refuses:
                    raise SignatureDerivationError(
                        f"column {name!r} has {len(seen)} categories, more than --max-categories "
                        f"({max_categories}), and the model fails on an unknown one: raise the limit"
                    )
            else:
                categories = tuple(seen)
        columns.append(
            Column(
                name=name, type=kind, nullable=nullable, categories=categories, unknown=unknown, dtype=str(values.dtype)
            )
        )
    return Signature(inputs=tuple(columns), frame=True)


def input_example(frame: Any, signature: Signature) -> dict[str, Any]:
    """A typical input row as JSON values (the most complete training row): the warm-up row, and documentation."""
    row = frame[list(signature.names)].iloc[_most_complete_row(frame[list(signature.names)])]
    example: dict[str, Any] = {}
    for column in signature.inputs:
        value = row[column.name]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            example[column.name] = None
        elif column.type == "double":
            example[column.name] = float(value)
        elif column.type == "long":
            example[column.name] = int(value)
        elif column.type == "boolean":
            example[column.name] = bool(value)
        else:
            example[column.name] = str(value)
    return example


def _column_type(name: str, values: Any) -> ColumnType:
    kind = values.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "long"
    if kind == "f":
        return "double"
    present = values.dropna().tolist()
    if all(isinstance(v, str) for v in present):
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    odd = next(v for v in present if not isinstance(v, str))
    raise SignatureDerivationError(
        f"column {name!r} ({values.dtype}) mixes strings with {type(odd).__name__} values such as {odd!r}"
    )


def _most_complete_row(frame: Any) -> int:
    return int(np.argmin(frame.isna().sum(axis=1).to_numpy()))


def _accepts(estimator: Any, row: Any, name: str, value: Any) -> bool:
    probe = row.copy()
    if (
        isinstance(value, str)
        and probe[name].dtype.kind not in "OUT"
        and str(probe[name].dtype) not in ("str", "string")
    ):
        probe[name] = probe[name].astype(object)
    probe.loc[probe.index[0], name] = value
    try:
        _predict(estimator, probe, "")
    except Exception:
        return False
    return True


def _predict(estimator: Any, rows: Any, what: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown category's warning is the answer sought, not news
        try:
            return estimator.predict(rows)
        except Exception as exc:
            if what:
                raise SignatureDerivationError(f"the model fails on {what}: {type(exc).__name__}: {exc}") from None
            raise
