"""Alertmanager configuration, checked with amtool inside the Alertmanager image that
docker-compose.yml runs (never pulled: the image must be present locally)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_DIR = ROOT / "alertmanager"
CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
MOUNT = "/etc/alertmanager"  # as in docker-compose.yml
DEFAULT_IMAGE = "prom/alertmanager:v0.28.1"


def _interpolate(value: str) -> str:
    """Resolve compose's ${VAR}, ${VAR:-default} and ${VAR-default} from the environment."""

    def replace(match: re.Match) -> str:
        name, colon, default = match.group(1), match.group(2), match.group(3)
        current = os.environ.get(name)
        if current is None or (colon and current == ""):
            return default or ""
        return current

    return re.sub(r"\$\{(\w+)(?:(:?)-([^}]*))?\}", replace, value)


def compose_image(service: str, default: str) -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8")) or {}
    image = ((compose.get("services") or {}).get(service) or {}).get("image")
    return _interpolate(image) if image else default


def amtool(*args: str) -> str:
    """Run amtool from the image with alertmanager/ mounted; fail the test with its output."""
    if shutil.which("docker") is None:
        pytest.fail("docker CLI not found: tests marked 'docker' need a Docker engine")
    image = compose_image("alertmanager", DEFAULT_IMAGE)
    cmd = [
        "docker",
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "-v",
        f"{ALERTMANAGER_DIR}:{MOUNT}:ro",
        "--entrypoint",
        "/bin/amtool",
        image,
        *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {exc.timeout}s: {' '.join(cmd)}")
    if proc.returncode != 0:
        pytest.fail(
            f"exit code {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
            "(the image must exist locally: it is never pulled)"
        )
    return proc.stdout + proc.stderr


def test_amtool_check_config():
    output = amtool("check-config", f"{MOUNT}/alertmanager.yml")
    assert "SUCCESS" in output, output


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["alertname=ModelReplicaDown", "severity=critical"], "critical"),
        (["alertname=HighLatencyP99", "severity=warning"], "warning"),
        (["alertname=SomethingElse"], "default"),
    ],
)
def test_routing_by_severity(labels, receiver):
    output = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={MOUNT}/alertmanager.yml",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert receiver in output, output


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_route_timing(config):
    route = config["route"]
    assert set(route["group_by"]) >= {"alertname", "severity"}
    by_severity = {r["matchers"][0]: r for r in route["routes"]}
    critical = by_severity['severity="critical"']
    warning = by_severity['severity="warning"']
    assert critical["group_wait"] == "10s"
    assert critical["repeat_interval"] == "1h"
    assert warning["group_wait"] != critical["group_wait"]


def test_default_receiver_needs_nothing_outside_the_stack(config):
    (default,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    integrations = [key for key in default if key.endswith("_configs")]
    assert integrations == [], "the default receiver must work without external services"


def test_inhibit_rules(config):
    rules = config["inhibit_rules"]

    def inhibits(source: str, target: str) -> bool:
        pairs = [(rule["source_matchers"][0], rule["target_matchers"][0]) for rule in rules]
        return any(source in src and target in dst for src, dst in pairs)

    assert inhibits('severity="critical"', 'severity="warning"')
    assert inhibits("NoReadyReplicas", "ModelReplicaDown")
    critical_over_warning = [r for r in rules if r["source_matchers"] == ['severity="critical"']]
    assert critical_over_warning[0]["equal"] == ["alertname"]


def test_every_rule_severity_is_routed(config):
    routed = {m for r in config["route"]["routes"] for m in r["matchers"]}
    for path in (ROOT / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert f'severity="{rule["labels"]["severity"]}"' in routed, rule["alert"]
