"""``python -m bench.benchmark.report [latest.json]``: ``latest.md`` and the chart (chart.py) from ``latest.json``.
Verdicts on ratios use the paired rounds' medians (none without rounds: BENCH_ROUNDS=0)."""

import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

from . import chart
from .settings import BASELINE, BENCH_DIR, CONTROL

SHORT = {"tutorial": "a) tutorial app", "direct": "b) 1 replica direct", "direct-nobatch": "b') 1 replica, "
         "batching off", "direct-all": "b-all) 1 replica, every feature on", "stack": "c) full stack (nginx + 3)",
         "mlserver": "d) MLServer", "stack-tabular": "c-t) full stack, penguins", "mlserver-tabular": "d-t) MLServer, "
         "penguins",
         "stack-boosted": "c-x) full stack, XGBoost", "mlserver-boosted": "d-x) MLServer, XGBoost"}  # fmt: skip
ORDER = list(SHORT)
GUARD = {"f-none": "baseline: 1 model x 1 version, drift off", "f-control": "control: the baseline again (noise floor)",
         "f-drift": "+ drift counting", "f-repository": "+ 2 models x 2 versions", "f-canary": "+ canary 10 %",
         "f-shadow": "+ shadow 100 %", "f-reload": "2 x 2, then reload cycles",
         "f-xgboost": "an XGBoost model file instead (50 trees, V2 tensor)"}  # fmt: skip
# The targets.
STACK_VS_MLSERVER = 12.0  # the full stack's req/s at c=16 over MLServer's, every feature on (and a lower p99)
TABULAR_VS_MLSERVER = 8.0  # the same on the penguins Pipeline, against MLServer's pandas codec
BOOSTED_VS_MLSERVER = 8.0  # the same on the XGBoost model, against its XGBoost runtime (aiming at 10 times)
# Per model kind: its group of paired rounds, the stack's and MLServer's keys, the target, what is served.
KINDS = {"numeric": ("headline", "stack", "mlserver", STACK_VS_MLSERVER, "iris forest, 4 doubles"),
         "tabular": ("tabular", "stack-tabular", "mlserver-tabular", TABULAR_VS_MLSERVER,
                     "penguins Pipeline, 7 mixed-type columns"),
         "boosted": ("boosted", "stack-boosted", "mlserver-boosted", BOOSTED_VS_MLSERVER,
                     "XGBoost, 50 trees, 30 doubles")}  # fmt: skip
FEATURE_BUDGET = 0.05  # what drift counting, the repository and the canary may each cost of a replica's req/s
BUDGETED = ("f-drift", "f-repository", "f-canary")
SHADOW_P50_BUDGET_MS = 1.0  # what a 100 % shadow may add to the p50 at c=1 (its req/s cost is reported)
NGINX_SHARE_BUDGET = 0.10  # nginx's share of the stack's CPU per request (replicas + nginx) at c=16
REPLICAS_VS_DIRECT_BUDGET = 0.10  # the stack's replicas' CPU per request over one replica direct's, at c=16
BATCHING_IDLE_TOLERANCE = 0.03  # at c=1 batching on stays within 3 % of off, in req/s and in p99
BATCHING_GAIN = 1.5  # and at c >= 16 serves at least 1.5 times off's req/s
RELOAD_GROWTH_BUDGET_PCT = 5.0  # memory growth from reload cycle 10 to the last, % of cycle 10's


def batching_verdict(c: int, rps: float, p99: float | None) -> str:
    """Batching on vs off in paired rounds: free when one request at a time, a gain under load."""
    if c == 1:
        free = rps >= 1 - BATCHING_IDLE_TOLERANCE and p99 is not None and p99 <= 1 + BATCHING_IDLE_TOLERANCE
        return f"{ok(free)} target within {BATCHING_IDLE_TOLERANCE:.0%} in req/s and p99"
    return f"{ok(rps >= BATCHING_GAIN)} target ≥ {BATCHING_GAIN}×"


