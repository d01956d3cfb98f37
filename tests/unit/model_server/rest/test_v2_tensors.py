"""Open Inference Protocol V2 tensors: the input as the metadata publishes it, and outputs chosen one by one.

* ``data`` may be flat or nested, but nested data is a regular array of the tensor's shape;
* the one input is named as ``GET /v2/models/<name>`` publishes it (``input-0``);
* each output is JSON or binary as the binary tensor data extension says: its own
  ``parameters.binary_data``, else the request's ``parameters.binary_data_output``, else JSON.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ..helpers import INFER, assert_error, v2_input

HEADER_LENGTH = "Inference-Header-Content-Length"
X = np.array([[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 5.1, 1.8], [6.7, 3.0, 5.2, 2.3]])


def infer(client: FlaskClient, body: dict[str, Any]) -> TestResponse:
    return client.post(INFER, data=json.dumps(body), content_type="application/json")


# --- nested data is a regular array of the tensor's shape -------------------------------------


@pytest.mark.parametrize(
    ("data", "shape", "fragments"),
    [
        ([[1, 2, 3], [4]], [1, 4], ["data has 2 items", "shape [1, 4] needs 1"]),
        ([[1, 2, 3], [4]], [4], ["data has 2 items", "shape [4] needs 4"]),
        ([[1, 2, 3, 4], [5, 6, 7]], [2, 4], ["data[1] has 3 items", "needs 4"]),
        ([[1, 2], [3, 4, 5, 6], [7, 8]], [2, 4], ["data has 3 items", "needs 2"]),
        ([1, 2, 3, [4]], [4], ["data[3] is an array", "shape [4] has 1 dimension"]),
        ([[1, 2, 3, 4], 5], [2, 4], ["data[1] must be an array", "got a number"]),
        ([[1, 2, 3, 4]], [4], ["data has 1 item,", "needs 4"]),
        ([[[1], [2], [3], [4]]], [1, 4], ["data[0][0] is an array", "shape [1, 4] has 2 dimensions"]),
        ([[1, 2, 3, 4], [5, 6, 7, 8]], [8], ["data has 2 items", "needs 8"]),
    ],
)
def test_ragged_or_misnested_data_is_422(
    client: FlaskClient, data: list, shape: list[int], fragments: list[str]
) -> None:
    message = assert_error(infer(client, {"inputs": [v2_input(data, shape)]}), 422, *fragments)

    assert "inputs[0] (input-0)" in message


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        (X.tolist(), [3, 4]),  # nested as the shape
        (X.ravel().tolist(), [3, 4]),  # flat, row-major: the protocol allows it
        (X[0].tolist(), [4]),
        ([X[0].tolist()], [1, 4]),
    ],
    ids=["nested", "flat", "one-row", "one-row-nested"],
)
def test_regular_data_is_accepted(client: FlaskClient, estimator, data: list, shape: list[int]) -> None:
    response = infer(client, {"inputs": [v2_input(data, shape)]})

    assert response.status_code == 200, response.get_data(as_text=True)
    rows = np.asarray(data, dtype=float).reshape(-1, 4)
    assert response.get_json()["outputs"][0]["data"] == estimator.predict(rows).tolist()


# --- the input's name --------------------------------------------------------------------------


def test_the_published_input_name_is_the_one_accepted(client: FlaskClient) -> None:
    [published] = client.get("/v2/models/iris-rf").get_json()["inputs"]

    assert infer(client, {"inputs": [v2_input([1, 2, 3, 4], [4], name=published["name"])]}).status_code == 200


@pytest.mark.parametrize("name", ["x", "input", "INPUT-0", "input-1", ""])
def test_an_unknown_input_name_is_422_naming_the_expected_one(client: FlaskClient, name: str) -> None:
    assert_error(infer(client, {"inputs": [v2_input([1, 2, 3, 4], [4], name=name)]}), 422, repr(name), "'input-0'")


def test_an_unknown_input_name_is_422_in_a_binary_request_too(client: FlaskClient) -> None:
    tensor = triton.InferInput("features", [1, 4], "FP64")
    tensor.set_data_from_numpy(X[:1])
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])

    response = client.post(INFER, data=body, headers={HEADER_LENGTH: str(json_size)})

    assert_error(response, 422, "'features'", "'input-0'")


# --- binary or JSON, output by output ---------------------------------------------------------


def split(response: TestResponse) -> tuple[dict[str, Any], bytes]:
    """A response -> (its JSON part, the bytes after it)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    raw = response.get_data()
    length = response.headers.get(HEADER_LENGTH)
    if length is None:
        assert response.mimetype == "application/json"
        return json.loads(raw), b""
    return json.loads(raw[: int(length)]), raw[int(length) :]


