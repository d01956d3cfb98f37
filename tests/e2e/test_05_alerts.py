"""A stopped replica raises ModelReplicaDown in Prometheus and Alertmanager; restarted, it resolves."""

import time

from .stack import Stack, run, wait_for

ALERT = "ModelReplicaDown"


def test_stopped_replica_fires_and_resolves(stack: Stack) -> None:
    replicas = stack.replica_ips()
    ip, container = sorted(replicas.items())[0]
    instance = f"{ip}:8000"
    wait_for("all replicas scraped", lambda: len(stack.query('up{job="model"} == 1')) == len(replicas) or None, 60)
    assert not [a for a in stack.alerts(ALERT) if a["labels"].get("instance") == instance]

    run(["docker", "stop", "--time", "10", container], timeout=60)
    stopped_at = time.monotonic()
    try:

        def firing_in_prometheus() -> bool | None:
            return (
                any(a["state"] == "firing" and a["labels"].get("instance") == instance for a in stack.alerts(ALERT))
                or None
            )

        def firing_in_alertmanager() -> bool | None:
            return (
                any(
                    a["labels"].get("instance") == instance and a["status"]["state"] == "active"
                    for a in stack.alertmanager_alerts(ALERT)
                )
                or None
            )

        wait_for(f"{ALERT} to fire in Prometheus", firing_in_prometheus, timeout=90, interval=2)
        wait_for(
            f"{ALERT} to reach Alertmanager",
            firing_in_alertmanager,
            timeout=max(1, 90 - (time.monotonic() - stopped_at)),
            interval=2,
        )
        print(
            f"\n[e2e] {ALERT} firing in Prometheus and Alertmanager {time.monotonic() - stopped_at:.0f}s after the stop"
        )
    finally:
        run(["docker", "start", container], timeout=60)

    wait_for(
        "the replica to be healthy again",
        lambda: stack.inspect(container)["State"]["Health"]["Status"] == "healthy" or None,
        90,
    )
    wait_for(
        f"{ALERT} to resolve",
        lambda: not [a for a in stack.alerts(ALERT) if a["labels"].get("instance") == instance] or None,
        timeout=120,
        interval=2,
    )
