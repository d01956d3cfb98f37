"""The stack on Docker Swarm: `docker stack deploy -c docker-compose.yml -c docker-compose.swarm.yml`.

On a single-node swarm made for the test: configuration arrives as Swarm configs and secrets
(no host bind mount), nginx balances over every model task, Prometheus scrapes every task, and a
rolling update of the model service under load fails no request. Tests run in file order: the
scaling test redeploys the stack, so it runs before the rolling update changes the model's image.
"""

import json
import secrets
import threading
import time

import pytest
import requests

from harness.commands import run
from harness.load import LoadResult, send_load
from harness.waiting import NotYet, wait_for

from .conftest import SwarmStack, basic_auth

pytestmark = pytest.mark.swarm

REPLICAS = 3
UPDATE_MIN_REQUESTS = 2000
UPDATE_CONCURRENCY = 12
DESIRED = "model_serving:replicas_desired"


def test_configuration_reaches_tasks_as_configs_and_secrets(swarm_stack: SwarmStack) -> None:
    for service in ("model", "nginx", "nginx-exporter", "prometheus", "alertmanager", "grafana"):
        spec = swarm_stack.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        binds = [m for m in spec.get("Mounts", []) if m["Type"] == "bind"]
        assert not binds, f"{service} bind-mounts host paths, which exist on one node only: {binds}"

    def targets(service: str, kind: str) -> set[str]:
        spec = swarm_stack.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        return {ref["File"]["Name"] for ref in spec.get(kind) or []}

    assert targets("nginx", "Configs") == {"/etc/nginx/nginx.conf", "/etc/nginx/templates/model-serving.conf.template"}
    assert targets("prometheus", "Configs") == {
        "/etc/prometheus/prometheus.yml",
        "/etc/prometheus/rules/alerts.yml",
        "/etc/prometheus/rules/quality.yml",
        "/etc/prometheus/rules/rollout.yml",
        "/etc/prometheus/entrypoint.sh",
    }
    assert targets("alertmanager", "Configs") == {"/etc/alertmanager/alertmanager.yml"}
    assert targets("grafana", "Configs") == {
        "/etc/grafana/provisioning/datasources/prometheus.yml",
        "/etc/grafana/provisioning/dashboards/dashboards.yml",
        "/var/lib/grafana/dashboards/model-serving.json",
    }
    assert targets("grafana", "Secrets") == {"grafana_admin_password"}
    assert targets("model", "Secrets") == {"api_keys"}

    grafana_env = swarm_stack.inspect_service("grafana")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "GF_SECURITY_ADMIN_PASSWORD=$__file{/run/secrets/grafana_admin_password}" in grafana_env

    # The rendered nginx config came from the Swarm configs, with the per-task upstream.
    rendered = run(["docker", "exec", swarm_stack.one_container("nginx"), "nginx", "-T"], timeout=30)
    assert "server tasks.model:8000 resolve" in rendered


def test_model_service_rolls_out_safely(swarm_stack: SwarmStack) -> None:
    spec = swarm_stack.inspect_service("model")["Spec"]
    update = spec["UpdateConfig"]
    assert update["Parallelism"] == 1
    assert update["Order"] == "start-first"
    assert update["FailureAction"] == "rollback"
    assert update["Monitor"] > 0
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    task = spec["TaskTemplate"]
    assert task["ContainerSpec"]["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    assert task["Resources"]["Limits"]["NanoCPUs"] > 0 and task["Resources"]["Limits"]["MemoryBytes"] > 0
    assert task["Resources"]["Reservations"]["NanoCPUs"] > 0 and task["Resources"]["Reservations"]["MemoryBytes"] > 0
    assert task["RestartPolicy"]["Condition"] == "any"
    assert task["Placement"]["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.id"}}]
    assert spec["Mode"]["Replicated"]["Replicas"] == REPLICAS


