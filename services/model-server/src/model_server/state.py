"""What a running app holds: its settings and the model it serves."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from flask import current_app, request

from . import metrics
from .batching import BatchInterrupted, MicroBatcher
from .config import Settings
from .errors import unavailable
from .predictor import Prediction, Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    predictor: Predictor
    batcher: MicroBatcher | None = None  # None: every request calls the model itself


def server_state() -> ServerState:
    return current_app.extensions["model_server"]


def infer(rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
    """Run validated rows through the model on behalf of the current request.

    A request whose micro-batch was interrupted by its leader's failure (which the leader's own
    request reports) did nothing wrong: it gets a 503 that invites a retry.
    """
    metrics.REQUEST_ROWS.labels(request.url_rule.rule).observe(len(rows))
    state = server_state()
    model = state.batcher or state.predictor
    try:
        return model.predict(rows, with_probabilities)
    except BatchInterrupted as exc:
        log.warning("micro-batch interrupted: %s", exc)
        raise unavailable("the model call this request shared was interrupted before it answered; retry") from None
