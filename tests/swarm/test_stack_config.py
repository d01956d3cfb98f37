"""docker-compose.yml + docker-compose.swarm.yml as `docker stack deploy` reads them (no swarm needed).

The docker CLI has its own loader for stacks, which accepts only the Compose v3 subset: these
checks catch a compose change that would break `docker stack deploy` in seconds, where the
swarm tests (test_swarm.py) are not run.
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.commands import ROOT

from .conftest import COMPOSE_FILE, SWARM_FILE

pytestmark = pytest.mark.docker

# Services that others reach by name: their name must resolve to every task (dnsrr), not to a
# virtual IP that needs the routing mesh (IPVS). Every service of the stack is one: nginx
# reaches the model, Prometheus the model, nginx-exporter and Alertmanager, nginx-exporter
# nginx, Grafana Prometheus.
BY_NAME = {"model", "nginx", "nginx-exporter", "prometheus", "alertmanager", "grafana"}
GRAFANA_FILE = ROOT / "docker-compose.swarm-grafana.yml"


def stack_config(tmp_path_factory: pytest.TempPathFactory, *files: Path) -> dict:
    secret = tmp_path_factory.mktemp("secrets") / "secret"
    secret.write_text("not-a-real-secret-0123456789")
    # The defaults, whatever this shell sets (only what the docker CLI itself needs is kept).
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME"} or k.startswith("DOCKER_")}
    env |= {"API_KEYS_SECRET_FILE": str(secret), "GRAFANA_ADMIN_PASSWORD_SECRET_FILE": str(secret)}
    result = subprocess.run(
        ["docker", "stack", "config", *(arg for file in files for arg in ("-c", str(file)))],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"docker stack config refuses the files:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return stack_config(tmp_path_factory, COMPOSE_FILE, SWARM_FILE)


def published(config: dict) -> dict[str, list[dict]]:
    return {name: service["ports"] for name, service in config["services"].items() if service.get("ports")}


def test_nothing_published_but_nginx(merged: dict) -> None:
    # Swarm cannot bind a port to one address: whatever is published opens on every node.
    assert set(published(merged)) == {"nginx"}, published(merged)


def test_grafana_published_on_request_with_login(tmp_path_factory: pytest.TempPathFactory) -> None:
    config = stack_config(tmp_path_factory, COMPOSE_FILE, SWARM_FILE, GRAFANA_FILE)
    ports = published(config)
    assert set(ports) == {"nginx", "grafana"}, ports
    assert [(p["target"], p["mode"]) for p in ports["grafana"]] == [(3000, "host")]
    assert config["services"]["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_no_host_bind_mounts(merged: dict) -> None:
    for name, service in merged["services"].items():
        binds = [v for v in service.get("volumes", []) if v.get("type") == "bind"]
        assert not binds, f"{name}: a host path exists on one node only; use configs, secrets or the image: {binds}"


def test_services_reached_by_name_resolve_to_every_task(merged: dict) -> None:
    for name in BY_NAME:
        assert merged["services"][name]["deploy"]["endpoint_mode"] == "dnsrr", name
    for name, service in merged["services"].items():
        if service.get("deploy", {}).get("endpoint_mode") == "dnsrr":
            modes = {port.get("mode") for port in service.get("ports", [])}
            assert modes <= {"host"}, f"{name}: a dnsrr service can only publish in host mode, not {modes}"
    nginx_env = merged["services"]["nginx"]["environment"]
    assert nginx_env["MODEL_UPSTREAM"] == "tasks.model:8000"


def test_tmpfs_mounts_are_volumes(merged: dict) -> None:
    # Swarm ignores the service-level `tmpfs:` key that Compose uses.
    for name in ("model", "nginx", "prometheus"):
        service = merged["services"][name]
        targets = {v["target"] for v in service.get("volumes", [])}
        wanted = {entry.split(":")[0] for entry in service.get("tmpfs", [])}
        assert wanted <= targets, f"{name}: {wanted - targets} would be read-only on Swarm"


def test_model_rolls_out_without_downtime(merged: dict) -> None:
    deploy = merged["services"]["model"]["deploy"]
    update = deploy["update_config"]
    assert update["order"] == "start-first"
    assert update["parallelism"] == 1
    assert update["failure_action"] == "rollback"
    assert update["monitor"]
    assert deploy["restart_policy"]["condition"] == "any"
    assert deploy["resources"]["limits"]["cpus"] and deploy["resources"]["limits"]["memory"]
    assert deploy["resources"]["reservations"]["cpus"] and deploy["resources"]["reservations"]["memory"]
    assert merged["services"]["model"]["healthcheck"]["test"]


def test_secrets_not_environment(merged: dict) -> None:
    model, grafana = merged["services"]["model"], merged["services"]["grafana"]
    assert {s["source"] for s in model["secrets"]} == {"api_keys"}
    assert model["environment"]["API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert {s["source"] for s in grafana["secrets"]} == {"grafana_admin_password"}
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "$__file{/run/secrets/grafana_admin_password}"
