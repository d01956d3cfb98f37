"""Measuring one system: wait for an idle machine, check its answers, run wrk at each concurrency.

A measured run reads the system's CPU counters (and the engine's, and the host's busy time)
just before wrk starts and just after it is reaped, samples memory half-way, and takes wrk's own
CPU from ``wait4``'s rusage. A run during which other processes used more than
``BENCH_DISTURBED_CORES`` is measured again (within ``BENCH_WAIT_BUDGET``); the least disturbed
attempt is kept. :func:`measure` leaves the system running and :func:`stop` stops it, so that the
systems of a comparison group can be up together for their paired rounds (:mod:`.interleaved`);
the systems up meanwhile and not measured are frozen during each warm-up and measured run
(:mod:`.freeze`), and :func:`stop` thaws a system before it stops it.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psutil

from tests.support.commands import Failed, run
from tests.support.waiting import wait_for

from . import usage, wrk
from .client import post_json
from .freeze import frozen, thaw
from .model import TUTORIAL_ROW
from .resources import host_busy_seconds
from .settings import BENCH_DIR, Settings
from .systems import System

if TYPE_CHECKING:
    from .context import Context

WRK_DIR = BENCH_DIR / "wrk"
SETTLE_S = 1.0  # after a thaw: time for a system's timers and health checks to catch up


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def foreign_containers(settings: Settings) -> list[str]:
    """Running containers this run did not start."""
    out = run(["docker", "ps", "--format", "{{.Names}}"], timeout=30, check=False)
    return [n for n in out.split() if not n.startswith(f"bench-{settings.bench_id}")]


def wait_for_idle(settings: Settings) -> dict[str, Any]:
    """Wait (at most BENCH_IDLE_WAIT s, within what is left of BENCH_WAIT_BUDGET) until the host is
    nearly idle (< BENCH_IDLE_CORES cores busy over 3 s): the machine may be shared. Returns what it
    found, other running containers included."""
    t0 = time.monotonic()
    limit = max(0.0, min(settings.idle_wait, settings.wait_budget))
    while True:
        others = foreign_containers(settings)
        busy = psutil.cpu_percent(interval=3) * (os.cpu_count() or 1) / 100
        idle = busy < settings.idle_cores
        if idle or time.monotonic() - t0 >= limit:
            break
        time.sleep(3)
    waited = round(time.monotonic() - t0, 1)
    settings.wait_budget -= waited
    if not idle:
        log(f"machine not idle after {waited}s ({busy:.2f} cores busy, other containers: {others}); going on")
    return {
        "idle": idle,
        "waited_s": waited,
        "busy_cores": round(busy, 2),
        "other_containers": others,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


# What can go wrong with a system while it is measured: it is then recorded as failed, and the run goes on.
MEASUREMENT_ERRORS = (Failed, OSError, http.client.HTTPException, KeyError, ValueError)


def run_wrk(
    settings: Settings,
    system: System,
    concurrency: int,
    seconds: int,
    tag: str,
    measured: bool = False,
    bystanders: Sequence[System] = (),
) -> dict[str, Any]:
    """One wrk run (its output in ``wrk-<system>-c<c>-<tag>.txt``); when ``measured``, the system's CPU and
    memory around and during it, and the CPU the ``bystanders`` (systems up but not measured) used meanwhile."""
    threads = wrk.threads(settings.wrk_threads, concurrency)
    args = wrk.command(system.target, system.path, system.script, threads, concurrency, seconds, settings.wrk_timeout)
    out_path = settings.run_dir / f"wrk-{system.key}-c{concurrency}-{tag}.txt"
    cpu0 = system.cpu() if measured else {}
    bystanders0 = [other.cpu() for other in bystanders] if measured else []
    engine0 = system.engine_cpu() if measured else {}
    throttle0 = system.throttling() if measured else {}
    busy0, t0 = host_busy_seconds(), time.monotonic()
    with out_path.open("w") as out:
        proc = subprocess.Popen(args, cwd=WRK_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    memory: dict[str, Any] = {}
    stats_cpu: dict[str, float] = {}
    reaped = False
    try:
        if measured:  # steady load: sample memory half-way
            time.sleep(seconds / 2)
            memory = system.memory()
            stats_cpu = {c.name: c.docker_stats_cpu_cores() for c in system.containers if c.cpu_dir is None}
        deadline = time.monotonic() + seconds + settings.wrk_timeout + 30
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = True
                break
            if time.monotonic() > deadline:
                raise Failed(f"wrk did not finish ({' '.join(args)})")
            time.sleep(0.05)
    finally:
        if not reaped:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    busy = host_busy_seconds() - busy0
    text = out_path.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(f"wrk failed ({os.waitstatus_to_exitcode(status)}): {text.strip()[-800:]}")
    report = wrk.parse(text)
    if not measured:
        return report
    components = usage.cores(cpu0, system.cpu(), wall)
    components.update({f"{k} (docker stats sample)": round(v, 3) for k, v in stats_cpu.items()})
    engine = usage.cores(engine0, system.engine_cpu(), wall)
    cpu = usage.breakdown(components, engine, rusage.ru_utime + rusage.ru_stime, busy, wall)
    cpu["cfs_quota_throttling"] = usage.throttling(throttle0, system.throttling())
    if bystanders:
        used = [usage.cores(before, other.cpu(), wall) for other, before in zip(bystanders, bystanders0, strict=True)]
        cpu["bystander_cores"] = round(sum(sum(cores.values()) for cores in used), 3)
    result = {"concurrency": concurrency, "wrk_threads": threads, **wrk.summary(report)}
    return {
        **result,
        "cpu": cpu,
        "rps_per_core": usage.requests_per_core(result["rps"], cpu),
        "memory_mid_run": memory,
        "wrk_output": str(out_path.relative_to(BENCH_DIR)) if out_path.is_relative_to(BENCH_DIR) else str(out_path),
    }


def answers(system: System) -> None:
    """A moment after a thaw, then one request that ``system`` must answer (retried for at most 5 s, so that
    a freeze of the others stays under the replicas' worker timeout: :mod:`.freeze`)."""
    time.sleep(SETTLE_S)
    body = system.body(TUTORIAL_ROW)
    wait_for(f"{system.key} to answer", lambda: post_json(system.target, system.path, body)[0] == 200, 5, interval=0.5)


def measure(ctx: Context, system: System, concurrency: list[int], waiting: Sequence[System] = ()) -> dict[str, Any]:
    """Start, check, measure at each concurrency, check again: the system's part of the results. The
    ``waiting`` systems (up for a comparison group's rounds) are frozen during each warm-up and measured
    run (when ``Settings.freezes_single_runs``). The system is left running, also when it failed: :func:`stop` it."""
    s = ctx.settings
    result: dict[str, Any] = {"label": system.label, "status": "failed", "runs": []}
    t0 = time.monotonic()
    try:
        result["machine_before"] = wait_for_idle(s)
        log(f"{system.key}: starting")
        system.start(ctx)
        result["startup_s"] = round(time.monotonic() - t0, 1)
        result["address"] = {"host": system.target.host, "port": system.target.port, "where": system.target.where}
        result["settings"] = system.settings
        result["check"] = ctx.check(system)
        log(f"{system.key}: up in {result['startup_s']}s at {system.target}; {len(ctx.rows)} answers correct")
        for c in concurrency:
            result["runs"].append(measure_concurrency(s, system, c, waiting if s.freezes_single_runs else ()))
        result.update(system.after_runs(ctx))
        result["check_after"] = ctx.check(system)
        result["status"] = "ok"
    except MEASUREMENT_ERRORS as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{system.key}: FAILED: {result['error']}")
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def stop(ctx: Context, system: System, result: dict[str, Any]) -> None:
    """Thaw and stop a system (also one that did not start), noting in its results if that failed."""
    try:
        thaw(system)  # a paused container or a stopped process would not stop cleanly
    except Failed as exc:
        result["thaw_error"] = str(exc)
    try:
        system.stop(ctx)
    except (Failed, OSError) as exc:
        result["stop_error"] = str(exc)


def measure_concurrency(s: Settings, system: System, c: int, frozen_meanwhile: Sequence[System] = ()) -> dict[str, Any]:
    """A warm-up and a measured run at ``c`` connections, the ``frozen_meanwhile`` systems frozen during both;
    measured again while other processes disturbed it."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(1 + s.disturbed_retries):
        if attempt:
            if s.wait_budget < s.warmup + s.duration:
                log(f"{system.key} c={c}: disturbed run kept (BENCH_WAIT_BUDGET used up)")
                break
            log(
                f"{system.key} c={c}: {attempts[-1]['cpu']['other_cores']:.2f} cores used by other processes "
                "during the run; measuring again once the machine is idle"
            )
            wait_for_idle(s)
            s.wait_budget -= s.warmup + s.duration
        with frozen(frozen_meanwhile):
            if s.warmup > 0:
                run_wrk(s, system, c, s.warmup, "warmup")
            attempts.append(run_wrk(s, system, c, s.duration, "run", measured=True, bystanders=frozen_meanwhile))
        if attempts[-1]["cpu"]["other_cores"] <= s.disturbed_cores:
            break
    measured = min(attempts, key=lambda m: m["cpu"]["other_cores"])
    measured["discarded_disturbed_attempts"] = [
        {"rps": m["rps"], "p99_ms": m["latency_ms"]["p99"], "other_cores": m["cpu"]["other_cores"]}
        for m in attempts
        if m is not measured
    ]
    lat, cpu = measured["latency_ms"], measured["cpu"]
    log(
        f"{system.key} c={c}: {measured['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
        f"errors {measured['errors']['total']}, CPU SUT {cpu['sut_cores']:.2f} + engine "
        f"{cpu['engine_cores']:.2f} + wrk {cpu['wrk_cores']:.2f} + other {cpu['other_cores']:.2f} cores"
    )
    return measured
