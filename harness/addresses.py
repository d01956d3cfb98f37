"""Where tests and the benchmark send traffic: this machine's loopback, or a container the run started.

Nothing else, not even this machine's own external address: load sent there would also reach
whatever else listens on it, and it is not the project's to load. A :class:`Target` (host and
port) is made in exactly two ways:

* :meth:`Target.loopback`: ``127.0.0.1``, for host processes and ports published on loopback;
* :meth:`Target.container`: the address ``docker inspect`` gives a container, refused unless the
  container carries the labels the run gave the containers it started (its id, its compose
  project), has an address of its own (not the host's network) and exactly one, in a private range.

Every URL and connection the benchmark and the test drivers build comes from a Target;
tests/unit/bench/test_addresses.py reads their code and fails on any other way to an address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


class AddressRefused(ValueError):
    """An address that is not loopback nor one of the run's own containers."""


@dataclass(frozen=True)
class Target:
    """A host and port that may receive traffic; build it with :meth:`loopback` or :meth:`container`."""

    host: str
    port: int
    where: str  # what the address is, for logs and the report: "loopback", "container <name>"

    @classmethod
    def loopback(cls, port: int) -> Target:
        return cls(LOOPBACK, port, "loopback")

    @classmethod
    def container(cls, inspected: Mapping[str, Any], labels: Mapping[str, str], port: int) -> Target:
        """The container's own address, from its ``docker inspect`` document; see :func:`container_address`."""
        name = str(inspected.get("Name", "?")).lstrip("/")
        return cls(container_address(inspected, labels), port, f"container {name}")

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.where})"


def container_address(inspected: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The address of a container on its (only) network, from its ``docker inspect`` document.

    ``labels`` are what the run labelled the containers it started with (at least one); the
    container must carry every one. Refused: a container of someone else, one on the host's
    network (its address would be this machine's), one with no address or several, and any
    address outside the private ranges Docker's bridges use.
    """
    name = str(inspected.get("Name", "?")).lstrip("/")
    carried = inspected.get("Config", {}).get("Labels") or {}
    if not labels or any(carried.get(key) != value for key, value in labels.items()):
        raise AddressRefused(f"container {name} was not started by this run (labels {dict(labels)} wanted)")
    mode = inspected.get("HostConfig", {}).get("NetworkMode", "")
    if mode == "host" or mode.startswith("container:"):
        raise AddressRefused(f"container {name} shares another network stack ({mode}): it has no address of its own")
    networks = inspected.get("NetworkSettings", {}).get("Networks") or {}
    found = [network["IPAddress"] for network in networks.values() if network.get("IPAddress")]
    if len(found) != 1:
        raise AddressRefused(f"container {name} has {len(found)} addresses ({found}); expected exactly one")
    address = ipaddress.ip_address(found[0])
    if not address.is_private or address.is_loopback or address.is_unspecified:
        raise AddressRefused(f"container {name}'s address {address} is not on a private bridge network")
    return str(address)


def free_port() -> int:
    """A TCP port no socket of this machine is bound to now (on any interface)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]
