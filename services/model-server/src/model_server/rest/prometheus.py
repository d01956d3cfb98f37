"""``GET /metrics``: this replica's metrics (all workers) in the Prometheus text format."""

from __future__ import annotations

from flask import Blueprint, Response

from ..metrics import exposition

bp = Blueprint("prometheus", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, content_type=content_type)
