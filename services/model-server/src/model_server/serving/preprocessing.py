"""A Pipeline's fitted preprocessing compiled to NumPy, column by column, checked against scikit-learn at load.

scikit-learn spends milliseconds on each ``transform`` call of a ColumnTransformer, whatever
the row count: input checks in every step, pandas column selection, and the DataFrame built for
it. The work itself is a few array operations per column. This module reads the fitted state
of the steps it knows and repeats their arithmetic on the rows as they were validated
(:mod:`..rest.records`: a matrix in the signature's column order, ``None`` for a missing value),
without pandas:

* ``ColumnTransformer`` (columns named or by position; ``"drop"`` and ``"passthrough"``), or the
  steps below applied to every column;
* number columns (``double``, ``long``): ``SimpleImputer`` (missing values NaN, no indicator),
  ``StandardScaler``;
* string columns: ``SimpleImputer`` (``most_frequent`` or ``constant``), then ``OneHotEncoder``
  (no infrequent categories; ``drop`` and every ``handle_unknown``).

It is used only after it reproduced scikit-learn bit for bit (:func:`compile_preprocessing`) on
validation rows made from the signature and the fitted steps: every category, a missing value in
each nullable column, the imputers' statistics, each scaler's mean and random numbers around it.
Anything else (another step, an output scikit-learn may give as integers, a mismatch) leaves the
preprocessing to scikit-learn, with the reason published in the model metadata.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..repository.signature import Signature
from .model_input import ModelInput

VALIDATION_ROWS = 512


class Unsupported(Exception):
    """A step or column this module does not compile: scikit-learn runs the preprocessing."""


class CompiledPreprocessing:
    """The preprocessing of validated rows: each transformer's block of columns, side by side, as float64."""

    def __init__(self, blocks: list[tuple[list[int], Block]]) -> None:
        self._blocks = blocks
        # Each one-hot encoded input column: the strings it knows and whether it accepts others (validation_rows).
        self.categories = {
            position: (known, block.accepts_unknown)
            for positions, block in blocks
            if isinstance(block, _CategoryBlock)
            for position, known in zip(positions, block.known, strict=True)
        }

    def transform(self, rows: np.ndarray) -> np.ndarray:
        # A scaled number may overflow (a huge value over a small scale): inf, as scikit-learn gives, without a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            parts = [block(rows[:, positions]) for positions, block in self._blocks]
        return np.hstack(parts) if len(parts) > 1 else parts[0]


def compile_preprocessing(preprocessing: Any, signature: Signature) -> tuple[CompiledPreprocessing | None, str]:
    """``preprocessing`` (a Pipeline's steps before its model) compiled and checked, or None and why not."""
    try:
        compiled = CompiledPreprocessing(_blocks(preprocessing, signature))
    except Unsupported as exc:
        return None, str(exc)
    except Exception as exc:  # a fitted step not as this module reads it: not usable, not fatal
        return None, f"{type(exc).__name__}: {exc}"
    mismatch = _compare(preprocessing, compiled, signature)
    if mismatch:
        return None, mismatch
    return compiled, f"equal to scikit-learn's on {VALIDATION_ROWS} validation rows"


def _blocks(preprocessing: Any, signature: Signature) -> list[tuple[list[int], Block]]:
    steps = [step for _, step in getattr(preprocessing, "steps", [("", preprocessing)]) if not _identity(step)]
    all_columns = list(range(len(signature.inputs)))
    if len(steps) == 1 and type(steps[0]).__name__ == "ColumnTransformer":
        blocks = _column_transformer(steps[0], signature)
    else:
        blocks = [(all_columns, _block(steps, all_columns, signature))]
    if not any(block.floating for _, block in blocks):
        # scikit-learn would then give the forest int64 for some rows, which float32 rounds once; float64 first
        # rounds twice, which differs past 2**53 (and the float64 comparison below cannot see it).
        raise Unsupported("its output may be integers (no float column or step), not compiled")
    return blocks


def _column_transformer(transformer: Any, signature: Signature) -> list[tuple[list[int], Block]]:
    _fitted_on(transformer, len(signature.inputs))
    if transformer.transformer_weights:
        raise Unsupported("a ColumnTransformer with transformer_weights is not compiled")
    position = signature.position()
    blocks = []
    for name, step, columns in transformer.transformers_:
        positions = _positions(columns, position, len(signature.inputs), name)
        if step == "drop" or not positions:
            continue
        steps = [] if step == "passthrough" else [s for _, s in getattr(step, "steps", [("", step)])]
        blocks.append((positions, _block([s for s in steps if not _identity(s)], positions, signature)))
    if not blocks:
        raise Unsupported("the ColumnTransformer outputs no column")
    return blocks


def _identity(step: Any) -> bool:
    """A step that passes its columns on as they are (a fitted ColumnTransformer's "passthrough" is such a
    FunctionTransformer)."""
    if isinstance(step, str) or step is None:
        return step in (None, "passthrough")
    return type(step).__name__ == "FunctionTransformer" and step.func is None


