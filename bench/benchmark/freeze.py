"""Freezing the systems that are up but not measured, so that they take no CPU from the one that is.

A comparison group's systems stay up together until the group's paired rounds (:mod:`.interleaved`),
and idle is not idle enough: the stack's Docker health checks (a Python process per replica every
5 s, and the engine's ``exec``) and its pollers took 0.1 to 0.2 core while MLServer was measured. So
for each measured turn (a warm-up and a measured run) every other system that is up is frozen:

* a container system: ``docker pause`` of each of its containers (the stack's nginx and replicas),
  ``docker unpause`` after;
* a host process (the tutorial app, MLServer): ``SIGSTOP`` to every process of its tree, the root
  first (so it starts no new child meanwhile), ``SIGCONT`` after, the children first.

:func:`frozen` is a context manager that always thaws in its ``finally``, also on an exception or
an interruption (``KeyboardInterrupt``, or ``SystemExit`` from SIGTERM); what a system has frozen
is recorded on it (``System.frozen``) before each pause or signal, so that a freeze cut short is
undone too, and :func:`thaw` (idempotent) is also what :func:`.measure.stop` does before stopping a
system: a paused container or a stopped process is never left behind. A freeze lasts one turn: at
most :data:`~.settings.MAX_FREEZE_S` seconds of warm-up and measurement, plus the measured system's
answer check (1 s, at most 6 s) and the pauses themselves, so under 30 s in the worst case and
about 15 s as a rule: a frozen replica's gunicorn master and
workers wake up together, and after a freeze longer than the worker timeout (``GUNICORN_TIMEOUT``,
30 s) the master could take a worker that has not yet sent its heartbeat for hung and kill it.

The choice of what to freeze (:func:`targets`) and the order of freezing and thawing are pure and
take their Docker and signal operations as an argument (:class:`Ops`), so they are unit-tested
with fakes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tests.support.commands import Failed, run

if TYPE_CHECKING:
    from .systems import System


class Ops(Protocol):
    """What freezing needs from Docker and the kernel."""

    def pause(self, container_id: str) -> None: ...

    def unpause(self, container_id: str) -> None: ...

    def signal(self, pid: int, sig: int) -> None: ...

    def children(self, pid: int) -> list[int]: ...


@dataclass
class Frozen:
    """What one system has frozen: its containers (paused) and processes (stopped), in that order."""

    containers: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


class Live:
    """The real operations: the docker CLI, signals, psutil."""

    def pause(self, container_id: str) -> None:
        run(["docker", "pause", container_id], timeout=30)

    def unpause(self, container_id: str) -> None:
        run(["docker", "unpause", container_id], timeout=30, check=False)  # fails if it is not paused: fine
        state = run(["docker", "inspect", "-f", "{{.State.Paused}}", container_id], timeout=30, check=False)
        if state.strip() == "true":
            raise Failed(f"container {container_id[:12]} is still paused after docker unpause")

    def signal(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def children(self, pid: int) -> list[int]:
        import psutil  # the bench venv's; the unit tests (fakes) run without it

        try:
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


LIVE = Live()


def targets(system: System, children: Callable[[int], list[int]]) -> tuple[list[str], list[int]]:
    """What freezing ``system`` stops: all its containers, and its host process tree (the root first)."""
    pids = [] if system.pid is None else [system.pid, *children(system.pid)]
    return [container.id for container in system.containers], pids


def freeze(system: System, ops: Ops = LIVE) -> None:
    """Pause ``system``'s containers and stop its processes (nothing if it is frozen already)."""
    if system.frozen is not None:
        return
    done = system.frozen = Frozen()
    containers, pids = targets(system, ops.children)
    for pid in pids:
        done.pids.append(pid)  # recorded first: an interrupted freeze is thawed too
        with suppress(ProcessLookupError):
            ops.signal(pid, signal.SIGSTOP)
    for container_id in containers:
        done.containers.append(container_id)
        ops.pause(container_id)


def thaw(system: System, ops: Ops = LIVE) -> None:
    """Undo :func:`freeze` (nothing if ``system`` is not frozen): every container and process is tried,
    then the first failure is raised; a container that could not be unpaused stays recorded, so that
    the next thaw (:func:`.measure.stop` does one) tries it again."""
    done, system.frozen = system.frozen, None
    if done is None:
        return
    errors: list[Exception] = []
    still_paused: list[str] = []
    for container_id in reversed(done.containers):
        try:
            ops.unpause(container_id)
        except (Failed, OSError) as exc:
            errors.append(exc)
            still_paused.append(container_id)
    if still_paused:
        system.frozen = Frozen(containers=still_paused[::-1])
    for pid in reversed(done.pids):  # the children first, the root last
        with suppress(ProcessLookupError):
            ops.signal(pid, signal.SIGCONT)
    if errors:
        raise Failed(f"thawing {system.key}: {errors[0]}") from errors[0]


def thaw_all(systems: Sequence[System], ops: Ops = LIVE) -> None:
    """:func:`thaw` each of ``systems``, all of them even when one fails; then the first failure is raised."""
    errors: list[Failed] = []
    for system in systems:
        try:
            thaw(system, ops)
        except Failed as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@contextmanager
def frozen(systems: Sequence[System], ops: Ops = LIVE) -> Iterator[None]:
    """``systems`` frozen for the body of the ``with``, and thawed after it, whatever happens."""
    try:
        for system in systems:
            freeze(system, ops)
        yield
    finally:
        thaw_all(systems, ops)
