"""Tabular models through ``/predict``: every row format, every refusal naming the row and the column.

Two scikit-learn Pipelines fitted on the penguins DataFrame (imputer, one-hot, scaler; then a
forest that accepts unknown categories, or a logistic regression that refuses them), packaged
from the CSV with ``model_server.package``. Every answer is compared with what the fitted
pipeline itself predicts on the same rows, as pandas read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.app import create_app
from model_server.config import Settings
from model_server.repository.signature import Column, Signature
from model_server.rest.errors import ApiError
from model_server.rest.records import rows_from_records
from model_server.tools.package import package
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from harness import penguins

from ..helpers import assert_error, scrape, scraped

UNKNOWN = "model_server_unknown_categories_total"


def scrape_text(client: FlaskClient) -> dict:
    return scrape(client.get("/metrics").get_data(as_text=True))


def client_of(apps: dict[str, Flask], name: str) -> FlaskClient:
    return apps[name].test_client()


def predict(client: FlaskClient, features: Any, **extra: Any) -> dict[str, Any]:
    response = client.post("/predict", json={"features": features, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("name", [penguins.FOREST, penguins.LOGISTIC])
def test_every_row_in_every_format_answers_what_the_pipeline_predicts(
    apps: dict[str, Flask], fitted: dict[str, Pipeline], name: str
) -> None:
    frame = penguins.features()
    expected = fitted[name].predict(frame).tolist()
    records = penguins.records(frame)
    arrays = [list(record.values()) for record in records]  # the data's column order is the signature's
    assert list(frame.columns) == list(fitted[name].feature_names_in_)
    client = client_of(apps, name)

    assert predict(client, records)["prediction"] == expected
    assert predict(client, arrays)["prediction"] == expected
    one_by_one = [predict(client, record)["prediction"][0] for record in records[:40]]
    assert one_by_one == expected[:40]
    assert [predict(client, array)["prediction"][0] for array in arrays[:40]] == expected[:40]
    answer = predict(client, records, return_probabilities=True)
    np.testing.assert_allclose(answer["probabilities"], fitted[name].predict_proba(frame), rtol=0, atol=1e-12)
    assert answer["classes"] == ["Adelie", "Chinstrap", "Gentoo"]


def test_rows_with_missing_values_are_imputed_as_in_training(
    apps: dict[str, Flask], fitted: dict[str, Pipeline]
) -> None:
    # Row 3 of the data has every measurement and the sex missing; row 8 only the sex.
    frame = penguins.features().iloc[[3, 8]]
    assert frame.isna().sum(axis=1).tolist() == [5, 1]
    answer = predict(client_of(apps, penguins.FOREST), penguins.records(frame))
    assert answer["prediction"] == fitted[penguins.FOREST].predict(frame).tolist()


def test_an_unknown_category_is_accepted_where_the_encoder_ignores_it(
    apps: dict[str, Flask], fitted: dict[str, Pipeline]
) -> None:
    record = {**penguins.records()[0], "island": "Atlantis"}
    frame = pd.DataFrame([record]).astype(penguins.features().dtypes.to_dict())
    client = client_of(apps, penguins.FOREST)
    labels = {"model": penguins.FOREST, "version": "1"}
    before = {c: scraped(scrape_text(client), UNKNOWN, **labels, column=c) for c in ("island", "sex")}

    assert predict(client, [record, {**record, "island": "Biscoe"}, record])["prediction"] == (
        fitted[penguins.FOREST].predict(pd.concat([frame, frame.assign(island="Biscoe"), frame])).tolist()
    )
    after = {c: scraped(scrape_text(client), UNKNOWN, **labels, column=c) for c in ("island", "sex")}
    assert None not in before.values(), "each string column's series exists from the start, at 0"
    assert {c: after[c] - before[c] for c in after} == {"island": 2, "sex": 0}


GOOD = penguins.records()[0]  # Torgersen, 39.1, 18.7, 181.0, 3750.0, male, 2007


@pytest.mark.parametrize(
    ("features", "fragments"),
    [
        # a missing column, an unknown column
        ([GOOD, {k: v for k, v in GOOD.items() if k != "island"}], ["features: row 1, column 'island': missing"]),
        ({**GOOD, "beak": 1}, ["features: row 0, column 'beak': not a column of the model", "island, bill_length_mm"]),
        # wrong types
        ({**GOOD, "bill_length_mm": "39.1"}, ["row 0, column 'bill_length_mm': expected a number, got a string"]),
        ({**GOOD, "island": 3}, ["row 0, column 'island': expected a string, got a number"]),
        ({**GOOD, "year": True}, ["row 0, column 'year': expected an integer, got a boolean"]),
        ([GOOD, GOOD, {**GOOD, "year": 3.7}], ["row 2, column 'year': 3.7 is not an integer", "not truncated"]),
        ({**GOOD, "body_mass_g": 1e39}, ["row 0, column 'body_mass_g': 1e+39 is not a finite number"]),
        ({**GOOD, "year": 2**63}, ["row 0, column 'year'", "out of the 64-bit integer range"]),
        # an unknown category where the encoder fails on one
        (
            {**GOOD, "sex": "unknown"},
            ["row 0, column 'sex': 'unknown' is not a category the model knows (female, male)"],
        ),
        # positional rows
        (["Biscoe", 1.0], ["features: row 0 has 2 values; the model takes 7: island, bill_length_mm"]),
        (
            [["Biscoe", 1, 2, 3, 4, "male", 2008], ["Biscoe", 1, 2, 3, 4, 5, 2008]],
            ["row 1, column 'sex': expected a string"],
        ),
        ([GOOD, ["Biscoe"]], ["features: row 1 must be an object of column: value, got an array"]),
        ("Biscoe", ["'features' must be an array or an object, got a string"]),
    ],
)
def test_a_value_that_does_not_fit_its_column_is_422_naming_the_row_and_column(
    apps: dict[str, Flask], features: Any, fragments: list[str]
) -> None:
    response = client_of(apps, penguins.LOGISTIC).post("/predict", json={"features": features})
    assert_error(response, 422, *fragments)


def test_null_is_refused_where_the_model_cannot_take_a_missing_value(tmp_path: Path) -> None:
    # Fitted without imputing the numbers, on the complete rows: a missing measurement makes it fail.
    complete = penguins.data().dropna()
    model = penguins.pipeline(LogisticRegression(max_iter=2000), impute=False)
    model.fit(complete.drop(columns=penguins.TARGET), complete[penguins.TARGET])
    work = tmp_path / "work"
    work.mkdir()
    complete.to_csv(work / "penguins.csv", index=False)
    penguins.publish_penguins(tmp_path / "models", work, "strict", model)
    client = create_app(Settings(model_repository=tmp_path / "models")).test_client()

    first = penguins.records(complete.drop(columns=penguins.TARGET))[0]
    record = {**first, "bill_depth_mm": None}
    assert_error(
        client.post("/predict", json={"features": [first, record]}),
        422,
        "features: row 1, column 'bill_depth_mm': null is not allowed",
    )
    assert predict(client, {**record, "bill_depth_mm": 18.0, "sex": None})["prediction"]  # the sex is imputed


def test_too_many_rows_are_413(apps: dict[str, Flask]) -> None:
    app = apps[penguins.FOREST]
    limit = app.extensions["model_server"].settings.max_batch_rows
    response = app.test_client().post("/predict", json={"features": [GOOD] * (limit + 1)})
    assert_error(response, 413, f"{limit + 1} rows exceed the limit of {limit}")


def test_rows_that_fit_the_signature_but_not_the_model_are_422(tmp_path: Path) -> None:
    # An integer column one-hot encoded (its categories are not a string column's: not in the signature) and a
    # scaled number the tree's float32 cannot hold once scaled: the model refuses them, the client gets a 422.
    frame = pd.DataFrame({"pclass": [1, 2, 3] * 10, "ratio": [0.004, 0.005, 0.006] * 10, "y": [0, 1, 1] * 10})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="error"), ["pclass"]), (StandardScaler(), ["ratio"])),
        DecisionTreeClassifier(random_state=0),
    ).fit(frame[["pclass", "ratio"]], frame["y"])
    work = tmp_path / "work"
    work.mkdir()
    frame.to_csv(work / "train.csv", index=False)
    joblib.dump(model, work / "model.joblib")
    package(
        work / "model.joblib", work / "train.csv", name="m", version="1", repository=tmp_path / "r", target_column="y"
    )
    client = create_app(Settings(model_repository=tmp_path / "r")).test_client()

    expected = model.predict(frame.loc[[1], ["pclass", "ratio"]]).tolist()
    assert predict(client, {"pclass": 2, "ratio": 0.005})["prediction"] == expected
    for record, fragment in [
        ({"pclass": 4, "ratio": 0.005}, "Found unknown categories"),
        ({"pclass": 1, "ratio": 1e37}, "infinity or a value too large"),
    ]:
        response = client.post("/predict", json={"features": record})
        assert_error(response, 422, "model 'm' could not take these rows:", fragment)


def test_nan_is_a_missing_value_of_a_nullable_number_column(
    apps: dict[str, Flask], fitted: dict[str, Pipeline]
) -> None:
    # Python's json writes NaN for a float gap, and a pandas integer column with a gap is float: year too.
    record = {**penguins.records()[0], "year": float("nan"), "bill_length_mm": float("nan")}
    body = json.dumps({"features": [record]})  # NaN tokens, as Python clients send them
    response = client_of(apps, penguins.FOREST).post("/predict", data=body, content_type="application/json")
    assert response.status_code == 200, response.get_json()
    frame = pd.DataFrame([record]).astype({"island": "str", "sex": "str"})
    assert response.get_json()["prediction"] == fitted[penguins.FOREST].predict(frame).tolist()


def test_nan_is_a_missing_value_of_a_nullable_string_column(
    apps: dict[str, Flask], fitted: dict[str, Pipeline]
) -> None:
    # A pandas row with a missing sex, as json.dumps(df.to_dict(orient="records")) sends it: a NaN token.
    frame = penguins.features().iloc[[8, 0, 3]]
    assert frame["sex"].isna().tolist() == [True, False, True]
    body = json.dumps({"features": frame.to_dict(orient="records")})
    assert "NaN" in body
    for name in (penguins.FOREST, penguins.LOGISTIC):
        response = client_of(apps, name).post("/predict", data=body, content_type="application/json")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["prediction"] == fitted[name].predict(frame).tolist()


def test_nan_in_a_column_that_cannot_be_missing_is_422() -> None:
    signature = Signature(
        inputs=(
            Column(name="code", type="string", categories=("a", "b"), unknown="refuse"),
            Column(name="flag", type="boolean", nullable=True),
            Column(name="n", type="double"),
        ),
        frame=True,
    )
    rows = rows_from_records([{"code": "a", "flag": float("nan"), "n": 1.0}], signature, 10, "features")
    assert rows.tolist() == [["a", None, 1.0]]  # NaN in a nullable boolean column: missing too
    for record, fragment in [
        ({"code": float("nan"), "flag": True, "n": 1.0}, "column 'code': NaN (a missing value) is not allowed"),
        ({"code": "a", "flag": True, "n": float("nan")}, "column 'n': nan is not a finite number"),
    ]:
        with pytest.raises(ApiError) as refused:
            rows_from_records([record], signature, 10, "features")
        assert refused.value.status == 422 and fragment in str(refused.value), refused.value


def test_a_category_the_encoder_knows_is_served_though_the_packaged_sample_lacks_it(
    tmp_path: Path, fitted: dict[str, Pipeline]
) -> None:
    # Fitted on every penguin (its encoder refuses unknown islands), packaged from a CSV without Torgersen's.
    model = fitted[penguins.LOGISTIC]
    work = tmp_path / "work"
    work.mkdir()
    penguins.data().query("island != 'Torgersen'").to_csv(work / "penguins.csv", index=False)
    path = penguins.publish_penguins(tmp_path / "models", work, "penguins", model)
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["signature"]["inputs"][0]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert metadata["reference"]["features"]["island"]["categories"] == ["Biscoe", "Dream"]  # drift: the sample's
    client = create_app(Settings(model_repository=tmp_path / "models")).test_client()

    frame = penguins.features().query("island == 'Torgersen'")
    assert predict(client, penguins.records(frame))["prediction"] == model.predict(frame).tolist()
    response = client.post("/predict", json={"features": {**GOOD, "island": "Atlantis"}})
    assert_error(response, 422, "'Atlantis' is not a category the model knows (Biscoe, Dream, Torgersen)")
