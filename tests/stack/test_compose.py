"""The compose file is valid and keeps the stack's production rules."""

import re
import subprocess

import pytest
import yaml
from model_server.config import ProcessSettings

from tests.e2e.stack import COMPOSE_FILE, COMPOSE_FILES, OVERRIDE_FILE, ROOT

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def config() -> dict:
    result = subprocess.run(
        ["docker", "compose", *COMPOSE_FILES, "config", "--format", "yaml"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def test_config_quiet_passes() -> None:
    result = subprocess.run(
        ["docker", "compose", *COMPOSE_FILES, "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "version" not in yaml.safe_load(COMPOSE_FILE.read_text()), "the Compose specification has no version key"


def test_images_pinned(config: dict) -> None:
    for name, service in config["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert re.search(r"\d+\.\d+", tag), f"{name}: image {image} is not pinned to a version"


def test_only_nginx_on_all_interfaces(config: dict) -> None:
    # The monitoring UIs come from the single-host override; the stack file itself (what a
    # cluster deploys) publishes nginx alone.
    stack_file = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert [name for name, service in stack_file.items() if service.get("ports")] == ["nginx"]
    override = yaml.safe_load(OVERRIDE_FILE.read_text())["services"]
    assert set(override) == {"prometheus", "alertmanager", "grafana"}
    assert all(set(service) == {"ports"} for service in override.values()), override
    for name in ("prometheus", "alertmanager", "grafana"):
        assert config["services"][name]["ports"], f"{name} is not published on the single host"
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            if name == "nginx":
                assert port.get("host_ip") in (None, "", "0.0.0.0"), port
            else:
                assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert "ports" not in config["services"]["model"]


def test_every_service_has_healthcheck_and_hardening(config: dict) -> None:
    for name, service in config["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("restart") == "unless-stopped", name


def test_model_service(config: dict) -> None:
    model = config["services"]["model"]
    assert model["read_only"] is True
    assert any(t.startswith("/tmp") for t in model["tmpfs"])
    assert model["deploy"]["replicas"] == 3
    assert model["deploy"]["resources"]["limits"]["memory"]
    graceful = ProcessSettings.model_fields["gunicorn_graceful_timeout"].default
    grace = model["stop_grace_period"]
    assert int(grace.rstrip("s")) >= graceful, f"stop_grace_period {grace} < gunicorn graceful timeout {graceful}s"


def test_start_order(config: dict) -> None:
    # Plain lists, the only form `docker stack deploy` reads: start order only. nginx resolves
    # the replicas at run time, and `docker compose up --wait` waits for every healthcheck.
    services = config["services"]
    assert set(services["nginx"]["depends_on"]) == {"model"}
    assert set(services["nginx-exporter"]["depends_on"]) == {"nginx"}
    assert set(services["grafana"]["depends_on"]) == {"prometheus"}


ENV_EXAMPLE = ROOT / ".env.example"


def test_env_example_has_no_empty_value_with_an_inline_comment() -> None:
    # Compose reads `KEY=   # text` as the value "# text"; commented-out assignments count too,
    # since users uncomment them.
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        assignment = re.sub(r"^#\s*(?=[A-Z_][A-Z0-9_]*=)", "", line)
        assert not re.match(r"[A-Z_][A-Z0-9_]*=\s+#", assignment), f".env.example:{number}: {line!r}"


def test_env_example_as_env_file_gives_the_documented_values() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "--format", "yaml"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            assert not str(value).lstrip().startswith("#"), f"{name}: {key}={value!r} (a comment read as a value)"
    model = services["model"]["environment"]
    assert model["GUNICORN_WORKERS"] == ""
    assert model["GUNICORN_WORKER_CONNECTIONS"] == "1000"
    assert model["BATCH_MAX_ROWS"] == "256"
