"""How many CPUs this process may use: what gunicorn sizes its worker count by.

In a container that is its CPU limit (``--cpus``, compose ``cpus:``), which the kernel enforces
as a cgroup quota, not the host's CPU count that ``os.cpu_count()`` reports.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_limit(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cgroup CPU quota rounded up, capped by the CPUs this process may run on; at least 1."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        available = min(available, math.ceil(quota))
    return max(1, available)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, else v1 CFS quota); None when unlimited or unknown."""
    sources = (
        (root / "cpu.max",),  # cgroup v2: "<quota> <period>" or "max <period>"
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),  # v1: quota -1 = none
    )
    for files in sources:
        try:
            fields = " ".join(f.read_text() for f in files).split()
            quota, period = float(fields[0]), float(fields[1])
        except (OSError, ValueError, IndexError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None
