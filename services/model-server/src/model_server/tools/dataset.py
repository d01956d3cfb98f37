"""A sample of tabular data for the packager: a CSV file with a header row, a Parquet file, or a 2-D ``.npy`` array.

A model fitted on a pandas DataFrame is packaged from the DataFrame its training data reads as
(:func:`read_frame`: ``pandas.read_csv``, or ``read_parquet``, with pyarrow installed), whatever
its column types. A Parquet file's columns take the dtypes ``read_csv`` gives the same values,
which are the dtypes the server builds its frames in: pandas' nullable ones (``Int64``,
``Float64``, ``boolean``, ``string`` with ``pd.NA``: what ``convert_dtypes`` makes) and narrower
numbers become ``int64`` (``float64`` with a missing value), ``float64``, ``bool`` (``object``
with a missing value) and ``str``, missing values NaN; ``category`` and other dtypes stay as
they are. A model fitted on a plain array is packaged from a numeric matrix (:func:`read_table`):

:func:`read_table` returns the feature matrix (float64, finite values only) and, when ``target``
names a column (a header name for CSV, an integer index for ``.npy``), that column apart. CSV is
read with the csv module (pandas is not a dependency): feature cells are parsed as floats, the
target column is kept as text (labels such as ``setosa`` are common) and matched to the
estimator's classes by the caller. A ``.npy`` file is loaded without pickle.

Non-finite values (NaN, inf) are refused: the reference statistics must never see them, as the
server never does. Every refusal raises DataError with one line naming the file and, for a bad
cell, its line (CSV) or row index (``.npy``) and its column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = (".csv", ".npy")
FRAME_FORMATS = (".csv", ".parquet")


class DataError(Exception):
    """The data file cannot be used; the message is a one-line reason."""


@dataclass(frozen=True)
class Table:
    path: Path
    x: np.ndarray  # (rows, features), float64, finite
    y: np.ndarray | None  # the target column: text for CSV, float64 for .npy; None without a target
    feature_names: tuple[str, ...] | None  # the CSV header without the target; None for .npy


def read_table(path: Path, target: str | None = None) -> Table:
    """The features (and target column, if named) of a ``.csv`` or ``.npy`` file; DataError if unusable."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, target)
    if suffix == ".npy":
        return _read_npy(path, target)
    raise DataError(f"{path}: unsupported format {suffix or '(no suffix)'!r}; expected .csv (with a header) or .npy")


@dataclass(frozen=True)
class Frame:
    path: Path
    x: Any  # a pandas DataFrame: the feature columns as pandas read them
    y: np.ndarray | None  # the target column (its values as read); None without a target


