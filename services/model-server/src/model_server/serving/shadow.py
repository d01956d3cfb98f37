"""Shadow traffic: run served requests again on a candidate version, compare, never answer with it.

A request chosen for the shadow (:func:`.routing.shadowed`) is answered by its served version as
usual; then it hands its rows and the served answer to this worker's :class:`ShadowRunner` (an
append to a queue, microseconds) and returns. The runner, a background thread (a greenlet under
gevent), wakes at the first job, lets more gather for ``GATHER_SECONDS``, takes whatever is
queued, runs the rows of each shadow version in one model call, and compares each request's
shadow answer with its served one. So the shadow never delays a served
response beyond that append, its failure never reaches the client, and it never counts as the
served request: the request metrics, the predictions and the drift counters are the served
version's alone. What it records:

- ``model_server_shadow_requests_total{model, version, primary, result}``: every shadowed
  request exactly once, ``version`` the shadow and ``primary`` the served version: ``agree``
  (every row got the same class), ``disagree``, ``error`` (the shadow call raised; logged once
  per version and error), or ``dropped`` (the queue already held SHADOW_QUEUE_ROWS rows: a shadow
  slower than the traffic sheds load rather than memory);
- ``model_server_shadow_probability_difference``: per request, the mean absolute difference of
  the two versions' class probabilities (when both have them, over the same classes);
- ``model_server_inference_duration_seconds`` of the shadow version: its model calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..monitoring import metrics
from .live_models import Servable
from .predictor import Prediction

log = logging.getLogger(__name__)

AGREE, DISAGREE, ERROR, DROPPED = "agree", "disagree", "error", "dropped"
# Once woken, the runner lets this much traffic gather before it takes the queue: one model call
# then serves many shadowed requests, not one each (a shadow's answer is never awaited).
GATHER_SECONDS = 0.02
RESULTS = (AGREE, DISAGREE, ERROR, DROPPED)


@dataclass(frozen=True, eq=False)
class ShadowJob:
    shadow: Servable
    primary_version: str
    rows: np.ndarray
    served: Prediction  # probabilities set only when they are to be compared


def start_counters_at_zero(name: str, shadow_version: int, primaries: Iterable[int]) -> None:
    """Write every comparison counter of a shadow version at 0, so that ``increase()`` sees the first count."""
    for primary in primaries:
        for result in RESULTS:
            metrics.SHADOW_REQUESTS.labels(name, str(shadow_version), str(primary), result)


def compares_probabilities(served: Servable, shadow: Servable) -> bool:
    """Whether both versions give probabilities over the same classes, in the same order."""
    a, b = served.description, shadow.description
    return a.has_probabilities and b.has_probabilities and a.classes == b.classes


class ShadowRunner:
    """One per worker process: a bounded queue of shadow jobs and the thread that runs them."""

    def __init__(self, max_queued_rows: int) -> None:
        self._max_rows = max_queued_rows
        self._jobs: deque[ShadowJob] = deque()
        self._queued_rows = 0
        self._busy = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._logged: set[tuple[str, str, str]] = set()

    def submit(self, job: ShadowJob) -> None:
        """Queue a job (never blocks, never raises for the shadow's sake); a full queue drops it, counted."""
        with self._lock:
            if self._queued_rows + len(job.rows) > self._max_rows:
                dropped = True
            else:
                dropped = False
                self._jobs.append(job)
                self._queued_rows += len(job.rows)
                if len(self._jobs) == 1:  # the runner waits only for a first job
                    self._changed.notify_all()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run_forever, name="shadow", daemon=True)
                    self._thread.start()
        if dropped:
            _count(job, DROPPED)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued job was compared (the tests use it); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run_forever(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._changed.wait()
            time.sleep(GATHER_SECONDS)
            with self._lock:
                jobs = list(self._jobs)
                self._jobs.clear()
                self._queued_rows = 0
                self._busy = True
            try:
                self.run(jobs)
            except Exception:  # a bug here must not stop the shadow for good
                log.exception("shadow comparison failed")
            finally:
                with self._lock:
                    self._busy = False
                    self._changed.notify_all()

    def run(self, jobs: list[ShadowJob]) -> None:
        """Run and compare ``jobs``: one model call per shadow version (and probabilities wanted or not)."""
        groups: dict[tuple[int, int, bool], list[ShadowJob]] = {}
        for job in jobs:  # rows of one width (served versions may differ) and one output kind per call
            key = (id(job.shadow), job.rows.shape[1], job.served.probabilities is not None)
            groups.setdefault(key, []).append(job)
        for (_, _, with_probabilities), group in groups.items():
            shadow = group[0].shadow
            try:
                prediction = shadow.predictor.predict_quietly(
                    np.concatenate([j.rows for j in group]), with_probabilities
                )
            except Exception as exc:
                self._log_once(shadow, exc)
                for job in group:
                    _count(job, ERROR)
                continue
            _compare(group, prediction)

    def _log_once(self, shadow: Servable, exc: Exception) -> None:
        key = (shadow.name, str(shadow.version), type(exc).__name__)
        if key not in self._logged:
            self._logged.add(key)
            log.error(
                "shadow version failed; the served answers are unaffected",
                extra={"model": shadow.name, "version": str(shadow.version), "reason": f"{key[2]}: {exc}"},
            )


def _compare(group: list[ShadowJob], shadow: Prediction) -> None:
    """Compare the shadow's answer for a group's rows (joined in group order) with each job's served one.

    Counted per served version: one write per result, and for the probabilities one count and
    one sum (the summary ``observe`` would give, job by job).
    """
    lengths = np.fromiter((len(job.rows) for job in group), np.intp, len(group))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    served = np.concatenate([job.served.labels for job in group])
    equal = np.zeros(len(served), bool)  # per row: every output the same
    if shadow.labels.shape == served.shape:
        same = np.broadcast_to(np.asarray(shadow.labels == served, bool), served.shape)
        equal = same.reshape(len(served), -1).all(axis=1)
    agrees = np.logical_and.reduceat(equal, starts)
    differences = None
    if shadow.probabilities is not None and all(job.served.probabilities is not None for job in group):
        served_probabilities = np.concatenate([job.served.probabilities for job in group])
        if served_probabilities.shape == shadow.probabilities.shape:
            per_row = np.abs(shadow.probabilities - served_probabilities).mean(axis=1)
            differences = np.add.reduceat(per_row, starts) / lengths  # each job's mean over its rows
    d = group[0].shadow.description
    for primary in dict.fromkeys(job.primary_version for job in group):
        mine = np.fromiter((job.primary_version == primary for job in group), bool, len(group))
        agreed = int(np.count_nonzero(agrees & mine))
        for result, count in ((AGREE, agreed), (DISAGREE, int(np.count_nonzero(mine)) - agreed)):
            if count:
                metrics.SHADOW_REQUESTS.labels(d.name, d.version, primary, result).inc(count)
        if differences is not None:
            summary = metrics.SHADOW_PROBABILITY_DIFFERENCE.labels(d.name, d.version, primary)
            metrics.observe_column_sums([summary], differences[mine].reshape(-1, 1))


def _count(job: ShadowJob, result: str) -> None:
    d = job.shadow.description
    metrics.SHADOW_REQUESTS.labels(d.name, d.version, job.primary_version, result).inc()