def _positions(columns: Any, position: dict[str, int], n: int, name: str) -> list[int]:
    selected = [columns] if isinstance(columns, str | int) else columns
    if not isinstance(selected, list | tuple | np.ndarray):
        raise Unsupported(f"the ColumnTransformer's {name!r} selects its columns by {type(columns).__name__}")
    out = []
    for column in selected:
        if isinstance(column, str) and column in position:
            out.append(position[column])
        elif isinstance(column, int | np.integer) and not isinstance(column, bool) and 0 <= column < n:
            out.append(int(column))
        else:
            raise Unsupported(f"the ColumnTransformer's {name!r} selects column {column!r}")
    return out


def _block(steps: list[Any], positions: list[int], signature: Signature) -> Block:
    types = {signature.inputs[j].type for j in positions}
    if types <= {"double", "long"}:
        # scikit-learn keeps integers as integers through these steps unless a double or a float step is there.
        floating = "double" in types or any(_makes_floats(step) for step in steps)
        return _NumberBlock([_number_step(step, len(positions)) for step in steps], floating)
    if types == {"string"} and steps and type(steps[-1]).__name__ == "OneHotEncoder":
        fills = [_string_imputer(step, len(positions)) for step in steps[:-1]]
        return _CategoryBlock(fills, _OneHot(steps[-1], len(positions)))
    kinds = " and ".join(sorted(types))
    chain = ", ".join(type(step).__name__ for step in steps) or "passthrough"
    raise Unsupported(f"{chain} on {kinds} columns is not compiled")


def _fitted_on(step: Any, n: int) -> None:
    if getattr(step, "n_features_in_", None) != n:
        raise Unsupported(
            f"{type(step).__name__} was fitted on {getattr(step, 'n_features_in_', '?')} columns, not {n}"
        )


def _number_step(step: Any, n: int) -> Callable[[np.ndarray], np.ndarray]:
    kind = type(step).__name__
    _fitted_on(step, n)
    if kind == "SimpleImputer":
        statistics = np.asarray(step.statistics_, dtype=np.float64)
        if not _is_nan(step.missing_values) or step.add_indicator or not np.isfinite(statistics).all():
            raise Unsupported("a SimpleImputer with an indicator, a missing marker other than NaN or an empty column")
        return lambda x: np.where(np.isnan(x), statistics, x)
    if kind == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None
        return lambda x: _scaled(x, mean, scale)
    raise Unsupported(f"{kind} on number columns is not compiled")


