"""Prometheus scrapes every replica directly and holds the request count the client sent."""

from harness.load import send_load

from .stack import Stack, wait_for

REQUESTS = 500
PREDICT_TOTAL = 'sum(model_server_requests_total{job="model",route="/predict",status="200"})'


def test_every_replica_is_an_up_target(stack: Stack) -> None:
    replicas = stack.replica_ips()

    def all_up() -> bool:
        targets = stack.active_targets("model")
        return {t["labels"]["instance"].removesuffix(":8000") for t in targets if t["health"] == "up"} == set(replicas)

    wait_for("every model replica to be an up target", all_up, timeout=60)
    up = stack.query('up{job="model"} == 1')
    assert {r["metric"]["instance"].removesuffix(":8000") for r in up} == set(replicas)


def test_prometheus_count_matches_what_the_client_sent(stack: Stack) -> None:
    # Let Prometheus catch up with earlier tests' traffic before taking the baseline: the same
    # value three polls (two scrape intervals) in a row.
    seen: list[float] = []

    def stable() -> float | None:
        seen.append(stack.scalar(PREDICT_TOTAL))
        return seen[-1] if len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3] else None

    baseline = wait_for("the request count to settle", stable, timeout=60, interval=5)
    result = send_load(f"{stack.nginx_url}/predict", REQUESTS, concurrency=8)
    assert result.failed == 0, result.statuses

    def caught_up() -> float | None:
        delta = stack.scalar(PREDICT_TOTAL) - baseline
        return delta if delta >= REQUESTS * 0.99 else None

    delta = wait_for("Prometheus to scrape the new requests", caught_up, timeout=60, interval=2)
    assert abs(delta - REQUESTS) <= REQUESTS * 0.01, f"Prometheus counted {delta}, the client sent {REQUESTS}"
