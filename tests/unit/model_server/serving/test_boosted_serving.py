"""A gradient-boosted model (XGBoost on Treelite) through the serving features built for scikit-learn's: a rollout
(two versions split 50/50, the second also shadowing at 100 %), concurrent requests gathered by the micro-batcher,
drift bins of its categorical columns, and feedback. Every expectation is computed from the native library (xgboost)
and from what was sent and answered, never from the server's own counters; every count is read from /metrics.

Version 1 is the penguins classifier of harness/boosted.py (30 trees), version 2 one stump per class: they disagree
on about a fifth of the rows, so the shadow's comparisons have both outcomes and each answer names its version.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from model_server.tools.package import package

from harness import boosted, penguins

from ..helpers import expected_bins, scrape, scraped

pytest.importorskip("xgboost")

NAME = boosted.XGBOOST
UNKNOWN_ISLAND = "Atlantis"  # a category training never saw: taken as missing by the model, "other" by the drift bins
THREADS = 8
BATCH_WAIT_MS = 25  # a leader waits this long for batch-mates: the threads' requests gather


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, boosted.Boosted], dict[str, Any]]:
    """The repository (versions 1 and 2, the rollout's config.json), each version's native model, and 1's metadata."""
    work = tmp_path_factory.mktemp("boosted-serving")
    made = {1: boosted.xgboost_penguins(work / "v1"), 2: boosted.xgboost_penguins(work / "v2", 1, max_depth=1)}
    repository = work / "repository"
    metadata = {}
    for version, model in made.items():
        _, metadata[version] = package(model.path, model.csv, name=NAME, version=str(version),
                                       repository=repository, target_column=penguins.TARGET)  # fmt: skip
    rollout = {"version_policy": {"all": {}}, "traffic": {"1": 50, "2": 50}, "shadow": {"version": "2", "percent": 100}}
    (repository / NAME / "config.json").write_text(json.dumps(rollout), encoding="utf-8")
    return repository, made, metadata[1]


def sent_rows() -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Every penguin as a record (None for missing), every 17th from an unknown island; and the same rows as the
    native library is given them (the unknown island missing, as the server takes it)."""
    frame, _ = boosted.penguin_frame()
    unknown = np.arange(len(frame)) % 17 == 0
    records = penguins.records(frame.astype({c: object for c in boosted.CATEGORICAL}))
    for i in np.flatnonzero(unknown):
        records[i]["island"] = UNKNOWN_ISLAND
    native = frame.copy()
    native.loc[unknown, "island"] = np.nan
    return records, native


def chunks(n: int) -> list[np.ndarray]:
    """Row indices of the requests: 1, 2, 3, 4, 1, ... rows each, every row once."""
    sizes, out, start = cycle([1, 2, 3, 4]), [], 0
    while start < n:
        size = next(sizes)
        out.append(np.arange(start, min(start + size, n)))
        start += size
    return out


def bins(samples: dict, version: int, feature: str) -> Counter[str]:
    """A feature's ``model_server_feature_bin_total`` samples of one version, by bin label."""
    wanted = {"model": NAME, "version": str(version), "feature": feature}
    counts: Counter[str] = Counter()
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name == "model_server_feature_bin_total" and {k: found.get(k) for k in wanted} == wanted:
            counts[found["bin"]] = value
    return counts


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return (scraped(after, name, **labels) or 0.0) - (scraped(before, name, **labels) or 0.0)


def test_a_boosted_rollout_serves_gathers_shadows_and_monitors_as_the_native_library_predicts(
    app_factory: Callable[..., Flask], versions: tuple[Path, dict[int, boosted.Boosted], dict[str, Any]]
) -> None:
    repository, made, metadata = versions
    app = app_factory(model_repository=repository, batch_max_wait_ms=BATCH_WAIT_MS)
    client = app.test_client()
    records, native_frame = sent_rows()
    species = boosted.penguin_frame()[1].to_numpy()
    classes = metadata["classes"]
    native = {v: np.asarray(model.native(native_frame), dtype=np.float64) for v, model in made.items()}
    labels = {v: np.asarray(classes, dtype=object)[p.argmax(axis=1)] for v, p in native.items()}
    assert 0 < np.count_nonzero(labels[1] != labels[2]) < len(records) / 2  # the versions differ, not everywhere
    requests = chunks(len(records))
    before = scrape(client.get("/metrics").get_data(as_text=True))

    def ask(i: int) -> tuple[int, dict[str, Any]]:
        body = {"features": [records[j] for j in requests[i]], "return_probabilities": i % 2 == 0}
        response = app.test_client().post("/predict", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return int(response.headers["X-Model-Version"]), response.get_json()

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(ask, range(len(requests))))
    assert app.extensions["model_server"].shadow.wait_idle(10)
    after = scrape(client.get("/metrics").get_data(as_text=True))

    # Every answer is its version's native prediction, probabilities as the existing boosted tests compare them.
    served_by: dict[int, list[int]] = {1: [], 2: []}  # request indices per version
    for i, (version, answer) in enumerate(answers):
        rows = requests[i]
        served_by[version].append(i)
        assert answer["prediction"] == labels[version][rows].tolist(), (i, version)
        if i % 2 == 0:
            assert answer["classes"] == classes
            np.testing.assert_allclose(answer["probabilities"], native[version][rows], rtol=0, atol=1e-6)
        else:
            assert "probabilities" not in answer  # compared with the shadow's, never returned unasked
    rows_of = {v: np.concatenate([requests[i] for i in served]) for v, served in served_by.items()}

    # The split: both versions served, each request counted for the version that answered it (the shadow never is).
    shares = {v: len(s) for v, s in served_by.items()}
    assert abs(shares[1] - len(requests) / 2) <= 5 * math.sqrt(len(requests)) / 2, shares  # 50/50, within 5 sigma
    for version, served in served_by.items():
        counted = delta(after, before, "model_server_model_requests_total", model=NAME, version=str(version),
                        status="200")  # fmt: skip
        assert counted == len(served), version
        predicted = Counter(labels[version][rows_of[version]].tolist())  # the served rows' classes, not the shadow's
        for cls in classes:
            counted = delta(after, before, "model_server_predictions_total", model=NAME, version=str(version),
                            **{"class": cls})  # fmt: skip
            assert counted == predicted[cls], (version, cls)

    # Drift: each row's island and sex in its category's bin (an unknown island in "other", a missing sex in
    # "missing"), for the version that served it; a number column in its reference decile, missing apart.
    for version, rows in rows_of.items():
        islands = Counter("other" if records[j]["island"] == UNKNOWN_ISLAND else records[j]["island"] for j in rows)
        sexes = Counter("missing" if records[j]["sex"] is None else records[j]["sex"] for j in rows)
        assert bins(after, version, "island") - bins(before, version, "island") == islands
        assert bins(after, version, "sex") - bins(before, version, "sex") == sexes
        assert islands["other"] > 0 and sexes["missing"] > 0
        counted = bins(after, version, "bill_length_mm") - bins(before, version, "bill_length_mm")
        values = np.array([records[j]["bill_length_mm"] for j in rows], dtype=np.float64)
        edges = metadata["reference"]["features"]["bill_length_mm"]["edges"]
        assert [counted[str(b)] for b in range(10)] == expected_bins(edges, values[~np.isnan(values)]).tolist()
        assert counted["missing"] == np.count_nonzero(np.isnan(values))
        unknown = delta(after, before, "model_server_unknown_categories_total", model=NAME, version=str(version),
                        column="island")  # fmt: skip
        assert unknown == islands["other"]

    # The shadow: every request version 1 served was run on version 2 and compared once, row by row; version 2's
    # own requests were not shadowed.
    agree = sum(bool(np.array_equal(labels[1][requests[i]], labels[2][requests[i]])) for i in served_by[1])
    shadow = {
        result: delta(after, before, "model_server_shadow_requests_total", model=NAME, version="2", primary="1",
                      result=result)
        for result in ("agree", "disagree", "error", "dropped")
    }  # fmt: skip
    assert shadow == {"agree": agree, "disagree": len(served_by[1]) - agree, "error": 0, "dropped": 0}
    assert 0 < agree < len(served_by[1])  # both outcomes happened: each count can be wrong
    assert not any(
        delta(after, before, "model_server_shadow_requests_total", model=NAME, version="2", primary="2", result=r)
        for r in ("agree", "disagree", "error", "dropped")
    )
    difference = {"model": NAME, "version": "2", "primary": "1"}
    expected = sum(np.abs(native[2][requests[i]] - native[1][requests[i]]).mean() for i in served_by[1])
    assert delta(after, before, "model_server_shadow_probability_difference_count", **difference) == len(served_by[1])
    assert delta(after, before, "model_server_shadow_probability_difference_sum", **difference) == pytest.approx(
        expected, rel=1e-5
    )

    # Micro-batching: every request in exactly one gathered model call, and fewer calls than requests, per version
    # (version 1's calls are its served ones alone; version 2's include the shadow's).
    assert delta(after, before, "model_server_batch_size_sum") == len(requests)
    calls = delta(after, before, "model_server_batch_size_count")
    assert calls < len(requests) / 2, (calls, len(requests))
    v1_calls = delta(after, before, "model_server_inference_duration_seconds_count", model=NAME, version="1")
    assert 0 < v1_calls < len(served_by[1])

    # Feedback: each version's served labels against the true species, counted right or wrong and by pair.
    for version, rows in rows_of.items():
        predicted = labels[version][rows]
        truth = species[rows]
        response = client.post(
            f"/v2/models/{NAME}/versions/{version}/feedback",
            json={"prediction": predicted.tolist(), "truth": truth.tolist()},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json() == {"model_name": NAME, "model_version": str(version), "accepted": len(rows)}
    samples = scrape(client.get("/metrics").get_data(as_text=True))
    for version, rows in rows_of.items():
        right = int(np.count_nonzero(labels[version][rows] == species[rows]))
        results = {
            result: delta(samples, after, "model_server_feedback_results_total", model=NAME, version=str(version),
                          result=result)
            for result in ("correct", "wrong")
        }  # fmt: skip
        assert results == {"correct": right, "wrong": len(rows) - right}, version
        pairs = Counter(zip(labels[version][rows].tolist(), species[rows].tolist(), strict=True))
        for (p, t), count in pairs.items():
            counted = delta(samples, after, "model_server_feedback_total", model=NAME, version=str(version),
                            predicted=p, truth=t)  # fmt: skip
            assert counted == count, (version, p, t)
    assert np.count_nonzero(labels[2][rows_of[2]] != species[rows_of[2]]) > 0  # the stump is wrong on some rows
    # Unversioned feedback is the primary's: on a 50/50 tie, the older version.
    response = client.post(f"/v2/models/{NAME}/feedback", json={"prediction": ["Adelie"], "truth": ["Gentoo"]})
    assert response.get_json()["model_version"] == "1"
    final = scrape(client.get("/metrics").get_data(as_text=True))
    assert delta(final, samples, "model_server_feedback_results_total", model=NAME, version="1", result="wrong") == 1
