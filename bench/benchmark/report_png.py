"""The report's PNG: grouped bars of req/s and p99 per system and concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report_common import COLORS, SHORT, compared_keys, runs_of


def render_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = results.get("settings", {}).get("concurrency", [1, 16, 64])
    keys = [k for k in compared_keys(results) if runs_of(results, k)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(1, len(keys))
    for ax, metric, title in (
        (axes[0], "rps", "throughput (2xx req/s, higher is better)"),
        (axes[1], "p99", "p99 latency (ms, log scale, lower is better)"),
    ):
        for i, key in enumerate(keys):
            runs = runs_of(results, key)
            xs, ys = [], []
            for j, c in enumerate(conc):
                if c in runs:
                    xs.append(j + (i - (len(keys) - 1) / 2) * width)
                    ys.append(runs[c]["rps"] if metric == "rps" else runs[c]["latency_ms"]["p99"])
            bars = ax.bar(xs, ys, width, label=SHORT.get(key, key), color=COLORS.get(key))
            labels = [f"{y:,.0f}" if metric == "rps" else f"{y:.1f}" for y in ys]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2, rotation=90)
        ax.set_xticks(range(len(conc)), [f"c={c}" for c in conc])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if metric == "p99":
            ax.set_yscale("log")
        ax.margins(y=0.25)
    axes[0].legend(fontsize=8, loc="upper left")
    env = results.get("environment", {})
    fig.suptitle(
        f"one row per POST, wrk, {results.get('settings', {}).get('duration_s')} s per point — "
        f"{env.get('cpu_model', '?')}, {env.get('logical_cpus', '?')} cores shared with the load generator",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
