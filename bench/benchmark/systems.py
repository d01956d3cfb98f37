"""A system under test: where it answers, what it is sent, and what it costs while it runs.

:class:`System` is what the measurement sees (a :class:`~tests.support.addresses.Target`, the
request's path and body, and CPU and memory readers); :mod:`.hosts` starts the host processes
(the tutorial app, MLServer) and :mod:`.containers` the Docker ones (one replica, the stack).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.addresses import Target

from .resources import Container, engine_pids, pids_cpu, process_tree_cpu, process_tree_memory
from .usage import Throttling

if TYPE_CHECKING:
    from .context import Context
    from .freeze import Frozen


class NotStarted(RuntimeError):
    """A system was asked where it answers before it was started."""


@dataclass
class System:
    key: str
    label: str
    path: str = "/predict"
    script: str = "predict.lua"  # the Lua script (bench/wrk) that makes wrk's request
    settings: dict[str, Any] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    engine: dict[str, int] = field(default_factory=dict)
    pid: int | None = None
    reached_at: Target | None = None  # set by start()
    frozen: Frozen | None = None  # what .freeze has paused or stopped, until it thaws it

    @property
    def target(self) -> Target:
        if self.reached_at is None:
            raise NotStarted(f"{self.key} is not running")
        return self.reached_at

    def start(self, ctx: Context) -> None:
        raise NotImplementedError

    def stop(self, ctx: Context) -> None:
        raise NotImplementedError

    def after_runs(self, ctx: Context) -> dict[str, Any]:
        """What a system measures after its runs, while it still runs (added to its results)."""
        return {}

    def body(self, row: list[float]) -> Any:
        return {"features": row}

    def prediction(self, answer: Any) -> Any:
        return answer["prediction"][0]

    def find_engine(self) -> None:
        self.engine = engine_pids([c.id for c in self.containers])

    # CPU seconds per component (system under test; Docker engine), and memory per component.
    def cpu(self) -> dict[str, float]:
        values: dict[str, float] = {}
        if self.pid is not None:
            values["process tree"] = process_tree_cpu(self.pid)
        for container in self.containers:
            seconds = container.cpu_seconds()
            if seconds is not None:
                values[container.name] = seconds
        return values

    def engine_cpu(self) -> dict[str, float]:
        return pids_cpu(self.engine)

    def throttling(self) -> dict[str, Throttling]:
        values = {}
        for container in self.containers:
            stat = container.throttling()
            if stat is not None:
                values[container.name] = stat
        return values

    def memory(self) -> dict[str, dict[str, Any]]:
        values: dict[str, dict[str, Any]] = {}
        if self.pid is not None:
            values["process tree"] = process_tree_memory(self.pid)
        for container in self.containers:
            values[container.name] = container.memory()
        return values
