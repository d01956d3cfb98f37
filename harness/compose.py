"""The compose stack, driven from tests and the benchmark: one project, its own name, env and files.

A project runs under a name of its own (``e2e-…``, ``bench-…``) with the settings passed as the
same variables a user sets in ``.env``, so a stack someone left running never collides with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .addresses import Target, container_address, free_port
from .commands import ROOT, run
from .docker import inspect

COMPOSE_FILE = ROOT / "docker-compose.yml"
# What `docker compose up` reads by itself on a single host: the stack, then the monitoring UIs on
# 127.0.0.1. Named explicitly because `-f` turns the default override file off.
OVERRIDE_FILE = ROOT / "docker-compose.override.yml"
SWARM_FILE = ROOT / "docker-compose.swarm.yml"
COMPOSE_FILES = ("-f", str(COMPOSE_FILE), "-f", str(OVERRIDE_FILE))
PROJECT_LABEL = "com.docker.compose.project"

# What the end-to-end and Swarm tests run the stack with, and why (the README's test section lists them too).
TEST_ENV = {
    # Load tests send thousands of requests from one client address: the per-client limit is
    # raised for the stack, and the 429 test restarts nginx with a low one.
    "NGINX_RATE_LIMIT": "100000r/s",
    "NGINX_RATE_BURST": "100000",
    "MAX_BODY_BYTES": "1048576",
    "MAX_BATCH_ROWS": "1024",
    "MODEL_REPLICAS": "3",
    "API_KEYS": "",
    # Opted in so that tests see which replica answered; test_09 checks the default (off).
    "NGINX_UPSTREAM_ADDR_HEADER": "on",
}


def free_host_ports() -> dict[str, str]:
    """Host ports found free now, under the variables a user sets in `.env`."""
    names = ("HTTP_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT")
    return {name: str(free_port()) for name in names}


@dataclass
class ComposeProject:
    """``docker compose -p <project> -f <files> …`` with ``env`` over this process's environment.

    ``env_file`` replaces the checkout's ``.env`` (None: compose reads it, as a user's ``up`` does);
    ``log_to`` gets every command and its output.
    """

    project: str
    env: dict[str, str]
    files: tuple[Path, ...] = (COMPOSE_FILE, OVERRIDE_FILE)
    env_file: Path | None = None
    log_to: Path | None = None
    services: list[str] = field(default_factory=list)  # what `up` starts when it is given none

    def compose(self, *args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None) -> str:
        command = ["docker", "compose", "-p", self.project]
        command += ["--env-file", str(self.env_file)] if self.env_file else []
        for path in self.files:
            command += ["-f", str(path)]
        # A caller's COMPOSE_FILE / COMPOSE_PROJECT_NAME would fight -f and -p.
        inherited = {k: v for k, v in os.environ.items() if k not in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME")}
        environment = {**inherited, **self.env, **(env or {})}
        return run([*command, *args], timeout=timeout, check=check, env=environment, log_to=self.log_to)

    def config(self) -> dict[str, Any]:
        """The project as compose resolves it (files merged, variables substituted)."""
        return json.loads(self.compose("config", "--format", "json", timeout=60))

    def up(self, *extra: str, services: Iterable[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.compose("up", "-d", "--wait", *extra, *(services or self.services), env=env, timeout=900)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)

    def container_ids(self, service: str, all_states: bool = False) -> list[str]:
        return self.compose("ps", "-q", *(["-a"] if all_states else []), service, timeout=60).split()

    def inspect(self, container: str) -> dict[str, Any]:
        return inspect(container)

    def target(self, container: str, port: int) -> Target:
        """A container of this project at its own address (:meth:`Target.container`)."""
        return Target.container(inspect(container), {PROJECT_LABEL: self.project}, port)

    def ip_of(self, container: str) -> str:
        """The address of a container of this project on the project's network."""
        return container_address(inspect(container), {PROJECT_LABEL: self.project})
