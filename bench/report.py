"""Render the benchmark's JSON as Markdown (tables, ratios) and a PNG (grouped bars: req/s and p99).

``python bench/report.py [bench/results/latest.json]`` writes ``latest.md`` and ``latest.png`` next
to the JSON; bench/run calls it after the run (python -m bench.benchmark), and it can re-render an old result file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ORDER = ["tutorial", "direct", "direct-nobatch", "stack", "mlserver"]
# The performance guard (bench/benchmark/features.py): one replica, each request-path feature on.
GUARD = {
    "f-none": "baseline: 1 model x 1 version, drift off",
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


def _runs(results: dict[str, Any], key: str) -> dict[int, dict[str, Any]]:
    system = results.get("systems", {}).get(key) or {}
    return {run["concurrency"]: run for run in system.get("runs", [])}


def _systems(results: dict[str, Any]) -> list[str]:
    """The compared systems (a-d) present, in report order; the guard's rows are :func:`guard_rows`."""
    present = results.get("systems", {})
    return [k for k in ORDER if k in present] + [k for k in present if k not in ORDER and k not in GUARD]


def _cpu_us(run: dict[str, Any] | None) -> float | None:
    """CPU µs of the system under test per answered request."""
    if not run or not run.get("rps"):
        return None
    return sum(run["cpu"]["components_cores"].values()) / run["rps"] * 1e6


def guard_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each guard row against the baseline: req/s at c=16 and its change, p50 at c=1 and its change, CPU, memory."""
    base = _runs(results, "f-none")
    rows = []
    for key in GUARD:
        runs = _runs(results, key)
        if key not in results.get("systems", {}):
            continue
        rps, base_rps = _get(runs, 16, "rps"), _get(base, 16, "rps")
        p50, base_p50 = _get(runs, 1, "latency_ms", "p50"), _get(base, 1, "latency_ms", "p50")
        memory = (runs.get(16) or {}).get("memory_mid_run", {}).get("replica", {})
        rows.append(
            {
                "key": key,
                "status": results["systems"][key].get("status"),
                "rps_c16": rps,
                "rps_change": round(rps / base_rps - 1, 4) if rps and base_rps else None,
                "p50_c1_ms": p50,
                "p50_change_ms": _round_delta(p50, base_p50),
                "cpu_us_c16": _cpu_us(runs.get(16)),
                "memory_mib": memory.get("resident_mib", memory.get("usage_mib")),
                "reload_cycles": results["systems"][key].get("reload_cycles"),
            }
        )
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _errors(run: dict[str, Any]) -> str:
    errors = run["errors"]
    if not errors["total"]:
        return "0"
    parts = [f"{k.replace('_', '-')} {v}" for k, v in errors.items() if k != "total" and v]
    return f"**{errors['total']}** ({', '.join(parts)})"


def _memory(run: dict[str, Any], key: str) -> str:
    memory = run.get("memory_mid_run") or {}
    if "process tree" in memory:
        m = memory["process tree"]
        return f"{m['resident_mib']:.0f} ({m.get('processes', '?')} proc.)"
    replicas = [v for k, v in memory.items() if k.startswith("model-") or k == "replica"]
    text = " / ".join(f"{v.get('resident_mib', v.get('usage_mib', 0)):.0f}" for v in replicas)
    if "nginx-1" in memory:
        text += f" (nginx {memory['nginx-1'].get('resident_mib', memory['nginx-1'].get('usage_mib', 0)):.0f})"
    return text or "–"


def _addresses(results: dict[str, Any]) -> str:
    """Where each system was reached: loopback for host processes, its own container's bridge address for
    the others (no published port, so no docker-proxy on the way). Older results name one host for all."""
    reached = {key: system["address"] for key, system in results.get("systems", {}).items() if system.get("address")}
    if not reached:
        return f"every system at {results.get('settings', {}).get('host', '?')} (through published ports)"
    listed = "; ".join(
        f"{SHORT.get(key, key)} `{a['host']}:{a['port']}` ({a['where']})"
        for key, a in sorted(reached.items(), key=lambda item: _order(item[0]))
    )
    return (
        f"{listed} — load went only to loopback and to containers this run started (their bridge addresses, "
        "read with `docker inspect`), straight to each system: no published port, no docker-proxy relaying it"
    )


def _order(key: str) -> int:
    return ORDER.index(key) if key in ORDER else len(ORDER)


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}×"


def _delta(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a - b:+.2f} ms"


def _cpu_per_request(direct: dict[str, Any] | None, stack: dict[str, Any] | None) -> tuple[float, ...] | None:
    """(b)'s replica, (c)'s replicas and (c)'s nginx: CPU µs per answered request."""
    if not direct or not stack or not direct.get("rps") or not stack.get("rps"):
        return None
    b_cores = sum(direct["cpu"]["components_cores"].values())
    components = stack["cpu"]["components_cores"]
    nginx = sum(v for k, v in components.items() if k.startswith("nginx"))
    replicas = sum(v for k, v in components.items() if k.startswith("model"))
    return b_cores / direct["rps"] * 1e6, replicas / stack["rps"] * 1e6, nginx / stack["rps"] * 1e6


