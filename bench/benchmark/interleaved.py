"""Running a comparison group's paired rounds (:mod:`.rounds`) while its systems are up together.

Each round measures every system of the group in the round's order: a warm-up, then a measured
wrk run at the group's concurrency. The group's other systems are up meanwhile and frozen
(:mod:`.freeze`: containers paused, host processes stopped), and thawed after the turn; the CPU
they use during a measured run is recorded with it (``bystander_cores``, about 0: it shows the
freeze held). Before its warm-up, a system thawed after the previous turn gets a moment and must
answer one request. Rounds are not repeated when the machine is busy: the medians and the paired
ratios are what carries the noise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .freeze import frozen
from .measure import MEASUREMENT_ERRORS, answers, log, run_wrk, wait_for_idle
from .rounds import Group, round_order, round_values, summarize
from .systems import System

if TYPE_CHECKING:
    from .context import Context


def run_group(ctx: Context, group: Group, up: Mapping[str, System], results: Mapping[str, Any]) -> dict[str, Any]:
    """The group's rounds over those of its systems that were measured without failing (the others are
    left out, and the group altogether without its reference): its part of ``latest.json``."""
    ok = [key for key in group.systems if results[key].get("status") == "ok" and key in up]
    kept = group.restricted(ok)
    if kept is None:
        failed = ", ".join(key for key in group.systems if key not in ok)
        log(f"paired rounds {group.key}: skipped ({failed} failed)")
        return {"title": group.title, "status": "skipped", "note": f"{failed} failed"}
    return run_rounds(ctx, kept, {key: up[key] for key in kept.systems})


def run_rounds(ctx: Context, group: Group, systems: Mapping[str, System]) -> dict[str, Any]:
    s = ctx.settings
    orders = round_order(group.systems, s.rounds)
    section: dict[str, Any] = {
        "title": group.title,
        "status": "failed",
        "reference": group.reference,
        "concurrency": group.concurrency,
        "rounds": s.rounds,
        "round_duration_s": s.round_duration,
        "warmup_s": s.round_warmup,
        "order": orders,
    }
    measured: dict[str, list[dict[str, Any]]] = {key: [] for key in group.systems}
    t0 = time.monotonic()
    try:
        section["machine_before"] = wait_for_idle(s)
        for number, order in enumerate(orders, 1):
            for key in order:
                measured[key].append(measure_round(ctx, group, systems, key, number))
            done = ", ".join(f"{key} {measured[key][-1]['rps']:.0f}" for key in order)
            log(f"paired rounds {group.key} c={group.concurrency}, round {number}/{s.rounds}: {done} req/s")
        section["status"] = "ok"
    except MEASUREMENT_ERRORS as exc:
        section["error"] = f"{type(exc).__name__}: {exc}"
        log(f"paired rounds {group.key}: FAILED: {section['error']}")
    section.update(summarize(group, measured))
    section["elapsed_s"] = round(time.monotonic() - t0, 1)
    return section


def measure_round(ctx: Context, group: Group, systems: Mapping[str, System], key: str, number: int) -> dict[str, Any]:
    """One system's turn in round ``number``: the others frozen, a check that it answers, a warm-up, then the
    measured run; the others are thawed after it, whatever happens."""
    s, c = ctx.settings, group.concurrency
    system = systems[key]
    bystanders = [other for name, other in systems.items() if name != key]
    with frozen(bystanders):
        answers(system)
        if s.round_warmup > 0:
            run_wrk(s, system, c, s.round_warmup, f"round{number}-warmup")
        run = run_wrk(s, system, c, s.round_duration, f"round{number}", measured=True, bystanders=bystanders)
    return {"round": number, **round_values(run), "bystander_cores": run["cpu"]["bystander_cores"]}
