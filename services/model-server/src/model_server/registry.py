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
from .rollout import PRIMARY, Routing

NO_ROUTING = Routing()


class State(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, eq=False)
class Servable:
    """One loaded, warmed-up model version; ``predict`` goes through the worker's micro-batcher."""

    predictor: Predictor
    batcher: MicroBatcher | None = None  # shared by every version; None: every request calls the model itself

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
        if self.batcher is None:
            return self.predictor.predict(rows, with_probabilities)
        return self.batcher.predict(self.predictor, rows, with_probabilities)


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
    """Immutable: model name -> version -> servable, the state of every known version, and each
    model's rollout (:class:`.rollout.Routing`) and config problem (a model whose config.json is
    invalid keeps its last valid configuration)."""

    models: Mapping[str, Mapping[int, Servable]] = field(default_factory=dict)
    statuses: tuple[VersionStatus, ...] = ()
    routes: Mapping[str, Routing] = field(default_factory=dict)
    config_errors: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        models: Mapping[str, Mapping[int, Servable]],
        statuses: tuple[VersionStatus, ...],
        routes: Mapping[str, Routing] | None = None,
        config_errors: Mapping[str, str] | None = None,
    ) -> Snapshot:
        frozen = {name: MappingProxyType(dict(sorted(versions.items()))) for name, versions in sorted(models.items())}
        served = MappingProxyType({n: v for n, v in frozen.items() if v})
        return cls(
            models=served,
            statuses=statuses,
            routes=MappingProxyType({n: r for n, r in (routes or {}).items() if n in served}),
            config_errors=MappingProxyType(dict(config_errors or {})),
        )

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

    def routed(self, name: str, draw: float) -> Servable:
        """The version the model's traffic split gives ``draw`` (the newest loaded without a split); UnknownModel."""
        versions = self.models.get(name)
        if not versions:
            raise UnknownModel(name)
        picked = self.route(name).pick(draw)
        return versions[picked] if picked in versions else versions[max(versions)]

    def primary(self, name: str) -> Servable:
        """The version that takes the largest share of the model's traffic (the newest loaded without a split)."""
        versions = self.models.get(name)
        if not versions:
            raise UnknownModel(name)
        roles = self.route(name).roles(versions)
        return next((versions[v] for v, r in roles.items() if PRIMARY in r), versions[max(versions)])

    def route(self, name: str) -> Routing:
        return self.routes.get(name) or NO_ROUTING

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
