"""wrk: the command line for one run, and its report (pure; the run itself is in :mod:`.measure`).

wrk runs with bench/wrk as its working directory and one of its Lua scripts, which all end with
``report.lua``'s ``done()``: a single line ``BENCH_JSON {...}`` with wrk's exact counters and
latency percentiles in microseconds, read here instead of wrk's rounded text summary.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.addresses import Target

MARKER = "BENCH_JSON "
ERROR_KINDS = ("connect", "read", "write", "timeout")


class WrkOutputError(ValueError):
    """wrk's output holds no ``BENCH_JSON`` line (it failed before its ``done()`` hook)."""


def threads(requested: int, connections: int) -> int:
    """wrk's threads: as requested, but at most one per connection."""
    return max(1, min(requested, connections))


def command(
    target: Target, path: str, script: str, threads: int, connections: int, seconds: int, timeout: int
) -> list[str]:
    """``wrk`` at ``target.url(path)`` with its latency histogram and a Lua ``script`` (in bench/wrk)."""
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s", "--latency",
            "-s", script, target.url(path)]  # fmt: skip


def parse(output: str) -> dict[str, Any]:
    """The ``BENCH_JSON`` document in wrk's output."""
    line = next((ln for ln in output.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise WrkOutputError(f"no {MARKER.strip()} line in wrk's output: {output.strip()[-800:]}")
    return json.loads(line.removeprefix(MARKER))


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Throughput, latency (ms) and errors of one run from its ``BENCH_JSON`` document.

    *ok* are 2xx answers (wrk counts a non-2xx answer as a request and as a ``status`` error);
    *req/s* is ok answers per second of wrk's own duration.
    """
    duration = report["duration_us"] / 1e6
    errors = report["errors"]
    ok = report["requests"] - errors["status"]
    return {
        "duration_s": round(duration, 3),
        "requests": report["requests"],
        "ok": ok,
        "rps": round(ok / duration, 1),
        "rps_all_responses": round(report["requests"] / duration, 1),
        "latency_ms": {k: round(v / 1000, 3) for k, v in report["latency_us"].items()},
        "errors": {
            "non_2xx": errors["status"],
            **{kind: errors[kind] for kind in ERROR_KINDS},
            "total": errors["status"] + sum(errors[kind] for kind in ERROR_KINDS),
        },
    }
