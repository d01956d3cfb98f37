"""The benchmark's unit tests run as on the 2-core machine the benchmark was written for, with no BENCH_* variable
of the calling shell (bench/run's, a developer's) leaking into its settings."""

import os

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.upper().startswith("BENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
