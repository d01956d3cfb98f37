"""The real server: gunicorn with gunicorn.conf.py (gevent workers, preload, multiprocess metrics).

Checks what only a multi-process server shows: counters summed exactly over the workers, the
metrics directory wiped at start (a stale file of an earlier run is pre-filled with counts that
would show), the gauges of a killed worker dropped, and a graceful shutdown on SIGTERM that
finishes the requests in flight; and the model repository polled by every worker on its own, so
that a version published while requests flow reaches all the workers.

Requests are held "in flight" deterministically by sending their headers and half their body:
the app has started handling them (the in-flight gauge counts them) and is blocked reading the
rest, which the test sends when it chooses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from model_server.tools.package import write_model_dir
from model_server.tools.publish import publish
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier
from skops.io import dump

from ..custom_steps import SlowToLoad
from ..helpers import MODEL, SETTINGS_ENV, expected_bins, free_port, scrape, scraped
from ..versions import ROW, label_of, publish_iris

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on Unix only")

REPO = Path(__file__).resolve().parents[4]
CONFIG = REPO / "services" / "model-server" / "gunicorn.conf.py"
MAX_BATCH_ROWS = 4000
STALE_PID = 999_999  # a worker of a fake earlier run
STALE_PREDICT_COUNT = 1000.0
STALE_IN_FLIGHT = 7.0
POLL_SECONDS = 1
PREDICT_200 = {"method": "POST", "route": "/predict", "status": "200"}


@dataclass
class Gunicorn:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_dir: Path
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a worker's traceback would not be JSON
                records.append(json.loads(line))
        return records

    def worker_pids(self) -> list[int]:
        """Every worker pid gunicorn booted, in order."""
        prefix = "Booting worker with pid: "
        return [int(r["message"][len(prefix) :]) for r in self.log_records() if r["message"].startswith(prefix)]

    def metrics(self) -> dict:
        response = requests.get(self.url("/metrics"), timeout=10)
        assert response.status_code == 200
        return scrape(response.text)


def write_stale_metrics(metrics_dir: Path) -> None:
    """Files an earlier run could have left: counts that must not be summed into this run's."""
    labels = (["route", "method", "status"], ["/predict", "POST", "200"])
    counter = MmapedDict(str(metrics_dir / f"counter_{STALE_PID}.db"))
    key = mmap_key("model_server_requests", "model_server_requests_total", *labels, "stale")
    counter.write_value(key, STALE_PREDICT_COUNT, 0.0)
    counter.close()
    gauge = MmapedDict(str(metrics_dir / f"gauge_livesum_{STALE_PID}.db"))
    key = mmap_key("model_server_requests_in_flight", "model_server_requests_in_flight", [], [], "stale")
    gauge.write_value(key, STALE_IN_FLIGHT, 0.0)
    gauge.close()


