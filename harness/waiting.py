"""Waiting for something to be there: retry "not yet", never a failed check."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

from .commands import Failed


class NotYet(Exception):
    """What a probe raises for "not there yet, ask again" (e.g. a query with no data yet)."""


# "Not yet": a service not answering yet (connection refused or reset: OSError, which every
# `requests` error is too; a half-sent HTTP answer), a half-ready JSON body, or NotYet itself.
RETRIED = (OSError, http.client.HTTPException, KeyError, ValueError, NotYet)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Call ``probe`` until it returns neither None nor False; fail with ``what`` after ``timeout``.

    Only "not yet" (:data:`RETRIED`) is retried. An ``AssertionError`` inside the probe fails at
    once: a probe that checks, say, "0 failed requests" must not have a failure retried away. Count
    such things over the whole run and assert once instead. The timeout raises :class:`Failed`.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last is not None and last is not False:
                return last
        except RETRIED as exc:
            last = exc
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
