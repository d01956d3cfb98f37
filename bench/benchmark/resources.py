"""Reading CPU and memory: a container's cgroup, a host process tree, the Docker engine's processes.

Containers are read through their cgroup files (v1 or v2), where this process can see them, else
through ``docker stats``. Host servers are read as their whole process tree with psutil (MLServer's
inference workers included). The Docker engine's share of the work (dockerd and containerd, which
ship the containers' logs, and the containers' shims) is read per process. The arithmetic on what
is read here is :mod:`.usage`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.commands import run

from .settings import MIB, memory_bytes
from .usage import Throttling

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_dirs(container_id: str) -> tuple[Path | None, Path | None, int]:
    """(cpu dir, memory dir, cgroup version) of a container, or Nones when not visible here."""
    base = CGROUP_ROOT
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
        candidates = [cpu / "cpu.stat"] if version == 2 and cpu else []
        candidates += [CGROUP_ROOT / ctrl / "docker" / container_id / "cpu.stat" for ctrl in ("cpu", "cpu,cpuacct")]
        throttle = next((p for p in candidates if p.exists()), None)
        return cls(name, container_id, cpu, mem, version, throttle)

    def throttling(self) -> Throttling | None:
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

    def memory(self) -> dict[str, float | str]:
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

    def _docker_stats_memory(self) -> dict[str, float | str]:
        out = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", self.id], timeout=30)
        used = out.split("/")[0].strip()
        return {"usage_mib": round(memory_bytes(used.replace("iB", "")) / MIB, 1), "source": "docker stats"}

    def docker_stats_cpu_cores(self) -> float:
        out = run(["docker", "stats", "--no-stream", "--format", "{{.CPUPerc}}", self.id], timeout=30)
        return float(out.strip().rstrip("%")) / 100


def _process_tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def process_tree_cpu(root_pid: int) -> float:
    """CPU-seconds (user + system) of a process and all its descendants."""
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


def engine_pids(container_ids: list[str]) -> dict[str, int]:
    """The Docker engine's processes that work for a system: dockerd and containerd (they ship the
    containers' logs to json-file) and the containers' shims. No docker-proxy: no system is reached
    through a published port."""
    pids = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        name, cmd = proc.info.get("name") or "", proc.info.get("cmdline") or []
        if name in ("dockerd", "containerd"):
            pids[name] = proc.pid
        elif name.startswith("containerd-shim") and "-id" in cmd and cmd[cmd.index("-id") + 1] in container_ids:
            pids[f"shim {cmd[cmd.index('-id') + 1][:12]}"] = proc.pid
    return pids


def pids_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU-seconds of each named process."""
    values = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            values[name] = times.user + times.system
    return values


def host_busy_seconds() -> float:
    """CPU-seconds every core of the host spent not idle, since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
