"""The compose stack as the end-to-end tests see it: start, query Prometheus and Alertmanager, tear down.

Built on :mod:`harness`: the project runs under a name of its own (``E2E_PROJECT``, or a
random one) with :data:`~harness.compose.TEST_ENV` and host ports found free at run time,
published on 127.0.0.1 (nginx on all interfaces, as in production); the tests reach them at
127.0.0.1 only. The test modules import the shared helpers from here as well.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from harness.addresses import Target
from harness.commands import ROOT, run
from harness.compose import COMPOSE_FILE, COMPOSE_FILES, OVERRIDE_FILE, TEST_ENV, ComposeProject, free_host_ports
from harness.docker import image_available
from harness.waiting import NotYet, wait_for

__all__ = [
    "COMPOSE_FILE",
    "COMPOSE_FILES",
    "OVERRIDE_FILE",
    "ROOT",
    "TEST_ENV",
    "NotYet",
    "Stack",
    "every_replica_serves",
    "feature_counters_at_zero",
    "loaded_versions",
    "run",
    "serving_repository",
    "start_stack",
    "startable_services",
    "wait_for",
]


@dataclass
class Stack(ComposeProject):
    """The e2e project: every service whose image is here (``services``), the others named in ``skipped``."""

    skipped: dict[str, str] = field(default_factory=dict)

    def published(self, port_variable: str) -> Target:
        """A port the stack publishes on this machine (``HTTP_PORT``, ...), reached on loopback."""
        return Target.loopback(int(self.env[port_variable]))

    @property
    def nginx_url(self) -> str:
        return self.published("HTTP_PORT").url()

    @property
    def prometheus_url(self) -> str:
        return self.published("PROMETHEUS_PORT").url()

    @property
    def alertmanager_url(self) -> str:
        return self.published("ALERTMANAGER_PORT").url()

    # --- containers ----------------------------------------------------------------------------
    def replica_ips(self) -> dict[str, str]:
        """Running model replicas: container IP -> container id."""
        return {self.ip_of(c): c for c in self.container_ids("model")}

    def replica_metrics(self, container: str) -> str:
        """A replica's own /metrics, read inside its container (replicas publish no port)."""
        code = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
        return run(["docker", "exec", container, "python", "-c", code], timeout=30)

    # --- Prometheus ------------------------------------------------------------------------------
    def wait_for_evaluation(self, record: str) -> None:
        """Wait until the rule group that holds ``record`` runs again: that evaluation sees every sample scraped
        until now (the one before may have seen only a part of them)."""
        now = time.time()
        wait_for(f"{record} to be evaluated again", lambda: self._last_evaluation(record) > now or None, timeout=60)

    def _last_evaluation(self, record: str) -> float:
        """When Prometheus last evaluated the rule group that holds ``record`` (Unix time)."""
        response = requests.get(f"{self.prometheus_url}/api/v1/rules", params={"type": "record"}, timeout=10)
        for group in response.json()["data"]["groups"]:
            if any(rule.get("name") == record for rule in group["rules"]):
                stamp = re.sub(r"(\.\d{6})\d*", r"\1", group["lastEvaluation"]).replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
        raise AssertionError(f"no rule group records {record}")

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
def serving_repository(stack: Stack, root: Path, default_model: str, **extra: str) -> Iterator[Path]:
    """The replicas serve the host folder ``root`` (MODEL_REPOSITORY=/models, MODEL_HOST_DIR=root),
    with the ``extra`` settings, until the block ends, then the image's built-in repository again.
    ``root`` must be readable by the replicas' user (uid 10001): 0755 folders, 0644 files."""
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    settings = {"MODEL_REPOSITORY": "/models", "MODEL_HOST_DIR": str(root), "DEFAULT_MODEL": default_model, **extra}
    stack.up("--no-deps", services=["model"], env=settings)
    stack.env.update(settings)  # later `up` calls (nginx restarts) keep the replicas as they are
    try:
        yield root
    finally:
        for key in settings:
            stack.env.pop(key)
        stack.up("--no-deps", services=["model"])


def start_stack() -> Stack:
    """Build and start every service whose image is available here; name the others."""
    project = os.environ.get("E2E_PROJECT") or f"e2e-{secrets.token_hex(3)}"
    stack = Stack(project=project, env={**TEST_ENV, "COMPOSE_PROJECT_NAME": project, **free_host_ports()})
    stack.services, stack.skipped = startable_services(stack)
    stack.compose("build", "model", timeout=900)
    stack.up()
    return stack


def startable_services(project: ComposeProject) -> tuple[list[str], dict[str, str]]:
    """The project's services that can start here (built, or their image present or pullable); why the others cannot."""
    services: list[str] = []
    skipped: dict[str, str] = {}
    for name, service in project.config()["services"].items():
        image = service.get("image", "")
        if "build" in service or image_available(image):
            services.append(name)
        else:
            skipped[name] = f"image {image} is neither present nor pullable here (no registry)"
    return services, skipped


def loaded_versions(stack: Stack, container: str, model: str) -> set[str]:
    """What a replica's /metrics says it serves (model_info lists exactly the loaded versions)."""
    versions = set()
    for line in stack.replica_metrics(container).splitlines():
        if line.startswith("model_server_model_info{") and f'model="{model}"' in line:
            versions.add(line.split('version="', 1)[1].split('"', 1)[0])
    return versions


def every_replica_serves(stack: Stack, model: str, versions: set[str]) -> bool | None:
    """True when every model replica serves exactly ``versions`` of ``model``; None (not yet) otherwise."""
    return all(loaded_versions(stack, c, model) == versions for c in stack.container_ids("model")) or None


def feature_counters_at_zero(stack: Stack, model: str, per_replica: int) -> None:
    """Wait until Prometheus has scraped each of ``model``'s ``per_replica`` bin counters at 0 on every replica.

    Only then does ``increase()`` count every value sent: a counter first scraped after traffic reached it
    starts its series there and counts nothing before it (one replica's counters alone would leave the
    others' values out of the drift rules' sums)."""
    replicas = len(stack.container_ids("model"))
    query = f'count by (instance) (model_server_feature_bin_total{{model="{model}"}} == 0)'

    def scraped() -> bool | None:
        counts = [float(r["value"][1]) for r in stack.query(query)]
        return (len(counts) == replicas and all(c == per_replica for c in counts)) or None

    wait_for(f"{model}'s bin counters at 0 on all {replicas} replicas in Prometheus", scraped, timeout=60, interval=2)
