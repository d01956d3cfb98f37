"""bench.benchmark.measure: wrk's command line and report, the paired rounds (groups, order, medians, paired ratios)
and their orchestration, the repeated disturbed runs. Docker, wrk and the freezer are replaced by fakes."""

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import permutations
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.benchmark import measure
from bench.benchmark.measure import Group, paired, plan, round_order, summarize, wrk_command, wrk_report, wrk_summary
from bench.benchmark.settings import Settings
from bench.benchmark.systems import System
from harness.addresses import Target
from harness.commands import Failed

REPORT_LUA = Path(__file__).resolve().parents[3] / "bench" / "wrk" / "report.lua"
GUARD_ROWS = ["f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload", "f-xgboost"]

# What wrk prints with --latency and report.lua (its own summary first, then done()'s line).
OUTPUT = """Running 3s test @ http://127.0.0.1:40123/predict
  1 threads and 16 connections
  6000 requests in 3.00s, 1.01MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   2000.00
BENCH_JSON {"duration_us": 3000000, "requests": 6000, "bytes": 1059000, "errors": {"connect": 0, "read": 1, \
"write": 0, "status": 12, "timeout": 2}, "latency_us": {"min": 1200.0, "mean": 8010.0, "stdev": 2100.0, \
"max": 40120.0, "p50": 7500.0, "p90": 10000.0, "p95": 12000.0, "p99": 15200.0, "p99_9": 30000.0}}
"""


# --- wrk ---------------------------------------------------------------------------------------------------------


def test_wrk_is_pointed_at_the_systems_own_address_with_at_most_one_thread_per_connection() -> None:
    target = Target.loopback(40123)
    assert wrk_command(target, "/predict", 1, 16, 3, 10) == [
        "wrk",
        "-t1",
        "-c16",
        "-d3s",
        "--timeout=10s",
        "--latency",
        "-s",
        "request.lua",
        "http://127.0.0.1:40123/predict",
    ]
    assert wrk_command(target, "/", 4, 1, 3, 10)[1] == "-t1"
    assert wrk_command(target, "/", 2, 16, 3, 10)[1] == "-t2"
    assert wrk_command(target, "/", 0, 16, 3, 10)[1] == "-t1"


def test_the_report_counts_2xx_answers_only_and_every_error() -> None:
    result = wrk_summary(wrk_report(OUTPUT))
    assert (result["requests"], result["ok"], result["duration_s"]) == (6000, 6000 - 12, 3.0)
    assert result["rps"] == round((6000 - 12) / 3, 1) and result["rps_all_responses"] == 2000.0
    assert result["latency_ms"]["p50"] == 7.5 and result["latency_ms"]["p99_9"] == 30.0
    assert result["errors"] == {"non_2xx": 12, "connect": 0, "read": 1, "write": 0, "timeout": 2, "total": 15}