def runs_of(results: dict[str, Any], key: str) -> dict[int, dict[str, Any]]:
    return {run["concurrency"]: run for run in (results.get("systems", {}).get(key) or {}).get("runs", [])}


def compared_keys(results: dict[str, Any]) -> list[str]:
    present = results.get("systems", {})
    return [k for k in ORDER if k in present] + [k for k in present if k not in ORDER and k not in GUARD]


def at(runs: dict[int, dict[str, Any]], c: int, *path: str) -> Any:
    value: Any = runs.get(c)
    for part in path:
        value = None if value is None else value.get(part)
    return value


def table(header: str, rows: list[str]) -> str:
    """A Markdown table; a header cell ending in ``:`` is right-aligned."""
    cells = [cell.strip() for cell in header.split("|")]
    align = " | ".join("---:" if cell.endswith(":") else "---" for cell in cells)
    return "\n".join([f"| {' | '.join(cell.removesuffix(':') for cell in cells)} |", f"| {align} |", *rows])


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio_text(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.2f}×"


def delta_text(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a - b:+.2f} ms"


def spread_ratio(paired: dict[str, Any]) -> str:
    return f"{paired['median']:.2f}× [{paired['min']:.2f}–{paired['max']:.2f}]"


def spread_change(paired: dict[str, Any]) -> str:
    return f"{paired['median'] - 1:+.1%} [{paired['min'] - 1:+.1%} … {paired['max'] - 1:+.1%}]"


def ok(passed: bool) -> str:
    return "✅" if passed else "❌"


def cpu_us(run: dict[str, Any] | None, prefix: str = "") -> float | None:
    """CPU µs per answered request of the system under test (of its components named ``prefix``...)."""
    if not run or not run.get("rps"):
        return None
    return sum(v for k, v in run["cpu"]["components_cores"].items() if k.startswith(prefix)) / run["rps"] * 1e6


def beats(comparison: dict[str, Any], target: float) -> bool:
    """At least ``target`` times MLServer's req/s and a lower p99 (paired medians)."""
    p99 = comparison["p99_paired"]["median"]
    return comparison["rps_paired"]["median"] >= target and p99 is not None and p99 < 1


def feature_ok(ratio: float) -> bool:
    """A feature costs at most FEATURE_BUDGET of the baseline's req/s (``ratio``: the row's over the baseline's)."""
    return ratio >= 1 - FEATURE_BUDGET


def errors_text(run: dict[str, Any]) -> str:
    errors = run["errors"]
    parts = [f"{k.replace('_', '-')} {v}" for k, v in errors.items() if k != "total" and v]
    return f"**{errors['total']}** ({', '.join(parts)})" if errors["total"] else "0"


def memory_text(run: dict[str, Any]) -> str:
    memory = run.get("memory_mid_run") or {}
    if "process tree" in memory:
        return f"{memory['process tree']['resident_mib']:.0f} ({memory['process tree'].get('processes', '?')} proc.)"
    mib = {k: v.get("resident_mib", v.get("usage_mib", 0)) for k, v in memory.items()}
    text = " / ".join(f"{v:.0f}" for k, v in mib.items() if k.startswith("model-") or k == "replica")
    return (text + (f" (nginx {mib['nginx-1']:.0f})" if "nginx-1" in mib else "")) or "–"


def reload_memory(cycles: dict[str, Any]) -> str:
    """The replica's memory over the reload cycles, judged on the growth after the first ones."""

    def mib(key: str) -> str:
        return fmt((cycles.get(key) or {}).get("replica", {}).get("resident_mib"), 0)

    growth, before, after = cycles.get("growth_after_warm"), mib("memory_before"), mib("memory_after")
    if not growth:
        return (f"memory of the replica with 2 x 2 loaded: {before} MiB; after {cycles['cycles']} reload cycles "
                f"({cycles['seconds']} s): {after} MiB")  # fmt: skip
    first, last = growth["from_cycle"], growth["to_cycle"]
    return (
        f"{ok(growth['pct_of_warm'] <= RELOAD_GROWTH_BUDGET_PCT)} memory of the replica over {last} reload cycles "
        f"({cycles['seconds']} s): {before} MiB with 2 x 2 loaded, {mib('memory_warm')} MiB after {first} cycles "
        f"(each worker's first reloads load its own copies), {after} MiB after {last}: {growth['mib']:+.1f} MiB "
        f"from cycle {first} to {last}, {growth['pct_of_warm']:+.1f} % of cycle {first}'s, "
        f"{growth['mib_per_cycle']:.2f} MiB per cycle (budget +{RELOAD_GROWTH_BUDGET_PCT:.0f} %)"
    )


