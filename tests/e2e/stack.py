"""Driving the compose stack from tests: start, inspect, query, tear down.

The stack runs under a compose project name of its own (``E2E_PROJECT``, or a random one) and on
host ports found free at run time, passed through the same variables a user sets in ``.env``
(``HTTP_PORT``, ``PROMETHEUS_PORT``, ...). A stack someone left running never collides with it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What `docker compose up` reads by itself on a single host: the stack, then the monitoring UIs on
# 127.0.0.1. Named explicitly because `-f` turns the default override file off.
OVERRIDE_FILE = ROOT / "docker-compose.override.yml"
COMPOSE_FILES = ("-f", str(COMPOSE_FILE), "-f", str(OVERRIDE_FILE))

# What the tests run with, and why (the README's test section lists them too).
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def run(args: list[str], timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


class NotYet(Exception):
    """What a probe raises for "not there yet, ask again" (e.g. a query with no data yet)."""


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Call ``probe`` until it returns neither None nor False; fail with ``what`` after ``timeout``.

    Only "not yet" is retried: a service not answering yet (connection errors, a half-ready JSON
    body) or :class:`NotYet`. An ``AssertionError`` inside the probe fails at once: a probe that
    checks, say, "0 failed requests" must not have a failure retried away. Count such things
    over the whole run and assert once instead.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last is not None and last is not False:
                return last
        except (requests.RequestException, KeyError, ValueError, NotYet) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def image_available(image: str) -> bool:
    """Present locally, or pullable from a registry."""
    present = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False)
    if present.returncode == 0:
        return True
    try:
        pulled = subprocess.run(["docker", "pull", "-q", image], capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    services: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PROMETHEUS_PORT']}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ALERTMANAGER_PORT']}"

    # --- compose -----------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
        return run(
            ["docker", "compose", "-p", self.project, *COMPOSE_FILES, *args],
            timeout=timeout,
            env={**os.environ, **self.env, **(env or {})},
        )

    def up(self, *extra: str, services: Iterable[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.compose("up", "-d", "--wait", *extra, *(services or self.services), env=env, timeout=900)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)

    # --- containers ----------------------------------------------------------------------------
    def container_ids(self, service: str, all_states: bool = False) -> list[str]:
        args = ["ps", "-q", *(["-a"] if all_states else []), service]
        return self.compose(*args).split()

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(run(["docker", "inspect", container]))[0]

    def ip_of(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def replica_ips(self) -> dict[str, str]:
        """Running model replicas: container IP -> container id."""
        return {self.ip_of(c): c for c in self.container_ids("model")}

    def replica_metrics(self, container: str) -> str:
        """A replica's own /metrics, read inside its container (replicas publish no port)."""
        code = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
        return run(["docker", "exec", container, "python", "-c", code], timeout=30)

    # --- Prometheus ------------------------------------------------------------------------------
    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        response = requests.get(f"{self.prometheus_url}/api/v1/query", params=params, timeout=10)
        body = response.json()
        assert body.get("status") == "success", f"query {promql!r} failed: {body}"
        return body["data"]["result"]

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        if not result:
            raise NotYet(f"query {promql!r} returned no data")
        return float(result[0]["value"][1])

    def active_targets(self, job: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus_url}/api/v1/targets", params={"state": "active"}, timeout=10)
        return [t for t in response.json()["data"]["activeTargets"] if t["labels"].get("job") == job]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=10)
        return [a for a in response.json()["data"]["alerts"] if a["labels"].get("alertname") == name]

    def alertmanager_alerts(self, name: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.alertmanager_url}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=10
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def serving_repository(stack: Stack, root: Path, default_model: str) -> Iterator[Path]:
    """The replicas serve the host folder ``root`` (MODEL_REPOSITORY=/models, MODEL_HOST_DIR=root)
    until the block ends, then the image's built-in repository again. ``root`` must be readable by
    the replicas' user (uid 10001): 0755 folders, 0644 files."""
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    settings = {"MODEL_REPOSITORY": "/models", "MODEL_HOST_DIR": str(root), "DEFAULT_MODEL": default_model}
    stack.up("--no-deps", services=["model"], env=settings)
    stack.env.update(settings)  # later `up` calls (nginx restarts) keep the replicas as they are
    try:
        yield root
    finally:
        for key in settings:
            stack.env.pop(key)
        stack.up("--no-deps", services=["model"])


def free_host_ports() -> dict[str, str]:
    """Host ports found free now, under the variables a user sets in `.env`."""
    names = ("HTTP_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT")
    return {name: str(free_port()) for name in names}


def start_stack() -> Stack:
    """Build and start every service whose image is available here; name the others."""
    project = os.environ.get("E2E_PROJECT") or f"e2e-{secrets.token_hex(3)}"
    env = {
        **TEST_ENV,
        "COMPOSE_PROJECT_NAME": project,
        **free_host_ports(),
    }
    stack = Stack(project=project, env=env)
    config = yaml.safe_load(stack.compose("config", "--format", "yaml"))
    for name, service in config["services"].items():
        image = service.get("image", "")
        if "build" in service or image_available(image):
            stack.services.append(name)
        else:
            stack.skipped[name] = f"image {image} is neither present nor pullable here (no registry)"
    stack.compose("build", "model", timeout=900)
    stack.up()
    return stack
