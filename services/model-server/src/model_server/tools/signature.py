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
* ``categories`` (string columns): the categories the fitted model knows, sorted: those of the
  encoder the column's values reach unchanged (a OneHotEncoder's or OrdinalEncoder's
  ``categories_``, found through Pipelines, ColumnTransformers, FeatureUnions and imputers: the
  model accepts a category its encoder was fitted on even where the packaged sample lacks it),
  else the training data's values; and ``unknown`` asked of the model the same way, with a value
  no training row has: ``refuse`` if the model fails on it. More than ``max_categories`` (at
  most MAX_CATEGORIES) categories with ``refuse`` is refused (raise the limit). (The drift
  reference is the sample's own distribution: :mod:`..monitoring.reference`.)

A model fitted on a plain array takes that many non-null doubles, as before signatures.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
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
    encoded = encoder_categories(estimator, names)
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
            known = encoded.get(name)
            seen = sorted(known if known is not None else {str(v) for v in values.dropna().tolist()})
            refuses = not _accepts(estimator, probe_row, name, UNSEEN_CATEGORY)
            unknown = "refuse" if refuses else "accept"
            if len(seen) > min(max_categories, MAX_CATEGORIES):  # a signature lists at most MAX_CATEGORIES
                if refuses:
                    limit = (
                        f"--max-categories ({max_categories}), and the model fails on an unknown one: raise the limit"
                        if max_categories < MAX_CATEGORIES
                        else f"the {MAX_CATEGORIES} a signature lists, and the model fails on an unknown one"
                    )
                    raise SignatureDerivationError(f"column {name!r} has {len(seen)} categories, more than {limit}")
            else:
                categories = tuple(seen)
        columns.append(
            Column(
                name=name, type=kind, nullable=nullable, categories=categories, unknown=unknown, dtype=str(values.dtype)
            )
        )
    return Signature(inputs=tuple(columns), frame=True)


def encoder_categories(estimator: Any, names: Sequence[str]) -> dict[str, set[str]]:
    """The categories of each input column whose values reach a fitted encoder unchanged, by column name.

    ``estimator`` takes the columns ``names`` (in this order). Followed: a Pipeline's steps as long as they pass
    the values on unchanged (an imputer, ``passthrough``), a ColumnTransformer's transformers (each with its
    columns), a FeatureUnion's (each with all of them); an encoder (anything with ``categories_``, one list per
    input column: OneHotEncoder, OrdinalEncoder) gives its categories. A column that reaches more than one
    encoder has the categories every one of them knows. Missing values (NaN) the encoder took as a category
    are not categories; neither are the categories of a column whose values are not strings.
    """
    found: dict[str, list[set[str]]] = {}
    _collect(estimator, list(names), found)
    return {name: set.intersection(*lists) for name, lists in found.items()}


def _collect(estimator: Any, names: list[str], found: dict[str, list[set[str]]]) -> None:
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and [str(f) for f in fitted] != names:
        return  # fitted on other columns than these: what it knows is not theirs
    kind = type(estimator).__name__
    if kind == "Pipeline":
        for _, step in getattr(estimator, "steps", ()):
            if step is None or step == "passthrough":
                continue
            _collect(step, names, found)
            passed = _passed_on(step, names)
            if passed is None:
                return
            names = passed
    elif kind == "ColumnTransformer":
        for transformer_name, transformer, columns in getattr(estimator, "transformers_", ()):
            if transformer == "drop" or transformer == "passthrough":
                continue
            selected = _selected(estimator, transformer_name, columns, names)
            if selected is not None:
                _collect(transformer, selected, found)
    elif kind == "FeatureUnion":
        for _, transformer in getattr(estimator, "transformer_list", ()):
            if transformer not in ("drop", "passthrough", None):
                _collect(transformer, names, found)
    else:
        categories = getattr(estimator, "categories_", None)
        if isinstance(categories, list) and len(categories) == len(names):
            for name, values in zip(names, categories, strict=True):
                listed = list(values)
                present = [v for v in listed if not (v is None or (isinstance(v, float) and np.isnan(v)))]
                if all(isinstance(v, str) for v in present):
                    found.setdefault(name, []).append(set(present))


def _passed_on(step: Any, names: list[str]) -> list[str] | None:
    """The names of the columns ``step`` (a Pipeline step) passes on with their values unchanged, in its output's
    order; None after a step that changes them (or whose output cannot be told)."""
    if type(step).__name__ != "SimpleImputer":  # fills missing values; passes the others on as they are
        return None
    try:
        out = [str(n) for n in step.get_feature_names_out(names)]  # without the columns it drops, indicators after
    except Exception:
        return None
    return out


def _selected(transformer: Any, name: str, columns: Any, names: list[str]) -> list[str] | None:
    """The input columns a fitted ColumnTransformer hands its transformer ``name`` (``columns`` as given)."""
    indices = getattr(transformer, "_transformer_to_input_indices", {}).get(name)  # resolved at fit (sklearn)
    if indices is not None:
        return [names[i] for i in indices] if all(0 <= i < len(names) for i in indices) else None
    if isinstance(columns, str):
        columns = [columns]
    if isinstance(columns, slice):
        return names[columns] if all(isinstance(b, int | None) for b in (columns.start, columns.stop)) else None
    listed = list(columns) if isinstance(columns, list | tuple | np.ndarray) else None
    if listed is None:
        return None  # a callable or a selector, resolved only at fit
    if all(isinstance(c, str) for c in listed):
        return [str(c) for c in listed] if all(c in names for c in listed) else None
    if all(isinstance(c, bool | np.bool_) for c in listed) and len(listed) == len(names):
        return [n for n, keep in zip(names, listed, strict=True) if keep]
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool | np.bool_) for c in listed):
        return [names[int(c)] for c in listed] if all(-len(names) <= c < len(names) for c in listed) else None
    return None


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
