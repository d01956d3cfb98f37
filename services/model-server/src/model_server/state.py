"""What a running app holds: its settings and the model it serves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flask import current_app, request

from . import metrics
from .batching import MicroBatcher
from .config import Settings
from .predictor import Prediction, Predictor


@dataclass(frozen=True)
class ServerState:
    settings: Settings
    predictor: Predictor
    batcher: MicroBatcher | None = None  # None: every request calls the model itself


def server_state() -> ServerState:
    return current_app.extensions["model_server"]


def infer(rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
    """Run validated rows through the model on behalf of the current request."""
    metrics.REQUEST_ROWS.labels(request.url_rule.rule).observe(len(rows))
    state = server_state()
    model = state.batcher or state.predictor
    return model.predict(rows, with_probabilities)
