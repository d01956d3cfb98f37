"""The systems under test: where each answers (loopback, or its own container: harness/addresses.py), what it is
sent, what it costs (CPU and memory from cgroups, process trees and the engine's processes), how it is frozen. Host
servers run in process groups recorded in ``pgid-<key>`` for bench/run's trap."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Self

import psutil

from harness.addresses import Target, free_port
from harness.commands import Failed, run
from harness.docker import container_env, inspect
from harness.waiting import wait_for

from .context import FEATURES, KINDS, MODEL, SECOND, Context, Layout, Workload, log, readable
from .settings import BENCH_DIR, MIB

CGROUP = Path("/sys/fs/cgroup")
Throttling = tuple[int, int, float]  # CFS periods, periods in which the CPU quota throttled, seconds throttled


def _read_kv(path: Path) -> dict[str, int]:
    pairs = (line.partition(" ")[::2] for line in path.read_text().splitlines())
    return {key: int(value) for key, value in pairs if value.strip().lstrip("-").isdigit()}


def _first(paths: Any) -> Path | None:
    return next((path for path in paths if path.exists()), None)


@dataclass
class Container:
    name: str
    id: str
    cpu_dir: Path | None = None
    mem_dir: Path | None = None
    version: int = 1
    throttle_file: Path | None = None

    @classmethod
    def of(cls, name: str, cid: str) -> Self:
        """Its cgroup folders (v2: one for both; v1: cgroupfs or systemd driver), looked up lazily."""
        if (CGROUP / "cgroup.controllers").exists():
            stat = _first(CGROUP / path / "cpu.stat" for path in (f"system.slice/docker-{cid}.scope", f"docker/{cid}"))
            return cls(name, cid, stat and stat.parent, stat and stat.parent, 2, stat)
        ctrls, scope = ("cpuacct", "cpu,cpuacct", "cpu"), f"docker-{cid}.scope"
        usage = (CGROUP / c / p / cid / "cpuacct.usage" for c in ctrls for p in ("docker", "system.slice"))
        cpu = _first(chain(usage, CGROUP.glob(f"cpuacct/**/{scope}/cpuacct.usage")))
        memory = CGROUP / "memory/docker" / cid / "memory.stat"
        mem = _first(chain([memory], CGROUP.glob(f"memory/**/{scope}/memory.stat")))
        throttle = _first(CGROUP / ctrl / "docker" / cid / "cpu.stat" for ctrl in ("cpu", "cpu,cpuacct"))
        return cls(name, cid, cpu and cpu.parent, mem and mem.parent, 1, throttle)

    def throttling(self) -> Throttling | None:
        if self.throttle_file is None:
            return None
        stat = _read_kv(self.throttle_file)
        seconds = stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else stat.get("throttled_time", 0) / 1e9
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0), seconds

    def cpu_seconds(self) -> float | None:
        if self.cpu_dir is None:
            return None
        if self.version == 2:
            return _read_kv(self.cpu_dir / "cpu.stat")["usage_usec"] / 1e6
        return int((self.cpu_dir / "cpuacct.usage").read_text()) / 1e9

    def memory(self) -> dict[str, float | str]:
        """MiB: resident = anonymous + mapped pages (each page once); rss = anonymous; usage = docker stats'."""
        if self.mem_dir is None:
            return {"source": "cgroup not visible"}
        stat, v2 = _read_kv(self.mem_dir / "memory.stat"), self.version == 2
        usage = int((self.mem_dir / ("memory.current" if v2 else "memory.usage_in_bytes")).read_text())
        names = "anon file_mapped inactive_file" if v2 else "total_rss total_mapped_file total_inactive_file"
        anon, mapped, inactive = (stat.get(name, 0) for name in names.split())
        return {"resident_mib": round((anon + mapped) / MIB, 1), "rss_mib": round(anon / MIB, 1),
                "usage_mib": round((usage - inactive) / MIB, 1), "source": f"cgroup v{self.version}"}  # fmt: skip


def tree_cpu(root_pid: int) -> float:
    """CPU-seconds (user + system) of a process and all its descendants."""
    return sum(pids_cpu({str(proc.pid): proc.pid for proc in process_tree(root_pid)}).values())


def process_tree(root_pid: int) -> list[psutil.Process]:
    with suppress(psutil.NoSuchProcess):
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    return []


