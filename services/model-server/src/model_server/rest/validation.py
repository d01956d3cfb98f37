"""Turning request payloads into the float matrix the model takes, or a precise client error.

Checked here by hand, not by the request models' pydantic, so that a refusal names the row and column as
the client sent them (``features[1][2] must be a number``): as fast as pydantic for one row, not on batches
(measured: the comments on PredictRequest.features in rest/bodies.py and TensorData in rest/v2_schema.py).

Rules shared by ``/predict`` and the V2 ``infer`` endpoint:

* the body is JSON (400 otherwise) holding an object (422 otherwise);
* values are JSON numbers: booleans, strings and nulls are refused (422, naming the position);
* values are finite: NaN and +/-Infinity are refused (422), and so are values past the float32
  range (|x| > 3.4e38), which scikit-learn's tree models cast their input to;
* every row has exactly the model's feature count (422) and there is at least one row (422);
* V2 ``data`` is flat, or nested as a regular array of exactly the tensor's shape (422);
* at most ``max_rows`` rows per request (413).

Feedback (:func:`class_positions`): arrays of at most ``max_rows`` classes (413), each a class
as ``/predict`` returns it or a class's name; booleans, nulls, arrays, objects and unknown
classes are refused (422, naming the position).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import request

from .errors import bad_request, too_large, unprocessable

_NUMBER_TYPES = (int, float)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type says."""
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        raise bad_request("request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers over 4300 digits
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise unprocessable(f"request body must be a JSON object, got {json_type(body)}")
    return body


def matrix_from_features(features: Any, n_features: int, max_rows: int) -> np.ndarray:
    """``[x1, ..., xF]`` (one row) or ``[[...], [...]]`` (rows) -> ``(rows, F)`` float64."""
    if not isinstance(features, list):
        raise unprocessable(f"'features' must be an array, got {json_type(features)}")
    if not features:
        raise unprocessable("'features' is empty; send one row of numbers or an array of rows")
    if isinstance(features[0], list):
        rows = features
        _check_row_count(len(rows), max_rows)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise unprocessable(f"features[{i}] must be an array of numbers, got {json_type(row)}")
            _check_row(row, n_features, f"features[{i}]")
    else:
        rows = [features]
        _check_row(features, n_features, "features")
    return check_finite(_floats(rows, "features"), "features")


def numbers_from_values(values: list[Any], where: str, dtype: np.dtype | None = None) -> np.ndarray:
    """A V2 tensor's flat JSON ``data`` -> 1-D float64, refusing anything but numbers.

    With the tensor's declared integer ``dtype``, values must also be integers in its range.
    """
    for i, value in enumerate(values):
        if type(value) not in _NUMBER_TYPES:
            raise unprocessable(f"{where}[{i}] must be a number, got {json_type(value)}")
    numbers = _floats(values, where)
    if dtype is not None and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        bad = (numbers != np.floor(numbers)) | (numbers < limits.min) | (numbers > limits.max)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise unprocessable(f"{where}[{i}] = {values[i]} is not a {dtype.name} value")
    return numbers


def matrix_from_tensor(values: np.ndarray, shape: list[int], n_features: int, max_rows: int, where: str) -> np.ndarray:
    """A V2 tensor (flat values + shape) -> ``(rows, F)`` float64.

    Shape ``[N, F]`` is N rows; shape ``[F]`` is one row (or, for a one-feature model, N rows).
    """
    expected = math.prod(shape)
    if values.size != expected:
        raise unprocessable(f"{where}: shape {shape} needs {expected} values, got {values.size}")
    if len(shape) == 1:
        shape = [shape[0], 1] if n_features == 1 else [1, shape[0]]
    if len(shape) != 2:
        raise unprocessable(f"{where}: shape must be [rows, {n_features}] or [{n_features}], got {shape}")
    n_rows, width = shape
    if n_rows == 0:
        raise unprocessable(f"{where}: the tensor has no rows")
    _check_row_count(n_rows, max_rows)
    if width != n_features:
        raise unprocessable(f"{where}: expected {n_features} features per row, got {width}")
    return check_finite(values.astype(np.float64, copy=False).reshape(n_rows, width), where)


def class_positions(
    items: Any, where: str, find: Callable[[Any], int | None], max_items: int, known: str
) -> np.ndarray:
    """A JSON array of classes -> their positions among the model's classes (``find``; ``known`` lists them)."""
    if not isinstance(items, list):
        raise unprocessable(f"'{where}' must be an array of classes, got {json_type(items)}")
    if not items:
        raise unprocessable(f"'{where}' is empty; send one class per prediction")
    if len(items) > max_items:
        raise too_large(f"{len(items)} items in '{where}' exceed the limit of {max_items} per request (MAX_BATCH_ROWS)")
    positions = np.empty(len(items), dtype=np.intp)
    for i, item in enumerate(items):
        # Booleans first: JSON's true would otherwise name class 1 (True == 1 in Python).
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            raise unprocessable(f"{where}[{i}] must be a class or a class name, got {json_type(item)}")
        position = find(item)
        if position is None:
            shown = json.dumps(item)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise unprocessable(f"{where}[{i}] = {shown} is not a class of the model; its classes: {known}")
        positions[i] = position
    return positions


def check_finite(matrix: np.ndarray, where: str) -> np.ndarray:
    # Finite in float64 is not enough: trees cast to float32, where 1e39 overflows (a 500 before).
    refused = ~np.isfinite(matrix) | (np.abs(matrix) > FLOAT32_MAX)
    if refused.any():
        row, column = (int(i) for i in np.argwhere(refused)[0])
        raise unprocessable(
            f"{where}: row {row}, feature {column} is {matrix[row, column]}; "
            "values must be finite and within the float32 range (|x| <= 3.4e38)"
        )
    return matrix


def tensor_values(data: Any, shape: list[int], where: str) -> list[Any]:
    """A V2 tensor's JSON ``data`` -> its values, flat and in row-major order.

    The protocol allows ``data`` flat (its length is checked against the shape later) or nested
    as the tensor is. Nested data must be a regular array of exactly the tensor's shape: counting
    the numbers is not enough, since ``[[1, 2, 3], [4]]`` holds the four of shape ``[1, 4]`` but
    not as one row of four.
    """
    if not isinstance(data, list):
        raise unprocessable(f"{where} must be an array, got {json_type(data)}")
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    _collect(data, shape, 0, where, flat)
    return flat


def _collect(data: list[Any], shape: list[int], axis: int, where: str, flat: list[Any]) -> None:
    """Append the values of ``data``, the part of a tensor at dimension ``axis``, refusing irregular nesting."""
    dimensions = f"shape {shape} has {_count(len(shape), 'dimension')}"
    if axis >= len(shape):
        raise unprocessable(f"{where} is an array, but {dimensions}; nest data as the shape, or send it flat")
    if len(data) != shape[axis]:
        raise unprocessable(
            f"{where} has {_count(len(data), 'item')}, but shape {shape} needs {shape[axis]} there; "
            "nested data must be a regular array of the tensor's shape (or send it flat)"
        )
    last = axis == len(shape) - 1
    for i, item in enumerate(data):
        if isinstance(item, list):
            _collect(item, shape, axis + 1, f"{where}[{i}]", flat)
        elif not last:
            raise unprocessable(f"{where}[{i}] must be an array ({dimensions}), got {json_type(item)}")
        else:
            flat.append(item)


def _check_row(row: list[Any], n_features: int, where: str) -> None:
    if len(row) != n_features:
        raise unprocessable(f"{where}: expected {n_features} features, got {len(row)}")
    for j, value in enumerate(row):
        if type(value) not in _NUMBER_TYPES:
            raise unprocessable(f"{where}[{j}] must be a number, got {json_type(value)}")


def _check_row_count(n_rows: int, max_rows: int) -> None:
    if n_rows > max_rows:
        raise too_large(f"{n_rows} rows exceed the limit of {max_rows} per request (MAX_BATCH_ROWS)")


def _floats(values: list[Any], where: str) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        raise unprocessable(f"{where}: a number is too large for a 64-bit float") from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
