"""The request side of routing: find the version a URL names, and run a request's rows through it.

Every endpoint that works on a model version starts here. :func:`route` makes the request's one
routing step (:meth:`..serving.live_models.Snapshot.route`) and turns a miss into a 404 that says
what exists; the :class:`Route` it returns is passed on explicitly: to :func:`infer`, which runs
the rows through the worker's micro-batcher and hands them to the shadow, and — for the
endpoints marked :func:`inference_endpoint` — to the version's request metrics.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import numpy as np
from flask import current_app, request
from werkzeug.exceptions import HTTPException

from ..monitoring import metrics
from ..repository.layout import is_version
from ..serving.batching import BatchInterrupted
from ..serving.live_models import Route, UnknownModel, UnknownVersion
from ..serving.predictor import Prediction
from ..serving.routing import Unversioned
from ..serving.shadow import ShadowJob, compares_probabilities
from ..state import ServerState
from .errors import ApiError, not_found, unavailable, unprocessable

log = logging.getLogger(__name__)
_request_rows = metrics.Children(metrics.REQUEST_ROWS)  # by route


def server_state() -> ServerState:
    return current_app.extensions["model_server"]


def route(name: str, version: str | None = None, unversioned: Unversioned = Unversioned.NEWEST) -> Route:
    """The version a request asked for (unversioned: see :class:`Unversioned`), or a 404 that says what exists."""
    snapshot = server_state().live_models.snapshot
    if version is not None and not is_version(version):
        raise not_found(f"model '{name}' has no version '{version}': versions are positive integers")
    try:
        return snapshot.route(name, int(version) if version is not None else None, unversioned, request.headers)
    except UnknownModel:
        served = ", ".join(f"'{n}'" for n in snapshot.models) or "none"
        raise not_found(f"model '{name}' not found; models served: {served}") from None
    except UnknownVersion:
        loaded = ", ".join(f"'{v}'" for v in snapshot.models[name]) or "none"
        raise not_found(f"model '{name}' has no version '{version}' loaded; loaded versions: {loaded}") from None


def default_route(unversioned: Unversioned = Unversioned.NEWEST) -> Route:
    """The default model (DEFAULT_MODEL, or the only model there is) for ``/predict`` and ``/feedback``."""
    state = server_state()
    name = state.settings.default_model
    if not name:
        names = list(state.live_models.snapshot.models)
        if len(names) != 1:
            served = ", ".join(f"'{n}'" for n in names) or "none"
            raise not_found(
                f"/predict serves the default model, and there is none: models served: {served}. "
                "Set DEFAULT_MODEL, or use /v2/models/{name}/infer"
            )
        name = names[0]
    return route(name, unversioned=unversioned)


def inference_endpoint(view: Callable[[Route], object]) -> Callable[..., object]:
    """Mark a view as inference: it gets its request's :class:`Route` (the traffic split's pick) and
    each request is counted for the version that answered it (``model_server_model_requests_total``
    by status, and its duration), whatever the status. URL variables ``name`` and ``version`` name
    the model; without them, the default model."""

    @functools.wraps(view)
    def endpoint(name: str | None = None, version: str | None = None) -> object:
        target = route(name, version, Unversioned.ROUTED) if name is not None else default_route(Unversioned.ROUTED)
        start, status = time.perf_counter(), 500
        try:
            response = view(target)
            status = getattr(response, "status_code", 200)
            return response
        except ApiError as exc:
            status = exc.status
            raise
        except HTTPException as exc:
            status = exc.code or 500
            raise
        finally:
            target.servable.predictor.metrics.requests.observe(status, time.perf_counter() - start)

    return endpoint


def infer(target: Route, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
    """Run validated rows through the routed version on behalf of the current request; then queue the shadow's run.

    A request whose micro-batch was interrupted by its leader's failure (which the leader's own
    request reports) did nothing wrong: it gets a 503 that invites a retry.
    """
    state = server_state()
    _request_rows(request.url_rule.rule).observe(len(rows))
    model, shadow = target.servable, target.shadow
    compare_probabilities = shadow is not None and compares_probabilities(model, shadow)
    want_probabilities = with_probabilities or compare_probabilities
    try:
        if state.batcher is None:
            prediction = model.predictor.predict(rows, want_probabilities)
        else:
            prediction = state.batcher.predict(model.predictor, rows, want_probabilities)
    except BatchInterrupted as exc:
        log.warning("micro-batch interrupted: %s", exc)
        raise unavailable("the model call this request shared was interrupted before it answered; retry") from None
    except ValueError as exc:
        # Rows that fit the signature but not the model: a category of a number column its encoder does not
        # know, a value its scaling takes past float32. scikit-learn's input checks raise ValueError.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("model refused rows that fit its signature", extra={"reason": reason})
        raise unprocessable(f"model {model.description.name!r} could not take these rows: {reason}") from None
    if shadow is not None:
        served = prediction if compare_probabilities else Prediction(prediction.labels)
        state.shadow.submit(ShadowJob(shadow, model.description.version, rows, served))
        if not with_probabilities:
            prediction = Prediction(prediction.labels)
    return prediction