def tree_memory(root_pid: int) -> dict[str, float]:
    """MiB: ``resident`` = PSS summed over the tree (shared pages once); ``rss`` = RSS summed."""
    pss = rss = 0
    procs = process_tree(root_pid)
    for proc in procs:
        with suppress(psutil.Error):
            info = proc.memory_full_info()
            pss, rss = pss + getattr(info, "pss", info.rss), rss + info.rss
    return {"resident_mib": round(pss / MIB, 1), "rss_mib": round(rss / MIB, 1), "processes": len(procs)}


def engine_pids(container_ids: list[str]) -> dict[str, int]:
    """The engine's processes working for a system: dockerd, containerd (they ship logs) and its shims."""
    pids = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        name, cmd = proc.info.get("name") or "", proc.info.get("cmdline") or []
        if name in ("dockerd", "containerd"):
            pids[name] = proc.pid
        elif name.startswith("containerd-shim") and "-id" in cmd and cmd[cmd.index("-id") + 1] in container_ids:
            pids[f"shim {cmd[cmd.index('-id') + 1][:12]}"] = proc.pid
    return pids


def pids_cpu(pids: Mapping[str, int]) -> dict[str, float]:
    values = {}
    for name, pid in pids.items():
        with suppress(psutil.Error):
            values[name] = sum(psutil.Process(pid).cpu_times()[:2])  # user + system
    return values


