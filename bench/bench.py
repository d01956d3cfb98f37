"""The side-by-side benchmark's driver (bench/run sets up its environment and runs it in the bench venv).

One system at a time: start it, check its answers against the model, drive it with wrk at each
concurrency (a warm-up, then a measured run of fixed duration), record throughput, latency
percentiles, errors, CPU and memory, stop it. Then write ``results/latest.json``; ``report.py``
renders ``latest.md`` and ``latest.png`` from it.

Systems (same fitted model, same load generator, same row per request):

* ``tutorial``: the tutorial's app (``tutorial_app.py``): Flask dev server, pickled model.
* ``mlserver``: MLServer 1.7.1 with its scikit-learn runtime, V2 REST ``/infer``.
* ``direct``: one model-server replica (the built image), ``docker run``, port published on the target address.
* ``direct-nobatch``: the same with batching turned off by env, when the server has batching.
* ``stack``: the compose stack's ``model`` (3 replicas) + ``nginx``, through nginx.

Every system is reached at 127.0.0.1 (``BENCH_HOST`` may only repeat it; see ``target_host``):
load never goes to any other address.

Everything started here is recorded (process groups in ``pgid-*`` files, containers labelled
``bench.run=<id>``, compose project ``bench-<id>``) so that bench/run's trap can remove it even if
this process dies; normally it is stopped here, in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib.metadata
import json
import math
import os
import pickle
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
WRK_DIR = BENCH_DIR / "wrk"
SERVER_SRC = ROOT / "services" / "model-server"
MODEL_NAME = "iris-rf"
IMAGE_MODEL_DIR = f"/opt/models/{MODEL_NAME}/1"  # the image's built-in repository
TUTORIAL_ROW = [1, 2, 3, 4]
# model_server.config: batch_max_rows "0 turns micro-batching off".
DEFAULT_BATCH_OFF_ENV = "BATCH_MAX_ROWS=0"
MIB = 1024 * 1024


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A system could not be started, answered wrongly, or a tool failed."""


# --- settings -----------------------------------------------------------------------------------


def _env_map(text: str) -> dict[str, str]:
    """``"KEY=VAL KEY2='a b'"`` -> dict (shell-style quoting)."""
    result: dict[str, str] = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SystemExit(f"bench: expected KEY=VALUE in env setting, got {item!r}")
        result[key] = value
    return result


def _memory_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?", text.strip())
    if not match:
        raise SystemExit(f"bench: cannot read memory size {text!r}")
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
    host: str
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

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        bench_id = env.get("BENCH_ID") or f"{int(time.time())}-{os.getpid()}"
        replicas = int(env.get("BENCH_REPLICAS", "3"))
        workers = int(env["BENCH_WORKERS"]) if env.get("BENCH_WORKERS") else None
        model_cpus = float(env.get("BENCH_MODEL_CPUS", "1.0"))
        model_memory = env.get("BENCH_MODEL_MEMORY", "512M")
        ncpu = os.cpu_count() or 1
        per_replica = workers or min(math.ceil(model_cpus), ncpu)  # the server's default: one per CPU
        batch_raw = env.get("BENCH_BATCH_OFF_ENV")
        parallel = env.get("BENCH_MLSERVER_PARALLEL_WORKERS", "")
        concurrency = [int(c) for c in env.get("BENCH_CONCURRENCY", "1 16 64").split()]
        return cls(
            bench_id=bench_id,
            project=env.get("BENCH_PROJECT") or f"bench-{bench_id}",
            run_dir=Path(env.get("BENCH_RUN_DIR") or BENCH_DIR / "results" / "tmp"),
            results_dir=Path(env.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results"),
            bench_python=sys.executable,
            mlserver_venv=Path(env.get("BENCH_MLSERVER_VENV") or BENCH_DIR / ".cache" / "venv-mlserver"),
            duration=int(env.get("BENCH_DURATION", "15")),
            warmup=int(env.get("BENCH_WARMUP", "5")),
            concurrency=concurrency,
            wrk_threads=int(env.get("BENCH_WRK_THREADS", "1")),
            wrk_timeout=int(env.get("BENCH_WRK_TIMEOUT", "10")),
            systems=env.get("BENCH_SYSTEMS", "tutorial mlserver direct stack").split(),
            image=env.get("BENCH_IMAGE", "model-server:bench"),
            replicas=replicas,
            host=target_host(env.get("BENCH_HOST", "")),
            workers=workers,
            workers_per_replica=per_replica,
            model_cpus=model_cpus,
            model_memory=model_memory,
            direct_workers=int(env.get("BENCH_DIRECT_WORKERS") or replicas * per_replica),
            direct_cpus=float(env.get("BENCH_DIRECT_CPUS") or min(replicas * model_cpus, ncpu)),
            direct_memory=env.get("BENCH_DIRECT_MEMORY") or f"{replicas * _memory_bytes(model_memory) // MIB}m",
            rate_limit=env.get("BENCH_RATE_LIMIT", "100000r/s"),
            rate_burst=env.get("BENCH_RATE_BURST", "100000"),
            model_env=_env_map(env.get("BENCH_MODEL_ENV", "")),
            batch_off_env=_env_map(DEFAULT_BATCH_OFF_ENV if batch_raw is None else batch_raw),
            batch_off_explicit=batch_raw is not None,
            batch_concurrency=[
                int(c) for c in env.get("BENCH_BATCH_CONCURRENCY", " ".join(map(str, concurrency))).split()
            ],
            mlserver_parallel_workers=int(parallel) if parallel else None,
            idle_wait=int(env.get("BENCH_IDLE_WAIT", "60")),
            idle_cores=float(env.get("BENCH_IDLE_CORES", "0.3")),
            disturbed_cores=float(env.get("BENCH_DISTURBED_CORES", "0.3")),
            disturbed_retries=int(env.get("BENCH_DISTURBED_RETRIES", "1")),
            wait_budget=float(env.get("BENCH_WAIT_BUDGET", "240")),
        )


# --- small helpers ------------------------------------------------------------------------------


def run(
    args: list[str],
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_to: Path | None = None,
) -> str:
    """Run a command with a time limit; its output is returned (and appended to ``log_to``)."""
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or ROOT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(args[:4])} ... did not finish within {timeout:.0f}s") from exc
    if log_to is not None:
        with log_to.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {shlex.join(args)}\n{result.stdout}{result.stderr}\n")
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise BenchError(f"{' '.join(args[:5])} failed ({result.returncode}):\n" + "\n".join(tail))
    return result.stdout


