"""nginx spreads requests evenly over the replicas, as each replica's own /metrics confirms."""

import re

from harness.load import send_load

from .stack import Stack

REQUESTS = 600


def predict_count(metrics_text: str) -> float:
    match = re.search(r'^model_server_requests_total\{[^}]*route="/predict"[^}]*status="200"[^}]*\} (\S+)$',
                      metrics_text, re.MULTILINE)  # fmt: skip
    return float(match.group(1)) if match else 0.0


def test_600_requests_reach_all_3_replicas_evenly(stack: Stack) -> None:
    replicas = stack.replica_ips()
    assert len(replicas) == 3
    before = {ip: predict_count(stack.replica_metrics(c)) for ip, c in replicas.items()}

    result = send_load(f"{stack.nginx_url}/predict", REQUESTS, concurrency=4)
    assert result.failed == 0, result.statuses

    by_header = dict(result.upstreams)
    assert set(by_header) == set(replicas), f"answered by {by_header}, replicas are {list(replicas)}"
    after = {ip: predict_count(stack.replica_metrics(c)) for ip, c in replicas.items()}
    for ip in replicas:
        share = by_header[ip] / REQUESTS
        assert abs(share - 1 / 3) <= 0.10, f"{ip} got {share:.1%} of the requests"
        # The replica counted exactly the requests the header says it answered.
        assert after[ip] - before[ip] == by_header[ip], (ip, before[ip], after[ip], by_header[ip])
