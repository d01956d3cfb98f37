"""The report's *Performance guard* section: each row against the baseline, and the verdicts on the targets."""

from __future__ import annotations

from typing import Any

from .report_common import (
    BUDGETED,
    FEATURE_BUDGET,
    GUARD,
    NGINX_BUDGET_US,
    RELOAD_GROWTH_BUDGET_PCT,
    SHADOW_P50_BUDGET_MS,
    STACK_VS_MLSERVER,
    cpu_us,
    feature_ok,
    fmt,
    headline_ok,
    paired_comparison,
    paired_how,
    round_delta,
    runs_of,
    spread_change,
    value_at,
)
from .settings import CONTROL


def guard_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each guard row against the baseline: req/s at c=16 and its change, p50 at c=1 and its change, CPU, memory."""
    base = runs_of(results, "f-none")
    rows = []
    for key in GUARD:
        runs = runs_of(results, key)
        if key not in results.get("systems", {}):
            continue
        rps, base_rps = value_at(runs, 16, "rps"), value_at(base, 16, "rps")
        p50, base_p50 = value_at(runs, 1, "latency_ms", "p50"), value_at(base, 1, "latency_ms", "p50")
        memory = (runs.get(16) or {}).get("memory_mid_run", {}).get("replica", {})
        rows.append(
            {
                "key": key,
                "status": results["systems"][key].get("status"),
                "rps_c16": rps,
                "rps_change": round(rps / base_rps - 1, 4) if rps and base_rps else None,
                "p50_c1_ms": p50,
                "p50_change_ms": round_delta(p50, base_p50),
                "cpu_us_c16": cpu_us(runs.get(16)),
                "memory_mib": memory.get("resident_mib", memory.get("usage_mib")),
                "reload_cycles": results["systems"][key].get("reload_cycles"),
            }
        )
    return rows


def guard_section(
    results: dict[str, Any], stack: dict, ml: dict, cost_rows: list[tuple[float, ...] | None], conc: list[int]
) -> list[str]:
    """The performance guard: each feature's cost against the baseline, and the targets with every feature on."""
    rows = guard_rows(results)
    if not rows:
        return []
    lines = [
        "## Performance guard",
        "",
        "One replica (system b: the same CPUs, memory and workers) serving a host repository built from the "
        "image's model, with one request-path feature on per row (`bench/benchmark/features.py`); the full stack "
        "(c) above ran with **every feature on** (2 models x 2 versions, drift counting, a 10 % canary, a 100 % "
        "shadow). Change = against the baseline row, in the same run. The table holds single runs; the verdicts below "
        "use the paired rounds where they ran.",
        "",
        "| row | req/s c=16 | change | p50 c=1 ms | change | CPU µs/request c=16 | memory MiB (replica) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {GUARD[row['key']]} | failed | | | | | |")
            continue
        change = "–" if row["rps_change"] is None else f"{row['rps_change']:+.1%}"
        p50_change = "–" if row["p50_change_ms"] is None else f"{row['p50_change_ms']:+.2f} ms"
        lines.append(
            f"| {GUARD[row['key']]} | {fmt(row['rps_c16'], 0)} | {change} | {fmt(row['p50_c1_ms'])} | "
            f"{p50_change} | {fmt(row['cpu_us_c16'], 0)} | {fmt(row['memory_mib'], 0)} |"
        )
    lines.append("")
    verdicts = noise_floor(results, rows)
    for row in rows:
        ratio, how = feature_ratio(results, row)
        if row["key"] in BUDGETED and ratio is not None:
            verdicts.append(
                f"{'✅' if feature_ok(ratio) else '❌'} {GUARD[row['key']]}: {ratio - 1:+.1%} of the baseline's req/s "
                f"({how}; budget −{FEATURE_BUDGET:.0%})"
            )
        if row["key"] == "f-shadow" and row["p50_change_ms"] is not None and ratio is not None:
            ok = row["p50_change_ms"] <= SHADOW_P50_BUDGET_MS
            verdicts.append(
                f"{'✅' if ok else '❌'} 100 % shadow: p50 at c=1 {row['p50_change_ms']:+.2f} ms (single run; budget "
                f"+{SHADOW_P50_BUDGET_MS:.0f} ms); it runs the model twice: {ratio - 1:+.1%} of the baseline's req/s "
                f"({how})"
            )
        if row["key"] == "f-reload" and paired_comparison(results, "guard", "f-reload") and ratio is not None:
            verdicts.append(
                f"2 x 2 after its reload cycles: {ratio - 1:+.1%} of the baseline's req/s ({how}; reported)"
            )
        if row.get("reload_cycles"):
            verdicts.append(reload_memory(row["reload_cycles"]))
    verdicts += headline_verdict(results, stack, ml)
    if 16 in conc and cost_rows and cost_rows[conc.index(16)]:
        nginx_us = cost_rows[conc.index(16)][2]
        ok = nginx_us <= NGINX_BUDGET_US
        verdicts.append(
            f"{'✅' if ok else '❌'} nginx: {nginx_us:.0f} µs of CPU per proxied request at c=16 "
            f"(budget {NGINX_BUDGET_US} µs)"
        )
    return [*lines, *[f"- {v}" for v in verdicts], ""]


