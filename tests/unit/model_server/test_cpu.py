"""The CPU count gunicorn sizes its workers by: the container's CPU limit, not the host's CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from model_server.cpu import cpu_limit

AVAILABLE = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "100000 100000\n"}, 1),  # v2, --cpus 1
        ({"cpu.max": "150000 100000\n"}, 2),  # v2, --cpus 1.5: rounded up
        ({"cpu.max": "50000 100000\n"}, 1),  # v2, --cpus 0.5: at least one worker
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "250000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1, --cpus 2.5
    ],
    ids=["v2-1", "v2-1.5", "v2-0.5", "v1-1", "v1-2.5"],
)
def test_the_cgroup_quota_rounded_up_capped_by_the_cpus_available(tmp_path: Path, files: dict, limit: int) -> None:
    assert cpu_limit(cgroup(tmp_path, files)) == min(limit, AVAILABLE)


@pytest.mark.parametrize(
    "files",
    [
        {},  # no cgroup filesystem (not in a container, or not Linux)
        {"cpu.max": "max 100000\n"},  # v2, no limit
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},  # v1, no limit
        {"cpu.max": "garbage\n"},
    ],
    ids=["none", "v2-max", "v1-unlimited", "unreadable"],
)
def test_without_a_quota_every_available_cpu(tmp_path: Path, files: dict) -> None:
    assert cpu_limit(cgroup(tmp_path, files)) == AVAILABLE


def test_a_quota_above_the_cpus_available_is_capped(tmp_path: Path) -> None:
    quota = (AVAILABLE + 4) * 100000
    assert cpu_limit(cgroup(tmp_path, {"cpu.max": f"{quota} 100000\n"})) == AVAILABLE
