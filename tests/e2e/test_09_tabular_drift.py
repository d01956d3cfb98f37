"""Drift of a tabular model end to end: a categorical shift raises its column's PSI, the numbers stay.

The replicas serve a host repository with model `penguins-drift`, versions 1 and 2 (policy all),
both the penguins forest pipeline packaged from the CSV, so each version's counters start from
zero. Version 1 gets every row of the data twice; version 2 the same rows with every island set
to Biscoe (V2 infer, one input per column as MLServer's pandas codec writes them). Prometheus'
recording rules (prometheus/rules/quality.yml, the same for string and number columns) give
version 2's island a PSI over 0.25 and ModelInputDrift's condition holds for it, while every
numeric column of version 2 and every column of version 1 stays under 0.1. The missing values of
the nullable columns are counted in their own bin, against training's missing share.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import penguins

from .stack import Stack, feature_counters_at_zero, serving_repository, wait_for

MODEL = "penguins-drift"
PASSES = 2
COLUMNS = list(penguins.features().columns)


@pytest.fixture(scope="module")
def drift(stack: Stack) -> Iterator[Stack]:
    root, work = Path(tempfile.mkdtemp(prefix="e2e-tabular-drift-")), Path(tempfile.mkdtemp(prefix="e2e-work-"))
    model = penguins.forest()
    for version in (1, 2):
        penguins.publish_penguins(root, work, MODEL, model, version=version)
    (root / MODEL / "config.json").write_text(json.dumps({"version_policy": {"all": {}}}))
    try:
        with serving_repository(stack, root, default_model=MODEL):
            feature_counters_at_zero(stack, MODEL, per_replica=2 * 64)  # versions, the columns' bins
            yield stack
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def infer(stack: Stack, version: str, records: list[dict[str, Any]]) -> None:
    with requests.Session() as session:
        for start in range(0, len(records), 10):
            body = penguins.pandas_codec_request(records[start : start + 10])
            response = session.post(f"{stack.nginx_url}/v2/models/{MODEL}/versions/{version}/infer", json=body)
            assert response.status_code == 200, response.text


def recorded_psi(stack: Stack, version: str) -> dict[str, float]:
    """The 1 h PSI of each column that the recording rule wrote last."""
    query = f'model_server:feature_psi:1h{{model="{MODEL}",version="{version}"}}'
    return {r["metric"]["feature"]: float(r["value"][1]) for r in stack.query(query)}


def test_a_categorical_shift_raises_its_columns_psi_and_no_other(drift: Stack) -> None:
    # Shuffled: every replica gets a like mix of the rows. (The data is in species order, and increase() scales
    # each replica's counts by its own sampling of the window: replicas that saw unlike rows would skew the sum.)
    records = random.Random(0).sample(penguins.records() * PASSES, k=len(penguins.records()) * PASSES)
    infer(drift, "1", records)
    infer(drift, "2", [{**record, "island": "Biscoe"} for record in records])

    def counted() -> bool | None:
        query = f'sum by (version) (model_server_feature_bin_total{{model="{MODEL}",feature="island"}})'
        return {r["metric"]["version"]: float(r["value"][1]) for r in drift.query(query)} == {
            "1": len(records),
            "2": len(records),
        } or None

    wait_for("Prometheus to scrape every value sent", counted, timeout=60, interval=2)
    drift.wait_for_evaluation("model_server:feature_psi:1h")

    unchanged, shifted = recorded_psi(drift, "1"), recorded_psi(drift, "2")
    assert set(unchanged) == set(shifted) == set(COLUMNS), "every column has a PSI, strings and numbers alike"
    assert all(psi < 0.1 for psi in unchanged.values()), unchanged
    assert shifted["island"] > 0.25
    assert all(psi < 0.1 for column, psi in shifted.items() if column != "island"), shifted
    missing = drift.query(
        f'sum(model_server_feature_bin_total{{model="{MODEL}",version="1",feature="sex",bin="missing"}})'
    )
    assert float(missing[0]["value"][1]) == 11 * PASSES, "the 11 rows without a sex, in the missing bin"
    print(f"\n[e2e] PSI of island: {unchanged['island']:.4f} unchanged, {shifted['island']:.2f} all Biscoe; "
          f"the numbers' largest {max(v for k, v in shifted.items() if k != 'island'):.4f}")  # fmt: skip

    def drift_alert() -> list | None:
        return [a for a in drift.alerts("ModelInputDrift")
                if a["labels"].get("version") == "2" and a["labels"].get("feature") == "island"] or None  # fmt: skip

    alerts = wait_for("ModelInputDrift for the island", drift_alert, timeout=60, interval=2)
    assert {a["state"] for a in alerts} <= {"pending", "firing"}
    others = [a for a in drift.alerts("ModelInputDrift") if a["labels"].get("model") == MODEL and a["labels"].get(
        "feature") != "island"]  # fmt: skip
    assert not others, f"drift alerts on unchanged columns: {others}"
