"""The run: every system in turn, each group's paired rounds, then ``latest.json``. Everything started is recorded
(``pgid-*`` files, the label ``bench.run=<id>``, the project ``bench-<id>``) for bench/run's trap, and stopped here."""

import importlib.metadata
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from harness.commands import Failed, run

from .context import STACK_ROW, Context, log
from .measure import Group, foreign_containers, measure, plan, run_group, stop
from .settings import Settings, env_str
from .systems import Direct, Guarded, MLServer, Stack, System, Tutorial

BENCH_PACKAGES = ["Flask", "Werkzeug", "numpy", "scikit-learn", "scipy", "joblib", "skops", "psutil", "matplotlib",
                  "pydantic-settings", "pandas", "palmerpenguins"]  # fmt: skip
LOCAL = {"id", "project", "run_dir", "results_dir", "mlserver_venv", "cache_dir", "python", "mlserver_python"}
MLSERVER_PACKAGES = ["mlserver", "mlserver-sklearn", "mlserver-xgboost", "uvicorn", "fastapi", "uvloop", "scikit-learn",
                     "numpy", "joblib", "pandas", "xgboost"]  # fmt: skip


def systems_to_run(s: Settings, batching_on: bool) -> list[System]:
    """The systems of ``BENCH_SYSTEMS`` in the catalog's order, (b') right after (b) when batching can be turned off,
    then the guard's rows. The stack of each kind runs alone (one compose project): a group ends before the next."""
    catalog: dict[str, System] = {
        "tutorial": Tutorial("tutorial", "a) tutorial app (Flask dev server)"),
        "mlserver": MLServer("mlserver", "d) MLServer 1.7.1 (sklearn runtime)"),
        "direct": Direct("direct", "b) model-server, 1 replica direct"),
        "direct-all": Guarded("direct-all", row=STACK_ROW),
        "stack": Stack("stack", "c) full stack: nginx + 3 replicas"),
        "mlserver-tabular": MLServer("mlserver-tabular", "d-t) MLServer 1.7.1, penguins, pandas codec", "tabular"),
        "stack-tabular": Stack("stack-tabular", "c-t) full stack, penguins Pipeline, pandas codec", "tabular"),
        "mlserver-boosted": MLServer("mlserver-boosted", "d-x) MLServer 1.7.1, XGBoost runtime", "boosted"),
        "stack-boosted": Stack("stack-boosted", "c-x) full stack, XGBoost model file", "boosted"),
    }  # fmt: skip
    systems = []
    for key in (key for key in catalog if key in s.systems):
        systems.append(catalog[key])
        if key == "direct" and batching_on:
            systems.append(Direct("direct-nobatch", "b') 1 replica direct, batching off", s.batch_off_env))
    return systems + [Guarded(key, s.reload_cycles if key == "f-reload" else 0) for key in s.features]


def batching_toggle(s: Settings) -> tuple[bool, str]:
    """Whether (b') runs: ``BENCH_BATCH_OFF_ENV`` names what turns the server's micro-batching off."""
    if not s.batch_off_env:
        return False, "BENCH_BATCH_OFF_ENV is empty: batching comparison disabled"
    return True, f"batching off = {env_str(s.batch_off_env)}"


