"""The report's chart (``latest.png``): grouped bars of req/s and p99 per system and concurrency; ``series`` holds
(key, label, runs by concurrency) per system, in the report's order."""

from pathlib import Path
from typing import Any

COLORS = {"tutorial": "#9e9e9e", "direct": "#64b5f6", "direct-nobatch": "#bbdefb", "stack": "#1565c0",
          "mlserver": "#ef6c00", "stack-tabular": "#2e7d32", "mlserver-tabular": "#ffb74d", "stack-boosted": "#6a1b9a",
          "mlserver-boosted": "#e57373"}  # fmt: skip


def render_png(results: dict[str, Any], series: list[tuple[str, str, dict[int, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc, env = results.get("settings", {}).get("concurrency", [1, 16, 64]), results.get("environment", {})
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(1, len(series))
    titles = ("throughput (2xx req/s, higher is better)", "p99 latency (ms, log scale, lower is better)")
    for ax, rps, title in zip(axes, (True, False), titles, strict=True):
        for i, (key, label, runs) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j, c in enumerate(conc) if c in runs]
            ys = [runs[c]["rps"] if rps else runs[c]["latency_ms"]["p99"] for c in conc if c in runs]
            bars = ax.bar(xs, ys, width, label=label, color=COLORS.get(key))
            ax.bar_label(bars, [f"{y:,.0f}" if rps else f"{y:.1f}" for y in ys], fontsize=7, padding=2, rotation=90)
        ax.set_xticks(range(len(conc)), [f"c={c}" for c in conc])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.set_yscale("linear" if rps else "log")
        ax.margins(y=0.25)
    axes[0].legend(fontsize=8, loc="upper left")
    duration = results.get("settings", {}).get("duration")
    fig.suptitle(f"one row per POST, wrk, {duration} s per point — {env.get('cpu_model', '?')}, "
                 f"{env.get('logical_cpus', '?')} cores shared with the load generator", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
