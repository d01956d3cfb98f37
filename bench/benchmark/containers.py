"""The systems that run in Docker, each reached at its own container's bridge address.

* :class:`Direct`: one model-server replica, ``docker run`` of the built image with the compose
  service's environment and hardening; no port is published, wrk connects to the container.
* :class:`Stack`: the compose project's ``model`` replicas and ``nginx``; nginx's port is not
  published either (the override in :mod:`.context`), wrk connects to nginx's container.

The address is read with ``docker inspect`` from the container this run started, and refused if
the container does not carry the run's labels (:meth:`tests.support.addresses.Target.container`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tests.support.addresses import Target
from tests.support.commands import Failed, run
from tests.support.docker import container_env, inspect
from tests.support.waiting import wait_for

from .client import get_status, post_json
from .model import TUTORIAL_ROW
from .resources import Container
from .systems import System

if TYPE_CHECKING:
    from .context import Context


class Direct(System):
    """One model-server replica, ``docker run`` of the built image, reached at its container's address."""

    def __init__(self, key: str, label: str, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(key, label)
        self.extra_env = extra_env or {}
        self.mounts: list[str] = []  # docker run -v, e.g. a host repository read-only at /models
        self.container_name: str | None = None

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        env = {**ctx.replica_env, "GUNICORN_WORKERS": str(s.direct_workers), **s.model_env, **self.extra_env}
        name = self.container_name = f"bench-{s.bench_id}-{self.key}"
        args = ["docker", "run", "-d", "--name", name]
        for key, value in ctx.run_label.items():
            args += ["--label", f"{key}={value}"]
        args += ["--cpus", str(s.direct_cpus), "--memory", s.direct_memory]
        args += ctx.replica_hardening  # the compose service's, so the replica runs as it does in the stack
        for mount in self.mounts:
            args += ["-v", mount]
        for key, value in sorted(env.items()):
            args += ["-e", f"{key}={value}"]
        container_id = run([*args, s.image], timeout=60).strip()
        self.containers = [Container.of("replica", container_id)]
        target = self.reached_at = Target.container(inspect(container_id), ctx.run_label, ctx.replica_port)
        self.settings = {
            "image": s.image,
            "docker run": f"--cpus {s.direct_cpus} --memory {s.direct_memory} {' '.join(ctx.replica_hardening)}",
            "address": str(target),
            "GUNICORN_WORKERS": s.direct_workers,
            "why": (
                f"the same total gunicorn workers as the stack ({s.replicas} replicas x {s.workers_per_replica}) "
                "and the CPU the "
                f"stack's replicas can use together (min({s.replicas} x {s.model_cpus}, {os.cpu_count()} cores)), "
                "so that stack vs direct isolates nginx and the split into replicas"
            ),
            "environment": {k: v for k, v in env.items() if k != "API_KEYS"},
        }

        def ready() -> bool:
            fmt = "{{.State.Status}} (exit code {{.State.ExitCode}}, OOM-killed: {{.State.OOMKilled}})"
            state = run(["docker", "inspect", "-f", fmt, container_id], timeout=30).strip()
            if not state.startswith("running"):
                logs = run(["docker", "logs", "--tail", "30", container_id], timeout=30, check=False)
                raise Failed(f"container {name} is {state}:\n{logs}")
            return get_status(target, "/v2/health/ready") == 200

        wait_for(f"{name} to be ready", ready, 120)
        self.find_engine()

    def stop(self, ctx: Context) -> None:
        name = self.container_name
        if name is None:
            return
        logs = ctx.settings.run_dir / f"{self.key}.log"
        run(["docker", "logs", "--tail", "300", name], timeout=60, check=False, log_to=logs)
        run(["docker", "rm", "-f", name], timeout=60, check=False)
        self.containers = []
        self.container_name = None
        self.reached_at = None


class Stack(System):
    """``docker compose up -d --build --wait model nginx``: the replicas behind nginx, reached at nginx's container."""

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        project = ctx.project
        project.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", "model", "nginx", timeout=900)
        for container_id in project.container_ids("model") + project.container_ids("nginx"):
            info = inspect(container_id)
            labels = info["Config"]["Labels"]
            name = f"{labels['com.docker.compose.service']}-{labels['com.docker.compose.container-number']}"
            self.containers.append(Container.of(name, info["Id"]))
        self.containers.sort(key=lambda c: c.name)
        replicas = [c for c in self.containers if c.name.startswith("model-")]
        (nginx,) = (c for c in self.containers if c.name.startswith("nginx-"))
        if len(replicas) != s.replicas:
            raise Failed(f"expected {s.replicas} model replicas, compose started {len(replicas)}")
        target = self.reached_at = project.target(nginx.id, ctx.nginx_port)
        self.settings = {
            "compose": f"docker compose -p {s.project} up -d --build --wait model nginx",
            "MODEL_REPLICAS": s.replicas,
            "GUNICORN_WORKERS": s.workers or f"{s.workers_per_replica} (the default: one per CPU of MODEL_CPUS)",
            "MODEL_CPUS": s.model_cpus,
            "MODEL_MEMORY": s.model_memory,
            "NGINX_RATE_LIMIT": s.rate_limit,
            "NGINX_RATE_BURST": s.rate_burst,
            "rate limit note": "raised from the defaults (100r/s, burst 200) so the limiter does not throttle wrk",
            "address": f"{target}; nginx's port is not published (compose override: ports !reset)",
            "features": "every request-path feature on (bench/benchmark/features.py ALL_ON): a host repository "
            "with 2 models x 2 versions, drift counting, a 10 % canary and a 100 % shadow of the served model",
            "model environment": {k: v for k, v in container_env(inspect(replicas[0].id)).items() if k != "API_KEYS"},
        }
        row = {"features": TUTORIAL_ROW}
        wait_for("nginx to answer", lambda: post_json(target, "/predict", row)[0] == 200, 60, interval=0.5)
        self.find_engine()

    def stop(self, ctx: Context) -> None:
        project = ctx.project
        logs = ctx.settings.run_dir / "stack.log"
        logs.write_text(project.compose("logs", "--no-color", "--tail", "300", check=False, timeout=120))
        project.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
        self.containers = []
        self.reached_at = None
