"""The ``BENCH_*`` variables (bench/README.md, Settings), read once with pydantic-settings. Refused, naming the
variable: a ``BENCH_*`` name that is no field here (a typo would silently measure the defaults) and a value that
cannot be used. No address is a setting: each system is reached at loopback or at its own container's address."""

import math
import os
import re
import shlex
import time
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BENCH_DIR = Path(__file__).resolve().parents[1]
# In the order they run: a kind's MLServer before its stack, each group's systems one after another.
SystemKey = Literal["tutorial", "mlserver", "direct", "direct-all", "stack", "mlserver-tabular", "stack-tabular",
                    "mlserver-boosted", "stack-boosted"]  # fmt: skip
# The performance guard's rows (systems.Guarded); the second is the first again: the A/A control, the run's noise floor.
Row = Literal["f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload", "f-xgboost"]
SYSTEMS, FEATURE_ROWS = get_args(SystemKey), get_args(Row)
BASELINE, CONTROL = FEATURE_ROWS[:2]
# The longest the other systems stay frozen while one is measured (a warm-up + a run): well under the
# replicas' gunicorn worker timeout (30 s), after which a thawed master could kill a worker as hung.
MAX_FREEZE_S = 20
MIB = 1024 * 1024
EMPTY_IS_A_VALUE = {"features", "batch_off_env", "model_env"}  # elsewhere an empty value means the default


def env_map(text: str) -> dict[str, str]:
    """``"KEY=VAL KEY2='a b'"`` -> dict (shell quoting)."""
    result = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def env_str(env: dict[str, str]) -> str:
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())


def memory_bytes(text: str) -> int:
    """``"512M"``, ``"1.5GiB"``, ``"300k"``, ``"1024"`` -> bytes (binary units, as Docker reads them)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?", text.strip())
    if not match:
        raise ValueError(f"cannot read memory size {text!r}")
    return int(float(match.group(1)) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[match.group(2).lower()])


# How a value is written in the environment: words separated by spaces; KEY=VALUE pairs; a memory size.
Split = BeforeValidator(lambda value: value.split() if isinstance(value, str) else value)
Counts = Annotated[list[Annotated[int, Field(ge=1)]], NoDecode, Split, Field(min_length=1)]
EnvText = Annotated[dict[str, str], NoDecode, BeforeValidator(lambda v: env_map(v) if isinstance(v, str) else v)]
Memory = Annotated[str, BeforeValidator(lambda value: f"{memory_bytes(value)}" and value)]  # read, or refused


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", protected_namespaces=())

    # Set by bench/run for the run itself; the last four are read by bench/run only.
    id: str = Field(default_factory=lambda: f"{int(time.time())}-{os.getpid()}")
    project: str = ""  # default bench-<id>
    run_dir: Path = BENCH_DIR / "results" / "tmp"
    results_dir: Path = BENCH_DIR / "results"
    mlserver_venv: Path = BENCH_DIR / ".cache" / "venv-mlserver"
    timeout: int = Field(3600, ge=1)
    cache_dir: Path | None = None
    python: str | None = None
    mlserver_python: str | None = None
    # The measurements.
    duration: int = Field(15, ge=1)
    warmup: int = Field(5, ge=0)
    concurrency: Counts = [1, 16, 64]
    wrk_threads: int = Field(1, ge=1)
    wrk_timeout: int = Field(10, ge=1)
    systems: Annotated[list[SystemKey], NoDecode, Split] = list(SYSTEMS)
    image: str = "model-server:bench"
    # Sizing: the stack's, and (b)'s, by default the stack's workers and the CPU its replicas can use together.
    replicas: int = Field(3, ge=1)
    workers: int | None = Field(None, ge=1)  # GUNICORN_WORKERS; None: the server's default, one per CPU
    model_cpus: float = Field(1.0, ge=0.01)
    model_memory: Memory = "512M"
    direct_workers: int | None = Field(None, ge=1)
    direct_cpus: float | None = Field(None, ge=0.01)
    direct_memory: Memory | None = None
    rate_limit: str = "100000r/s"
    rate_burst: str = "100000"
    model_env: EnvText = {}
    batch_off_env: EnvText = {"BATCH_MAX_ROWS": "0"}  # model_server's config: 0 turns micro-batching off
    batch_concurrency: Counts | None = None  # default: concurrency
    mlserver_parallel_workers: int | None = Field(None, ge=1)
    # A shared machine: wait for it to be idle (within a budget), flag a run that others disturbed.
    idle_wait: int = Field(60, ge=0)
    idle_cores: float = Field(0.3, ge=0)
    disturbed_cores: float = Field(0.3, ge=0)
    wait_budget: float = Field(240, ge=0)  # seconds left for the idle waits, spent as the run goes
    # The performance guard and the paired rounds.
    features: Annotated[list[Row], NoDecode, Split] = list(FEATURE_ROWS)
    feature_concurrency: Counts = [16, 1]
    reload_cycles: int = Field(50, ge=0)
    rounds: int = Field(5, ge=0)
    round_duration: int = Field(10, ge=1)
    round_warmup: int = Field(2, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in sorted(n.upper() for n in os.environ if n.upper().startswith("BENCH_")):
            if name.removeprefix("BENCH_").lower() not in cls.model_fields:
                raise ValueError(f"unknown variable {name} (bench/README.md lists them)")
        return {key: value for key, value in values.items() if value != "" or key in EMPTY_IS_A_VALUE}

    @model_validator(mode="after")
    def _derive(self) -> Self:
        if CONTROL in self.features and BASELINE not in self.features:
            raise ValueError(f"BENCH_FEATURES: {CONTROL} is {BASELINE} again, compared with it; add {BASELINE}")
        if (total := self.round_warmup + self.round_duration) > MAX_FREEZE_S:
            raise ValueError(f"BENCH_ROUND_WARMUP + BENCH_ROUND_DURATION = {total} s: at most {MAX_FREEZE_S} s, the "
                             "longest the other systems of a group may stay frozen (bench/README.md)")  # fmt: skip
        cpus = os.cpu_count() or 1
        self.project = self.project or f"bench-{self.id}"
        self.direct_workers = self.direct_workers or self.replicas * self.workers_per_replica
        self.direct_cpus = self.direct_cpus or float(min(self.replicas * self.model_cpus, cpus))
        self.direct_memory = self.direct_memory or f"{self.replicas * memory_bytes(self.model_memory) // MIB}m"
        self.batch_concurrency = self.batch_concurrency or self.concurrency
        return self

    @property
    def workers_per_replica(self) -> int:
        """What each replica runs: ``workers``, or the server's default, one per CPU of its limit."""
        return self.workers or min(math.ceil(self.model_cpus), os.cpu_count() or 1)

    @property
    def freezes_single_runs(self) -> bool:
        """Whether a single run's warm-up + run is short enough to freeze the other systems up through it."""
        return self.warmup + self.duration <= MAX_FREEZE_S

    @classmethod
    def load(cls) -> Self:
        """The settings from the environment; what cannot be used exits with a message naming the variable."""
        try:
            return cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:
                name = f"BENCH_{str(error['loc'][0]).upper()}"
                message = f"{name}={os.environ.get(name, error['input'])!r}: {message}"
            raise SystemExit(f"bench: {message}") from None