def test_predictions_through_nginx_reach_every_task(swarm_stack: SwarmStack) -> None:
    tasks = swarm_stack.task_ips("model")
    assert len(tasks) == REPLICAS, tasks

    loads: list[LoadResult] = []

    def every_task_answered() -> bool | None:
        loads.append(send_load(f"{swarm_stack.nginx_url}/predict", 300, concurrency=4, headers=swarm_stack.auth))
        return set(loads[-1].upstreams) == set(tasks) or None

    # nginx re-resolves tasks.model every 5 s: right after the deploy it may not know every task.
    wait_for("requests through nginx to be answered by every model task", every_task_answered, timeout=60)
    assert sum(load.failed for load in loads) == 0, [load.summary() for load in loads]
    response = requests.post(f"{swarm_stack.nginx_url}/predict", json={"features": [1, 2, 3, 4]},
                             headers=swarm_stack.auth, timeout=10)  # fmt: skip
    assert response.status_code == 200 and response.json() == {"prediction": [2]}, response.text


def test_prometheus_scrapes_every_task(swarm_stack: SwarmStack) -> None:
    tasks = swarm_stack.task_ips("model")

    def every_task_up() -> bool | None:
        targets = swarm_stack.prometheus_targets("model")
        up = {t["labels"]["instance"].removesuffix(":8000") for t in targets if t["health"] == "up"}
        return (up == set(tasks) and len(targets) == len(tasks)) or None

    wait_for(f"Prometheus to scrape exactly the {len(tasks)} model tasks", every_task_up, timeout=60, interval=2)
    wait_for("Prometheus to scrape nginx-exporter (and through it nginx)",
             lambda: [t["health"] for t in swarm_stack.prometheus_targets("nginx")] == ["up"] or None,
             timeout=60, interval=2)  # fmt: skip


def test_api_keys_come_from_the_secret(swarm_stack: SwarmStack) -> None:
    url = f"{swarm_stack.nginx_url}/predict"
    body = {"features": [1, 2, 3, 4]}
    assert requests.post(url, json=body, timeout=10).status_code == 401
    assert requests.post(url, json=body, headers={"Authorization": "Bearer wrong-key-0123456789abcdef"},
                         timeout=10).status_code == 401  # fmt: skip
    assert requests.post(url, json=body, headers=swarm_stack.auth, timeout=10).status_code == 200


def test_grafana_admin_password_comes_from_the_secret(swarm_stack: SwarmStack) -> None:
    if "grafana" in swarm_stack.skipped:
        pytest.skip(f"grafana not run: {swarm_stack.skipped['grafana']}")
    headers = basic_auth("admin", swarm_stack.grafana_password)
    wait_for("Grafana to accept the admin password from the secret",
             lambda: json.loads(swarm_stack.http_inside("grafana", "http://127.0.0.1:3000/api/user", headers))["login"]
             == "admin" or None, timeout=60, interval=2)  # fmt: skip


