"""Killing a replica under load loses no request: nginx retries on the next replica."""

import threading
import time

from harness.load import send_load

from .stack import Stack, run, wait_for

REQUESTS = 2000
CONCURRENCY = 16


def test_kill_a_replica_under_load_fails_nothing(stack: Stack) -> None:
    replicas = stack.replica_ips()
    assert len(replicas) == 3
    victim = sorted(replicas.values())[-1]

    def kill_soon() -> None:
        time.sleep(1.0)  # mid-load
        run(["docker", "kill", victim], timeout=30)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    try:
        result = send_load(f"{stack.nginx_url}/predict", REQUESTS, CONCURRENCY)
    finally:
        killer.join()
        run(["docker", "start", victim], timeout=60)
    assert result.sent == REQUESTS
    assert result.failed == 0, f"{result.failed} failed: {dict(result.statuses)}; {result.errors[:3]}"
    survivors = set(result.upstreams) - {stack.ip_of(victim)}
    assert len(survivors) == 2, result.upstreams
    wait_for("the killed replica to be healthy again",
             lambda: stack.inspect(victim)["State"]["Health"]["Status"] == "healthy" or None, 90)  # fmt: skip
