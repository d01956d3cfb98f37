"""The running stack, shared by the end-to-end tests (modules run in their numbered order)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .stack import Stack, start_stack


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
