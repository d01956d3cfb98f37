"""bench.benchmark.usage: CPU counters read around a run -> cores, throttling, the breakdown."""

import pytest

from bench.benchmark.usage import breakdown, cores, requests_per_core, throttling


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
    cpu = breakdown({"model-1": 0.9, "nginx-1": 0.3}, {"dockerd": 0.05}, wrk_seconds=2.0, host_busy_seconds=30.0,
                    wall=20.0)  # fmt: skip
    assert cpu["sut_cores"] == 1.2 and cpu["engine_cores"] == 0.05 and cpu["wrk_cores"] == 0.1
    assert cpu["host_busy_cores"] == 1.5
    assert cpu["other_cores"] == pytest.approx(0.15)
    assert cpu["components_cores"] == {"model-1": 0.9, "nginx-1": 0.3} and cpu["window_s"] == 20.0


def test_other_is_never_negative_when_counters_are_read_a_little_apart() -> None:
    cpu = breakdown({"process tree": 1.0}, {}, wrk_seconds=1.0, host_busy_seconds=10.0, wall=10.0)
    assert cpu["other_cores"] == 0.0


def test_requests_per_core_counts_the_system_and_the_engine_working_for_it() -> None:
    assert requests_per_core(1000.0, {"sut_cores": 1.5, "engine_cores": 0.5}) == 500.0
    assert requests_per_core(1000.0, {"sut_cores": 0.0, "engine_cores": 0.5}) is None
