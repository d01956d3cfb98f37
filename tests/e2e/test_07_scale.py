"""Scaling by MODEL_REPLICAS (README, "Scaling"), 3 -> 5 -> 3 under continuous load, fails no
request; nginx follows without a restart; no replica is re-created; and neither the scaling nor a
Compose re-creation of the replicas fires ModelReplicaDown."""

import threading
import time

from harness.load import LoadResult, send_load

from .stack import Stack, wait_for

CONCURRENCY = 8
DESIRED = "model_serving:replicas_desired"


def started_at(stack: Stack, service: str) -> tuple[str, str]:
    (container,) = stack.container_ids(service)
    return container, stack.inspect(container)["State"]["StartedAt"]


def test_scale_to_5_and_back_under_load(stack: Stack) -> None:
    nginx_before = started_at(stack, "nginx")
    original = set(stack.container_ids("model"))
    assert len(original) == 3
    window_start = time.time()
    probes: list[LoadResult] = []  # every request sent, by the background load and the probes

    done = threading.Event()
    background: dict[str, LoadResult] = {}
    loader = threading.Thread(
        target=lambda: background.update(result=send_load(f"{stack.nginx_url}/predict", 1, CONCURRENCY, until=done))
    )
    loader.start()
    try:

        def answered_by_exactly(replicas: set[str]) -> bool | None:
            result = send_load(f"{stack.nginx_url}/predict", 100, concurrency=4)
            probes.append(result)
            return set(result.upstreams) == replicas or None

        def scraped_exactly(replicas: set[str]) -> bool | None:
            up = [t for t in stack.active_targets("model") if t["health"] == "up"]
            return {t["labels"]["instance"].removesuffix(":8000") for t in up} == replicas or None

        for count in (5, 3):
            stack.up(env={"MODEL_REPLICAS": str(count)})
            scaled_at = time.monotonic()
            replicas = set(stack.replica_ips())
            assert len(replicas) == count
            wait_for(f"nginx to spread traffic over exactly {count} replicas",
                     lambda r=replicas: answered_by_exactly(r), timeout=30)  # fmt: skip
            wait_for(f"Prometheus to scrape exactly {count} replicas",
                     lambda r=replicas: scraped_exactly(r), timeout=60, interval=2)  # fmt: skip
            wait_for(f"Prometheus to know that {count} replicas are meant to run",
                     lambda c=count: stack.scalar(DESIRED) == c or None, timeout=30)  # fmt: skip
            print(f"\n[e2e] {count} replicas served and scraped {time.monotonic() - scaled_at:.0f}s after scaling")
    finally:
        done.set()
        loader.join()
    result = background["result"]
    print(f"[e2e] under the scaling: {result.summary()}")
    for load in (result, *probes):
        assert load.failed == 0, f"{load.summary()}; first errors: {load.errors[:3]}"
    assert result.sent > 1000, result.summary()
    assert started_at(stack, "nginx") == nginx_before, "nginx was restarted"
    assert original <= set(stack.container_ids("model")), "scaling re-created the replicas that kept running"

    # A re-creation (new image, changed setting) replaces every replica: no alert either.
    stack.up("--force-recreate", services=["model"])
    assert not original & set(stack.container_ids("model"))
    replicas = set(stack.replica_ips())
    wait_for("Prometheus to scrape the re-created replicas", lambda: scraped_exactly(replicas), timeout=60, interval=2)
    time.sleep(20)  # two more rule evaluations
    window = int(time.time() - window_start) + 1
    fired = stack.query(f'max_over_time(ALERTS{{alertname="ModelReplicaDown",alertstate="firing"}}[{window}s])')
    assert not fired, f"ModelReplicaDown fired after scaling or re-creating: {fired}"
    assert not stack.alerts("ModelReplicaDown"), stack.alerts("ModelReplicaDown")
