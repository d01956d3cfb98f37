"""Rows of a model's columns from JSON, each value checked against the version's signature.

A model takes the columns its signature lists (:mod:`..repository.signature`). Rows come as
positional arrays in signature order (``[5.1, "Biscoe", null]``) or as named records
(``{"island": "Biscoe", ...}``), and each value must fit its column: a JSON number for
``double``, an integer for ``long`` (3.7 is refused, never truncated; 3.0 is 3), ``true`` or
``false`` for ``boolean``, a string for ``string`` (one of the categories the model knows, where
it refuses others), and ``null`` only where the column is nullable. NaN, as Python's JSON writes
a missing value of pandas data (a float gap, in a number, string or boolean column alike), is
a missing value of a nullable column of any type. A record names every column, once, and no
other. Every refusal is a 422 naming the row (from 0) and the column.

The rows are a float64 matrix when the signature is all non-null doubles (the numeric fast
path, as before signatures), and otherwise an object matrix holding ``float``, ``int``,
``bool``, ``str`` or ``None`` (missing) per cell, which :mod:`..serving.model_input` turns into
the DataFrame the model was fitted on.
"""

from __future__ import annotations

import collections
import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..repository.signature import Column, Signature
from .errors import too_large, unprocessable
from .validation import FLOAT32_MAX, json_type

_INT64 = (-(2**63), 2**63 - 1)
# What pandas' read_csv reads as a missing value by default (its na_values), and the numbers it reads.
CSV_MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
     "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d{1,19}")
_SHOWN_CATEGORIES = 10


class CellError(ValueError):
    """A value that does not fit its column; the message says why, without the row or column."""


def rows_from_records(records: Sequence[Any], signature: Signature, max_rows: int, where: str) -> np.ndarray:
    """JSON objects, one per row, keyed by column name -> the model's rows."""
    _check_count(len(records), max_rows, where)
    position = signature.position()  # once: a record names up to every column
    checks = [_checker(column) for column in signature.inputs]
    rows = np.empty((len(records), len(signature.inputs)), dtype=object)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise unprocessable(f"{where}: row {i} must be an object of column: value, got {json_type(record)}")
        unknown = next((name for name in record if name not in position), None)
        if unknown is not None:
            raise unprocessable(
                f"{where}: row {i}, column {_shown(unknown)}: not a column of the model; its columns: "
                f"{', '.join(signature.names)}"
            )
        for j, column in enumerate(signature.inputs):
            if column.name not in record:
                nullable = " (send null for a missing value)" if column.nullable else ""
                raise unprocessable(f"{where}: row {i}, column {column.name!r}: missing{nullable}")
            rows[i, j] = _checked(checks[j], record[column.name], i, column, where)
    return _as_model_rows(rows, signature)


def rows_from_arrays(arrays: Sequence[Any], signature: Signature, max_rows: int, where: str) -> np.ndarray:
    """JSON arrays, one per row, in signature order -> the model's rows."""
    _check_count(len(arrays), max_rows, where)
    width = len(signature.inputs)
    checks = [_checker(column) for column in signature.inputs]
    rows = np.empty((len(arrays), width), dtype=object)
    for i, array in enumerate(arrays):
        if not isinstance(array, list):
            raise unprocessable(f"{where}: row {i} must be an array of {width} values, got {json_type(array)}")
        if len(array) != width:
            raise unprocessable(
                f"{where}: row {i} has {len(array)} values; the model takes {width}: {', '.join(signature.names)}"
            )
        for j, column in enumerate(signature.inputs):
            rows[i, j] = _checked(checks[j], array[j], i, column, where)
    return _as_model_rows(rows, signature)


def rows_from_columns(columns: dict[str, Sequence[Any]], signature: Signature, max_rows: int, where: str) -> np.ndarray:
    """One JSON array of values per column name (all of the same length) -> the model's rows."""
    position = signature.position()
    unknown = next((name for name in columns if name not in position), None)
    if unknown is not None:
        raise unprocessable(
            f"{where}: column {_shown(unknown)} is not a column of the model; its columns: {', '.join(signature.names)}"
        )
    for column in signature.inputs:
        if column.name not in columns:
            raise unprocessable(f"{where}: column {column.name!r} is missing")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise unprocessable(f"{where}: the columns have different lengths ({', '.join(map(str, sorted(lengths)))})")
    n = lengths.pop()
    if n == 0:
        raise unprocessable(f"{where}: the columns have no values")
    _check_count(n, max_rows, where)
    rows = np.empty((n, len(signature.inputs)), dtype=object)
    for j, column in enumerate(signature.inputs):
        check = _checker(column)
        for i, value in enumerate(columns[column.name]):
            rows[i, j] = _checked(check, value, i, column, where)
    return _as_model_rows(rows, signature)