def _get(runs: dict[int, dict[str, Any]], c: int, *path: str) -> Any:
    value: Any = runs.get(c)
    for part in path:
        if value is None:
            return None
        value = value.get(part)
    return value


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The comparisons the report leads with, also stored back into the JSON."""
    conc = results.get("settings", {}).get("concurrency", [1, 16, 64])
    runs = {k: _runs(results, k) for k in _systems(results)}
    stack, direct, ml, tut = (runs.get(k, {}) for k in ("stack", "direct", "mlserver", "tutorial"))
    nobatch = runs.get("direct-nobatch", {})

    def pair(a: dict, b: dict, c: int) -> dict[str, Any]:
        ra, rb = _get(a, c, "rps"), _get(b, c, "rps")
        pa, pb = _get(a, c, "latency_ms", "p99"), _get(b, c, "latency_ms", "p99")
        return {
            "rps_ratio": round(ra / rb, 3) if ra and rb else None,
            "p99_ratio": round(pa / pb, 3) if pa and pb else None,
            "p50_delta_ms": _round_delta(_get(a, c, "latency_ms", "p50"), _get(b, c, "latency_ms", "p50")),
            "p99_delta_ms": _round_delta(pa, pb),
        }

    out: dict[str, Any] = {
        "stack_vs_mlserver": {c: pair(stack, ml, c) for c in conc},
        "stack_vs_direct_nginx_overhead": {c: pair(stack, direct, c) for c in conc},
        "stack_vs_tutorial": {c: pair(stack, tut, c) for c in conc},
        "direct_vs_mlserver": {c: pair(direct, ml, c) for c in conc},
    }
    if nobatch:
        out["batching_on_vs_off_direct"] = {c: pair(direct, nobatch, c) for c in sorted(nobatch)}
    guard = guard_rows(results)
    if guard:
        out["performance_guard"] = guard
    return out


def _round_delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def render_markdown(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    settings = results.get("settings", {})
    conc = settings.get("concurrency", [1, 16, 64])
    keys = _systems(results)
    lines = [
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
    if results.get("error"):
        warnings.append(f"the run stopped early: {results['error']}")
    if warnings:
        lines += ["Warnings:", "", *[f"- ⚠ {w}" for w in warnings], ""]

    lines += [
        "![req/s and p99 latency per system and concurrency](latest.png)",
        "",
        "## Results",
        "",
        f'One row per POST (the tutorial\'s `{{"features": [1, 2, 3, 4]}}`; MLServer: the same row as a V2 FP64 '
        f"`[1, 4]` tensor). {settings.get('wrk', '')}. *req/s* counts 2xx answers only. *errors* = non-2xx + wrk "
        "socket errors (connect, read, write, timeout). *CPU* = cores used during the measured window by: the "
        "system under test (containers' cgroups, or the host process tree) / the Docker engine working for it "
        "(dockerd + containerd shipping the containers' logs, the containers' shims) / wrk / anything else on the "
        "machine. *req/s per core* = req/s ÷ (SUT + engine). "
        "*memory* = resident MiB half-way through the run (anonymous + mapped pages: per replica for "
        "containers, PSS of the whole process tree for host processes). ⚠ = other processes on the machine "
        "used more than "
        f"{settings.get('machine_sharing', {}).get('disturbed_cores', 0.3)} cores during that run.",
        "",
        "| system | c | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | CPU cores: SUT / engine / wrk / other "
        "| req/s per core | memory MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for key in keys:
        runs = _runs(results, key)
        if not runs:
            lines.append(f"| {SHORT.get(key, key)} | – | failed | | | | | | | | |")
            continue
        for c, run in sorted(runs.items()):
            lat, cpu = run["latency_ms"], run["cpu"]
            limit = settings.get("machine_sharing", {}).get("disturbed_cores", 0.3)
            mark = " ⚠" if cpu.get("other_cores", 0) > limit else ""
            lines.append(
                f"| {SHORT.get(key, key)} | {c} | {run['rps']:,.0f}{mark} | {lat['p50']:.2f} | {lat['p95']:.2f} | "
                f"{lat['p99']:.2f} | {lat['max']:.1f} | {_errors(run)} | {cpu['sut_cores']:.2f} / "
                f"{cpu.get('engine_cores', 0):.2f} / {cpu['wrk_cores']:.2f} / {cpu['other_cores']:.2f} | "
                f"{_fmt(run.get('rps_per_core'), 0)} | {_memory(run, key)} |"
            )
    lines.append("")

    r = results.get("ratios") or ratios(results)
    stack, ml, direct, tut = (_runs(results, k) for k in ("stack", "mlserver", "direct", "tutorial"))
    lines += ["## Ratios", ""]
    c16 = 16 if 16 in conc else conc[len(conc) // 2]
    sm = r["stack_vs_mlserver"].get(c16) or r["stack_vs_mlserver"].get(str(c16)) or {}
    lines += [
        f"- **Full stack vs MLServer at c={c16}: {_fmt(sm.get('rps_ratio'))}× the req/s** "
        f"({_fmt(_get(stack, c16, 'rps'), 0)} vs {_fmt(_get(ml, c16, 'rps'), 0)}); "
        f"**p99 {_fmt(_get(stack, c16, 'latency_ms', 'p99'))} ms vs {_fmt(_get(ml, c16, 'latency_ms', 'p99'))} ms** "
        f"({_fmt(sm.get('p99_ratio'))}×).",
        "",
        "| c | stack / MLServer req/s | stack / MLServer p99 | nginx overhead: stack / direct req/s | "
        "stack − direct p50 | stack − direct p99 | stack / tutorial req/s | stack / tutorial p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in conc:
        lines.append(
            f"| {c} | {_ratio(_get(stack, c, 'rps'), _get(ml, c, 'rps'))} | "
            f"{_ratio(_get(stack, c, 'latency_ms', 'p99'), _get(ml, c, 'latency_ms', 'p99'))} | "
            f"{_ratio(_get(stack, c, 'rps'), _get(direct, c, 'rps'))} | "
            f"{_delta(_get(stack, c, 'latency_ms', 'p50'), _get(direct, c, 'latency_ms', 'p50'))} | "
            f"{_delta(_get(stack, c, 'latency_ms', 'p99'), _get(direct, c, 'latency_ms', 'p99'))} | "
            f"{_ratio(_get(stack, c, 'rps'), _get(tut, c, 'rps'))} | "
            f"{_ratio(_get(stack, c, 'latency_ms', 'p99'), _get(tut, c, 'latency_ms', 'p99'))} |"
        )
    lines.append("")
    lines.append(
        "*nginx overhead* compares (c) with (b), which has the same total gunicorn workers and the same CPU the "
        "stack's replicas can use together: the difference is nginx's hop (and the split into 3 replicas)."
    )
    lines.append("")
    cost_rows = [_cpu_per_request(direct.get(c), stack.get(c)) for c in conc]
    if any(cost_rows):
        lines += [
            "Where it goes: both (b) and (c) keep the 2 cores busy at c ≥ 16, so what the stack spends per request "
            "beyond (b) is throughput lost. CPU per answered request, in µs (containers' cgroup time ÷ req/s):",
            "",
            "| c | (b) replica | (c) replicas | (c) nginx | (c) total | (c) − (b) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c, row in zip(conc, cost_rows, strict=True):
            if row:
                b_us, replicas_us, nginx_us = row
                total = replicas_us + nginx_us
                cells = (b_us, replicas_us, nginx_us, total)
                lines.append(f"| {c} | " + " | ".join(f"{v:,.0f}" for v in cells) + f" | +{total - b_us:,.0f} |")
        lines.append("")
    batching = settings.get("batching", {})
    nobatch = _runs(results, "direct-nobatch")
    if nobatch:
        lines += [
            "**Batching** (b, server defaults, vs b', `"
            + " ".join(f"{k}={v}" for k, v in batching.get("off_env", {}).items())
            + "`):",
            "",
        ]
        for c in sorted(nobatch):
            lines.append(
                f"- c={c}: p99 {_fmt(_get(direct, c, 'latency_ms', 'p99'))} ms with batching vs "
                f"{_fmt(_get(nobatch, c, 'latency_ms', 'p99'))} ms without "
                f"(**{_delta(_get(direct, c, 'latency_ms', 'p99'), _get(nobatch, c, 'latency_ms', 'p99'))}**); "
                f"req/s {_fmt(_get(direct, c, 'rps'), 0)} vs {_fmt(_get(nobatch, c, 'rps'), 0)} "
                f"({_ratio(_get(direct, c, 'rps'), _get(nobatch, c, 'rps'))})."
            )
        lines.append("")
    else:
        lines += [f"**Batching p99 delta at c=1**: not measured — {batching.get('note', 'no batching toggle')}.", ""]

    lines += _guard_section(results, _runs(results, "stack"), _runs(results, "mlserver"), cost_rows, conc)
    lines += ["## Settings", ""]
    stack_s = settings.get("stack", {})
    direct_s = settings.get("direct", {})
    lines += [
        f"- Load generator: {settings.get('wrk', '')}; systems run one at a time, in this order: "
        f"{', '.join(settings.get('systems_order', []))}.",
        f"- Addresses: {_addresses(results)}.",
        f"- (c) full stack: {stack_s.get('replicas')} replicas × {stack_s.get('gunicorn_workers')} gunicorn gevent "
        f"worker, {stack_s.get('model_cpus')} CPU and "
        f"{stack_s.get('model_memory')} per replica (compose defaults). **nginx rate limit raised to "
        f"{stack_s.get('nginx_rate_limit')}, burst {stack_s.get('nginx_rate_burst')}** (defaults 100r/s, burst "
        "200) so the limiter does not throttle the benchmark's single client address.",
        f"- (b) one replica direct: the same image, `docker run` with the compose service's environment and "
        f"hardening, {direct_s.get('gunicorn_workers')} gevent workers, "
        f"`--cpus {direct_s.get('cpus')}`, `--memory {direct_s.get('memory')}`: the stack's total worker count and "
        "the CPU its replicas can use together on this machine, so (c) vs (b) isolates nginx.",
    ]
    ml_s = (results.get("systems", {}).get("mlserver") or {}).get("settings", {})
    if ml_s:
        lines.append(
            f"- (d) MLServer {env.get('mlserver_venv', {}).get('mlserver', '?')} on Python "
            f"{env.get('mlserver_venv', {}).get('python', '?')}: `mlserver start`, its defaults except the "
            f"address and ports (parallel_workers {ml_s.get('parallel_workers')}, access log "
            f"{'on' if ml_s.get('debug (access log)') else 'off'}, adaptive batching off), model "
            "`mlserver_sklearn.SKLearnModel` loading a joblib file."
        )
    tut_s = (results.get("systems", {}).get("tutorial") or {}).get("settings", {})
    if tut_s:
        lines.append(
            f"- (a) tutorial app (`bench/tutorial_app.py`): {tut_s.get('server')}; Flask "
            f"{env.get('bench_packages', {}).get('Flask', '?')}, Python {env.get('bench_python', '?')}."
        )
    model = results.get("model", {})
    if model:
        lines.append(
            f"- Model: {model.get('estimator')} {model.get('params')} from `{model.get('source')}` "
            f"(sha256 `{str(model.get('sha256', ''))[:12]}…`); the tutorial gets a pickle and MLServer a joblib of "
            f"the same fitted estimator; every system answered all {model.get('check_rows')} check rows (iris + "
            "the tutorial's row + random rows) exactly like it before and after its measurement; an identical fit "
            f"made by the benchmark agrees: {model.get('identical_refit_agrees')}."
        )
    if settings.get("model_env_extra"):
        lines.append(f"- Extra model-server env (BENCH_MODEL_ENV): `{settings['model_env_extra']}`.")
    lines.append(f"- Batching: {batching.get('note', '–')}.")
    lines.append("")

    lines += ["## Failures and anomalies", ""]
    anomalies = []
    for key in keys:
        system = results["systems"][key]
        if system.get("status") != "ok":
            anomalies.append(f"{SHORT.get(key, key)}: failed — {system.get('error')}")
        for run in system.get("runs", []):
            if run["errors"]["total"]:
                anomalies.append(
                    f"{SHORT.get(key, key)} at c={run['concurrency']}: {_errors(run)} errors "
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
    return "\n".join(lines)


def _guard_section(
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
        "shadow). Change = against the baseline row, in the same run.",
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
            f"| {GUARD[row['key']]} | {_fmt(row['rps_c16'], 0)} | {change} | {_fmt(row['p50_c1_ms'])} | "
            f"{p50_change} | {_fmt(row['cpu_us_c16'], 0)} | {_fmt(row['memory_mib'], 0)} |"
        )
    lines.append("")
    verdicts = []
    for row in rows:
        if row["key"] in ("f-drift", "f-repository", "f-canary") and row["rps_change"] is not None:
            ok = row["rps_change"] >= -FEATURE_BUDGET
            verdicts.append(
                f"{'✅' if ok else '❌'} {GUARD[row['key']]}: {row['rps_change']:+.1%} of the baseline's req/s at c=16 "
                f"(budget −{FEATURE_BUDGET:.0%})"
            )
        if row["key"] == "f-shadow" and row["p50_change_ms"] is not None:
            ok = row["p50_change_ms"] <= SHADOW_P50_BUDGET_MS
            verdicts.append(
                f"{'✅' if ok else '❌'} 100 % shadow: p50 at c=1 {row['p50_change_ms']:+.2f} ms (budget "
                f"+{SHADOW_P50_BUDGET_MS:.0f} ms); it runs the model twice: req/s at c=16 {row['rps_change']:+.1%}"
            )
        cycles = row.get("reload_cycles")
        if cycles:
            before = cycles["memory_before"].get("replica", {})
            after = cycles["memory_after"].get("replica", {})
            verdicts.append(
                f"memory of the replica with 2 x 2 loaded: {_fmt(before.get('resident_mib'), 0)} MiB; after "
                f"{cycles['cycles']} reload cycles ({cycles['seconds']} s): {_fmt(after.get('resident_mib'), 0)} MiB"
            )
    c16 = 16 if 16 in conc else None
    ratio = _get(stack, 16, "rps") / _get(ml, 16, "rps") if _get(stack, 16, "rps") and _get(ml, 16, "rps") else None
    if ratio is not None:
        lower_p99 = (_get(stack, 16, "latency_ms", "p99") or 0) < (_get(ml, 16, "latency_ms", "p99") or 0)
        ok = ratio >= STACK_VS_MLSERVER and lower_p99
        verdicts.append(
            f"{'✅' if ok else '❌'} full stack, every feature on, vs MLServer at c=16: {ratio:.2f}× the req/s "
            f"(target ≥ {STACK_VS_MLSERVER:.0f}×), p99 {'lower' if lower_p99 else 'NOT lower'}"
        )
    if c16 is not None and cost_rows and cost_rows[conc.index(16)]:
        nginx_us = cost_rows[conc.index(16)][2]
        ok = nginx_us <= NGINX_BUDGET_US
        verdicts.append(
            f"{'✅' if ok else '❌'} nginx: {nginx_us:.0f} µs of CPU per proxied request at c=16 "
            f"(budget {NGINX_BUDGET_US} µs)"
        )
    return [*lines, *[f"- {v}" for v in verdicts], ""]


def render_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = results.get("settings", {}).get("concurrency", [1, 16, 64])
    keys = [k for k in _systems(results) if _runs(results, k)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(1, len(keys))
    for ax, metric, title in (
        (axes[0], "rps", "throughput (2xx req/s, higher is better)"),
        (axes[1], "p99", "p99 latency (ms, log scale, lower is better)"),
    ):
        for i, key in enumerate(keys):
            runs = _runs(results, key)
            xs, ys = [], []
            for j, c in enumerate(conc):
                if c in runs:
                    xs.append(j + (i - (len(keys) - 1) / 2) * width)
                    ys.append(runs[c]["rps"] if metric == "rps" else runs[c]["latency_ms"]["p99"])
            bars = ax.bar(xs, ys, width, label=SHORT.get(key, key), color=COLORS.get(key))
            labels = [f"{y:,.0f}" if metric == "rps" else f"{y:.1f}" for y in ys]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2, rotation=90)
        ax.set_xticks(range(len(conc)), [f"c={c}" for c in conc])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if metric == "p99":
            ax.set_yscale("log")
        ax.margins(y=0.25)
    axes[0].legend(fontsize=8, loc="upper left")
    env = results.get("environment", {})
    fig.suptitle(
        f"one row per POST, wrk, {results.get('settings', {}).get('duration_s')} s per point — "
        f"{env.get('cpu_model', '?')}, {env.get('logical_cpus', '?')} cores shared with the load generator",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    json_path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    results = json.loads(json_path.read_text())
    results["ratios"] = ratios(results)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(render_markdown(results))
    written = [json_path.with_suffix(".md")]
    if any(_runs(results, k) for k in _systems(results)):
        render_png(results, json_path.with_suffix(".png"))
        written.append(json_path.with_suffix(".png"))
    print("wrote " + " and ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
