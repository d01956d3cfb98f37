"""A host model repository with two models, hot-swapped under load through nginx.

The replicas are switched to a host folder (MODEL_REPOSITORY=/models, MODEL_HOST_DIR) holding
the default iris forest and a logistic regression on the wine data (13 features), with the
default poll interval (MODEL_POLL_SECONDS=5). Under continuous load at concurrency 16: a new
iris version published with `mv` serves on every replica within 20 s; a corrupt version
published next is refused while the previous one keeps serving, and ModelLoadFailing reaches
Alertmanager; removing the newest version's folder rolls back to the previous version. Not one
request fails. The replicas run with GUNICORN_MAX_UNLOADS=1, so that each of these swaps also
renews every replica's worker (all at once: the worst case), with no request failing either.
Then the repository turns hostile: a FIFO named config.json, a model folder the replicas cannot
read; the stack keeps serving, and says so in each replica's metrics.
The replicas return to the image's built-in repository at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from model_server.tools.package import package
from model_server.tools.train import train_into_repository
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.load import send_load

from .stack import Stack, every_replica_serves, serving_repository, wait_for

CONCURRENCY = 16
MIN_REQUESTS = 5000
WITHIN = 20  # seconds from `mv` to every replica serving the new version
IRIS_ROW = {"features": [1, 2, 3, 4]}


def publish(repository: Path, staged: Path, name: str, version: int) -> None:
    """The README's atomic publish: copy under a hidden name inside the model's folder, then mv."""
    hidden = repository / name / f".{version}.incoming"
    shutil.copytree(staged, hidden)
    os.rename(hidden, repository / name / str(version))


@pytest.fixture(scope="module")
def repository(stack: Stack) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="e2e-models-"))
    train_into_repository(root, "iris-rf", "1")
    wine = load_wine()
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    estimator.fit(wine.data, wine.target)
    work = Path(tempfile.mkdtemp(prefix="e2e-wine-"))
    with (work / "wine.joblib").open("wb") as handle:
        pickle.dump(estimator, handle)
    np.save(work / "train.npy", wine.data)
    package(work / "wine.joblib", work / "train.npy", name="wine-lr", version="1", repository=root)
    shutil.rmtree(work)
    try:
        with serving_repository(stack, root, default_model="iris-rf", GUNICORN_MAX_UNLOADS="1"):
            yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_two_models_served_through_nginx(stack: Stack, repository: Path) -> None:
    response = requests.post(f"{stack.nginx_url}/predict", json=IRIS_ROW, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"prediction": [2]} and response.headers["X-Model-Version"] == "1"
    wine = load_wine()
    body = {"inputs": [{"name": "input-0", "shape": [2, 13], "datatype": "FP64", "data": wine.data[[0, 70]].tolist()}]}
    answer = requests.post(f"{stack.nginx_url}/v2/models/wine-lr/infer", json=body, timeout=10).json()
    assert answer["model_name"] == "wine-lr" and answer["model_version"] == "1", answer
    assert answer["outputs"][0]["data"] == [0, 1]
    index = requests.post(f"{stack.nginx_url}/v2/repository/index", timeout=10).json()
    assert {(i["name"], i["version"], i["state"]) for i in index} == {
        ("iris-rf", "1", "READY"),
        ("wine-lr", "1", "READY"),
    }


def test_publish_refuse_and_roll_back_under_load(stack: Stack, repository: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix="e2e-staging-"))
    train_into_repository(staging, "iris-rf", "2")
    done = threading.Event()
    load: dict = {}
    versions: Counter[str] = Counter()

    def generate() -> None:
        load["result"] = send_load(f"{stack.nginx_url}/predict", MIN_REQUESTS, CONCURRENCY, body=IRIS_ROW, until=done)

    loader = threading.Thread(target=generate)
    loader.start()
    try:
        time.sleep(2)
        # 1. a new version, published with mv, serves on every replica within 20 s
        publish(repository, staging / "iris-rf" / "2", "iris-rf", 2)
        published = time.monotonic()
        wait_for("every replica to serve iris-rf version 2 only",
                 lambda: every_replica_serves(stack, "iris-rf", {"2"}), timeout=WITHIN, interval=1)  # fmt: skip
        print(f"\n[e2e] iris-rf v2 served by every replica {time.monotonic() - published:.1f}s after mv")
        versions.update(probe_versions(stack, 50))
        assert set(versions) == {"2"}, versions

        # 2. a corrupt version is refused; version 2 keeps serving; ModelLoadFailing fires
        corrupt = staging / "corrupt"
        shutil.copytree(staging / "iris-rf" / "2", corrupt)
        (corrupt / "model.skops").write_bytes(b"not a model")
        metadata = json.loads((corrupt / "metadata.json").read_text())
        metadata.pop("sha256")
        (corrupt / "metadata.json").write_text(json.dumps(metadata))
        publish(repository, corrupt, "iris-rf", 3)
        refused_at = time.monotonic()

        def alert_in_alertmanager() -> bool | None:
            return any(a["labels"].get("version") == "3" for a in stack.alertmanager_alerts("ModelLoadFailing")) or None

        wait_for("ModelLoadFailing in Alertmanager", alert_in_alertmanager, timeout=120, interval=2)
        print(f"[e2e] ModelLoadFailing in Alertmanager {time.monotonic() - refused_at:.0f}s after the corrupt mv")
        assert every_replica_serves(stack, "iris-rf", {"2"})
        index = requests.post(f"{stack.nginx_url}/v2/repository/index", timeout=10).json()
        [three] = [i for i in index if i["name"] == "iris-rf" and i["version"] == "3"]
        assert three["state"] == "UNAVAILABLE" and "model.skops" in three["reason"], three

        # 3. removing the newest versions rolls back to version 1, loaded again
        shutil.rmtree(repository / "iris-rf" / "3")
        shutil.rmtree(repository / "iris-rf" / "2")
        wait_for("every replica to serve iris-rf version 1 again",
                 lambda: every_replica_serves(stack, "iris-rf", {"1"}), timeout=WITHIN, interval=1)  # fmt: skip
        assert set(probe_versions(stack, 50)) == {"1"}
    finally:
        done.set()
        loader.join()
        shutil.rmtree(staging, ignore_errors=True)
    result = load["result"]
    print(f"[e2e] under the swaps: {result.summary()}")
    assert result.sent >= MIN_REQUESTS
    assert result.failed == 0, f"{result.summary()}; first errors: {result.errors[:3]}"
    # Each replica's one worker unloaded version 1 (step 1), then version 2 (step 3): renewed twice.
    renewals = {c: renewals_logged(c) for c in stack.container_ids("model")}
    assert set(renewals.values()) == {2}, renewals
    wait_for("ModelLoadFailing to resolve", lambda: not stack.alerts("ModelLoadFailing") or None, timeout=90)


def gauge_on_every_replica(stack: Stack, metric: str, model: str, value: str) -> bool | None:
    """Whether every replica's /metrics has ``metric{model=...}`` at ``value``."""
    line = f'{metric}{{model="{model}"}} {value}'
    return all(line in stack.replica_metrics(c).splitlines() for c in stack.container_ids("model")) or None


