"""The report's tables and sections: the results, the ratios (also stored back into the JSON), batching, the
settings."""

from __future__ import annotations

from typing import Any

from .report_common import (
    ORDER,
    SHORT,
    compared_keys,
    delta_text,
    fmt,
    ratio_text,
    round_delta,
    runs_of,
    value_at,
)
from .report_guard import guard_rows
from .report_paired import headline_paired, rounds_settings


def errors_text(run: dict[str, Any]) -> str:
    errors = run["errors"]
    if not errors["total"]:
        return "0"
    parts = [f"{k.replace('_', '-')} {v}" for k, v in errors.items() if k != "total" and v]
    return f"**{errors['total']}** ({', '.join(parts)})"


def memory_text(run: dict[str, Any], key: str) -> str:
    memory = run.get("memory_mid_run") or {}
    if "process tree" in memory:
        m = memory["process tree"]
        return f"{m['resident_mib']:.0f} ({m.get('processes', '?')} proc.)"
    replicas = [v for k, v in memory.items() if k.startswith("model-") or k == "replica"]
    text = " / ".join(f"{v.get('resident_mib', v.get('usage_mib', 0)):.0f}" for v in replicas)
    if "nginx-1" in memory:
        text += f" (nginx {memory['nginx-1'].get('resident_mib', memory['nginx-1'].get('usage_mib', 0)):.0f})"
    return text or "–"


def addresses(results: dict[str, Any]) -> str:
    """Where each system was reached: loopback for host processes, its own container's bridge address for
    the others (no published port, so no docker-proxy on the way). Older results name one host for all."""
    reached = {key: system["address"] for key, system in results.get("systems", {}).items() if system.get("address")}
    if not reached:
        return f"every system at {results.get('settings', {}).get('host', '?')} (through published ports)"
    listed = "; ".join(
        f"{SHORT.get(key, key)} `{a['host']}:{a['port']}` ({a['where']})"
        for key, a in sorted(reached.items(), key=lambda item: order_of(item[0]))
    )
    return (
        f"{listed} — load went only to loopback and to containers this run started (their bridge addresses, "
        "read with `docker inspect`), straight to each system: no published port, no docker-proxy relaying it"
    )


def order_of(key: str) -> int:
    return ORDER.index(key) if key in ORDER else len(ORDER)


