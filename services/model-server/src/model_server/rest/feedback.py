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
during a rollout the one that takes the largest share of the traffic (serving/routing.py). A client that
knows which version predicted (the ``X-Model-Version`` header of ``/predict``, ``model_version``
of a V2 response) should send to the versioned URL, so that feedback on predictions made before a
rollout counts for the version that made them.

Answer: ``{"model_name", "model_version", "accepted": <pairs counted>}``; a request is counted
entirely or not at all.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import ValidationError

from ..serving.live_models import Servable
from ..serving.routing import Unversioned
from .bodies import FeedbackRequest, FeedbackResponse, refused_field
from .dispatch import default_route, route, server_state
from .errors import unprocessable
from .validation import class_positions, json_object

bp = Blueprint("feedback", __name__)

KNOWN_CLASSES_SHOWN = 10  # an unknown class's error lists this many of the model's classes


@bp.post("/feedback")
def default_feedback() -> Response:
    return _feedback(default_route(Unversioned.PRIMARY).servable)


@bp.post("/v2/models/<name>/feedback")
@bp.post("/v2/models/<name>/versions/<version>/feedback")
def model_feedback(name: str, version: str | None = None) -> Response:
    return _feedback(route(name, version, Unversioned.PRIMARY).servable)


def _feedback(target: Servable) -> Response:
    model = target.description
    body = json_object()
    if model.classes is None:
        raise unprocessable(
            f"model '{model.name}' version {model.version} has no classes: feedback compares predicted and true "
            "classes, which a regressor does not have"
        )
    try:
        pairs = FeedbackRequest.model_validate(body)
    except ValidationError as exc:  # a missing field: the items are checked below
        key = refused_field(exc)
        raise unprocessable(f"missing '{key}': send " + '{"prediction": [classes...], "truth": [classes...]}') from None
    max_items = server_state().settings.max_batch_rows
    known = _known_classes(model.classes, model.class_names or ())
    predicted = class_positions(pairs.prediction, "prediction", target.predictor.metrics.class_index, max_items, known)
    truth = class_positions(pairs.truth, "truth", target.predictor.metrics.class_index, max_items, known)
    if len(predicted) != len(truth):
        shorter, n = ("truth", len(truth)) if len(truth) < len(predicted) else ("prediction", len(predicted))
        raise unprocessable(
            f"{shorter}[{n}] is missing: 'prediction' has {len(predicted)} items and 'truth' {len(truth)}; "
            "send one true class per predicted one"
        )
    target.predictor.metrics.count_feedback(predicted, truth)
    answer = FeedbackResponse(model_name=model.name, model_version=model.version, accepted=len(predicted))
    return jsonify(answer.model_dump())


def _known_classes(classes: tuple[Any, ...], names: tuple[str, ...]) -> str:
    shown = [f"{cls!r} ({name})" if str(cls) != name else repr(cls) for cls, name in zip(classes, names, strict=True)]
    more = len(classes) - KNOWN_CLASSES_SHOWN
    return ", ".join(shown[:KNOWN_CLASSES_SHOWN]) + (f" and {more} more" if more > 0 else "")
