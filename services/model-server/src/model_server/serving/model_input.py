"""What a model is called with: the validated rows as they are, or the DataFrame it was fitted on.

Rows reach a version checked against its signature (rest/records.py): a float64 matrix when
every column is a non-null double, otherwise an object matrix of ``float``, ``int``, ``bool``,
``str`` and ``None`` (missing). A model fitted on a pandas DataFrame (``signature.frame``) is
given one, built as pandas reads the training CSV: each column in the dtype training had
(``float64``; ``int64``, or ``float64`` when a value is missing, as pandas reads an integer
column with an empty cell; ``bool``, or ``object`` with a missing value; strings in the recorded
string dtype), and NaN for every missing value. So a fitted imputer and encoder see at serving
what they saw in training. pandas is imported only when such a model loads. A Pipeline whose
preprocessing is compiled (:mod:`.preprocessing`) takes the rows as they are, with no DataFrame.

A gradient-boosted model takes a float matrix: a ``coded`` string column as its category's code
(its position in the column's categories), NaN for a missing value or an unknown category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..repository.signature import Column, Signature


class ModelInput:
    """The rows of one version's requests -> its model's input, and the numeric view its metrics count."""

    def __init__(self, signature: Signature, frame: bool | None = None, as_validated: bool = False) -> None:
        """``frame``: whether the model is given a DataFrame (default: the signature's ``frame``); ``as_validated``:
        the model takes the rows as they are (a compiled preprocessing: :mod:`.preprocessing`)."""
        self.signature = signature
        self.as_validated = as_validated
        self.frame = (signature.frame if frame is None else frame) and not as_validated
        self.numeric_columns = tuple(c.name for c in signature.inputs if c.numeric)
        self._numeric_positions = [j for j, c in enumerate(signature.inputs) if c.numeric]
        self._codes = [(j, {v: float(i) for i, v in enumerate(c.categories or ())}) for j, c in
                       enumerate(signature.inputs) if c.coded]  # fmt: skip
        if self.frame:
            import pandas  # noqa: F401 - imported here, in the loader's thread, not on a first request

    def __call__(self, rows: np.ndarray) -> Any:
        if self.as_validated:
            return rows
        if not self.frame:  # numbers (and codes): an object matrix as floats, NaN for missing
            if rows.dtype != object:
                return rows
            if self._codes:
                rows = rows.copy()
                for j, codes in self._codes:
                    rows[:, j] = [codes.get(value, np.nan) for value in rows[:, j]]
            return rows.astype(np.float64)
        import pandas as pd

        names = self.signature.names
        if rows.dtype != object:
            return pd.DataFrame(rows, columns=list(names), copy=False)
        return pd.DataFrame({c.name: _column(c, rows[:, j]) for j, c in enumerate(self.signature.inputs)}, copy=False)

    def numeric(self, rows: np.ndarray) -> np.ndarray:
        """The numeric columns as a float64 matrix, NaN where a value is missing (the metrics' view)."""
        if rows.dtype != object:
            return rows
        return rows[:, self._numeric_positions].astype(np.float64)

    def example(self, metadata: Mapping[str, Any]) -> np.ndarray:
        """One typical row, for the warm-up: the metadata's ``input_example`` (or feature means), else a made-up one."""
        if self.signature.matrix:
            means = metadata.get("feature_means")
            n = len(self.signature.inputs)
            ok = isinstance(means, list) and len(means) == n and all(isinstance(v, int | float) for v in means)
            return np.asarray(means if ok else [0.0] * n, dtype=np.float64).reshape(1, -1)
        recorded = metadata.get("input_example")
        example = recorded if isinstance(recorded, dict) else {}
        row = np.empty((1, len(self.signature.inputs)), dtype=object)
        for j, column in enumerate(self.signature.inputs):
            row[0, j] = _example_value(column, example.get(column.name))
        return row


def _column(column: Column, values: np.ndarray) -> Any:
    import pandas as pd

    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    if column.type == "double":
        return values.astype(np.float64)
    if column.type == "long":
        return values.astype(np.float64 if missing.any() else np.int64)
    if column.type == "boolean":
        if missing.any():
            filled = values.copy()
            filled[missing] = np.nan
            return filled
        return values.astype(bool)
    filled = values.copy()
    filled[missing] = np.nan
    return filled if column.dtype in (None, "object") else pd.array(filled, dtype=column.dtype)


def _example_value(column: Column, value: Any) -> Any:
    if column.type == "double" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if column.type == "long" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if column.type == "boolean" and isinstance(value, bool):
        return value
    if column.type == "string" and isinstance(value, str):
        return value
    if column.nullable:
        return None
    defaults = {"double": 0.0, "long": 0, "boolean": False}
    return defaults.get(column.type, (column.categories or ("",))[0])
