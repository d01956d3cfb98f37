"""POST /predict: the tutorial's API (one row or several), probabilities, and every bad-input class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flask.testing import FlaskClient

from ..helpers import assert_error


def test_tutorial_request(client: FlaskClient, estimator) -> None:
    response = client.post("/predict", json={"features": [1, 2, 3, 4]})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"prediction": estimator.predict([[1.0, 2.0, 3.0, 4.0]]).tolist()}


def test_one_row_per_sample_matches_the_estimator(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    for row in rows[::7]:
        response = client.post("/predict", json={"features": row.tolist()})
        assert response.status_code == 200
        assert response.get_json()["prediction"] == estimator.predict(row.reshape(1, -1)).tolist()


def test_several_rows(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    response = client.post("/predict", json={"features": rows.tolist()})

    assert response.status_code == 200
    prediction = response.get_json()["prediction"]
    assert prediction == estimator.predict(rows).tolist()
    assert len(set(prediction)) == 3, "the sample rows cover every class"


def test_integers_and_floats_mix(client: FlaskClient, estimator) -> None:
    response = client.post("/predict", json={"features": [[6, 3.0, 5, 2], [5.1, 3, 1.4, 0]]})

    assert response.get_json()["prediction"] == estimator.predict([[6, 3, 5, 2], [5.1, 3, 1.4, 0]]).tolist()


def test_probabilities(client: FlaskClient, estimator, metadata, rows: np.ndarray) -> None:
    response = client.post("/predict", json={"features": rows[:40].tolist(), "return_probabilities": True})

    assert response.status_code == 200
    body = response.get_json()
    assert body["classes"] == metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    probabilities = np.array(body["probabilities"])
    assert probabilities.shape == (40, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities, estimator.predict_proba(rows[:40]))
    assert body["prediction"] == estimator.predict(rows[:40]).tolist()
    # The label is the most probable class, in the order of "classes".
    assert body["prediction"] == probabilities.argmax(axis=1).tolist()


def test_probabilities_false_leaves_them_out(client: FlaskClient) -> None:
    body = client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2], "return_probabilities": False}).get_json()

    assert set(body) == {"prediction"}


def test_any_content_type_is_read_as_json(client: FlaskClient, estimator) -> None:
    response = client.post("/predict", data=b'{"features": [6.7, 3.0, 5.2, 2.3]}', content_type="text/plain")

    assert response.status_code == 200
    assert response.get_json()["prediction"] == estimator.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_unknown_fields_are_ignored(client: FlaskClient) -> None:
    assert client.post("/predict", json={"features": [1, 2, 3, 4], "extra": {"a": 1}}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"features": [1, 2, 3, 4]',
        b"{'features': [1, 2, 3, 4]}",
        b'{"features": [1, 2, 3, 4]} trailing',
        b"\xff\xfe\xfa",
        b"",
        b"   \n",
    ],
    ids=["truncated", "unclosed", "single-quotes", "trailing-garbage", "not-utf8", "empty", "blank"],
)
def test_malformed_json_is_400(client: FlaskClient, body: bytes) -> None:
    assert_error(client.post("/predict", data=body, content_type="application/json"), 400)


def test_integer_literal_too_long_to_parse_is_400_not_500(client: FlaskClient) -> None:
    # Python's json refuses integers of more than 4300 digits with a plain ValueError.
    body = b'{"features": [' + b"1" * 5000 + b", 1, 1, 1]}"

    assert_error(client.post("/predict", data=body), 400, "not valid JSON")


def test_nesting_too_deep_for_the_parser_is_400(client: FlaskClient) -> None:
    assert_error(client.post("/predict", data=b"[" * 100_000), 400, "nested too deeply")


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ([1, 2, 3, 4], ["must be a JSON object", "array"]),
        ("features", ["must be a JSON object", "string"]),
        (None, ["must be a JSON object", "null"]),
        ({}, ["missing 'features'", "4 values", "in the order sepal length (cm)", "or a record"]),
        ({"feature": [1, 2, 3, 4]}, ["missing 'features'"]),
        ({"features": []}, ["'features' is empty"]),
        ({"features": [[]]}, ["features[0]", "expected 4 features, got 0"]),
        ({"features": 5}, ["'features' must be an array", "number"]),
        ({"features": {"a": 1}}, ["features: row 0, column 'a': not a column of the model", "petal width (cm)"]),
        ({"features": [{"sepal length (cm)": 1}]}, ["features: row 0, column 'sepal width (cm)': missing"]),
        ({"features": "1,2,3,4"}, ["'features' must be an array", "string"]),
        ({"features": [1, 2, 3]}, ["expected 4 features, got 3"]),
        ({"features": [1, 2, 3, 4, 5]}, ["expected 4 features, got 5"]),
        ({"features": [[1, 2, 3, 4], [1, 2, 3]]}, ["features[1]", "expected 4 features, got 3"]),
        ({"features": [[1, 2, 3, 4], 5]}, ["features[1]", "must be an array"]),
        ({"features": [1, [2], 3, 4]}, ["features[1]", "must be a number", "array"]),
        ({"features": [[[1, 2, 3, 4]]]}, ["features[0]", "expected 4 features, got 1"]),
        ({"features": [1, "2", 3, 4]}, ["features[1]", "must be a number", "string"]),
        ({"features": [1, 2, None, 4]}, ["features[2]", "must be a number", "null"]),
        ({"features": [True, 2, 3, 4]}, ["features[0]", "must be a number", "boolean"]),
        ({"features": [[1, 2, 3, 4], [1, 2, 3, {}]]}, ["features[1][3]", "must be a number", "object"]),
        ({"features": [1, 2, 3, 4], "return_probabilities": "yes"}, ["return_probabilities", "true or false"]),
        ({"features": [1, 2, 3, 4], "return_probabilities": 1}, ["return_probabilities", "true or false"]),
    ],
)
def test_invalid_request_is_422_naming_the_problem(client: FlaskClient, body: object, fragments: list[str]) -> None:
    response = client.post("/predict", data=json.dumps(body), content_type="application/json")

    assert_error(response, 422, *fragments)


@pytest.mark.parametrize(
    ("literal", "where"),
    [
        ("NaN", "row 0, feature 1"),
        ("Infinity", "row 0, feature 1"),
        ("-Infinity", "row 0, feature 1"),
        ("1e999", "row 0, feature 1"),  # parses as inf
    ],
)
def test_non_finite_values_are_422(client: FlaskClient, literal: str, where: str) -> None:
    body = f'{{"features": [1, {literal}, 3, 4]}}'.encode()

    assert_error(client.post("/predict", data=body), 422, where, "finite")


@pytest.mark.parametrize(
    "value",
    [3.5e38, -1e39, 1e300, 1.7976931348623157e308, 10**300],
    ids=["3.5e38", "-1e39", "1e300", "float64-max", "int-10**300"],
)
def test_values_past_float32_are_422(client: FlaskClient, value: float) -> None:
    # Finite, but the forest computes in float32, where they overflow.
    response = client.post("/predict", json={"features": [[1, 2, 3, 4], [1, 2, 3, value]]})

    assert_error(response, 422, "row 1, feature 3", "float32")


def test_largest_float32_is_served(client: FlaskClient, estimator) -> None:
    response = client.post("/predict", json={"features": [3.4e38, -3.4e38, 0, 1]})

    assert response.status_code == 200
    assert response.get_json()["prediction"] == estimator.predict([[3.4e38, -3.4e38, 0, 1]]).tolist()


def test_non_finite_value_position_in_a_batch(client: FlaskClient) -> None:
    body = b'{"features": [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, NaN]]}'

    assert_error(client.post("/predict", data=body), 422, "row 2, feature 3")


def test_integer_beyond_float_range_is_422(client: FlaskClient) -> None:
    body = json.dumps({"features": [10**400, 1, 1, 1]})

    assert_error(client.post("/predict", data=body), 422, "too large")


def test_probabilities_of_a_model_without_them_is_422(app_factory, tmp_path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LinearRegression
    from skops.io import dump

    x, y = load_iris(return_X_y=True)
    dump(LinearRegression().fit(x, y), tmp_path / "model.skops")
    (tmp_path / "metadata.json").write_text("{}")  # complete, with nothing recorded
    client = app_factory(model_dir=tmp_path).test_client()

    assert_error(
        client.post("/predict", json={"features": [1, 2, 3, 4], "return_probabilities": True}),
        422,
        "does not predict probabilities",
    )
    # Without probabilities a regressor answers its float prediction.
    response = client.post("/predict", json={"features": [1, 2, 3, 4]})
    assert response.status_code == 200
    [value] = response.get_json()["prediction"]
    assert value == pytest.approx(float(LinearRegression().fit(x, y).predict([[1, 2, 3, 4]])[0]))


class TestBatchLimit:
    def test_at_the_limit_is_served(self, app_factory) -> None:
        client = app_factory(max_batch_rows=5).test_client()

        response = client.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]] * 5})

        assert response.status_code == 200
        assert len(response.get_json()["prediction"]) == 5

    def test_over_the_limit_is_413(self, app_factory) -> None:
        client = app_factory(max_batch_rows=5).test_client()

        response = client.post("/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]] * 6})

        assert_error(response, 413, "6 rows", "limit of 5", "MAX_BATCH_ROWS")

    def test_row_count_is_checked_before_the_rows(self, app_factory) -> None:
        # 6 malformed rows: the size limit answers first, without walking the rows.
        client = app_factory(max_batch_rows=5).test_client()

        assert_error(client.post("/predict", json={"features": [["x"]] * 6}), 413)


class TestBodyLimit:
    def test_body_over_max_body_bytes_is_413(self, app_factory) -> None:
        client = app_factory(max_body_bytes=1024).test_client()
        body = json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]] * 60})
        assert len(body) > 1024

        assert_error(client.post("/predict", data=body), 413, "too large")

    def test_body_within_max_body_bytes_is_served(self, app_factory) -> None:
        client = app_factory(max_body_bytes=1024).test_client()
        body = json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]] * 40})
        assert len(body) <= 1024

        assert client.post("/predict", data=body).status_code == 200
