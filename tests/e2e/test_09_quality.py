"""Model quality end to end: replicas count, Prometheus computes PSI and live accuracy.

The replicas serve a host repository with model `iris-quality`, versions 1 and 2 (policy all),
both the default iris forest with the reference statistics of its training sample, so each
version's counters start from zero. Version 1 gets traffic drawn from the iris data as a whole:
every feature's PSI stays under 0.1. Version 2 gets the same rows with petal length shifted by
two training standard deviations: that feature's PSI goes over 0.25 — equal, within 1 %, to the
PSI this test computes itself from the same counts — and ModelInputDrift's condition holds (it is
pending; its 15 minutes `for:` are proved by promtool in prometheus/tests/quality_test.yml).
1,000 feedback pairs with 13 % errors give the dashboard's live accuracy within 0.5 points.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from model_server.tools.train import train_into_repository
from sklearn.datasets import load_iris

from .stack import Stack, feature_counters_at_zero, serving_repository, wait_for

MODEL = "iris-quality"
FEATURE = "petal length (cm)"
FLOOR = 0.0001  # the empty-bin floor of prometheus/rules/quality.yml
PASSES = 4  # the 150 iris rows, 4 times: 600 values per feature and version


@pytest.fixture(scope="module")
def quality(stack: Stack) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="e2e-quality-"))
    for version in ("1", "2"):
        train_into_repository(root, MODEL, version)
    (root / MODEL / "config.json").write_text(json.dumps({"version_policy": {"all": {}}}))
    try:
        with serving_repository(stack, root, default_model=MODEL):
            feature_counters_at_zero(stack, MODEL, per_replica=2 * 4 * 10)  # versions, features, bins
            yield stack
    finally:
        shutil.rmtree(root, ignore_errors=True)


def infer(stack: Stack, version: str, rows: np.ndarray) -> None:
    with requests.Session() as session:
        for start in range(0, len(rows), 10):
            chunk = rows[start : start + 10]
            body = {"inputs": [{"name": "input-0", "shape": list(chunk.shape), "datatype": "FP64",
                                "data": chunk.tolist()}]}  # fmt: skip
            response = session.post(f"{stack.nginx_url}/v2/models/{MODEL}/versions/{version}/infer", json=body)
            assert response.status_code == 200, response.text


def recorded_psi(stack: Stack, version: str, feature: str) -> tuple[float, float]:
    """The 1 h PSI the recording rule wrote last, and the time of that evaluation: the sample's own
    timestamp (an instant query's timestamp is the query's time, at which ``increase`` extrapolates
    each replica's counts to a later end, so it would compare a PSI of other shares)."""
    query = f'model_server:feature_psi:1h{{model="{MODEL}",version="{version}",feature="{feature}"}}[1m]'
    [result] = stack.query(query)
    at, value = result["values"][-1]
    return float(value), float(at)


def psi_of(stack: Stack, version: str, feature: str, at: float) -> float:
    """PSI computed here from the same counts the rule read at ``at``: each bin's increase over the
    hour (summed over the replicas) and the reference shares Prometheus holds."""
    labels = f'model="{MODEL}",version="{version}",feature="{feature}"'
    increases = f"sum by (bin) (increase(model_server_feature_bin_total{{{labels}}}[1h]))"
    shares = f"max by (bin) (model_server_feature_reference_share{{{labels}}})"
    counts = {r["metric"]["bin"]: float(r["value"][1]) for r in stack.query(increases, at)}
    reference = {r["metric"]["bin"]: float(r["value"][1]) for r in stack.query(shares, at)}
    assert set(reference) == {str(b) for b in range(10)}, reference
    total = sum(counts.values())
    psi = 0.0
    for b, ref in reference.items():
        live, ref = max(counts.get(b, 0.0) / total, FLOOR), max(ref, FLOOR)
        psi += (live - ref) * math.log(live / ref)
    return psi


def test_drift_of_unchanged_and_shifted_inputs(quality: Stack) -> None:
    data = load_iris()
    # Drawn from the iris data as a whole, shuffled: every replica gets a like mix of the classes.
    rows = np.random.default_rng(0).permutation(np.tile(data.data, (PASSES, 1)))
    infer(quality, "1", rows)
    shifted = rows.copy()
    column = list(data.feature_names).index(FEATURE)
    shifted[:, column] += 2 * data.data[:, column].std()
    infer(quality, "2", shifted)
    sent = len(rows)

    def counted() -> bool | None:
        query = f'sum by (version) (model_server_feature_bin_total{{model="{MODEL}",feature="{FEATURE}"}})'
        return {r["metric"]["version"]: float(r["value"][1]) for r in quality.query(query)} == {
            "1": sent,
            "2": sent,
        } or None

    wait_for("Prometheus to scrape every value sent", counted, timeout=60, interval=2)
    quality.wait_for_evaluation("model_server:feature_psi:1h")
    assert recorded_psi(quality, "2", FEATURE)[0] > 0.25

    for feature in data.feature_names:
        unchanged, at = recorded_psi(quality, "1", feature)
        assert unchanged < 0.1, f"{feature}: PSI {unchanged} for traffic drawn from the iris data"
        assert unchanged == pytest.approx(psi_of(quality, "1", feature, at), rel=0.01, abs=1e-4)
    drifted, at = recorded_psi(quality, "2", FEATURE)
    assert drifted > 0.25
    assert drifted == pytest.approx(psi_of(quality, "2", FEATURE, at), rel=0.01)
    print(f"\n[e2e] PSI of {FEATURE}: {recorded_psi(quality, '1', FEATURE)[0]:.4f} unchanged, {drifted:.2f} shifted")

    def drift_alert() -> list | None:
        return [a for a in quality.alerts("ModelInputDrift")
                if a["labels"].get("version") == "2" and a["labels"].get("feature") == FEATURE] or None  # fmt: skip

    alerts = wait_for("ModelInputDrift for the shifted feature", drift_alert, timeout=60, interval=2)
    assert {a["state"] for a in alerts} <= {"pending", "firing"}
    unchanged_version = {"model": MODEL, "version": "1"}
    others = [a for a in quality.alerts("ModelInputDrift") if unchanged_version.items() <= a["labels"].items()]
    assert not others, f"drift on unchanged traffic: {others}"


def test_live_accuracy_from_1000_feedback_pairs(quality: Stack) -> None:
    rng = random.Random(0)
    truth = [rng.randrange(3) for _ in range(1000)]
    wrong = set(rng.sample(range(1000), 130))  # 13 % errors: accuracy 0.87
    prediction = [(t + 1) % 3 if i in wrong else t for i, t in enumerate(truth)]
    url = f"{quality.nginx_url}/v2/models/{MODEL}/versions/1/feedback"
    with requests.Session() as session:
        for start in range(0, 1000, 100):
            body = {"prediction": prediction[start : start + 100], "truth": truth[start : start + 100]}
            response = session.post(url, json=body)
            assert response.status_code == 200 and response.json()["accepted"] == 100, response.text

    query = f'model_server:live_accuracy:1h{{model="{MODEL}",version="1"}}'
    raw = f'sum(model_server_feedback_total{{model="{MODEL}",version="1"}})'
    wait_for("every feedback pair scraped", lambda: quality.scalar(raw) == 1000 or None, timeout=60, interval=2)
    # The rule's last value may still come from an evaluation that saw only some replicas' pairs.
    quality.wait_for_evaluation("model_server:live_accuracy:1h")
    accuracy = quality.scalar(query)
    assert accuracy == pytest.approx(0.87, abs=0.005), accuracy
    # Every pair counted exactly once (the raw counters; the 1 h rules extrapolate them).
    counted = quality.scalar(raw)
    diagonal = " + ".join(
        f'sum(model_server_feedback_total{{model="{MODEL}",version="1",predicted="{c}",truth="{c}"}})'
        for c in ("setosa", "versicolor", "virginica")
    )
    assert quality.scalar(f"{counted} - ({diagonal})") == 130  # the wrong ones