class Report:
    def __init__(self, results: dict[str, Any]) -> None:
        self.r, self.s, self.env = results, results.get("settings", {}), results.get("environment", {})
        self.conc, self.limit = self.s.get("concurrency", [1, 16, 64]), self.s.get("disturbed_cores", 0.3)
        self.keys = compared_keys(results)
        self.stack, self.direct, self.tut = (runs_of(results, k) for k in ("stack", "direct-all", "tutorial"))

    def markdown(self) -> str:
        warnings = self.warnings()
        blocks = self.header() + (["Warnings:", "\n".join(f"- ⚠ {w}" for w in warnings)] if warnings else [])
        blocks += self.results_table() + self.kinds_section() + self.ratios_section()
        blocks += self.paired_section()
        return "\n\n".join(blocks + self.guard_section() + self.settings_section() + self.failures(warnings)) + "\n"

    def paired(self, group: str, key: str) -> dict[str, Any] | None:
        """``key``'s comparison in a group's paired rounds that measured it, or None."""
        comparison = (((self.r.get("paired_rounds") or {}).get(group) or {}).get("comparisons") or {}).get(key)
        return comparison if comparison and comparison["rps_paired"]["median"] is not None else None

    def how(self, comparison: dict[str, Any], group: str) -> str:
        rounds = sum(r is not None for r in comparison["rps_paired"]["per_round"])
        return f"median of {rounds} paired rounds at c={self.r['paired_rounds'][group]['concurrency']}"

    def header(self) -> list[str]:
        r, env, cores = self.r, self.env, self.env.get("logical_cpus", "?")
        overrides = "".join(f" {k}={v}" for k, v in self.s.get("env_overrides", {}).items())
        return [
            "# Benchmark: tutorial app vs model-server vs full stack vs MLServer",
            f"Run `{r.get('bench_id')}`: {r.get('started', '?')} → {r.get('finished', '?')} "
            f"({r.get('elapsed_s', 0) / 60:.1f} min, `make bench`{overrides}).",
            f"**Machine: {env.get('cpu_model', '?')}, {cores} cores — shared by the system under test and the load "
            f"generator (wrk), so every number here is for a system that had at most {cores} cores minus wrk's share** "
            f"(column *wrk CPU*). {env.get('memory_total_gib', '?')} GiB RAM, {env.get('os', '?')}, kernel "
            f"{env.get('kernel', '?')}, Docker {env.get('docker', '?')}, Compose {env.get('docker_compose', '?')}, "
            f"{env.get('wrk', 'wrk')}.",
        ]

    def warnings(self) -> list[str]:
        warnings = []
        if others := self.r.get("machine_at_start", {}).get("other_containers"):
            warnings.append(
                f"the machine is shared: other containers were running when the run started ({len(others)}: "
                f"{', '.join(others[:6])}{' …' if len(others) > 6 else ''}); see the *other* CPU column"
            )
        for key in self.keys:
            system, name = self.r["systems"][key], SHORT.get(key, key)
            if (before := system.get("machine_before", {})) and not before.get("idle", True):
                warnings.append(f"{name}: the machine was still busy ({before.get('busy_cores')} cores) after waiting "
                                f"{before.get('waited_s')} s for it to be idle; other containers then: "
                                f"{len(before.get('other_containers', []))}")  # fmt: skip
            warnings += [f"{name} FAILED: {system.get('error', '?')}"] if system.get("status") != "ok" else []
        for name, section in (self.r.get("paired_rounds") or {}).items():
            if section.get("status") == "failed":
                warnings.append(f"paired rounds ({section.get('title', name)}) FAILED: {section.get('error', '?')}")
            warnings += [
                f"paired rounds: {SHORT.get(key, key)} had {r['errors']} errors in round {r['round']}"
                for key, system in (section.get("systems") or {}).items()
                for r in system["rounds"]
                if r["errors"]
            ]
        return warnings + ([f"the run stopped early: {self.r['error']}"] if self.r.get("error") else [])

    def results_table(self) -> list[str]:
        rows = []
        for key in self.keys:
            runs, name = runs_of(self.r, key), SHORT.get(key, key)
            rows += [] if runs else [f"| {name} | – | failed | | | | | | | | |"]
            for c, run in sorted(runs.items()):
                lat, cpu = run["latency_ms"], run["cpu"]
                rows.append(
                    f"| {name} | {c} | {run['rps']:,.0f}{' ⚠' if cpu.get('other_cores', 0) > self.limit else ''} | "
                    f"{lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} | {errors_text(run)} | "
                    f"{cpu['sut_cores']:.2f} / {cpu.get('engine_cores', 0):.2f} / {cpu['wrk_cores']:.2f} / "
                    f"{cpu['other_cores']:.2f} | {fmt(run.get('rps_per_core'), 0)} | {memory_text(run)} |"
                )
        header = ("system | c: | req/s: | p50 ms: | p95 ms: | p99 ms: | max ms: | errors | CPU cores: SUT / engine / "
                  "wrk / other: | req/s per core: | memory MiB")  # fmt: skip
        return [
            "![req/s and p99 latency per system and concurrency](latest.png)",
            "## Results",
            f"One row per POST; {self.s.get('wrk', '')}. Columns: bench/README.md, *What it measures*. ⚠: other "
            f"processes used more than {self.limit} cores during that run.",
            table(header, rows),
        ]

    def ratios_section(self) -> list[str]:
        stack, direct, tut = self.stack, self.direct, self.tut
        rows = []
        for c in self.conc:
            s_rps, d_rps, t_rps = (at(runs, c, "rps") for runs in (stack, direct, tut))
            s_p99, d_p99, t_p99 = (at(runs, c, "latency_ms", "p99") for runs in (stack, direct, tut))
            s_p50, d_p50 = at(stack, c, "latency_ms", "p50"), at(direct, c, "latency_ms", "p50")
            us = [cpu_us(direct.get(c)), cpu_us(stack.get(c), "model"), cpu_us(stack.get(c), "nginx")]
            rows.append(
                f"| {c} | {ratio_text(s_rps, d_rps)} | {delta_text(s_p50, d_p50)} | {delta_text(s_p99, d_p99)} | "
                f"{ratio_text(s_rps, t_rps)} | {ratio_text(s_p99, t_p99)} | {' | '.join(fmt(u, 0) for u in us)} |"
            )
        header = ("c: | nginx overhead: stack / direct req/s: | stack − direct p50: | stack − direct p99: | stack / "
                  "tutorial req/s: | stack / tutorial p99: | CPU µs (b-all): | (c) replicas: | (c) nginx:")  # fmt: skip
        return ["## Ratios", "Against MLServer: *Model kinds*. CPU: cgroup time ÷ req/s in these single runs; the "
                "verdicts: *Performance guard*.", table(header, rows), "*nginx overhead* compares (c) with (b-all): "
                "one replica on the stack's repository and settings, with its total gunicorn workers and the CPU its "
                "replicas can use together: the difference is nginx's hop (and the split into 3)."]  # fmt: skip

    def paired_section(self) -> list[str]:
        if not (groups := self.r.get("paired_rounds") or {}):
            return []
        blocks = [
            "## Paired rounds",
            "The decisive comparisons (bench/README.md, *Paired rounds*): verdicts use the median of the per-round "
            "ratios, median [min–max]; *others up*: the cores the frozen systems used (median; about 0: the freeze "
            f"held). ⚠: other processes used more than {self.limit} cores.",
        ]
        for name, section in groups.items():
            title, change = section.get("title", name), name == "guard"
            if section.get("status") in ("skipped", "not run"):
                blocks.append(f"**{title}**: {section['status']} — {section.get('note', '?')}.")
                continue
            rows = []
            for key, system in section["systems"].items():
                rounds, comparison = system["rounds"], self.paired(name, key)
                cells = [
                    GUARD.get(key, SHORT.get(key, key)),
                    " · ".join(f"{r['rps']:,.0f}{' ⚠' if r['other_cores'] > self.limit else ''}" for r in rounds)
                    or "–",
                    fmt(system["median_rps"], 0),
                    fmt(system["median_p99_ms"]),
                    fmt(median(r["bystander_cores"] for r in rounds) if rounds else None),
                ]
                if comparison is None:
                    cells += ["", "", "", "reference" if key == section["reference"] else "–"]
                else:
                    of_medians, rps, p99 = (comparison[k] for k in ("rps_ratio_of_medians", "rps_paired", "p99_paired"))
                    if target := next((kind[3] for kind in KINDS.values() if kind[0] == name), None):
                        verdict = f"{ok(beats(comparison, target))} target ≥ {target:.0f}×, lower p99"
                    elif name.startswith("batching-c"):
                        verdict = batching_verdict(section["concurrency"], rps["median"], p99["median"])
                    elif key in BUDGETED:
                        verdict = f"{ok(feature_ok(rps['median']))} budget −{FEATURE_BUDGET:.0%}"
                    else:
                        verdict = "noise floor" if key == CONTROL else "reported"
                    cells += [f"{of_medians - 1:+.1%}" if change else f"{of_medians:.2f}×",
                              spread_change(rps) if change else spread_ratio(rps),
                              spread_ratio(p99) if p99["median"] else "–", verdict]  # fmt: skip
                rows.append("| " + " | ".join(cells) + " |")
            orders = "; ".join(f"{i} " + " → ".join(order) for i, order in enumerate(section["order"], 1))
            measure = "req/s change" if change else "req/s ratio"
            header = (f"system | req/s per round | median req/s: | median p99 ms: | others up, cores: | {measure} of "
                      f"medians: | {measure}, paired: median [min–max]: | p99 ratio, paired: | verdict")  # fmt: skip
            blocks += [
                f"**{title}**, c={section['concurrency']}: {section['rounds']} rounds of {section['round_duration_s']} "
                f"s after a {section['warmup_s']} s warm-up per system (order: {orders}).",
                table(header, rows),
                *(
                    [f"⚠ the rounds stopped early: {section.get('error', '?')}"]
                    if section["status"] == "failed"
                    else []
                ),
            ]
        return blocks

    def guard_rows(self) -> list[dict[str, Any]]:
        """Each guard row against the baseline: req/s at c=16, p50 at c=1 and their changes, CPU, memory."""
        base, rows = runs_of(self.r, BASELINE), []
        for key in (key for key in GUARD if key in self.r.get("systems", {})):
            runs = runs_of(self.r, key)
            rps, base_rps, p50 = at(runs, 16, "rps"), at(base, 16, "rps"), at(runs, 1, "latency_ms", "p50")
            base_p50 = at(base, 1, "latency_ms", "p50")
            memory = (runs.get(16) or {}).get("memory_mid_run", {}).get("replica", {})
            rows.append({
                "key": key, "status": self.r["systems"][key].get("status"), "rps_c16": rps,
                "rps_change": round(rps / base_rps - 1, 4) if rps and base_rps else None, "p50_c1_ms": p50,
                "p50_change_ms": None if p50 is None or base_p50 is None else round(p50 - base_p50, 3),
                "cpu_us_c16": cpu_us(runs.get(16)),
                "memory_mib": memory.get("resident_mib", memory.get("usage_mib")),
                "reload_cycles": self.r["systems"][key].get("reload_cycles"),
            })  # fmt: skip
        return rows

    def guard_section(self) -> list[str]:
        if not (rows := self.guard_rows()):
            return []
        lines, verdicts = [], []
        for row in rows:
            change = "–" if row["rps_change"] is None else f"{row['rps_change']:+.1%}"
            p50_change = "–" if row["p50_change_ms"] is None else f"{row['p50_change_ms']:+.2f} ms"
            lines.append(
                f"| {GUARD[row['key']]} | failed | | | | | |"
                if row["status"] != "ok"
                else f"| {GUARD[row['key']]} | {fmt(row['rps_c16'], 0)} | {change} | {fmt(row['p50_c1_ms'])} | "
                f"{p50_change} | {fmt(row['cpu_us_c16'], 0)} | {fmt(row['memory_mib'], 0)} |"
            )
            shadow = self.paired("guard", row["key"]) if row["key"] == "f-shadow" else None
            if shadow and row["p50_change_ms"] is not None:
                verdicts.append(
                    f"{ok(row['p50_change_ms'] <= SHADOW_P50_BUDGET_MS)} 100 % shadow: p50 at c=1 "
                    f"{row['p50_change_ms']:+.2f} ms (single run; budget +{SHADOW_P50_BUDGET_MS:.0f} ms); it runs the "
                    f"model twice: {spread_change(shadow['rps_paired'])} of the baseline's req/s "
                    f"({self.how(shadow, 'guard')})"
                )
            verdicts += [reload_memory(row["reload_cycles"])] if row.get("reload_cycles") else []
        if split := self.cpu_split():
            share, over, total = split["share"], split["over"], split["replicas"] + split["nginx"]
            verdicts += [
                f"{ok(share[0] <= NGINX_SHARE_BUDGET)} nginx: {split['nginx']:.0f} µs of CPU per proxied request, "
                f"{share[0]:.1%} [{share[1]:.1%}–{share[2]:.1%}] of the stack's {total:,.0f} µs ({split['how']}; "
                f"budget {NGINX_SHARE_BUDGET:.0%})",
                f"{ok(over[0] <= REPLICAS_VS_DIRECT_BUDGET)} the stack's replicas: {split['replicas']:,.0f} µs of CPU "
                f"per request against {split['direct']:,.0f} µs for one replica on the same models, {over[0]:+.0%} "
                f"[{over[1]:+.0%} … {over[2]:+.0%}] ({split['how']}; target within +{REPLICAS_VS_DIRECT_BUDGET:.0%})",
            ]
        header = "row | req/s c=16: | change: | p50 c=1 ms: | change: | CPU µs/request c=16: | memory MiB (replica):"
        return [
            "## Performance guard",
            "One replica (b) per row, one request-path feature on (bench/README.md, *Performance guard*); the full "
            "stack (c) runs with **every feature on**. Change: against the baseline row. The table holds single runs; "
            "the verdicts below use the paired rounds.",
            table(header, lines),
            *(["\n".join(f"- {v}" for v in verdicts)] if verdicts else []),
        ]

    def cpu_split(self) -> dict[str, Any] | None:
        """CPU µs per request in the ``replicas`` rounds, medians: (b-all)'s, (c)'s replicas', (c)'s nginx's; per
        round, nginx's share of (c) and (c)'s replicas over (b-all), as (median, min, max). None without them."""
        section = (self.r.get("paired_rounds") or {}).get("replicas") or {}
        both = [(section.get("systems") or {}).get(key, {}).get("rounds", []) for key in ("direct-all", "stack")]
        rounds = [r for b, c in zip(*both, strict=False) if None not in (r := (cpu_us(b), cpu_us(c, "model"),
                                                                                 cpu_us(c, "nginx")))]  # fmt: skip
        if not rounds:
            return None
        shares, overs = [n / (m + n) for _, m, n in rounds], [m / b - 1 for b, m, _ in rounds]
        direct, replicas, nginx = (median(values) for values in zip(*rounds, strict=True))
        return {"direct": direct, "replicas": replicas, "nginx": nginx,
                "share": (median(shares), min(shares), max(shares)), "over": (median(overs), min(overs), max(overs)),
                "how": f"median of {len(rounds)} paired rounds at c={section['concurrency']}"}  # fmt: skip

    def kinds_section(self) -> list[str]:
        """The model kinds side by side: each stack and MLServer on the same model and request, req/s and CPU."""
        rows = []
        for kind, (_, stack_key, ml_key, _, what) in KINDS.items():
            stack, ml = runs_of(self.r, stack_key), runs_of(self.r, ml_key)
            for c in sorted(set(stack) | set(ml)):
                s_rps, m_rps = at(stack, c, "rps"), at(ml, c, "rps")
                s_p99, m_p99 = at(stack, c, "latency_ms", "p99"), at(ml, c, "latency_ms", "p99")
                rows.append(
                    f"| {kind}: {what} | {c} | {fmt(s_rps, 0)} | {fmt(cpu_us(stack.get(c), 'model'), 0)} + "
                    f"{fmt(cpu_us(stack.get(c), 'nginx'), 0)} | {fmt(s_p99)} | {fmt(m_rps, 0)} | "
                    f"{fmt(cpu_us(ml.get(c)), 0)} | {fmt(m_p99)} | {ratio_text(s_rps, m_rps)} | "
                    f"{ratio_text(s_p99, m_p99)} |"
                )
        if not rows:
            return []
        header = ("model kind | c: | stack req/s: | stack CPU µs/request, replicas + nginx: | stack p99 ms: | MLServer "
                  "req/s: | MLServer CPU µs/request: | MLServer p99 ms: | req/s ratio: | p99 ratio:")  # fmt: skip
        return [
            "## Model kinds",
            "Each kind's stack and MLServer on the same model and body (bench/README.md, *Model kinds*); the stack "
            "serves every kind from one repository with every feature on. Single runs; the verdicts: *Paired rounds*.",
            table(header, rows),
        ]

    def settings_section(self) -> list[str]:
        s, env, systems = self.s, self.env, self.r.get("systems", {})
        groups = "; ".join(f"{k}: {', '.join(g['compared'])} vs {g['reference']} at c={g['c']}"
                           for k, g in s.get("groups", {}).items())  # fmt: skip
        reached = [
            k for k in sorted(systems, key=lambda k: ORDER.index(k) if k in ORDER else 9) if "address" in systems[k]
        ]
        listed = "; ".join(f"{SHORT.get(k, k)} `{a['host']}:{a['port']}` ({a['where']})" for k in reached
                           for a in [systems[k]["address"]])  # fmt: skip
        lines = [
            f"- Load generator: {s.get('wrk', '')}; systems measured one at a time, in this order: "
            f"{', '.join(s.get('systems_order', []))}.",
            f"- Paired rounds: {s.get('rounds')} rounds of {s.get('round_duration')} s after a "
            f"{s.get('round_warmup')} s warm-up, per system per round ({groups or 'no group'}).",
            f"- Addresses: {listed} — loopback, or containers this run started (read with `docker inspect`).",
            f"- (c) full stack: {s.get('replicas')} replicas × {s.get('workers_per_replica')} gunicorn gevent worker, "
            f"{s.get('model_cpus')} CPU and {s.get('model_memory')} per replica (compose defaults). **nginx rate limit "
            f"raised to {s.get('rate_limit')}, burst {s.get('rate_burst')}** (defaults 100r/s, burst 200): wrk is "
            "one client address.",
            "- (b) one replica direct: the same image, `docker run` with the compose service's environment and "
            f"hardening, {s.get('direct_workers')} gevent workers, `--cpus {s.get('direct_cpus')}`, `--memory "
            f"{s.get('direct_memory')}`: the stack's workers and the CPU its replicas can use together.",
        ]
        if ml := (systems.get("mlserver") or {}).get("settings", {}):
            venv = env.get("mlserver_venv", {})
            lines.append(
                f"- (d) MLServer {venv.get('mlserver', '?')} on Python {venv.get('python', '?')}: `mlserver start` "
                f"with its defaults (parallel_workers {ml.get('parallel_workers') or 'its default'}, adaptive batching "
                "off), `SKLearnModel`; on the XGBoost model `XGBoostModel`, which answers its class index."
            )
        if tutorial := (systems.get("tutorial") or {}).get("settings", {}):
            flask, python = env.get("bench_packages", {}).get("Flask", "?"), env.get("bench_python", "?")
            server = tutorial.get("server")
            lines.append(f"- (a) tutorial app (`bench/tutorial_app.py`): {server}; Flask {flask}, Python {python}.")
        if model := self.r.get("model", {}):
            lines.append(
                f"- Model: {model.get('estimator')} {model.get('params')} from `{model.get('source')}` (sha256 "
                f"`{str(model.get('sha256', ''))[:12]}…`), a pickle for the tutorial, a joblib file for MLServer; "
                f"every system answered all {model.get('check_rows')} check rows like it, before and after its "
                "measurement."
            )
        if tabular := self.r.get("model", {}).get("tabular"):
            lines.append(
                f"- Tabular model: {tabular['pipeline']} fitted by the benchmark on the penguins columns "
                f"{', '.join(f'{c} ({t})' for c, t in tabular['columns'].items())} ({tabular['source']}); every "
                f"tabular system answered all {tabular['check_rows']} complete rows like it, before and after."
            )
        if boosted := self.r.get("model", {}).get("boosted"):
            lines.append(f"- XGBoost model: {boosted['model']}, fitted by the benchmark on the breast cancer data "
                         f"(harness/boosted.py), its `{boosted['file']}` in both repositories; every XGBoost system "
                         f"answered all {boosted['check_rows']} rows like it, before and after.")  # fmt: skip
        lines += [f"- Extra model-server env (BENCH_MODEL_ENV): `{s['model_env']}`."] if s.get("model_env") else []
        return ["## Settings", "\n".join([*lines, f"- Batching: {s.get('batching', {}).get('note', '–')}."])]

    def failures(self, warnings: list[str]) -> list[str]:
        anomalies = []
        for key in self.keys:
            system, name = self.r["systems"][key], SHORT.get(key, key)
            anomalies += [f"{name}: failed — {system.get('error')}"] if system.get("status") != "ok" else []
            anomalies += [f"{name} at c={run['concurrency']}: {errors_text(run)} errors out of "
                          f"{run['requests'] + run['errors']['total'] - run['errors']['non_2xx']}"
                          for run in system.get("runs", []) if run["errors"]["total"]]  # fmt: skip
            for run in system.get("runs", []):
                quota = run["cpu"].get("cfs_quota_throttling", {}).items()
                if throttled := ", ".join(f"{k} {v['throttled_pct']:.0f}% of periods ({v['throttled_s']:.1f} s)"
                                          for k, v in quota if v["throttled_pct"] >= 5):  # fmt: skip
                    anomalies.append(
                        f"{name} at c={run['concurrency']}: CPU quota (`--cpus`/`MODEL_CPUS`) throttled {throttled}: a "
                        "throttled replica's requests wait for its next 100 ms CFS period"
                    )
        listed = [f"- {a}" for a in dict.fromkeys(anomalies + warnings)] or ["- none: no errors, every system up."]
        return [
            "## Failures and anomalies",
            "\n".join(listed),
            "Raw numbers, versions and every setting: `latest.json`; wrk's own output and the servers' logs of the "
            "last run: `bench/results/tmp/` (not committed).",
        ]


def main(argv: list[str]) -> int:
    json_path = Path(argv[0]) if argv else BENCH_DIR / "results" / "latest.json"
    results = json.loads(json_path.read_text())
    report = Report(results)
    json_path.with_suffix(".md").write_text(report.markdown())
    if series := [(key, SHORT.get(key, key), runs) for key in report.keys if (runs := runs_of(results, key))]:
        chart.render_png(results, series, json_path.with_suffix(".png"))
    print(f"wrote {json_path.with_suffix('.md')} and the chart next to it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
