"""JSON error responses: every error the server returns is ``{"error": "..."}``.

The Open Inference Protocol V2 uses the same body for its errors, so one shape serves both
APIs. Nothing escapes as an HTML page or a bare 500.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .v2_schema import ErrorBody

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client-facing error with its HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def unavailable(message: str, retry_after_seconds: int = 1) -> ApiError:
    return ApiError(503, message, {"Retry-After": str(retry_after_seconds)})


def error_response(status: int, message: str) -> tuple[Response, int]:
    return jsonify(ErrorBody(error=message).model_dump()), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        response, status = error_response(exc.status, exc.message)
        response.headers.update(exc.headers)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            404: "not found: see /openapi.json for the endpoints",
            405: "method not allowed",
            413: "request body too large",
        }.get(status, (exc.description or exc.name).rstrip("."))
        response, _ = error_response(status, message)
        response.status_code = status
        headers = dict(exc.get_headers())
        for name in ("Allow", "WWW-Authenticate", "Retry-After"):
            if name in headers:
                response.headers[name] = headers[name]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, "internal error; the request id is in the X-Request-ID header")
