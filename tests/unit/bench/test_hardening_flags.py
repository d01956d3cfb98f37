"""harness.docker.hardening_flags: the replica the benchmark runs alone is hardened like compose's."""

import itertools

import yaml

from harness.compose import COMPOSE_FILE
from harness.docker import hardening_flags


def test_every_hardening_setting_becomes_its_docker_run_flag() -> None:
    service = {
        "read_only": True,
        "tmpfs": ["/tmp:size=64m,mode=1777", "/run"],
        "cap_drop": ["ALL"],
        "cap_add": ["NET_BIND_SERVICE"],
        "security_opt": ["no-new-privileges:true"],
        "user": 10001,
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
        "environment": {"IGNORED": "here"},
    }
    assert hardening_flags(service) == [
        "--read-only",
        "--tmpfs", "/tmp:size=64m,mode=1777", "--tmpfs", "/run",
        "--cap-drop", "ALL",
        "--cap-add", "NET_BIND_SERVICE",
        "--security-opt", "no-new-privileges:true",
        "--user", "10001",
        "--log-driver", "json-file", "--log-opt", "max-file=5", "--log-opt", "max-size=10m",
    ]  # fmt: skip


def test_a_service_without_hardening_gets_no_flags() -> None:
    assert hardening_flags({"image": "x", "read_only": False}) == []


def test_the_model_service_is_run_read_only_with_no_capabilities() -> None:
    flags = hardening_flags(yaml.safe_load(COMPOSE_FILE.read_text())["services"]["model"])
    pairs = set(itertools.pairwise(flags))
    assert "--read-only" in flags
    assert {("--cap-drop", "ALL"), ("--security-opt", "no-new-privileges:true")} <= pairs
    assert any(flag == "--tmpfs" and mount.startswith("/tmp:") for flag, mount in pairs)
