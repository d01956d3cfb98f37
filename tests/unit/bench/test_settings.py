"""bench.benchmark.settings: the BENCH_* variables, their defaults, what is derived and what is refused."""

import os
from pathlib import Path

import pytest

from bench.benchmark.settings import MIB, Settings, env_map, env_str, memory_bytes


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.load()


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, BENCH_ID="20260101-1")
    assert (s.duration, s.warmup, s.concurrency, s.wrk_threads, s.wrk_timeout) == (15, 5, [1, 16, 64], 1, 10)
    kinds = ["mlserver-tabular", "stack-tabular", "mlserver-boosted", "stack-boosted"]
    assert s.systems == ["tutorial", "mlserver", "direct", "direct-all", "stack", *kinds]
    assert (s.replicas, s.workers, s.workers_per_replica, s.model_cpus, s.model_memory) == (3, None, 1, 1.0, "512M")
    assert (s.rate_limit, s.rate_burst, s.image) == ("100000r/s", "100000", "model-server:bench")
    assert s.batch_off_env == {"BATCH_MAX_ROWS": "0"}
    assert s.batch_concurrency == s.concurrency
    assert (s.idle_wait, s.idle_cores, s.disturbed_cores, s.wait_budget) == (60, 0.3, 0.3, 240)
    assert s.mlserver_parallel_workers is None
    assert (s.id, s.project) == ("20260101-1", "bench-20260101-1")
    assert s.run_dir == Path(__file__).resolve().parents[3] / "bench" / "results" / "tmp"
    assert s.features == [
        "f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload", "f-xgboost"
    ]  # fmt: skip
    assert (s.feature_concurrency, s.reload_cycles) == ([16, 1], 50)
    assert (s.rounds, s.round_duration, s.round_warmup, s.timeout) == (5, 10, 2, 3600)


def test_what_bench_run_sets_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = settings(
        monkeypatch,
        BENCH_ID="x-1",
        BENCH_PROJECT="bench-x-1",
        BENCH_RUN_DIR=str(tmp_path / "tmp"),
        BENCH_MLSERVER_VENV=str(tmp_path / "venv"),
        BENCH_RESULTS_DIR=str(tmp_path),
        BENCH_TIMEOUT="60",
        BENCH_CACHE_DIR=str(tmp_path),
        BENCH_PYTHON="/usr/bin/python3",
        BENCH_MLSERVER_PYTHON="python3.12",
    )
    assert (s.project, s.run_dir, s.mlserver_venv, s.results_dir, s.timeout) == (
        "bench-x-1",
        tmp_path / "tmp",
        tmp_path / "venv",
        tmp_path,
        60,
    )


def test_an_unset_id_is_made_from_the_time_and_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    stamp, pid = s.id.split("-")
    assert stamp.isdigit() and pid == str(os.getpid()) and s.project == f"bench-{s.id}"


def test_the_direct_replica_gets_the_stacks_workers_and_the_cpu_its_replicas_can_use_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch)  # 3 replicas x 1 worker, min(3 x 1.0, 2 cores), 3 x 512M
    assert (s.direct_workers, s.direct_cpus, s.direct_memory) == (3, 2.0, "1536m")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    s = settings(monkeypatch, BENCH_REPLICAS="2", BENCH_MODEL_CPUS="1.5", BENCH_MODEL_MEMORY="1g")
    assert s.workers_per_replica == 2  # the server's default: one per CPU of the limit, rounded up
    assert (s.direct_workers, s.direct_cpus, s.direct_memory) == (4, 3.0, "2048m")
    s = settings(
        monkeypatch, BENCH_WORKERS="4", BENCH_DIRECT_WORKERS="5", BENCH_DIRECT_CPUS="1", BENCH_DIRECT_MEMORY="1g"
    )
    assert (s.workers, s.workers_per_replica, s.direct_workers, s.direct_cpus, s.direct_memory) == (4, 4, 5, 1.0, "1g")


def test_lists_and_env_settings_are_read_as_written_in_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch,
        BENCH_CONCURRENCY="2 8",
        BENCH_SYSTEMS="stack direct",
        BENCH_BATCH_OFF_ENV="",
        BENCH_MODEL_ENV="LOG_LEVEL=warning BATCH_MAX_WAIT_MS='2' X='a b'",
        BENCH_MLSERVER_PARALLEL_WORKERS="2",
    )
    assert s.concurrency == s.batch_concurrency == [2, 8]
    assert s.systems == ["stack", "direct"]
    assert s.model_env == {"LOG_LEVEL": "warning", "BATCH_MAX_WAIT_MS": "2", "X": "a b"}
    assert s.batch_off_env == {}  # empty: the batching comparison is off
    assert s.mlserver_parallel_workers == 2
    assert settings(monkeypatch, BENCH_BATCH_OFF_ENV="BATCH_MAX_ROWS=1").batch_off_env == {"BATCH_MAX_ROWS": "1"}


