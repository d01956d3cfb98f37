"""Feedback: the true classes of earlier predictions, counted for live accuracy.

``POST /v2/models/{name}/versions/{version}/feedback``, ``POST /v2/models/{name}/feedback`` and
``POST /feedback`` (the default model, as ``/predict``) take
``{"prediction": [2, 0], "truth": ["virginica", "versicolor"]}``: what the model predicted and
what turned out to be true, pair by pair. Each item is a class as ``/predict`` returns it (``2``)
or that class's name (``"virginica"``). Every pair is counted in
``model_server_feedback_total{model,version,predicted,truth}`` (class names as labels, as
``model_server_predictions_total`` has them); Prometheus turns the counts into live accuracy
(prometheus/rules/quality.yml). Nothing else is kept: no request ids, no rows.

Unversioned URLs attribute the feedback to the model's primary version: the newest loaded one, or
during a rollout the one that takes the largest share of the traffic (rollout.py). A client that
knows which version predicted (the ``X-Model-Version`` header of ``/predict``, ``model_version``
of a V2 response) should send to the versioned URL, so that feedback on predictions made before a
rollout counts for the version that made them.

Answer: ``{"model_name", "model_version", "accepted": <pairs counted>}``; a request is counted
entirely or not at all.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ..errors import unprocessable
from ..registry import Servable
from ..state import Unversioned, default_servable, servable, server_state
from ..validation import class_positions, json_object

bp = Blueprint("feedback", __name__)

KNOWN_CLASSES_SHOWN = 10  # an unknown class's error lists this many of the model's classes


@bp.post("/feedback")
def default_feedback() -> Response:
    return _feedback(default_servable(Unversioned.PRIMARY))


@bp.post("/v2/models/<name>/feedback")
@bp.post("/v2/models/<name>/versions/<version>/feedback")
def model_feedback(name: str, version: str | None = None) -> Response:
    return _feedback(servable(name, version, Unversioned.PRIMARY))


def _feedback(target: Servable) -> Response:
    model, predictor = target.description, target.predictor
    body = json_object()
    if model.classes is None:
        raise unprocessable(
            f"model '{model.name}' version {model.version} has no classes: feedback compares predicted and true "
            "classes, which a regressor does not have"
        )
    for key in ("prediction", "truth"):
        if key not in body:
            raise unprocessable(f"missing '{key}': send " + '{"prediction": [classes...], "truth": [classes...]}')
    max_items = server_state().settings.max_batch_rows
    known = _known_classes(model.classes, model.class_names or ())
    predicted = class_positions(body["prediction"], "prediction", predictor.class_index, max_items, known)
    truth = class_positions(body["truth"], "truth", predictor.class_index, max_items, known)
    if len(predicted) != len(truth):
        shorter, n = ("truth", len(truth)) if len(truth) < len(predicted) else ("prediction", len(predicted))
        raise unprocessable(
            f"{shorter}[{n}] is missing: 'prediction' has {len(predicted)} items and 'truth' {len(truth)}; "
            "send one true class per predicted one"
        )
    predictor.count_feedback(predicted, truth)
    return jsonify(model_name=model.name, model_version=model.version, accepted=len(predicted))


def _known_classes(classes: tuple[Any, ...], names: tuple[str, ...]) -> str:
    shown = [f"{cls!r} ({name})" if str(cls) != name else repr(cls) for cls, name in zip(classes, names, strict=True)]
    more = len(classes) - KNOWN_CLASSES_SHOWN
    return ", ".join(shown[:KNOWN_CLASSES_SHOWN]) + (f" and {more} more" if more > 0 else "")


# The OpenAPI description of these routes (rest/openapi.py), kept beside the code that validates them.
_CLASS = {
    "type": ["number", "string"],
    "description": 'A class as /predict returns it (e.g. 2) or its name (e.g. "virginica")',
}
OPENAPI_REQUEST = {
    "type": "object",
    "required": ["prediction", "truth"],
    "properties": {
        "prediction": {
            "type": "array",
            "items": _CLASS,
            "minItems": 1,
            "description": "The predicted classes, at most MAX_BATCH_ROWS",
        },
        "truth": {
            "type": "array",
            "items": _CLASS,
            "minItems": 1,
            "description": "The true class of each prediction, in the same order",
        },
    },
    "example": {"prediction": [2, "versicolor"], "truth": ["virginica", 2]},
}
OPENAPI_RESPONSE = {
    "type": "object",
    "required": ["model_name", "model_version", "accepted"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string", "description": "The version the feedback was counted for"},
        "accepted": {"type": "integer", "description": "Pairs counted"},
    },
}
OPENAPI_DESCRIPTION = (
    "Counts each (prediction, truth) pair in model_server_feedback_total, for live accuracy. Items are classes as "
    "/predict returns them or class names; both arrays have the same length. Unversioned URLs attribute the "
    "feedback to the primary version (the newest loaded, or during a rollout the one with the largest traffic "
    "share): send to the versioned URL (the X-Model-Version that answered) when the predictions may come from "
    "another one."
)
