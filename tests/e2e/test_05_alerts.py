"""ModelReplicaDown fires in Prometheus and Alertmanager within 90 s, both ways a replica can be
down: one stops answering (paused: still listed, scrapes fail), another dies (stopped: gone from
DNS, fewer replicas answer than MODEL_REPLICAS). Both resolve once the replicas are back."""

import time

from .stack import Stack, run, wait_for

ALERT = "ModelReplicaDown"
WITHIN = 90  # seconds


def test_paused_and_stopped_replicas_fire_within_90s_and_resolve(stack: Stack) -> None:
    replicas = stack.replica_ips()
    assert len(replicas) == 3
    (hung_ip, hung), (_, dead) = sorted(replicas.items())[:2]
    hung_instance = f"{hung_ip}:8000"
    wait_for("all replicas scraped", lambda: len(stack.query('up{job="model"} == 1')) == len(replicas) or None, 60)
    assert stack.scalar("model_serving:replicas_desired") == 3  # from MODEL_REPLICAS
    assert not stack.alerts(ALERT)

    run(["docker", "pause", hung], timeout=60)
    run(["docker", "stop", "--time", "10", dead], timeout=60)
    stopped_at = time.monotonic()
    try:

        def firing(alerts: list[dict], cause: str, state: str) -> bool:
            return any(
                a["labels"].get("cause") == cause
                and (cause != "not_answering" or a["labels"].get("instance") == hung_instance)
                and state in (a.get("state"), a.get("status", {}).get("state"))
                for a in alerts
            )

        def both_in_prometheus() -> bool | None:
            alerts = stack.alerts(ALERT)
            return (firing(alerts, "not_answering", "firing") and firing(alerts, "too_few_replicas", "firing")) or None

        def both_in_alertmanager() -> bool | None:
            alerts = stack.alertmanager_alerts(ALERT)
            return (firing(alerts, "not_answering", "active") and firing(alerts, "too_few_replicas", "active")) or None

        wait_for(f"{ALERT} for both replicas in Prometheus", both_in_prometheus, timeout=WITHIN, interval=2)
        left = max(1, WITHIN - (time.monotonic() - stopped_at))
        wait_for(f"{ALERT} for both replicas in Alertmanager", both_in_alertmanager, timeout=left, interval=2)
        [too_few] = [a for a in stack.alerts(ALERT) if a["labels"]["cause"] == "too_few_replicas"]
        assert too_few["annotations"]["summary"] == "1 of 3 model replicas answer", too_few
        print(f"\n[e2e] {ALERT} (both causes) in Alertmanager {time.monotonic() - stopped_at:.0f}s after the faults")
    finally:
        run(["docker", "unpause", hung], timeout=60, check=False)
        run(["docker", "start", dead], timeout=60)

    def healthy(container: str) -> bool | None:
        return stack.inspect(container)["State"]["Health"]["Status"] == "healthy" or None

    for container in (hung, dead):
        wait_for("the replicas to be healthy again", lambda c=container: healthy(c), 90)
    wait_for(f"{ALERT} to resolve", lambda: not stack.alerts(ALERT) or None, timeout=120, interval=2)
