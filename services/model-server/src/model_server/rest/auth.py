"""Optional API-key authentication: ``Authorization: Bearer <key>``.

Active only when API_KEYS is set. Health and metrics endpoints stay open so probes and
Prometheus need no secret. Keys are compared in constant time against every configured key.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from .errors import ApiError

OPEN_PATHS = frozenset({"/metrics", "/v2/health/live", "/v2/health/ready"})


class Unauthorized(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message, {"WWW-Authenticate": 'Bearer realm="model-server"'})


def register_api_key_check(app: Flask, keys: list[str]) -> None:
    if not keys:
        return
    encoded = [key.encode() for key in keys]

    @app.before_request
    def _require_api_key() -> None:
        if request.path in OPEN_PATHS:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        presented = token.strip().encode()
        # Compare with every key, without stopping early, so timing reveals nothing.
        matches = [hmac.compare_digest(presented, key) for key in encoded]
        if not any(matches):
            raise Unauthorized("invalid API key")