def encodings(header: dict[str, Any], tail: bytes) -> dict[str, str]:
    """{output name: "json" or "binary"}, checking that the binary parts fill the tail in output order."""
    found, offset = {}, 0
    for out in header["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            assert "data" in out, out
            found[out["name"]] = "json"
        else:
            assert "data" not in out, out
            offset += size
            found[out["name"]] = "binary"
    assert offset == len(tail), "the binary outputs, and nothing else, follow the header"
    return found


@pytest.mark.parametrize(
    ("outputs", "request_level", "expected"),
    [
        ([("predict", True), ("predict_proba", False)], None, {"predict": "binary", "predict_proba": "json"}),
        ([("predict", False), ("predict_proba", True)], None, {"predict": "json", "predict_proba": "binary"}),
        ([("predict", None), ("predict_proba", True)], None, {"predict": "json", "predict_proba": "binary"}),
        ([("predict", None), ("predict_proba", False)], True, {"predict": "binary", "predict_proba": "json"}),
        ([("predict", True), ("predict_proba", None)], False, {"predict": "binary", "predict_proba": "json"}),
        ([("predict", None), ("predict_proba", None)], True, {"predict": "binary", "predict_proba": "binary"}),
        ([("predict", False), ("predict_proba", False)], True, {"predict": "json", "predict_proba": "json"}),
        ([("predict", None), ("predict_proba", None)], None, {"predict": "json", "predict_proba": "json"}),
    ],
)
def test_binary_data_is_decided_per_output(
    client: FlaskClient, estimator, outputs: list, request_level: bool | None, expected: dict[str, str]
) -> None:
    body: dict[str, Any] = {
        "inputs": [v2_input(X.tolist(), [3, 4])],
        "outputs": [{"name": n} if b is None else {"name": n, "parameters": {"binary_data": b}} for n, b in outputs],
    }
    if request_level is not None:
        body["parameters"] = {"binary_data_output": request_level}

    header, tail = split(infer(client, body))

    assert encodings(header, tail) == expected
    values, offset = {}, 0
    for out in header["outputs"]:
        dtype = "<i8" if out["name"] == "predict" else "<f8"
        if "data" in out:
            values[out["name"]] = np.asarray(out["data"], dtype=dtype)
        else:
            size = out["parameters"]["binary_data_size"]
            values[out["name"]] = np.frombuffer(tail[offset : offset + size], dtype=dtype)
            offset += size
    np.testing.assert_array_equal(values["predict"], estimator.predict(X))
    np.testing.assert_allclose(values["predict_proba"].reshape(3, 3), estimator.predict_proba(X))


@pytest.mark.parametrize(("labels_binary", "probabilities_binary"), [(True, False), (False, True)])
def test_tritonclient_mixes_binary_and_json_outputs(
    client: FlaskClient, estimator, labels_binary: bool, probabilities_binary: bool
) -> None:
    tensor = triton.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X)
    requested = [
        triton.InferRequestedOutput("predict", binary_data=labels_binary),
        triton.InferRequestedOutput("predict_proba", binary_data=probabilities_binary),
    ]
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=requested)

    response = client.post(INFER, data=body, headers={HEADER_LENGTH: str(json_size)})

    header, tail = split(response)
    assert encodings(header, tail) == {
        "predict": "binary" if labels_binary else "json",
        "predict_proba": "binary" if probabilities_binary else "json",
    }
    result = triton.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=int(response.headers[HEADER_LENGTH])
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(X))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(X))


@pytest.mark.parametrize(
    ("body_parameters", "output_parameters", "fragment"),
    [
        (None, {"binary_data": "yes"}, "outputs[0].parameters.binary_data"),
        (None, {"binary_data": 1}, "outputs[0].parameters.binary_data"),
        ({"binary_data_output": "true"}, None, "parameters.binary_data_output"),
    ],
)
def test_binary_flags_must_be_booleans(
    client: FlaskClient, body_parameters: dict | None, output_parameters: dict | None, fragment: str
) -> None:
    body: dict[str, Any] = {
        "inputs": [v2_input([1, 2, 3, 4], [4])],
        "outputs": [{"name": "predict", "parameters": output_parameters}],
        "parameters": body_parameters,
    }

    assert_error(infer(client, body), 422, fragment, "boolean")


def test_the_openapi_document_states_these_rules(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    [published] = client.get("/v2/models/iris-rf").get_json()["inputs"]

    schemas = document["components"]["schemas"]
    assert published["name"] in schemas["RequestInput"]["properties"]["name"]["description"]
    assert "binary_data" in schemas["RequestOutput"]["properties"]["parameters"]["description"]
    operation = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert published["name"] in operation["description"]
    assert "binary_data_output" in operation["description"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    assert "503" in operation["responses"], "an interrupted micro-batch"
