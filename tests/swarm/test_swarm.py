"""The stack on Docker Swarm: `docker stack deploy -c docker-compose.yml -c docker-compose.swarm.yml`.

On a single-node swarm made for the test: configuration arrives as Swarm configs and secrets
(no host bind mount), nginx balances over every model task, Prometheus scrapes every task, and a
rolling update of the model service under load fails no request. Tests run in file order.
"""

import json
import secrets
import threading
import time

import pytest
import requests

from tests.e2e.stack import run, wait_for
from tests.load import send_load

from .conftest import SwarmStack, basic_auth

pytestmark = pytest.mark.swarm

REPLICAS = 3
UPDATE_MIN_REQUESTS = 2000
UPDATE_CONCURRENCY = 12


def test_configuration_reaches_tasks_as_configs_and_secrets(swarm_stack: SwarmStack) -> None:
    for service in ("model", "nginx", "nginx-exporter", "prometheus", "alertmanager", "grafana"):
        spec = swarm_stack.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        binds = [m for m in spec.get("Mounts", []) if m["Type"] == "bind"]
        assert not binds, f"{service} bind-mounts host paths, which exist on one node only: {binds}"

    def targets(service: str, kind: str) -> set[str]:
        spec = swarm_stack.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        return {ref["File"]["Name"] for ref in spec.get(kind) or []}

    assert targets("nginx", "Configs") == {"/etc/nginx/nginx.conf", "/etc/nginx/templates/model-serving.conf.template"}
    assert targets("prometheus", "Configs") == {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules/alerts.yml"}
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

    def every_task_answered() -> bool | None:
        result = send_load(f"{swarm_stack.nginx_url}/predict", 300, concurrency=4, headers=swarm_stack.auth)
        assert result.failed == 0, result.summary()
        return set(result.upstreams) == set(tasks) or None

    # nginx re-resolves tasks.model every 5 s: right after the deploy it may not know every task.
    wait_for("requests through nginx to be answered by every model task", every_task_answered, timeout=60)
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
    probe = "import model_server.config as c; print('api_keys_file' in c.Settings.model_fields)"
    supported = run(["docker", "exec", swarm_stack.one_container("model"), "python", "-c", probe], timeout=30)
    if supported.strip() != "True":
        pytest.skip("the model image has no API_KEYS_FILE setting yet: the api_keys secret is mounted, not enforced")
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
    def only_new_tasks_answer() -> bool | None:
        check = send_load(f"{swarm_stack.nginx_url}/predict", 200, concurrency=4, headers=swarm_stack.auth)
        assert check.failed == 0, check.summary()
        return set(check.upstreams) == set(after) or None

    wait_for("nginx to send requests to every new task and to no old one", only_new_tasks_answer, timeout=30)

    def scraped_new_tasks() -> bool | None:
        up = {t["labels"]["instance"].removesuffix(":8000")
              for t in swarm_stack.prometheus_targets("model") if t["health"] == "up"}  # fmt: skip
        return up == set(after) or None

    wait_for("Prometheus to scrape exactly the new tasks", scraped_new_tasks, timeout=60, interval=2)
