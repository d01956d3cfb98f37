"""bench.benchmark.freeze: what gets frozen, in which order, and that it is always thawed (fakes, no Docker)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.benchmark.freeze import Frozen, freeze, frozen, targets, thaw
from tests.support.commands import Failed


@dataclass
class Container:
    name: str
    id: str


@dataclass
class System:
    """What freezing reads of a system (bench.benchmark.systems.System, whose readers need psutil)."""

    key: str
    containers: list[Container] = field(default_factory=list)
    pid: int | None = None
    frozen: Any = None


class FakeOps:
    """Records every pause, unpause and signal; a process tree of ``tree`` (pid -> its descendants)."""

    def __init__(self, tree: dict[int, list[int]] | None = None, fail_unpause: str | None = None) -> None:
        self.tree = tree or {}
        self.fail_unpause = fail_unpause
        self.calls: list[tuple[str, object]] = []

    def pause(self, container_id: str) -> None:
        self.calls.append(("pause", container_id))

    def unpause(self, container_id: str) -> None:
        if container_id == self.fail_unpause:
            raise Failed(f"docker unpause {container_id} failed")
        self.calls.append(("unpause", container_id))

    def signal(self, pid: int, sig: int) -> None:
        self.calls.append((signal.Signals(sig).name, pid))

    def children(self, pid: int) -> list[int]:
        return self.tree.get(pid, [])

    def paused(self) -> set[object]:
        """What is frozen now: paused containers and stopped pids."""
        state: set[object] = set()
        for call, what in self.calls:
            if call in ("pause", "SIGSTOP"):
                state.add(what)
            else:
                state.discard(what)
        return state


def stack() -> System:
    names = ("model-1", "model-2", "model-3", "nginx-1")
    return System("stack", containers=[Container(name, f"id-{name}") for name in names])


def host(pid: int = 100) -> System:
    return System("mlserver", pid=pid)


def test_a_container_system_freezes_all_its_containers_and_a_host_system_its_whole_tree() -> None:
    tree = {100: [101, 102, 103]}
    assert targets(stack(), tree.get) == (["id-model-1", "id-model-2", "id-model-3", "id-nginx-1"], [])
    assert targets(host(), lambda pid: tree[pid]) == ([], [100, 101, 102, 103])


def test_a_process_tree_is_stopped_root_first_and_continued_root_last() -> None:
    ops = FakeOps({100: [101, 102]})
    system = host()
    freeze(system, ops)
    assert ops.calls == [("SIGSTOP", 100), ("SIGSTOP", 101), ("SIGSTOP", 102)]
    thaw(system, ops)
    assert ops.calls[3:] == [("SIGCONT", 102), ("SIGCONT", 101), ("SIGCONT", 100)]
    assert system.frozen is None


def test_the_bystanders_are_frozen_inside_and_thawed_after() -> None:
    ops = FakeOps({100: [101]})
    bystanders = [stack(), host()]
    with frozen(bystanders, ops):
        assert ops.paused() == {"id-model-1", "id-model-2", "id-model-3", "id-nginx-1", 100, 101}
    assert ops.paused() == set()
    assert all(system.frozen is None for system in bystanders)


def test_they_are_thawed_after_an_exception_or_an_interruption() -> None:
    for error in (Failed("wrk failed"), KeyboardInterrupt(), SystemExit(143)):
        ops = FakeOps({100: [101]})
        with pytest.raises(type(error)), frozen([stack(), host()], ops):
            raise error
        assert ops.paused() == set()


def test_a_freeze_cut_short_is_undone_too() -> None:
    class Interrupted(FakeOps):
        def pause(self, container_id: str) -> None:
            super().pause(container_id)
            if container_id == "id-model-2":
                raise KeyboardInterrupt

    ops = Interrupted()
    with pytest.raises(KeyboardInterrupt), frozen([stack()], ops):
        pytest.fail("the body must not run")
    assert ops.paused() == set()
    assert ("unpause", "id-model-2") in ops.calls  # recorded before it was paused


def test_every_system_is_thawed_even_when_one_fails_to() -> None:
    ops = FakeOps({100: [101]}, fail_unpause="id-model-2")
    first, second = stack(), host()
    with pytest.raises(Failed, match="thawing stack: docker unpause id-model-2 failed"), frozen([first, second], ops):
        pass
    assert ops.paused() == {"id-model-2"}  # the one docker refused; everything else runs again
    assert first.frozen == Frozen(containers=["id-model-2"]) and second.frozen is None

    ops.fail_unpause = None
    thaw(first, ops)  # the next thaw (stop's) tries it again
    assert ops.paused() == set()
    assert first.frozen is None


def test_thawing_is_idempotent_and_freezing_twice_freezes_once() -> None:
    ops = FakeOps()
    system = stack()
    thaw(system, ops)  # never frozen: nothing to do (what stop does first)
    freeze(system, ops)
    freeze(system, ops)
    thaw(system, ops)
    thaw(system, ops)
    assert [call for call, _ in ops.calls].count("pause") == 4
    assert [call for call, _ in ops.calls].count("unpause") == 4


def test_a_process_gone_meanwhile_is_skipped() -> None:
    class Gone(FakeOps):
        def signal(self, pid: int, sig: int) -> None:
            super().signal(pid, sig)
            if pid == 101:
                raise ProcessLookupError(pid)

    ops = Gone({100: [101, 102]})
    with frozen([host()], ops):
        pass
    assert ops.paused() == set()
    assert ops.calls[-3:] == [("SIGCONT", 102), ("SIGCONT", 101), ("SIGCONT", 100)]
