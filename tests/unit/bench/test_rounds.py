"""bench.benchmark.rounds: the groups, the order of the rounds, the medians and the paired ratios."""

from __future__ import annotations

from collections import Counter
from itertools import permutations
from typing import Any

import pytest

from bench.benchmark.rounds import Group, paired, plan, round_concurrency, round_order, round_values, summarize
from bench.benchmark.settings import Settings

GUARD_ROWS = ["f-none", "f-control", "f-drift", "f-repository", "f-canary", "f-shadow", "f-reload"]


def settings(**env: str) -> Settings:
    return Settings.from_env(env, 2, "/usr/bin/python3")


def test_two_systems_alternate_abba() -> None:
    assert round_order(["a", "b"], 5) == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"], ["a", "b"]]


@pytest.mark.parametrize("n", [2, 3, 6])
def test_over_2n_rounds_every_system_goes_first_twice(n: int) -> None:
    systems = [f"s{i}" for i in range(n)]
    orders = round_order(systems, 2 * n)
    assert Counter(order[0] for order in orders) == dict.fromkeys(systems, 2)
    assert all(sorted(order) == systems for order in orders)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_in_each_two_rounds_each_system_comes_before_each_other_once(n: int) -> None:
    systems = [f"s{i}" for i in range(n)]
    orders = round_order(systems, 2 * n)
    for first, second in zip(orders[::2], orders[1::2], strict=True):
        for a, b in permutations(systems, 2):
            before = [order.index(a) < order.index(b) for order in (first, second)]
            assert before.count(True) == 1, (a, b, first, second)


def test_the_guard_rounds_rotate_and_reverse() -> None:
    assert round_order(GUARD_ROWS, 4) == [
        GUARD_ROWS,
        GUARD_ROWS[::-1],
        [*GUARD_ROWS[1:], "f-none"],
        ["f-none", *GUARD_ROWS[1:][::-1]],
    ]
    assert round_order(GUARD_ROWS, 0) == []


def test_rounds_run_at_16_connections_or_the_largest() -> None:
    assert round_concurrency([1, 16, 64]) == 16
    assert round_concurrency([1, 8, 32]) == 32


def test_both_groups_by_default() -> None:
    planned = plan(settings())
    assert planned == [
        (Group("headline", "full stack vs MLServer", "mlserver", ("stack",), 16), ""),
        (Group("guard", "performance guard: each row vs the baseline", "f-none", tuple(GUARD_ROWS[1:]), 16), ""),
    ]
    assert planned[1][0].systems == tuple(GUARD_ROWS)


def test_a_group_without_a_member_is_skipped_with_a_note() -> None:
    planned = plan(settings(BENCH_SYSTEMS="stack direct", BENCH_FEATURES="f-drift f-canary"))
    assert [(group.key, note) for group, note in planned] == [
        ("headline", "mlserver not in BENCH_SYSTEMS"),
        ("guard", "f-none not in BENCH_FEATURES"),
    ]
    _, guard_alone = plan(settings(BENCH_FEATURES="f-none"))
    assert guard_alone[1] == "f-control, f-drift, f-repository, f-canary, f-shadow, f-reload not in BENCH_FEATURES"


def test_the_guard_runs_with_the_rows_chosen_and_its_concurrency() -> None:
    planned = plan(settings(BENCH_FEATURES="f-none f-shadow", BENCH_FEATURE_CONCURRENCY="1 8"))
    assert [(g.key, g.compared, g.concurrency, note) for g, note in planned] == [
        ("headline", ("stack",), 16, ""),
        ("guard", ("f-shadow",), 8, ""),
    ]


def test_no_rounds_no_groups() -> None:
    assert [(group.key, note) for group, note in plan(settings(BENCH_ROUNDS="0"))] == [
        ("headline", "BENCH_ROUNDS=0"),
        ("guard", "BENCH_ROUNDS=0"),
    ]


def test_a_failed_system_leaves_its_group_or_empties_it() -> None:
    guard = Group("guard", "g", "f-none", ("f-drift", "f-canary"), 16)
    assert guard.restricted({"f-none", "f-canary"}) == Group("guard", "g", "f-none", ("f-canary",), 16)
    assert guard.restricted({"f-drift", "f-canary"}) is None
    assert guard.restricted({"f-none"}) is None


def test_round_values_keep_what_the_report_needs() -> None:
    run = {
        "rps": 1500.5,
        "latency_ms": {"p50": 9.1, "p99": 30.25},
        "errors": {"total": 2},
        "cpu": {"other_cores": 0.04, "sut_cores": 1.9},
    }
    assert round_values(run) == {"rps": 1500.5, "p50_ms": 9.1, "p99_ms": 30.25, "errors": 2, "other_cores": 0.04}


def rounds(*values: tuple[float, float]) -> list[dict[str, Any]]:
    return [{"round": i, "rps": rps, "p99_ms": p99} for i, (rps, p99) in enumerate(values, 1)]


def test_medians_and_paired_ratios() -> None:
    group = Group("headline", "t", "mlserver", ("stack",), 16)
    measured = {
        # the machine slows down in round 2 and speeds up in round 3: both sides alike
        "stack": rounds((1500, 50.0), (1000, 60.0), (2000, 40.0), (1600, 55.0)),
        "mlserver": rounds((150, 130.0), (110, 150.0), (190, 100.0), (140, 140.0)),
    }

    summary = summarize(group, measured)

    assert summary["systems"]["stack"]["median_rps"] == 1550.0
    assert summary["systems"]["stack"]["median_p99_ms"] == 52.5
    assert summary["systems"]["mlserver"]["median_rps"] == 145.0
    assert summary["systems"]["stack"]["rounds"] == measured["stack"]
    comparison = summary["comparisons"]["stack"]
    assert comparison["against"] == "mlserver"
    assert comparison["rps_ratio_of_medians"] == round(1550 / 145, 4) == 10.6897
    assert comparison["rps_paired"] == {
        "median": round((1500 / 150 + 2000 / 190) / 2, 4),  # rounds 1 and 3: 10.0 and 10.526
        "min": round(1000 / 110, 4),
        "max": round(1600 / 140, 4),
        "per_round": [10.0, 9.0909, 10.5263, 11.4286],
    }
    assert comparison["rps_paired"]["median"] == 10.2632
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
