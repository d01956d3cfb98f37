"""Micro-batching of a model fitted on a DataFrame: concurrent rows of strings, integers and missing values share model
calls (object matrices joined, one DataFrame built from them), and each request gets the pipeline's own answer."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_server.app import create_app
from model_server.config import Settings
from model_server.serving.predictor import Prediction

from harness import penguins

from ..helpers import served


def test_concurrent_rows_of_strings_and_missing_values_share_model_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The penguins pipeline (strings, integers, missing values): rows are object matrices, joined into one call
    # and built into one DataFrame, a long column float in it where any batch-mate misses a year. As in
    # test_batching: the first call is slow, and the requests sent meanwhile queue behind it.
    model = penguins.forest()
    penguins.publish_penguins(tmp_path / "models", tmp_path / "work", "penguins", model)
    app = create_app(Settings(model_repository=tmp_path / "models", batch_max_rows=64))
    predictor = served(app, "penguins").predictor
    calls: list[int] = []
    real = predictor.predict

    def slow_first(rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        calls.append(len(rows))
        if len(calls) == 1:
            time.sleep(0.3)  # the first call runs: the other requests queue behind it
        return real(rows, with_probabilities)

    monkeypatch.setattr(predictor, "predict", slow_first)
    frame = penguins.features()
    chunks = [frame.iloc[[0]]] + [frame.iloc[i : i + 3] for i in range(1, 25, 3)]
    chunks.append(frame.iloc[[5, 8]].assign(year=None, island=["Dream", "Biscoe"]))  # a year and a sex missing
    assert any(chunk.isna().any(axis=None) for chunk in chunks[1:]) and chunks[-1]["year"].isna().all()

    def ask(chunk: Any) -> Any:
        with app.test_client() as client:
            return client.post("/predict", json={"features": penguins.records(chunk), "return_probabilities": True})

    with ThreadPoolExecutor(len(chunks)) as pool:
        first = pool.submit(ask, chunks[0])
        time.sleep(0.1)
        rest = [pool.submit(ask, chunk) for chunk in chunks[1:]]
        responses = [f.result(timeout=30) for f in (first, *rest)]

    for chunk, response in zip(chunks, responses, strict=True):
        assert response.status_code == 200, response.get_json()
        as_read = chunk.astype({"year": np.float64}) if chunk["year"].isna().any() else chunk
        answer = response.get_json()
        assert answer["prediction"] == model.predict(as_read).tolist()
        np.testing.assert_allclose(answer["probabilities"], model.predict_proba(as_read), rtol=0, atol=1e-12)
    assert sum(calls) == sum(len(chunk) for chunk in chunks)
    assert len(calls) < len(chunks) and max(calls) > 3, calls  # some call joined several requests' rows
