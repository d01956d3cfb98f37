"""Render the benchmark's JSON as Markdown (tables, ratios) and a PNG (grouped bars: req/s and p99).

``python bench/report.py [bench/results/latest.json]`` writes ``latest.md`` and ``latest.png`` next
to the JSON; bench/run calls it after the run (python -m bench.benchmark), and it can re-render an old result file.
The rendering lives in ``bench/benchmark/report_*.py``: :mod:`report_markdown` (the Markdown
document), :mod:`report_tables` (its tables and sections), :mod:`report_paired` (the paired rounds),
:mod:`report_guard` (the performance guard), :mod:`report_png` and :mod:`report_common` (what they share).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, for bench.benchmark

from bench.benchmark.report_common import compared_keys, runs_of
from bench.benchmark.report_markdown import render_markdown
from bench.benchmark.report_png import render_png
from bench.benchmark.report_tables import ratios


def main(argv: list[str]) -> int:
    json_path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    results = json.loads(json_path.read_text())
    results["ratios"] = ratios(results)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(render_markdown(results))
    written = [json_path.with_suffix(".md")]
    if any(runs_of(results, k) for k in compared_keys(results)):
        render_png(results, json_path.with_suffix(".png"))
        written.append(json_path.with_suffix(".png"))
    print("wrote " + " and ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
