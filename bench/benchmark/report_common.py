"""What the report's modules share: the systems' names and order, the targets, and small helpers to read and
format the results (``latest.json``).
"""

from __future__ import annotations

from typing import Any

ORDER = ["tutorial", "direct", "direct-nobatch", "stack", "mlserver"]
# The performance guard (bench/benchmark/features.py): one replica, each request-path feature on.
GUARD = {
    "f-none": "baseline: 1 model x 1 version, drift off",
    "f-control": "control: the baseline again (noise floor)",
    "f-drift": "+ drift counting",
    "f-repository": "+ 2 models x 2 versions",
    "f-canary": "+ canary 10 %",
    "f-shadow": "+ shadow 100 %",
    "f-reload": "2 x 2, then reload cycles",
}
FEATURE_BUDGET = 0.05  # each feature's share of a replica's req/s at c=16 (the shadow's is reported)
SHADOW_P50_BUDGET_MS = 1.0  # what a 100 % shadow may add to the served p50 at c=1
NGINX_BUDGET_US = 70  # nginx CPU per proxied request
STACK_VS_MLSERVER = 10.0  # the full stack's req/s at c=16 over MLServer's, with every feature on
BUDGETED = ("f-drift", "f-repository", "f-canary")  # the guard's rows held to FEATURE_BUDGET
RELOAD_GROWTH_BUDGET_PCT = 5.0  # memory growth from reload cycle 10 to the last, % of cycle 10's
SHORT = {
    "tutorial": "a) tutorial app",
    "direct": "b) 1 replica direct",
    "direct-nobatch": "b') 1 replica, batching off",
    "stack": "c) full stack (nginx + 3)",
    "mlserver": "d) MLServer",
}
COLORS = {
    "tutorial": "#9e9e9e",
    "direct": "#64b5f6",
    "direct-nobatch": "#bbdefb",
    "stack": "#1565c0",
    "mlserver": "#ef6c00",
}


def runs_of(results: dict[str, Any], key: str) -> dict[int, dict[str, Any]]:
    system = results.get("systems", {}).get(key) or {}
    return {run["concurrency"]: run for run in system.get("runs", [])}


def compared_keys(results: dict[str, Any]) -> list[str]:
    """The compared systems (a-d) present, in report order; the guard's rows are :func:`guard_rows`."""
    present = results.get("systems", {})
    return [k for k in ORDER if k in present] + [k for k in present if k not in ORDER and k not in GUARD]


def cpu_us(run: dict[str, Any] | None) -> float | None:
    """CPU µs of the system under test per answered request."""
    if not run or not run.get("rps"):
        return None
    return sum(run["cpu"]["components_cores"].values()) / run["rps"] * 1e6


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio_text(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}×"


def delta_text(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a - b:+.2f} ms"


def round_delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def value_at(runs: dict[int, dict[str, Any]], c: int, *path: str) -> Any:
    value: Any = runs.get(c)
    for part in path:
        if value is None:
            return None
        value = value.get(part)
    return value


def disturbed_limit(results: dict[str, Any]) -> float:
    return results.get("settings", {}).get("machine_sharing", {}).get("disturbed_cores", 0.3)


def paired_comparison(results: dict[str, Any], group: str, key: str) -> dict[str, Any] | None:
    """``key``'s comparison in a paired-rounds group that measured it, or None."""
    section = (results.get("paired_rounds") or {}).get(group) or {}
    comparison = (section.get("comparisons") or {}).get(key)
    return comparison if comparison and comparison["rps_paired"]["median"] is not None else None


def paired_how(comparison: dict[str, Any], c: int) -> str:
    """Where a verdict's figure comes from: ``median of N paired rounds at c=16``."""
    rounds = sum(r is not None for r in comparison["rps_paired"]["per_round"])
    return f"median of {rounds} paired rounds at c={c}"


def spread_ratio(paired: dict[str, Any]) -> str:
    return f"{paired['median']:.2f}× [{paired['min']:.2f}–{paired['max']:.2f}]"


def spread_change(paired: dict[str, Any]) -> str:
    return f"{paired['median'] - 1:+.1%} [{paired['min'] - 1:+.1%} … {paired['max'] - 1:+.1%}]"


def headline_ok(comparison: dict[str, Any]) -> bool:
    """The full stack has at least STACK_VS_MLSERVER times MLServer's req/s and a lower p99 (paired medians)."""
    p99 = comparison["p99_paired"]["median"]
    return comparison["rps_paired"]["median"] >= STACK_VS_MLSERVER and p99 is not None and p99 < 1


def feature_ok(ratio: float) -> bool:
    """A feature costs at most FEATURE_BUDGET of the baseline's req/s (``ratio``: the row's over the baseline's)."""
    return ratio >= 1 - FEATURE_BUDGET
