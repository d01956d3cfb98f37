"""The report's Markdown (``latest.md``): the title and the machine, the warnings, then each section in turn
(:mod:`.report_tables`, :mod:`.report_paired`, :mod:`.report_guard`), and the failures and anomalies."""

from __future__ import annotations

from typing import Any

from .report_common import SHORT, compared_keys, runs_of
from .report_guard import guard_section
from .report_paired import paired_section
from .report_tables import (
    batching_section,
    cpu_per_request,
    errors_text,
    ratios_section,
    results_table,
    settings_section,
)


def render_markdown(results: dict[str, Any]) -> str:
    conc = results.get("settings", {}).get("concurrency", [1, 16, 64])
    stack, ml, direct = (runs_of(results, k) for k in ("stack", "mlserver", "direct"))
    cost_rows = [cpu_per_request(direct.get(c), stack.get(c)) for c in conc]
    warnings = warnings_of(results)
    lines = header(results)
    if warnings:
        lines += ["Warnings:", "", *[f"- ⚠ {w}" for w in warnings], ""]
    lines += results_table(results)
    lines += ratios_section(results, cost_rows)
    lines += batching_section(results)
    lines += paired_section(results)
    lines += guard_section(results, stack, ml, cost_rows, conc)
    lines += settings_section(results)
    lines += failures_section(results, warnings)
    return "\n".join(lines)


def header(results: dict[str, Any]) -> list[str]:
    """The title, the run and the machine."""
    env = results.get("environment", {})
    settings = results.get("settings", {})
    return [
        "# Benchmark: tutorial app vs model-server vs full stack vs MLServer",
        "",
        f"Run `{results.get('bench_id')}`: {results.get('started', '?')} → {results.get('finished', '?')} "
        f"({results.get('elapsed_s', 0) / 60:.1f} min, `make bench`"
        + "".join(f" {k}={v}" for k, v in settings.get("env_overrides", {}).items())
        + ").",
        "",
        f"**Machine: {env.get('cpu_model', '?')}, {env.get('logical_cpus', '?')} cores — shared by the system under "
        f"test and the load generator (wrk), so every number here is for a system that had at most "
        f"{env.get('logical_cpus', '?')} cores minus wrk's share** (column *wrk CPU*). "
        f"{env.get('memory_total_gib', '?')} GiB RAM, {env.get('os', '?')}, kernel {env.get('kernel', '?')}, "
        f"Docker {env.get('docker', '?')}, Compose {env.get('docker_compose', '?')}, {env.get('wrk', 'wrk')}.",
        "",
    ]


def warnings_of(results: dict[str, Any]) -> list[str]:
    """What may have disturbed the run, or failed."""
    settings = results.get("settings", {})
    keys = compared_keys(results)
    warnings = []
    start = results.get("machine_at_start", {})
    if start.get("other_containers"):
        warnings.append(
            f"the machine is shared: other containers were running when the run started "
            f"({len(start['other_containers'])}: "
            f"{', '.join(start['other_containers'][:6])}{' …' if len(start['other_containers']) > 6 else ''}); "
            "the benchmark waits for an idle machine before each system and measures disturbed runs again (up "
            f"to {settings.get('machine_sharing', {}).get('disturbed_retries', 1)} times, within "
            f"{settings.get('machine_sharing', {}).get('wait_budget_s', '?')} s in all); what remained is in the "
            "*other* CPU column"
        )
    for key in keys:
        system = results["systems"][key]
        before = system.get("machine_before", {})
        if before and not before.get("idle", True):
            warnings.append(
                f"{SHORT.get(key, key)}: the machine was still busy ({before.get('busy_cores')} cores) after "
                f"waiting {before.get('waited_s')} s for it to be idle; other containers then: "
                f"{len(before.get('other_containers', []))}"
            )
        if system.get("status") != "ok":
            warnings.append(f"{SHORT.get(key, key)} FAILED: {system.get('error', '?')}")
        limit = settings.get("machine_sharing", {}).get("disturbed_cores", 0.3)
        busy_runs = [r for r in system.get("runs", []) if r["cpu"].get("other_cores", 0) > limit]
        for run in busy_runs:
            warnings.append(
                f"{SHORT.get(key, key)} c={run['concurrency']}: {run['cpu']['other_cores']:.2f} cores used by "
                "processes outside the system under test and wrk during the measurement"
            )
    for name, section in (results.get("paired_rounds") or {}).items():
        if section.get("status") == "failed":
            warnings.append(f"paired rounds ({section.get('title', name)}) FAILED: {section.get('error', '?')}")
        for key, system in (section.get("systems") or {}).items():
            for r in system["rounds"]:
                if r["errors"]:
                    warnings.append(
                        f"paired rounds: {SHORT.get(key, key)} had {r['errors']} errors in round {r['round']}"
                    )
    if results.get("error"):
        warnings.append(f"the run stopped early: {results['error']}")
    return warnings


def failures_section(results: dict[str, Any], warnings: list[str]) -> list[str]:
    """Failures, errors, CPU quota throttling, and the warnings again."""
    keys = compared_keys(results)
    lines = ["## Failures and anomalies", ""]
    anomalies = []
    for key in keys:
        system = results["systems"][key]
        if system.get("status") != "ok":
            anomalies.append(f"{SHORT.get(key, key)}: failed — {system.get('error')}")
        for run in system.get("runs", []):
            if run["errors"]["total"]:
                anomalies.append(
                    f"{SHORT.get(key, key)} at c={run['concurrency']}: {errors_text(run)} errors "
                    f"out of {run['requests'] + run['errors']['total'] - run['errors']['non_2xx']}"
                )
        for run in system.get("runs", []):
            throttled = {k: v for k, v in run["cpu"].get("cfs_quota_throttling", {}).items() if v["throttled_pct"] >= 5}
            if throttled:
                detail = ", ".join(
                    f"{k} {v['throttled_pct']:.0f}% of periods ({v['throttled_s']:.1f} s)" for k, v in throttled.items()
                )
                anomalies.append(
                    f"{SHORT.get(key, key)} at c={run['concurrency']}: CPU quota (`--cpus`/`MODEL_CPUS`) throttled "
                    f"{detail}: a throttled replica's requests wait for its next 100 ms CFS period"
                )
    anomalies += warnings
    lines += [f"- {a}" for a in dict.fromkeys(anomalies)] if anomalies else ["- none: no errors, every system up."]
    lines += [
        "",
        "Raw numbers, versions and every setting: `latest.json`; wrk's own output and the servers' logs of the "
        "last run: `bench/results/tmp/` (not committed).",
        "",
    ]
    return lines
