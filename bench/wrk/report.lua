-- Loaded by request.lua (wrk runs with bench/wrk as its working directory): at the
-- end of a run, one line "BENCH_JSON {...}" with wrk's exact counters and latency percentiles
-- (microseconds), which bench/benchmark/measure.py reads instead of parsing wrk's rounded text summary.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, ' ..
    '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, ' ..
    '"latency_us": {"min": %.1f, "mean": %.1f, "stdev": %.1f, "max": %.1f, ' ..
    '"p50": %.1f, "p90": %.1f, "p95": %.1f, "p99": %.1f, "p99_9": %.1f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)))
end
