"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint, generated.

Every JSON body's schema, description and example comes from the pydantic model of that body,
which the endpoint parses or builds it with (rest/bodies.py, rest/v2_schema.py), through
``pydantic.json_schema.models_json_schema``: the document cannot drift from what the server
accepts and answers. This module holds only what is not a body: the table of operations (path,
method, summary, request and response models, error statuses) and the info block. An operation is
protected (``security``, and a 401) unless auth.OPEN_PATHS leaves its path open.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from .auth import OPEN_PATHS
from .bodies import (
    FeedbackRequest,
    FeedbackResponse,
    InvocationsRequest,
    InvocationsResponse,
    OpenApiDocument,
    PredictRequest,
    PredictResponse,
)
from .predict import MODEL_VERSION_HEADER
from .v2_schema import (
    ErrorBody,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    RepositoryIndex,
    RepositoryIndexRequest,
    ServerLive,
    ServerMetadata,
    ServerReady,
)

bp = Blueprint("openapi", __name__)

REF_TEMPLATE = "#/components/schemas/{model}"
ERRORS = {
    400: "Malformed JSON",
    401: "Missing or invalid API key (only when API_KEYS is set)",
    404: "Unknown model or version",
    413: "Body or row count over the limit",
    422: "Well-formed JSON that is not a valid request (shape, feature count, types, NaN/inf, a value that does not "
    "fit its column: the message names the row and the column)",
    503: "Model not ready; or (inference) the model call this request shared was interrupted: retry",
}
SECURITY = [{"apiKey": []}, {}]  # a key, or none when API_KEYS is not set


@dataclass(frozen=True)
class Reply:
    """A response other than the 200: by default an error, an ErrorBody described as in ERRORS."""

    status: int
    description: str | None = None
    model: type[BaseModel] = ErrorBody


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    ok: str | None  # the 200's description; None: the operation has no 200
    response: type[BaseModel] | None = None  # the 200's JSON body
    request: type[BaseModel] | None = None
    request_required: bool = True
    errors: tuple[int | Reply, ...] = ()  # 401 is added to the protected operations
    description: str | None = None
    versioned: bool = False  # also served for one version: {path}/versions/{version}{suffix}
    suffix: str = ""
    ok_headers: tuple[tuple[str, str], ...] = ()  # the 200's headers: (name, description)
    ok_content: tuple[tuple[str, str], ...] = ()  # non-JSON 200 bodies: (media type, contentMediaType or "")


_INFER_DESCRIPTION = (
    "One input tensor, named input-0 (as the model metadata publishes it), of shape [rows, features] "
    "or [features]; data flat or nested as that shape. Or one input per column, named as the column, of shape "
    "[rows] or [rows, 1] (BYTES for strings, BOOL, or a numeric datatype; null for a missing value), as MLServer's "
    'pandas codec writes a DataFrame (parameters.content_type "pd"): how a model of named columns of mixed '
    "types is sent (its metadata lists them). With the binary tensor data extension, the body "
    "is a JSON header of Inference-Header-Content-Length bytes followed by the raw tensor. "
    "Each output is binary if its parameters.binary_data is true, JSON if false, and otherwise as the "
    "request's parameters.binary_data_output says (default JSON). If any output is binary, the response is "
    "application/octet-stream: a JSON header (its length in Inference-Header-Content-Length) in which JSON "
    "outputs carry data and binary ones parameters.binary_data_size, then the binary outputs' bytes in "
    "output order."
)
_FEEDBACK_DESCRIPTION = (
    "Counts each (prediction, truth) pair in model_server_feedback_total, for live accuracy. Items are classes as "
    "/predict returns them or class names; both arrays have the same length. Unversioned URLs attribute the "
    "feedback to the primary version (the newest loaded, or during a rollout the one with the largest traffic "
    "share): send to the versioned URL (the X-Model-Version that answered) when the predictions may come from "
    "another one."
)
_FEEDBACK = {
    "ok": "Pairs counted",
    "response": FeedbackResponse,
    "request": FeedbackRequest,
    "errors": (400, 404, 413, 422),
    "description": _FEEDBACK_DESCRIPTION,
}
_INVOCATIONS_DESCRIPTION = (
    "As mlflow models serve answers it: JSON with exactly one of dataframe_split, dataframe_records, instances, "
    "inputs (and optionally params), or text/csv with a header row; each value checked against the model's "
    "signature (a 422 names the row and the column)."
)
_MODEL = "/v2/models/{name}"
_REFUSED = "Refused (400): the model repository folder is the source of truth; {action} there"

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/predict", "predict", "Predict one or several rows (the tutorial's API)",
              "Predictions of the default model's newest loaded version", PredictResponse, PredictRequest,
              errors=(400, 404, 413, 422, 503), ok_headers=((MODEL_VERSION_HEADER, "The version that answered"),)),
    Operation("post", "/invocations", "invocations", "MLflow's scoring protocol, for the default model",
              "Predictions of the default model", InvocationsResponse, InvocationsRequest,
              errors=(400, 404, 413, 422, 503), description=_INVOCATIONS_DESCRIPTION,
              ok_headers=((MODEL_VERSION_HEADER, "The version that answered"),)),
    Operation("post", "/feedback", "feedback", "Feedback: the true classes of the default model's predictions, "
              "for live accuracy", **_FEEDBACK),
    Operation("post", _MODEL, "model_feedback", "Feedback: the true classes of the model's predictions, "
              "for live accuracy", versioned=True, suffix="/feedback", **_FEEDBACK),
    Operation("get", "/v2", "server_metadata", "V2 server metadata", "Server metadata", ServerMetadata),
    Operation("get", "/v2/health/live", "server_live", "Liveness: the process answers", "Live", ServerLive),
    Operation("get", "/v2/health/ready", "server_ready",
              "Readiness: a model version loaded and warmed up (DEFAULT_MODEL's, when set)", "Ready", ServerReady,
              errors=(Reply(503, "Not ready: no model version serves yet (DEFAULT_MODEL's, when set)", ServerReady),)),
    Operation("get", _MODEL, "model_metadata", "V2 model metadata", "Model metadata", ModelMetadata,
              errors=(404,), versioned=True),
    Operation("get", _MODEL, "model_ready", "V2 model readiness", "Ready", ModelReady,
              errors=(404,), versioned=True, suffix="/ready"),
    Operation("post", _MODEL, "model_infer", "V2 inference (JSON, or the binary tensor data extension)",
              "Inference result", InferenceResponse, InferenceRequest, errors=(400, 404, 413, 422, 503),
              description=_INFER_DESCRIPTION, versioned=True, suffix="/infer",
              ok_content=(("application/octet-stream", "application/octet-stream"),)),
    Operation("post", "/v2/repository/index", "repository_index",
              "Model repository extension: every version known, with its state and reason", "Index",
              RepositoryIndex, RepositoryIndexRequest, request_required=False, errors=(400, 413, 422)),
    *(
        Operation("post", f"/v2/repository/models/{{name}}/{action}", f"repository_{action}",
                  _REFUSED.format(action=action), None, errors=(Reply(400, "Always: explicit model control is off"),))
        for action in ("load", "unload")
    ),
    Operation("get", "/metrics", "metrics",
              "Prometheus metrics of every worker of this replica (not exposed through nginx)",
              "Prometheus text format", ok_content=(("text/plain", ""),)),
    Operation("get", "/openapi.json", "openapi", "This document", "OpenAPI document", OpenApiDocument),
)  # fmt: skip


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())


