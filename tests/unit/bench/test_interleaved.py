"""bench.benchmark.interleaved: paired rounds run in order, each turn with the others frozen, a failure recorded.

Docker, wrk and the answer check are replaced by fakes that record what the rounds asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from bench.benchmark import interleaved
from bench.benchmark.rounds import Group, round_order
from bench.benchmark.settings import Settings
from bench.benchmark.systems import System
from tests.support.commands import Failed

SYSTEMS = ("ref", "a", "b")
RPS = {"ref": 100.0, "a": 90.0, "b": 120.0}


class Recorder:
    """Stands in for the freezer, the answer check and wrk; ``events`` is what happened, in order."""

    def __init__(self, fail_at: tuple[int, str] | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.frozen: frozenset[str] = frozenset()
        self.fail_at = fail_at  # (round, system): its measured run raises Failed

    @contextmanager
    def freeze(self, systems: Sequence[System]) -> Iterator[None]:
        self.frozen = frozenset(s.key for s in systems)
        try:
            yield
        finally:
            self.events.append(("thawed", *sorted(self.frozen)))
            self.frozen = frozenset()

    def answers(self, system: System) -> None:
        self.events.append(("answers", system.key, self.frozen))

    def wrk(self, _s: Settings, system: System, c: int, seconds: int, tag: str, measured: bool = False,
            bystanders: Sequence[System] = ()) -> dict[str, Any]:  # fmt: skip
        self.events.append(("wrk", system.key, tag, c, seconds, measured, self.frozen))
        assert {b.key for b in bystanders} == (self.frozen if measured else set())
        number = int(tag.removeprefix("round").removesuffix("-warmup"))
        if measured and self.fail_at == (number, system.key):
            raise Failed(f"{system.key} stopped answering")
        rps = RPS[system.key] + number  # distinct per round, so that the medians are checked
        return {
            "rps": rps,
            "latency_ms": {"p50": 1.0, "p99": 1000 / rps},
            "errors": {"total": 0},
            "cpu": {"other_cores": 0.01, "bystander_cores": 0.0},
        }


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder()
    monkeypatch.setattr(interleaved, "frozen", fake.freeze)
    monkeypatch.setattr(interleaved, "answers", fake.answers)
    monkeypatch.setattr(interleaved, "run_wrk", fake.wrk)
    monkeypatch.setattr(interleaved, "wait_for_idle", lambda _s: {"idle": True})
    return fake


def run(rounds: int, warmup: int = 2) -> dict[str, Any]:
    env = {"BENCH_ROUNDS": str(rounds), "BENCH_ROUND_WARMUP": str(warmup), "BENCH_ROUND_DURATION": "10"}
    ctx = SimpleNamespace(settings=Settings.from_env(env, 2, "/usr/bin/python3"))
    group = Group("g", "a group", "ref", ("a", "b"), 16)
    return interleaved.run_rounds(ctx, group, {key: System(key, key) for key in SYSTEMS})  # type: ignore[arg-type]


def test_each_turn_checks_warms_up_then_measures_with_the_others_frozen(recorder: Recorder) -> None:
    section = run(rounds=4)

    expected: list[tuple[Any, ...]] = []
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
    assert section["machine_before"] == {"idle": True}


def test_the_rounds_give_each_systems_median_and_paired_ratios(recorder: Recorder) -> None:
    section = run(rounds=3)

    assert [r["rps"] for r in section["systems"]["a"]["rounds"]] == [91.0, 92.0, 93.0]
    assert section["systems"]["a"]["median_rps"] == 92.0
    assert section["comparisons"]["b"]["rps_ratio_of_medians"] == round(122 / 102, 4)
    assert section["comparisons"]["a"]["rps_paired"]["per_round"] == [round((90 + n) / (100 + n), 4) for n in (1, 2, 3)]


def test_no_warm_up_run_when_it_is_set_to_zero(recorder: Recorder) -> None:
    run(rounds=2, warmup=0)
    assert not [e for e in recorder.events if e[0] == "wrk" and e[2].endswith("-warmup")]
    assert len([e for e in recorder.events if e[0] == "wrk"]) == 2 * len(SYSTEMS)


def test_a_failed_measurement_ends_the_rounds_thawed_and_keeps_what_was_measured(recorder: Recorder) -> None:
    recorder.fail_at = (2, "a")  # round 2 visits b, a, ref: b is measured, a fails, ref is never reached
    section = run(rounds=4)

    assert section["status"] == "failed"
    assert section["error"] == "Failed: a stopped answering"
    assert recorder.events[-1] == ("thawed", "b", "ref"), "the failed turn's freeze is undone"
    assert not [e for e in recorder.events if e[0] == "wrk" and e[2] in ("round3", "round4")]
    assert [r["round"] for r in section["systems"]["b"]["rounds"]] == [1, 2]
    assert [r["round"] for r in section["systems"]["a"]["rounds"]] == [1]


def test_a_group_runs_without_the_systems_that_failed_and_not_at_all_without_its_reference(
    recorder: Recorder,
) -> None:
    ctx = SimpleNamespace(settings=Settings.from_env({"BENCH_ROUNDS": "2"}, 2, "/usr/bin/python3"))
    group = Group("g", "a group", "ref", ("a", "b"), 16)
    up = {key: System(key, key) for key in SYSTEMS}
    results = {"ref": {"status": "ok"}, "a": {"status": "failed"}, "b": {"status": "ok"}}

    section = interleaved.run_group(ctx, group, up, results)  # type: ignore[arg-type]
    assert section["status"] == "ok" and set(section["systems"]) == {"ref", "b"}

    results["ref"] = {"status": "failed"}
    skipped = interleaved.run_group(ctx, group, up, results)  # type: ignore[arg-type]
    assert skipped == {"title": "a group", "status": "skipped", "note": "ref, a failed"}
