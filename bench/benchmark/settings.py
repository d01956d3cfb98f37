"""The benchmark's settings: the ``BENCH_*`` environment variables (bench/README.md), read and checked once.

:meth:`Settings.from_env` is pure (the environment, the CPU count and the interpreter are its
arguments) and refuses what it cannot use, naming the variable: an unknown ``BENCH_*`` name (a
typo would otherwise measure the defaults), a value that is not a number where one is needed, an
unknown system. There is no setting for the address: each system is reached at loopback or at
its own container's address (:mod:`tests.support.addresses`), never anywhere else.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

BENCH_DIR = Path(__file__).resolve().parents[1]
SYSTEMS = ("tutorial", "mlserver", "direct", "stack")
# The performance guard's rows (features.py): one replica with each request-path feature on; the
# first is the baseline, the second the baseline again (the A/A control: the run's noise floor).
FEATURE_ROWS = ("f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload")
BASELINE, CONTROL = FEATURE_ROWS[:2]
# The longest a system may stay frozen while another is measured (freeze.py): a round's or a single
# run's warm-up + measured run. Well under the replicas' gunicorn worker timeout (30 s): a replica
# frozen longer could have a worker killed as hung when it thaws.
MAX_FREEZE_S = 20
# model_server.config: batch_max_rows "0 turns micro-batching off".
DEFAULT_BATCH_OFF_ENV = "BATCH_MAX_ROWS=0"
MIB = 1024 * 1024

# Read here, or by bench/run before it starts this package (BENCH_TIMEOUT, the interpreters, the cache).
KNOWN_VARIABLES = frozenset(
    {
        "BENCH_BATCH_CONCURRENCY", "BENCH_BATCH_OFF_ENV", "BENCH_CACHE_DIR", "BENCH_CONCURRENCY",
        "BENCH_DIRECT_CPUS", "BENCH_DIRECT_MEMORY", "BENCH_DIRECT_WORKERS", "BENCH_DISTURBED_CORES",
        "BENCH_FEATURES", "BENCH_FEATURE_CONCURRENCY", "BENCH_RELOAD_CYCLES",
        "BENCH_DISTURBED_RETRIES", "BENCH_DURATION", "BENCH_ID", "BENCH_IDLE_CORES", "BENCH_IDLE_WAIT",
        "BENCH_IMAGE", "BENCH_MLSERVER_PARALLEL_WORKERS", "BENCH_MLSERVER_PYTHON", "BENCH_MLSERVER_VENV",
        "BENCH_MODEL_CPUS", "BENCH_MODEL_ENV", "BENCH_MODEL_MEMORY", "BENCH_PROJECT", "BENCH_PYTHON",
        "BENCH_RATE_BURST", "BENCH_RATE_LIMIT", "BENCH_REPLICAS", "BENCH_RESULTS_DIR", "BENCH_ROUNDS",
        "BENCH_ROUND_DURATION", "BENCH_ROUND_WARMUP", "BENCH_RUN_DIR", "BENCH_SYSTEMS", "BENCH_TIMEOUT",
        "BENCH_WAIT_BUDGET", "BENCH_WARMUP", "BENCH_WORKERS", "BENCH_WRK_THREADS", "BENCH_WRK_TIMEOUT",
    }
)  # fmt: skip
# Variables that are gone, and why: refused rather than silently ignored.
RETIRED_VARIABLES = {
    "BENCH_HOST": "the benchmark chooses every address itself: host processes on 127.0.0.1, containers "
    "at their own bridge address (bench/README.md, Settings)",
}

Number = TypeVar("Number", int, float)


class SettingsError(SystemExit):
    """A ``BENCH_*`` value the benchmark cannot use; exits with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


def env_map(text: str, variable: str = "env setting") -> dict[str, str]:
    """``"KEY=VAL KEY2='a b'"`` -> dict (shell-style quoting)."""
    result: dict[str, str] = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SettingsError(f"{variable}: expected KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def env_str(env: Mapping[str, str]) -> str:
    """The inverse of :func:`env_map`."""
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())


