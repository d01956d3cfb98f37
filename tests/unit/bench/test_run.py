"""The run's order: each system measured in turn, each group's rounds after its last system, and a system stopped
as soon as no group still to run needs it (measure, rounds and stop are fakes that record what they were asked)."""

from types import SimpleNamespace
from typing import Any

import pytest

from bench.benchmark import run
from bench.benchmark.measure import plan
from bench.benchmark.settings import Settings


def events_of_a_run(monkeypatch: pytest.MonkeyPatch, failing: str = "") -> list[tuple[Any, ...]]:
    s = Settings(systems=["tutorial", "mlserver", "direct", "direct-all", "stack"], features=[], batch_concurrency=[16])
    systems, groups = run.systems_to_run(s, True), [group for group, note in plan(s, True) if not note]
    events: list[tuple[Any, ...]] = []

    def measure(ctx: Any, system: Any, levels: list[int], waiting: list[Any]) -> dict[str, Any]:
        events.append(("measure", system.key, sorted(other.key for other in waiting)))
        return {"status": "failed" if system.key == failing else "ok"}

    def rounds(ctx: Any, group: Any, up: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
        events.append(("rounds", group.key, sorted(up)))
        return {"status": "ok"}

    monkeypatch.setattr(run, "measure", measure)
    monkeypatch.setattr(run, "run_group", rounds)
    monkeypatch.setattr(run, "stop", lambda ctx, system, result: events.append(("stop", system.key)))
    run.measure_all(SimpleNamespace(settings=s), systems, groups, {"systems": {}, "paired_rounds": {}})  # type: ignore[arg-type]
    return events


def test_one_replica_direct_waits_for_the_stack_then_stops_before_the_rounds_it_is_not_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert events_of_a_run(monkeypatch) == [
        ("measure", "tutorial", []),
        ("stop", "tutorial"),  # in no group
        ("measure", "mlserver", []),
        ("measure", "direct", ["mlserver"]),
        ("measure", "direct-nobatch", ["direct", "mlserver"]),
        ("rounds", "batching-c16", ["direct", "direct-nobatch", "mlserver"]),
        ("stop", "direct"),
        ("stop", "direct-nobatch"),
        ("measure", "direct-all", ["mlserver"]),
        ("measure", "stack", ["direct-all", "mlserver"]),
        ("rounds", "replicas", ["direct-all", "mlserver", "stack"]),
        ("stop", "direct-all"),  # before the rounds it is not in
        ("rounds", "headline", ["mlserver", "stack"]),
        ("stop", "mlserver"),
        ("stop", "stack"),
    ]


def test_a_system_that_failed_is_stopped_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    events = events_of_a_run(monkeypatch, failing="direct")
    assert events[3:5] == [("measure", "direct", ["mlserver"]), ("stop", "direct")]