def noise_floor(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The control row (the baseline again) against the baseline, stated next to the budgets: how far two identical
    replicas differ in this run. No verdict of its own."""
    comparison = paired_comparison(results, "guard", CONTROL)
    if comparison is not None:
        how = paired_how(comparison, results["paired_rounds"]["guard"]["concurrency"])
        floor = f"{spread_change(comparison['rps_paired'])} ({how})"
    else:
        row = next((row for row in rows if row["key"] == CONTROL and row["rps_change"] is not None), None)
        if row is None:
            return []
        floor = f"{row['rps_change']:+.1%} (single run at c=16)"
    return [f"noise floor this run: control vs baseline {floor}, two identical replicas: no budget of its own"]


def feature_ratio(results: dict[str, Any], row: dict[str, Any]) -> tuple[float | None, str]:
    """A guard row's req/s over the baseline's: the median of the paired rounds when they measured it, else the
    single run's; and where it comes from."""
    comparison = paired_comparison(results, "guard", row["key"])
    if comparison is None:
        return None if row["rps_change"] is None else 1 + row["rps_change"], "single run at c=16"
    paired = comparison["rps_paired"]
    how = paired_how(comparison, results["paired_rounds"]["guard"]["concurrency"])
    return paired["median"], f"{how}, {paired['min'] - 1:+.1%} … {paired['max'] - 1:+.1%}"


def reload_memory(cycles: dict[str, Any]) -> str:
    """The replica's memory over the reload cycles; judged on the growth after the first ones (features.py)."""

    def resident(memory: dict[str, Any] | None) -> str:
        return fmt((memory or {}).get("replica", {}).get("resident_mib"), 0)

    growth = cycles.get("growth_after_warm")
    if not growth:
        return (
            f"memory of the replica with 2 x 2 loaded: {resident(cycles['memory_before'])} MiB; after "
            f"{cycles['cycles']} reload cycles ({cycles['seconds']} s): {resident(cycles['memory_after'])} MiB"
        )
    ok = growth["pct_of_warm"] <= RELOAD_GROWTH_BUDGET_PCT
    first, last = growth["from_cycle"], growth["to_cycle"]
    return (
        f"{'✅' if ok else '❌'} memory of the replica over {last} reload cycles ({cycles['seconds']} s): "
        f"{resident(cycles['memory_before'])} MiB with 2 x 2 loaded, {resident(cycles['memory_warm'])} MiB after "
        f"{first} cycles (each worker's first reloads load its own copies), {resident(cycles['memory_after'])} MiB "
        f"after {last}: {growth['mib']:+.1f} MiB from cycle {first} to {last}, {growth['pct_of_warm']:+.1f} % of "
        f"cycle {first}'s, {growth['mib_per_cycle']:.2f} MiB per cycle (budget +{RELOAD_GROWTH_BUDGET_PCT:.0f} %)"
    )


def headline_verdict(results: dict[str, Any], stack: dict, ml: dict) -> list[str]:
    """The full stack against MLServer: from the paired rounds when they ran, else from the single runs at c=16."""
    comparison = paired_comparison(results, "headline", "stack")
    if comparison is not None:
        rps, p99 = comparison["rps_paired"], comparison["p99_paired"]
        lower = p99["median"] is not None and p99["median"] < 1
        how = paired_how(comparison, results["paired_rounds"]["headline"]["concurrency"])
        return [
            f"{'✅' if headline_ok(comparison) else '❌'} full stack, every feature on, vs MLServer: "
            f"{rps['median']:.2f}× the req/s ({how}, {rps['min']:.2f}–{rps['max']:.2f}×; target ≥ "
            f"{STACK_VS_MLSERVER:.0f}×), p99 {fmt(p99['median'])}× MLServer's ({'lower' if lower else 'NOT lower'})"
        ]
    if not value_at(stack, 16, "rps") or not value_at(ml, 16, "rps"):
        return []
    ratio = value_at(stack, 16, "rps") / value_at(ml, 16, "rps")
    lower_p99 = (value_at(stack, 16, "latency_ms", "p99") or 0) < (value_at(ml, 16, "latency_ms", "p99") or 0)
    ok = ratio >= STACK_VS_MLSERVER and lower_p99
    return [
        f"{'✅' if ok else '❌'} full stack, every feature on, vs MLServer at c=16: {ratio:.2f}× the req/s "
        f"(single run; target ≥ {STACK_VS_MLSERVER:.0f}×), p99 {'lower' if lower_p99 else 'NOT lower'}"
    ]
