"""Per-request bookkeeping: request id, request metrics and the JSON access log.

nginx creates ``X-Request-ID`` (or passes the client's); the server adopts a well-formed one,
generates one otherwise, logs it with every line and returns it in the response. The id is the
one request value kept in ``flask.g`` (the log filter reads it there); the hooks' own timing
lives in the WSGI environ. The per-version request metrics are counted by the inference
endpoints themselves (:func:`..rest.dispatch.inference_endpoint`), which know their version.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from . import metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
# Polled every few seconds by Docker, Prometheus and load balancers: logged at debug only.
QUIET_ROUTES = frozenset({"/metrics", "/v2/health/live", "/v2/health/ready"})
_requests = metrics.Children(metrics.REQUESTS)  # by route, method, status
_request_duration = metrics.Children(metrics.REQUEST_DURATION)  # by route, method

_STARTED, _IN_FLIGHT = "model_server.started", "model_server.in_flight"  # WSGI environ keys

access_log = logging.getLogger("model_server.access")


def register_request_hooks(app: Flask, log_requests: bool = False) -> None:
    """Request ids and metrics for every request; with ``log_requests``, one JSON line each."""

    @app.before_request
    def _start() -> None:
        request.environ[_STARTED] = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        if not (request.url_rule and request.url_rule.rule == "/metrics"):  # a scrape is not traffic
            metrics.IN_FLIGHT.inc()
            request.environ[_IN_FLIGHT] = True

    @app.after_request
    def _finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
        elapsed = time.perf_counter() - request.environ.get(_STARTED, time.perf_counter())
        if route != "/metrics":
            method = metrics.method_label(request.method)  # the client's own, unless a standard one
            _requests(route, method, str(response.status_code)).inc()
            _request_duration(route, method).observe(elapsed)
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        if not log_requests:
            return response
        access_log.log(
            logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "remote_addr": request.headers.get("X-Real-IP", request.remote_addr),
                "bytes_in": request.content_length or 0,
            },
        )
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        if request.environ.pop(_IN_FLIGHT, False):
            metrics.IN_FLIGHT.dec()
