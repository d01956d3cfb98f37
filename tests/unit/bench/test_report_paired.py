"""bench/report.py on paired rounds: the section, the verdicts it decides, the reload memory's verdict."""

from __future__ import annotations

from typing import Any

from bench.benchmark.features import reload_growth
from bench.benchmark.report_common import feature_ok, headline_ok
from bench.benchmark.report_guard import reload_memory
from bench.benchmark.report_markdown import render_markdown
from bench.benchmark.report_paired import paired_section
from bench.benchmark.rounds import Group, round_order, summarize


def measured_run(c: int, rps: float, p50: float) -> dict[str, Any]:
    return {
        "concurrency": c,
        "rps": rps,
        "requests": int(rps),
        "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "max": p50 * 5},
        "errors": {"total": 0, "non_2xx": 0},
        "cpu": {"sut_cores": 1.9, "engine_cores": 0.0, "wrk_cores": 0.05, "other_cores": 0.0,
                "components_cores": {"replica": 1.9}},
    }  # fmt: skip


def system(*runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": "ok", "runs": list(runs), **extra}


def rounds(*values: tuple[float, float]) -> list[dict[str, Any]]:
    return [
        {"round": i, "rps": rps, "p50_ms": p99 / 3, "p99_ms": p99, "errors": 0, "other_cores": 0.01,
         "bystander_cores": 0.002}
        for i, (rps, p99) in enumerate(values, 1)
    ]  # fmt: skip


def disturbed(measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last round disturbed: 0.5 cores busy beyond the system, wrk and the engine (the limit is 0.3)."""
    return [*measured[:-1], {**measured[-1], "other_cores": 0.5}]


def section(group: Group, measured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What bench/benchmark/interleaved.py writes for a group."""
    return {
        "title": group.title,
        "status": "ok",
        "reference": group.reference,
        "concurrency": group.concurrency,
        "rounds": 2,
        "round_duration_s": 10,
        "warmup_s": 2,
        "order": round_order(group.systems, 2),
        **summarize(group, measured),
    }


HEADLINE = Group("headline", "full stack vs MLServer", "mlserver", ("stack",), 16)
GUARD = Group("guard", "performance guard: each row vs the baseline", "f-none", ("f-drift", "f-canary", "f-shadow"), 16)
RELOAD = {
    "cycles": 50,
    "seconds": 33.6,
    "memory_before": {"replica": {"resident_mib": 153.1}},
    "warm_cycles": 10,
    "memory_warm": {"replica": {"resident_mib": 290.0}},
    "memory_after": {"replica": {"resident_mib": 299.0}},
    "growth_after_warm": reload_growth(290.0, 299.0, 10, 50),
}


def latest() -> dict[str, Any]:
    """A small latest.json: (c) and (d) at c=16, four guard rows at c=16 and 1, both groups' rounds."""
    return {
        "settings": {
            "concurrency": [16],
            "paired_rounds": {
                "rounds": 2,
                "round_duration_s": 10,
                "round_warmup_s": 2,
                "groups": {"headline": {"reference": "mlserver", "compared": ["stack"], "c": 16}},
            },
        },
        "systems": {
            "stack": system(measured_run(16, 1420, 10.0)),
            "mlserver": system(measured_run(16, 146, 110.0)),
            "f-none": system(measured_run(16, 1970, 9.0), measured_run(1, 700, 1.0)),
            "f-drift": system(measured_run(16, 2091, 9.0), measured_run(1, 690, 1.2)),
            "f-canary": system(measured_run(16, 1765, 9.0), measured_run(1, 700, 1.0)),
            "f-shadow": system(measured_run(16, 1812, 9.0), measured_run(1, 690, 1.1), reload_cycles=None),
            "f-reload": system(measured_run(16, 2692, 9.0), measured_run(1, 690, 1.3), reload_cycles=RELOAD),
        },
        "paired_rounds": {
            "headline": section(
                HEADLINE,
                {
                    "stack": rounds((1500, 50.0), (1450, 52.0)),
                    "mlserver": disturbed(rounds((150, 130.0), (140, 140.0))),
                },
            ),
            "guard": section(
                GUARD,
                {
                    "f-none": rounds((2000, 30.0), (1800, 33.0)),
                    "f-drift": rounds((1960, 30.0), (1782, 33.0)),  # -2 %, -1 %
                    "f-canary": rounds((1850, 31.0), (1700, 34.0)),  # -7.5 %, -5.6 %
                    "f-shadow": rounds((1800, 36.0), (1620, 39.6)),  # -10 % both
                },
            ),
        },
    }


def test_the_section_shows_each_groups_rounds_medians_ratios_and_verdicts() -> None:
    lines = paired_section(latest())

    assert lines[0] == "## Paired rounds"
    assert (
        "**full stack vs MLServer**, c=16: 2 rounds of 10 s after a 2 s warm-up per system "
        "(order: 1 mlserver → stack; 2 stack → mlserver)."
    ) in lines
    assert "| d) MLServer | 150 · 140 ⚠ | 145 | 135.00 | 0.00 |  |  |  | reference |" in lines  # 0.5 cores busy
    assert (
        "| c) full stack (nginx + 3) | 1,500 · 1,450 | 1,475 | 51.00 | 0.00 | 10.17× | 10.18× [10.00–10.36] "
        "| 0.38× [0.37–0.38] | ✅ target ≥ 10×, lower p99 |"
    ) in lines
    assert (
        "| + drift counting | 1,960 · 1,782 | 1,871 | 31.50 | 0.00 | -1.5% | -1.5% [-2.0% … -1.0%] "
        "| 1.00× [1.00–1.00] | ✅ budget −5% |"
    ) in lines
    assert (
        "| + canary 10 % | 1,850 · 1,700 | 1,775 | 32.50 | 0.00 | -6.6% | -6.5% [-7.5% … -5.6%] "
        "| 1.03× [1.03–1.03] | ❌ budget −5% |"
    ) in lines
    assert (
        "| + shadow 100 % | 1,800 · 1,620 | 1,710 | 37.80 | 0.00 | -10.0% | -10.0% [-10.0% … -10.0%] "
        "| 1.20× [1.20–1.20] | reported |"
    ) in lines


def test_the_verdicts_use_the_paired_rounds() -> None:
    results = latest()
    markdown = render_markdown(results)

    assert (
        "- ✅ + drift counting: -1.5% of the baseline's req/s (median of 2 paired rounds at c=16, -2.0% … -1.0%; "
        "budget −5%)"
    ) in markdown  # the single run said +6.1 %
    assert "- ❌ + canary 10 %: -6.5% of the baseline's req/s (median of 2 paired rounds at c=16" in markdown
    assert (
        "- ✅ 100 % shadow: p50 at c=1 +0.10 ms (single run; budget +1 ms); it runs the model twice: -10.0% of "
        "the baseline's req/s (median of 2 paired rounds at c=16, -10.0% … -10.0%)"
    ) in markdown
    assert (
        "- ✅ full stack, every feature on, vs MLServer: 10.18× the req/s (median of 2 paired rounds at c=16, "
        "10.00–10.36×; target ≥ 10×), p99 0.38× MLServer's (lower)"
    ) in markdown  # the single run said 9.73x
    assert "- **Paired rounds at c=16 (the verdict's figure): 10.18× [10.00–10.36] the req/s" in markdown
    assert (
        "- Paired rounds: 2 rounds of 10 s after a 2 s warm-up, per system per round (headline: stack vs "
        "mlserver at c=16)"
    ) in markdown


def test_the_stack_needs_both_ten_times_the_throughput_and_a_lower_p99() -> None:
    def comparison(rps: float, p99: float | None) -> dict[str, Any]:
        return {"rps_paired": {"median": rps}, "p99_paired": {"median": p99}}

    assert headline_ok(comparison(10.0, 0.99))
    assert not headline_ok(comparison(9.99, 0.5))
    assert not headline_ok(comparison(12.0, 1.0))
    assert not headline_ok(comparison(12.0, None))
    assert feature_ok(0.95)
    assert not feature_ok(0.9499)


def test_reload_memory_is_judged_on_the_growth_after_the_warm_cycles() -> None:
    assert reload_memory(RELOAD) == (
        "✅ memory of the replica over 50 reload cycles (33.6 s): 153 MiB with 2 x 2 loaded, 290 MiB after 10 "
        "cycles (each worker's first reloads load its own copies), 299 MiB after 50: +9.0 MiB from cycle 10 to "
        "50, +3.1 % of cycle 10's, 0.23 MiB per cycle (budget +5 %)"
    )
    grown = {**RELOAD, "memory_after": {"replica": {"resident_mib": 310.0}}}
    grown["growth_after_warm"] = reload_growth(290.0, 310.0, 10, 50)
    assert reload_memory(grown).startswith("❌ memory of the replica over 50 reload cycles")
    assert "+20.0 MiB from cycle 10 to 50, +6.9 % of cycle 10's, 0.50 MiB per cycle" in reload_memory(grown)


def test_older_results_without_a_warm_point_state_before_and_after() -> None:
    old = {k: v for k, v in RELOAD.items() if k not in ("memory_warm", "growth_after_warm", "warm_cycles")}
    assert reload_memory(old) == (
        "memory of the replica with 2 x 2 loaded: 153 MiB; after 50 reload cycles (33.6 s): 299 MiB"
    )


def test_a_skipped_group_says_why_and_results_without_rounds_have_no_section() -> None:
    results = latest()
    results["paired_rounds"]["guard"] = {"title": "guard", "status": "skipped", "note": "f-none not in BENCH_FEATURES"}
    assert "**guard**: skipped — f-none not in BENCH_FEATURES." in paired_section(results)
    assert paired_section({"systems": {}}) == []
    del results["paired_rounds"]
    assert "(single run at c=16; budget −5%)" in render_markdown(results)


def with_control(results: dict[str, Any]) -> dict[str, Any]:
    """``latest()`` with the control row (the baseline again) in the guard and its rounds."""
    guard = Group("guard", GUARD.title, "f-none", ("f-control", *GUARD.compared), 16)
    results["systems"]["f-control"] = system(measured_run(16, 2010, 9.0), measured_run(1, 700, 1.0))
    results["paired_rounds"]["guard"] = section(
        guard,
        {
            "f-none": rounds((2000, 30.0), (1800, 33.0)),
            "f-control": rounds((1980, 30.0), (1818, 33.0)),  # -1 %, +1 %
            "f-drift": rounds((1960, 30.0), (1782, 33.0)),
            "f-canary": rounds((1850, 31.0), (1700, 34.0)),
            "f-shadow": rounds((1800, 36.0), (1620, 39.6)),
        },
    )
    return results


def test_the_control_row_is_the_noise_floor_stated_next_to_the_budgets() -> None:
    results = with_control(latest())
    lines = paired_section(results)
    control = next(line for line in lines if line.startswith("| control: the baseline again (noise floor) |"))
    assert control.endswith("| +0.0% [-1.0% … +1.0%] | 1.00× [1.00–1.00] | noise floor |")
    guard_rows_shown = [line.split(" | ")[0] for line in lines if line.startswith("| ") and "guard" not in line]
    assert guard_rows_shown.index("| baseline: 1 model x 1 version, drift off") + 1 == guard_rows_shown.index(
        "| control: the baseline again (noise floor)"
    )

    markdown = render_markdown(results)
    floor = (
        "- noise floor this run: control vs baseline +0.0% [-1.0% … +1.0%] (median of 2 paired rounds at c=16), "
        "two identical replicas: no budget of its own"
    )
    assert floor in markdown
    assert markdown.index(floor) < markdown.index("- ✅ + drift counting:")  # first, then the budgets
    assert "| control: the baseline again (noise floor) | 2,010 | +2.0% |" in markdown  # the single-run table


def test_without_rounds_the_noise_floor_is_the_single_runs() -> None:
    results = with_control(latest())
    del results["paired_rounds"]["guard"]
    assert (
        "- noise floor this run: control vs baseline +2.0% (single run at c=16), two identical replicas: "
        "no budget of its own"
    ) in render_markdown(results)
