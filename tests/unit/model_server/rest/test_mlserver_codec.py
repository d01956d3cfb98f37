"""MLServer's own pandas codec as the client: its ``encode_request`` output is accepted unchanged.

``mlserver.codecs.PandasCodec.encode_request(df, use_bytes=False)`` runs in MLServer 1.7.1's
venv (Python <= 3.12; tests/run makes it and sets MLSERVER_CLIENT_PYTHON) on the penguins
rows read from CSV. The codec cannot encode a missing string (it calls ``np.isnan`` on every
value of a column with a missing entry), so, as its users do, the client fills such cells and
writes JSON ``null`` in their place; missing numbers it writes as ``null`` itself. Every
answer is compared with what the fitted pipeline predicts on the same rows.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from sklearn.pipeline import Pipeline

from harness import penguins

ENCODE = """
import json, sys
import pandas as pd
from mlserver.codecs import PandasCodec

frame = pd.read_csv(sys.argv[1])
strings = [c for c in frame.columns if frame[c].dtype.kind not in "biuf"]
frame = frame.astype({c: object for c in strings})  # pandas 3's str dtype: the codec knows object columns
missing = {c: frame.index[frame[c].isna()].tolist() for c in strings}
frame = frame.fillna({c: "" for c in strings})  # np.isnan fails on a missing string: fill, then null it
request = json.loads(PandasCodec.encode_request(frame, use_bytes=False).model_dump_json(exclude_none=True))
for tensor in request["inputs"]:
    for row in missing.get(tensor["name"], ()):
        tensor["data"][row] = None
print(json.dumps(request))
"""


@pytest.fixture(scope="module")
def mlserver_python() -> str:
    python = os.environ.get("MLSERVER_CLIENT_PYTHON")
    if not python:
        pytest.skip("MLSERVER_CLIENT_PYTHON is not set: tests/run makes MLServer's venv (Python 3.12)")
    return python


def encoded(mlserver_python: str, csv: Path) -> dict:
    done = subprocess.run([mlserver_python, "-c", ENCODE, str(csv)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", [penguins.FOREST, penguins.LOGISTIC])
def test_the_codecs_request_is_answered_as_the_pipeline_predicts(
    mlserver_python: str, tabular: Flask, fitted: dict[str, Pipeline], name: str, tmp_path: Path
) -> None:
    frame = penguins.features()
    frame.to_csv(tmp_path / "rows.csv", index=False)
    request = encoded(mlserver_python, tmp_path / "rows.csv")
    assert request["parameters"] == {"content_type": "pd"}
    assert {t["name"]: (t["datatype"], t["shape"]) for t in request["inputs"]}["island"] == ("BYTES", [len(frame), 1])
    request["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]

    response = tabular.test_client().post(f"/v2/models/{name}/infer", json=request)

    assert response.status_code == 200, response.get_json()
    predict, proba = response.get_json()["outputs"]
    assert predict["data"] == fitted[name].predict(frame).tolist()
    np.testing.assert_allclose(np.reshape(proba["data"], (-1, 3)), fitted[name].predict_proba(frame), atol=1e-12)
