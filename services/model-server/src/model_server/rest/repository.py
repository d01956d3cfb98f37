"""The Open Inference Protocol's model repository extension, as Triton and MLServer serve it.

``POST /v2/repository/index`` lists every version this replica knows, with its state (READY,
LOADING, UNAVAILABLE) and why it is not serving; an empty body means ``{}``, and
``{"ready": true}`` lists only the versions that serve. ``tritonclient``'s
``get_model_repository_index()`` works unchanged.

``load`` and ``unload`` are refused: the repository folder is the single source of truth for
every replica of the fleet (a load sent to one replica through the load balancer would reach
one replica only). Triton refuses them the same way when it polls its repository.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..errors import ApiError, unprocessable
from ..state import server_state
from ..validation import json_object

bp = Blueprint("repository", __name__, url_prefix="/v2/repository")

EXTENSION = "model_repository"


@bp.post("/index")
def index() -> Response:
    body = json_object() if request.get_data(cache=True).strip() else {}
    ready_only = body.get("ready", False)
    if not isinstance(ready_only, bool):
        raise unprocessable("'ready' must be true or false")
    statuses = server_state().registry.snapshot.statuses
    return jsonify(
        [
            {"name": s.name, "version": str(s.version), "state": s.state.value, "reason": s.reason}
            for s in statuses
            if not ready_only or s.state == "READY"
        ]
    )


@bp.post("/models/<name>/load")
@bp.post("/models/<name>/unload")
def load_or_unload(name: str) -> Response:
    action = request.path.rsplit("/", 1)[-1]
    repository = server_state().settings.model_repository
    raise ApiError(
        400,
        f"explicit model {action} is not allowed: every replica polls the model repository "
        f"({repository}), which is the source of truth; publish or remove a version directory of "
        f"'{name}' there instead",
    )
