"""Measuring each system in turn, then each group's paired rounds (bench/README.md, What it measures, Paired rounds).
wrk runs bench/wrk/request.lua: it POSTs the system's body (written to a file named by ``WRK_BODY``) and ends with
report.lua's ``done()``: one ``BENCH_JSON {...}`` line of exact counters."""

import http.client
import json
import os
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any, Self

import psutil

from harness.addresses import Target
from harness.commands import Failed, run
from harness.waiting import wait_for

from .context import Context, log
from .settings import BENCH_DIR, FEATURE_ROWS, Settings
from .systems import System, Throttling, frozen, host_busy_seconds

MARKER = "BENCH_JSON "
ERROR_KINDS = ("connect", "read", "write", "timeout")
# What can go wrong with a system while it is measured: it is then recorded as failed, and the run goes on.
MEASUREMENT_ERRORS = (Failed, OSError, http.client.HTTPException, KeyError, ValueError)


def cores(before: Mapping[str, float], after: Mapping[str, float], wall: float) -> dict[str, float]:
    """Cores each component used over ``wall`` seconds; a component read at only one end is left out."""
    return {name: round((after[name] - before[name]) / wall, 3) for name in after if name in before}


def throttling(before: Mapping[str, Throttling], after: Mapping[str, Throttling]) -> dict[str, dict[str, Any]]:
    """Per container: the CFS periods the run spanned, and in how many the CPU quota throttled it."""
    result = {}
    for name in [name for name in after if name in before]:
        periods, throttled, seconds = (a - b for a, b in zip(after[name], before[name], strict=True))
        result[name] = {"periods": periods, "throttled_periods": throttled,
                        "throttled_pct": round(100 * throttled / periods, 1) if periods else 0.0,
                        "throttled_s": round(seconds, 3)}  # fmt: skip
    return result


def breakdown(system: Mapping[str, float], engine: Mapping[str, float], wrk_s: float, busy_s: float, wall: float):
    """Cores used by the system under test (per component), the engine for it, wrk, and *other* (the rest)."""
    sut, eng, wrk, busy = sum(system.values()), sum(engine.values()), wrk_s / wall, busy_s / wall
    return {"sut_cores": round(sut, 3), "components_cores": dict(system), "engine_cores": round(eng, 3),
            "engine_components_cores": dict(engine), "wrk_cores": round(wrk, 3), "host_busy_cores": round(busy, 3),
            "other_cores": round(max(0.0, busy - sut - eng - wrk), 3), "window_s": round(wall, 3)}  # fmt: skip


def requests_per_core(rps: float, cpu: Mapping[str, Any]) -> float | None:
    """Answered requests per second per core of the system under test and the engine working for it."""
    return round(rps / (cpu["sut_cores"] + cpu["engine_cores"]), 1) if cpu["sut_cores"] > 0 else None


def wrk_command(target: Target, path: str, threads: int, c: int, seconds: int, timeout: int) -> list[str]:
    """``wrk`` at ``target.url(path)`` with its latency histogram, at most one thread per connection."""
    return ["wrk", f"-t{max(1, min(threads, c))}", f"-c{c}", f"-d{seconds}s",
            f"--timeout={timeout}s", "--latency", "-s", "request.lua", target.url(path)]  # fmt: skip


def wrk_report(output: str) -> dict[str, Any]:
    line = next((line for line in output.splitlines() if line.startswith(MARKER)), None)
    if line is None:
        raise ValueError(f"no {MARKER.strip()} line in wrk's output: {output.strip()[-800:]}")
    return json.loads(line.removeprefix(MARKER))


def wrk_summary(report: dict[str, Any]) -> dict[str, Any]:
    """req/s of 2xx answers (wrk counts a non-2xx answer as a request and a status error), latency, errors."""
    duration, errors, requests = report["duration_us"] / 1e6, report["errors"], report["requests"]
    counted = {"non_2xx": errors["status"], **{kind: errors[kind] for kind in ERROR_KINDS}}
    return {"duration_s": round(duration, 3), "requests": requests, "ok": requests - errors["status"],
            "rps": round((requests - errors["status"]) / duration, 1),
            "rps_all_responses": round(requests / duration, 1),
            "latency_ms": {key: round(value / 1000, 3) for key, value in report["latency_us"].items()},
            "errors": {**counted, "total": sum(counted.values())}}  # fmt: skip


def foreign_containers(s: Settings) -> list[str]:
    names = run(["docker", "ps", "--format", "{{.Names}}"], timeout=30, check=False).split()
    return [name for name in names if not name.startswith(f"bench-{s.id}")]


