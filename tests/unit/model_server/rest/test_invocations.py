"""``POST /invocations``: MLflow's scoring protocol, every payload shape and CSV, answered as the pipeline predicts.

The payloads are those ``mlflow models serve`` takes (its scoring server's documented formats:
``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, ``text/csv``), built
from the penguins DataFrame as pandas writes them (``to_dict(orient="split")``, ``"records"``,
``to_csv``), with NaN written as JSON null.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from model_server.rest.bodies import InvocationsResponse
from sklearn.pipeline import Pipeline

from harness import penguins

from ..helpers import assert_error

FRAME = penguins.features()
RECORDS = penguins.records(FRAME)
COLUMNS = list(FRAME.columns)


def invoke(app: Flask, **request: Any) -> Any:
    response = app.test_client().post("/invocations", **request)
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Model-Version"] == "1"
    return response.get_json()["predictions"]


PAYLOADS = {
    "split": {"dataframe_split": {"columns": COLUMNS, "data": [list(r.values()) for r in RECORDS]}},
    "split-no-columns": {"dataframe_split": {"data": [list(r.values()) for r in RECORDS]}},  # the model's column order
    "split-reordered": {
        "dataframe_split": {"columns": COLUMNS[::-1], "data": [list(r.values())[::-1] for r in RECORDS]}
    },
    "records": {"dataframe_records": RECORDS},
    "instances": {"instances": RECORDS},
    "inputs": {"inputs": RECORDS, "params": {}},
    "inputs-rows": {"inputs": [list(r.values()) for r in RECORDS]},
    "columns": {"inputs": {c: [r[c] for r in RECORDS] for c in COLUMNS}},
}


@pytest.mark.parametrize("name", [penguins.FOREST, penguins.LOGISTIC])
@pytest.mark.parametrize("body", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_every_mlflow_payload_answers_what_the_pipeline_predicts(
    apps: dict[str, Flask], fitted: dict[str, Pipeline], name: str, body: dict[str, Any]
) -> None:
    assert invoke(apps[name], json=body) == fitted[name].predict(FRAME).tolist()


def test_csv_with_a_header_row(apps: dict[str, Flask], fitted: dict[str, Pipeline]) -> None:
    csv = FRAME.to_csv(index=False)  # empty cells for the missing values
    for content_type in ("text/csv", "text/csv; charset=utf-8", "application/csv"):
        predictions = invoke(apps[penguins.FOREST], data=csv, content_type=content_type)
        assert predictions == fitted[penguins.FOREST].predict(FRAME).tolist()


@pytest.mark.parametrize(
    "request_",
    [*({"json": body} for body in PAYLOADS.values()), {"data": FRAME.to_csv(index=False), "content_type": "text/csv"}],
    ids=[*PAYLOADS.keys(), "csv"],
)
def test_every_answer_is_an_invocations_response(tabular: Flask, request_: dict[str, Any]) -> None:
    # Built as a dict (rest/invocations.py): the body must stay what the model, hence /openapi.json, says.
    response = tabular.test_client().post("/invocations", **request_)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer == InvocationsResponse.model_validate(answer).model_dump()
    assert set(answer) == set(InvocationsResponse.model_fields), "the model's fields"
    assert len(answer["predictions"]) == len(FRAME)


GOOD = RECORDS[0]


@pytest.mark.parametrize(
    ("request_", "fragments"),
    [
        ({"json": {"dataframe_records": [GOOD, {**GOOD, "year": 2008.5}]}},
         ["dataframe_records: row 1, column 'year': 2008.5 is not an integer"]),
        ({"json": {"dataframe_split": {"columns": ["island"], "data": [["Biscoe"]]}}},
         ["dataframe_split: row 0, column 'bill_length_mm': missing"]),
        ({"json": {"dataframe_split": {"columns": COLUMNS, "data": [["Biscoe"]]}}},
         ["dataframe_split: row 0 must be an array of 7 values"]),
        ({"json": {"instances": [{**GOOD, "island": "Atlantis"}]}}, ["instances: row 0, column 'island': 'Atlantis'"]),
        ({"json": {"inputs": {"island": ["Biscoe"]}}}, ["inputs: column 'bill_length_mm' is missing"]),
        ({"json": {"inputs": {**{c: [GOOD[c]] for c in COLUMNS}, "sex": [None, "male"]}}},
         ["the columns have different lengths"]),
        ({"json": {"dataframe_records": RECORDS[:1], "instances": RECORDS[:1]}},
         ["send exactly one of dataframe_split, dataframe_records, instances, inputs",
          "'dataframe_records', 'instances'"]),
        ({"json": {"records": RECORDS[:1]}}, ["send exactly one of", "got 'records'"]),
        ({"json": {"dataframe_records": {"island": "Biscoe"}}}, ["'dataframe_records' must be an array of records"]),
        ({"data": "island,year\nBiscoe,2008\n", "content_type": "text/csv"},
         ["CSV: row 0, column 'bill_length_mm': missing"]),
        ({"data": FRAME.to_csv(index=False).replace("39.1", "abc"), "content_type": "text/csv"},
         ["CSV: row 0, column 'bill_length_mm': expected a number, got 'abc'"]),
        ({"data": FRAME.to_csv(index=False).replace(",2007\n", ",2007.5\n", 1), "content_type": "text/csv"},
         ["CSV: row 0, column 'year': 2007.5 is not an integer"]),
        ({"data": "", "content_type": "text/csv"}, ["CSV: no header row"]),
    ],
)  # fmt: skip
def test_a_payload_that_does_not_fit_is_422_naming_the_row_and_column(
    tabular: Flask, request_: dict[str, Any], fragments: list[str]
) -> None:
    assert_error(tabular.test_client().post("/invocations", **request_), 422, *fragments)


def test_a_body_that_is_not_json_is_400(tabular: Flask) -> None:
    assert_error(tabular.test_client().post("/invocations", data="{", content_type="application/json"), 400)
    assert_error(tabular.test_client().post("/invocations", data=b"\xff\xfe", content_type="text/csv"), 400, "UTF-8")


def test_the_numeric_model_too(client: Any) -> None:
    # The iris model: positional rows and records by its feature names alike.
    names = client.get("/v2/models/iris-rf").get_json()["parameters"]["feature_names"]
    rows = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 5.1, 1.8]]
    by_rows = client.post("/invocations", json={"inputs": rows}).get_json()
    by_split = client.post("/invocations", json={"dataframe_split": {"columns": names, "data": rows}}).get_json()
    assert (
        by_rows
        == by_split
        == {"predictions": client.post("/predict", json={"features": rows}).get_json()["prediction"]}
    )


@pytest.mark.parametrize(
    ("csv", "fragment"),
    [
        ("island,island\nBiscoe,Dream\n", "CSV: the header names column 'island' twice"),
        (
            FRAME.to_csv(index=False).replace(",2007\n", ",1_0\n", 1),
            "row 0, column 'year': expected a number, got '1_0'",
        ),
        # a 4,400-digit integer: refused as out of range, not a 500 from int()'s digit limit
        (FRAME.to_csv(index=False).replace(",2007\n", ",9" + "0" * 4400 + "\n", 1), "row 0, column 'year'"),
    ],
)
def test_csv_cells_are_read_as_pandas_reads_them(tabular: Flask, csv: str, fragment: str) -> None:
    assert_error(tabular.test_client().post("/invocations", data=csv, content_type="text/csv"), 422, fragment)


def test_csv_missing_values_are_pandas_defaults(tabular: Flask, fitted: dict[str, Pipeline]) -> None:
    # pandas reads NA, n/a, NULL, nan ... as missing: so does the server (sex is imputed, a year is not missing).
    csv = FRAME.iloc[:4].to_csv(index=False)
    lines = csv.splitlines()
    marked = "\n".join(
        [lines[0], *(line.replace(",male,", ",NA,").replace(",female,", ",NULL,") for line in lines[1:])]
    )
    expected = fitted[penguins.LOGISTIC].predict(pd.read_csv(io.StringIO(marked))).tolist()
    assert invoke(tabular, data=marked, content_type="text/csv") == expected


def test_a_list_of_values_is_one_columns_values(tabular: Flask) -> None:
    response = tabular.test_client().post("/invocations", json={"instances": list(GOOD.values())})
    assert_error(response, 422, "'instances' holds a list of values, which is one column's; this model takes 7")
    split = {"dataframe_split": {"columns": ["island", "island"], "data": [["Biscoe", "Dream"]]}}
    assert_error(tabular.test_client().post("/invocations", json=split), 422, "names column 'island' twice")
