"""The workers' metric files: a scrape sums them, keeps to served versions; a dead worker's files fold into archives.

Files are written here as prometheus_client's workers write them (``MmapedDict``, one per kind
and pid); the real server's renewals are in tests/unit/model_server/process/test_gunicorn.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from model_server.config import Settings
from model_server.monitoring.worker_files import exposition, fold_dead_worker, is_served
from model_server.serving.live_models import Snapshot, State, VersionStatus
from model_server.serving.state_metrics import ServingCollector
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from ..helpers import scrape, scraped

REQUESTS = ("model_server_model_requests", "model_server_model_requests_total", ("model", "version", "status"))
DURATION = ("model_server_model_request_duration_seconds", ("model", "version"))
ROUTE = ("model_server_requests", "model_server_requests_total", ("route", "method", "status"))


def write(directory: Path, file: str, values: dict[tuple, float]) -> None:
    """``file`` (``counter_12.db`` ...) holding ``values``: {(metric, sample, labelnames, labelvalues): value}."""
    db = MmapedDict(str(directory / file))
    for (metric, sample_name, names, values_), value in values.items():
        db.write_value(mmap_key(metric, sample_name, list(names), list(values_), "help"), value, 0.0)
    db.close()


def serving(directory: Path, pid: int, *versions: str, model: str = "iris") -> None:
    """Worker ``pid``'s live gauge: it serves ``versions`` of ``model`` (and once served others, now 0)."""
    names = ("model", "version")
    served = {
        ("model_server_version_workers", "model_server_version_workers", names, (model, v)): 1.0 for v in versions
    }
    gone = {("model_server_version_workers", "model_server_version_workers", names, (model, "0")): 0.0}
    write(directory, f"gauge_livesum_{pid}.db", {**gone, **served})


def requests_of(version: str, count: float, model: str = "iris") -> dict[tuple, float]:
    return {(*REQUESTS, (model, version, "200")): count}


def histogram_of(version: str, seconds: float) -> dict[tuple, float]:
    metric, names = DURATION
    return {
        (metric, f"{metric}_bucket", (*names, "le"), ("iris", version, "0.1")): 1.0,
        (metric, f"{metric}_sum", names, ("iris", version)): seconds,
    }


def totals(directory: Path) -> dict:
    body, _ = exposition_of(directory)
    return scrape(body.decode())