def test_scaling_by_model_replicas_under_load_fails_nothing(swarm_stack: SwarmStack) -> None:
    window_start = time.monotonic()
    done = threading.Event()
    load: dict[str, LoadResult] = {}
    url = f"{swarm_stack.nginx_url}/predict"
    loader = threading.Thread(
        target=lambda: load.update(result=send_load(url, 1, 8, headers=swarm_stack.auth, until=done))
    )
    loader.start()
    try:
        for count in (5, REPLICAS):
            swarm_stack.deploy(MODEL_REPLICAS=str(count))  # the documented way to scale (README)
            wait_for(f"{count} model tasks", lambda c=count: len(swarm_stack.task_ips("model")) == c or None,
                     timeout=120, interval=2)  # fmt: skip
            wait_for("every service to converge", swarm_stack.converged, timeout=120, interval=2)
            # Prometheus is updated too (a new task that records the new MODEL_REPLICAS).
            wait_for(f"Prometheus to know that {count} replicas are meant to run",
                     lambda c=count: [float(r["value"][1]) for r in swarm_stack.prometheus_query(DESIRED)] == [c]
                     or None, timeout=120, interval=2)  # fmt: skip
            tasks = set(swarm_stack.task_ips("model"))

            def scraped(t: set[str] = tasks) -> bool:
                up = {x["labels"]["instance"].removesuffix(":8000")
                      for x in swarm_stack.prometheus_targets("model") if x["health"] == "up"}  # fmt: skip
                if up != t:
                    raise NotYet(f"scraped {sorted(up)}, tasks {sorted(t)}")
                return True

            wait_for(f"Prometheus to scrape exactly the {count} tasks", scraped, timeout=60, interval=2)
            time.sleep(6)  # nginx re-resolved tasks.model
    finally:
        done.set()
        loader.join()
    result = load["result"]
    print(f"\n[swarm] scaling 3 -> 5 -> 3 under load: {result.summary()}; answered by {dict(result.upstreams)}")
    assert result.failed == 0, f"{result.summary()}; first errors: {result.errors[:3]}"
    assert len(result.upstreams) >= 5, "the two added tasks never answered"
    time.sleep(20)  # two more rule evaluations
    window = int(time.monotonic() - window_start) + 1
    assert not swarm_stack.prometheus_query(
        f'max_over_time(ALERTS{{alertname="ModelReplicaDown",alertstate="firing"}}[{window}s])'
    ), "ModelReplicaDown fired after scaling by MODEL_REPLICAS"


def test_rolling_update_under_load_fails_nothing(swarm_stack: SwarmStack) -> None:
    before = swarm_stack.task_ips("model")
    assert len(before) == REPLICAS
    new_image = f"{swarm_stack.image}-v2"  # a new model version ships as a new image tag
    run(["docker", "tag", swarm_stack.image, new_image], timeout=60)
    rollout = secrets.token_hex(4)

    done = threading.Event()
    load: dict[str, object] = {}

    def generate() -> None:
        url = f"{swarm_stack.nginx_url}/predict"
        load["result"] = send_load(url, UPDATE_MIN_REQUESTS, UPDATE_CONCURRENCY, headers=swarm_stack.auth, until=done)

    loader = threading.Thread(target=generate)
    loader.start()
    started = time.monotonic()
    try:
        time.sleep(2)  # the update starts with traffic already flowing
        run(["docker", "service", "update", "--detach=false", "--no-resolve-image", "--image", new_image,
             "--env-add", f"MODEL_ROLLOUT={rollout}", swarm_stack.service("model")], timeout=400)  # fmt: skip
        update_seconds = time.monotonic() - started
        time.sleep(6)  # and ends after nginx re-resolved the new tasks (every 5 s)
    finally:
        done.set()
        loader.join()
    result = load["result"]
    columns = "{{.Name}} {{.ID}} {{.DesiredState}} {{.CurrentState}} {{.Error}}"
    history = run(["docker", "service", "ps", "--no-trunc", "--format", columns, swarm_stack.service("model")])
    print(f"\n[swarm] rolling update took {update_seconds:.0f}s; under it: {result.summary()}; "
          f"answered by {dict(result.upstreams)}\n[swarm] model tasks:\n{history}")  # fmt: skip

    assert result.sent >= UPDATE_MIN_REQUESTS
    assert result.failed == 0, f"{result.summary()}; first errors: {result.errors[:3]}"

    status = swarm_stack.inspect_service("model").get("UpdateStatus", {})
    assert status.get("State") == "completed", status
    after = swarm_stack.task_ips("model")
    assert len(after) == REPLICAS
    assert not set(after.values()) & set(before.values()), "some tasks were not replaced"
    for task in swarm_stack.running_tasks("model"):
        container = json.loads(run(["docker", "inspect", swarm_stack.container_of(task)]))[0]
        assert f"MODEL_ROLLOUT={rollout}" in container["Config"]["Env"]
        assert container["Config"]["Image"] == new_image
    # Old and new tasks both answered while the load ran: the swap happened under traffic.
    assert set(result.upstreams) & set(before) and set(result.upstreams) & set(after), result.upstreams

    # After the update nginx and Prometheus follow the new tasks only.
    checks: list[LoadResult] = []

    def only_new_tasks_answer() -> bool | None:
        checks.append(send_load(f"{swarm_stack.nginx_url}/predict", 200, concurrency=4, headers=swarm_stack.auth))
        return set(checks[-1].upstreams) == set(after) or None

    wait_for("nginx to send requests to every new task and to no old one", only_new_tasks_answer, timeout=30)
    assert sum(check.failed for check in checks) == 0, [check.summary() for check in checks]

    def scraped_new_tasks() -> bool | None:
        up = {t["labels"]["instance"].removesuffix(":8000")
              for t in swarm_stack.prometheus_targets("model") if t["health"] == "up"}  # fmt: skip
        return up == set(after) or None

    wait_for("Prometheus to scrape exactly the new tasks", scraped_new_tasks, timeout=60, interval=2)
    time.sleep(20)  # two more rule evaluations after the update completed
    window = int(time.monotonic() - started) + 1
    assert not swarm_stack.prometheus_query(
        f'max_over_time(ALERTS{{alertname="ModelReplicaDown",alertstate="firing"}}[{window}s])'
    ), "ModelReplicaDown fired during or after a completed rolling update"