def settings_section(s: Settings, systems: list[System], batching: tuple[bool, str], groups: list[Group]) -> dict:
    """Every setting as read (bench/README.md, Settings) and what follows from them, for latest.json."""
    by_bench_run = {"BENCH_ID", "BENCH_PROJECT", "BENCH_RUN_DIR", "BENCH_MLSERVER_VENV"}
    overrides = {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_") and k not in by_bench_run}
    return {
        "env_overrides": overrides,
        **s.model_dump(mode="json", exclude=LOCAL),
        "wrk": f"wrk -t{s.wrk_threads} (at most one thread per connection) -c<c> -d{s.duration}s "
        f"--timeout={s.wrk_timeout}s --latency, after a {s.warmup}s warm-up at the same concurrency",
        "workers_per_replica": s.workers_per_replica,
        "systems_order": [system.key for system in systems],
        "groups": {g.key: {"reference": g.reference, "compared": list(g.compared), "c": g.concurrency} for g in groups},
        "batching": {"compared": batching[0], "note": batching[1]},
        "frozen_during_single_runs": s.freezes_single_runs,
    }


def environment(s: Settings) -> dict[str, Any]:
    def first_line(*args: str) -> str:
        return (run(list(args), timeout=30, check=False).strip().splitlines() or ["unknown"])[0]

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    release = Path("/etc/os-release").read_text().splitlines() if Path("/etc/os-release").exists() else []
    versions = f"{{'python': sys.version.split()[0], **{{p: m.version(p) for p in {MLSERVER_PACKAGES!r}}}}}"
    try:
        code = f"import json, sys, importlib.metadata as m; print(json.dumps({versions}))"
        mlserver = json.loads(run([str(s.mlserver_venv / "bin" / "python"), "-c", code], timeout=60))
    except (Failed, ValueError, OSError) as exc:
        mlserver = {"error": str(exc)}
    dirty = run(["git", "status", "--porcelain", "--", "services/model-server"], timeout=30, check=False).strip()
    return {
        "cpu_model": cpu[0] if cpu else platform.processor(),
        "logical_cpus": os.cpu_count(),
        "memory_total_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": dict(line.split("=", 1) for line in release if "=" in line).get("PRETTY_NAME", "").strip('"'),
        "kernel": platform.release(),
        "docker": first_line("docker", "version", "--format", "{{.Server.Version}}"),
        "docker_compose": first_line("docker", "compose", "version", "--short"),
        "wrk": first_line("wrk", "--version").split(" [")[0],
        "bench_python": platform.python_version(),
        "bench_packages": {p: importlib.metadata.version(p) for p in BENCH_PACKAGES},
        "mlserver_venv": mlserver,
        "model_server_image": {
            "tag": s.image,
            "id": first_line("docker", "image", "inspect", "-f", "{{.Id}}", s.image),
        },
        "git_head": run(["git", "rev-parse", "HEAD"], timeout=30, check=False).strip() or "no commit yet",
        "model_server_uncommitted_changes": bool(dirty),
    }


def measure_all(ctx: Context, systems: list[System], groups: list[Group], results: dict[str, Any]) -> None:
    """Every system in turn, each group's rounds after its last system; whatever is up at the end is stopped."""
    s = ctx.settings
    last_of: dict[str, list[Group]] = {}  # the groups whose rounds follow a system's measurement
    for group in groups:
        last_of.setdefault([system.key for system in systems if system.key in group.systems][-1], []).append(group)
    in_group, done = {key for group in groups for key in group.systems}, set()
    up: dict[str, System] = {}
    try:
        for system in systems:
            up[system.key] = system
            waiting = [other for key, other in up.items() if key != system.key]
            levels = {"direct-nobatch": s.batch_concurrency}.get(system.key, s.concurrency)
            levels = s.feature_concurrency if isinstance(system, Guarded) else levels
            result = results["systems"][system.key] = measure(ctx, system, levels, waiting)
            if system.key not in in_group or result["status"] != "ok":
                stop(ctx, up.pop(system.key), result)
            for group in last_of.get(system.key, []):
                results["paired_rounds"][group.key] = run_group(ctx, group, up, results["systems"])
                done.add(group.key)
                for key in [key for key in up if not any(key in g.systems for g in groups if g.key not in done)]:
                    stop(ctx, up.pop(key), results["systems"][key])  # no group left needs it
    finally:
        for key, system in up.items():
            stop(ctx, system, results["systems"].get(key, {}))


def main() -> int:
    s = Settings.load()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s.run_dir.mkdir(parents=True, exist_ok=True)
    t0, ctx, batching = time.monotonic(), Context(s), batching_toggle(s)
    planned = plan(s, batching[0])
    systems, groups = systems_to_run(s, batching[0]), [group for group, note in planned if not note]
    results: dict[str, Any] = {
        "schema": 2, "bench_id": s.id, "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine_at_start": {"load_avg_1m": round(os.getloadavg()[0], 2), "other_containers": foreign_containers(s)},
        "settings": settings_section(s, systems, batching, groups), "systems": {},
        "paired_rounds": {  # each replaced by the group's rounds when they run
            group.key: {"title": group.title, "status": "skipped" if note else "not run",
                        "note": note or "the run stopped before these rounds"} for group, note in planned},
    }  # fmt: skip
    try:
        log(f"building the model-server image {s.image}; reading docker-compose.yml; copying the image's model")
        ctx.prepare()
        results["model"] = ctx.model_info
        measure_all(ctx, systems, groups, results)
    except Failed as exc:
        results["error"] = str(exc)
        log(f"FAILED: {exc}")
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM, timeout: the last complete latest.json stays
        results["error"] = "interrupted"
        (s.run_dir / "interrupted.json").write_text(json.dumps(results, indent=2) + "\n")
        log(f"interrupted: partial results in {s.run_dir / 'interrupted.json'}")
        raise
    try:
        results["environment"] = environment(s)
    except (Failed, OSError) as exc:
        results["environment"] = {"error": str(exc)}
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    s.results_dir.mkdir(parents=True, exist_ok=True)
    (s.results_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {s.results_dir / 'latest.json'}")
    failed = [r for r in results["systems"].values() if r.get("status") != "ok"]
    unfinished = [r for r in results["paired_rounds"].values() if r.get("status") in ("failed", "not run")]
    return 1 if results.get("error") or failed or unfinished else 0
