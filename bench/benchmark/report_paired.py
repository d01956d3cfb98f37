"""The report on the paired rounds (:mod:`.rounds`): the section with each group's rounds, medians, ratios and
verdicts, the Ratios section's lead and the Settings line.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from .report_common import (
    BUDGETED,
    FEATURE_BUDGET,
    GUARD,
    SHORT,
    STACK_VS_MLSERVER,
    disturbed_limit,
    feature_ok,
    fmt,
    headline_ok,
    paired_comparison,
    paired_how,
    spread_change,
    spread_ratio,
)
from .settings import CONTROL


def paired_verdict(group: str, key: str, comparison: dict[str, Any]) -> str:
    if group == "headline":
        return f"{'✅' if headline_ok(comparison) else '❌'} target ≥ {STACK_VS_MLSERVER:.0f}×, lower p99"
    if key in BUDGETED:
        return f"{'✅' if feature_ok(comparison['rps_paired']['median']) else '❌'} budget −{FEATURE_BUDGET:.0%}"
    return "noise floor" if key == CONTROL else "reported"


def headline_paired(results: dict[str, Any]) -> list[str]:
    """The Ratios section's lead, from the paired rounds: the figure its verdict uses."""
    comparison = paired_comparison(results, "headline", "stack")
    if comparison is None:
        return []
    c = results["paired_rounds"]["headline"]["concurrency"]
    return [
        f"- **Paired rounds at c={c} (the verdict's figure): {spread_ratio(comparison['rps_paired'])} the req/s, "
        f"p99 {spread_ratio(comparison['p99_paired'])}** ({paired_how(comparison, c)} [min–max]; *Paired rounds*)."
    ]


def rounds_settings(settings: dict[str, Any]) -> list[str]:
    rounds = settings.get("paired_rounds")
    if not rounds:
        return []
    groups = "; ".join(
        f"{name}: {', '.join(g['compared'])} vs {g['reference']} at c={g['c']}" for name, g in rounds["groups"].items()
    )
    return [
        f"- Paired rounds: {rounds['rounds']} rounds of {rounds['round_duration_s']} s after a "
        f"{rounds['round_warmup_s']} s warm-up, per system per round ({groups or 'no group'}); a group's systems "
        "stay up from their own measurements to the group's rounds, frozen while another system is measured "
        "(`docker pause` of all their containers, SIGSTOP of a host process tree; thawed after each turn), so "
        "that their health checks and pollers take no CPU from it."
    ]


def paired_section(results: dict[str, Any]) -> list[str]:
    """Per group: each system's rounds and medians, each comparison's ratios and verdict."""
    groups = results.get("paired_rounds") or {}
    if not groups:
        return []
    lines = [
        "## Paired rounds",
        "",
        "The decisive comparisons, measured again after the table above with each group's systems up together: "
        "every round measures each system in turn (a warm-up, then a measured run, at one concurrency), round r "
        "in the group's order rotated by r // 2 and reversed when r is odd, so that the machine's drift weighs on "
        "both sides of a comparison alike. Per system: the median over the rounds. Per comparison: the ratio of "
        "the medians, and the ratio within each round (*paired*), median [min–max] — the verdicts use the "
        "paired median. The group's other systems are frozen during each system's turn (containers paused, host "
        "processes stopped) and thawed after it; *others up* = CPU cores they used during the measured run "
        "(median; about 0 shows the freeze held). "
        "⚠ = a round during which processes other than the system, wrk and the engine used more than "
        f"{disturbed_limit(results)} cores (the group's frozen systems included).",
        "",
    ]
    for name, section in groups.items():
        title = section.get("title", name)
        if section.get("status") in ("skipped", "not run"):
            lines += [f"**{title}**: {section['status']} — {section.get('note', '?')}.", ""]
            continue
        change = name == "guard"
        measure = "req/s change" if change else "req/s ratio"
        orders = "; ".join(f"{i} " + " → ".join(order) for i, order in enumerate(section["order"], 1))
        lines += [
            f"**{title}**, c={section['concurrency']}: {section['rounds']} rounds of {section['round_duration_s']} s "
            f"after a {section['warmup_s']} s warm-up per system (order: {orders}).",
            "",
            f"| system | req/s per round | median req/s | median p99 ms | others up, cores | {measure} of medians | "
            f"{measure}, paired: median [min–max] | p99 ratio, paired | verdict |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for key, system in section["systems"].items():
            per_round = " · ".join(
                f"{r['rps']:,.0f}{' ⚠' if r['other_cores'] > disturbed_limit(results) else ''}"
                for r in system["rounds"]
            )
            bystanders = [r["bystander_cores"] for r in system["rounds"]]
            cells = [
                GUARD.get(key, SHORT.get(key, key)),
                per_round or "–",
                fmt(system["median_rps"], 0),
                fmt(system["median_p99_ms"]),
                fmt(median(bystanders) if bystanders else None),
            ]
            comparison = paired_comparison(results, name, key)
            if comparison is None:
                cells += ["", "", "", "reference" if key == section["reference"] else "–"]
            else:
                of_medians = comparison["rps_ratio_of_medians"]
                cells += [
                    f"{of_medians - 1:+.1%}" if change else f"{of_medians:.2f}×",
                    (spread_change if change else spread_ratio)(comparison["rps_paired"]),
                    spread_ratio(comparison["p99_paired"]) if comparison["p99_paired"]["median"] else "–",
                    paired_verdict(name, key, comparison),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if section.get("status") == "failed":
            lines += [f"⚠ the rounds stopped early: {section.get('error', '?')}", ""]
    return lines
