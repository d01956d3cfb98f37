"""Scaling to 5 replicas is picked up by nginx and Prometheus without restarting either."""

import time

from tests.load import send_load

from .stack import Stack, wait_for


def started_at(stack: Stack, service: str) -> tuple[str, str]:
    (container,) = stack.container_ids(service)
    return container, stack.inspect(container)["State"]["StartedAt"]


def test_scale_to_5_and_back(stack: Stack) -> None:
    nginx_before, prometheus_before = started_at(stack, "nginx"), started_at(stack, "prometheus")
    stack.up("--scale", "model=5", "--no-recreate")
    scaled_at = time.monotonic()
    try:
        replicas = stack.replica_ips()
        assert len(replicas) == 5

        def traffic_on_all_5() -> bool | None:
            result = send_load(f"{stack.nginx_url}/predict", 100, concurrency=4)
            seen = set(result.upstreams)
            return (result.failed == 0 and seen == set(replicas)) or None

        def five_targets() -> bool | None:
            up = [t for t in stack.active_targets("model") if t["health"] == "up"]
            return {t["labels"]["instance"].removesuffix(":8000") for t in up} == set(replicas) or None

        wait_for("nginx to spread traffic over 5 replicas", traffic_on_all_5, timeout=30, interval=1)
        wait_for("Prometheus to scrape 5 targets", five_targets, timeout=max(1, 30 - (time.monotonic() - scaled_at)))
        print(f"\n[e2e] 5 replicas served and scraped {time.monotonic() - scaled_at:.0f}s after scaling")
        assert started_at(stack, "nginx") == nginx_before, "nginx was restarted"
        assert started_at(stack, "prometheus") == prometheus_before, "Prometheus was restarted"
    finally:
        stack.up("--scale", "model=3", "--no-recreate")
    assert len(stack.replica_ips()) == 3
    result = send_load(f"{stack.nginx_url}/predict", 300, concurrency=8)
    assert result.failed == 0, result.statuses
    assert len(result.upstreams) == 3
