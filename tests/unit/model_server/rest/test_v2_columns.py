"""V2 ``infer`` with one input per column, as MLServer's pandas codec writes a DataFrame, and the model metadata.

The payloads are the codec's own shape (``PandasCodec.encode_request(df, use_bytes=False)``:
request ``parameters.content_type: "pd"``, each column ``[N, 1]``, strings as ``BYTES`` with
``content_type: "str"``, a missing value as ``null``); tests/unit/model_server/rest/test_mlserver_codec.py
sends the codec's real output. Every answer is compared with the fitted pipeline's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask import Flask
from sklearn.pipeline import Pipeline

from harness import penguins

from ..helpers import assert_error


def pandas_request(records: list[dict[str, Any]], flat: bool = False, **extra: Any) -> dict[str, Any]:
    return {**penguins.pandas_codec_request(records, flat), **extra}


def infer(app: Flask, name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = app.test_client().post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("name", [penguins.FOREST, penguins.LOGISTIC])
def test_every_row_as_pandas_codec_columns_answers_what_the_pipeline_predicts(
    tabular: Flask, fitted: dict[str, Pipeline], name: str
) -> None:
    frame = penguins.features()
    records = penguins.records(frame)
    answer = infer(tabular, name, pandas_request(records, outputs=[{"name": "predict"}, {"name": "predict_proba"}]))

    predict, proba = answer["outputs"]
    assert predict == {
        "name": "predict", "shape": [len(frame)], "datatype": "BYTES", "data": fitted[name].predict(frame).tolist(),
    }  # fmt: skip
    assert proba["shape"] == [len(frame), 3]
    np.testing.assert_allclose(
        np.reshape(proba["data"], (-1, 3)), fitted[name].predict_proba(frame), rtol=0, atol=1e-12
    )
    flat = infer(tabular, name, pandas_request(records[:25], flat=True))
    assert flat["outputs"][0]["data"] == fitted[name].predict(frame.iloc[:25]).tolist()


def test_the_columns_may_come_in_any_order_without_the_content_type(
    tabular: Flask, fitted: dict[str, Pipeline]
) -> None:
    records = [dict(reversed(list(record.items()))) for record in penguins.records()[:10]]
    body = pandas_request(records)
    del body["parameters"]
    answer = infer(tabular, penguins.FOREST, body)
    assert answer["outputs"][0]["data"] == fitted[penguins.FOREST].predict(penguins.features().iloc[:10]).tolist()


def test_the_metadata_lists_the_columns_as_inputs(tabular: Flask) -> None:
    metadata = tabular.test_client().get(f"/v2/models/{penguins.LOGISTIC}").get_json()
    assert metadata["inputs"] == [
        {"name": "island", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "bill_length_mm", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "bill_depth_mm", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "flipper_length_mm", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "body_mass_g", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "sex", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "year", "datatype": "INT64", "shape": [-1, 1]},
    ]


GOOD = penguins.records()[:3]


def changed(row: int, **values: Any) -> list[dict[str, Any]]:
    return [({**record, **values} if i == row else record) for i, record in enumerate(GOOD)]


def body_without(column: str) -> dict[str, Any]:
    body = pandas_request(GOOD)
    body["inputs"] = [tensor for tensor in body["inputs"] if tensor["name"] != column]
    return body


def body_with(column: str, **changes: Any) -> dict[str, Any]:
    body = pandas_request(GOOD)
    body["inputs"] = [({**t, **changes} if t["name"] == column else t) for t in body["inputs"]]
    return body


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (body_without("sex"), ["inputs: column 'sex' is missing"]),
        ({**pandas_request(GOOD), "inputs": [*pandas_request(GOOD)["inputs"], {"name": "beak", "shape": [3, 1],
          "datatype": "FP64", "data": [1, 2, 3]}]},
         ["inputs[7] (beak): unknown input 'beak'", "one input per column: island"]),
        (pandas_request(changed(2, year=2007.5)), ["inputs: row 2, column 'year': 2007.5 is not an integer"]),
        (pandas_request(changed(1, island="Atlantis")), ["row 1, column 'island': 'Atlantis' is not a category"]),
        (body_with("bill_length_mm", datatype="BYTES"), ["column 'bill_length_mm' holds double values", "numeric"]),
        (body_with("island", datatype="FP64"), ["column 'island' holds string values: send it as BYTES"]),
        (body_with("island", shape=[3, 2]), ["a column's shape is [rows] or [rows, 1], got [3, 2]"]),
        (body_with("island", shape=[4, 1]), ["shape [4, 1] needs 4 values, got 3"]),
        (body_with("island", data=None), ["a column's values are sent as JSON 'data'"]),
        ({**pandas_request(GOOD), "inputs": [*pandas_request(GOOD)["inputs"], pandas_request(GOOD)["inputs"][0]]},
         ["column 'island' is sent twice"]),
        ({"inputs": [{"name": "input-0", "shape": [1, 7], "datatype": "FP64", "data": [1] * 7}]},
         ["inputs[0] (input-0): unknown input 'input-0'; this model takes one input per column"]),
    ],
)  # fmt: skip
def test_a_column_that_does_not_fit_is_422_naming_it(
    tabular: Flask, body: dict[str, Any], fragments: list[str]
) -> None:
    response = tabular.test_client().post(f"/v2/models/{penguins.LOGISTIC}/infer", json=body)
    assert_error(response, 422, *fragments)


def test_a_numeric_model_takes_its_columns_too(client: Any) -> None:
    # The iris model: one input-0 tensor as always, or one input per feature as the pandas codec writes it.
    names = client.get("/v2/models/iris-rf").get_json()["parameters"]["feature_names"]
    row = [5.9, 3.0, 5.1, 1.8]
    columns = [{"name": n, "shape": [1, 1], "datatype": "FP64", "data": [v]} for n, v in zip(names, row, strict=True)]
    tensor = [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]
    by_columns = client.post("/v2/models/iris-rf/infer", json={"parameters": {"content_type": "pd"}, "inputs": columns})
    by_tensor = client.post("/v2/models/iris-rf/infer", json={"inputs": tensor})
    assert by_columns.get_json()["outputs"] == by_tensor.get_json()["outputs"]
    # input-0 named under the pandas content type is still the rows' tensor
    pd_tensor = client.post("/v2/models/iris-rf/infer", json={"parameters": {"content_type": "pd"}, "inputs": tensor})
    assert pd_tensor.status_code == 200 and pd_tensor.get_json()["outputs"] == by_tensor.get_json()["outputs"]
    assert client.get("/v2/models/iris-rf").get_json()["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}
    ]
