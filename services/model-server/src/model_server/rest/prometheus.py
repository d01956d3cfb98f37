"""``GET /metrics``: this replica's metrics (all workers) in the Prometheus text format, plus the
versions this worker serves right now (:mod:`..serving.state_metrics`)."""

from __future__ import annotations

from flask import Blueprint, Response

from ..monitoring.worker_files import exposition
from ..serving.state_metrics import ServingCollector
from .dispatch import server_state

bp = Blueprint("prometheus", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    state = server_state()
    body, content_type = exposition(ServingCollector(state.live_models.snapshot, state.settings))
    return Response(body, content_type=content_type)