def exposition_of(directory: Path) -> tuple[bytes, str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        return exposition()


def test_exposition_sums_the_workers_files_and_adds_the_scrapes_own_collectors(tmp_path: Path) -> None:
    for pid, value in ((101, 4.0), (102, 6.0)):
        write(tmp_path, f"counter_{pid}.db", {(*ROUTE, ("/predict", "POST", "200")): value})
    snapshot = Snapshot.build({}, (VersionStatus("flowers", 1, State.UNAVAILABLE, "not wanted"),))

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        body, content_type = exposition(ServingCollector(snapshot, Settings()))

    samples = scrape(body.decode())
    assert scraped(samples, "model_server_requests_total", route="/predict", method="POST", status="200") == 10
    assert content_type.startswith("text/plain")
    # Nothing of this process's default registry is in it; this scrape's own collectors are.
    assert {name for name, _ in samples} == {
        "model_server_requests_total",
        "model_server_model_ready",
        "model_server_repository_unreadable",
        "model_server_accuracy_alert_margin",
        "model_server_accuracy_min_feedback",
    }
    assert scraped(samples, "model_server_model_ready", model="flowers") == 0


def test_a_scrape_keeps_only_the_versions_some_live_worker_serves(tmp_path: Path) -> None:
    # Worker 1 serves version 2; worker 2 still serves 1 and 2 (it has not polled yet); version 3
    # was unloaded by both. Version 1 stays while worker 2 serves it.
    serving(tmp_path, 1, "2")
    serving(tmp_path, 2, "1", "2")
    write(tmp_path, "counter_1.db", {**requests_of("1", 5), **requests_of("2", 7), **requests_of("3", 9)})
    write(tmp_path, "counter_2.db", {**requests_of("1", 1), **requests_of("2", 1), **requests_of("3", 1)})

    samples = totals(tmp_path)

    by_version = {dict(labels)["version"]: v for (name, labels), v in samples.items() if name.startswith(REQUESTS[1])}
    assert by_version == {"1": 6, "2": 8}
    assert scraped(samples, "model_server_version_workers", model="iris", version="2") == 2
    assert scraped(samples, "model_server_version_workers", model="iris", version="1") == 1
    assert scraped(samples, "model_server_version_workers", model="iris", version="0") is None

    (tmp_path / "gauge_livesum_2.db").unlink()  # worker 2 is gone (mark_process_dead)
    assert {dict(labels)["version"] for (name, labels) in totals(tmp_path) if name.startswith(REQUESTS[1])} == {"2"}


def test_is_served_checks_every_version_label_of_the_samples_model() -> None:
    served = frozenset({("iris", "2"), ("wine", "1")})
    assert is_served({"route": "/predict"}, served)
    assert is_served({"model": "iris", "version": "2", "status": "200"}, served)
    assert not is_served({"model": "iris", "version": "1"}, served)
    assert not is_served({"model": "wine", "version": "2"}, served)
    assert is_served({"model": "iris"}, served)  # a model's own series (no version): kept
    # A shadow's series names the shadow (version) and the version it shadows (primary).
    assert not is_served({"model": "iris", "version": "2", "primary": "1"}, served)


def test_a_dead_workers_counts_fold_into_the_archives_and_totals_stay(tmp_path: Path) -> None:
    serving(tmp_path, 1, "2")
    serving(tmp_path, 2, "2")
    for pid in (1, 2):
        write(tmp_path, f"counter_{pid}.db", {**requests_of("2", 10.0 * pid), (*ROUTE, ("/predict", "POST", "200")): 3})
        write(tmp_path, f"histogram_{pid}.db", histogram_of("2", 0.5 * pid))
    before = totals(tmp_path)

    fold_dead_worker(tmp_path, 1)
    serving(tmp_path, 3, "2")  # its replacement
    fold_dead_worker(tmp_path, 2)

    assert counts(totals(tmp_path)) == counts(before)
    assert scraped(totals(tmp_path), REQUESTS[1], model="iris", version="2", status="200") == 30
    assert scraped(totals(tmp_path), DURATION[0] + "_sum", model="iris", version="2") == 1.5
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "gauge_livesum_3.db",
        "histogram_archive.db",
    ]


def test_a_fold_drops_the_versions_that_neither_the_dead_worker_nor_a_live_one_serves(tmp_path: Path) -> None:
    # Worker 1 unloaded version 1 and served 2 when it died; worker 2 serves 3 already. Version
    # 2's counts stay (the dead worker served it: its replacement will), version 1's go.
    serving(tmp_path, 1, "2")
    serving(tmp_path, 2, "3")
    write(tmp_path, "counter_1.db", {**requests_of("1", 4), **requests_of("2", 5), **requests_of("3", 6)})

    fold_dead_worker(tmp_path, 1)

    versions = {labels["version"] for labels in _archived_labels(tmp_path / "counter_archive.db")}
    assert versions == {"2", "3"}


def test_a_scrape_during_folds_never_sees_a_count_twice_or_missing(tmp_path: Path) -> None:
    # Workers die one after another while scrapes run beside the folds: the total never moves.
    serving(tmp_path, 1000, "1")
    for pid in range(1, 41):
        write(tmp_path, f"counter_{pid}.db", requests_of("1", 1.0))
    seen: set[float | None] = set()
    folding = threading.Event()

    def scrape_while_folding() -> None:
        while not folding.is_set():
            seen.add(scraped(totals(tmp_path), REQUESTS[1], model="iris", version="1", status="200"))

    scraper = threading.Thread(target=scrape_while_folding)
    scraper.start()
    try:
        for pid in range(1, 41):
            fold_dead_worker(tmp_path, pid)
    finally:
        folding.set()
        scraper.join()
    assert seen == {40.0}
    assert not list(tmp_path.glob(".*folding"))


def counts(samples: dict) -> dict:
    """The samples of counters and histograms (not the live gauge of served versions)."""
    return {key: value for key, value in samples.items() if "version_workers" not in key[0]}


def _archived_labels(path: Path) -> list[dict[str, str]]:
    return [json.loads(key)[2] for key, *_ in MmapedDict.read_all_values_from_file(str(path))]
