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
from pydantic import ValidationError

from .dispatch import server_state
from .errors import ApiError, unprocessable
from .v2_schema import RepositoryIndex, RepositoryIndexItem, RepositoryIndexRequest
from .validation import json_object

bp = Blueprint("repository", __name__, url_prefix="/v2/repository")

EXTENSION = "model_repository"


@bp.post("/index")
def index() -> Response:
    try:
        body = RepositoryIndexRequest.model_validate(json_object() if request.get_data(cache=True).strip() else {})
    except ValidationError:
        raise unprocessable("'ready' must be true or false") from None
    statuses = server_state().live_models.snapshot.statuses
    index = RepositoryIndex(
        [
            RepositoryIndexItem(name=s.name, version=str(s.version), state=s.state, reason=s.reason)
            for s in statuses
            if not body.ready or s.state == "READY"
        ]
    )
    return jsonify(index.model_dump(mode="json"))


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
