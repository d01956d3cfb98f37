"""System.freeze / thaw and frozen(): what gets frozen, in which order, and that it is always thawed.

The Docker and signal operations are a fake system's methods, which record what they were asked to do."""

import signal
from dataclasses import dataclass, field

import pytest

from bench.benchmark.systems import System, frozen
from harness.commands import Failed


@dataclass
class Container:
    name: str
    id: str


@dataclass
class Fake(System):
    """A system whose pause/unpause/signal/children are recorded; ``tree``: pid -> its descendants."""

    tree: dict[int, list[int]] = field(default_factory=dict)
    fail_unpause: str | None = None
    calls: list[tuple[str, object]] = field(default_factory=list)

    def pause(self, cid: str) -> None:
        self.calls.append(("pause", cid))

    def unpause(self, cid: str) -> None:
        if cid == self.fail_unpause:
            raise Failed(f"docker unpause {cid} failed")
        self.calls.append(("unpause", cid))

    def send(self, pid: int, sig: int) -> None:
        self.calls.append((signal.Signals(sig).name, pid))

    def children(self, pid: int) -> list[int]:
        return self.tree.get(pid, [])

    def still_frozen(self) -> set[object]:
        state: set[object] = set()
        for call, what in self.calls:
            (state.add if call in ("pause", "SIGSTOP") else state.discard)(what)
        return state


def stack() -> Fake:
    names = ("model-1", "model-2", "model-3", "nginx-1")
    return Fake("stack", "c", containers=[Container(name, f"id-{name}") for name in names])  # type: ignore[misc]


def host(pid: int = 100, **extra: object) -> Fake:
    return Fake("mlserver", "d", pid=pid, tree={100: [101, 102]}, **extra)  # type: ignore[arg-type]


def test_a_container_system_pauses_all_its_containers() -> None:
    system = stack()
    system.freeze()
    assert system.calls == [("pause", f"id-{name}") for name in ("model-1", "model-2", "model-3", "nginx-1")]
    system.thaw()
    assert system.calls[4:] == [("unpause", f"id-{name}") for name in ("nginx-1", "model-3", "model-2", "model-1")]
    assert system.still_frozen() == set() and (system.paused, system.stopped) == ([], [])


def test_a_process_tree_is_stopped_root_first_and_continued_root_last() -> None:
    system = host()
    system.freeze()
    assert system.calls == [("SIGSTOP", 100), ("SIGSTOP", 101), ("SIGSTOP", 102)]
    system.thaw()
    assert system.calls[3:] == [("SIGCONT", 102), ("SIGCONT", 101), ("SIGCONT", 100)]


def test_the_bystanders_are_frozen_inside_and_thawed_after() -> None:
    bystanders = [stack(), host()]
    with frozen(bystanders):
        assert bystanders[0].still_frozen() == {"id-model-1", "id-model-2", "id-model-3", "id-nginx-1"}
        assert bystanders[1].still_frozen() == {100, 101, 102}
    assert all(system.still_frozen() == set() for system in bystanders)


@pytest.mark.parametrize("error", [Failed("wrk failed"), KeyboardInterrupt(), SystemExit(143)])
def test_they_are_thawed_after_an_exception_or_an_interruption(error: BaseException) -> None:
    bystanders = [stack(), host()]
    with pytest.raises(type(error)), frozen(bystanders):
        raise error
    assert all(system.still_frozen() == set() for system in bystanders)


def test_a_freeze_cut_short_is_undone_too() -> None:
    class Interrupted(Fake):
        def pause(self, cid: str) -> None:
            super().pause(cid)
            if cid == "id-model-2":
                raise KeyboardInterrupt

    system = Interrupted("stack", "c", containers=stack().containers)
    with pytest.raises(KeyboardInterrupt), frozen([system]):
        pytest.fail("the body must not run")
    assert system.still_frozen() == set()
    assert ("unpause", "id-model-2") in system.calls  # recorded before it was paused
    assert ("unpause", "id-model-3") not in system.calls  # never paused


def test_every_system_is_thawed_even_when_one_fails_to_and_the_next_thaw_tries_again() -> None:
    first, second = stack(), host()
    first.fail_unpause = "id-model-2"
    with pytest.raises(Failed, match="thawing stack: docker unpause id-model-2 failed"), frozen([first, second]):
        pass
    assert first.still_frozen() == {"id-model-2"} and first.paused == ["id-model-2"]
    assert second.still_frozen() == set()
    first.fail_unpause = None
    first.thaw()  # what stop() does before stopping
    assert first.still_frozen() == set() and first.paused == []


def test_thawing_is_idempotent_and_freezing_twice_freezes_once() -> None:
    system = stack()
    system.thaw()  # never frozen: nothing to do
    system.freeze()
    system.freeze()
    system.thaw()
    system.thaw()
    assert [call for call, _ in system.calls].count("pause") == 4
    assert [call for call, _ in system.calls].count("unpause") == 4


def test_a_process_gone_meanwhile_is_skipped() -> None:
    class Gone(Fake):
        def send(self, pid: int, sig: int) -> None:
            super().send(pid, sig)
            if pid == 101:
                raise ProcessLookupError(pid)

    system = Gone("mlserver", "d", pid=100, tree={100: [101, 102]})
    with frozen([system]):
        pass
    assert system.calls[-3:] == [("SIGCONT", 102), ("SIGCONT", 101), ("SIGCONT", 100)]
    assert system.still_frozen() == set()
