"""The run: every system in turn, each comparison group's paired rounds, then ``latest.json`` (partial
results in the run folder if interrupted).

A system that belongs to a comparison group (:func:`.rounds.plan`) stays up after its own
measurements until the group's last system has been measured, frozen (:mod:`.freeze`) while
other systems are measured; then the group's paired rounds run (:mod:`.interleaved`) and its
systems are stopped (thawed first). Every other system is stopped as soon as it has been measured.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from tests.support.commands import Failed

from .containers import Direct, Stack
from .context import Context
from .guarded import Guarded
from .hosts import MLServer, Tutorial
from .interleaved import run_group
from .measure import foreign_containers, log, measure, stop
from .results import batching_toggle, environment, server_sources, settings_section
from .rounds import Group, plan
from .settings import Settings
from .systems import System


def systems_to_run(s: Settings, batching_on: bool) -> list[System]:
    """The systems of ``BENCH_SYSTEMS`` in its order, (b') right after (b) when batching can be turned off."""
    catalog: dict[str, System] = {
        "tutorial": Tutorial("tutorial", "a) tutorial app (Flask dev server)"),
        "mlserver": MLServer("mlserver", "d) MLServer 1.7.1 (sklearn runtime)"),
        "direct": Direct("direct", "b) model-server, 1 replica direct"),
        "stack": Stack("stack", "c) full stack: nginx + 3 replicas"),
    }
    systems = []
    for key in s.systems:
        systems.append(catalog[key])
        if key == "direct" and batching_on:
            systems.append(Direct("direct-nobatch", "b') 1 replica direct, batching off", s.batch_off_env))
    for key in s.features:  # the performance guard, after the comparison
        systems.append(Guarded(key, s.reload_cycles if key == "f-reload" else 0))
    return systems


def concurrency_of(s: Settings, system: System) -> list[int]:
    """The concurrencies a system is measured at: (b')'s, the guard's rows', or everyone else's."""
    if system.key == "direct-nobatch":
        return s.batch_concurrency
    return s.feature_concurrency if isinstance(system, Guarded) else s.concurrency


def measure_all(ctx: Context, systems: list[System], groups: list[Group], results: dict[str, Any]) -> None:
    """Every system in turn, each group's paired rounds after its last system; whatever is up at the end
    (interrupted, or failed) is stopped."""
    last_of = {[system.key for system in systems if system.key in group.systems][-1]: group for group in groups}
    in_group = {key for group in groups for key in group.systems}
    up: dict[str, System] = {}
    try:
        for system in systems:
            up[system.key] = system
            waiting = [other for key, other in up.items() if key != system.key]
            result = results["systems"][system.key] = measure(
                ctx, system, concurrency_of(ctx.settings, system), waiting
            )
            if system.key not in in_group or result["status"] != "ok":
                stop(ctx, up.pop(system.key), result)
            group = last_of.get(system.key)
            if group is not None:
                results["paired_rounds"][group.key] = run_group(ctx, group, up, results["systems"])
                for key in group.systems:
                    if key in up:
                        stop(ctx, up.pop(key), results["systems"][key])
    finally:
        for key, system in up.items():
            stop(ctx, system, results["systems"].get(key, {}))


def main() -> int:
    s = Settings.from_env(os.environ, os.cpu_count() or 1, sys.executable, int(time.time()), os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s.run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    ctx = Context(s)
    batching = batching_toggle(s, server_sources())
    systems = systems_to_run(s, batching[0])
    planned = plan(s)
    groups = [group for group, note in planned if not note]
    results: dict[str, Any] = {"schema": 1, "bench_id": s.bench_id, "started": started.isoformat(timespec="seconds")}
    results["machine_at_start"] = {
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "other_containers": foreign_containers(s),
    }
    results["environment"] = {}
    results["settings"] = settings_section(s, dict(os.environ), systems, batching, groups)
    results["systems"] = {}
    stopped_early = "the run stopped before these rounds"
    results["paired_rounds"] = {  # each replaced by the group's rounds when they run
        group.key: {"title": group.title, "status": "skipped" if note else "not run", "note": note or stopped_early}
        for group, note in planned
    }
    exit_code = 0
    try:
        log(f"building the model-server image {s.image}; reading docker-compose.yml; copying the image's model")
        ctx.prepare()
        results["model"] = ctx.model_info
        results["environment"] = environment(s)
        measure_all(ctx, systems, groups, results)
    except Failed as exc:
        results["error"] = str(exc)
        log(f"FAILED: {exc}")
        exit_code = 1
    except (KeyboardInterrupt, SystemExit):
        # Interrupted (Ctrl-C, SIGTERM, timeout): the partial results go to the scratch folder, and the
        # last complete latest.json stays.
        results["error"] = "interrupted"
        out = s.run_dir / "interrupted.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"interrupted: partial results in {out}")
        raise
    if any(r.get("status") != "ok" for r in results["systems"].values()):
        exit_code = 1
    if any(r.get("status") in ("failed", "not run") for r in results["paired_rounds"].values()):
        exit_code = 1
    if not results["environment"]:
        try:
            results["environment"] = environment(s)
        except (Failed, OSError) as exc:
            results["environment"] = {"error": str(exc)}
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    s.results_dir.mkdir(parents=True, exist_ok=True)
    (s.results_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {s.results_dir / 'latest.json'}")
    return exit_code
