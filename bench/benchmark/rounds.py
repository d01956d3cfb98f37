"""Paired, interleaved rounds (pure): the comparison groups, the order of each round, medians and paired ratios.

On a shared 2-core machine two measurements of the same configuration a few minutes apart can
differ by a third, so a comparison whose sides are measured once each, one after the other,
measures the machine's drift as much as the systems. A comparison group's systems therefore stay
up together, and each of ``BENCH_ROUNDS`` rounds measures every one of them in turn (a warm-up of
``BENCH_ROUND_WARMUP`` s, then ``BENCH_ROUND_DURATION`` s) at one concurrency:

* ``headline``: the full stack (c) against MLServer (d);
* ``guard``: each performance-guard row against the baseline ``f-none``, the control ``f-control`` (the
  baseline again: the run's noise floor) first.

Round ``r`` visits the systems in their order rotated by ``r // 2``, reversed when ``r`` is odd
(two systems: AB BA BA AB AB ...): in each pair of rounds ``2k`` and ``2k + 1`` every system comes
before every other one once, so a drift weighs on both sides of a comparison alike, and over ``2 n`` rounds
each of ``n`` systems goes first twice. Per system: the median req/s and p99 over the rounds;
per comparison: the ratio of the medians, and the ratio within each round (paired) with its
median, min and max, which the report's verdicts use. :mod:`.interleaved` runs the rounds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from .settings import FEATURE_ROWS, Settings

PREFERRED_CONCURRENCY = 16


@dataclass(frozen=True)
class Group:
    """Systems up together for paired rounds: each of ``compared`` against ``reference``."""

    key: str
    title: str
    reference: str
    compared: tuple[str, ...]
    concurrency: int

    @property
    def systems(self) -> tuple[str, ...]:
        return (self.reference, *self.compared)

    def restricted(self, available: Collection[str]) -> Group | None:
        """The group without the systems not in ``available``; None without its reference or anything to compare."""
        compared = tuple(key for key in self.compared if key in available)
        return replace(self, compared=compared) if self.reference in available and compared else None


def round_concurrency(levels: Sequence[int]) -> int:
    """The concurrency of the rounds: 16 when it is one of ``levels``, else the largest."""
    return PREFERRED_CONCURRENCY if PREFERRED_CONCURRENCY in levels else max(levels)


def plan(s: Settings) -> list[tuple[Group, str]]:
    """Every group, each with why it is left out ("" when this run measures it, restricted to the chosen systems)."""
    candidates = [
        (
            Group("headline", "full stack vs MLServer", "mlserver", ("stack",), round_concurrency(s.concurrency)),
            s.systems,
            "BENCH_SYSTEMS",
        ),
        (
            Group("guard", "performance guard: each row vs the baseline", FEATURE_ROWS[0], FEATURE_ROWS[1:],
                  round_concurrency(s.feature_concurrency)),
            s.features,
            "BENCH_FEATURES",
        ),
    ]  # fmt: skip
    planned = []
    for group, chosen, variable in candidates:
        kept = group.restricted(chosen)
        if s.rounds == 0:
            planned.append((group, "BENCH_ROUNDS=0"))
        elif kept is None:
            missing = [group.reference] if group.reference not in chosen else group.compared
            planned.append((group, f"{', '.join(missing)} not in {variable}"))
        else:
            planned.append((kept, ""))
    return planned


def round_order(systems: Sequence[str], rounds: int) -> list[list[str]]:
    """The order in which each round visits ``systems``: a rotation by ``r // 2``, reversed when ``r`` is odd."""
    orders = []
    for r in range(rounds):
        k = (r // 2) % len(systems)
        rotated = [*systems[k:], *systems[:k]]
        orders.append(rotated[::-1] if r % 2 else rotated)
    return orders


def round_values(run: Mapping[str, Any]) -> dict[str, Any]:
    """What the rounds keep of one measured wrk run (:func:`.measure.run_wrk`)."""
    return {
        "rps": run["rps"],
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "errors": run["errors"]["total"],
        "other_cores": run["cpu"]["other_cores"],
    }


def _median(values: Sequence[float]) -> float | None:
    return median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def paired(ratios: Sequence[float | None]) -> dict[str, Any]:
    """Per-round ratios: their median, min and max (over the rounds where both sides were measured)."""
    known = [r for r in ratios if r is not None]
    return {
        "median": _rounded(_median(known), 4),
        "min": _rounded(min(known, default=None), 4),
        "max": _rounded(max(known, default=None), 4),
        "per_round": [_rounded(r, 4) for r in ratios],
    }


def summarize(group: Group, measured: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per system: its rounds and their medians; per compared system: ratios against the reference."""
    medians = {
        key: {metric: _median([r[metric] for r in measured[key]]) for metric in ("rps", "p99_ms")}
        for key in group.systems
    }
    systems = {
        key: {
            "median_rps": _rounded(medians[key]["rps"], 1),
            "median_p99_ms": _rounded(medians[key]["p99_ms"], 3),
            "rounds": list(measured[key]),
        }
        for key in group.systems
    }
    comparisons = {}
    reference, base = medians[group.reference], measured[group.reference]
    for key in group.compared:
        rounds = list(zip(measured[key], base, strict=False))
        comparisons[key] = {
            "against": group.reference,
            "rps_ratio_of_medians": _rounded(_ratio(medians[key]["rps"], reference["rps"]), 4),
            "p99_ratio_of_medians": _rounded(_ratio(medians[key]["p99_ms"], reference["p99_ms"]), 4),
            "rps_paired": paired([_ratio(a["rps"], b["rps"]) for a, b in rounds]),
            "p99_paired": paired([_ratio(a["p99_ms"], b["p99_ms"]) for a, b in rounds]),
        }
    return {"systems": systems, "comparisons": comparisons}
