"""The stack on a single-node Docker Swarm, shared by the tests of this folder.

`swarm_node` makes this machine a one-node swarm if it is not in one (and leaves it again
afterwards); `swarm_stack` builds the model image under a tag of its own, deploys
``docker-compose.yml`` + ``docker-compose.swarm.yml`` with ``docker stack deploy`` under a unique
stack name on free host ports, and removes the stack with its configs, secrets, volumes and
networks at the end, also when a test failed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.addresses import Target
from harness.commands import ROOT, run
from harness.compose import COMPOSE_FILE, SWARM_FILE, TEST_ENV, ComposeProject, free_host_ports
from harness.docker import image_available
from harness.waiting import NotYet, wait_for

STACK_LABEL = "com.docker.stack.namespace"


def docker_info(template: str) -> str:
    return run(["docker", "info", "--format", template], timeout=30).strip()


# --- the swarm ---------------------------------------------------------------------------------
@dataclass
class SwarmNode:
    initialised_here: bool
    gwbridge_existed: bool


@pytest.fixture(scope="session")
def swarm_node() -> Iterator[SwarmNode]:
    try:
        state = docker_info("{{.Swarm.LocalNodeState}}")
    except (AssertionError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no Docker engine here: {exc}")
    gwbridge_existed = bool(run(["docker", "network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]).strip())
    if state == "active":
        if docker_info("{{.Swarm.ControlAvailable}}") != "true":
            pytest.skip("this node is a swarm worker: the stack can only be deployed from a manager")
        nodes = int(docker_info("{{.Swarm.Nodes}}") or "0")
        if nodes != 1:
            pytest.skip(f"this node belongs to a {nodes}-node swarm; the test deploys on a single-node swarm only")
        node = SwarmNode(initialised_here=False, gwbridge_existed=gwbridge_existed)
        print("\n[swarm] this node already is a single-node swarm manager: using it, leaving it as it is")
    elif state == "inactive":
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], timeout=60)
        node = SwarmNode(initialised_here=True, gwbridge_existed=gwbridge_existed)
        print("\n[swarm] docker swarm init --advertise-addr 127.0.0.1 (left again at the end)")
    else:
        pytest.skip(f"swarm state of this node is {state!r}; expected inactive or active")
    try:
        yield node
    finally:
        if node.initialised_here:
            run(["docker", "swarm", "leave", "--force"], timeout=120)
            if not node.gwbridge_existed:
                # Created by the swarm for its tasks' outside traffic; not removed by `leave`.
                run(["docker", "network", "rm", "docker_gwbridge"], timeout=60, check=False)
            assert docker_info("{{.Swarm.LocalNodeState}}") == "inactive"


# --- the stack ---------------------------------------------------------------------------------
@dataclass
class SwarmStack:
    name: str
    env: dict[str, str]
    image: str
    api_key: str
    grafana_password: str
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def nginx_url(self) -> str:
        """nginx's port, published in host mode on this (only) node, reached on loopback."""
        return Target.loopback(int(self.env["HTTP_PORT"])).url()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def stack_cmd(self, *args: str, timeout: float = 300) -> str:
        return run(["docker", "stack", *args], timeout=timeout, env={**os.environ, **self.env})

    def inspect_service(self, name: str) -> dict[str, Any]:
        return json.loads(run(["docker", "service", "inspect", self.service(name)]))[0]

    def running_tasks(self, name: str) -> list[dict[str, Any]]:
        """Tasks of a service that are meant to run and do run (inspected, newest first)."""
        ids = run(["docker", "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running",
                   self.service(name)]).split()  # fmt: skip
        if not ids:
            return []
        tasks = json.loads(run(["docker", "inspect", "--type", "task", *ids]))
        return [t for t in tasks if t["Status"]["State"] == "running"]

    def task_ips(self, name: str) -> dict[str, str]:
        """Running tasks of a service: address on the stack's network -> task id."""
        network = f"{self.name}_default"
        ips = {}
        for task in self.running_tasks(name):
            for attachment in task.get("NetworksAttachments", []):
                if attachment["Network"]["Spec"]["Name"] == network:
                    ips[attachment["Addresses"][0].split("/")[0]] = task["ID"]
        return ips

    def container_of(self, task: dict[str, Any]) -> str:
        return task["Status"]["ContainerStatus"]["ContainerID"]

    def one_container(self, name: str) -> str:
        tasks = self.running_tasks(name)
        if not tasks:  # e.g. between the old and the new task of an update
            raise NotYet(f"no running task of {name}")
        return self.container_of(tasks[0])

    def http_inside(self, service: str, url: str, headers: dict[str, str] | None = None) -> str:
        """GET ``url`` with wget inside a task of ``service`` (its published port may be on the mesh)."""
        args = ["wget", "-q", "-O", "-"]
        for key, value in (headers or {}).items():
            args += ["--header", f"{key}: {value}"]
        return run(["docker", "exec", self.one_container(service), *args, url], timeout=30)

    def deploy(self, **overrides: str) -> None:
        """`docker stack deploy` (again) with this stack's settings, changed by ``overrides``."""
        self.env.update(overrides)
        # --resolve-image never: the image exists on this (only) node and no registry is asked.
        self.stack_cmd("deploy", "--detach=true", "--resolve-image", "never",
                       "-c", str(COMPOSE_FILE), "-c", str(SWARM_FILE), self.name)  # fmt: skip

    def prometheus_query(self, promql: str) -> list[dict[str, Any]]:
        url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = json.loads(self.http_inside("prometheus", url))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alertmanager_alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in json.loads(self.http_inside("alertmanager", "http://127.0.0.1:9093/api/v2/alerts"))
                if a["labels"].get("alertname") == name]  # fmt: skip

    def prometheus_targets(self, job: str) -> list[dict[str, Any]]:
        body = json.loads(self.http_inside("prometheus", "http://127.0.0.1:9090/api/v1/targets?state=active"))
        return [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == job]

    def converged(self) -> bool:
        """Every service runs its desired number of tasks (a task with a HEALTHCHECK only counts as
        running once healthy)."""
        lines = run(["docker", "service", "ls", "--filter", f"label={STACK_LABEL}={self.name}",
                     "--format", "{{.Name}} {{.Replicas}}"]).splitlines()  # fmt: skip
        if len(lines) < 6:
            return False
        for line in lines:
            match = re.fullmatch(r"(\S+) (\d+)/(\d+).*", line.strip())
            if not match or match.group(2) != match.group(3):
                return False
        return True