def test_an_empty_value_is_the_default_except_where_empty_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, BENCH_DURATION="", BENCH_WORKERS="", BENCH_CONCURRENCY="", BENCH_FEATURES="")
    assert (s.duration, s.workers, s.concurrency, s.features) == (15, None, [1, 16, 64], [])


def test_the_guard_rows_can_be_chosen_and_the_control_needs_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch, BENCH_FEATURES="f-none f-shadow").features == ["f-none", "f-shadow"]
    assert settings(monkeypatch, BENCH_FEATURES="f-none f-control").features == ["f-none", "f-control"]
    with pytest.raises(SystemExit, match="f-control is f-none again, compared with it; add f-none"):
        settings(monkeypatch, BENCH_FEATURES="f-control f-drift")


def test_a_round_must_be_short_enough_to_freeze_the_others_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch, BENCH_ROUND_DURATION="18", BENCH_ROUND_WARMUP="2").round_duration == 18
    with pytest.raises(SystemExit, match=r"BENCH_ROUND_WARMUP \+ BENCH_ROUND_DURATION = 21 s: at most 20 s"):
        settings(monkeypatch, BENCH_ROUND_DURATION="19", BENCH_ROUND_WARMUP="2")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BENCH_DURATON": "3"}, "unknown variable BENCH_DURATON (bench/README.md lists them)"),
        ({"BENCH_ROUND": "5"}, "unknown variable BENCH_ROUND"),
        ({"BENCH_HOST": "127.0.0.1"}, "unknown variable BENCH_HOST"),  # addresses are no setting
        ({"bench_duraton": "3"}, "unknown variable BENCH_DURATON"),  # pydantic-settings reads names in any case
        ({"BENCH_DURATION": "3s"}, "BENCH_DURATION='3s': Input should be a valid integer"),
        ({"BENCH_DURATION": "0"}, "BENCH_DURATION='0': Input should be greater than or equal to 1"),
        ({"BENCH_ROUNDS": "-1"}, "BENCH_ROUNDS='-1': Input should be greater than or equal to 0"),
        ({"BENCH_ROUND_WARMUP": "2.5"}, "BENCH_ROUND_WARMUP='2.5': Input should be a valid integer"),
        ({"BENCH_MODEL_CPUS": "lots"}, "BENCH_MODEL_CPUS='lots': Input should be a valid number"),
        ({"BENCH_CONCURRENCY": "1,16"}, "BENCH_CONCURRENCY='1,16': Input should be a valid integer"),
        ({"BENCH_CONCURRENCY": "0 16"}, "BENCH_CONCURRENCY='0 16': Input should be greater than or equal to 1"),
        ({"BENCH_FEATURE_CONCURRENCY": "   "}, "BENCH_FEATURE_CONCURRENCY='   ': Value should have at least 1 item"),
        ({"BENCH_SYSTEMS": "stack kserve"}, "BENCH_SYSTEMS='stack kserve': Input should be 'tutorial', 'mlserver'"),
        ({"BENCH_FEATURES": "f-none f-gpu"}, "BENCH_FEATURES='f-none f-gpu': Input should be 'f-none', 'f-control'"),
        ({"BENCH_MODEL_ENV": "LOG_LEVEL"}, "BENCH_MODEL_ENV='LOG_LEVEL': expected KEY=VALUE, got 'LOG_LEVEL'"),
        ({"BENCH_MODEL_MEMORY": "half"}, "BENCH_MODEL_MEMORY='half': cannot read memory size 'half'"),
    ],
)
def test_what_cannot_be_used_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        settings(monkeypatch, **env)
    assert str(refused.value).startswith(f"bench: {message}")


def test_other_variables_are_not_the_benchmarks_business(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch, HOME="/root", BENCHMARK="x", MY_BENCH_X="y").duration == 15


def test_single_runs_freeze_the_others_only_when_short_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch).freezes_single_runs  # 5 s + 15 s
    assert not settings(monkeypatch, BENCH_DURATION="30").freezes_single_runs


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * MIB), ("1.5GiB", 1536 * MIB), ("300k", 300 * 1024), ("1024", 1024), ("12.5MiB", int(12.5 * MIB))],
)
def test_memory_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert memory_bytes(text) == size


def test_env_str_quotes_what_env_map_reads_back() -> None:
    env = {"A": "1", "B": "two words", "C": "", "D": "it's"}
    assert env_map(env_str(env)) == env
    with pytest.raises(ValueError, match="expected KEY=VALUE, got '1A=x'"):
        env_map("1A=x")