def read_frame(path: Path, target: str | None = None) -> Frame:
    """A ``.csv`` (with a header) or ``.parquet`` file as pandas reads it, the target apart; DataError if unusable."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in FRAME_FORMATS:
        raise DataError(
            f"{path}: a model fitted on a DataFrame is packaged from .csv (with a header) or .parquet, not {suffix!r}"
        )
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow installed ({exc})") from None
    except Exception as exc:  # pandas' parsers raise many kinds
        raise DataError(f"{path} cannot be read: {type(exc).__name__}: {exc}") from None
    frame.columns = [str(c) for c in frame.columns]
    if suffix == ".parquet":
        frame = as_read_from_csv(frame)
    if target is not None and target not in frame.columns:
        raise DataError(f"{path} has no column {target!r} (columns: {', '.join(frame.columns)})")
    y = None if target is None else frame[target].to_numpy()
    x = frame.drop(columns=[target]) if target is not None else frame
    _require_shape(path, len(x), len(x.columns))
    return Frame(path=path, x=x, y=y)


def as_read_from_csv(frame: Any) -> Any:
    """``frame`` with each number, boolean and string column in the dtype ``pandas.read_csv`` reads its values as."""
    import pandas as pd

    converted = {}
    for name in frame.columns:
        values = frame[name]
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            continue
        missing = bool(values.isna().any())
        kind = getattr(dtype, "kind", "O")
        if kind in "iu" and dtype != np.int64:
            if missing:
                converted[name] = values.astype(np.float64)  # pd.NA -> NaN
            elif kind == "u" and len(values) and int(values.max()) > np.iinfo(np.int64).max:
                converted[name] = values.astype(np.uint64)
            else:
                converted[name] = values.astype(np.int64)
        elif kind == "f" and dtype != np.float64:
            converted[name] = values.astype(np.float64)
        elif kind == "b" and dtype != np.bool_:
            converted[name] = (
                pd.Series(values.to_numpy(dtype=object, na_value=np.nan), index=values.index, name=name)
                if missing
                else values.astype(bool)
            )
        elif _is_text(dtype) and dtype != pd.StringDtype(na_value=np.nan):
            converted[name] = values.astype(pd.StringDtype(na_value=np.nan))
    return frame.assign(**converted) if converted else frame


def _is_text(dtype: Any) -> bool:
    import pandas as pd

    if isinstance(dtype, pd.StringDtype):
        return True
    arrow = getattr(dtype, "pyarrow_dtype", None)  # pandas.ArrowDtype
    if arrow is None:
        return False
    import pyarrow as pa

    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow))


def _read_csv(path: Path, target: str | None) -> Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            records = [(reader.line_num, row) for row in reader if row]  # blank lines are skipped
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from None
    if not header:
        raise DataError(f"{path} is empty; expected a header row of column names")
    if "" in header or len(set(header)) != len(header):
        raise DataError(f"{path}: the header must name every column once, got {header}")
    if target is not None and target not in header:
        raise DataError(f"{path} has no column {target!r} (columns: {', '.join(header)})")
    for line, row in records:
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")

    t = header.index(target) if target is not None else None
    features = [j for j in range(len(header)) if j != t]
    _require_shape(path, len(records), len(features))
    cells = [[row[j] for j in features] for _, row in records]
    try:
        x = np.asarray(cells, dtype=np.float64)
    except ValueError as exc:
        bad_cells = ((i, j) for i, row in enumerate(cells) for j, cell in enumerate(row) if not _is_number(cell))
        where = next(bad_cells, None)
        if where is None:
            raise DataError(f"{path}: {exc}") from None
        i, j = where
        raise DataError(
            f"{path}: line {records[i][0]}, column {header[features[j]]!r}: {cells[i][j]!r} is not a number"
        ) from None
    bad = _first_non_finite(x)
    if bad is not None:
        i, j = bad
        cell = cells[i][j].strip()
        raise DataError(f"{path}: line {records[i][0]}, column {header[features[j]]!r}: {cell} is not a finite number")
    y = None if t is None else np.asarray([row[t].strip() for _, row in records])
    return Table(path=path, x=x, y=y, feature_names=tuple(header[j] for j in features))


def _read_npy(path: Path, target: str | None) -> Table:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file: {exc}") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise DataError(f"{path} must hold a 2-D array (rows, columns), got shape {getattr(array, 'shape', None)}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path} holds {array.dtype} values; expected numbers")
    t = None if target is None else _column_index(path, target, array.shape[1])
    features = [j for j in range(array.shape[1]) if j != t]
    _require_shape(path, array.shape[0], len(features))
    x = array[:, features].astype(np.float64)
    bad = _first_non_finite(x)
    if bad is not None:
        i, j = bad
        raise DataError(f"{path}: row index {i}, column index {features[j]}: {x[i, j]} is not a finite number")
    y = None if t is None else array[:, t].astype(np.float64)
    return Table(path=path, x=x, y=y, feature_names=None)


def _column_index(path: Path, target: str, n_columns: int) -> int:
    try:
        index = int(target)
    except ValueError:
        raise DataError(f"{path}: the target column of a .npy file is a column index, got {target!r}") from None
    if not -n_columns <= index < n_columns:
        raise DataError(f"{path}: target column index {index} is out of range ({n_columns} columns)")
    return index % n_columns


def _require_shape(path: Path, rows: int, features: int) -> None:
    if rows == 0:
        raise DataError(f"{path} has no data rows")
    if features == 0:
        raise DataError(f"{path} has no feature columns")


def _first_non_finite(x: np.ndarray) -> tuple[int, int] | None:
    bad = np.argwhere(~np.isfinite(x))
    return (int(bad[0][0]), int(bad[0][1])) if len(bad) else None


def _is_number(cell: str) -> bool:
    try:
        np.float64(cell)
    except ValueError:
        return False
    return True
