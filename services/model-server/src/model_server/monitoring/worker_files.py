"""The workers' metric files (prometheus_client's multiprocess mode): read for a scrape, folded in when a worker ends.

Every worker writes its counters, histograms and summaries in files of its own
(``counter_<pid>.db`` ...) in ``PROMETHEUS_MULTIPROC_DIR``, and a scrape sums the files of the
folder. Left as they are, the files of dead workers would pile up with every renewal and keep
every version those workers ever served in ``/metrics``. So:

* :func:`fold_dead_worker` (gunicorn's ``child_exit``, in the master) adds a dead worker's
  counts into one ``<kind>_archive.db`` per kind and deletes its files: the folder holds the
  live workers' files and three archives, however many workers have come and gone, and no total
  goes backwards. Counts of versions that neither the dead worker nor a live one served are
  dropped from the archive then, so it holds only the versions still served.
* Each worker counts itself, per version it serves, in ``model_server_version_workers`` (a
  gauge that dies with its worker, see :mod:`..serving.live_models`). :class:`ServedVersionsOnly`
  keeps a scrape to the versions at least one live worker serves: the series of an unloaded
  version leave ``/metrics`` at the next scrape after the last worker lets it go (what it
  answered since the scrape before is not seen; Prometheus marks its series stale). The load
  failures of refused versions, which never served, stay (``ABOUT_UNSERVED``).

A fold replaces two files (the archive and the dead worker's); scrapes read under a shared lock
and a fold writes under an exclusive one (``flock`` on ``.fold.lock``), so no scrape sees a
count twice or not at all.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector

# The gauge of the versions each worker serves (monitoring/metrics.py's VERSION_WORKERS). Named here, so that
# gunicorn.conf.py can import this module before the metrics exist: they are made once their folder is ready.
VERSION_WORKERS_NAME = "model_server_version_workers"
LOCK_NAME = ".fold.lock"
ARCHIVE = "archive"  # <kind>_archive.db: what dead workers counted
FOLDED_KINDS = ("counter", "histogram", "summary")  # the kinds whose totals outlive a worker
SERVING_GAUGE_FILES = "gauge_livesum_{pid}.db"  # where a worker's VERSION_WORKERS lives
VERSION_LABELS = ("version", "primary")  # labels that name a version of the sample's model
# Metrics about versions that were never served: kept whatever is served (refused versions: ModelLoadFailing's story).
ABOUT_UNSERVED = frozenset({"model_server_model_load_failures"})

Served = frozenset[tuple[str, str]]


class _Source(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def exposition(*current: Collector) -> tuple[bytes, str]:
    """``/metrics``: the metrics of every worker of this replica, of the versions some worker serves, and the
    ``current`` collectors' (this scrape only). Without PROMETHEUS_MULTIPROC_DIR (tests, the Flask dev server),
    this process's own."""
    scrape = CollectorRegistry(auto_describe=False)
    for collector in current:
        scrape.register(collector)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    scrape.register(ServedVersionsOnly(WorkerFiles(Path(directory)) if directory else REGISTRY))
    return generate_latest(scrape), CONTENT_TYPE_LATEST


@contextmanager
def _locked(directory: Path, operation: int) -> Iterator[None]:
    with open(directory / LOCK_NAME, "a+b") as lock:
        fcntl.flock(lock, operation)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class WorkerFiles:
    """The metrics of every worker of this replica, from the files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        with _locked(self.directory, fcntl.LOCK_SH):
            files = glob.glob(str(self.directory / "*.db"))
            return list(multiprocess.MultiProcessCollector.merge(files, accumulate=True))


class ServedVersionsOnly:
    """``source``'s metrics without the samples of versions that no live worker serves."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        families = list(self._source.collect())
        served = frozenset(
            (sample.labels["model"], sample.labels["version"])
            for family in families
            if family.name == VERSION_WORKERS_NAME
            for sample in family.samples
            if sample.value > 0
        )
        for family in families:
            if family.name not in ABOUT_UNSERVED:
                family.samples = [sample for sample in family.samples if is_served(sample.labels, served)]
            yield family


def is_served(labels: dict[str, str], served: Served) -> bool:
    """Whether every version a sample's labels name (of its ``model``) is in ``served``; True if it names none."""
    model = labels.get("model")
    if model is None:
        return True
    return all((model, labels[name]) in served for name in VERSION_LABELS if name in labels)


def fold_dead_worker(directory: Path, pid: int) -> None:
    """Add dead worker ``pid``'s counts to the archives, delete its files, drop from the archives what nobody serves.

    Call it once the worker has exited, before (or instead of) ``multiprocess.mark_process_dead``.
    """
    served_at_exit = _served(directory / SERVING_GAUGE_FILES.format(pid=pid))
    multiprocess.mark_process_dead(pid, str(directory))  # its live gauges: gone
    keep = served_at_exit | _served_by_live_workers(directory)
    with _locked(directory, fcntl.LOCK_EX):
        for kind in FOLDED_KINDS:
            dead = directory / f"{kind}_{pid}.db"
            archive = directory / f"{kind}_{ARCHIVE}.db"
            if not dead.exists():
                continue
            totals: dict[str, float] = {}
            for path in (archive, dead):
                for key, value, _timestamp, _position in _values(path):
                    totals[key] = totals.get(key, 0.0) + value
            folded = directory / f".{kind}_{ARCHIVE}.folding"  # not *.db: no scrape reads it half-written
            folded.unlink(missing_ok=True)
            writer = MmapedDict(str(folded))
            try:
                for key, value in totals.items():
                    metric_name, _name, labels, _help = json.loads(key)
                    if metric_name in ABOUT_UNSERVED or is_served(labels, keep):
                        writer.write_value(key, value, 0.0)
            finally:
                writer.close()
            os.replace(folded, archive)
            dead.unlink()


def _served_by_live_workers(directory: Path) -> Served:
    served: set[tuple[str, str]] = set()
    for path in glob.glob(str(directory / SERVING_GAUGE_FILES.format(pid="*"))):
        served |= _served(Path(path))
    return frozenset(served)


def _served(path: Path) -> Served:
    """The versions a worker's gauge file says it serves."""
    served = set()
    for key, value, _timestamp, _position in _values(path):
        metric_name, _name, labels, _help = json.loads(key)
        if metric_name == VERSION_WORKERS_NAME and value > 0:
            served.add((labels["model"], labels["version"]))
    return frozenset(served)


def _values(path: Path) -> list[tuple[str, float, float, int]]:
    try:
        return list(MmapedDict.read_all_values_from_file(str(path)))
    except FileNotFoundError:
        return []
