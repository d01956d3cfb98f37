"""Load through nginx for the end-to-end and Swarm tests: counts statuses and who answered (needs `requests`)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

TUTORIAL_BODY = {"features": [1, 2, 3, 4]}


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    upstreams: Counter[str] = field(default_factory=Counter)  # answering replica's IP -> requests
    # (time.monotonic() when answered, X-Model-Version) of every answer, in the order they came
    versions: list[tuple[float, str]] = field(default_factory=list)
    # (time.monotonic() when sent, seconds until answered or failed) of every request, in the order they ended
    latencies: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retried: int = 0  # answered after nginx tried more than one replica
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.sent - self.statuses.get(200, 0)

    def summary(self) -> str:
        return (f"{self.sent} requests in {self.seconds:.1f}s, {self.failed} failed, statuses {dict(self.statuses)}, "
                f"{self.retried} retried by nginx on another replica")  # fmt: skip


def answering_replica(upstream_addr: str) -> str:
    """The IP of the replica that answered, from nginx's X-Upstream-Addr.

    After retries nginx lists every address tried (``a:8000, b:8000``) and, after its fresh
    attempt on a 502, the next group behind `` : `` (``a:8000 : b:8000``): the last one answered.
    """
    return re.split(r", | : ", upstream_addr)[-1].strip().removesuffix(":8000")


def send_load(
    url: str,
    total: int,
    concurrency: int,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    until: threading.Event | None = None,
) -> LoadResult:
    """POST ``body`` (the tutorial's by default) over ``concurrency`` keep-alive connections:
    ``total`` requests, and with ``until`` as many more as it takes for that event to be set."""
    result = LoadResult()
    lock = threading.Lock()
    started = time.monotonic()

    def more() -> bool:
        with lock:
            if result.sent >= total and (until is None or until.is_set()):
                return False
            result.sent += 1
            return True

    def worker() -> None:
        with requests.Session() as session:
            while more():
                begun = time.monotonic()
                try:
                    response = session.post(url, json=body or TUTORIAL_BODY, headers=headers, timeout=30)
                    status, upstream = response.status_code, response.headers.get("X-Upstream-Addr", "")
                    version = response.headers.get("X-Model-Version", "")
                except requests.RequestException as exc:
                    status, upstream, version = 0, "", ""
                    with lock:
                        result.errors.append(repr(exc))
                ended = time.monotonic()
                with lock:
                    result.statuses[status] += 1
                    result.upstreams[answering_replica(upstream)] += 1
                    result.retried += "," in upstream or " : " in upstream
                    result.versions.append((time.monotonic(), version))
                    result.latencies.append((begun, ended - begun))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    result.seconds = time.monotonic() - started
    return result