def host_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def connect(target: Target, timeout: float = 10) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def request(target: Target, path: str, body: Any = None, conn: http.client.HTTPConnection | None = None):
    """POST ``body`` as JSON (GET without one): the status and the answer, decoded if it is JSON."""
    connection = conn or connect(target, 3 if body is None else 10)
    try:
        data = None if body is None else json.dumps(body)
        connection.request("GET" if body is None else "POST", path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        with suppress(ValueError):
            return response.status, json.loads(raw)
        return response.status, raw.decode(errors="replace")
    finally:
        if conn is None:
            connection.close()


@dataclass
class System:
    key: str
    label: str
    kind: str = "numeric"  # the workload it is measured on (context.Workload), set by measure() before start()
    workload: Workload | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    engine: dict[str, int] = field(default_factory=dict)  # the Docker engine's processes working for it
    pid: int | None = None
    reached_at: Target | None = None
    paused: list[str] = field(default_factory=list)  # what freeze() paused and stopped, until thaw()
    stopped: list[int] = field(default_factory=list)

    @property
    def target(self) -> Target:
        if self.reached_at is None:
            raise Failed(f"{self.key} is not running")
        return self.reached_at

    @property
    def work(self) -> Workload:
        if self.workload is None:
            raise Failed(f"{self.key} has no workload")
        return self.workload

    @property
    def v2(self) -> bool:
        """Whether it is sent V2 requests: the model server's numeric kind takes the tutorial's ``/predict`` body."""
        return self.kind != "numeric"

    @property
    def path(self) -> str:
        return f"/v2/models/{self.work.model}/infer" if self.v2 else "/predict"

    def after_runs(self, ctx: Context) -> dict[str, Any]:  # measured after its runs, while it is still up
        return {}

    def body(self, row: Any) -> Any:
        return self.work.v2(row) if self.v2 else {"features": row}

    def prediction(self, answer: Any) -> Any:
        return answer["outputs"][0]["data"][0] if self.v2 else answer["prediction"][0]

    def check(self, ctx: Context) -> dict[str, Any]:
        """Every check row, one request each: the system must answer 200 with the model's prediction."""
        target, wrong, work = self.target, [], self.work
        with closing(connect(target)) as connection:
            for row, expected in zip(work.rows, work.expected, strict=True):
                status, answer = request(target, self.path, self.body(row), connection)
                got = self.prediction(answer) if status == 200 else f"HTTP {status}: {answer}"
                wrong += [{"row": row, "expected": expected, "got": got}] if got != expected else []
        if wrong:
            raise Failed(f"{len(wrong)}/{len(work.rows)} wrong answers, first: {wrong[0]}")
        return {"rows": len(work.rows), "all_correct": True}

    def answers(self) -> bool:
        return request(self.target, self.path, self.body(self.work.load_row))[0] == 200

    def cpu(self) -> dict[str, float]:  # CPU-seconds per component
        values = {} if self.pid is None else {"process tree": tree_cpu(self.pid)}
        return values | {c.name: seconds for c in self.containers if (seconds := c.cpu_seconds()) is not None}

    def engine_cpu(self) -> dict[str, float]:
        return pids_cpu(self.engine)

    def throttling(self) -> dict[str, Throttling]:
        return {c.name: stat for c in self.containers if (stat := c.throttling()) is not None}

    def memory(self) -> dict[str, dict[str, Any]]:
        values = {} if self.pid is None else {"process tree": tree_memory(self.pid)}
        return values | {c.name: c.memory() for c in self.containers}

    def freeze(self) -> None:
        """SIGSTOP to its process tree (root first), then docker pause; each step recorded first, for thaw()."""
        if self.paused or self.stopped:
            return
        for pid in [] if self.pid is None else [self.pid, *self.children(self.pid)]:
            self.stopped.append(pid)
            with suppress(ProcessLookupError):
                self.send(pid, signal.SIGSTOP)
        for container in self.containers:
            self.paused.append(container.id)
            self.pause(container.id)

    def thaw(self) -> None:
        """Undo freeze(), children first; all is tried, a container not unpaused stays recorded for the next thaw."""
        errors: list[Exception] = []
        for cid in reversed(list(self.paused)):
            try:
                self.unpause(cid)
                self.paused.remove(cid)
            except (Failed, OSError) as exc:
                errors.append(exc)
        for pid in reversed(self.stopped):
            with suppress(ProcessLookupError):
                self.send(pid, signal.SIGCONT)
        self.stopped = []
        if errors:
            raise Failed(f"thawing {self.key}: {errors[0]}") from errors[0]

    def pause(self, cid: str) -> None:
        run(["docker", "pause", cid], timeout=30)

    def unpause(self, cid: str) -> None:
        run(["docker", "unpause", cid], timeout=30, check=False)  # fails if it is not paused: fine
        if run(["docker", "inspect", "-f", "{{.State.Paused}}", cid], timeout=30, check=False).strip() == "true":
            raise Failed(f"container {cid[:12]} is still paused after docker unpause")

    def send(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def children(self, pid: int) -> list[int]:
        with suppress(psutil.NoSuchProcess):
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        return []


@contextmanager
def frozen(systems: Sequence[System]) -> Iterator[None]:
    try:
        for system in systems:
            system.freeze()
        yield
    finally:
        errors = []
        for system in systems:
            try:
                system.thaw()
            except Failed as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class HostProcess(System):
    process: subprocess.Popen[bytes] | None = None
    ready_timeout = 60

    def spawn(self, ctx: Context, args: list[str], env: dict[str, str], cwd: Path, ready: Callable[[], bool]) -> None:
        log = ctx.settings.run_dir / f"{self.key}.log"
        with log.open("w") as out:
            self.process = process = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                                      stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.pid = process.pid
        (ctx.settings.run_dir / f"pgid-{self.key}").write_text(str(process.pid))

        def probe() -> bool:
            if process.poll() is not None:
                raise Failed(f"{self.key} exited; see results/tmp/{log.name}")
            return ready()

        wait_for(f"{self.key} to be ready", probe, self.ready_timeout, interval=0.5)
        self.engine = engine_pids([])

    def stop(self, ctx: Context) -> None:
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL: whatever is left of the group (MLServer's workers)
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(15 if sig == signal.SIGTERM else 5)
        (ctx.settings.run_dir / f"pgid-{self.key}").unlink(missing_ok=True)
        self.process = self.pid = self.reached_at = None


class Tutorial(HostProcess):
    def start(self, ctx: Context) -> None:
        target = self.reached_at = Target.loopback(free_port())
        env = {**os.environ, "MODEL_PATH": str(ctx.model_pickle), "HOST": target.host, "PORT": str(target.port)}
        self.settings = {"server": "Flask development server (app.run, threaded: one thread per connection), debug "
                         "off", "model": "pickle.load of the image's fitted model", "bind": target.host}  # fmt: skip
        self.spawn(ctx, [sys.executable, str(BENCH_DIR / "tutorial_app.py")], env, ctx.settings.run_dir, self.answers)


class MLServer(HostProcess):
    """MLServer on its repository for the kind (context.Context._for_mlserver); every kind sent V2 requests."""

    ready_timeout = 180

    @property
    def v2(self) -> bool:
        return True

    def prediction(self, answer: Any) -> Any:  # its XGBoost runtime answers the class index
        value = super().prediction(answer)
        return value if self.work.classes is None else self.work.classes[int(value)]

    def start(self, ctx: Context) -> None:
        s, repo = ctx.settings, ctx.settings.run_dir / f"mlserver-{self.kind}"
        target = self.reached_at = Target.loopback(free_port())
        server = {"host": target.host, "http_port": target.port, "grpc_port": free_port(), "metrics_port": free_port()}
        if s.mlserver_parallel_workers is not None:
            server["parallel_workers"] = s.mlserver_parallel_workers
        (repo / "settings.json").write_text(json.dumps(server, indent=2))
        self.settings = {"settings.json": server, "parallel_workers": server.get("parallel_workers"),
                         "adaptive batching": "off (the default)"}  # fmt: skip
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER")}
        ready = f"/v2/models/{self.work.model}/ready"
        self.spawn(ctx, [str(s.mlserver_venv / "bin" / "mlserver"), "start", str(repo)], env, repo,
                   lambda: request(target, ready)[0] == 200)  # fmt: skip


class Direct(System):
    """One replica: ``docker run`` of the image with the compose service's environment and hardening."""

    def __init__(self, key: str, label: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(key, label)
        self.extra_env = extra_env or {}
        self.mounts: list[str] = []  # docker run -v, e.g. a host repository read-only at /models
        self.name: str | None = None

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        env = {**ctx.replica_env, "GUNICORN_WORKERS": str(s.direct_workers), **s.model_env, **self.extra_env}
        name = self.name = f"bench-{s.id}-{self.key}"
        limits = ["--cpus", str(s.direct_cpus), "--memory", str(s.direct_memory), *ctx.replica_hardening]
        args = [*limits, *(arg for mount in self.mounts for arg in ("-v", mount))]
        args += [arg for key, value in sorted(env.items()) for arg in ("-e", f"{key}={value}")]
        cid = run(["docker", "run", "-d", "--name", name, "--label", f"bench.run={s.id}", *args, s.image], timeout=60)
        self.containers = [Container.of("replica", cid.strip())]
        target = self.reached_at = Target.container(inspect(name), ctx.run_label, ctx.replica_port)
        self.settings = {"docker run": " ".join(limits),
                         "environment": {key: value for key, value in env.items() if key != "API_KEYS"}}  # fmt: skip

        def ready() -> bool:
            status = "{{.State.Status}} (exit code {{.State.ExitCode}}, OOM-killed: {{.State.OOMKilled}})"
            state = run(["docker", "inspect", "-f", status, name], timeout=30).strip()
            if not state.startswith("running"):
                logs = run(["docker", "logs", "--tail", "30", name], timeout=30, check=False)
                raise Failed(f"container {name} is {state}:\n{logs}")
            return request(target, "/v2/health/ready")[0] == 200

        wait_for(f"{name} to be ready", ready, 120)
        self.engine = engine_pids([c.id for c in self.containers])

    def stop(self, ctx: Context) -> None:
        if self.name is None:
            return
        log = ctx.settings.run_dir / f"{self.key}.log"
        run(["docker", "logs", "--tail", "300", self.name], timeout=60, check=False, log_to=log)
        run(["docker", "rm", "-f", self.name], timeout=60, check=False)
        self.containers, self.reached_at, self.name = [], None, None


class Stack(System):
    """``docker compose up --wait model nginx``: the replicas behind nginx, reached at nginx's container."""

    def start(self, ctx: Context) -> None:
        s, project = ctx.settings, ctx.project
        project.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", "model", "nginx", timeout=900)
        for cid in project.container_ids("model") + project.container_ids("nginx"):
            labels = (info := inspect(cid))["Config"]["Labels"]
            name = f"{labels['com.docker.compose.service']}-{labels['com.docker.compose.container-number']}"
            self.containers.append(Container.of(name, info["Id"]))
        self.containers.sort(key=lambda c: c.name)
        replicas = [c for c in self.containers if c.name.startswith("model-")]
        (nginx,) = (c for c in self.containers if c.name.startswith("nginx-"))
        if len(replicas) != s.replicas:
            raise Failed(f"expected {s.replicas} model replicas, compose started {len(replicas)}")
        self.reached_at = project.target(nginx.id, ctx.nginx_port)
        env = container_env(inspect(replicas[0].id))
        self.settings = {"repository": "every request-path feature on (context.ALL_ON)",
                         "model environment": {k: v for k, v in env.items() if k != "API_KEYS"}}  # fmt: skip
        wait_for("nginx to answer", self.answers, 60, interval=0.5)
        self.engine = engine_pids([c.id for c in self.containers])

    def stop(self, ctx: Context) -> None:
        log = ctx.project.compose("logs", "--no-color", "--tail", "300", check=False, timeout=120)
        (ctx.settings.run_dir / f"{self.key}.log").write_text(log)
        ctx.project.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
        self.containers, self.reached_at = [], None


RELOAD_WARM_CYCLES = 10  # reload cycles after which every worker holds its own copies


def reload_growth(warm_mib: float | None, last_mib: float | None, warm_cycles: int, cycles: int) -> dict[str, Any]:
    """Memory growth from cycle ``warm_cycles`` to the last (MiB, % of the warm memory, MiB per cycle), or {}."""
    if warm_mib is None or last_mib is None or warm_mib <= 0 or cycles <= warm_cycles:
        return {}
    growth = last_mib - warm_mib
    return {"from_cycle": warm_cycles, "to_cycle": cycles, "mib": round(growth, 1),
            "pct_of_warm": round(100 * growth / warm_mib, 2),
            "mib_per_cycle": round(growth / (cycles - warm_cycles), 3)}  # fmt: skip


def resident(memory: dict[str, Any]) -> float | None:  # the replica's, the figure the report uses
    return memory.get("replica", {}).get("resident_mib")


class Guarded(Direct):
    """System (b) on a host repository of its own, with one feature (or none) on, or ``row``'s (context.STACK_ROW)."""

    def __init__(self, key: str, reload_cycles: int = 0, row: tuple[str, Layout, dict[str, str]] | None = None) -> None:
        label, layout, env = row or FEATURES[key]
        super().__init__(key, label, env)
        self.layout, self.reload_cycles, self.kind = layout, reload_cycles, KINDS.get(key, "numeric")
        self.repository: Path | None = None

    def start(self, ctx: Context) -> None:
        self.repository = self.layout.build(ctx.settings.run_dir / f"repo-{self.key}", ctx.sources)
        self.extra_env = {**self.extra_env, "MODEL_REPOSITORY": "/models", "DEFAULT_MODEL": MODEL}
        self.mounts = [f"{self.repository}:/models:ro"]
        super().start(ctx)
        self.settings["repository"] = {name: {"versions": list(v)} for name, v in self.layout.models.items()}
        self.settings["config.json"] = self.layout.configs

    def after_runs(self, ctx: Context) -> dict[str, Any]:
        if not self.reload_cycles or self.repository is None:
            return {}
        before, warm, elapsed, first = self.memory(), {}, 0.0, max(self.layout.models[SECOND]) + 1
        for cycle, version in enumerate(range(first, first + self.reload_cycles), 1):
            started = time.monotonic()
            self._publish(ctx.model_dir, version)
            elapsed += time.monotonic() - started
            if cycle == RELOAD_WARM_CYCLES and cycle < self.reload_cycles:
                time.sleep(2)  # the unloaded versions' last requests end; the allocator settles
                warm = self.memory()
        time.sleep(2)
        after = self.memory()
        mib = f"{resident(before)} before, {resident(warm)} after {RELOAD_WARM_CYCLES}, {resident(after)} after all"
        log(f"{self.key}: {self.reload_cycles} reload cycles in {elapsed:.1f}s; resident MiB {mib}")
        growth = reload_growth(resident(warm), resident(after), RELOAD_WARM_CYCLES, self.reload_cycles)
        return {"reload_cycles": {"cycles": self.reload_cycles, "seconds": round(elapsed, 1), "memory_before": before,
                                  "warm_cycles": RELOAD_WARM_CYCLES, "memory_warm": warm, "memory_after": after,
                                  "growth_after_warm": growth}}  # fmt: skip

    def _publish(self, version_dir: Path, version: int) -> None:
        """Copy to a hidden name, ``mv`` in place, remove the oldest; wait until 6 requests in a row reach it."""
        assert self.repository is not None
        folder = self.repository / SECOND
        hidden = folder / f".{version}.incoming"
        shutil.copytree(version_dir, hidden)
        readable(hidden)
        os.replace(hidden, folder / str(version))
        shutil.rmtree(folder / str(version - 2), ignore_errors=True)
        path = f"/v2/models/{SECOND}/versions/{version}/infer"
        body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        deadline, in_a_row = time.monotonic() + 60, 0
        while in_a_row < 6:  # fresh connections reach the replica's workers in turn
            if time.monotonic() > deadline:
                raise Failed(f"{SECOND} version {version} not served within 60 s")
            served = request(self.target, path, body)[0] == 200
            in_a_row = in_a_row + 1 if served else 0
            if not served:
                time.sleep(0.1)
