"""``POST /predict``: the tutorial's API, kept compatible and made strict.

``{"features": [5.1, 3.5, 1.4, 0.2]}`` -> ``{"prediction": [0]}``; several rows as
``{"features": [[...], [...]]}``; ``"return_probabilities": true`` adds ``probabilities``
(one row per input row, columns in the order of ``classes``). A row is its values in the
model's column order (strings and nulls where its signature takes them) or a record,
``{"island": "Biscoe", ...}``; ``features`` is one row or an array of rows (rest/records.py).

It serves the default model (DEFAULT_MODEL, or the only model in the repository): its newest
loaded version, or the version its traffic split picks (serving/routing.py); ``X-Model-Version`` says
which version answered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify
from pydantic import ValidationError

from ..repository.signature import Signature
from ..serving.live_models import Route
from .bodies import PredictRequest, refused_field
from .dispatch import infer, inference_endpoint, server_state
from .errors import unprocessable
from .records import rows_from_arrays, rows_from_records
from .validation import json_object, json_type, matrix_from_features

bp = Blueprint("predict", __name__)

MODEL_VERSION_HEADER = "X-Model-Version"


@bp.post("/predict")
@inference_endpoint
def predict(target: Route) -> Response:
    description = target.servable.description
    try:
        body = PredictRequest.model_validate(json_object())
    except ValidationError as exc:
        if refused_field(exc) == "features":
            raise unprocessable(
                "missing 'features': send {\"features\": [..." + f"{description.n_features} values]}}"
                f" in the order {', '.join(description.feature_names)}, or a record of column: value"
            ) from None
        raise unprocessable("'return_probabilities' must be true or false") from None
    with_probabilities = body.return_probabilities
    if with_probabilities and not description.has_probabilities:
        raise unprocessable(f"model '{description.name}' does not predict probabilities")

    rows = rows_from_features(body.features, description.signature, server_state().settings.max_batch_rows)
    prediction = infer(target, rows, with_probabilities)
    # A PredictResponse (rest/bodies.py), built as a dict: making the model instance costs ~2 % of a one-row
    # request (measured in place); tests check the body against the model's fields and schema.
    result: dict[str, object] = {"prediction": prediction.labels.tolist()}
    if prediction.probabilities is not None:
        result["probabilities"] = prediction.probabilities.tolist()
        result["classes"] = list(description.class_names or ())
    response = jsonify(result)
    response.headers[MODEL_VERSION_HEADER] = description.version
    return response


def rows_from_features(features: Any, signature: Signature, max_rows: int) -> np.ndarray:
    """``features`` as the model's rows: one row or an array of rows, each positional or a record."""
    if isinstance(features, dict):
        return rows_from_records([features], signature, max_rows, "features")
    if not isinstance(features, list):
        raise unprocessable(f"'features' must be an array or an object, got {json_type(features)}")
    if features and isinstance(features[0], dict):
        return rows_from_records(features, signature, max_rows, "features")
    if signature.matrix:  # the numeric fast path, and its messages
        return matrix_from_features(features, len(signature.inputs), max_rows)
    if not features:
        raise unprocessable("'features' is empty; send one row or an array of rows")
    if isinstance(features[0], list):
        return rows_from_arrays(features, signature, max_rows, "features")
    return rows_from_arrays([features], signature, max_rows, "features")