def test_monitoring_path_works_without_the_routing_mesh(swarm_stack: SwarmStack) -> None:
    """Replicas -> Prometheus -> Alertmanager, and the name Grafana's data source uses, by task
    address (dnsrr); nothing but nginx published."""
    for service in ("model", "nginx-exporter", "prometheus", "alertmanager", "grafana"):
        ports = swarm_stack.inspect_service(service).get("Endpoint", {}).get("Ports") or []
        assert not ports, f"{service} publishes {ports}"
    # Grafana's data source is http://prometheus:9090 (grafana/provisioning): reachable by name.
    assert "Prometheus Server is Ready" in swarm_stack.http_inside("alertmanager", "http://prometheus:9090/-/ready")
    managers = json.loads(swarm_stack.http_inside("prometheus", "http://127.0.0.1:9090/api/v1/alertmanagers"))
    assert [m["url"] for m in managers["data"]["activeAlertmanagers"]], managers

    # A replica missing against MODEL_REPLICAS (the service scaled down behind the stack's back)
    # fires ModelReplicaDown, and it reaches Alertmanager within 90 s.
    run(["docker", "service", "scale", "--detach=false", f"{swarm_stack.service('model')}=2"], timeout=120)
    scaled_at = time.monotonic()
    try:

        def in_alertmanager() -> bool | None:
            return any(a["labels"].get("cause") == "too_few_replicas" and a["status"]["state"] == "active"
                       for a in swarm_stack.alertmanager_alerts("ModelReplicaDown")) or None  # fmt: skip

        try:
            wait_for("ModelReplicaDown to reach Alertmanager", in_alertmanager, timeout=90, interval=2)
        except AssertionError as exc:
            seen = {q: swarm_stack.prometheus_query(q) for q in (DESIRED, 'count(up{job="model"} == 1)', "ALERTS")}
            managers = swarm_stack.http_inside("prometheus", "http://127.0.0.1:9090/api/v1/alertmanagers")
            targets = [(t["labels"]["instance"], t["health"]) for t in swarm_stack.prometheus_targets("model")]
            tasks = run(["docker", "service", "ps", "--no-trunc", swarm_stack.service("model")])
            raise AssertionError(
                f"{exc}\nPrometheus: {seen}\nalertmanagers: {managers}\ntargets: {targets}\n{tasks}"
            ) from None
        print(f"\n[swarm] ModelReplicaDown in Alertmanager {time.monotonic() - scaled_at:.0f}s after the scale-down")
    finally:
        run(["docker", "service", "scale", "--detach=false", f"{swarm_stack.service('model')}={REPLICAS}"],
            timeout=180)  # fmt: skip