def memory_bytes(text: str) -> int:
    """``"512M"``, ``"1.5GiB"``, ``"300k"``, ``"1024"`` -> bytes (binary units, as Docker reads them)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?", text.strip())
    if not match:
        raise SettingsError(f"cannot read memory size {text!r}")
    scale = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


@dataclass
class Settings:
    bench_id: str
    project: str
    run_dir: Path
    results_dir: Path
    bench_python: str
    mlserver_venv: Path
    duration: int
    warmup: int
    concurrency: list[int]
    wrk_threads: int
    wrk_timeout: int
    systems: list[str]
    image: str
    replicas: int
    workers: int | None  # GUNICORN_WORKERS for the replicas; None: the server's default
    workers_per_replica: int  # what the replicas run: ``workers``, or the default, one per CPU of the limit
    model_cpus: float
    model_memory: str
    direct_workers: int
    direct_cpus: float
    direct_memory: str
    rate_limit: str
    rate_burst: str
    model_env: dict[str, str]
    batch_off_env: dict[str, str]
    batch_off_explicit: bool
    batch_concurrency: list[int]
    mlserver_parallel_workers: int | None
    idle_wait: int
    idle_cores: float
    disturbed_cores: float
    disturbed_retries: int
    wait_budget: float  # seconds left for idle waits and repeated runs, over the whole run
    features: list[str]  # the performance guard's rows to run (FEATURE_ROWS)
    feature_concurrency: list[int]
    reload_cycles: int
    rounds: int  # paired, interleaved rounds per comparison group (rounds.py); 0: none
    round_duration: int
    round_warmup: int

    @property
    def freezes_single_runs(self) -> bool:
        """Whether a single run's warm-up + measured run is short enough to freeze the other systems up through it."""
        return self.warmup + self.duration <= MAX_FREEZE_S

    @classmethod
    def from_env(cls, env: Mapping[str, str], cpu_count: int, python: str, now: int = 0, pid: int = 0) -> Settings:
        """The settings from ``env`` (``os.environ``) on a machine of ``cpu_count`` cores; ``python``
        runs the tutorial app; ``now`` and ``pid`` make the run's id when ``BENCH_ID`` is unset."""
        for name in sorted(k for k in env if k.startswith("BENCH_")):
            if name in RETIRED_VARIABLES:
                raise SettingsError(f"{name} is no longer read: {RETIRED_VARIABLES[name]}")
            if name not in KNOWN_VARIABLES:
                raise SettingsError(f"unknown variable {name} (bench/README.md lists them)")

        def number(name: str, default: str, kind: Callable[[str], Number], minimum: Number) -> Number:
            raw = env.get(name) or default
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value < minimum:
                raise SettingsError(f"{name}={raw!r}: at least {minimum}")
            return value

        def numbers(name: str, default: str) -> list[int]:
            raw = env.get(name) or default
            try:
                values = [int(item) for item in raw.split()]
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: expected whole numbers separated by spaces") from None
            if not values or min(values) < 1:
                raise SettingsError(f"{name}={raw!r}: expected at least one number, each at least 1")
            return values

        systems = (env.get("BENCH_SYSTEMS") or " ".join(SYSTEMS)).split()
        unknown = [key for key in systems if key not in SYSTEMS]
        if unknown:
            raise SettingsError(f"unknown system {unknown[0]!r} in BENCH_SYSTEMS (known: {', '.join(SYSTEMS)})")
        features = (env.get("BENCH_FEATURES", " ".join(FEATURE_ROWS))).split()
        unknown = [key for key in features if key not in FEATURE_ROWS]
        if unknown:
            raise SettingsError(f"unknown row {unknown[0]!r} in BENCH_FEATURES (known: {', '.join(FEATURE_ROWS)})")
        if CONTROL in features and BASELINE not in features:
            raise SettingsError(f"BENCH_FEATURES: {CONTROL} is {BASELINE} again, compared with it; add {BASELINE}")
        bench_id = env.get("BENCH_ID") or f"{now}-{pid}"
        replicas = number("BENCH_REPLICAS", "3", int, 1)
        workers = number("BENCH_WORKERS", "1", int, 1) if env.get("BENCH_WORKERS") else None
        model_cpus = number("BENCH_MODEL_CPUS", "1.0", float, 0.01)
        model_memory = env.get("BENCH_MODEL_MEMORY") or "512M"
        replica_memory = memory_bytes(model_memory)
        per_replica = workers or min(math.ceil(model_cpus), cpu_count)  # the server's default: one per CPU
        concurrency = numbers("BENCH_CONCURRENCY", "1 16 64")
        batch_raw = env.get("BENCH_BATCH_OFF_ENV")
        parallel = env.get("BENCH_MLSERVER_PARALLEL_WORKERS")
        round_duration = number("BENCH_ROUND_DURATION", "10", int, 1)
        round_warmup = number("BENCH_ROUND_WARMUP", "2", int, 0)
        if round_warmup + round_duration > MAX_FREEZE_S:
            raise SettingsError(
                f"BENCH_ROUND_WARMUP + BENCH_ROUND_DURATION = {round_warmup + round_duration} s: at most "
                f"{MAX_FREEZE_S} s, the longest the other systems of a group may stay frozen (bench/README.md, "
                "Paired rounds)"
            )
        return cls(
            bench_id=bench_id,
            project=env.get("BENCH_PROJECT") or f"bench-{bench_id}",
            run_dir=Path(env.get("BENCH_RUN_DIR") or BENCH_DIR / "results" / "tmp"),
            results_dir=Path(env.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results"),
            bench_python=python,
            mlserver_venv=Path(env.get("BENCH_MLSERVER_VENV") or BENCH_DIR / ".cache" / "venv-mlserver"),
            duration=number("BENCH_DURATION", "15", int, 1),
            warmup=number("BENCH_WARMUP", "5", int, 0),
            concurrency=concurrency,
            wrk_threads=number("BENCH_WRK_THREADS", "1", int, 1),
            wrk_timeout=number("BENCH_WRK_TIMEOUT", "10", int, 1),
            systems=systems,
            image=env.get("BENCH_IMAGE") or "model-server:bench",
            replicas=replicas,
            workers=workers,
            workers_per_replica=per_replica,
            model_cpus=model_cpus,
            model_memory=model_memory,
            direct_workers=number("BENCH_DIRECT_WORKERS", str(replicas * per_replica), int, 1),
            direct_cpus=number("BENCH_DIRECT_CPUS", str(min(replicas * model_cpus, cpu_count)), float, 0.01),
            direct_memory=env.get("BENCH_DIRECT_MEMORY") or f"{replicas * replica_memory // MIB}m",
            rate_limit=env.get("BENCH_RATE_LIMIT") or "100000r/s",
            rate_burst=env.get("BENCH_RATE_BURST") or "100000",
            model_env=env_map(env.get("BENCH_MODEL_ENV", ""), "BENCH_MODEL_ENV"),
            batch_off_env=env_map(DEFAULT_BATCH_OFF_ENV if batch_raw is None else batch_raw, "BENCH_BATCH_OFF_ENV"),
            batch_off_explicit=batch_raw is not None,
            batch_concurrency=numbers("BENCH_BATCH_CONCURRENCY", " ".join(map(str, concurrency))),
            mlserver_parallel_workers=number("BENCH_MLSERVER_PARALLEL_WORKERS", "1", int, 1) if parallel else None,
            idle_wait=number("BENCH_IDLE_WAIT", "60", int, 0),
            idle_cores=number("BENCH_IDLE_CORES", "0.3", float, 0.0),
            disturbed_cores=number("BENCH_DISTURBED_CORES", "0.3", float, 0.0),
            disturbed_retries=number("BENCH_DISTURBED_RETRIES", "1", int, 0),
            wait_budget=number("BENCH_WAIT_BUDGET", "240", float, 0.0),
            features=features,
            feature_concurrency=numbers("BENCH_FEATURE_CONCURRENCY", "16 1"),
            reload_cycles=number("BENCH_RELOAD_CYCLES", "50", int, 0),
            rounds=number("BENCH_ROUNDS", "5", int, 0),
            round_duration=round_duration,
            round_warmup=round_warmup,
        )