def test_a_hostile_repository_leaves_the_stack_serving(stack: Stack, repository: Path) -> None:
    # A FIFO named config.json (which once hung a replica for good), then a model folder the
    # replicas (uid 10001) cannot read for more than two polls: under load through nginx, every
    # request is answered, by the versions that were loaded.
    done = threading.Event()
    load: dict = {}

    def generate() -> None:
        load["result"] = send_load(f"{stack.nginx_url}/predict", 1000, CONCURRENCY, body=IRIS_ROW, until=done)

    loader = threading.Thread(target=generate)
    loader.start()
    fifo = repository / "iris-rf" / "config.json"
    wine = repository / "wine-lr"
    try:
        os.mkfifo(fifo)
        wait_for("every replica to refuse the FIFO config.json (model_config_invalid 1)",
                 lambda: gauge_on_every_replica(stack, "model_server_model_config_invalid", "iris-rf", "1.0"),
                 timeout=WITHIN, interval=1)  # fmt: skip
        assert set(probe_versions(stack, 20)) == {"1"}
        fifo.unlink()

        wine.chmod(0)
        wait_for("every replica to find wine-lr's folder unreadable",
                 lambda: gauge_on_every_replica(stack, "model_server_repository_unreadable", "wine-lr", "1.0"),
                 timeout=WITHIN, interval=1)  # fmt: skip
        time.sleep(12)  # two more polls
        body = {
            "inputs": [
                {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": [load_wine().data[0].tolist()]}
            ]
        }
        answer = requests.post(f"{stack.nginx_url}/v2/models/wine-lr/infer", json=body, timeout=10)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0], answer.text
    finally:
        wine.chmod(0o755)
        fifo.unlink(missing_ok=True)
        done.set()
        loader.join()
    wait_for("every replica to read wine-lr's folder again",
             lambda: gauge_on_every_replica(stack, "model_server_repository_unreadable", "wine-lr", "0.0"),
             timeout=WITHIN, interval=1)  # fmt: skip
    result = load["result"]
    print(f"[e2e] under a FIFO config.json and an unreadable model folder: {result.summary()}")
    assert result.failed == 0, f"{result.summary()}; first errors: {result.errors[:3]}"
    assert every_replica_serves(stack, "wine-lr", {"1"})


def renewals_logged(container: str) -> int:
    """How often the replica's log says its worker renewed after one unloaded version (gunicorn logs on stderr)."""
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30, check=True)
    return (logs.stdout + logs.stderr).count("Worker renewing: 1 model versions unloaded")


def probe_versions(stack: Stack, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(count):
            response = session.post(f"{stack.nginx_url}/predict", json=IRIS_ROW, timeout=10)
            assert response.status_code == 200 and response.json() == {"prediction": [2]}, response.text
            seen[response.headers["X-Model-Version"]] += 1
    return seen
