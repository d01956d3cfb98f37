"""``GET /openapi.json``: an OpenAPI 3.1 description of every endpoint.

V2 schemas come from the same pydantic models that validate requests, so the document cannot
drift from what the server accepts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic.json_schema import models_json_schema

from .. import __version__
from . import feedback
from .v2_schema import ErrorBody, InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON",
        401: "Missing or invalid API key (only when API_KEYS is set)",
        404: "Unknown model or version",
        413: "Body or row count over the limit",
        422: "Well-formed JSON that is not a valid request (shape, feature count, types, NaN/inf)",
        503: "Model not ready; or (inference) the model call this request shared was interrupted: retry",
    }
    return {str(c): {"description": text[c], "content": _json(_ref("ErrorBody"))} for c in codes}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": description, "content": _json(schema)}}


_MODEL_PARAMS = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
]
_VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}

_PREDICT_REQUEST = {
    "type": "object",
    "required": ["features"],
    "properties": {
        "features": {
            "description": "One row of numbers, or an array of rows",
            "oneOf": [
                {"type": "array", "items": {"type": "number"}, "minItems": 1},
                {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                    "minItems": 1,
                },
            ],
        },
        "return_probabilities": {"type": "boolean", "default": False},
    },
    "example": {"features": [5.1, 3.5, 1.4, 0.2]},
}
_PREDICT_RESPONSE = {
    "type": "object",
    "required": ["prediction"],
    "properties": {
        "prediction": {"type": "array", "description": "One label per row"},
        "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "classes": {"type": "array", "items": {"type": "string"}},
    },
}


_INFER_DESCRIPTION = (
    "One input tensor, named input-0 (as the model metadata publishes it), of shape [rows, features] "
    "or [features]; data flat or nested as that shape. With the binary tensor data extension, the body "
    "is a JSON header of Inference-Header-Content-Length bytes followed by the raw tensor. "
    "Each output is binary if its parameters.binary_data is true, JSON if false, and otherwise as the "
    "request's parameters.binary_data_output says (default JSON). If any output is binary, the response is "
    "application/octet-stream: a JSON header (its length in Inference-Header-Content-Length) in which JSON "
    "outputs carry data and binary ones parameters.binary_data_size, then the binary outputs' bytes in "
    "output order."
)
_BINARY = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}


def _model_paths(suffix: str, operation: dict[str, Any], method: str) -> dict[str, Any]:
    base = "/v2/models/{name}"
    return {
        f"{base}{suffix}": {method: {**operation, "parameters": _MODEL_PARAMS}},
        f"{base}/versions/{{version}}{suffix}": {
            method: {**operation, "operationId": operation["operationId"] + "_version",
                     "parameters": [*_MODEL_PARAMS, _VERSION_PARAM]},
        },
    }  # fmt: skip


_INDEX_REQUEST = {
    "type": "object",
    "properties": {"ready": {"type": "boolean", "description": "List only the versions that serve"}},
}
_INDEX_RESPONSE = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "version", "state", "reason"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
            "reason": {"type": "string"},
        },
    },
}


def _refused_repository_change(action: str, security: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"repository_{action}",
            "summary": f"Refused (400): the model repository folder is the source of truth; {action} there",
            "security": security,
            "parameters": _MODEL_PARAMS,
            "responses": {
                "400": {"description": "Always: explicit model control is off", "content": _json(_ref("ErrorBody"))},
                **_errors(401),
            },
        }
    }


def _feedback_operation(operation_id: str, which: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": f"Feedback: the true classes of the {which}'s predictions, for live accuracy",
        "description": feedback.OPENAPI_DESCRIPTION,
        "requestBody": {"required": True, "content": _json(feedback.OPENAPI_REQUEST)},
        "responses": {**_ok("Pairs counted", feedback.OPENAPI_RESPONSE), **_errors(400, 401, 404, 413, 422)},
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "validation") for m in (InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata, ErrorBody)],
        ref_template=_REF,
    )
    security = [{"apiKey": []}, {}]
    paths: dict[str, Any] = {
        "/predict": {
            "post": {
                "operationId": "predict",
                "summary": "Predict one or several rows (the tutorial's API)",
                "security": security,
                "requestBody": {"required": True, "content": _json(_PREDICT_REQUEST)},
                "responses": {
                    "200": {
                        "description": "Predictions of the default model's newest loaded version",
                        "headers": {
                            "X-Model-Version": {
                                "description": "The version that answered",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": _json(_PREDICT_RESPONSE),
                    },
                    **_errors(400, 401, 404, 413, 422, 503),
                },
            }
        },
        "/feedback": {"post": {**_feedback_operation("feedback", "default model"), "security": security}},
        **_model_paths("/feedback", {**_feedback_operation("model_feedback", "model"), "security": security}, "post"),
        "/v2": {
            "get": {
                "operationId": "server_metadata",
                "summary": "V2 server metadata",
                "security": security,
                "responses": {**_ok("Server metadata", _ref("ServerMetadata")), **_errors(401)},
            }
        },
        "/v2/health/live": {
            "get": {
                "operationId": "server_live",
                "summary": "Liveness: the process answers",
                "responses": _ok("Live", {"type": "object", "properties": {"live": {"type": "boolean"}}}),
            }
        },
        "/v2/health/ready": {
            "get": {
                "operationId": "server_ready",
                "summary": "Readiness: a model version loaded and warmed up (DEFAULT_MODEL's, when set)",
                "responses": {
                    **_ok("Ready", {"type": "object", "properties": {"ready": {"type": "boolean"}}}),
                    **_errors(503),
                },
            }
        },
        **_model_paths(
            "",
            {
                "operationId": "model_metadata",
                "summary": "V2 model metadata",
                "security": security,
                "responses": {**_ok("Model metadata", _ref("ModelMetadata")), **_errors(401, 404)},
            },
            "get",
        ),
        **_model_paths(
            "/ready",
            {
                "operationId": "model_ready",
                "summary": "V2 model readiness",
                "security": security,
                "responses": {
                    **_ok(
                        "Ready",
                        {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}},
                    ),
                    **_errors(401, 404),
                },
            },
            "get",
        ),
        **_model_paths(
            "/infer",
            {
                "operationId": "model_infer",
                "summary": "V2 inference (JSON, or the binary tensor data extension)",
                "description": _INFER_DESCRIPTION,
                "security": security,
                "requestBody": {"required": True, "content": _json(_ref("InferenceRequest"))},
                "responses": {
                    "200": {
                        "description": "Inference result",
                        "content": {**_json(_ref("InferenceResponse")), "application/octet-stream": _BINARY},
                    },
                    **_errors(400, 401, 404, 413, 422, 503),
                },
            },
            "post",
        ),
        "/v2/repository/index": {
            "post": {
                "operationId": "repository_index",
                "summary": "Model repository extension: every version known, with its state and reason",
                "security": security,
                "requestBody": {"required": False, "content": _json(_INDEX_REQUEST)},
                "responses": {**_ok("Index", _INDEX_RESPONSE), **_errors(400, 401, 422)},
            }
        },
        "/v2/repository/models/{name}/load": _refused_repository_change("load", security),
        "/v2/repository/models/{name}/unload": _refused_repository_change("unload", security),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of every worker of this replica (not exposed through nginx)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": security,
                "responses": _ok("OpenAPI document", {"type": "object"}),
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Model server",
            "version": __version__,
            "description": "scikit-learn model serving: the tutorial's /predict and the Open Inference Protocol V2.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Only when API_KEYS is set"}
            },
        },
    }
