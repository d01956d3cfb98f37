"""bench.benchmark.settings: the BENCH_* variables, their defaults, what is derived and what is refused."""

from pathlib import Path

import pytest

from bench.benchmark.settings import MIB, Settings, SettingsError, env_map, env_str, memory_bytes


def settings(cpu_count: int = 2, **env: str) -> Settings:
    return Settings.from_env(env, cpu_count, "/usr/bin/python3", now=1700000000, pid=42)


def test_defaults_are_the_documented_ones() -> None:
    s = settings()
    assert (s.duration, s.warmup, s.concurrency) == (15, 5, [1, 16, 64])
    assert s.systems == ["tutorial", "mlserver", "direct", "stack"]
    assert (s.replicas, s.workers, s.workers_per_replica, s.model_cpus, s.model_memory) == (3, None, 1, 1.0, "512M")
    assert (s.rate_limit, s.rate_burst) == ("100000r/s", "100000")
    assert s.batch_off_env == {"BATCH_MAX_ROWS": "0"} and not s.batch_off_explicit
    assert s.batch_concurrency == s.concurrency
    assert (s.idle_wait, s.idle_cores, s.disturbed_cores, s.disturbed_retries, s.wait_budget) == (60, 0.3, 0.3, 1, 240)
    assert s.mlserver_parallel_workers is None
    assert (s.bench_id, s.project) == ("1700000000-42", "bench-1700000000-42")
    assert s.run_dir == Path(__file__).resolve().parents[3] / "bench" / "results" / "tmp"
    assert s.features == ["f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload"]
    assert (s.feature_concurrency, s.reload_cycles) == ([16, 1], 50)
    assert (s.rounds, s.round_duration, s.round_warmup) == (5, 10, 2)


def test_the_paired_rounds_can_be_shortened_or_turned_off() -> None:
    s = settings(BENCH_ROUNDS="2", BENCH_ROUND_DURATION="3", BENCH_ROUND_WARMUP="0")
    assert (s.rounds, s.round_duration, s.round_warmup) == (2, 3, 0)
    assert settings(BENCH_ROUNDS="0").rounds == 0


def test_a_round_must_be_short_enough_to_freeze_the_others_through_it() -> None:
    assert settings(BENCH_ROUND_DURATION="18", BENCH_ROUND_WARMUP="2").round_duration == 18
    with pytest.raises(SettingsError, match="BENCH_ROUND_WARMUP \\+ BENCH_ROUND_DURATION = 21 s: at most 20 s"):
        settings(BENCH_ROUND_DURATION="19", BENCH_ROUND_WARMUP="2")


def test_the_guard_rows_can_be_chosen_or_left_out() -> None:
    assert settings(BENCH_FEATURES="f-none f-shadow").features == ["f-none", "f-shadow"]
    assert settings(BENCH_FEATURES="").features == []
    with pytest.raises(SettingsError, match="unknown row 'f-gpu' in BENCH_FEATURES"):
        settings(BENCH_FEATURES="f-none f-gpu")


def test_the_control_row_needs_the_baseline_it_is_a_copy_of() -> None:
    assert settings(BENCH_FEATURES="f-none f-control").features == ["f-none", "f-control"]
    with pytest.raises(SettingsError, match="f-control is f-none again"):
        settings(BENCH_FEATURES="f-control f-drift")


def test_the_direct_replica_gets_the_stacks_workers_and_the_cpu_its_replicas_can_use_together() -> None:
    # 3 replicas x 1 worker, min(3 x 1.0, 2 cores), 3 x 512M
    s = settings(cpu_count=2)
    assert (s.direct_workers, s.direct_cpus, s.direct_memory) == (3, 2.0, "1536m")
    s = settings(cpu_count=8, BENCH_REPLICAS="2", BENCH_MODEL_CPUS="1.5", BENCH_MODEL_MEMORY="1g")
    assert s.workers_per_replica == 2  # one per CPU of the limit, rounded up
    assert (s.direct_workers, s.direct_cpus, s.direct_memory) == (4, 3.0, "2048m")
    s = settings(BENCH_WORKERS="4", BENCH_DIRECT_WORKERS="5", BENCH_DIRECT_CPUS="1", BENCH_DIRECT_MEMORY="1g")
    assert (s.workers, s.workers_per_replica, s.direct_workers, s.direct_cpus, s.direct_memory) == (4, 4, 5, 1.0, "1g")


