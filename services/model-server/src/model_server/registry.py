"""The live registry: which model versions this worker serves right now, and their states.

Requests read :attr:`Registry.snapshot` once and work on that :class:`Snapshot` to the end, so a
request finishes on the version it started on, whatever the repository poller does meanwhile.
The poller (:mod:`model_server.model_manager`) is the only writer: it builds a new snapshot and
publishes it with one attribute assignment — atomic under threads and greenlets alike — after
a new version was loaded, verified and warmed up. An unloaded version stays in memory for as
long as a request still holds the snapshot that contains it.

Besides what serves, the registry keeps every version's state for the repository index
(``POST /v2/repository/index``) and the metrics: READY (serving), LOADING, or UNAVAILABLE with
a reason (refused, or not wanted by the model's version policy), as Triton and MLServer name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from .batching import MicroBatcher
from .predictor import ModelDescription, Prediction, Predictor


class State(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, eq=False)
class Servable:
    """One loaded, warmed-up model version; ``predict`` goes through its own micro-batcher."""

    predictor: Predictor
    batcher: MicroBatcher | None = None  # None: every request calls the model itself

    @property
    def description(self) -> ModelDescription:
        return self.predictor.description

    @property
    def name(self) -> str:
        return self.predictor.description.name

    @property
    def version(self) -> int:
        return int(self.predictor.description.version)

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        return (self.batcher or self.predictor).predict(rows, with_probabilities)


@dataclass(frozen=True)
class VersionStatus:
    name: str
    version: int
    state: State
    reason: str = ""
    failed: bool = False  # UNAVAILABLE because it was refused (ModelLoadFailing), not by policy


class UnknownModel(LookupError):
    pass


class UnknownVersion(LookupError):
    pass


@dataclass(frozen=True)
class Snapshot:
    """Immutable: model name -> version -> servable, and the state of every known version."""

    models: Mapping[str, Mapping[int, Servable]] = field(default_factory=dict)
    statuses: tuple[VersionStatus, ...] = ()

    @classmethod
    def build(cls, models: Mapping[str, Mapping[int, Servable]], statuses: tuple[VersionStatus, ...]) -> Snapshot:
        frozen = {name: MappingProxyType(dict(sorted(versions.items()))) for name, versions in sorted(models.items())}
        return cls(models=MappingProxyType({n: v for n, v in frozen.items() if v}), statuses=statuses)

    def __bool__(self) -> bool:
        return bool(self.models)

    def servable(self, name: str, version: int | None = None) -> Servable:
        """The requested version, or the newest loaded one; UnknownModel / UnknownVersion otherwise."""
        versions = self.models.get(name)
        if not versions:
            raise UnknownModel(name)
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownVersion(name, version)
        return versions[version]

    def servables(self) -> list[Servable]:
        return [servable for versions in self.models.values() for servable in versions.values()]


class Registry:
    """Holds the current :class:`Snapshot` of one worker."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