def cpu_per_request(direct: dict[str, Any] | None, stack: dict[str, Any] | None) -> tuple[float, ...] | None:
    """(b)'s replica, (c)'s replicas and (c)'s nginx: CPU µs per answered request."""
    if not direct or not stack or not direct.get("rps") or not stack.get("rps"):
        return None
    b_cores = sum(direct["cpu"]["components_cores"].values())
    components = stack["cpu"]["components_cores"]
    nginx = sum(v for k, v in components.items() if k.startswith("nginx"))
    replicas = sum(v for k, v in components.items() if k.startswith("model"))
    return b_cores / direct["rps"] * 1e6, replicas / stack["rps"] * 1e6, nginx / stack["rps"] * 1e6


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The comparisons the report leads with, also stored back into the JSON."""
    conc = results.get("settings", {}).get("concurrency", [1, 16, 64])
    runs = {k: runs_of(results, k) for k in compared_keys(results)}
    stack, direct, ml, tut = (runs.get(k, {}) for k in ("stack", "direct", "mlserver", "tutorial"))
    nobatch = runs.get("direct-nobatch", {})

    def pair(a: dict, b: dict, c: int) -> dict[str, Any]:
        ra, rb = value_at(a, c, "rps"), value_at(b, c, "rps")
        pa, pb = value_at(a, c, "latency_ms", "p99"), value_at(b, c, "latency_ms", "p99")
        return {
            "rps_ratio": round(ra / rb, 3) if ra and rb else None,
            "p99_ratio": round(pa / pb, 3) if pa and pb else None,
            "p50_delta_ms": round_delta(value_at(a, c, "latency_ms", "p50"), value_at(b, c, "latency_ms", "p50")),
            "p99_delta_ms": round_delta(pa, pb),
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


def results_table(results: dict[str, Any]) -> list[str]:
    """Every run of the compared systems (a-d)."""
    settings = results.get("settings", {})
    keys = compared_keys(results)
    lines = [
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
        runs = runs_of(results, key)
        if not runs:
            lines.append(f"| {SHORT.get(key, key)} | – | failed | | | | | | | | |")
            continue
        for c, run in sorted(runs.items()):
            lat, cpu = run["latency_ms"], run["cpu"]
            limit = settings.get("machine_sharing", {}).get("disturbed_cores", 0.3)
            mark = " ⚠" if cpu.get("other_cores", 0) > limit else ""
            lines.append(
                f"| {SHORT.get(key, key)} | {c} | {run['rps']:,.0f}{mark} | {lat['p50']:.2f} | {lat['p95']:.2f} | "
                f"{lat['p99']:.2f} | {lat['max']:.1f} | {errors_text(run)} | {cpu['sut_cores']:.2f} / "
                f"{cpu.get('engine_cores', 0):.2f} / {cpu['wrk_cores']:.2f} / {cpu['other_cores']:.2f} | "
                f"{fmt(run.get('rps_per_core'), 0)} | {memory_text(run, key)} |"
            )
    lines.append("")
    return lines


def ratios_section(results: dict[str, Any], cost_rows: list[tuple[float, ...] | None]) -> list[str]:
    """The comparisons at each concurrency, and where (c)'s CPU per request goes."""
    settings = results.get("settings", {})
    conc = settings.get("concurrency", [1, 16, 64])
    lines: list[str] = []
    r = results.get("ratios") or ratios(results)
    stack, ml, direct, tut = (runs_of(results, k) for k in ("stack", "mlserver", "direct", "tutorial"))
    lines += ["## Ratios", ""]
    c16 = 16 if 16 in conc else conc[len(conc) // 2]
    sm = r["stack_vs_mlserver"].get(c16) or r["stack_vs_mlserver"].get(str(c16)) or {}
    lines += [
        f"- **Full stack vs MLServer at c={c16}: {fmt(sm.get('rps_ratio'))}× the req/s** "
        f"({fmt(value_at(stack, c16, 'rps'), 0)} vs {fmt(value_at(ml, c16, 'rps'), 0)}); "
        f"**p99 {fmt(value_at(stack, c16, 'latency_ms', 'p99'))} ms vs "
        f"{fmt(value_at(ml, c16, 'latency_ms', 'p99'))} ms** "
        f"({fmt(sm.get('p99_ratio'))}×).",
        *headline_paired(results),
        "",
        "| c | stack / MLServer req/s | stack / MLServer p99 | nginx overhead: stack / direct req/s | "
        "stack − direct p50 | stack − direct p99 | stack / tutorial req/s | stack / tutorial p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in conc:
        lines.append(
            f"| {c} | {ratio_text(value_at(stack, c, 'rps'), value_at(ml, c, 'rps'))} | "
            f"{ratio_text(value_at(stack, c, 'latency_ms', 'p99'), value_at(ml, c, 'latency_ms', 'p99'))} | "
            f"{ratio_text(value_at(stack, c, 'rps'), value_at(direct, c, 'rps'))} | "
            f"{delta_text(value_at(stack, c, 'latency_ms', 'p50'), value_at(direct, c, 'latency_ms', 'p50'))} | "
            f"{delta_text(value_at(stack, c, 'latency_ms', 'p99'), value_at(direct, c, 'latency_ms', 'p99'))} | "
            f"{ratio_text(value_at(stack, c, 'rps'), value_at(tut, c, 'rps'))} | "
            f"{ratio_text(value_at(stack, c, 'latency_ms', 'p99'), value_at(tut, c, 'latency_ms', 'p99'))} |"
        )
    lines.append("")
    lines.append(
        "*nginx overhead* compares (c) with (b), which has the same total gunicorn workers and the same CPU the "
        "stack's replicas can use together: the difference is nginx's hop (and the split into 3 replicas)."
    )
    lines.append("")
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
    return lines


def batching_section(results: dict[str, Any]) -> list[str]:
    """(b) with micro-batching against (b') without."""
    settings = results.get("settings", {})
    direct = runs_of(results, "direct")
    lines: list[str] = []
    batching = settings.get("batching", {})
    nobatch = runs_of(results, "direct-nobatch")
    if nobatch:
        lines += [
            "**Batching** (b, server defaults, vs b', `"
            + " ".join(f"{k}={v}" for k, v in batching.get("off_env", {}).items())
            + "`):",
            "",
        ]
        for c in sorted(nobatch):
            on, off = value_at(direct, c, "latency_ms", "p99"), value_at(nobatch, c, "latency_ms", "p99")
            lines.append(
                f"- c={c}: p99 {fmt(on)} ms with batching vs {fmt(off)} ms without (**{delta_text(on, off)}**); "
                f"req/s {fmt(value_at(direct, c, 'rps'), 0)} vs {fmt(value_at(nobatch, c, 'rps'), 0)} "
                f"({ratio_text(value_at(direct, c, 'rps'), value_at(nobatch, c, 'rps'))})."
            )
        lines.append("")
    else:
        lines += [f"**Batching p99 delta at c=1**: not measured — {batching.get('note', 'no batching toggle')}.", ""]
    return lines


def settings_section(results: dict[str, Any]) -> list[str]:
    """How each system ran."""
    env = results.get("environment", {})
    settings = results.get("settings", {})
    batching = settings.get("batching", {})
    lines = ["## Settings", ""]
    stack_s = settings.get("stack", {})
    direct_s = settings.get("direct", {})
    lines += [
        f"- Load generator: {settings.get('wrk', '')}; systems measured one at a time, in this order: "
        f"{', '.join(settings.get('systems_order', []))}.",
        *rounds_settings(settings),
        f"- Addresses: {addresses(results)}.",
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
    return lines
