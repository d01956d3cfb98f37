"""Assembling ``latest.json``: the settings as run, the machine and versions, the batching toggle.

``bench/report.py`` renders the Markdown and the chart from this document.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil

from tests.support.commands import ROOT, Failed, run

from .model import TUTORIAL_ROW
from .rounds import Group
from .settings import Settings, env_str
from .systems import System

SERVER_SRC = ROOT / "services" / "model-server"
# Set by bench/run for the run itself, not choices of the person running it.
INTERNAL_VARIABLES = {"BENCH_ID", "BENCH_PROJECT", "BENCH_RUN_DIR", "BENCH_MLSERVER_VENV"}
BENCH_PACKAGES = ["Flask", "Werkzeug", "numpy", "scikit-learn", "scipy", "joblib", "skops", "psutil", "matplotlib"]
MLSERVER_PACKAGES = ["mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop", "scikit-learn", "numpy", "joblib"]


def batching_toggle(s: Settings, sources: list[Path]) -> tuple[bool, str]:
    """Whether the server has the variable that turns batching off (searched in ``sources``, its code)."""
    if not s.batch_off_env:
        return False, "BENCH_BATCH_OFF_ENV is empty: batching comparison disabled"
    if s.batch_off_explicit:
        return True, f"BENCH_BATCH_OFF_ENV={env_str(s.batch_off_env)} (set explicitly)"
    key = next(iter(s.batch_off_env))
    pattern = re.compile(rf"\b{re.escape(key)}\b", re.IGNORECASE)
    for path in sources:
        if path.is_file() and pattern.search(path.read_text(encoding="utf-8", errors="replace")):
            return True, f"{key} found in {path.relative_to(ROOT)}; batching off = {env_str(s.batch_off_env)}"
    return False, (
        f"{key} appears nowhere in services/model-server (this build has no batching to toggle); set "
        "BENCH_BATCH_OFF_ENV='KEY=VAL' to the setting that turns it off"
    )


def server_sources() -> list[Path]:
    """Where the model server reads its settings: its code, its gunicorn config, the compose file."""
    return [*SERVER_SRC.joinpath("src").rglob("*.py"), SERVER_SRC / "gunicorn.conf.py", ROOT / "docker-compose.yml"]


def settings_section(
    s: Settings, env: dict[str, str], systems: list[System], batching: tuple[bool, str], groups: list[Group]
) -> dict[str, Any]:
    """What the run was asked to do, as ``latest.json`` records it."""
    batching_on, batching_note = batching
    return {
        "env_overrides": {
            k: v for k, v in sorted(env.items()) if k.startswith("BENCH_") and k not in INTERNAL_VARIABLES
        },
        "duration_s": s.duration,
        "warmup_s": s.warmup,
        "concurrency": s.concurrency,
        "wrk": f"wrk -t{s.wrk_threads} (at most one thread per connection) -c<c> -d{s.duration}s "
        f"--timeout={s.wrk_timeout}s --latency, after a {s.warmup}s warm-up at the same concurrency",
        "request": f"one row per POST: {{'features': {TUTORIAL_ROW}}} "
        "(MLServer: the same row as a V2 FP64 [1,4] tensor)",
        "systems_order": [system.key for system in systems],
        "addressing": "host processes at 127.0.0.1; containers at their own bridge address, read with docker "
        "inspect from the container the run started (no published port, no docker-proxy); per system: "
        "systems.<key>.address",
        "stack": {
            "replicas": s.replicas,
            "gunicorn_workers": s.workers_per_replica,
            "model_cpus": s.model_cpus,
            "model_memory": s.model_memory,
            "nginx_rate_limit": s.rate_limit,
            "nginx_rate_burst": s.rate_burst,
        },
        "direct": {"gunicorn_workers": s.direct_workers, "cpus": s.direct_cpus, "memory": s.direct_memory},
        "performance_guard": {
            "rows": s.features,
            "concurrency": s.feature_concurrency,
            "reload_cycles": s.reload_cycles,
            "note": "system (b) on a host repository per row, one request-path feature on (features.py)",
        },
        "paired_rounds": {
            "rounds": s.rounds,
            "round_duration_s": s.round_duration,
            "round_warmup_s": s.round_warmup,
            "groups": {
                group.key: {"reference": group.reference, "compared": list(group.compared), "c": group.concurrency}
                for group in groups
            },
            "note": "a group's systems stay up together after their own measurements; each round measures every "
            "one in turn (warm-up, then the measured run), round r in their order rotated by r // 2 and reversed "
            "when r is odd; verdicts use the median of the per-round ratios (bench/benchmark/rounds.py)",
            "bystanders": "frozen during each system's turn (docker pause of all their containers, SIGSTOP of a "
            "host process tree), thawed after it; bystander_cores is the CPU they used during the measured run",
            "frozen_during_single_runs": s.freezes_single_runs,
        },
        "model_env_extra": s.model_env,
        "batching": {
            "compared": batching_on,
            "note": batching_note,
            "off_env": s.batch_off_env,
            "concurrency": s.batch_concurrency if batching_on else [],
        },
        "mlserver_parallel_workers": s.mlserver_parallel_workers,
        "machine_sharing": {
            "idle_wait_s": s.idle_wait,
            "idle_cores": s.idle_cores,
            "disturbed_cores": s.disturbed_cores,
            "disturbed_retries": s.disturbed_retries,
            "wait_budget_s": s.wait_budget,
            "note": "before each system: wait (at most idle_wait_s) for < idle_cores busy; a measured run during "
            "which other processes used > disturbed_cores is measured again (the least disturbed attempt is kept)",
        },
    }


def tree_digest(folder: Path) -> str:
    """SHA-256 over a source tree's files (names and contents), build output and models left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if ".egg-info" in str(path) or path.parent.name == "models":
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _first_line(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        return (done.stdout + done.stderr).strip().splitlines()[0]
    except (subprocess.TimeoutExpired, IndexError, OSError):
        return "unknown"


def environment(s: Settings) -> dict[str, Any]:
    """The machine, the tools' and packages' versions, and the model server's source and image."""
    cpu_model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    os_release = (
        dict(ln.split("=", 1) for ln in Path("/etc/os-release").read_text().splitlines() if "=" in ln)
        if Path("/etc/os-release").exists()
        else {}
    )
    ml_code = (
        "import json, sys, importlib.metadata as m; "
        f"print(json.dumps({{'python': sys.version.split()[0], **{{p: m.version(p) for p in {MLSERVER_PACKAGES!r}}}}}))"
    )
    try:
        mlserver_versions = json.loads(run([str(s.mlserver_venv / "bin" / "python"), "-c", ml_code], timeout=60))
    except (Failed, ValueError, OSError) as exc:
        mlserver_versions = {"error": str(exc)}
    git_head = run(["git", "rev-parse", "HEAD"], timeout=30, check=False).strip() or "no commit yet"
    image_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", s.image], timeout=30, check=False).strip()
    return {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "cpu_note": f"{os.cpu_count()} cores, shared by the system under test and the load generator (wrk)",
        "memory_total_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": os_release.get("PRETTY_NAME", "").strip('"'),
        "kernel": platform.release(),
        "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "docker_compose": _first_line(["docker", "compose", "version", "--short"]),
        "wrk": _first_line(["wrk", "--version"]).split(" [")[0],
        "bench_python": platform.python_version(),
        "bench_packages": {p: importlib.metadata.version(p) for p in BENCH_PACKAGES},
        "mlserver_venv": mlserver_versions,
        "model_server_image": {"tag": s.image, "id": image_id},
        "model_server_source_sha256": tree_digest(SERVER_SRC),
        "git_head": git_head,
        "model_server_uncommitted_changes": bool(
            run(["git", "status", "--porcelain", "--", "services/model-server"], timeout=30, check=False).strip()
        ),
    }