def test_output_without_the_line_is_an_error_showing_the_output() -> None:
    with pytest.raises(ValueError, match="no BENCH_JSON line in wrk's output: unable to connect"):
        wrk_report("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_every_field_report_lua_writes_is_read() -> None:
    """report.lua's format string, filled with numbers, is a document the summary reads whole."""
    lua = REPORT_LUA.read_text()
    template = "".join(re.findall(r"'([^']*)'", lua.split("string.format(", 1)[1].split("summary.duration", 1)[0]))
    document = re.sub(r"%\.\d+f", "1000", template).removeprefix("BENCH_JSON ").replace("\\n", "")
    result = wrk_summary(wrk_report("BENCH_JSON " + document))
    keys = ("min", "mean", "stdev", "max", "p50", "p90", "p95", "p99", "p99_9")
    assert result["latency_ms"] == dict.fromkeys(keys, 1.0)
    assert result["errors"]["total"] == 5000


# --- the rounds: groups, order, arithmetic --------------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(**values)


def test_two_systems_alternate_abba() -> None:
    assert round_order(["a", "b"], 5) == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"], ["a", "b"]]
    assert round_order(["a", "b"], 0) == []


@pytest.mark.parametrize("n", [2, 3, 7])
def test_over_2n_rounds_every_system_goes_first_twice(n: int) -> None:
    systems = [f"s{i}" for i in range(n)]
    orders = round_order(systems, 2 * n)
    assert Counter(order[0] for order in orders) == dict.fromkeys(systems, 2)
    assert all(sorted(order) == systems for order in orders)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_in_each_two_rounds_each_system_comes_before_each_other_once(n: int) -> None:
    systems = [f"s{i}" for i in range(n)]
    orders = round_order(systems, 2 * n)
    for first, second in zip(orders[::2], orders[1::2], strict=True):
        for a, b in permutations(systems, 2):
            assert [order.index(a) < order.index(b) for order in (first, second)].count(True) == 1


def test_the_guard_rounds_rotate_and_reverse() -> None:
    assert round_order(GUARD_ROWS, 4) == [
        GUARD_ROWS,
        GUARD_ROWS[::-1],
        [*GUARD_ROWS[1:], "f-none"],
        ["f-none", *GUARD_ROWS[1:][::-1]],
    ]


REPLICAS_TITLE = "full stack vs one replica, same models, CPU per request"


def test_every_group_by_default_at_16_connections() -> None:
    planned = plan(settings())[:5]  # then batching on vs off: below
    assert planned == [
        (Group("replicas", REPLICAS_TITLE, "direct-all", ("stack",), 16), ""),
        (Group("headline", "full stack vs MLServer", "mlserver", ("stack",), 16), ""),
        (Group("tabular", "penguins Pipeline: stack vs MLServer", "mlserver-tabular", ("stack-tabular",), 16), ""),
        (Group("boosted", "XGBoost model: stack vs MLServer", "mlserver-boosted", ("stack-boosted",), 16), ""),
        (Group("guard", "performance guard: each row vs the baseline", "f-none", tuple(GUARD_ROWS[1:]), 16), ""),
    ]
    assert planned[4][0].systems == tuple(GUARD_ROWS)


def test_rounds_run_at_the_largest_concurrency_without_16_and_with_the_rows_chosen() -> None:
    planned = plan(settings(concurrency=[1, 8, 32], features=["f-none", "f-shadow"], feature_concurrency=[1, 8]))[:5]
    assert [(g.key, g.compared, g.concurrency, note) for g, note in planned] == [
        ("replicas", ("stack",), 32, ""),
        ("headline", ("stack",), 32, ""),
        ("tabular", ("stack-tabular",), 32, ""),
        ("boosted", ("stack-boosted",), 32, ""),
        ("guard", ("f-shadow",), 8, ""),
    ]


def test_a_group_without_its_reference_or_anything_to_compare_is_skipped_with_a_note() -> None:
    planned = plan(settings(systems=["stack", "stack-boosted"], features=["f-drift", "f-canary"]))[:5]
    assert [(group.key, note) for group, note in planned] == [
        ("replicas", "direct-all not in BENCH_SYSTEMS"),
        ("headline", "mlserver not in BENCH_SYSTEMS"),
        ("tabular", "mlserver-tabular not in BENCH_SYSTEMS"),
        ("boosted", "mlserver-boosted not in BENCH_SYSTEMS"),
        ("guard", "f-none not in BENCH_FEATURES"),
    ]
    assert plan(settings(features=["f-none"]))[4][1] == (
        "f-control, f-drift, f-repository, f-canary, f-shadow, f-reload, f-xgboost not in BENCH_FEATURES"
    )
    assert [note for _, note in plan(settings(rounds=0), batching_on=True)] == ["BENCH_ROUNDS=0"] * 8


def test_a_failed_system_leaves_its_group_or_empties_it() -> None:
    guard = Group("guard", "g", "f-none", ("f-drift", "f-canary"), 16)
    assert guard.restricted({"f-none", "f-canary"}) == Group("guard", "g", "f-none", ("f-canary",), 16)
    assert guard.restricted({"f-drift", "f-canary"}) is None
    assert guard.restricted({"f-none"}) is None


def rounds(*values: tuple[float, float]) -> list[dict[str, Any]]:
    return [{"round": i, "rps": rps, "p99_ms": p99} for i, (rps, p99) in enumerate(values, 1)]


def test_medians_and_paired_ratios() -> None:
    group = Group("headline", "t", "mlserver", ("stack",), 16)
    measured = {  # the machine slows down in round 2 and speeds up in round 3: both sides alike
        "stack": rounds((1500, 50.0), (1000, 60.0), (2000, 40.0), (1600, 55.0)),
        "mlserver": rounds((150, 130.0), (110, 150.0), (190, 100.0), (140, 140.0)),
    }
    summary = summarize(group, measured)
    assert summary["systems"]["stack"] == {"median_rps": 1550.0, "median_p99_ms": 52.5, "rounds": measured["stack"]}
    assert summary["systems"]["mlserver"]["median_rps"] == 145.0
    comparison = summary["comparisons"]["stack"]
    assert comparison["against"] == "mlserver"
    assert comparison["rps_ratio_of_medians"] == round(1550 / 145, 4) == 10.6897
    assert comparison["rps_paired"] == {
        "median": round((1500 / 150 + 2000 / 190) / 2, 4),  # rounds 1 and 3: 10.0 and 10.526
        "min": round(1000 / 110, 4),
        "max": round(1600 / 140, 4),
        "per_round": [10.0, 9.0909, 10.5263, 11.4286],
    }
    assert comparison["p99_ratio_of_medians"] == round(52.5 / 135, 4)
    assert comparison["p99_paired"]["per_round"] == [0.3846, 0.4, 0.4, 0.3929]


def test_paired_ratios_skip_rounds_that_could_not_be_compared() -> None:
    assert paired([1.1, None, 0.9]) == {"median": 1.0, "min": 0.9, "max": 1.1, "per_round": [1.1, None, 0.9]}
    assert paired([]) == {"median": None, "min": None, "max": None, "per_round": []}


def test_a_reference_without_answers_gives_no_ratio_and_unfinished_rounds_are_left_out() -> None:
    group = Group("guard", "g", "f-none", ("f-drift",), 16)
    measured = {"f-none": rounds((1000, 20.0), (0, 30.0)), "f-drift": rounds((950, 21.0), (900, 22.0), (980, 20.0))}
    comparison = summarize(group, measured)["comparisons"]["f-drift"]
    assert comparison["rps_paired"]["per_round"] == [0.95, None]
    assert comparison["rps_paired"]["median"] == 0.95
    assert comparison["rps_ratio_of_medians"] == round(950 / 500, 4)


# --- running the rounds, and a disturbed run: fakes record what happened -----------------------------------------

SYSTEMS = ("ref", "a", "b")
RPS = {"ref": 100.0, "a": 90.0, "b": 120.0}


class Recorder:
    """Stands in for the freezer, the answer check, the idle wait and wrk; ``events`` is what happened, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.frozen_now: frozenset[str] = frozenset()
        self.fail_at: tuple[str, str] | None = None  # (tag, system): that run raises Failed
        self.other_cores: list[float] = []  # per measured run, in order; 0.01 when empty
        for name in ("frozen", "answers", "run_wrk", "wait_for_idle"):
            monkeypatch.setattr(measure, name, getattr(self, name))

    @contextmanager
    def frozen(self, systems: Sequence[System]) -> Iterator[None]:
        self.frozen_now = frozenset(s.key for s in systems)
        try:
            yield
        finally:
            self.events.append(("thawed", *sorted(self.frozen_now)))
            self.frozen_now = frozenset()

    def answers(self, system: System) -> None:
        self.events.append(("answers", system.key, self.frozen_now))

    def wait_for_idle(self, s: Settings) -> dict[str, Any]:
        self.events.append(("idle",))
        return {"idle": True}

    def run_wrk(
        self,
        s: Settings,
        system: System,
        c: int,
        seconds: int,
        tag: str,
        measured: bool = False,
        bystanders: Sequence[System] = (),
    ) -> dict[str, Any]:
        self.events.append(("wrk", system.key, tag, c, seconds, measured, self.frozen_now))
        assert {b.key for b in bystanders} == (self.frozen_now if measured else set())
        if self.fail_at == (tag, system.key):
            raise Failed(f"{system.key} stopped answering")
        number = int(tag.removeprefix("round").removesuffix("-warmup")) if tag.startswith("round") else 0
        rps = RPS.get(system.key, 100.0) + number  # distinct per round, so that the medians are checked
        other = self.other_cores.pop(0) if measured and self.other_cores else 0.01
        return {
            "rps": rps,
            "latency_ms": {"p50": 1.0, "p99": 1000 / rps},
            "errors": {"total": 0},
            "cpu": {
                "other_cores": other,
                "bystander_cores": 0.0,
                "components_cores": {"replica": 1.0},
                "sut_cores": 1.0,
                "engine_cores": 0.0,
                "wrk_cores": 0.05,
            },
        }


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder(monkeypatch)


def run_rounds(number: int, warmup: int = 2) -> dict[str, Any]:
    ctx = SimpleNamespace(settings=settings(rounds=number, round_warmup=warmup, round_duration=10))
    group = Group("g", "a group", "ref", ("a", "b"), 16)
    return measure.run_rounds(ctx, group, {key: System(key, key) for key in SYSTEMS})  # type: ignore[arg-type]


def test_each_turn_checks_warms_up_then_measures_with_the_others_frozen(recorder: Recorder) -> None:
    section = run_rounds(4)
    expected: list[tuple[Any, ...]] = [("idle",)]
    for number, order in enumerate(round_order(SYSTEMS, 4), 1):
        for key in order:
            others = frozenset(SYSTEMS) - {key}
            expected += [
                ("answers", key, others),
                ("wrk", key, f"round{number}-warmup", 16, 2, False, others),
                ("wrk", key, f"round{number}", 16, 10, True, others),
                ("thawed", *sorted(others)),
            ]
    assert recorder.events == expected
    assert section["status"] == "ok" and section["order"] == round_order(SYSTEMS, 4)
    assert (section["rounds"], section["round_duration_s"], section["warmup_s"], section["concurrency"]) == (
        4,
        10,
        2,
        16,
    )


def test_the_rounds_give_each_systems_median_and_paired_ratios(recorder: Recorder) -> None:
    section = run_rounds(3)
    assert [r["rps"] for r in section["systems"]["a"]["rounds"]] == [91.0, 92.0, 93.0]
    assert section["systems"]["a"]["rounds"][0] == {
        "round": 1,
        "rps": 91.0,
        "p50_ms": 1.0,
        "p99_ms": 1000 / 91,
        "errors": 0,
        "other_cores": 0.01,
        "bystander_cores": 0.0,
        "cpu": {"components_cores": {"replica": 1.0}},
    }
    assert section["systems"]["a"]["median_rps"] == 92.0
    assert section["comparisons"]["b"]["rps_ratio_of_medians"] == round(122 / 102, 4)
    assert section["comparisons"]["a"]["rps_paired"]["per_round"] == [round((90 + n) / (100 + n), 4) for n in (1, 2, 3)]


def test_no_warm_up_run_when_it_is_set_to_zero(recorder: Recorder) -> None:
    run_rounds(2, warmup=0)
    assert [e[2] for e in recorder.events if e[0] == "wrk"] == ["round1"] * 3 + ["round2"] * 3


def test_a_failed_measurement_ends_the_rounds_thawed_and_keeps_what_was_measured(recorder: Recorder) -> None:
    recorder.fail_at = ("round2", "a")  # round 2 visits b, a, ref: b is measured, a fails, ref is never reached
    section = run_rounds(4)
    assert (section["status"], section["error"]) == ("failed", "Failed: a stopped answering")
    assert recorder.events[-1] == ("thawed", "b", "ref"), "the failed turn's freeze is undone"
    assert not [e for e in recorder.events if e[0] == "wrk" and e[2] in ("round3", "round4")]
    assert [r["round"] for r in section["systems"]["b"]["rounds"]] == [1, 2]
    assert [r["round"] for r in section["systems"]["a"]["rounds"]] == [1]


def test_a_group_runs_without_the_systems_that_failed_and_not_at_all_without_its_reference(
    recorder: Recorder,
) -> None:
    ctx = SimpleNamespace(settings=settings(rounds=2))
    group = Group("g", "a group", "ref", ("a", "b"), 16)
    up = {key: System(key, key) for key in SYSTEMS}
    results = {"ref": {"status": "ok"}, "a": {"status": "failed"}, "b": {"status": "ok"}}
    section = measure.run_group(ctx, group, up, results)  # type: ignore[arg-type]
    assert section["status"] == "ok" and set(section["systems"]) == {"ref", "b"}
    results["ref"] = {"status": "failed"}
    assert measure.run_group(ctx, group, up, results) == {  # type: ignore[arg-type]
        "title": "a group",
        "status": "skipped",
        "note": "ref, a failed",
    }


def test_a_run_is_measured_once_with_the_bystanders_frozen(recorder: Recorder) -> None:
    s = settings(warmup=1, duration=4)
    recorder.other_cores = [0.9]  # disturbed: kept and flagged by the report, not measured again
    kept = measure.measure_concurrency(s, System("sut", "sut"), 16, [System("other", "other")])
    assert kept["cpu"]["other_cores"] == 0.9
    assert [e[2] for e in recorder.events if e[0] == "wrk"] == ["warmup", "run"]
    assert all(e[6] == {"other"} for e in recorder.events if e[0] == "wrk"), "the bystander stays frozen"


def test_batching_on_vs_off_is_a_group_per_batching_concurrency_when_the_server_can_turn_it_off() -> None:
    planned = plan(settings(batch_concurrency=[1, 16, 64]), batching_on=True)
    assert [(g.key, g.reference, g.compared, g.concurrency, note) for g, note in planned[5:]] == [
        ("batching-c1", "direct-nobatch", ("direct",), 1, ""),
        ("batching-c16", "direct-nobatch", ("direct",), 16, ""),
        ("batching-c64", "direct-nobatch", ("direct",), 64, ""),
    ]
    off = plan(settings(batch_concurrency=[1]))  # no toggle in the server: nothing to compare with
    assert off[5][1] == "direct-nobatch not in BENCH_SYSTEMS (with batching that turns off)"
    assert plan(settings(systems=["stack"], batch_concurrency=[1]), batching_on=True)[5][1] == (
        "direct not in BENCH_SYSTEMS (with batching that turns off)"
    )