def start(tmp_path: Path, repository: Path, workers: int = 2, **env: str) -> Gunicorn:
    """gunicorn on ``repository``, polled every second (as in production, only more often), ready."""
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    write_stale_metrics(metrics_dir)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {*SETTINGS_ENV, "PROMETHEUS_MULTIPROC_DIR", "PORT", "WEB_CONCURRENCY"}
        and not k.startswith(("GUNICORN_", "_MODEL_SERVER"))
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "model_server.process.wsgi:app"],
            env={
                **inherited,
                "PORT": str(port),
                "GUNICORN_WORKERS": str(workers),
                "GUNICORN_WORKER_CONNECTIONS": "100",
                "GUNICORN_GRACEFUL_TIMEOUT": "20",
                "MODEL_REPOSITORY": str(repository),
                "MODEL_POLL_SECONDS": str(POLL_SECONDS),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "MAX_BATCH_ROWS": str(MAX_BATCH_ROWS),
                "MAX_BODY_BYTES": str(4 * 1024 * 1024),
                "LOG_LEVEL": "info",
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = Gunicorn(proc, port, metrics_dir, log_path)
    try:
        booted = f"gunicorn ready with {workers} workers"
        wait_for(lambda: ready(server) and len(server.worker_pids()) == workers, booted, server)
    except BaseException:
        stop(server)
        raise
    return server


def ready(server: Gunicorn) -> bool:
    if server.proc.poll() is not None:
        pytest.fail(f"gunicorn exited with {server.proc.returncode}:\n{server.log()}")
    try:
        return requests.get(server.url("/v2/health/ready"), timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def wait_for(condition: Callable[[], bool], what: str, server: Gunicorn, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; gunicorn log:\n{server.log()}")
        time.sleep(0.05)


def stop(server: Gunicorn) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gunicorn(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    server = start(tmp_path_factory.mktemp("gunicorn"), repository)
    try:
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module")
def sample_rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(200, 4)).round(1)


ARCHIVE = 0  # the "pid" of what dead processes counted (counter_archive.db ...)


def pid_of(path: Path) -> int:
    """The process a metric file belongs to (``counter_123.db``: 123), or ARCHIVE."""
    suffix = path.stem.rsplit("_", 1)[1]
    return ARCHIVE if suffix == "archive" else int(suffix)


def worker_counts(server: Gunicorn) -> dict[int, float]:
    """Requests to POST /predict answered 200, per process, read from the workers' own files."""
    counts = {}
    for path in server.metrics_dir.glob("counter_*.db"):
        pid = pid_of(path)
        for k, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample_name, labels, _ = json.loads(k)
            if sample_name == "model_server_requests_total" and labels == PREDICT_200:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def in_flight_by_pid(server: Gunicorn) -> dict[int, float]:
    values = {}
    for path in server.metrics_dir.glob("gauge_livesum_*.db"):
        for k, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(k)[1] == "model_server_requests_in_flight":
                values[pid_of(path)] = value
    return values


class HalfSent:
    """A /predict request whose body is only half sent: in flight until ``finish``."""

    def __init__(self, server: Gunicorn, rows: np.ndarray) -> None:
        self.rows = rows
        self.body = json.dumps({"features": rows.tolist()}).encode()
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        head = (
            f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.sock.sendall(head + self.body[: len(self.body) // 2])

    def finish(self) -> tuple[int, dict]:
        self.send_rest()
        return self.response()

    def send_rest(self) -> None:
        self.sock.sendall(self.body[len(self.body) // 2 :])

    def response(self) -> tuple[int, dict]:
        raw = b""
        while chunk := self.sock.recv(65536):
            raw += chunk
        self.sock.close()
        assert raw, "the server closed the connection without answering"
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(payload)

    def close(self) -> None:
        self.sock.close()


def test_counts_are_exact_over_workers_and_start_fresh(gunicorn: Gunicorn, estimator, sample_rows: np.ndarray) -> None:
    assert not (gunicorn.metrics_dir / f"counter_{STALE_PID}.db").exists(), "wiped at start"
    local = threading.local()
    sessions: list[requests.Session] = []  # one keep-alive connection per thread

    def predict(row: np.ndarray) -> list:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        response = local.session.post(gunicorn.url("/predict"), json={"features": row.tolist()}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["prediction"]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            predictions = list(pool.map(predict, sample_rows))
    finally:
        for session in sessions:
            session.close()

    expected = estimator.predict(sample_rows)
    assert [p[0] for p in predictions] == expected.tolist()
    samples = gunicorn.metrics()
    n = len(sample_rows)
    assert scraped(samples, "model_server_requests_total", **PREDICT_200) == n
    class_names = ["setosa", "versicolor", "virginica"]
    by_class = Counter(class_names[i] for i in expected)
    assert len(by_class) == 3
    for name in class_names:
        predicted = scraped(samples, "model_server_predictions_total", model=MODEL, version="1", **{"class": name})
        assert predicted == by_class[name]
    assert scraped(samples, "model_server_request_rows_count", route="/predict") == n
    assert scraped(samples, "model_server_requests_in_flight") == 0
    assert scraped(samples, "model_server_model_ready", model=MODEL) == 1
    # Per-feature sums (which the drift panels divide by the counts) are exposed in this mode.
    for column, feature in enumerate(
        ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    ):
        labels = {"model": MODEL, "version": "1", "feature": feature}
        assert scraped(samples, "model_server_feature_value_count", **labels) == n
        assert scraped(samples, "model_server_feature_value_sum", **labels) == pytest.approx(
            sample_rows[:, column].sum()
        )

    counts = worker_counts(gunicorn)
    workers = set(gunicorn.worker_pids())
    served = {pid for pid, count in counts.items() if count > 0}
    assert served <= workers, "only workers serve requests"
    assert len(served) >= 2, f"both workers served: {counts}"
    assert sum(counts.values()) == n


def test_quality_counts_sum_over_workers_and_references_are_one_series_each(
    gunicorn: Gunicorn, metadata, sample_rows: np.ndarray
) -> None:
    before = gunicorn.metrics()
    rows = sample_rows[:80]
    pairs = [(i % 3, (i * 7) % 3) for i in range(90)]

    def predict(row: np.ndarray) -> int:
        return requests.post(gunicorn.url("/predict"), json={"features": row.tolist()}, timeout=30).status_code

    def feedback(pair: tuple[int, int]) -> int:  # the pair three times
        body = {"prediction": [pair[0]] * 3, "truth": [pair[1]] * 3}
        return requests.post(gunicorn.url("/feedback"), json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # spread over both workers
        assert set(pool.map(predict, rows)) == set(pool.map(feedback, pairs)) == {200}
    after = gunicorn.metrics()

    def delta(name: str, **labels: str) -> float:
        return scraped(after, name, **labels) - (scraped(before, name, **labels) or 0)

    for feature, reference in metadata["reference"]["features"].items():
        column = metadata["feature_names"].index(feature)
        labels = {"model": MODEL, "version": "1", "feature": feature}
        counted = [delta("model_server_feature_bin_total", **labels, bin=str(b)) for b in range(10)]
        assert counted == expected_bins(reference["edges"], rows[:, column]).tolist(), feature
    names = metadata["class_names"]
    for (p, t), n in Counter(pairs).items():
        labels = {"model": MODEL, "version": "1", "predicted": names[p], "truth": names[t]}
        assert delta("model_server_feedback_total", **labels) == 3 * n, (p, t)
    # The gauges come from the scrape, once per replica: no pid label, one series per label set.
    gauges = {
        "model_server_feature_reference_share": 40,
        "model_server_prediction_reference_share": 3,
        "model_server_drift_reference": 1,
        "model_server_model_heldout_accuracy": 1,
        "model_server_accuracy_alert_margin": 1,
        "model_server_accuracy_min_feedback": 1,
    }
    for name, count in gauges.items():
        series = [dict(labels) for sample_name, labels in after if sample_name == name]
        assert len(series) == count, name
        assert not [s for s in series if "pid" in s], name
    assert scraped(after, "model_server_accuracy_min_feedback") == 100


def test_a_killed_workers_gauges_are_dropped(gunicorn: Gunicorn, sample_rows: np.ndarray) -> None:
    before = gunicorn.metrics()
    predicted_before = scraped(before, "model_server_requests_total", **PREDICT_200)
    pending = HalfSent(gunicorn, sample_rows[:50])
    try:
        wait_for(lambda: 1.0 in in_flight_by_pid(gunicorn).values(), "a request in flight", gunicorn)
        assert scraped(gunicorn.metrics(), "model_server_requests_in_flight") == 1
        [victim] = [pid for pid, value in in_flight_by_pid(gunicorn).items() if value == 1.0]
        assert victim in gunicorn.worker_pids()

        os.kill(victim, signal.SIGKILL)

        wait_for(lambda: len(gunicorn.worker_pids()) == 3, "a replacement worker", gunicorn)
    finally:
        pending.close()
    wait_for(lambda: ready(gunicorn), "ready after the replacement", gunicorn)
    assert not list(gunicorn.metrics_dir.glob(f"gauge_live*_{victim}.db")), "child_exit dropped its live gauges"

    samples = gunicorn.metrics()
    assert scraped(samples, "model_server_requests_in_flight") == 0
    assert scraped(samples, "model_server_model_ready", model=MODEL) == 1
    [info] = [v for (name, _), v in samples.items() if name == "model_server_model_info"]
    assert info == 1
    # The dead worker's counts are history: kept, not lost.
    assert scraped(samples, "model_server_requests_total", **PREDICT_200) == predicted_before
    for _ in range(10):
        assert requests.post(gunicorn.url("/predict"), json={"features": [1, 2, 3, 4]}, timeout=10).status_code == 200
    after = gunicorn.metrics()
    assert scraped(after, "model_server_requests_total", **PREDICT_200) == predicted_before + 10
    assert scraped(after, "model_server_requests_in_flight") == 0
    assert gunicorn.proc.poll() is None


def test_sigterm_finishes_requests_in_flight(
    repository: Path, tmp_path: Path, estimator, sample_rows: np.ndarray
) -> None:
    server = start(tmp_path, repository)
    pending: list[HalfSent] = []
    try:
        big = np.resize(sample_rows, (MAX_BATCH_ROWS, 4))
        pending = [HalfSent(server, np.roll(big, i, axis=0)) for i in range(4)]
        wait_for(lambda: sum(in_flight_by_pid(server).values()) == 4, "4 requests in flight", server)

        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "Handling signal: term" in server.log(), "the master to handle SIGTERM", server)
        time.sleep(0.3)  # the workers have been told to stop too

        results = [p.finish() for p in pending]

        for (status, body), request in zip(results, pending, strict=True):
            assert status == 200, body
            assert body["prediction"] == estimator.predict(request.rows).tolist()
        assert server.proc.wait(timeout=30) == 0, server.log()
        assert "Shutting down: Master" in server.log()
    finally:
        for p in pending:
            p.close()
        stop(server)


def test_unservable_model_stops_the_master_with_exit_code_3(tmp_path: Path) -> None:
    # Loaded once (MODEL_POLL_SECONDS=0): nothing servable now is nothing servable ever.
    version = tmp_path / "models" / MODEL / "1"
    version.mkdir(parents=True)
    (version / "model.skops").write_bytes(b"not a model")
    (version / "metadata.json").write_text("{}")
    run = tmp_path / "run"
    run.mkdir()
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k.upper() not in {*SETTINGS_ENV, "PORT"}}

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "model_server.process.wsgi:app"],
        env={
            **inherited,
            "PORT": str(port),
            "MODEL_REPOSITORY": str(tmp_path / "models"),
            "MODEL_POLL_SECONDS": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        },
        cwd=run,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    *logged, record = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["message"] for r in logged] == ["model version refused"]
    assert record["level"] == "CRITICAL"
    assert "not a readable skops file" in record["message"]


def test_requests_that_reach_a_worker_together_share_model_calls(
    repository: Path, tmp_path: Path, estimator, sample_rows: np.ndarray
) -> None:
    # Micro-batching under the production worker (gevent, one worker): requests held in flight,
    # then completed at once, are answered by fewer model calls than requests, each request with
    # the predictions of its own rows.
    server = start(tmp_path, repository, workers=1)
    pending: list[HalfSent] = []
    try:
        n = 8
        pending = [HalfSent(server, sample_rows[3 * i : 3 * i + 3]) for i in range(n)]
        wait_for(lambda: sum(in_flight_by_pid(server).values()) == n, f"{n} requests in flight", server)
        before = server.metrics()

        for request in pending:
            request.send_rest()
        results = [request.response() for request in pending]

        for (status, body), request in zip(results, pending, strict=True):
            assert status == 200, body
            assert body["prediction"] == estimator.predict(request.rows).tolist()
        after = server.metrics()
        calls = scraped(after, "model_server_batch_size_count") - scraped(before, "model_server_batch_size_count")
        batched = scraped(after, "model_server_batch_size_sum") - scraped(before, "model_server_batch_size_sum")
        assert batched == n, "every request went through the batcher"
        assert calls < n, f"{n} requests that arrived together took {calls} model calls"
    finally:
        for request in pending:
            request.close()
        stop(server)


def test_a_model_that_predicts_with_joblib_threads_is_served(tmp_path: Path, sample_rows: np.ndarray) -> None:
    # The gevent worker patches threading: a forest fitted with n_jobs=-1 predicts through joblib's
    # thread pool, which must still answer (cooperatively) rather than hang the worker.
    x, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=8, n_jobs=-1, random_state=0).fit(x, y)
    version = tmp_path / "models" / MODEL / "1"
    version.mkdir(parents=True)
    dump(forest, version / "model.skops")
    (version / "metadata.json").write_text("{}")  # complete, with nothing recorded
    server = start(tmp_path, tmp_path / "models", workers=1, MODEL_RUNTIME="sklearn")
    try:
        response = requests.post(server.url("/predict"), json={"features": sample_rows[:20].tolist()}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["prediction"] == forest.predict(sample_rows[:20]).tolist()
    finally:
        stop(server)


def test_a_malformed_number_setting_stops_the_server_naming_it(repository: Path, tmp_path: Path) -> None:
    # e.g. `GUNICORN_WORKERS=   # comment` in an env file, which Compose reads as "# comment".
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "WEB_CONCURRENCY"))}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "model_server.process.wsgi:app"],
        env={**env, "GUNICORN_WORKERS": "# workers per replica", "MODEL_REPOSITORY": str(repository),
             "PORT": str(free_port())},
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "GUNICORN_WORKERS must be an integer (or empty), got '# workers per replica'" in result.stderr


def predictions_by_pid(server: Gunicorn, version: str) -> dict[int, float]:
    """Rows predicted by ``version`` of the model, per process, read from the workers' own files."""
    counts: dict[int, float] = {}
    for path in server.metrics_dir.glob("counter_*.db"):
        pid = pid_of(path)
        for k, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample_name, labels, _ = json.loads(k)
            if sample_name == "model_server_predictions_total" and labels.get("version") == version:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def test_a_version_published_while_requests_flow_reaches_every_worker(tmp_path: Path) -> None:
    # Each request opens its own connection, so that both workers get requests throughout.
    publish_iris(tmp_path / "models", 1)
    server = start(tmp_path, tmp_path / "models", workers=2)
    answers: list[tuple[float, float, int, int, int]] = []  # (sent, received, status, version, prediction)
    stop_sending = threading.Event()

    def send() -> None:
        while not stop_sending.is_set():
            sent = time.monotonic()
            try:
                response = requests.post(server.url("/predict"), json={"features": ROW}, timeout=30)
            except requests.RequestException:
                answers.append((sent, time.monotonic(), 0, -1, -1))
                continue
            if response.status_code != 200:
                answers.append((sent, time.monotonic(), response.status_code, -1, -1))
                continue
            version = int(response.headers["X-Model-Version"])
            answers.append((sent, time.monotonic(), 200, version, response.json()["prediction"][0]))

    senders = [threading.Thread(target=send, daemon=True) for _ in range(4)]
    try:
        for sender in senders:
            sender.start()
        time.sleep(0.5)  # version 1 serves
        publishing = time.monotonic()
        publish_iris(tmp_path / "models", 2)  # a hidden temp folder, then rename: as `mv` does
        published = time.monotonic()

        def loaded() -> list[dict]:
            return [r for r in server.log_records() if r["message"] == "model version ready" and r["version"] == "2"]

        wait_for(lambda: len(loaded()) == 2, "both workers to load version 2", server)
        # Within two poll intervals plus the load time (and half a second for the requests themselves).
        deadline = published + 2 * POLL_SECONDS + max(r["load_seconds"] for r in loaded()) + 0.5
        time.sleep(max(0.0, deadline - time.monotonic()) + 1.0)  # then only version 2
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        served_2 = set(predictions_by_pid(server, "2"))

        # A worker started now (a replacement, GUNICORN_MAX_REQUESTS) is forked from the master,
        # which loaded version 1 at boot: it must catch up before it answers.
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        wait_for(lambda: len(server.worker_pids()) == 3, "a replacement worker", server)
        wait_for(lambda: ready(server), "ready after the replacement", server)
        after_replacement = [
            requests.post(server.url("/predict"), json={"features": ROW}, timeout=30).headers["X-Model-Version"]
            for _ in range(20)
        ]
        samples = server.metrics()
    finally:
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        stop(server)

    assert [a for a in answers if a[2] != 200] == [], "no request failed"
    assert all(prediction == label_of(version) for *_, version, prediction in answers)
    assert {version for _, received, _, version, _ in answers if received < publishing} == {1}
    late = [version for sent, _, _, version, _ in answers if sent > deadline]
    assert len(late) >= 20
    assert set(late) == {2}, f"version 1 still answered {late.count(1)} of {len(late)} requests after the deadline"
    first_workers = set(server.worker_pids()[:2])
    assert served_2 == first_workers, "every worker served version 2"
    assert set(after_replacement) == {"2"}, after_replacement
    # A worker was killed, yet version 2's count stays exact: the dead worker's files were folded
    # into the archives. Version 1, unloaded by every worker, has left /metrics.
    answered_by_2 = sum(1 for *_, status, version, _ in answers if status == 200 and version == 2)
    labels = {"model": MODEL, "version": "2", "status": "200"}
    assert scraped(samples, "model_server_model_requests_total", **labels) == answered_by_2 + len(after_replacement)
    assert scraped(samples, "model_server_requests_total", **PREDICT_200) == len(answers) + len(after_replacement)
    assert scraped(samples, "model_server_model_requests_total", **{**labels, "version": "1"}) is None


class IdleConnection:
    """A keep-alive connection that has had one answer and waits, idle, for its next request."""

    def __init__(self, server: Gunicorn) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length:
            body += self.sock.recv(65536)

    def closed_by_server_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def test_sigterm_closes_idle_keepalive_connections_at_once(repository: Path, tmp_path: Path) -> None:
    # Without it a worker waits for its idle connections up to the graceful timeout (20 s here).
    server = start(tmp_path, repository)
    idle: list[IdleConnection] = []
    try:
        idle = [IdleConnection(server) for _ in range(4)]
        stopping = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0, server.log()
        stopped = time.monotonic() - stopping
    finally:
        for connection in idle:
            connection.close()
        stop(server)
    assert stopped < 5, f"gunicorn took {stopped:.1f} s to stop"
    assert "Worker graceful timeout" not in server.log()


def test_a_worker_renews_after_unloading_versions_without_failing_a_request(tmp_path: Path) -> None:
    # One worker (a replica with one CPU): while it renews, new connections wait in the
    # listening socket's backlog for the fresh worker, which catches up with the repository first.
    publish_iris(tmp_path / "models", 1)
    server = start(tmp_path, tmp_path / "models", workers=1, GUNICORN_MAX_UNLOADS="1")  # + 0 drawn: 1 // 2
    answers: list[tuple[int, int, int]] = []  # (status, version, prediction)
    stop_sending = threading.Event()

    def send() -> None:
        while not stop_sending.is_set():
            try:
                response = requests.post(server.url("/predict"), json={"features": ROW}, timeout=30)
            except requests.RequestException:
                answers.append((0, -1, -1))
                continue
            if response.status_code != 200:
                answers.append((response.status_code, -1, -1))
                continue
            answers.append((200, int(response.headers["X-Model-Version"]), response.json()["prediction"][0]))

    senders = [threading.Thread(target=send, daemon=True) for _ in range(4)]
    idle = IdleConnection(server)
    try:
        [first_worker] = server.worker_pids()
        for sender in senders:
            sender.start()
        time.sleep(0.5)
        publish_iris(tmp_path / "models", 2)  # loaded, then version 1 unloaded: the worker renews

        def renewing() -> list[dict]:
            return [r for r in server.log_records() if r["message"].startswith("Worker renewing")]

        wait_for(lambda: renewing() != [], "the worker to renew", server)
        renewed = time.monotonic()
        assert idle.closed_by_server_within(5), "the idle keep-alive connection is closed, not waited for"
        wait_for(lambda: len(server.worker_pids()) == 2, "a fresh worker", server, timeout=10)
        replaced = time.monotonic() - renewed
        wait_for(lambda: sum(1 for a in answers if a[1] == 2) >= 20, "the fresh worker to answer", server)
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        samples = server.metrics()
    finally:
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        idle.close()
        stop(server)

    assert (
        renewing()[0]["message"]
        == f"Worker renewing: 1 model versions unloaded (GUNICORN_MAX_UNLOADS) (pid: {first_worker})"
    )
    assert replaced < 5, f"the fresh worker took {replaced:.1f} s (the graceful timeout is 20 s)"
    assert [a for a in answers if a[0] != 200] == [], "no request failed"
    assert all(prediction == label_of(version) for _, version, prediction in answers)
    versions = [version for _, version, _ in answers]
    assert versions == sorted(versions), "version 1, then version 2 only: the fresh worker caught up first"
    assert len(answers) >= 50
    assert scraped(samples, "model_server_requests_total", **PREDICT_200) == len(answers), (
        "the renewed worker's counts stay"
    )
    assert scraped(samples, "model_server_model_requests_total", model=MODEL, version="2", status="200") == (
        versions.count(2)
    )
    assert scraped(samples, "model_server_model_requests_total", model=MODEL, version="1", status="200") is None


def with_a_slow_version(tmp_path: Path, load_seconds: float, **env: str) -> tuple[Gunicorn, Callable[[], None]]:
    """One worker serving iris version 1, and how to publish version 2, whose load holds the GIL ``load_seconds``."""
    repository = tmp_path / "models"
    publish_iris(repository, 1)
    x, y = load_iris(return_X_y=True)
    slow = make_pipeline(SlowToLoad(load_seconds), DecisionTreeClassifier(random_state=0)).fit(x, y + 20)
    trusted = f"{SlowToLoad.__module__}.SlowToLoad"
    server = start(tmp_path, repository, workers=1, MODEL_TRUSTED_TYPES=trusted, PYTHONPATH=str(REPO), **env)
    names = load_iris().feature_names

    def publish_slow() -> None:
        def write(directory: Path) -> None:
            write_model_dir(directory, slow, x, name=MODEL, version="2", feature_names=names)

        publish(repository, MODEL, "2", write)

    return server, publish_slow


def test_a_slow_load_never_stops_the_worker_serving_nor_gets_it_killed(tmp_path: Path) -> None:
    # One worker, a 2 s worker timeout, and a version whose load holds the GIL for 6 s (a stand-in
    # for a large forest): loaded in the thread pool, it leaves the worker answering throughout,
    # its heartbeat beating; loaded in the worker's thread, it would answer nothing for 6 s and
    # be killed by gunicorn at 2 s.
    server, publish_slow = with_a_slow_version(tmp_path, 6.0, GUNICORN_TIMEOUT="2")
    answers: list[tuple[float, int, str]] = []  # (received, status, version)
    states: list[tuple[float, str]] = []  # (when, version 2's state in the index)
    stop_sending = threading.Event()

    def send() -> None:
        with requests.Session() as session:
            while not stop_sending.is_set():
                try:
                    response = session.post(server.url("/predict"), json={"features": ROW}, timeout=30)
                    answers.append(
                        (time.monotonic(), response.status_code, response.headers.get("X-Model-Version", ""))
                    )
                except requests.RequestException:
                    answers.append((time.monotonic(), 0, ""))

    senders = [threading.Thread(target=send, daemon=True) for _ in range(4)]
    try:
        for sender in senders:
            sender.start()
        publish_slow()
        deadline = time.monotonic() + 60
        while not states or states[-1][1] != "READY":
            assert time.monotonic() < deadline, f"version 2 never served; gunicorn log:\n{server.log()}"
            index = requests.post(server.url("/v2/repository/index"), json={}, timeout=30).json()
            state = next((e["state"] for e in index if e["version"] == "2"), "")
            states.append((time.monotonic(), state))
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop_sending.set()
        for sender in senders:
            sender.join(timeout=30)
        stop(server)

    loading = [when for when, state in states if state == "LOADING"]
    assert loading, "the index answered while version 2 loaded"
    during = [a for a in answers if loading[0] <= a[0] <= loading[-1]]
    assert len(during) >= 20, f"only {len(during)} requests answered during {loading[-1] - loading[0]:.1f} s of load"
    assert loading[-1] - loading[0] >= 4, "the load took its 6 s, beside the requests"
    assert [a for a in answers if a[1] != 200] == [], "no request failed"
    assert {a[2] for a in during} == {"1"}, "version 1 served while version 2 loaded"
    assert answers[-1][2] == "2"
    assert len(server.worker_pids()) == 1, "the worker was never killed (WORKER TIMEOUT) nor replaced"
    assert "WORKER TIMEOUT" not in server.log()


def test_a_load_over_model_load_timeout_is_abandoned_and_refused(tmp_path: Path) -> None:
    server, publish_slow = with_a_slow_version(tmp_path, 5.0, MODEL_LOAD_TIMEOUT="1.5")
    try:
        publish_slow()

        def refused() -> list[dict]:
            return [r for r in server.log_records() if r["message"] == "model version refused" and r["version"] == "2"]

        wait_for(lambda: bool(refused()), "version 2 refused", server)
        time.sleep(5)  # the abandoned load ends in its thread; its result is dropped
        answer = requests.post(server.url("/predict"), json={"features": ROW}, timeout=30)
        samples = server.metrics()
    finally:
        stop(server)

    [line] = refused()
    assert line["reason"] == "the load took longer than MODEL_LOAD_TIMEOUT (1.5 s); abandoned"
    assert (answer.status_code, answer.headers["X-Model-Version"]) == (200, "1")
    assert scraped(samples, "model_server_model_load_failures_total", model=MODEL, version="2") == 1
    assert scraped(samples, "model_server_model_load_failed", model=MODEL, version="2") == 1


def predict_version(server: Gunicorn) -> str:
    response = requests.post(server.url("/predict"), json={"features": ROW}, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["X-Model-Version"]


def renewals(server: Gunicorn) -> int:
    return sum(1 for r in server.log_records() if r["message"].startswith("Worker renewing"))


def test_renewed_workers_leave_bounded_files_and_unloaded_versions_leave_metrics(tmp_path: Path) -> None:
    # One worker renewing after each unloaded version (GUNICORN_MAX_UNLOADS=1), versions 1 to 6
    # published one after another: 5 workers come and go. Their files fold into the archives
    # (the folder keeps the live worker's files and three archives), their counts stay, and
    # only the version served now has series in /metrics.
    repository = tmp_path / "models"
    publish_iris(repository, 1)
    server = start(tmp_path, repository, workers=1, GUNICORN_MAX_UNLOADS="1")
    answered: Counter[str] = Counter()
    route_totals = []
    try:
        for version in range(1, 7):
            if version > 1:
                publish_iris(repository, version)
                wait_for(lambda: renewals(server) == version - 1, f"renewal {version - 1}", server)  # noqa: B023
                wait_for(lambda: len(server.worker_pids()) == version and ready(server), "a fresh worker", server)  # noqa: B023
            for _ in range(5):
                answered[predict_version(server)] += 1
            route_totals.append(scraped(server.metrics(), "model_server_requests_total", **PREDICT_200))
        samples = server.metrics()
        files = sorted(path.name for path in server.metrics_dir.glob("*.db"))
        [*_, live] = server.worker_pids()
    finally:
        stop(server)

    assert answered == dict.fromkeys(map(str, range(1, 7)), 5), "each version answered once published"
    assert route_totals == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0], "the route's count never went backwards"
    assert files == sorted(
        [f"{kind}_archive.db" for kind in ("counter", "histogram", "summary")]
        + [f"{kind}_{live}.db" for kind in ("counter", "gauge_livesum", "histogram", "summary")]
    )
    named_versions = {dict(labels).get("version") for _, labels in samples} - {None}
    assert named_versions == {"6"}, "no series of an unloaded version"
    assert scraped(samples, "model_server_model_requests_total", model=MODEL, version="6", status="200") == 5
    assert scraped(samples, "model_server_version_workers", model=MODEL, version="6") == 1


def test_a_worker_forked_while_config_json_is_invalid_follows_the_last_valid_one(tmp_path: Path) -> None:
    # The master boots on versions 1 and 2 without a config.json (latest 1: version 2); a pin to
    # version 1 follows, then the file breaks. A worker forked now (here: after a crash) starts
    # from the master's memory, yet serves version 1, as its predecessor did.
    repository = tmp_path / "models"
    publish_iris(repository, 1)
    publish_iris(repository, 2)
    server = start(tmp_path, repository, workers=1)

    def write_config(text: str) -> None:
        staged = tmp_path / "config.json"
        staged.write_text(text)
        os.replace(staged, repository / MODEL / "config.json")

    try:
        assert predict_version(server) == "2"
        write_config(json.dumps({"version_policy": {"specific": [1]}}))
        wait_for(lambda: predict_version(server) == "1", "the pin to version 1", server)
        write_config("{not json")
        wait_for(
            lambda: any(r["message"].startswith("model config invalid") for r in server.log_records()),
            "the worker to find config.json invalid",
            server,
        )
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        wait_for(lambda: len(server.worker_pids()) == 2 and ready(server), "a replacement worker", server)
        versions = Counter(predict_version(server) for _ in range(20))
    finally:
        stop(server)

    assert versions == {"1": 20}
