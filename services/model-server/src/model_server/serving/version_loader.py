"""Loading one version folder, off the serving path.

A load reads the version's files, verifies them (:mod:`..repository.artifact`), checks the fast
runtime against scikit-learn and warms the model up: seconds for a large forest (a 118 MB forest
of 240 trees took 5.9 s). A gevent worker serves every request from one OS thread, so a load run
there stops serving for that long; past GUNICORN_TIMEOUT gunicorn kills the worker, and since
every replica sees a new version within one poll, a fleet would stall together.

So a load has two steps. :meth:`VersionLoader.prepare` is pure computation on the version's own
objects — no metrics, no logging, no lock shared with the serving greenlets, as gevent advises
for code in a native thread — and a polling worker runs it in gevent's thread pool
(:class:`ThreadPoolLoads`): a native thread, while the worker's greenlets go on serving (they
share the GIL, which Python hands over every few milliseconds). The poller's greenlet waits for
it in one-second slices, beating the worker's heartbeat between them. :meth:`VersionLoader.finish`,
which makes the version's metrics, runs back on the poller's greenlet. A load that takes longer
than MODEL_LOAD_TIMEOUT is abandoned: :class:`LoadTimeout`, refused and counted like any failed
load (ModelLoadFailing); its thread finishes on its own and its result is dropped.

Outside a polling worker (the master's first pass before it forks, the in-process tests) a load
runs where it is called: nothing serves beside it there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..config import Settings
from ..repository.artifact import FileLimits, ModelLoadError, load_artifact
from .live_models import Servable
from .predictor import Predictor, PreparedModel, prepare

T = TypeVar("T")
Heartbeat = Callable[[], None]


class LoadTimeout(ModelLoadError):
    """A load took longer than MODEL_LOAD_TIMEOUT; it was abandoned."""


class VersionLoader:
    """Loads a version folder into a :class:`Servable` in two steps; ModelLoadError on any refusal."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._limits = FileLimits(
            settings.model_repository, settings.model_max_artifact_bytes, settings.model_max_json_bytes
        )

    def prepare(self, name: str, version: int, path: Path) -> PreparedModel:
        """Read, verify, check and warm up: the heavy step, safe in a native thread."""
        s = self._settings
        artifact = load_artifact(path, s.model_sha256, tuple(s.model_trusted_types), self._limits)
        return prepare(artifact, name, str(version), s.model_runtime)

    def finish(self, prepared: PreparedModel) -> Servable:
        """The version's metrics: on the poller's own thread (or greenlet)."""
        return Servable(predictor=Predictor(prepared, self._settings.drift_max_features))

    def __call__(self, name: str, version: int, path: Path) -> Servable:
        return self.finish(self.prepare(name, version, path))


def run_here(work: Callable[[], T]) -> T:
    """Run a load where it is called (no worker serves beside it)."""
    return work()


class ThreadPoolLoads:
    """Runs each load in gevent's thread pool, waits for it cooperatively, gives up after ``timeout`` seconds."""

    SLICE = 1.0  # seconds between two heartbeats while a load runs

    def __init__(self, timeout: float, heartbeat: Heartbeat | None = None) -> None:
        self._timeout = timeout
        self._heartbeat = heartbeat

    def __call__(self, work: Callable[[], T]) -> T:
        import gevent

        pending = gevent.get_hub().threadpool.spawn(work)
        deadline = time.monotonic() + self._timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LoadTimeout(f"the load took longer than MODEL_LOAD_TIMEOUT ({self._timeout:g} s); abandoned")
            try:
                return pending.get(timeout=min(self.SLICE, left))
            except gevent.Timeout:
                if self._heartbeat is not None:
                    self._heartbeat()