def models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model of the document, with the mode its schema is made in: requests validate, responses serialize."""
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for op in OPERATIONS:
        if op.request is not None:
            found[op.request, "validation"] = None
        for model in (op.response, *(r.model for r in _replies(op))):
            if model is not None:
                found[model, "serialization"] = None
    return list(found)


@cache
def openapi_document() -> dict[str, Any]:
    refs, schemas = models_json_schema(models(), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        for path, operation_id, parameters in _paths(op):
            operation = {"operationId": operation_id, "summary": op.summary}
            if op.description:
                operation["description"] = op.description
            if _protected(op):
                operation["security"] = SECURITY
            if parameters:
                operation["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in parameters
                ]
            if op.request is not None:
                content = _json(refs[op.request, "validation"], schemas)
                operation["requestBody"] = {"required": op.request_required, "content": content}
            operation["responses"] = _responses(op, path, refs, schemas)
            paths.setdefault(path, {})[op.method] = operation
    document = OpenApiDocument(
        openapi="3.1.0",
        info={
            "title": "Model server",
            "version": __version__,
            "description": "scikit-learn model serving: the tutorial's /predict and the Open Inference Protocol V2.",
        },
        paths=paths,
        components={
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Only when API_KEYS is set"}
            },
        },
    )
    return document.model_dump()


def _paths(op: Operation) -> list[tuple[str, str, list[str]]]:
    """(path, operationId, path parameters) of the operation, and of its one-version form."""
    base = op.path + op.suffix
    parameters = ["name"] if "{name}" in op.path else []
    if not op.versioned:
        return [(base, op.operation_id, parameters)]
    versioned = f"{op.path}/versions/{{version}}{op.suffix}"
    return [(base, op.operation_id, parameters), (versioned, op.operation_id + "_version", [*parameters, "version"])]


def _protected(op: Operation) -> bool:
    return op.path + op.suffix not in OPEN_PATHS


def _replies(op: Operation) -> list[Reply]:
    replies = [e if isinstance(e, Reply) else Reply(e) for e in op.errors]
    if _protected(op):
        replies.append(Reply(401))
    return sorted(replies, key=lambda r: r.status)


def _responses(
    op: Operation, path: str, refs: dict[Any, dict[str, Any]], schemas: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    responses: dict[str, dict[str, Any]] = {}
    if op.ok is not None:
        ok: dict[str, Any] = {"description": op.ok}
        if op.ok_headers:
            ok["headers"] = {
                name: {"description": description, "schema": {"type": "string"}} for name, description in op.ok_headers
            }
        content = _json(refs[op.response, "serialization"], schemas) if op.response is not None else {}
        for media_type, content_media_type in op.ok_content:
            schema = {"type": "string"} | ({"contentMediaType": content_media_type} if content_media_type else {})
            content[media_type] = {"schema": schema}
        ok["content"] = content
        responses["200"] = ok
    for reply in _replies(op):
        content = _json(refs[reply.model, "serialization"], schemas, example=False)
        responses[str(reply.status)] = {"description": reply.description or ERRORS[reply.status], "content": content}
    return responses


def _json(ref: dict[str, Any], schemas: dict[str, Any], example: bool = True) -> dict[str, Any]:
    """A JSON body of a model (its ``$ref``), with the model's first example."""
    media_type: dict[str, Any] = {"schema": ref}
    examples = schemas["$defs"][ref["$ref"].rsplit("/", 1)[-1]].get("examples")
    if example and examples:
        media_type["example"] = examples[0]
    return {"application/json": media_type}
