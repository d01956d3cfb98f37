"""What a running app holds (its settings, the live model registry and its poller), and the
request-side helpers that find a model version and run rows through it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

import numpy as np
from flask import current_app, g, request

from . import metrics, rollout
from .batching import BatchInterrupted
from .config import Settings
from .errors import not_found, unavailable
from .model_manager import RepositoryManager
from .predictor import Prediction
from .registry import Registry, Servable, Snapshot, UnknownModel, UnknownVersion
from .repository.layout import is_version
from .shadow import ShadowJob, ShadowRunner, compares_probabilities

log = logging.getLogger(__name__)
_request_rows = metrics.Children(metrics.REQUEST_ROWS)  # by route


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    registry: Registry
    manager: RepositoryManager
    shadow: ShadowRunner


def server_state() -> ServerState:
    return current_app.extensions["model_server"]


def request_snapshot() -> Snapshot:
    """The registry's snapshot, taken once per request (``g``): every lookup of one request sees the same set."""
    snapshot = g.get("snapshot")
    if snapshot is None:
        snapshot = g.snapshot = server_state().registry.snapshot
    return snapshot


class Unversioned(Enum):
    """Which version an unversioned URL means."""

    NEWEST = "newest"  # metadata and readiness: the newest loaded version
    ROUTED = "routed"  # inference: the model's traffic split (rollout.py), and maybe a shadow
    PRIMARY = "primary"  # feedback: the version that takes most of the traffic


def servable(name: str, version: str | None = None, unversioned: Unversioned = Unversioned.NEWEST) -> Servable:
    """The version a request asked for (unversioned: see :class:`Unversioned`), or a 404 that says what exists."""
    snapshot = request_snapshot()
    if version is not None and not is_version(version):
        raise not_found(f"model '{name}' has no version '{version}': versions are positive integers")
    try:
        if version is not None:
            found = snapshot.servable(name, int(version))
        elif unversioned is Unversioned.ROUTED:
            found = _routed(snapshot, name)
        elif unversioned is Unversioned.PRIMARY:
            found = snapshot.primary(name)
        else:
            found = snapshot.servable(name)
    except UnknownModel:
        served = ", ".join(f"'{n}'" for n in snapshot.models) or "none"
        raise not_found(f"model '{name}' not found; models served: {served}") from None
    except UnknownVersion:
        loaded = ", ".join(f"'{v}'" for v in snapshot.models[name]) or "none"
        raise not_found(f"model '{name}' has no version '{version}' loaded; loaded versions: {loaded}") from None
    g.version_requests = found.predictor.requests  # the request metrics count it for this version (http_hooks)
    return found


def _routed(snapshot: Snapshot, name: str) -> Servable:
    """The version the traffic split picks for this request; the shadow to run it on too, if any, in ``g``."""
    routing = snapshot.route(name)
    sticky_key = request.headers.get(routing.sticky_header) if routing.sticky_header else None
    found = snapshot.routed(name, rollout.draw(sticky_key))
    if routing.shadow_version is not None and routing.shadow_version != found.version and rollout.shadowed(routing):
        g.shadow = snapshot.models[name].get(routing.shadow_version)
    return found


def default_servable(unversioned: Unversioned = Unversioned.NEWEST) -> Servable:
    """The default model (DEFAULT_MODEL, or the only model there is) for ``/predict`` and ``/feedback``."""
    name = server_state().settings.default_model
    if not name:
        names = list(request_snapshot().models)
        if len(names) != 1:
            served = ", ".join(f"'{n}'" for n in names) or "none"
            raise not_found(
                f"/predict serves the default model, and there is none: models served: {served}. "
                "Set DEFAULT_MODEL, or use /v2/models/{name}/infer"
            )
        name = names[0]
    return servable(name, unversioned=unversioned)


def infer(model: Servable, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
    """Run validated rows through ``model`` on behalf of the current request.

    A request whose micro-batch was interrupted by its leader's failure (which the leader's own
    request reports) did nothing wrong: it gets a 503 that invites a retry.
    """
    _request_rows(request.url_rule.rule).observe(len(rows))
    shadow: Servable | None = g.pop("shadow", None)
    compare_probabilities = shadow is not None and compares_probabilities(model, shadow)
    try:
        prediction = model.predict(rows, with_probabilities or compare_probabilities)
    except BatchInterrupted as exc:
        log.warning("micro-batch interrupted: %s", exc)
        raise unavailable("the model call this request shared was interrupted before it answered; retry") from None
    if shadow is not None:
        served = prediction if compare_probabilities else Prediction(prediction.labels)
        server_state().shadow.submit(ShadowJob(shadow, model.description.version, rows, served))
        if not with_probabilities:
            prediction = Prediction(prediction.labels)
    return prediction