def test_lists_and_env_settings_are_parsed() -> None:
    s = settings(
        BENCH_CONCURRENCY="2 8",
        BENCH_SYSTEMS="stack direct",
        BENCH_MODEL_ENV="LOG_LEVEL=warning BATCH_MAX_WAIT_MS='2'",
        BENCH_BATCH_OFF_ENV="",
        BENCH_MLSERVER_PARALLEL_WORKERS="2",
    )
    assert s.concurrency == s.batch_concurrency == [2, 8]
    assert s.systems == ["stack", "direct"]
    assert s.model_env == {"LOG_LEVEL": "warning", "BATCH_MAX_WAIT_MS": "2"}
    assert s.batch_off_env == {} and s.batch_off_explicit
    assert s.mlserver_parallel_workers == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BENCH_DURATON": "3"}, "unknown variable BENCH_DURATON"),
        ({"BENCH_HOST": "127.0.0.1"}, "BENCH_HOST is no longer read: the benchmark chooses every address itself"),
        ({"BENCH_DURATION": "3s"}, "BENCH_DURATION='3s' is not a int"),
        ({"BENCH_DURATION": "0"}, "BENCH_DURATION='0': at least 1"),
        ({"BENCH_MODEL_CPUS": "lots"}, "BENCH_MODEL_CPUS='lots' is not a float"),
        ({"BENCH_CONCURRENCY": "1,16"}, "BENCH_CONCURRENCY='1,16': expected whole numbers"),
        ({"BENCH_CONCURRENCY": "0 16"}, "expected at least one number, each at least 1"),
        ({"BENCH_SYSTEMS": "stack kserve"}, "unknown system 'kserve' in BENCH_SYSTEMS"),
        ({"BENCH_MODEL_ENV": "LOG_LEVEL"}, "BENCH_MODEL_ENV: expected KEY=VALUE, got 'LOG_LEVEL'"),
        ({"BENCH_MODEL_MEMORY": "half"}, "cannot read memory size 'half'"),
        ({"BENCH_ROUNDS": "-1"}, "BENCH_ROUNDS='-1': at least 0"),
        ({"BENCH_ROUND_DURATION": "0"}, "BENCH_ROUND_DURATION='0': at least 1"),
        ({"BENCH_ROUND_WARMUP": "2.5"}, "BENCH_ROUND_WARMUP='2.5' is not a int"),
        ({"BENCH_ROUND": "5"}, "unknown variable BENCH_ROUND"),
    ],
)
def test_what_cannot_be_used_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=r"^bench: ") as refused:
        settings(**env)
    assert message in str(refused.value)


def test_other_variables_are_not_the_benchmarks_business() -> None:
    assert settings(HOME="/root", BENCHMARK="x").duration == 15


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * MIB), ("1.5GiB", 1536 * MIB), ("300k", 300 * 1024), ("1024", 1024), ("12.5MiB", int(12.5 * MIB))],
)
def test_memory_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert memory_bytes(text) == size


def test_env_str_quotes_what_env_map_reads_back() -> None:
    env = {"A": "1", "B": "two words", "C": ""}
    assert env_map(env_str(env)) == env


def test_single_runs_freeze_the_others_only_when_short_enough() -> None:
    assert settings().freezes_single_runs  # 5 s + 15 s
    assert not settings(BENCH_DURATION="30").freezes_single_runs
