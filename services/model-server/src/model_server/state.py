"""What a running app holds (its settings, the live model registry and its poller), and the
request-side helpers that find a model version and run rows through it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from flask import current_app, g, request

from . import metrics
from .batching import BatchInterrupted
from .config import Settings
from .errors import not_found, unavailable
from .model_manager import RepositoryManager
from .predictor import Prediction
from .registry import Registry, Servable, Snapshot, UnknownModel, UnknownVersion
from .repository.layout import is_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    registry: Registry
    manager: RepositoryManager


def server_state() -> ServerState:
    return current_app.extensions["model_server"]


def request_snapshot() -> Snapshot:
    """The registry's snapshot, taken once per request (``g``): every lookup of one request sees the same set."""
    snapshot = g.get("snapshot")
    if snapshot is None:
        snapshot = g.snapshot = server_state().registry.snapshot
    return snapshot


def servable(name: str, version: str | None = None) -> Servable:
    """The version a request asked for (unversioned: the newest loaded), or a 404 that says what exists."""
    snapshot = request_snapshot()
    if version is not None and not is_version(version):
        raise not_found(f"model '{name}' has no version '{version}': versions are positive integers")
    try:
        found = snapshot.servable(name, int(version) if version is not None else None)
    except UnknownModel:
        served = ", ".join(f"'{n}'" for n in snapshot.models) or "none"
        raise not_found(f"model '{name}' not found; models served: {served}") from None
    except UnknownVersion:
        loaded = ", ".join(f"'{v}'" for v in snapshot.models[name]) or "none"
        raise not_found(f"model '{name}' has no version '{version}' loaded; loaded versions: {loaded}") from None
    g.served = found.description  # the request metrics count it for this version (http_hooks)
    return found


def default_servable() -> Servable:
    """What ``/predict`` serves: DEFAULT_MODEL's newest version, or that of the only model there is."""
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
    return servable(name)


def infer(model: Servable, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
    """Run validated rows through ``model`` on behalf of the current request.

    A request whose micro-batch was interrupted by its leader's failure (which the leader's own
    request reports) did nothing wrong: it gets a 503 that invites a retry.
    """
    metrics.REQUEST_ROWS.labels(request.url_rule.rule).observe(len(rows))
    try:
        return model.predict(rows, with_probabilities)
    except BatchInterrupted as exc:
        log.warning("micro-batch interrupted: %s", exc)
        raise unavailable("the model call this request shared was interrupted before it answered; retry") from None