def rows_from_csv(text: str, signature: Signature, max_rows: int, where: str = "CSV") -> np.ndarray:
    """CSV with a header row of column names -> the model's rows.

    Each cell is read as its column's type (a number, an integer, ``true``/``false``, text); an
    empty cell, or one of pandas' missing-value markers (``NA``, ``NULL``, ``nan``, ...), is a
    missing value. Then every value is checked as a JSON one would be.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        lines = [line for line in reader if line]
    except csv.Error as exc:
        raise unprocessable(f"{where}: not readable as CSV: {exc}") from None
    if not header:
        raise unprocessable(f"{where}: no header row; the first line names the columns")
    repeated = next((name for name, count in collections.Counter(header).items() if count > 1), None)
    if repeated is not None:
        raise unprocessable(f"{where}: the header names column {_shown(repeated)} twice")
    by_name = {column.name: column for column in signature.inputs}
    records = []
    for i, line in enumerate(lines):
        if len(line) != len(header):
            raise unprocessable(f"{where}: row {i} has {len(line)} cells, the header has {len(header)}")
        record = {}
        for name, cell in zip(header, line, strict=True):
            column = by_name.get(name)
            record[name] = cell if column is None else _parsed(cell, column, i, where)
        records.append(record)
    return rows_from_records(records, signature, max_rows, where)


def _parsed(cell: str, column: Column, row: int, where: str) -> Any:
    """A CSV cell as the JSON value it stands for in ``column`` (the checks come after)."""
    if cell in CSV_MISSING:
        return None
    if column.type == "string":
        return cell
    if column.type == "boolean":
        lowered = cell.strip().lower()
        return {"true": True, "false": False}.get(lowered, cell)
    text = cell.strip()
    if not _NUMBER.fullmatch(text):
        raise unprocessable(f"{where}: row {row}, column {column.name!r}: expected a number, got {_shown(cell)}")
    if column.type == "long" and _INTEGER.fullmatch(text):
        return int(text)  # at most 19 digits: exact (a longer one is a float, refused as out of range)
    return float(text)


def _checked(check: Callable[[Any], Any], value: Any, row: int, column: Column, where: str) -> Any:
    try:
        return check(value)
    except CellError as exc:
        raise unprocessable(f"{where}: row {row}, column {column.name!r}: {exc}") from None


def _checker(column: Column) -> Callable[[Any], Any]:
    """The check of one column's values: the value as the rows hold it, or CellError."""
    convert = _CONVERSIONS.get(column.type) or _category_check(column)
    nullable, numeric = column.nullable, column.numeric

    def check(value: Any) -> Any:
        if value is None:
            if not nullable:
                raise CellError("null is not allowed: the model cannot take a missing value here")
            return None
        # NaN: how a Python client's JSON (and MLServer's pandas codec) writes a missing value of pandas data, in a
        # string or boolean column too (pandas holds it as a float NaN). Where a number cannot be missing, NaN is
        # refused as a number that is not finite.
        if isinstance(value, float) and math.isnan(value) and (nullable or not numeric):
            if not nullable:
                raise CellError("NaN (a missing value) is not allowed: the model cannot take a missing value here")
            return None
        return convert(value)

    return check


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CellError(f"expected a number, got {json_type(value)}")
    number = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise CellError(f"{value} is not a finite number within the float32 range (|x| <= 3.4e38)")
    return number


def _long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CellError(f"expected an integer, got {json_type(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise CellError(f"{value} is not an integer (the column holds integers; it is not truncated)")
        value = int(value)
    if not _INT64[0] <= value <= _INT64[1]:
        raise CellError(f"{value} is out of the 64-bit integer range")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CellError(f"expected true or false, got {json_type(value)}")
    return value


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {"double": _double, "long": _long, "boolean": _boolean}


def _category_check(column: Column) -> Callable[[Any], str]:
    known = frozenset(column.categories or ())
    refuse_unknown = column.unknown == "refuse"

    def string(value: Any) -> str:
        if not isinstance(value, str):
            raise CellError(f"expected a string, got {json_type(value)}")
        if refuse_unknown and value not in known:
            shown = ", ".join(list(column.categories or ())[:_SHOWN_CATEGORIES])
            more = f", ... ({len(known)} in all)" if len(known) > _SHOWN_CATEGORIES else ""
            raise CellError(f"{_shown(value)} is not a category the model knows ({shown}{more})")
        return value

    return string


def _as_model_rows(rows: np.ndarray, signature: Signature) -> np.ndarray:
    return rows.astype(np.float64) if signature.matrix else rows


def _check_count(n_rows: int, max_rows: int, where: str) -> None:
    if n_rows == 0:
        raise unprocessable(f"{where} is empty; send at least one row")
    if n_rows > max_rows:
        raise too_large(f"{n_rows} rows exceed the limit of {max_rows} per request (MAX_BATCH_ROWS)")


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:39] + "...'"
