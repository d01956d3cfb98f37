"""The running stack, shared by the end-to-end tests (modules run in their numbered order)."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from .stack import Stack, start_stack

TUTORIAL_BODY = {"features": [1, 2, 3, 4]}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    started = start_stack()
    try:
        for service, reason in started.skipped.items():
            print(f"\n[e2e] not started: {service}: {reason}")
        yield started
    finally:
        started.down()


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    upstreams: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.sent - self.statuses.get(200, 0)


def answering_replica(upstream_addr: str) -> str:
    """The replica that answered, from nginx's X-Upstream-Addr.

    After retries nginx lists every address tried (``a:8000, b:8000``) and, after its fresh
    attempt on a 502, the next group behind `` : `` (``a:8000 : b:8000``): the last one answered.
    """
    return re.split(r", | : ", upstream_addr)[-1].strip()


def send_load(
    url: str, total: int, concurrency: int, body: dict | None = None, headers: dict | None = None
) -> LoadResult:
    """POST ``body`` ``total`` times over ``concurrency`` keep-alive connections."""
    result = LoadResult()
    lock = threading.Lock()
    per_worker = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    def worker(count: int) -> None:
        with requests.Session() as session:
            for _ in range(count):
                try:
                    response = session.post(url, json=body or TUTORIAL_BODY, headers=headers, timeout=30)
                    status, upstream = response.status_code, response.headers.get("X-Upstream-Addr", "")
                except requests.RequestException as exc:
                    status, upstream = 0, ""
                    with lock:
                        result.errors.append(repr(exc))
                with lock:
                    result.sent += 1
                    result.statuses[status] += 1
                    result.upstreams[answering_replica(upstream)] += 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(worker, per_worker))
    return result