def _scaled(x: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    # StandardScaler.transform's own operations, in its order: subtract the mean, then divide by the scale.
    if mean is not None:
        x = x - mean
    if scale is not None:
        x = x / scale
    return x


def _makes_floats(step: Any) -> bool:
    return type(step).__name__ == "StandardScaler" or getattr(step, "strategy", None) in ("mean", "median")


class _NumberBlock:
    """Number columns as float64 (None -> NaN, as pandas reads an empty cell), then each step."""

    def __init__(self, steps: list[Callable[[np.ndarray], np.ndarray]], floating: bool) -> None:
        self._steps = steps
        self.floating = floating  # scikit-learn's output is float64 whatever the rows (else int64 for some)

    def __call__(self, columns: np.ndarray) -> np.ndarray:
        x = columns.astype(np.float64)
        for step in self._steps:
            x = step(x)
        return x


def _string_imputer(step: Any, n: int) -> list[Any]:
    _fitted_on(step, n)
    ok = type(step).__name__ == "SimpleImputer" and step.strategy in ("most_frequent", "constant")
    if not ok or not _is_nan(step.missing_values) or step.add_indicator:
        raise Unsupported(
            f"{type(step).__name__} before a OneHotEncoder is not compiled (only SimpleImputer of strings)"
        )
    fills = list(step.statistics_)
    if not all(isinstance(value, str) for value in fills):
        raise Unsupported("a SimpleImputer of strings whose fill values are not all strings")
    return fills


class _OneHot:
    """A fitted OneHotEncoder's mapping: per column, a category -> its output column (None: all zeros)."""

    def __init__(self, encoder: Any, n: int) -> None:
        _fitted_on(encoder, n)
        if getattr(encoder, "_infrequent_enabled", False):
            raise Unsupported("a OneHotEncoder with infrequent categories is not compiled")
        self.refuse_unknown = encoder.handle_unknown == "error"
        drop = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * n
        self.columns: list[dict[Any, int | None]] = []
        self.missing: list[int | bool | None] = []  # the missing value's output column; False: unknown
        width = 0
        for categories, dropped in zip(encoder.categories_, drop, strict=True):
            if categories.dtype != object or not all(isinstance(c, str) or _is_nan(c) for c in categories):
                raise Unsupported("a OneHotEncoder of categories that are not strings is not compiled")
            mapping: dict[Any, int | None] = {}
            missing: int | bool | None = False
            for i, category in enumerate(categories):
                out = None if dropped is not None and i == dropped else width  # a dropped category: all zeros
                width += out is not None
                if _is_nan(category):
                    missing = out
                else:
                    mapping[category] = out
            self.columns.append(mapping)
            self.missing.append(missing)
        self.width = width
        self.dtype = encoder.dtype


class _CategoryBlock:
    """String columns, their missing values filled, one-hot encoded: a Block that knows its columns' categories."""

    def __init__(self, fills: list[list[Any]], encoder: _OneHot) -> None:
        self._fills, self._encoder = fills, encoder
        self.floating = np.issubdtype(encoder.dtype, np.floating)
        # Per column: the categories it knows (not its fill values: a missing value), and whether it accepts others.
        self.known = [sorted(mapping) for mapping in encoder.columns]
        self.accepts_unknown = not encoder.refuse_unknown

    def __call__(self, columns: np.ndarray) -> np.ndarray:
        encoder = self._encoder
        out = np.zeros((len(columns), encoder.width), dtype=np.float64)
        for j, (mapping, missing) in enumerate(zip(encoder.columns, encoder.missing, strict=True)):
            for i, value in enumerate(columns[:, j]):
                if _missing(value):
                    value = next((fill[j] for fill in self._fills), None)
                column = missing if value is None else mapping.get(value, False)
                if column is False:  # unknown
                    if encoder.refuse_unknown:
                        raise ValueError(f"Found unknown categories [{value!r}] in column {j} during transform")
                elif column is not None:
                    out[i, column] = 1.0
        return out


Block = _NumberBlock | _CategoryBlock  # the rows' columns of one transformer -> its output columns


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _compare(preprocessing: Any, compiled: CompiledPreprocessing, signature: Signature) -> str:
    try:
        rows = validation_rows(preprocessing, compiled, signature)
        # The validation rows' unknown categories, which a OneHotEncoder with a dropped category warns of.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            expected = preprocessing.transform(ModelInput(signature)(rows))
        expected = np.asarray(expected.toarray() if hasattr(expected, "toarray") else expected, dtype=np.float64)
        actual = compiled.transform(rows)
    except Exception as exc:  # scikit-learn or the compiled steps refuse a validation row: not usable, not fatal
        return f"its validation rows failed: {type(exc).__name__}: {exc}"
    if actual.shape != expected.shape:
        return f"compiled preprocessing gives shape {actual.shape}, scikit-learn {expected.shape}"
    if not np.array_equal(actual, expected, equal_nan=True):
        return f"compiled preprocessing differs from scikit-learn's in {int(np.sum(actual != expected))} values"
    return ""


def validation_rows(
    preprocessing: Any, compiled: CompiledPreprocessing, signature: Signature, n: int = VALIDATION_ROWS, seed: int = 0
) -> np.ndarray:
    """Rows that probe every fitted value: categories, missing values, statistics, means and numbers around them."""
    rng = np.random.default_rng(seed)
    centres = _fitted_numbers(preprocessing)
    rows = np.empty((n, len(signature.inputs)), dtype=object)
    for j, column in enumerate(signature.inputs):
        if column.type == "string":
            known, accepts_unknown = compiled.categories.get(j, ([], True))
            values: list[Any] = sorted({*(column.categories or ()), *known}) or ["a", "b"]
            if column.unknown != "refuse" and accepts_unknown:
                values.append("not-a-category")  # a category the server lets through, if the encoder takes it
        elif column.type in ("double", "long"):
            with np.errstate(over="ignore"):
                spread = rng.normal(0, 1, n) * np.max(np.abs(centres))
            # Values the server accepts (rest/validation.py): doubles within float32's range, longs within int64
            # (2**63 - 1024: the last double below 2**63).
            bound = float(np.finfo(np.float32).max) if column.type == "double" else 2.0**63 - 1024
            numbers = np.clip(np.concatenate([centres, rng.normal(0, 1, n), spread]), -bound, bound)
            values = [float(v) for v in numbers] if column.type == "double" else [int(v) for v in numbers]
        else:
            values = [False, True]
        rows[:, j] = [values[k] for k in rng.integers(0, len(values), n)]
        if column.nullable:
            rows[j % n :: 7, j] = None
    return rows


def _fitted_numbers(preprocessing: Any) -> np.ndarray:
    """Every fitted number of the steps (statistics, means, scales) and 0: the values worth testing around."""
    found = [0.0, 1.0, -1.0]
    stack = [preprocessing]
    while stack:
        step = stack.pop()
        stack.extend(s for _, s in getattr(step, "steps", []))
        stack.extend(s for _, s, _ in getattr(step, "transformers_", []))
        for attribute in ("statistics_", "mean_", "scale_"):
            values = getattr(step, attribute, None)
            if values is not None:
                array = np.asarray(values)
                if array.dtype.kind in "if":
                    found.extend(float(v) for v in array.ravel() if np.isfinite(v))
    return np.asarray(found, dtype=np.float64)
