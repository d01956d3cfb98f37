"""``POST /predict``: the tutorial's API, kept compatible and made strict.

``{"features": [5.1, 3.5, 1.4, 0.2]}`` -> ``{"prediction": [0]}``; several rows as
``{"features": [[...], [...]]}``; ``"return_probabilities": true`` adds ``probabilities``
(one row per input row, columns in the order of ``classes``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..errors import unprocessable
from ..state import infer, server_state
from ..validation import json_object, matrix_from_features

bp = Blueprint("predict", __name__)


@bp.post("/predict")
def predict() -> Response:
    body = json_object()
    state = server_state()
    model = state.predictor.description
    if "features" not in body:
        raise unprocessable("missing 'features': send {\"features\": [..." + f"{model.n_features} numbers]}}")
    with_probabilities = body.get("return_probabilities", False)
    if not isinstance(with_probabilities, bool):
        raise unprocessable("'return_probabilities' must be true or false")
    if with_probabilities and not model.has_probabilities:
        raise unprocessable(f"model '{model.name}' does not predict probabilities")

    rows = matrix_from_features(body["features"], model.n_features, state.settings.max_batch_rows)
    prediction = infer(rows, with_probabilities)
    result: dict[str, object] = {"prediction": prediction.labels.tolist()}
    if prediction.probabilities is not None:
        result["probabilities"] = prediction.probabilities.tolist()
        result["classes"] = list(model.class_names or ())
    return jsonify(result)
