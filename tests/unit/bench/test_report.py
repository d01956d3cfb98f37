"""bench.benchmark.report: the sections and rows of latest.md, the verdicts on the targets, the ratios in the JSON."""

import json
from pathlib import Path
from typing import Any

import pytest

from bench.benchmark import chart, report
from bench.benchmark.measure import Group, round_order, summarize
from bench.benchmark.report import Report, beats, feature_ok, reload_memory, table
from bench.benchmark.systems import reload_growth


def run(c: int, rps: float, p50: float, other: float = 0.0, **cpu: Any) -> dict[str, Any]:
    components = cpu.pop("components", {"replica": 1.9})
    return {
        "concurrency": c,
        "rps": rps,
        "requests": int(rps),
        "rps_per_core": round(rps / 1.9, 1),
        "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "max": p50 * 5},
        "errors": {"non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "total": 0},
        "cpu": {
            "sut_cores": 1.9,
            "engine_cores": 0.01,
            "wrk_cores": 0.05,
            "other_cores": other,
            "components_cores": components,
            **cpu,
        },
        "memory_mid_run": {"replica": {"resident_mib": 147.0}},
    }


def system(*runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": "ok", "runs": list(runs), **extra}


def rounds(*values: tuple[float, float], other: float = 0.01, cores: dict[str, float] | None = None):
    return [
        {
            "round": i,
            "rps": rps,
            "p50_ms": p99 / 3,
            "p99_ms": p99,
            "errors": 0,
            "other_cores": other,
            "bystander_cores": 0.002,
            "cpu": {"components_cores": cores or {"replica": 1.9}},
        }
        for i, (rps, p99) in enumerate(values, 1)
    ]


def section(group: Group, measured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What measure.run_rounds writes for a group."""
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
REPLICAS = Group("replicas", "full stack vs one replica, same models, CPU per request", "direct-all", ("stack",), 16)
TABULAR = Group("tabular", "penguins Pipeline: stack vs MLServer", "mlserver-tabular", ("stack-tabular",), 16)
GUARD = Group(
    "guard",
    "performance guard: each row vs the baseline",
    "f-none",
    ("f-control", "f-drift", "f-canary", "f-shadow"),
    16,
)
RELOAD = {
    "cycles": 50,
    "seconds": 33.6,
    "memory_before": {"replica": {"resident_mib": 153.1}},
    "warm_cycles": 10,
    "memory_warm": {"replica": {"resident_mib": 290.0}},
    "memory_after": {"replica": {"resident_mib": 299.0}},
    "growth_after_warm": reload_growth(290.0, 299.0, 10, 50),
}
STACK_CPU = {"components": {"model-1": 0.6, "model-2": 0.6, "model-3": 0.6, "nginx-1": 0.15}}


def latest() -> dict[str, Any]:
    """A small latest.json: (b), (c) and (d) at c=16, five guard rows at c=16 and 1, both groups' rounds."""
    return {
        "bench_id": "x-1",
        "settings": {
            "concurrency": [16],
            "disturbed_cores": 0.3,
            "wrk": "wrk -t1",
            "rounds": 2,
            "round_duration": 10,
            "round_warmup": 2,
            "groups": {"headline": {"reference": "mlserver", "compared": ["stack"], "c": 16}},
            "batching": {"compared": False, "note": "BENCH_BATCH_OFF_ENV is empty"},
        },
        "systems": {
            "direct": system(run(16, 2000, 7.0)),  # the image's model alone: not the stack's reference
            "direct-all": system(run(16, 1500, 8.0)),  # the stack's repository in one replica
            "stack": system(
                run(16, 1420, 10.0, **STACK_CPU),
                address={"host": "172.20.0.5", "port": 8080, "where": "container bench-x-1-nginx-1"},
            ),
            "mlserver": system(run(16, 146, 110.0)),
            "stack-tabular": system(run(16, 800, 20.0, **STACK_CPU)),
            "mlserver-tabular": system(run(16, 100, 160.0)),
            "f-none": system(run(16, 1970, 9.0), run(1, 700, 1.0)),
            "f-control": system(run(16, 2010, 9.0), run(1, 700, 1.0)),
            "f-drift": system(run(16, 2091, 9.0), run(1, 690, 1.2)),
            "f-canary": system(run(16, 1765, 9.0), run(1, 700, 1.0)),
            "f-shadow": system(run(16, 1812, 9.0), run(1, 690, 1.1)),
            "f-reload": system(run(16, 2692, 9.0), run(1, 690, 1.3), reload_cycles=RELOAD),
        },
        "paired_rounds": {
            "headline": section(
                HEADLINE,
                {
                    "stack": rounds((1500, 50.0), (1450, 52.0)),
                    "mlserver": [*rounds((150, 130.0)), *rounds((140, 140.0), other=0.5)],
                },
            ),
            "replicas": section(
                REPLICAS,
                {
                    "direct-all": rounds((2000, 21.0), (1900, 22.0)),  # 950 and 1,000 µs per request
                    "stack": rounds((1420, 30.0), (1400, 31.0), cores=STACK_CPU["components"]),
                },
            ),
            "tabular": section(
                TABULAR,
                {
                    "stack-tabular": rounds((760, 22.0), (700, 24.0)),
                    "mlserver-tabular": rounds((100, 150.0), (95, 160.0)),
                },
            ),
            "guard": section(
                GUARD,
                {
                    "f-none": rounds((2000, 30.0), (1800, 33.0)),
                    "f-control": rounds((1980, 30.0), (1818, 33.0)),  # -1 %, +1 %
                    "f-drift": rounds((1960, 30.0), (1782, 33.0)),  # -2 %, -1 %
                    "f-canary": rounds((1850, 31.0), (1700, 34.0)),  # -7.5 %, -5.6 %
                    "f-shadow": rounds((1800, 36.0), (1620, 39.6)),  # -10 % both
                },
            ),
        },
    }


def markdown(results: dict[str, Any]) -> str:
    return Report(results).markdown()


def test_the_report_has_every_section_in_order() -> None:
    headings = [line for line in markdown(latest()).splitlines() if line.startswith("#")]
    assert headings == [
        "# Benchmark: tutorial app vs model-server vs full stack vs MLServer",
        "## Results",
        "## Model kinds",
        "## Ratios",
        "## Paired rounds",
        "## Performance guard",
        "## Settings",
        "## Failures and anomalies",
    ]


def test_the_paired_rounds_show_each_groups_rounds_medians_ratios_and_verdicts() -> None:
    lines = markdown(latest()).splitlines()
    assert (
        "**full stack vs MLServer**, c=16: 2 rounds of 10 s after a 2 s warm-up per system "
        "(order: 1 mlserver → stack; 2 stack → mlserver)."
    ) in lines
    assert "| d) MLServer | 150 · 140 ⚠ | 145 | 135.00 | 0.00 |  |  |  | reference |" in lines  # 0.5 cores busy
    assert (
        "| c) full stack (nginx + 3) | 1,500 · 1,450 | 1,475 | 51.00 | 0.00 | 10.17× | 10.18× [10.00–10.36] "
        "| 0.38× [0.37–0.38] | ❌ target ≥ 12×, lower p99 |"
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
    assert next(line for line in lines if line.startswith("| control: ")).endswith(
        "| +0.0% [-1.0% … +1.0%] | 1.00× [1.00–1.00] | noise floor |"
    )


def test_the_verdicts_use_the_paired_rounds_where_they_ran() -> None:
    text = markdown(latest())
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert (
        "| + drift counting | 1,960 · 1,782 | 1,871 | 31.50 | 0.00 | -1.5% | -1.5% [-2.0% … -1.0%] | 1.00× [1.00–1.00] "
        "| ✅ budget −5% |"
    ) in rows  # the single run said +6.1 %
    assert next(row for row in rows if row.startswith("| + canary 10 % | 1,850")).endswith("| ❌ budget −5% |")
    assert (
        "- ✅ 100 % shadow: p50 at c=1 +0.10 ms (single run; budget +1 ms); it runs the model twice: -10.0% "
        "[-10.0% … -10.0%] of the baseline's req/s (median of 2 paired rounds at c=16)"
    ) in text
    assert (
        "| c) full stack (nginx + 3) | 1,500 · 1,450 | 1,475 | 51.00 | 0.00 | 10.17× | 10.18× [10.00–10.36] | "
        "0.38× [0.37–0.38] | ❌ target ≥ 12×, lower p99 |"
    ) in rows
    assert (
        "| c-t) full stack, penguins | 760 · 700 | 730 | 23.00 | 0.00 | 7.49× | 7.48× [7.37–7.60] | 0.15× [0.15–0.15] "
        "| ❌ target ≥ 8×, lower p99 |"
    ) in rows


def test_without_rounds_no_ratio_is_judged() -> None:
    results = latest()
    del results["paired_rounds"]
    text = markdown(results)
    assert "## Paired rounds" not in text
    assert "| + canary 10 % | 1,765 | -10.4% |" in text  # the single runs are in the tables
    for verdict in ("+ drift counting:", "+ canary 10 %:", "noise floor", "vs MLServer (numeric", "100 % shadow:"):
        assert f"- ✅ {verdict}" not in text and f"- ❌ {verdict}" not in text and f"- {verdict}" not in text


def test_the_model_kinds_stand_side_by_side_in_req_s_and_cpu_per_request() -> None:
    lines = markdown(latest()).splitlines()
    # The stack's replicas used 3 x 0.6 cores: at 1,420 req/s 1,268 µs per request, at 800 req/s 2,250 µs; nginx
    # 0.15 cores; MLServer 1.9 cores: 13,014 µs at 146 req/s, 19,000 at 100.
    assert (
        "| numeric: iris forest, 4 doubles | 16 | 1,420 | 1,268 + 106 | 30.00 | 146 | 13,014 | 330.00 | 9.73× | 0.09× |"
    ) in lines
    assert (
        "| tabular: penguins Pipeline, 7 mixed-type columns | 16 | 800 | 2,250 + 188 | 60.00 | 100 | 19,000 | 480.00 "
        "| 8.00× | 0.12× |"
    ) in lines
    results = latest()
    del results["systems"]["mlserver-tabular"]
    assert (
        "| tabular: penguins Pipeline, 7 mixed-type columns | 16 | 800 | 2,250 + 188 | 60.00 | – | – | – | – | – |"
        in (markdown(results).splitlines())
    )


def test_a_skipped_group_says_why() -> None:
    results = latest()
    results["paired_rounds"]["guard"] = {"title": "guard", "status": "skipped", "note": "f-none not in BENCH_FEATURES"}
    assert "**guard**: skipped — f-none not in BENCH_FEATURES." in markdown(results)


def test_the_guard_table_gives_each_rows_change_against_the_baseline() -> None:
    text = markdown(latest())
    assert "| baseline: 1 model x 1 version, drift off | 1,970 | +0.0% | 1.00 | +0.00 ms | 964 | 147 |" in text
    assert "| + drift counting | 2,091 | +6.1% | 1.20 | +0.20 ms | 909 | 147 |" in text
    results = latest()
    results["systems"]["f-canary"] = {"status": "failed", "runs": [], "error": "Failed: no"}
    assert "| + canary 10 % | failed | | | | | |" in markdown(results)


def test_the_stacks_cpu_per_request_and_the_nginx_budget() -> None:
    text = markdown(latest())
    # (b-all) 1.9 cores / 1,500 req/s; (c) replicas 1.8 / 1,420, nginx 0.15 / 1,420 req/s
    assert "| 16 | 0.95× | +2.00 ms | +6.00 ms | – | – | 1,267 | 1,268 | 106 |" in text  # the single runs
    # the verdicts: from the paired rounds, (b) 950 and 1,000 µs, (c) 1,268 + 106 and 1,286 + 107 µs
    assert (
        "- ✅ nginx: 106 µs of CPU per proxied request, 7.7% [7.7%–7.7%] of the stack's 1,383 µs (median of 2 paired "
        "rounds at c=16; budget 10%)"
    ) in text
    assert (
        "- ❌ the stack's replicas: 1,277 µs of CPU per request against 975 µs for one replica on the same models, "
        "+31% [+29% … +33%] (median of 2 paired rounds at c=16; target within +10%)"
    ) in text
    results = latest()
    del results["paired_rounds"]["replicas"]  # single runs give the table, not the verdicts
    assert "| 16 | 0.95× | +2.00 ms | +6.00 ms | – | – | 1,267 | 1,268 | 106 |" in markdown(results)
    assert "the stack's replicas:" not in markdown(results) and "nginx:" not in markdown(results)


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
    short = {**RELOAD, "cycles": 8, "memory_warm": {}, "growth_after_warm": {}}  # fewer cycles than the warm ones
    assert (
        reload_memory(short)
        == "memory of the replica with 2 x 2 loaded: 153 MiB; after 8 reload cycles (33.6 s): 299 MiB"
    )
    assert reload_memory(RELOAD) in markdown(latest())


def test_the_targets() -> None:
    def comparison(rps: float, p99: float | None) -> dict[str, Any]:
        return {"rps_paired": {"median": rps}, "p99_paired": {"median": p99}}

    assert beats(comparison(10.0, 0.99), 10)
    assert not beats(comparison(9.99, 0.5), 10)
    assert not beats(comparison(12.0, 1.0), 10)
    assert not beats(comparison(12.0, None), 10)
    assert beats(comparison(8.0, 0.5), 8) and not beats(comparison(7.99, 0.5), 8)
    assert feature_ok(0.95) and not feature_ok(0.9499)


def test_warnings_and_anomalies_name_what_disturbed_or_failed() -> None:
    results = latest()
    results["machine_at_start"] = {"other_containers": ["e2e-1", "e2e-2"]}
    results["systems"]["mlserver"]["runs"][0]["cpu"]["other_cores"] = 0.45
    errors = results["systems"]["direct"]["runs"][0]["errors"]
    errors.update(non_2xx=3, timeout=2, total=5)
    results["systems"]["direct"]["runs"][0]["cpu"]["cfs_quota_throttling"] = {
        "replica": {"periods": 100, "throttled_periods": 20, "throttled_pct": 20.0, "throttled_s": 1.5}
    }
    results["systems"]["tutorial"] = {"status": "failed", "runs": [], "error": "Failed: the tutorial app exited"}
    text = markdown(results)
    warnings = text.split("Warnings:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert warnings[0].startswith(
        "- ⚠ the machine is shared: other containers were running when the run started (2: e2e-1, e2e-2)"
    )
    assert "- ⚠ a) tutorial app FAILED: Failed: the tutorial app exited" in warnings
    assert not any("MLServer" in warning for warning in warnings)  # its disturbed run: ⚠ in the table
    assert "- ⚠ paired rounds: " not in text
    assert "| a) tutorial app | – | failed | | | | | | | | |" in text
    assert "| d) MLServer | 16 | 146 ⚠ | 110.00 |" in text
    assert "| b) 1 replica direct | 16 | 2,000 | 7.00 | 14.00 | 21.00 | 35.0 | **5** (non-2xx 3, timeout 2) |" in text
    failures = text.split("## Failures and anomalies\n\n", 1)[1]
    assert "- b) 1 replica direct at c=16: **5** (non-2xx 3, timeout 2) errors out of 2002" in failures
    assert (
        "- b) 1 replica direct at c=16: CPU quota (`--cpus`/`MODEL_CPUS`) throttled replica 20% of periods (1.5 s)"
        in failures
    )
    assert "- a) tutorial app: failed — Failed: the tutorial app exited" in failures
    assert "- none: no errors" not in failures
    assert "- none: no errors, every system up." in markdown(latest())


def test_a_table_aligns_the_cells_marked_right() -> None:
    assert (
        table("row | req/s: | note", ["| a | 1 | x |"]) == "| row | req/s | note |\n| --- | ---: | --- |\n| a | 1 | x |"
    )


def test_main_renders_the_json_next_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    charts: list[Path] = []
    monkeypatch.setattr(chart, "render_png", lambda results, series, path: charts.append((path, series)))
    (tmp_path / "latest.json").write_text(json.dumps(latest()))
    assert report.main([str(tmp_path / "latest.json")]) == 0
    assert (tmp_path / "latest.md").read_text() == markdown(latest())
    assert json.loads((tmp_path / "latest.json").read_text()) == latest()  # read, not rewritten
    assert [(path, [key for key, _, _ in series]) for path, series in charts] == [
        (tmp_path / "latest.png", ["direct", "direct-all", "stack", "mlserver", "stack-tabular", "mlserver-tabular"])
    ]


def test_batching_on_vs_off_is_judged_free_at_c1_and_a_gain_under_load() -> None:
    results = latest()
    for c, on, off in ((1, [(990, 1.02), (1000, 1.0)], [(1000, 1.0), (1000, 1.0)]),
                       (16, [(3000, 9.0), (3100, 9.0)], [(2000, 12.0), (2000, 12.0)])):  # fmt: skip
        group = Group(f"batching-c{c}", f"micro-batching on vs off, c={c}", "direct-nobatch", ("direct",), c)
        results["paired_rounds"][group.key] = section(group, {"direct": rounds(*on), "direct-nobatch": rounds(*off)})
    lines = markdown(results).splitlines()
    assert next(line for line in lines if line.startswith("| b) 1 replica direct | 990 · 1,000 ")).endswith(
        "| 0.99× [0.99–1.00] | 1.01× [1.00–1.02] | ✅ target within 3% in req/s and p99 |"
    )
    assert next(line for line in lines if line.startswith("| b) 1 replica direct | 3,000 · 3,100 ")).endswith(
        "| 1.52× [1.50–1.55] | 0.75× [0.75–0.75] | ✅ target ≥ 1.5× |"
    )
    assert report.batching_verdict(1, 0.96, 1.0).startswith("❌")
    assert report.batching_verdict(1, 1.0, 1.04).startswith("❌")
    assert report.batching_verdict(64, 1.49, 0.5).startswith("❌")
