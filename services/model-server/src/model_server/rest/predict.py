"""``POST /predict``: the tutorial's API, kept compatible and made strict.

``{"features": [5.1, 3.5, 1.4, 0.2]}`` -> ``{"prediction": [0]}``; several rows as
``{"features": [[...], [...]]}``; ``"return_probabilities": true`` adds ``probabilities``
(one row per input row, columns in the order of ``classes``).

It serves the default model (DEFAULT_MODEL, or the only model in the repository): its newest
loaded version, or the version its traffic split picks (rollout.py); ``X-Model-Version`` says
which version answered.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..errors import unprocessable
from ..state import Unversioned, default_servable, infer, server_state
from ..validation import json_object, matrix_from_features

bp = Blueprint("predict", __name__)

MODEL_VERSION_HEADER = "X-Model-Version"


@bp.post("/predict")
def predict() -> Response:
    body = json_object()
    model = default_servable(Unversioned.ROUTED)
    description = model.description
    if "features" not in body:
        raise unprocessable("missing 'features': send {\"features\": [..." + f"{description.n_features} numbers]}}")
    with_probabilities = body.get("return_probabilities", False)
    if not isinstance(with_probabilities, bool):
        raise unprocessable("'return_probabilities' must be true or false")
    if with_probabilities and not description.has_probabilities:
        raise unprocessable(f"model '{description.name}' does not predict probabilities")

    rows = matrix_from_features(body["features"], description.n_features, server_state().settings.max_batch_rows)
    prediction = infer(model, rows, with_probabilities)
    result: dict[str, object] = {"prediction": prediction.labels.tolist()}
    if prediction.probabilities is not None:
        result["probabilities"] = prediction.probabilities.tolist()
        result["classes"] = list(description.class_names or ())
    response = jsonify(result)
    response.headers[MODEL_VERSION_HEADER] = description.version
    return response