LOOPBACK = "127.0.0.1"


def target_host(requested: str = "") -> str:
    """Where every system listens and wrk connects: loopback only.

    Load never goes to another address, not even this machine's own external one (that would
    load whatever else answers there). Loopback costs Docker's user-space docker-proxy relay,
    about a quarter of a core at 2,000 req/s here, for the containers' published ports; reaching
    each container at its own bridge address instead is issue #15's next step.
    """
    host = requested.strip() or LOOPBACK
    if host != LOOPBACK:
        raise BenchError(f"BENCH_HOST={requested!r}: the benchmark sends load only to {LOOPBACK}")
    return host


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(
    host: str, port: int, path: str, body: Any, conn: http.client.HTTPConnection | None = None
) -> tuple[int, Any]:
    connection = conn or http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        if conn is None:
            connection.close()


def get_status(host: str, port: int, path: str) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=3)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last is True:
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if ".egg-info" in str(path) or path.parent.name == "models":
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- resource accounting --------------------------------------------------------------------------


def _cgroup_dirs(container_id: str) -> tuple[Path | None, Path | None, int]:
    """(cpu dir, memory dir, cgroup version) of a container, or Nones when not visible here."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # cgroup v2
        for candidate in (base / "system.slice" / f"docker-{container_id}.scope", base / "docker" / container_id):
            if (candidate / "cpu.stat").exists():
                return candidate, candidate, 2
        return None, None, 2
    cpu = next(
        (
            base / ctrl / parent / container_id
            for ctrl in ("cpuacct", "cpu,cpuacct", "cpu")
            for parent in ("docker", "system.slice")
            if (base / ctrl / parent / container_id / "cpuacct.usage").exists()
        ),
        None,
    )
    if cpu is None:
        cpu = next((p.parent for p in base.glob(f"cpuacct/**/docker-{container_id}.scope/cpuacct.usage")), None)
    mem = base / "memory" / "docker" / container_id
    if not (mem / "memory.stat").exists():
        mem = next((p.parent for p in base.glob(f"memory/**/docker-{container_id}.scope/memory.stat")), None)
    return cpu, mem, 1


def _read_kv(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


@dataclass
class Container:
    """One container of a system under test, measured through its cgroup (docker stats if not visible)."""

    name: str
    id: str
    cpu_dir: Path | None = None
    mem_dir: Path | None = None
    cgroup_version: int = 0
    throttle_file: Path | None = None

    @classmethod
    def of(cls, name: str, container_id: str) -> Container:
        cpu, mem, version = _cgroup_dirs(container_id)
        base = Path("/sys/fs/cgroup")
        candidates = [cpu / "cpu.stat"] if version == 2 and cpu else []
        candidates += [base / ctrl / "docker" / container_id / "cpu.stat" for ctrl in ("cpu", "cpu,cpuacct")]
        throttle = next((p for p in candidates if p.exists()), None)
        return cls(name, container_id, cpu, mem, version, throttle)

    def throttling(self) -> tuple[int, int, float] | None:
        """(CFS periods, periods in which the CPU quota throttled the container, seconds throttled)."""
        if self.throttle_file is None:
            return None
        stat = _read_kv(self.throttle_file)
        if "throttled_usec" in stat:
            return stat.get("nr_periods", 0), stat.get("nr_throttled", 0), stat["throttled_usec"] / 1e6
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0), stat.get("throttled_time", 0) / 1e9

    def cpu_seconds(self) -> float | None:
        if self.cpu_dir is None:
            return None
        if self.cgroup_version == 2:
            return _read_kv(self.cpu_dir / "cpu.stat")["usage_usec"] / 1e6
        return int((self.cpu_dir / "cpuacct.usage").read_text()) / 1e9

    def memory(self) -> dict[str, float]:
        """MiB: ``resident`` = anonymous + mapped file pages (each page once, like PSS summed over the
        container's processes); ``rss`` = anonymous only; ``usage`` = what ``docker stats`` shows."""
        if self.mem_dir is None:
            return self._docker_stats_memory()
        stat = _read_kv(self.mem_dir / "memory.stat")
        if self.cgroup_version == 2:
            usage = int((self.mem_dir / "memory.current").read_text())
            anon, mapped, inactive = stat.get("anon", 0), stat.get("file_mapped", 0), stat.get("inactive_file", 0)
        else:
            usage = int((self.mem_dir / "memory.usage_in_bytes").read_text())
            anon, mapped = stat.get("total_rss", 0), stat.get("total_mapped_file", 0)
            inactive = stat.get("total_inactive_file", 0)
        return {
            "resident_mib": round((anon + mapped) / MIB, 1),
            "rss_mib": round(anon / MIB, 1),
            "usage_mib": round((usage - inactive) / MIB, 1),
            "source": f"cgroup v{self.cgroup_version}",
        }

    def _docker_stats_memory(self) -> dict[str, float]:
        out = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", self.id], timeout=30)
        used = out.split("/")[0].strip()
        return {"usage_mib": round(_memory_bytes(used.replace("iB", "")) / MIB, 1), "source": "docker stats"}

    def docker_stats_cpu_cores(self) -> float:
        out = run(["docker", "stats", "--no-stream", "--format", "{{.CPUPerc}}", self.id], timeout=30)
        return float(out.strip().rstrip("%")) / 100


def _process_tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def process_tree_cpu(root_pid: int) -> float:
    total = 0.0
    for proc in _process_tree(psutil.Process(root_pid)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def process_tree_memory(root_pid: int) -> dict[str, float]:
    """MiB: ``resident`` = PSS summed over the tree (shared pages once); ``rss`` = RSS summed."""
    pss = rss = 0
    procs = _process_tree(psutil.Process(root_pid))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
    return {"resident_mib": round(pss / MIB, 1), "rss_mib": round(rss / MIB, 1), "processes": len(procs)}


def docker_proxy_pids(port: int) -> list[int]:
    """docker's userland proxy processes forwarding a published host port (its CPU is the system's too)."""
    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        is_proxy = proc.info.get("name") == "docker-proxy" and "-host-port" in cmd
        if is_proxy and cmd[cmd.index("-host-port") + 1] == str(port):
            pids.append(proc.pid)
    return pids


def engine_pids(container_ids: list[str]) -> dict[str, int]:
    """The Docker engine's processes that work for a system: dockerd and containerd (they ship the
    containers' logs to json-file), the containers' shims, and the userland proxy of published ports."""
    pids = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        name, cmd = proc.info.get("name") or "", proc.info.get("cmdline") or []
        if name in ("dockerd", "containerd"):
            pids[name] = proc.pid
        elif name.startswith("containerd-shim") and "-id" in cmd and cmd[cmd.index("-id") + 1] in container_ids:
            pids[f"shim {cmd[cmd.index('-id') + 1][:12]}"] = proc.pid
    return pids


def pids_cpu(pids: dict[str, int]) -> dict[str, float]:
    values = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            values[name] = times.user + times.system
    return values


def host_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


# --- systems under test ----------------------------------------------------------------------------


@dataclass
class System:
    key: str
    label: str
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/predict"
    lua: str = "predict.lua"
    settings: dict[str, Any] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    engine: dict[str, int] = field(default_factory=dict)
    pid: int | None = None

    def start(self, ctx: Context) -> None:
        raise NotImplementedError

    def stop(self, ctx: Context) -> None:
        raise NotImplementedError

    def body(self, row: list[float]) -> Any:
        return {"features": row}

    def prediction(self, answer: Any) -> Any:
        return answer["prediction"][0]

    def find_engine(self) -> None:
        self.engine = engine_pids([c.id for c in self.containers])
        for pid in docker_proxy_pids(self.port):
            self.engine[f"docker-proxy {pid}"] = pid

    # CPU seconds per component (system under test; Docker engine), and memory per component.
    def cpu(self) -> dict[str, float]:
        values: dict[str, float] = {}
        if self.pid is not None:
            values["process tree"] = process_tree_cpu(self.pid)
        for container in self.containers:
            seconds = container.cpu_seconds()
            if seconds is not None:
                values[container.name] = seconds
        return values

    def engine_cpu(self) -> dict[str, float]:
        return pids_cpu(self.engine)

    def throttling(self) -> dict[str, tuple[int, int, float]]:
        values = {}
        for container in self.containers:
            stat = container.throttling()
            if stat is not None:
                values[container.name] = stat
        return values

    def memory(self) -> dict[str, dict[str, float]]:
        values: dict[str, dict[str, float]] = {}
        if self.pid is not None:
            values["process tree"] = process_tree_memory(self.pid)
        for container in self.containers:
            values[container.name] = container.memory()
        return values


class HostProcess(System):
    """A server run on the host (its own process group, recorded for bench/run's trap)."""

    def spawn(self, ctx: Context, args: list[str], env: dict[str, str], cwd: Path, log_name: str) -> None:
        log_file = (ctx.settings.run_dir / log_name).open("w")
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        self.pid = proc.pid
        self._proc = proc
        (ctx.settings.run_dir / f"pgid-{self.key}").write_text(str(proc.pid))

    def alive(self) -> bool:
        return self._proc.poll() is None

    def stop(self, ctx: Context) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children left in the group (MLServer's workers) go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        (ctx.settings.run_dir / f"pgid-{self.key}").unlink(missing_ok=True)
        self._proc = None


class Tutorial(HostProcess):
    def start(self, ctx: Context) -> None:
        self.host, self.port = ctx.settings.host, free_port()
        env = {**os.environ, "MODEL_PATH": str(ctx.model_pickle), "HOST": self.host, "PORT": str(self.port)}
        self.spawn(
            ctx,
            [ctx.settings.bench_python, str(BENCH_DIR / "tutorial_app.py")],
            env,
            ctx.settings.run_dir,
            "tutorial.log",
        )
        self.settings = {
            "server": "Flask development server (app.run, threaded: one thread per connection), debug off",
            "processes": 1,
            "model": "pickle.load of the image's fitted model",
            "bind": f"{self.host} (the tutorial binds 0.0.0.0)",
            "access log": "werkzeug's, per request, to a file",
        }

        def ready() -> bool:
            if not self.alive():
                raise BenchError("the tutorial app exited; see results/tmp/tutorial.log")
            return post_json(self.host, self.port, "/predict", {"features": TUTORIAL_ROW})[0] == 200

        wait_until("the tutorial app", ready, 60)
        self.find_engine()


class MLServer(HostProcess):
    def body(self, row: list[float]) -> Any:
        return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}

    def prediction(self, answer: Any) -> Any:
        return answer["outputs"][0]["data"][0]

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        self.host, self.port = ctx.settings.host, free_port()
        self.path = f"/v2/models/{MODEL_NAME}/infer"
        self.lua = "v2_infer.lua"
        repo = s.run_dir / "mlserver"
        server: dict[str, Any] = {
            "host": self.host,
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        if s.mlserver_parallel_workers is not None:
            server["parallel_workers"] = s.mlserver_parallel_workers
        (repo / "settings.json").write_text(json.dumps(server, indent=2))
        mlserver_bin = s.mlserver_venv / "bin" / "mlserver"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
        self.spawn(ctx, [str(mlserver_bin), "start", str(repo)], env, repo, "mlserver.log")
        defaults = self._defaults(s)
        self.settings = {
            "server": "mlserver start (uvicorn HTTP server + inference worker processes)",
            "settings.json": server,
            "parallel_workers": server.get("parallel_workers", defaults.get("parallel_workers")),
            "debug (access log)": defaults.get("debug"),
            "adaptive batching": "off (max_batch_size 0, the default)",
            "model": f"{MODEL_NAME}: mlserver_sklearn.SKLearnModel, joblib dump of the image's fitted model",
        }

        def ready() -> bool:
            if not self.alive():
                raise BenchError("MLServer exited; see results/tmp/mlserver.log")
            return get_status(self.host, self.port, f"/v2/models/{MODEL_NAME}/ready") == 200

        wait_until("MLServer's model to be ready", ready, 180)
        self.find_engine()

    @staticmethod
    def _defaults(s: Settings) -> dict[str, Any]:
        code = "import json, mlserver.settings as m; s = m.Settings(); print(json.dumps({'parallel_workers': s.parallel_workers, 'debug': s.debug}))"  # noqa: E501
        try:
            return json.loads(run([str(s.mlserver_venv / "bin" / "python"), "-c", code], timeout=60))
        except (BenchError, ValueError):
            return {}


class Direct(System):
    """One model-server replica, ``docker run`` of the built image, published on the target address only."""

    extra_env: dict[str, str]
    container_name: str | None

    def __init__(self, key: str, label: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(key, label)
        self.extra_env = extra_env or {}

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        self.host, self.port = ctx.settings.host, free_port()
        env = {
            **ctx.compose_model_env,
            "GUNICORN_WORKERS": str(s.direct_workers),
            **s.model_env,
            **self.extra_env,
        }
        name = self.container_name = f"bench-{s.bench_id}-{self.key}"
        args = [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"bench.run={s.bench_id}",
            "-p",
            f"{self.host}:{self.port}:8000",
            "--cpus",
            str(s.direct_cpus),
            "--memory",
            s.direct_memory,
            # the compose service's hardening, so the replica runs as it does in the stack
            "--read-only",
            "--tmpfs",
            "/tmp:size=64m,mode=1777",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=10m",
            "--log-opt",
            "max-file=5",
        ]
        for key, value in sorted(env.items()):
            args += ["-e", f"{key}={value}"]
        container_id = run([*args, s.image], timeout=60).strip()
        self.containers = [Container.of("replica", container_id)]
        self.settings = {
            "image": s.image,
            "docker run": f"--cpus {s.direct_cpus} --memory {s.direct_memory} -p {self.host}:{self.port}:8000",
            "GUNICORN_WORKERS": s.direct_workers,
            "why": (
                f"the same total gunicorn workers as the stack ({s.replicas} replicas x {s.workers_per_replica}) "
                "and the CPU the "
                f"stack's replicas can use together (min({s.replicas} x {s.model_cpus}, {os.cpu_count()} cores)), "
                "so that stack vs direct isolates nginx and the split into replicas"
            ),
            "environment": {k: v for k, v in env.items() if k != "API_KEYS"},
        }

        def ready() -> bool:
            fmt = "{{.State.Status}} (exit code {{.State.ExitCode}}, OOM-killed: {{.State.OOMKilled}})"
            state = run(["docker", "inspect", "-f", fmt, container_id], timeout=30).strip()
            if not state.startswith("running"):
                logs = run(["docker", "logs", "--tail", "30", container_id], timeout=30, check=False)
                raise BenchError(f"container {name} is {state}:\n{logs}")
            return get_status(self.host, self.port, "/v2/health/ready") == 200

        wait_until(f"{name} to be ready", ready, 120, interval=1)
        self.find_engine()

    def stop(self, ctx: Context) -> None:
        name = getattr(self, "container_name", None)
        if name is None:
            return
        logs = ctx.settings.run_dir / f"{self.key}.log"
        run(["docker", "logs", "--tail", "300", name], timeout=60, check=False, log_to=logs)
        run(["docker", "rm", "-f", name], timeout=60, check=False)
        self.containers = []
        self.container_name = None


class Stack(System):
    """``docker compose up -d --build --wait model nginx``: 3 replicas behind nginx."""

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        self.host, self.port = ctx.settings.host, free_port()
        ctx.stack_env["HTTP_PORT"] = str(self.port)  # nginx listens on all interfaces, the target address included
        ctx.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", "model", "nginx", timeout=900)
        ids = ctx.compose("ps", "-q", "model", "nginx", timeout=60).split()
        for container_id in ids:
            info = json.loads(run(["docker", "inspect", container_id], timeout=30))[0]
            labels = info["Config"]["Labels"]
            name = f"{labels['com.docker.compose.service']}-{labels['com.docker.compose.container-number']}"
            self.containers.append(Container.of(name, info["Id"]))
        self.containers.sort(key=lambda c: c.name)
        replicas = [c for c in self.containers if c.name.startswith("model-")]
        if len(replicas) != s.replicas:
            raise BenchError(f"expected {s.replicas} model replicas, compose started {len(replicas)}")
        self.settings = {
            "compose": f"docker compose -p {s.project} up -d --build --wait model nginx",
            "MODEL_REPLICAS": s.replicas,
            "GUNICORN_WORKERS": s.workers or f"{s.workers_per_replica} (the default: one per CPU of MODEL_CPUS)",
            "MODEL_CPUS": s.model_cpus,
            "MODEL_MEMORY": s.model_memory,
            "NGINX_RATE_LIMIT": s.rate_limit,
            "NGINX_RATE_BURST": s.rate_burst,
            "rate limit note": "raised from the defaults (100r/s, burst 200) so the limiter does not throttle wrk",
            "HTTP_PORT": ctx.stack_env["HTTP_PORT"],
            "model environment": {k: v for k, v in replica_env(replicas[0].id).items() if k != "API_KEYS"},
        }
        row = {"features": TUTORIAL_ROW}
        wait_until("nginx to answer", lambda: post_json(self.host, self.port, "/predict", row)[0] == 200, 60)
        self.find_engine()

    def stop(self, ctx: Context) -> None:
        ctx.compose(
            "logs", "--no-color", "--tail", "300", check=False, timeout=120, log_to=ctx.settings.run_dir / "stack.log"
        )
        ctx.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
        self.containers = []


def replica_env(container_id: str) -> dict[str, str]:
    info = json.loads(run(["docker", "inspect", container_id], timeout=30))[0]
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


# --- the run -----------------------------------------------------------------------------------------


class Context:
    """What the systems share: settings, the model files, the reference answers, compose access."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_pickle = settings.run_dir / "tutorial" / "model.pkl"
        self.rows: list[list[float]] = []
        self.expected: list[Any] = []
        self.model_info: dict[str, Any] = {}
        self.compose_model_env: dict[str, str] = {}
        self.empty_env_file = settings.run_dir / "empty.env"
        self.override_file = settings.run_dir / "compose.override.yml"
        self.stack_env = {
            "MODEL_IMAGE": settings.image,
            "MODEL_REPLICAS": str(settings.replicas),
            "GUNICORN_WORKERS": str(settings.workers or ""),
            "MODEL_CPUS": str(settings.model_cpus),
            "MODEL_MEMORY": settings.model_memory,
            "NGINX_RATE_LIMIT": settings.rate_limit,
            "NGINX_RATE_BURST": settings.rate_burst,
            "API_KEYS": "",
            "HTTP_PORT": "0",
        }

    def compose(self, *args: str, timeout: float = 300, check: bool = True, log_to: Path | None = None) -> str:
        files = ["-f", str(COMPOSE_FILE), "-f", str(self.override_file)]
        # --env-file: a developer's .env (API keys, ports, ...) must not leak into the benchmark.
        base = ["docker", "compose", "-p", self.settings.project, "--env-file", str(self.empty_env_file), *files]
        env = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME")}
        return run(
            [*base, *args],
            timeout=timeout,
            check=check,
            env={**env, **self.stack_env},
            log_to=log_to or self.settings.run_dir / "compose.log",
        )

    def prepare(self) -> None:
        s = self.settings
        self.empty_env_file.write_text("")
        overrides = {"services": {"model": {"environment": s.model_env}}} if s.model_env else {"services": {}}
        self.override_file.write_text(json.dumps(overrides))  # JSON is YAML
        log(f"building the model-server image {s.image} (docker compose build model)")
        self.compose("build", "model", timeout=1200, log_to=s.run_dir / "build.log")
        config = json.loads(self.compose("config", "--format", "json", timeout=60))
        self.compose_model_env = {
            k: "" if v is None else str(v) for k, v in config["services"]["model"]["environment"].items()
        }

        # The model the replicas serve, copied out of the image, loaded and re-saved for the others.
        copy_name = f"bench-{s.bench_id}-modelcopy"
        run(["docker", "create", "--name", copy_name, "--label", f"bench.run={s.bench_id}", s.image], timeout=60)
        try:
            run(["docker", "cp", f"{copy_name}:{IMAGE_MODEL_DIR}", str(s.run_dir / "image-model")], timeout=60)
        finally:
            run(["docker", "rm", "-f", copy_name], timeout=60, check=False)
        self._load_model(s.run_dir / "image-model")

    def _load_model(self, model_dir: Path) -> None:
        import joblib
        import skops.io
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import train_test_split

        s = self.settings
        metadata = json.loads((model_dir / "metadata.json").read_text())
        artifact = model_dir / metadata.get("artifact", "model.skops")
        digest = sha256_of(artifact)
        if metadata.get("sha256") and metadata["sha256"] != digest:
            raise BenchError(f"{artifact.name} SHA-256 {digest} differs from metadata.json's {metadata['sha256']}")
        untrusted = skops.io.get_untrusted_types(file=artifact)
        unexpected = set(untrusted) - {"sklearn.tree._tree.Tree"}
        if unexpected:
            raise BenchError(f"the image's model holds unexpected types {sorted(unexpected)}")
        model = skops.io.load(artifact, trusted=untrusted)

        iris = load_iris()
        rng = np.random.default_rng(0)
        random_rows = rng.uniform(iris.data.min(axis=0), iris.data.max(axis=0), size=(29, 4)).round(2)
        rows = np.vstack([iris.data, [TUTORIAL_ROW], random_rows])
        self.rows = rows.tolist()
        self.expected = model.predict(rows).tolist()

        # "Same model": an estimator fitted here exactly as model_server.train fits it must agree.
        x_train, _, y_train, _ = train_test_split(
            iris.data, iris.target, test_size=0.2, stratify=iris.target, random_state=0
        )
        refit = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x_train, y_train)
        refit_agrees = bool(np.array_equal(refit.predict(rows), model.predict(rows)))

        self.model_pickle.parent.mkdir(parents=True, exist_ok=True)
        with self.model_pickle.open("wb") as handle:
            pickle.dump(model, handle)
        repo = s.run_dir / "mlserver" / MODEL_NAME
        repo.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, repo / "model.joblib")
        (repo / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": MODEL_NAME,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib", "version": str(metadata.get("version", "1"))},
                },
                indent=2,
            )
        )
        self.model_info = {
            "estimator": type(model).__name__,
            "params": {k: model.get_params()[k] for k in ("n_estimators", "max_depth", "random_state")},
            "source": f"{s.image}:{IMAGE_MODEL_DIR}/{artifact.name} (trained in the image build)",
            "sha256": digest,
            "metadata": {
                k: metadata.get(k)
                for k in ("name", "version", "created", "sklearn_version", "numpy_version", "python_version", "metrics")
            },
            "tutorial_artifact": "pickle.dump of the loaded estimator",
            "mlserver_artifact": "joblib.dump of the loaded estimator",
            "check_rows": len(self.rows),
            "identical_refit_agrees": refit_agrees,
            "prediction_for_tutorial_row": self.expected[len(iris.data)],
        }

    def check(self, system: System) -> dict[str, Any]:
        """Every check row, one request each: the system must answer 200 with the model's prediction."""
        connection = http.client.HTTPConnection(system.host, system.port, timeout=10)
        mismatches = []
        try:
            for row, expected in zip(self.rows, self.expected, strict=True):
                status, answer = post_json(system.host, system.port, system.path, system.body(row), connection)
                got = system.prediction(answer) if status == 200 else f"HTTP {status}: {answer}"
                if got != expected:
                    mismatches.append({"row": row, "expected": expected, "got": got})
        finally:
            connection.close()
        if mismatches:
            raise BenchError(f"{len(mismatches)}/{len(self.rows)} wrong answers, first: {mismatches[0]}")
        return {"rows": len(self.rows), "all_correct": True}


def foreign_containers(settings: Settings) -> list[str]:
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


def run_wrk(settings: Settings, system: System, concurrency: int, seconds: int, tag: str) -> dict[str, Any]:
    """One wrk run; for the measured one, the system's CPU and memory are sampled around and during it."""
    threads = max(1, min(settings.wrk_threads, concurrency))
    url = f"http://{system.host}:{system.port}{system.path}"
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        f"--timeout={settings.wrk_timeout}s",
        "--latency",
        "-s",
        system.lua,
        url,
    ]
    out_path = settings.run_dir / f"wrk-{system.key}-c{concurrency}-{tag}.txt"
    measured = tag == "run"
    cpu0 = system.cpu() if measured else {}
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
                proc.kill()
                raise BenchError(f"wrk did not finish ({' '.join(args)})")
            time.sleep(0.05)
    finally:
        if not reaped:
            proc.kill()
            proc.wait()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    busy = host_busy_seconds() - busy0
    cpu1 = system.cpu() if measured else {}
    engine1 = system.engine_cpu() if measured else {}
    throttle1 = system.throttling() if measured else {}
    text = out_path.read_text()
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}): {text.strip()[-800:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    if not measured:
        return raw
    duration = raw["duration_us"] / 1e6
    errors = raw["errors"]
    ok = raw["requests"] - errors["status"]
    lat = raw["latency_us"]
    components = {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in cpu1 if k in cpu0}
    components.update({f"{k} (docker stats sample)": round(v, 3) for k, v in stats_cpu.items()})
    sut_cores = sum(components.values())
    engine = {k: round((engine1[k] - engine0[k]) / wall, 3) for k in engine1 if k in engine0}
    engine_cores = sum(engine.values())
    wrk_cores = (rusage.ru_utime + rusage.ru_stime) / wall
    throttling = {}
    for name, (periods1, throttled1, seconds1) in throttle1.items():
        if name not in throttle0:
            continue
        periods0, throttled0, seconds0 = throttle0[name]
        periods, throttled = periods1 - periods0, throttled1 - throttled0
        throttling[name] = {
            "periods": periods,
            "throttled_periods": throttled,
            "throttled_pct": round(100 * throttled / periods, 1) if periods else 0.0,
            "throttled_s": round(seconds1 - seconds0, 3),
        }
    return {
        "concurrency": concurrency,
        "wrk_threads": threads,
        "duration_s": round(duration, 3),
        "requests": raw["requests"],
        "ok": ok,
        "rps": round(ok / duration, 1),
        "rps_all_responses": round(raw["requests"] / duration, 1),
        "latency_ms": {k: round(v / 1000, 3) for k, v in lat.items()},
        "errors": {
            "non_2xx": errors["status"],
            "connect": errors["connect"],
            "read": errors["read"],
            "write": errors["write"],
            "timeout": errors["timeout"],
            "total": errors["status"] + errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        },
        "cpu": {
            "sut_cores": round(sut_cores, 3),
            "components_cores": components,
            "engine_cores": round(engine_cores, 3),
            "engine_components_cores": engine,
            "wrk_cores": round(wrk_cores, 3),
            "host_busy_cores": round(busy / wall, 3),
            "other_cores": round(max(0.0, busy / wall - sut_cores - engine_cores - wrk_cores), 3),
            "window_s": round(wall, 3),
            "cfs_quota_throttling": throttling,
        },
        "rps_per_core": round(ok / duration / (sut_cores + engine_cores), 1) if sut_cores > 0 else None,
        "memory_mid_run": memory,
        "wrk_output": str(out_path.relative_to(BENCH_DIR)),
    }


def measure(ctx: Context, system: System, concurrency: list[int]) -> dict[str, Any]:
    s = ctx.settings
    result: dict[str, Any] = {"label": system.label, "status": "failed", "runs": []}
    t0 = time.monotonic()
    try:
        result["machine_before"] = wait_for_idle(s)
        log(f"{system.key}: starting")
        system.start(ctx)
        result["startup_s"] = round(time.monotonic() - t0, 1)
        result["settings"] = system.settings
        result["check"] = ctx.check(system)
        address = f"{system.host}:{system.port}"
        log(f"{system.key}: up in {result['startup_s']}s on {address}; {len(ctx.rows)} answers correct")
        for c in concurrency:
            attempts = []
            for attempt in range(1 + max(0, s.disturbed_retries)):
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
                if s.warmup > 0:
                    run_wrk(s, system, c, s.warmup, "warmup")
                attempts.append(run_wrk(s, system, c, s.duration, "run"))
                if attempts[-1]["cpu"]["other_cores"] <= s.disturbed_cores:
                    break
            measured = min(attempts, key=lambda m: m["cpu"]["other_cores"])
            measured["discarded_disturbed_attempts"] = [
                {"rps": m["rps"], "p99_ms": m["latency_ms"]["p99"], "other_cores": m["cpu"]["other_cores"]}
                for m in attempts
                if m is not measured
            ]
            result["runs"].append(measured)
            lat = measured["latency_ms"]
            log(
                f"{system.key} c={c}: {measured['rps']:.0f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                f"errors {measured['errors']['total']}, CPU SUT {measured['cpu']['sut_cores']:.2f} + engine "
                f"{measured['cpu']['engine_cores']:.2f} + wrk {measured['cpu']['wrk_cores']:.2f} + other "
                f"{measured['cpu']['other_cores']:.2f} cores"
            )
        result["check_after"] = ctx.check(system)
        result["status"] = "ok"
    except (BenchError, OSError, http.client.HTTPException, KeyError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{system.key}: FAILED: {result['error']}")
    finally:
        try:
            system.stop(ctx)
        except (BenchError, OSError) as exc:
            result["stop_error"] = str(exc)
        result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def batching_toggle(s: Settings) -> tuple[bool, str]:
    """Whether the server has the variable that turns batching off (searched in its source)."""
    if not s.batch_off_env:
        return False, "BENCH_BATCH_OFF_ENV is empty: batching comparison disabled"
    if s.batch_off_explicit:
        return True, f"BENCH_BATCH_OFF_ENV={_env_str(s.batch_off_env)} (set explicitly)"
    key = next(iter(s.batch_off_env))
    sources = [*SERVER_SRC.joinpath("src").rglob("*.py"), SERVER_SRC / "gunicorn.conf.py", COMPOSE_FILE]
    pattern = re.compile(rf"\b{re.escape(key)}\b", re.IGNORECASE)
    for path in sources:
        if path.is_file() and pattern.search(path.read_text(encoding="utf-8", errors="replace")):
            return True, f"{key} found in {path.relative_to(ROOT)}; batching off = {_env_str(s.batch_off_env)}"
    return False, (
        f"{key} appears nowhere in services/model-server (this build has no batching to toggle); set "
        "BENCH_BATCH_OFF_ENV='KEY=VAL' to the setting that turns it off"
    )


def _env_str(env: dict[str, str]) -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())


def environment(s: Settings) -> dict[str, Any]:
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

    def version_of(args: list[str]) -> str:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        except (subprocess.TimeoutExpired, IndexError, OSError):
            return "unknown"

    bench_pkgs = ["Flask", "Werkzeug", "numpy", "scikit-learn", "scipy", "joblib", "skops", "psutil", "matplotlib"]
    ml_code = (
        "import json, sys, importlib.metadata as m; print(json.dumps({'python': sys.version.split()[0], **{p: "
        "m.version(p) for p in ['mlserver', 'mlserver-sklearn', 'uvicorn', 'fastapi', 'uvloop', 'scikit-learn', "
        "'numpy', 'joblib']}}))"
    )
    try:
        mlserver_versions = json.loads(run([str(s.mlserver_venv / "bin" / "python"), "-c", ml_code], timeout=60))
    except (BenchError, ValueError, OSError) as exc:
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
        "docker": version_of(["docker", "version", "--format", "{{.Server.Version}}"]),
        "docker_compose": version_of(["docker", "compose", "version", "--short"]),
        "wrk": version_of(["wrk", "--version"]).split(" [")[0],
        "bench_python": platform.python_version(),
        "bench_packages": {p: importlib.metadata.version(p) for p in bench_pkgs},
        "mlserver_venv": mlserver_versions,
        "model_server_image": {"tag": s.image, "id": image_id},
        "model_server_source_sha256": tree_digest(SERVER_SRC),
        "git_head": git_head,
        "model_server_uncommitted_changes": bool(
            run(["git", "status", "--porcelain", "--", "services/model-server"], timeout=30, check=False).strip()
        ),
    }


def main() -> int:
    s = Settings.from_env()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s.run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    ctx = Context(s)
    results: dict[str, Any] = {"schema": 1, "bench_id": s.bench_id, "started": started.isoformat(timespec="seconds")}
    batching_on, batching_note = batching_toggle(s)
    systems: list[System] = []
    catalog: dict[str, System] = {
        "tutorial": Tutorial("tutorial", "a) tutorial app (Flask dev server)"),
        "mlserver": MLServer("mlserver", "d) MLServer 1.7.1 (sklearn runtime)"),
        "direct": Direct("direct", "b) model-server, 1 replica direct"),
        "stack": Stack("stack", "c) full stack: nginx + 3 replicas"),
    }
    for key in s.systems:
        if key not in catalog:
            raise SystemExit(f"bench: unknown system {key!r} in BENCH_SYSTEMS (known: {', '.join(catalog)})")
        systems.append(catalog[key])
        if key == "direct" and batching_on:
            systems.append(Direct("direct-nobatch", "b') 1 replica direct, batching off", s.batch_off_env))

    results["machine_at_start"] = {
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "other_containers": foreign_containers(s),
    }
    results["environment"] = {}
    internal = {"BENCH_ID", "BENCH_PROJECT", "BENCH_RUN_DIR", "BENCH_MLSERVER_VENV"}
    results["settings"] = {
        "env_overrides": {k: v for k, v in sorted(os.environ.items()) if k.startswith("BENCH_") and k not in internal},
        "duration_s": s.duration,
        "warmup_s": s.warmup,
        "concurrency": s.concurrency,
        "wrk": f"wrk -t{s.wrk_threads} (at most one thread per connection) -c<c> -d{s.duration}s "
        f"--timeout={s.wrk_timeout}s --latency, after a {s.warmup}s warm-up at the same concurrency",
        "request": "one row per POST: {'features': [1, 2, 3, 4]} (MLServer: the same row as a V2 FP64 [1,4] tensor)",
        "systems_order": [sys_.key for sys_ in systems],
        "host": s.host,
        "stack": {
            "replicas": s.replicas,
            "gunicorn_workers": s.workers_per_replica,
            "model_cpus": s.model_cpus,
            "model_memory": s.model_memory,
            "nginx_rate_limit": s.rate_limit,
            "nginx_rate_burst": s.rate_burst,
        },
        "direct": {
            "gunicorn_workers": s.direct_workers,
            "cpus": s.direct_cpus,
            "memory": s.direct_memory,
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
    results["systems"] = {}
    exit_code = 0
    try:
        ctx.prepare()
        results["model"] = ctx.model_info
        results["environment"] = environment(s)
        for system in systems:
            concurrency = s.batch_concurrency if system.key == "direct-nobatch" else s.concurrency
            results["systems"][system.key] = measure(ctx, system, concurrency)
    except BenchError as exc:
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
        except (BenchError, OSError) as exc:
            results["environment"] = {"error": str(exc)}
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    s.results_dir.mkdir(parents=True, exist_ok=True)
    (s.results_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {s.results_dir / 'latest.json'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
