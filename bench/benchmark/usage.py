"""CPU accounting arithmetic (pure): counters read before and after a measured run -> cores used.

Every counter is CPU-seconds (cgroup ``usage``, a process tree's user + system time, wrk's
rusage, the host's busy time); over a window of ``wall`` seconds, a delta of ``d`` seconds is
``d / wall`` cores. *Other* is what the host was busy with beyond the system under test, the
Docker engine working for it and wrk: other processes on a shared machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (CFS periods, periods in which the CPU quota throttled the container, seconds throttled)
Throttling = tuple[int, int, float]


def cores(before: Mapping[str, float], after: Mapping[str, float], wall: float) -> dict[str, float]:
    """Cores each component used over ``wall`` seconds; a component read at only one end is left out."""
    return {name: round((after[name] - before[name]) / wall, 3) for name in after if name in before}


def throttling(before: Mapping[str, Throttling], after: Mapping[str, Throttling]) -> dict[str, dict[str, Any]]:
    """Per container: how many CFS periods the run spanned, and in how many the CPU quota throttled it."""
    result = {}
    for name, (periods1, throttled1, seconds1) in after.items():
        if name not in before:
            continue
        periods0, throttled0, seconds0 = before[name]
        periods, throttled = periods1 - periods0, throttled1 - throttled0
        result[name] = {
            "periods": periods,
            "throttled_periods": throttled,
            "throttled_pct": round(100 * throttled / periods, 1) if periods else 0.0,
            "throttled_s": round(seconds1 - seconds0, 3),
        }
    return result


def breakdown(
    system: Mapping[str, float], engine: Mapping[str, float], wrk_seconds: float, host_busy_seconds: float, wall: float
) -> dict[str, Any]:
    """Cores used during the window by the system under test (``system``: cores per component), the
    Docker engine working for it (``engine``), wrk, and *other*: the rest of the host's busy time."""
    system_cores = sum(system.values())
    engine_cores = sum(engine.values())
    wrk_cores = wrk_seconds / wall
    busy_cores = host_busy_seconds / wall
    return {
        "sut_cores": round(system_cores, 3),
        "components_cores": dict(system),
        "engine_cores": round(engine_cores, 3),
        "engine_components_cores": dict(engine),
        "wrk_cores": round(wrk_cores, 3),
        "host_busy_cores": round(busy_cores, 3),
        "other_cores": round(max(0.0, busy_cores - system_cores - engine_cores - wrk_cores), 3),
        "window_s": round(wall, 3),
    }


def requests_per_core(rps: float, cpu: Mapping[str, Any]) -> float | None:
    """Answered requests per second per core of the system under test and the engine working for it."""
    spent = cpu["sut_cores"] + cpu["engine_cores"]
    return round(rps / spent, 1) if cpu["sut_cores"] > 0 else None
