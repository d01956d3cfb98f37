"""The live models: which model versions this worker serves right now, and their states.

Requests read :attr:`LiveModels.snapshot` once and work on that :class:`Snapshot` to the end, so a
request finishes on the version it started on, whatever the repository poller does meanwhile.
The poller (:mod:`.repository_poller`) is the only writer: it builds a new snapshot and
publishes it with one attribute assignment — atomic under threads and greenlets alike — after
a new version was loaded, verified and warmed up. An unloaded version stays in memory for as
long as a request still holds the snapshot that contains it.

:meth:`Snapshot.route` is a request's routing step: it returns a :class:`Route`, the version that
answers and the one that shadows it, which the endpoint passes on (the decision: :mod:`.routing`).

Besides what serves, the snapshot keeps every version's state for the repository index
(``POST /v2/repository/index``) and the metrics: READY (serving), LOADING, or UNAVAILABLE with
a reason (refused, or not wanted by the model's version policy), as Triton and MLServer name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from ..monitoring.metrics import VERSION_WORKERS
from .predictor import ModelDescription, Predictor
from .routing import NO_ROUTING, Routing, Unversioned, choose


class State(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, eq=False)
class Servable:
    """One loaded, warmed-up model version (its requests go through the worker's micro-batcher)."""

    predictor: Predictor

    @property
    def description(self) -> ModelDescription:
        return self.predictor.description

    @property
    def name(self) -> str:
        return self.predictor.description.name

    @property
    def version(self) -> int:
        return int(self.predictor.description.version)


@dataclass(frozen=True)
class Route:
    """A request's routing result: the version that answers, the shadow that runs it too, the set they came from."""

    servable: Servable
    snapshot: Snapshot
    shadow: Servable | None = None


@dataclass(frozen=True)
class VersionStatus:
    name: str
    version: int
    state: State
    reason: str = ""
    # Refused (ModelLoadFailing): UNAVAILABLE, or READY from memory when nothing else can serve it;
    # False for a version the policy does not want.
    failed: bool = False


class UnknownModel(LookupError):
    pass


class UnknownVersion(LookupError):
    pass


@dataclass(frozen=True)
class Snapshot:
    """Immutable: model name -> version -> servable, the state of every known version, and each
    model's rollout (:class:`.routing.Routing`) and config problem (a model whose config.json is
    invalid keeps its last valid configuration)."""

    models: Mapping[str, Mapping[int, Servable]] = field(default_factory=dict)
    statuses: tuple[VersionStatus, ...] = ()
    routes: Mapping[str, Routing] = field(default_factory=dict)
    config_errors: Mapping[str, str] = field(default_factory=dict)
    # What exists but could not be read at the last pass, and why: a model's folder or one of its
    # version folders (by model name), or the repository itself ("").
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        models: Mapping[str, Mapping[int, Servable]],
        statuses: tuple[VersionStatus, ...],
        routes: Mapping[str, Routing] | None = None,
        config_errors: Mapping[str, str] | None = None,
        unreadable: Mapping[str, str] | None = None,
    ) -> Snapshot:
        frozen = {name: MappingProxyType(dict(sorted(versions.items()))) for name, versions in sorted(models.items())}
        served = MappingProxyType({n: v for n, v in frozen.items() if v})
        return cls(
            models=served,
            statuses=statuses,
            routes=MappingProxyType({n: r for n, r in (routes or {}).items() if n in served}),
            config_errors=MappingProxyType(dict(config_errors or {})),
            unreadable=MappingProxyType(dict(unreadable or {})),
        )

    def __bool__(self) -> bool:
        return bool(self.models)

    def route(
        self,
        name: str,
        version: int | None = None,
        unversioned: Unversioned = Unversioned.NEWEST,
        headers: Mapping[str, str] | None = None,
    ) -> Route:
        """The version a request asked for (``version``, or what ``unversioned`` means), and its shadow.

        UnknownModel when no version of ``name`` is loaded, UnknownVersion when ``version`` is not.
        """
        versions = self.models.get(name)
        if not versions:
            raise UnknownModel(name)
        if version is not None:
            if version not in versions:
                raise UnknownVersion(name, version)
            return Route(versions[version], self)
        chosen, shadow = choose(self.routing(name), versions.keys(), unversioned, headers or {})
        return Route(versions[chosen], self, versions[shadow] if shadow is not None else None)

    def routing(self, name: str) -> Routing:
        return self.routes.get(name) or NO_ROUTING

    def servables(self) -> list[Servable]:
        return [servable for versions in self.models.values() for servable in versions.values()]


class LiveModels:
    """Holds the current :class:`Snapshot` of one worker, and counts the worker in each version it serves.

    ``model_server_version_workers`` (a gauge of the live workers only) tells the scrapes which
    versions some worker serves (:mod:`..monitoring.worker_files`): a version is counted before
    the snapshot that serves it is published, and uncounted after the one without it is.
    """

    def __init__(self) -> None:
        self._snapshot = Snapshot()
        self._counted: frozenset[tuple[str, str]] = frozenset()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        serving = frozenset((s.name, str(s.version)) for s in snapshot.servables())
        for name, version in serving - self._counted:
            VERSION_WORKERS.labels(name, version).inc()
        self._snapshot = snapshot
        for name, version in self._counted - serving:
            VERSION_WORKERS.labels(name, version).dec()
        self._counted = serving

    def count_anew(self) -> None:
        """Count this process in the versions it serves, as if it had counted none: a forked worker's metric files
        start empty, whatever the process it was forked from counted."""
        self._counted = frozenset()
        self.publish(self._snapshot)
