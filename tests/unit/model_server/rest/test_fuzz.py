"""Property tests: whatever JSON (or bytes) a client sends, the server never answers 500, and every
error is a JSON ``{"error": ...}``.

The app is built once per module (hypothesis runs each test body hundreds of times) with its
log level at ERROR, so that the access log does not dominate the run. No example database is
written (``database=None``): the tests leave nothing in the working tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from model_server.config import Settings
from model_server.rest.v2_schema import ALL_DATATYPES
from werkzeug.test import TestResponse

from ..helpers import INFER

HEADER_LENGTH = "Inference-Header-Content-Length"
FUZZ = settings(max_examples=300, deadline=None, database=None)

# Any JSON value, including what Python's json emits beyond the standard (NaN, Infinity) and
# numbers past float64 (huge integers, which parse exactly, but do not convert).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 2**64])
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)
# Numbers a model takes, and finite ones it cannot (past float32, which trees compute in).
numbers = st.integers(-10, 10) | st.floats(-10, 10, allow_nan=False) | st.sampled_from([3.5e38, -1e39, 1e300])
# Rows that are close to valid: right or wrong width, numbers or anything.
rows = st.lists(st.lists(numbers | scalars, min_size=0, max_size=6), min_size=0, max_size=5)
shapes = st.lists(st.integers(-2, 8) | st.integers(), max_size=4) | json_values
datatypes = st.sampled_from(ALL_DATATYPES) | st.text(max_size=8) | json_values


@pytest.fixture(scope="module")
def fuzz_app(repository) -> Flask:
    from model_server.app import create_app

    return create_app(Settings(model_repository=repository, model_poll_seconds=0, max_batch_rows=64, log_level="error"))


@pytest.fixture(scope="module")
def post(fuzz_app: Flask) -> Callable[..., TestResponse]:
    client: FlaskClient = fuzz_app.test_client()

    def send(path: str, body: bytes, headers: dict[str, str] | None = None) -> TestResponse:
        response = client.post(path, data=body, headers=headers or {}, content_type="application/json")
        check(response)
        return response

    return send


def check(response: TestResponse) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/json"
        body = json.loads(response.get_data())
        assert isinstance(body, dict)
        assert isinstance(body.get("error"), str)
        assert body["error"]


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # allow_nan: NaN / Infinity tokens are sent as such


# --- /predict ---------------------------------------------------------------------------------


@FUZZ
@given(body=json_values)
def test_predict_any_body(post, body: Any) -> None:
    post("/predict", encode(body))


@FUZZ
@given(features=json_values, probabilities=json_values | st.booleans())
def test_predict_any_features(post, features: Any, probabilities: Any) -> None:
    response = post("/predict", encode({"features": features, "return_probabilities": probabilities}))

    if response.status_code == 200:
        assert isinstance(features, list)
        n_rows = len(features) if isinstance(features[0], list) else 1
        assert len(response.get_json()["prediction"]) == n_rows


@FUZZ
@given(features=rows | st.lists(numbers | scalars, max_size=6))
def test_predict_near_valid_rows(post, features: Any) -> None:
    response = post("/predict", encode({"features": features}))

    if response.status_code == 200:
        width = {len(r) for r in features} if features and isinstance(features[0], list) else {len(features)}
        assert width == {4}


# Well-formed requests of any floats: every one reaches the model, which must never fail on them.
any_float = st.floats() | st.integers(min_value=-(10**310), max_value=10**310)
well_shaped = st.integers(1, 8).flatmap(
    lambda n: st.lists(st.lists(any_float, min_size=4, max_size=4), min_size=n, max_size=n)
)


@FUZZ
@given(features=well_shaped)
def test_predict_well_shaped_rows_of_any_floats(post, features: list[list[float]]) -> None:
    response = post("/predict", encode({"features": features}))

    assert response.status_code in (200, 422)


@FUZZ
@given(features=well_shaped, datatype=st.sampled_from(["FP64", "FP32", "INT64"]))
def test_infer_well_shaped_tensor_of_any_floats(post, features: list[list[float]], datatype: str) -> None:
    tensor = {"name": "input-0", "shape": [len(features), 4], "datatype": datatype, "data": features}

    response = post(INFER, encode({"inputs": [tensor], "outputs": [{"name": "predict_proba"}]}))

    assert response.status_code in (200, 422)


@FUZZ
@given(body=st.binary(max_size=200))
def test_predict_any_bytes(post, body: bytes) -> None:
    post("/predict", body)


# --- V2 infer ---------------------------------------------------------------------------------


@FUZZ
@given(body=json_values)
def test_infer_any_body(post, body: Any) -> None:
    post(INFER, encode(body))


@FUZZ
@given(inputs=json_values, outputs=json_values | st.none())
def test_infer_any_inputs(post, inputs: Any, outputs: Any) -> None:
    post(INFER, encode({"inputs": inputs, "outputs": outputs}))


@FUZZ
@given(
    data=json_values | rows,
    shape=shapes,
    datatype=datatypes,
    parameters=st.none() | st.dictionaries(st.sampled_from(["binary_data_size", "x"]), json_values),
    outputs=st.none() | st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba", "x"])})),
)
def test_infer_any_tensor(post, data: Any, shape: Any, datatype: Any, parameters: Any, outputs: Any) -> None:
    tensor = {"name": "input-0", "shape": shape, "datatype": datatype, "data": data, "parameters": parameters}

    response = post(INFER, encode({"inputs": [tensor], "outputs": outputs}))

    if response.status_code == 200:
        assert datatype in ALL_DATATYPES
        assert response.get_json()["outputs"]


@FUZZ
@given(
    header=json_values
    | st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.just("input-0"),
                        "shape": shapes,
                        "datatype": datatypes,
                        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-4, 80) | json_values}),
                    }
                ),
                max_size=2,
            ),
            "outputs": st.just([{"name": "predict", "parameters": {"binary_data": True}}]),
        }
    ),
    tail=st.binary(max_size=80),
    # What an HTTP header can carry: printable Latin-1 (which has the digits-that-are-not "¹²³").
    header_length=st.none()
    | st.integers(-5, 300).map(str)
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=5),
)
def test_infer_any_binary_request(post, header: Any, tail: bytes, header_length: str | None) -> None:
    encoded = encode(header)
    length = str(len(encoded)) if header_length is None else header_length

    post(INFER, encoded + tail, {HEADER_LENGTH: length})


# --- feedback ---------------------------------------------------------------------------------

FEEDBACK_URLS = st.sampled_from(["/feedback", "/v2/models/iris-rf/feedback", "/v2/models/iris-rf/versions/1/feedback"])
# Items close to valid (the classes, their names, their neighbours) or anything at all.
classes = st.sampled_from([0, 1, 2, 2.0, -0.0, "setosa", "versicolor", "virginica", "Setosa", "2", 3, True, None])
items = st.lists(classes | scalars | json_values, max_size=70)  # past the fuzz app's MAX_BATCH_ROWS (64)


@FUZZ
@given(url=FEEDBACK_URLS, body=json_values)
def test_feedback_any_body(post, url: str, body: Any) -> None:
    post(url, encode(body))


@FUZZ
@given(url=FEEDBACK_URLS, prediction=items | json_values, truth=items | json_values)
def test_feedback_any_items(post, url: str, prediction: Any, truth: Any) -> None:
    response = post(url, encode({"prediction": prediction, "truth": truth}))

    if response.status_code == 200:
        assert len(prediction) == len(truth) == response.get_json()["accepted"]
        assert 1 <= len(prediction) <= 64


same_length = st.integers(0, 70).flatmap(
    lambda n: st.tuples(st.lists(classes, min_size=n, max_size=n), st.lists(classes, min_size=n, max_size=n))
)


def is_class(item: Any) -> bool:
    """An iris class as /predict returns it (2.0 and -0.0 are 2 and 0 in JSON numbers), or its name."""
    return type(item) is not bool and item in (0, 1, 2, "setosa", "versicolor", "virginica")


@FUZZ
@given(url=FEEDBACK_URLS, pairs=same_length)
def test_feedback_near_valid_pairs(post, url: str, pairs: tuple[list[Any], list[Any]]) -> None:
    prediction, truth = pairs

    response = post(url, encode({"prediction": prediction, "truth": truth}))

    if prediction and len(prediction) <= 64 and all(map(is_class, prediction + truth)):
        assert response.status_code == 200
        assert response.get_json()["accepted"] == len(prediction)
    else:
        assert response.status_code in (413, 422)


@FUZZ
@given(url=FEEDBACK_URLS, body=st.binary(max_size=200))
def test_feedback_any_bytes(post, url: str, body: bytes) -> None:
    post(url, body)


# --- tabular models: /predict records, /invocations, V2 columns ------------------------------

PENGUIN_COLUMNS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
cells = scalars | st.sampled_from(["Biscoe", "Dream", "male", "female", "", 2008, 2007.0, 45.2, None])
records = st.dictionaries(
    st.sampled_from(PENGUIN_COLUMNS) | st.text(max_size=8), cells, max_size=9
) | st.fixed_dictionaries({name: cells for name in PENGUIN_COLUMNS})


@pytest.fixture(scope="module")
def post_tabular(tabular: Flask) -> Callable[..., TestResponse]:
    client: FlaskClient = tabular.test_client()

    def send(path: str, body: bytes, content_type: str = "application/json") -> TestResponse:
        response = client.post(path, data=body, content_type=content_type)
        check(response)
        return response

    return send


@FUZZ
@given(
    features=json_values | records | st.lists(records, max_size=4) | st.lists(st.lists(cells, max_size=8), max_size=4)
)
def test_tabular_predict_any_rows(post_tabular, features: Any) -> None:
    post_tabular("/predict", encode({"features": features}))


@FUZZ
@given(
    key=st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params", "other"]),
    value=json_values | records | st.lists(records, max_size=4) | st.dictionaries(
        st.sampled_from([*PENGUIN_COLUMNS, "columns", "data"]), st.lists(cells, max_size=4) | json_values, max_size=8
    ),
)  # fmt: skip
def test_invocations_any_payload(post_tabular, key: str, value: Any) -> None:
    post_tabular("/invocations", encode({key: value}))


csv_cells = st.text(max_size=8) | st.sampled_from(["Biscoe", "2008", "4.5", "", "nan", "inf", "true"])
csv_texts = st.text(max_size=300) | st.lists(st.lists(csv_cells, max_size=8), max_size=4).map(
    lambda rows: "\n".join(",".join(row) for row in [PENGUIN_COLUMNS, *rows])
)


@FUZZ
@given(text=csv_texts)
def test_invocations_any_csv(post_tabular, text: str) -> None:
    post_tabular("/invocations", text.encode(), "text/csv")


@FUZZ
@given(
    tensors=st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(PENGUIN_COLUMNS) | st.text(max_size=6), "shape": shapes, "datatype": datatypes},
            optional={"data": json_values | st.lists(cells, max_size=5), "parameters": json_values},
        ),
        max_size=8,
    ),
    parameters=st.just({"content_type": "pd"}) | json_values,
)
def test_infer_any_columns(post_tabular, tensors: Any, parameters: Any) -> None:
    post_tabular("/v2/models/penguins-lr/infer", encode({"parameters": parameters, "inputs": tensors}))
