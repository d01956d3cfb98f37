"""CPU and memory: counters read around a run -> cores, throttling, the breakdown (bench.benchmark.measure); a
container's cgroup files (v1 and v2, in a fake /sys/fs/cgroup) -> CPU-seconds, throttling, memory (.systems)."""

from pathlib import Path

import pytest

from bench.benchmark import systems
from bench.benchmark.measure import breakdown, cores, requests_per_core, throttling
from bench.benchmark.systems import Container

MIB = 1024 * 1024


def test_cores_are_cpu_seconds_over_the_window_for_components_read_at_both_ends() -> None:
    before = {"model-1": 10.0, "nginx-1": 2.0, "gone": 1.0}
    after = {"model-1": 16.0, "nginx-1": 2.5, "new": 3.0}
    assert cores(before, after, wall=4.0) == {"model-1": 1.5, "nginx-1": 0.125}


def test_throttling_is_the_share_of_cfs_periods_in_which_the_quota_throttled() -> None:
    before = {"replica": (100, 10, 0.5), "idle": (50, 0, 0.0)}
    after = {"replica": (300, 60, 2.75), "idle": (50, 0, 0.0), "late": (10, 1, 0.1)}
    assert throttling(before, after) == {
        "replica": {"periods": 200, "throttled_periods": 50, "throttled_pct": 25.0, "throttled_s": 2.25},
        "idle": {"periods": 0, "throttled_periods": 0, "throttled_pct": 0.0, "throttled_s": 0.0},
    }


def test_other_is_the_hosts_busy_time_beyond_the_system_the_engine_and_wrk() -> None:
    cpu = breakdown({"model-1": 0.9, "nginx-1": 0.3}, {"dockerd": 0.05}, wrk_s=2.0, busy_s=30.0, wall=20.0)
    assert (cpu["sut_cores"], cpu["engine_cores"], cpu["wrk_cores"], cpu["host_busy_cores"]) == (1.2, 0.05, 0.1, 1.5)
    assert cpu["other_cores"] == pytest.approx(0.15)
    assert cpu["components_cores"] == {"model-1": 0.9, "nginx-1": 0.3} and cpu["window_s"] == 20.0
    assert cpu["engine_components_cores"] == {"dockerd": 0.05}


def test_other_is_never_negative_when_counters_are_read_a_little_apart() -> None:
    assert breakdown({"process tree": 1.0}, {}, wrk_s=1.0, busy_s=10.0, wall=10.0)["other_cores"] == 0.0


def test_requests_per_core_counts_the_system_and_the_engine_working_for_it() -> None:
    assert requests_per_core(1000.0, {"sut_cores": 1.5, "engine_cores": 0.5}) == 500.0
    assert requests_per_core(1000.0, {"sut_cores": 0.0, "engine_cores": 0.5}) is None


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v1_container_is_read_from_its_cpuacct_cpu_and_memory_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "CGROUP", tmp_path)
    write(tmp_path / "cpuacct/docker/abc/cpuacct.usage", "2500000000\n")  # ns
    write(tmp_path / "cpu/docker/abc/cpu.stat", "nr_periods 40\nnr_throttled 4\nthrottled_time 300000000\n")
    write(
        tmp_path / "memory/docker/abc/memory.stat",
        f"total_rss {100 * MIB}\ntotal_mapped_file {20 * MIB}\n"
        f"total_inactive_file {30 * MIB}\nhierarchical_memory_limit -1\n",
    )
    write(tmp_path / "memory/docker/abc/memory.usage_in_bytes", str(180 * MIB))
    container = Container.of("replica", "abc")
    assert (container.version, container.cpu_seconds(), container.throttling()) == (1, 2.5, (40, 4, 0.3))
    assert container.memory() == {"resident_mib": 120.0, "rss_mib": 100.0, "usage_mib": 150.0, "source": "cgroup v1"}


def test_a_cgroup_v2_container_is_read_from_its_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systems, "CGROUP", tmp_path)
    write(tmp_path / "cgroup.controllers", "cpu memory")
    scope = tmp_path / "system.slice/docker-abc.scope"
    write(scope / "cpu.stat", "usage_usec 1500000\nnr_periods 10\nnr_throttled 1\nthrottled_usec 20000\n")
    write(scope / "memory.stat", f"anon {50 * MIB}\nfile_mapped {10 * MIB}\ninactive_file {5 * MIB}\n")
    write(scope / "memory.current", str(70 * MIB))
    container = Container.of("model-1", "abc")
    assert (container.version, container.cpu_seconds(), container.throttling()) == (2, 1.5, (10, 1, 0.02))
    assert container.memory() == {"resident_mib": 60.0, "rss_mib": 50.0, "usage_mib": 65.0, "source": "cgroup v2"}


def test_a_container_whose_cgroup_is_not_visible_has_no_cpu_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systems, "CGROUP", tmp_path)
    container = Container.of("replica", "abc")
    assert (container.cpu_dir, container.mem_dir, container.cpu_seconds(), container.throttling()) == (None,) * 4
