"""The run: every system in turn, then ``latest.json`` (partial results in the run folder if interrupted)."""

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
from .measure import foreign_containers, log, measure
from .results import batching_toggle, environment, server_sources, settings_section
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


def main() -> int:
    s = Settings.from_env(os.environ, os.cpu_count() or 1, sys.executable, int(time.time()), os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s.run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    ctx = Context(s)
    batching = batching_toggle(s, server_sources())
    systems = systems_to_run(s, batching[0])
    results: dict[str, Any] = {"schema": 1, "bench_id": s.bench_id, "started": started.isoformat(timespec="seconds")}
    results["machine_at_start"] = {
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "other_containers": foreign_containers(s),
    }
    results["environment"] = {}
    results["settings"] = settings_section(s, dict(os.environ), systems, batching)
    results["systems"] = {}
    exit_code = 0
    try:
        log(f"building the model-server image {s.image}; reading docker-compose.yml; copying the image's model")
        ctx.prepare()
        results["model"] = ctx.model_info
        results["environment"] = environment(s)
        for system in systems:
            concurrency = (
                s.batch_concurrency
                if system.key == "direct-nobatch"
                else s.feature_concurrency
                if isinstance(system, Guarded)
                else s.concurrency
            )
            results["systems"][system.key] = measure(ctx, system, concurrency)
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