def merged_config(env: dict[str, str]) -> dict[str, Any]:
    """What `docker stack deploy` will deploy, as the docker CLI's own loader reads it."""
    result = subprocess.run(
        ["docker", "stack", "config", "-c", str(COMPOSE_FILE), "-c", str(SWARM_FILE)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **env}, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(
            "docker stack config refuses docker-compose.yml + docker-compose.swarm.yml:\n"
            f"{result.stderr.strip()}\n(docker stack deploy reads only the Compose v3 subset: no top-level "
            "`name:`, `depends_on` as a list, no `host_ip` in long-syntax ports)",
            pytrace=False,
        )
    return yaml.safe_load(result.stdout)


def remove_stack(name: str) -> None:
    """`docker stack rm`, then wait until its containers and networks are gone and remove what the
    stack leaves behind on purpose (volumes) or by accident (configs, secrets)."""
    run(["docker", "stack", "rm", name], timeout=120, check=False)
    label = f"label={STACK_LABEL}={name}"

    def gone() -> bool:
        containers = run(["docker", "ps", "-aq", "--filter", label]).split()
        networks = run(["docker", "network", "ls", "-q", "--filter", label]).split()
        return not containers and not networks

    wait_for(f"stack {name}'s containers and networks to be removed", gone, timeout=150, interval=2)
    for kind in ("config", "secret", "volume"):
        leftovers = run(["docker", kind, "ls", "-q", "--filter", label]).split()
        if leftovers:
            run(["docker", kind, "rm", *leftovers], timeout=60)


@pytest.fixture(scope="session")
def swarm_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmStack]:
    name = os.environ.get("SWARM_STACK") or f"swarm-{secrets.token_hex(3)}"
    image = f"model-server:{name}"
    secret_dir: Path = tmp_path_factory.mktemp("swarm-secrets")
    api_key, grafana_password = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    (secret_dir / "api_keys").write_text(api_key + "\n")
    (secret_dir / "grafana_admin_password").write_text(grafana_password)
    env = {
        **TEST_ENV,
        "MODEL_IMAGE": image,
        **free_host_ports(),
        "API_KEYS_SECRET_FILE": str(secret_dir / "api_keys"),
        "GRAFANA_ADMIN_PASSWORD_SECRET_FILE": str(secret_dir / "grafana_admin_password"),
    }
    stack = SwarmStack(name=name, env=env, image=image, api_key=api_key, grafana_password=grafana_password)

    config = merged_config(env)  # before the swarm is touched: a refused file fails at once
    request.getfixturevalue("swarm_node")
    grafana_image = config["services"]["grafana"]["image"]
    if not image_available(grafana_image):
        # The service, its configs and its secret are deployed all the same, with no task.
        stack.env["GRAFANA_REPLICAS"] = "0"
        stack.skipped["grafana"] = f"image {grafana_image} is neither present nor pullable here (no registry)"

    started = time.monotonic()
    ComposeProject(name, env, files=(COMPOSE_FILE,)).compose("build", "model", timeout=900)
    try:
        stack.deploy()
        try:
            wait_for("every service of the stack to run its tasks", stack.converged, timeout=180, interval=2)
        except AssertionError as exc:
            tasks = run(["docker", "stack", "ps", "--no-trunc", "--format",
                         "{{.Name}} {{.CurrentState}} {{.Error}}", name], check=False)  # fmt: skip
            raise AssertionError(f"{exc}\n{tasks}") from None
        print(f"\n[swarm] stack {name} deployed and converged in {time.monotonic() - started:.0f}s")
        for service, reason in stack.skipped.items():
            print(f"[swarm] not run: {service}: {reason}")
        yield stack
    finally:
        removing = time.monotonic()
        remove_stack(name)  # also after a deploy that failed half-way
        print(f"\n[swarm] stack {name} removed in {time.monotonic() - removing:.0f}s")
        images = [image, f"{image}-v2"]
        present = [i for i in images if subprocess.run(["docker", "image", "inspect", i], capture_output=True,
                                                        timeout=30, check=False).returncode == 0]  # fmt: skip
        if present:
            run(["docker", "image", "rm", *present], timeout=120, check=False)


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
