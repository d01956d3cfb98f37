"""The benchmark's own HTTP requests (readiness, answer checks): standard library only, no `requests` in its venv."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.support.addresses import Target


def connect(target: Target, timeout: float = 10) -> http.client.HTTPConnection:
    """A keep-alive connection to ``target`` (loopback or a container of this run: a :class:`Target`)."""
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def post_json(
    target: Target, path: str, body: Any, connection: http.client.HTTPConnection | None = None
) -> tuple[int, Any]:
    """POST ``body`` as JSON; the status and the decoded answer (its text if it is not JSON)."""
    conn = connection or connect(target)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        if connection is None:
            conn.close()


def get_status(target: Target, path: str) -> int:
    conn = connect(target, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
