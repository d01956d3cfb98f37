"""Prometheus configuration and alert rules, checked with promtool inside the Prometheus
image that docker-compose.yml runs (never pulled: the image must be present locally).

Also holds static checks of the config/rules contract that the e2e tests rely on.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
MOUNT = "/etc/prometheus"  # as in docker-compose.yml
DEFAULT_IMAGE = "prom/prometheus:v3.5.0"

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


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


def run_in_image(image: str, entrypoint: str, args: list[str], mounts: dict[Path, str]):
    """Run a tool from an image with read-only mounts; fail the test with its output."""
    if shutil.which("docker") is None:
        pytest.fail("docker CLI not found: tests marked 'docker' need a Docker engine")
    cmd = ["docker", "run", "--rm", "--pull", "never", "--network", "none"]
    for host, container in mounts.items():
        cmd += ["-v", f"{host}:{container}:ro"]
    cmd += ["--entrypoint", entrypoint, image, *args]
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


def promtool(*args: str) -> str:
    image = compose_image("prometheus", DEFAULT_IMAGE)
    return run_in_image(image, "/bin/promtool", list(args), {PROMETHEUS_DIR: MOUNT})


def in_container(path: Path) -> str:
    return f"{MOUNT}/{path.relative_to(PROMETHEUS_DIR).as_posix()}"


# ----------------------------------------------------------------------------- promtool


def test_promtool_check_config():
    output = promtool("check", "config", f"{MOUNT}/prometheus.yml")
    # rule_files is a glob: make sure it matched the rule files.
    match = re.search(r"SUCCESS: (\d+) rule files found", output)
    assert match and int(match.group(1)) == len(RULE_FILES), output


def test_promtool_check_rules():
    assert RULE_FILES, "no rule files under prometheus/rules/"
    output = promtool("check", "rules", *map(in_container, RULE_FILES))
    assert "SUCCESS" in output, output


def test_promtool_test_rules():
    assert TEST_FILES, "no promtool unit tests under prometheus/tests/"
    output = promtool("test", "rules", *map(in_container, TEST_FILES))
    assert "SUCCESS" in output, output


# -------------------------------------------------------------------- static contract


def test_every_rule_file_is_mounted_by_compose():
    """rule_files globs /etc/prometheus/rules/, where compose mounts each rule file as its own
    config: a file without its entry passes promtool here and is missing from the stack."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    sources = {name: (ROOT / config["file"]).resolve() for name, config in compose["configs"].items()}
    mounted = {ref["target"]: sources[ref["source"]] for ref in compose["services"]["prometheus"]["configs"]}
    for path in RULE_FILES:
        assert mounted.get(in_container(path)) == path.resolve(), f"{path.name} has no configs: entry"


def _alert_rules():
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def test_config_contract():
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["global"]["scrape_interval"] == "10s"
    assert config["global"]["evaluation_interval"] == "10s"
    assert config["rule_files"]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= {"model", "nginx", "alertmanager", "prometheus"}
    model = jobs["model"]
    assert "static_configs" not in model, "model replicas are found by DNS, not listed"
    (dns,) = model["dns_sd_configs"]
    assert dns["names"] == ["model"]
    assert dns["type"] == "A"
    assert dns["port"] == 8000
    assert dns["refresh_interval"] == "5s"
    # instance must stay <ip>:<port> (the e2e tests map instances to container IPs)
    for relabel in model.get("relabel_configs", []):
        if relabel.get("target_label") == "instance":
            assert relabel.get("source_labels") == ["__address__"], relabel
            assert relabel.get("replacement", "$1") == "$1", relabel

    def targets(job):
        return [t for sc in jobs[job]["static_configs"] for t in sc["targets"]]

    assert targets("nginx") == ["nginx-exporter:9113"]
    assert targets("alertmanager") == ["alertmanager:9093"]
    assert targets("prometheus") == ["localhost:9090"]
    assert "/tmp/rules/*.yml" in config["rule_files"], "entrypoint.sh's model_serving:replicas_desired"
    # nothing is scraped through the load balancer
    static = [sc for job in jobs.values() for sc in job.get("static_configs", [])]
    every_target = [t for sc in static for t in sc["targets"]]
    assert not [t for t in every_target if t.split(":")[0] == "nginx"], every_target


def test_rules_have_severity_and_annotations():
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    # One name may have several rules (ModelReplicaDown: one per way a replica is down).
    exprs = [(r["alert"], " ".join(r["expr"].split())) for r in rules]
    assert len(exprs) == len(set(exprs)), exprs
    expected = {
        "ModelReplicaDown",
        "NoReadyReplicas",
        "HighErrorRate",
        "HighLatencyP99",
        "NginxDown",
    }
    assert expected <= set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def _seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


def test_model_replica_down_knows_how_many_replicas_are_meant_to_run():
    rules = {" ".join(r["expr"].split()): r for r in _alert_rules() if r["alert"] == "ModelReplicaDown"}
    assert set(rules) == {
        'up{job="model"} == 0 and on(instance) (timestamp(up{job="model"}) > time() - 30)',
        '(count(up{job="model"} == 1 and on(instance) (timestamp(up{job="model"}) > time() - 30)) or vector(0))'
        " < on() model_serving:replicas_desired",
    }
    # Fires within 90 s of a replica dying: 5 s DNS refresh + 10 s evaluation + `for`.
    for rule in rules.values():
        assert 5 + 10 + _seconds(rule["for"]) <= 90 - 10, rule
    # A new replica loads its model before it answers: not "down" for its first 20 s.
    assert (
        _seconds(rules['up{job="model"} == 0 and on(instance) (timestamp(up{job="model"}) > time() - 30)']["for"]) >= 30
    )


def test_entrypoint_records_model_replicas_as_a_rule():
    image = compose_image("prometheus", DEFAULT_IMAGE)
    script = (
        "sh /etc/prometheus/entrypoint.sh --version >/dev/null"
        " && /bin/promtool check rules /tmp/rules/deployment.yml >/dev/null"
        " && cat /tmp/rules/deployment.yml"
    )
    cmd = ["docker", "run", "--rm", "--pull", "never", "--network", "none", "--read-only", "--tmpfs", "/tmp",
           "-v", f"{PROMETHEUS_DIR}:{MOUNT}:ro", "--entrypoint", "/bin/sh"]  # fmt: skip
    written = subprocess.run([*cmd, "-e", "MODEL_REPLICAS=4", image, "-c", script],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert written.returncode == 0, written.stderr
    rule = yaml.safe_load(written.stdout)["groups"][0]["rules"][0]
    assert rule == {"record": "model_serving:replicas_desired", "expr": "vector(4)"}
    for bad in ("", "3; rm -rf /", "two"):
        refused = subprocess.run([*cmd, "-e", f"MODEL_REPLICAS={bad}", image, "-c", script],
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert refused.returncode == 2, (bad, refused.stdout, refused.stderr)
        assert "MODEL_REPLICAS must be a whole number" in refused.stderr


def test_every_alert_is_unit_tested_firing_and_quiet():
    firing, quiet = set(), set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in _alert_rules()}
    assert names - firing == set(), "alerts without a firing test case"
    assert names - quiet == set(), "alerts without a not-firing test case"
