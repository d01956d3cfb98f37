"""``POST /invocations``: MLflow's scoring protocol (``mlflow models serve``), for the default model.

A client of an MLflow model server works unchanged: JSON with exactly one of

* ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (pandas' split orient;
  without ``columns``, the values are in the model's column order),
* ``dataframe_records``: ``[{"column": value, ...}, ...]``,
* ``instances`` or ``inputs`` (TF Serving's): records, arrays of values in column order, one
  array per column (``{"column": [...], ...}``), or for a one-column model its values,

and an optional ``params`` (none is taken), or ``text/csv`` with a header row. The answer is
``{"predictions": [...]}``. Like ``/predict`` it serves the default model (its traffic split
applies) and says which version answered in ``X-Model-Version``; every value is checked against
the version's signature, and a refusal is a 422 naming the row and the column (rest/records.py).
The bodies are InvocationsRequest and InvocationsResponse (rest/bodies.py).
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request

from ..repository.signature import Signature
from ..serving.live_models import Route
from .bodies import InvocationsRequest
from .dispatch import infer, inference_endpoint, server_state
from .errors import bad_request, unprocessable
from .predict import MODEL_VERSION_HEADER
from .records import rows_from_arrays, rows_from_columns, rows_from_csv, rows_from_records
from .validation import json_object, json_type

bp = Blueprint("invocations", __name__)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CSV_TYPES = ("text/csv", "application/csv")


@bp.post("/invocations")
@inference_endpoint
def invocations(target: Route) -> Response:
    description = target.servable.description
    max_rows = server_state().settings.max_batch_rows
    if request.mimetype in CSV_TYPES:
        try:
            text = request.get_data(cache=True).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise bad_request("the CSV body is not UTF-8 text") from None
        rows = rows_from_csv(text, description.signature, max_rows)
    else:
        rows = _rows_of(json_object(), description.signature, max_rows)
    prediction = infer(target, rows)
    # An InvocationsResponse (rest/bodies.py), built as a dict like /predict's answer and for the same reason
    # (rest/predict.py): making the model instance costs the same (~2 microseconds an answer, measured); tests
    # check the body against the model (test_invocations.py).
    response = jsonify({"predictions": prediction.labels.tolist()})
    response.headers[MODEL_VERSION_HEADER] = description.version
    return response


def _rows_of(payload: dict[str, Any], signature: Signature, max_rows: int) -> np.ndarray:
    # The fields are SkipValidation (rest/bodies.py): the checks below and rest/records.py word the refusals.
    body = InvocationsRequest.model_validate(payload)
    given = [key for key in FORMATS if key in body.model_fields_set]  # sent, even as null
    unknown = [key for key in payload if key not in InvocationsRequest.model_fields]  # the model ignores them
    if len(given) != 1 or unknown:
        got = f"got {', '.join(map(repr, given + unknown))}" if given or unknown else "got none"
        raise unprocessable(f"send exactly one of {', '.join(FORMATS)} (and optionally params); {got}")
    if body.params is not None and not isinstance(body.params, dict):  # null: none, as MLflow reads it
        raise unprocessable(f"'params' must be an object of inference parameters, got {json_type(body.params)}")
    key = given[0]
    data = getattr(body, key)
    if key == "dataframe_split":
        return _split(data, signature, max_rows)
    if key == "dataframe_records":
        if not isinstance(data, list):
            raise unprocessable(f"'dataframe_records' must be an array of records, got {json_type(data)}")
        return rows_from_records(data, signature, max_rows, key)
    if isinstance(data, dict):
        if not all(isinstance(values, list) for values in data.values()):
            raise unprocessable(f"'{key}' as an object holds one array of values per column")
        return rows_from_columns(data, signature, max_rows, key)
    if not isinstance(data, list):
        raise unprocessable(f"'{key}' must be an array of rows or an object of columns, got {json_type(data)}")
    if data and isinstance(data[0], dict):
        return rows_from_records(data, signature, max_rows, key)
    if data and not isinstance(data[0], list):  # MLflow: a list of values is one column's values, a row each
        if len(signature.inputs) != 1:
            raise unprocessable(
                f"'{key}' holds a list of values, which is one column's; this model takes {len(signature.inputs)} "
                "columns: send rows (arrays or records) or one array per column"
            )
        data = [[value] for value in data]
    return rows_from_arrays(data, signature, max_rows, key)


def _split(data: Any, signature: Signature, max_rows: int) -> np.ndarray:
    where = "dataframe_split"
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise unprocessable(f"'{where}' must be an object with 'data' (an array of rows) and 'columns'")
    columns, rows = data.get("columns"), data["data"]
    if columns is None:
        return rows_from_arrays(rows, signature, max_rows, where)
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise unprocessable(f"'{where}.columns' must be an array of column names")
    repeated = next((name for name, count in collections.Counter(columns).items() if count > 1), None)
    if repeated is not None:
        raise unprocessable(f"'{where}.columns' names column {repeated!r} twice")
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise unprocessable(f"{where}: row {i} must be an array of {len(columns)} values, one per column named")
        records.append(dict(zip(columns, row, strict=True)))
    return rows_from_records(records, signature, max_rows, where)
