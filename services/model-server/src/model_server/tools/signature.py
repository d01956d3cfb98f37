"""Derive a version's input signature (:mod:`..repository.signature`) from its training data and fitted estimator.

For a model fitted on a pandas DataFrame (it has ``feature_names_in_``), each column's:

* ``type`` from the training data's dtype: floats are ``double``, integers ``long``, booleans
  ``boolean``, text (``str``, ``object`` of strings, ``category``) ``string``; ``dtype`` records
  the dtype itself, so that the server builds the same frame;
* ``nullable``: asked of the model itself. A training row with that column missing (NaN) is
  predicted; if the model answers, and training had missing values there or the pipeline's
  steps before its last fill them (an imputer), the column takes ``null`` (a tree takes NaN
  whatever it was trained on: that alone does not make a column nullable). Training data with
  missing values in a column whose model fails on them is refused: that model could not have
  been fitted on it as given;
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
    kinds = {name: _column_type(name, frame[name]) for name in names}
    probe_row = frame.iloc[[_most_complete_row(frame)]]
    _predict(estimator, probe_row, "a training row")
    columns = []
    for name in names:
        values = frame[name]
        kind = kinds[name]
        has_missing = bool(values.isna().any())
        accepts_missing = _accepts(estimator, probe_row, name, np.nan)
        if has_missing and not accepts_missing:
            raise SignatureDerivationError(
                f"column {name!r} has missing values in the training data, but the model fails on one"
            )
        # Nullable where training had missing values, or where the pipeline fills one (an imputer): not merely
        # because the model takes NaN (every scikit-learn tree does, sending it down a default branch).
        nullable = accepts_missing and (has_missing or _fills(estimator, probe_row, name))
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
    if str(values.dtype) == "category":
        raise SignatureDerivationError(
            f"column {name!r} has the pandas category dtype, which is not served yet: fit on its values as strings"
        )
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
    """Whether the model predicts ``row`` with ``value`` in column ``name``, the column typed as the server would
    build it (an integer column with a missing value as float64, a boolean one as object; pandas reads them so)."""
    return _probe(estimator, row, name, value, predict=True)


def _fills(estimator: Any, row: Any, name: str) -> bool:
    """Whether the steps before a Pipeline's last fill a missing value of ``name`` (an imputer): their output
    holds no NaN. A model that merely takes NaN (a tree sends it down a default branch) does not count."""
    steps = getattr(estimator, "steps", None)
    if type(estimator).__name__ != "Pipeline" or not steps or len(steps) < 2:
        return False
    return _probe(estimator[:-1], row, name, np.nan, predict=False)


def _probe(estimator: Any, row: Any, name: str, value: Any, predict: bool) -> bool:
    probe = row.copy()
    kind = probe[name].dtype.kind
    try:
        if value is np.nan and kind in "iu":
            probe[name] = probe[name].astype(np.float64)
        elif (value is np.nan and kind == "b") or (isinstance(value, str) and kind in "biuf"):
            probe[name] = probe[name].astype(object)
        probe.loc[probe.index[0], name] = value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown category's warning is the answer sought, not news
            if predict:
                estimator.predict(probe)
                return True
            output = estimator.transform(probe)
            output = output.toarray() if hasattr(output, "toarray") else np.asarray(output, dtype=np.float64)
            return bool(np.isfinite(output).all())
    except Exception:
        return False


def _predict(estimator: Any, rows: Any, what: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return estimator.predict(rows)
        except Exception as exc:
            raise SignatureDerivationError(f"the model fails on {what}: {type(exc).__name__}: {exc}") from None


def signature_json(signature: Signature) -> dict[str, Any]:
    """The signature as ``metadata.json`` records it: each column's fields that say something."""
    recorded = signature.model_dump(mode="json", exclude_none=True)
    for column in recorded["inputs"]:
        if column["type"] != "string":
            column.pop("unknown")
        if not column["coded"]:
            column.pop("coded")
    return recorded
