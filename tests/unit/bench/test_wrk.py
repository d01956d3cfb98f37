"""bench.benchmark.wrk: the command line and the reading of report.lua's BENCH_JSON line."""

import re
from pathlib import Path

import pytest

from bench.benchmark.wrk import WrkOutputError, command, parse, summary, threads
from tests.support.addresses import Target

REPORT_LUA = Path(__file__).resolve().parents[3] / "bench" / "wrk" / "report.lua"

# What wrk prints with --latency and report.lua (its own summary first, then done()'s line).
OUTPUT = """Running 3s test @ http://127.0.0.1:40123/predict
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.01ms    2.10ms  40.12ms   90.00%
  Latency Distribution
     50%    7.50ms
     99%   15.20ms
  6000 requests in 3.00s, 1.01MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   2000.00
Transfer/sec:    345.00KB
BENCH_JSON {"duration_us": 3000000, "requests": 6000, "bytes": 1059000, "errors": {"connect": 0, "read": 1, \
"write": 0, "status": 12, "timeout": 2}, "latency_us": {"min": 1200.0, "mean": 8010.0, "stdev": 2100.0, \
"max": 40120.0, "p50": 7500.0, "p90": 10000.0, "p95": 12000.0, "p99": 15200.0, "p99_9": 30000.0}}
"""


def test_the_bench_json_line_is_found_after_wrks_own_summary() -> None:
    report = parse(OUTPUT)
    assert report["requests"] == 6000 and report["errors"]["status"] == 12


def test_summary_counts_2xx_answers_only_and_every_error() -> None:
    result = summary(parse(OUTPUT))
    assert result["ok"] == 6000 - 12
    assert result["rps"] == round((6000 - 12) / 3, 1) and result["rps_all_responses"] == 2000.0
    assert result["duration_s"] == 3.0
    assert result["latency_ms"]["p50"] == 7.5 and result["latency_ms"]["p99_9"] == 30.0
    assert result["errors"] == {"non_2xx": 12, "connect": 0, "read": 1, "write": 0, "timeout": 2, "total": 15}


def test_output_without_the_line_is_an_error_showing_the_output() -> None:
    with pytest.raises(WrkOutputError, match="unable to connect"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_summary_reads_every_field_report_lua_writes() -> None:
    """The Lua format string, filled with numbers, is a document summary() can read."""
    lua = REPORT_LUA.read_text()
    template = "".join(re.findall(r"'([^']*)'", lua.split("string.format(", 1)[1].split("summary.duration", 1)[0]))
    document = re.sub(r"%\.\d+f", "1000", template).removeprefix("BENCH_JSON ").replace("\\n", "")
    result = summary(parse("BENCH_JSON " + document))
    assert result["latency_ms"] == dict.fromkeys(
        ("min", "mean", "stdev", "max", "p50", "p90", "p95", "p99", "p99_9"), 1.0
    )
    assert result["errors"]["total"] == 5000


def test_the_command_targets_the_systems_own_address_with_at_most_one_thread_per_connection() -> None:
    target = Target.loopback(40123)
    assert threads(4, 1) == 1 and threads(2, 16) == 2 and threads(0, 16) == 1
    args = command(target, "/predict", "predict.lua", threads(1, 16), 16, 3, 10)
    assert args == ["wrk", "-t1", "-c16", "-d3s", "--timeout=10s", "--latency", "-s", "predict.lua",
                    "http://127.0.0.1:40123/predict"]  # fmt: skip