def wait_for_idle(s: Settings) -> dict[str, Any]:
    t0, limit = time.monotonic(), max(0.0, min(s.idle_wait, s.wait_budget))
    while True:
        others = foreign_containers(s)
        busy = psutil.cpu_percent(interval=3) * (os.cpu_count() or 1) / 100
        if busy < s.idle_cores or time.monotonic() - t0 >= limit:
            break
        time.sleep(3)
    waited = round(time.monotonic() - t0, 1)
    s.wait_budget -= waited
    if busy >= s.idle_cores:
        log(f"machine not idle after {waited}s ({busy:.2f} cores busy, other containers: {others}); going on")
    return {"idle": busy < s.idle_cores, "waited_s": waited, "busy_cores": round(busy, 2), "other_containers": others,
            "load_avg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


def run_wrk(s: Settings, system: System, c: int, seconds: int, tag: str, measured: bool = False,
            bystanders: Sequence[System] = ()) -> dict[str, Any]:  # fmt: skip
    """One wrk run; when ``measured``, with the CPU and memory of the system and the CPU of the (frozen) bystanders."""
    args = wrk_command(system.target, system.path, s.wrk_threads, c, seconds, s.wrk_timeout)
    out_path, body = s.run_dir / f"wrk-{system.key}-c{c}-{tag}.txt", s.run_dir / f"body-{system.key}.json"
    body.write_text(json.dumps(system.body(system.work.load_row)))
    cpu0, engine0, throttle0 = (system.cpu(), system.engine_cpu(), system.throttling()) if measured else ({}, {}, {})
    bystanders0 = [other.cpu() for other in bystanders] if measured else []
    busy0, t0 = host_busy_seconds(), time.monotonic()
    with out_path.open("w") as out:
        proc = subprocess.Popen(args, cwd=BENCH_DIR / "wrk", stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "WRK_BODY": str(body)})  # fmt: skip
    memory, pid = {}, 0
    try:
        if measured:  # steady load: sample memory half-way
            time.sleep(seconds / 2)
            memory = system.memory()
        deadline = time.monotonic() + seconds + s.wrk_timeout + 30
        while not (waited := os.wait4(proc.pid, os.WNOHANG))[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        pid, status, rusage = waited
    finally:
        if not pid:
            proc.kill()
            proc.wait()
    if not pid:
        raise Failed(f"wrk did not finish ({' '.join(args)})")
    wall, busy = time.monotonic() - t0, host_busy_seconds() - busy0
    text = out_path.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(f"wrk failed ({os.waitstatus_to_exitcode(status)}): {text.strip()[-800:]}")
    if not measured:
        return wrk_report(text)
    components = cores(cpu0, system.cpu(), wall)
    engine = cores(engine0, system.engine_cpu(), wall)
    cpu = breakdown(components, engine, rusage.ru_utime + rusage.ru_stime, busy, wall)
    cpu["cfs_quota_throttling"] = throttling(throttle0, system.throttling())
    if bystanders:
        used = [cores(before, other.cpu(), wall) for other, before in zip(bystanders, bystanders0, strict=True)]
        cpu["bystander_cores"] = round(sum(sum(values.values()) for values in used), 3)
    result = {"concurrency": c, "wrk_threads": max(1, min(s.wrk_threads, c)), **wrk_summary(wrk_report(text))}
    return {**result, "cpu": cpu, "rps_per_core": requests_per_core(result["rps"], cpu), "memory_mid_run": memory,
            "wrk_output": str(out_path.relative_to(BENCH_DIR, walk_up=True))}  # fmt: skip


def answers(system: System) -> None:
    time.sleep(1)
    wait_for(f"{system.key} to answer", system.answers, 5, interval=0.5)


def measure(ctx: Context, system: System, concurrency: list[int], waiting: Sequence[System] = ()) -> dict[str, Any]:
    """Start, check, measure at each concurrency, check again; left up (``stop`` it), the ``waiting`` frozen."""
    s = ctx.settings
    result: dict[str, Any] = {"label": system.label, "status": "failed", "runs": []}
    t0 = time.monotonic()
    try:
        result["machine_before"] = wait_for_idle(s)
        log(f"{system.key}: starting")
        system.workload = ctx.workloads[system.kind]
        system.start(ctx)
        target = system.target
        result.update(startup_s=round(time.monotonic() - t0, 1), settings=system.settings, check=system.check(ctx),
                      address={"host": target.host, "port": target.port, "where": target.where})  # fmt: skip
        log(f"{system.key}: up in {result['startup_s']}s at {target}; {len(system.work.rows)} answers correct")
        for c in concurrency:
            result["runs"].append(measure_concurrency(s, system, c, waiting if s.freezes_single_runs else ()))
        result.update(system.after_runs(ctx))
        result["check_after"] = system.check(ctx)
        result["status"] = "ok"
    except MEASUREMENT_ERRORS as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{system.key}: FAILED: {result['error']}")
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def stop(ctx: Context, system: System, result: dict[str, Any]) -> None:
    try:
        system.thaw()  # a paused container or a stopped process would not stop cleanly
    except Failed as exc:
        result["thaw_error"] = str(exc)
    try:
        system.stop(ctx)
    except (Failed, OSError) as exc:
        result["stop_error"] = str(exc)


def measure_concurrency(s: Settings, system: System, c: int, bystanders: Sequence[System] = ()) -> dict[str, Any]:
    """A warm-up and a measured run, the bystanders frozen; what other processes used is in the *other* column."""
    with frozen(bystanders):
        if s.warmup > 0:
            run_wrk(s, system, c, s.warmup, "warmup")
        kept = run_wrk(s, system, c, s.duration, "run", measured=True, bystanders=bystanders)
    lat, cpu = kept["latency_ms"], kept["cpu"]
    log(f"{system.key} c={c}: {kept['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, errors "
        f"{kept['errors']['total']}, CPU SUT {cpu['sut_cores']:.2f} + engine {cpu['engine_cores']:.2f} + wrk "
        f"{cpu['wrk_cores']:.2f} + other {cpu['other_cores']:.2f} cores")  # fmt: skip
    return kept


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    reference: str
    compared: tuple[str, ...]
    concurrency: int

    @property
    def systems(self) -> tuple[str, ...]:
        return (self.reference, *self.compared)

    def restricted(self, available: Collection[str]) -> Self | None:
        compared = tuple(key for key in self.compared if key in available)
        return replace(self, compared=compared) if self.reference in available and compared else None


def plan(s: Settings, batching_on: bool = False) -> list[tuple[Group, str]]:
    """Every group with why it is left out ("" if measured: restricted to the chosen systems, at c=16 or the most;
    batching on vs off at each of ``BENCH_BATCH_CONCURRENCY``, where the server can turn it off)."""
    c_all, c_guard = (16 if 16 in levels else max(levels) for levels in (s.concurrency, s.feature_concurrency))
    kinds = [  # "replicas" before "headline": (b-all) is stopped before the rounds it is not in
        Group("replicas", "full stack vs one replica, same models, CPU per request", "direct-all", ("stack",), c_all),
        Group("headline", "full stack vs MLServer", "mlserver", ("stack",), c_all),
        Group("tabular", "penguins Pipeline: stack vs MLServer", "mlserver-tabular", ("stack-tabular",), c_all),
        Group("boosted", "XGBoost model: stack vs MLServer", "mlserver-boosted", ("stack-boosted",), c_all),
    ]
    guard = Group("guard", "performance guard: each row vs the baseline", FEATURE_ROWS[0], FEATURE_ROWS[1:], c_guard)
    planned, chosen_by = [], [(group, s.systems, "BENCH_SYSTEMS") for group in kinds]
    chosen_by += [(guard, s.features, "BENCH_FEATURES")]
    with_off = [*s.systems, "direct-nobatch"] if batching_on else s.systems
    chosen_by += [(Group(f"batching-c{c}", f"micro-batching on vs off, one replica direct, c={c}", "direct-nobatch",
                         ("direct",), c), with_off, "BENCH_SYSTEMS (with batching that turns off)")
                  for c in s.batch_concurrency or ()]  # fmt: skip
    for group, chosen, variable in chosen_by:
        kept = group.restricted(chosen)
        if s.rounds == 0:
            planned.append((group, "BENCH_ROUNDS=0"))
        elif kept is None:
            missing = [group.reference] if group.reference not in chosen else group.compared
            planned.append((group, f"{', '.join(missing)} not in {variable}"))
        else:
            planned.append((kept, ""))
    return planned


def round_order(systems: Sequence[str], rounds: int) -> list[list[str]]:
    """Round r: ``systems`` rotated by r // 2, reversed when r is odd (AB BA BA AB …): a drift weighs on both sides."""
    rotated = [[*systems[k:], *systems[:k]] for k in ((r // 2) % len(systems) for r in range(rounds))]
    return [order[::-1] if r % 2 else order for r, order in enumerate(rotated)]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def paired(ratios: Sequence[float | None]) -> dict[str, Any]:
    """Per-round ratios: their median, min and max over the rounds where both sides were measured."""
    known = [r for r in ratios if r is not None]
    return {"median": _rounded(median(known) if known else None, 4), "min": _rounded(min(known, default=None), 4),
            "max": _rounded(max(known, default=None), 4), "per_round": [_rounded(r, 4) for r in ratios]}  # fmt: skip


def summarize(group: Group, measured: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per system: its rounds and their medians; per compared system: its ratios against the reference."""
    medians = {
        key: {metric: median(values) if (values := [r[metric] for r in measured[key]]) else None
              for metric in ("rps", "p99_ms")}
        for key in group.systems
    }  # fmt: skip
    systems = {
        key: {"median_rps": _rounded(medians[key]["rps"], 1), "median_p99_ms": _rounded(medians[key]["p99_ms"], 3),
              "rounds": list(measured[key])}
        for key in group.systems
    }  # fmt: skip
    comparisons = {}
    reference, base = medians[group.reference], measured[group.reference]
    for key in group.compared:
        rounds = list(zip(measured[key], base, strict=False))
        comparisons[key] = {"against": group.reference,
                            "rps_ratio_of_medians": _rounded(_ratio(medians[key]["rps"], reference["rps"]), 4),
                            "p99_ratio_of_medians": _rounded(_ratio(medians[key]["p99_ms"], reference["p99_ms"]), 4),
                            "rps_paired": paired([_ratio(a["rps"], b["rps"]) for a, b in rounds]),
                            "p99_paired": paired([_ratio(a["p99_ms"], b["p99_ms"]) for a, b in rounds])}  # fmt: skip
    return {"systems": systems, "comparisons": comparisons}


def run_group(ctx: Context, group: Group, up: Mapping[str, System], results: Mapping[str, Any]) -> dict[str, Any]:
    """The group's rounds over its systems measured without failing; skipped without its reference."""
    ok = [key for key in group.systems if results[key].get("status") == "ok" and key in up]
    kept = group.restricted(ok)
    if kept is None:
        failed = ", ".join(key for key in group.systems if key not in ok)
        log(f"paired rounds {group.key}: skipped ({failed} failed)")
        return {"title": group.title, "status": "skipped", "note": f"{failed} failed"}
    return run_rounds(ctx, kept, {key: up[key] for key in kept.systems})


def run_rounds(ctx: Context, group: Group, systems: Mapping[str, System]) -> dict[str, Any]:
    """Each turn: the others frozen, the system checked, warmed up and measured; the others thawed, whatever happens."""
    s, c = ctx.settings, group.concurrency
    orders = round_order(group.systems, s.rounds)
    section: dict[str, Any] = {"title": group.title, "status": "failed", "reference": group.reference,
                               "concurrency": c, "rounds": s.rounds, "round_duration_s": s.round_duration,
                               "warmup_s": s.round_warmup, "order": orders}  # fmt: skip
    measured: dict[str, list[dict[str, Any]]] = {key: [] for key in group.systems}
    t0 = time.monotonic()
    try:
        section["machine_before"] = wait_for_idle(s)
        for number, order in enumerate(orders, 1):
            for key in order:
                bystanders = [other for name, other in systems.items() if name != key]
                with frozen(bystanders):
                    answers(systems[key])
                    if s.round_warmup > 0:
                        run_wrk(s, systems[key], c, s.round_warmup, f"round{number}-warmup")
                    run = run_wrk(s, systems[key], c, s.round_duration, f"round{number}", True, bystanders)
                measured[key].append({"round": number, "rps": run["rps"], "p50_ms": run["latency_ms"]["p50"],
                                      "p99_ms": run["latency_ms"]["p99"], "errors": run["errors"]["total"],
                                      "other_cores": run["cpu"]["other_cores"],
                                      "bystander_cores": run["cpu"]["bystander_cores"],
                                      "cpu": {"components_cores": run["cpu"]["components_cores"]}})  # fmt: skip
            done = ", ".join(f"{key} {measured[key][-1]['rps']:.0f}" for key in order)
            log(f"paired rounds {group.key} c={c}, round {number}/{s.rounds}: {done} req/s")
        section["status"] = "ok"
    except MEASUREMENT_ERRORS as exc:
        section["error"] = f"{type(exc).__name__}: {exc}"
        log(f"paired rounds {group.key}: FAILED: {section['error']}")
    section.update(summarize(group, measured))
    section["elapsed_s"] = round(time.monotonic() - t0, 1)
    return section
