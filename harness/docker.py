"""Docker, outside compose: inspecting containers, finding images, running a compose service's container alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from .commands import run


def inspect(container: str) -> dict[str, Any]:
    """``docker inspect`` of one container."""
    return json.loads(run(["docker", "inspect", container], timeout=30))[0]


def container_env(inspected: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment, from its ``docker inspect`` document."""
    return dict(item.split("=", 1) for item in inspected["Config"]["Env"])


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


def hardening_flags(service: Mapping[str, Any]) -> list[str]:
    """``docker run`` flags for a compose service's hardening, from its ``docker compose config``:
    read-only root, tmpfs mounts, capabilities, security options, user and log driver. A container
    run alone with them runs as the service's containers do, with no list restated by hand."""
    flags = ["--read-only"] if service.get("read_only") else []
    for mount in service.get("tmpfs") or []:
        flags += ["--tmpfs", mount]
    for capability in service.get("cap_drop") or []:
        flags += ["--cap-drop", capability]
    for capability in service.get("cap_add") or []:
        flags += ["--cap-add", capability]
    for option in service.get("security_opt") or []:
        flags += ["--security-opt", option]
    if service.get("user"):
        flags += ["--user", str(service["user"])]
    logging = service.get("logging") or {}
    if logging.get("driver"):
        flags += ["--log-driver", logging["driver"]]
    for key, value in sorted((logging.get("options") or {}).items()):
        flags += ["--log-opt", f"{key}={value}"]
    return flags
