"""Open Inference Protocol V2: metadata, health, readiness, and infer in JSON and binary tensors.

The binary tensor data extension is exercised twice: with bodies built by hand from the
protocol's description, and with the stock client (``tritonclient.http``), whose offline
helpers build the request body and parse the response.
"""

from __future__ import annotations

import json
import shutil
import threading
from importlib.metadata import version
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from ..helpers import INFER, MODEL, assert_error, repository_of, v2_input

HEADER_LENGTH = "Inference-Header-Content-Length"
HANG = 10.0  # seconds: what never happens by then never will
PATHS = {"model": f"/v2/models/{MODEL}", "version": f"/v2/models/{MODEL}/versions/1"}


def infer(client: FlaskClient, body: dict[str, Any], path: str = INFER) -> TestResponse:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def output(body: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [o for o in body["outputs"] if o["name"] == name]
    return found


# --- server and model metadata, health -------------------------------------------------------


def test_server_metadata(client: FlaskClient) -> None:
    response = client.get("/v2")

    assert response.status_code == 200
    assert response.get_json() == {
        "name": "model-server",
        "version": version("model-server"),  # the installed distribution's
        "extensions": ["binary_tensor_data", "model_repository"],
    }


def test_live(client: FlaskClient) -> None:
    response = client.get("/v2/health/live")

    assert (response.status_code, response.get_json()) == (200, {"live": True})


def test_ready(client: FlaskClient) -> None:
    response = client.get("/v2/health/ready")

    assert (response.status_code, response.get_json()) == (200, {"ready": True})


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_model_metadata(client: FlaskClient, metadata: dict[str, Any], path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == MODEL
    assert body["versions"] == ["1"]
    assert body["platform"] == "sklearn"
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    parameters = body["parameters"]
    assert parameters["sha256"] == metadata["sha256"]
    assert parameters["estimator"] == "RandomForestClassifier"
    assert parameters["feature_names"] == metadata["feature_names"]
    assert parameters["class_names"] == metadata["class_names"]
    assert parameters["created"] == metadata["created"]
    assert parameters["sklearn_version"] == metadata["sklearn_version"]
    assert parameters["metrics"] == metadata["metrics"]


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_model_ready(client: FlaskClient, path: str) -> None:
    response = client.get(f"{path}/ready")

    assert (response.status_code, response.get_json()) == (200, {"name": MODEL, "ready": True})


@pytest.mark.parametrize(
    ("method", "path", "fragment"),
    [
        ("GET", "/v2/models/other", "model 'other' not found"),
        ("GET", "/v2/models/other/ready", "model 'other' not found"),
        ("POST", "/v2/models/other/infer", "model 'other' not found"),
        ("GET", "/v2/models/other/versions/1", "model 'other' not found"),
        ("GET", f"/v2/models/{MODEL}/versions/2", "no version '2'"),
        ("GET", f"/v2/models/{MODEL}/versions/2/ready", "no version '2'"),
        ("POST", f"/v2/models/{MODEL}/versions/2/infer", "no version '2'"),
        ("GET", "/v2/models/IRIS-RF", "not found"),
    ],
)
def test_unknown_model_or_version_is_404(client: FlaskClient, method: str, path: str, fragment: str) -> None:
    body = json.dumps({"inputs": [v2_input([1, 2, 3, 4], [1, 4])]})

    assert_error(client.open(path, method=method, data=body), 404, fragment)


def test_name_and_version_from_the_repository_folders(app_factory, model_dir, tmp_path, estimator) -> None:
    # metadata.json says iris-rf version 1; the folders <repository>/flowers/2025/ say otherwise, and win.
    client = app_factory(model_repository=repository_of(model_dir, tmp_path, "flowers", 2025)).test_client()

    assert client.get("/v2/models/flowers/versions/2025").get_json()["versions"] == ["2025"]
    assert client.get("/v2/models/flowers").get_json()["versions"] == ["2025"]
    assert client.get("/v2/models/flowers/ready").status_code == 200
    assert_error(client.get(f"/v2/models/{MODEL}"), 404, "models served: 'flowers'")
    response = infer(client, {"inputs": [v2_input([6, 3, 5, 2], [4])]}, "/v2/models/flowers/versions/2025/infer")
    assert response.get_json()["model_name"] == "flowers"
    assert response.get_json()["model_version"] == "2025"
    assert output(response.get_json(), "predict")["data"] == estimator.predict([[6, 3, 5, 2]]).tolist()
    assert client.post("/predict", json={"features": [6, 3, 5, 2]}).headers["X-Model-Version"] == "2025"


# --- readiness before warm-up -----------------------------------------------------------------


def test_not_ready_until_a_version_is_loaded_and_warmed_up(app_factory, model_dir, tmp_path) -> None:
    # Polled, an empty repository gives a live server that is not ready; the first version
    # becomes visible only once its warm-up is done.
    (tmp_path / MODEL).mkdir()
    app = app_factory(model_repository=tmp_path, model_poll_seconds=60)
    client = app.test_client()
    manager = app.extensions["model_server"].poller
    loading, release = threading.Event(), threading.Event()
    load = manager._load

    def slow_load(*args: Any) -> Any:
        servable = load(*args)  # loaded and warmed up ...
        loading.set()
        assert release.wait(HANG)  # ... and not yet published
        return servable

    manager._load = slow_load
    assert (client.get("/v2/health/ready").status_code, client.get("/v2/health/ready").get_json()) == (
        503,
        {"ready": False},
    )
    shutil.copytree(model_dir, tmp_path / MODEL / "1")  # a link would lead out of the repository
    syncing = threading.Thread(target=manager.sync)
    syncing.start()
    try:
        assert loading.wait(HANG)
        assert client.get("/v2/health/ready").status_code == 503
        for path in (f"{PATHS['model']}/ready", f"{PATHS['version']}/ready"):
            assert_error(client.get(path), 404, f"model '{MODEL}' not found")
        # Liveness does not depend on the model.
        assert client.get("/v2/health/live").status_code == 200
    finally:
        release.set()
        syncing.join(HANG)

    assert client.get("/v2/health/ready").status_code == 200
    assert client.get(f"{PATHS['model']}/ready").get_json() == {"name": MODEL, "ready": True}
    assert all(s.predictor.ready for s in app.extensions["model_server"].live_models.snapshot.servables())


# --- infer, JSON tensors ----------------------------------------------------------------------


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_infer_flat_data(client: FlaskClient, estimator, rows: np.ndarray, datatype: str) -> None:
    x = rows[:25]

    response = infer(client, {"inputs": [v2_input(x.ravel().tolist(), [25, 4], datatype)]})

    assert response.status_code == 200
    body = response.get_json()
    assert body["model_name"] == MODEL
    assert body["model_version"] == "1"
    assert [o["name"] for o in body["outputs"]] == ["predict"], "labels only, unless asked"
    labels = output(body, "predict")
    assert labels["datatype"] == "INT64"
    assert labels["shape"] == [25]
    assert labels["data"] == estimator.predict(x).tolist()


def test_infer_nested_data(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    x = rows[100:130]

    response = infer(client, {"inputs": [v2_input(x.tolist(), [30, 4])]})

    assert response.status_code == 200
    assert output(response.get_json(), "predict")["data"] == estimator.predict(x).tolist()


def test_infer_int64_input(client: FlaskClient, estimator) -> None:
    x = [[6, 3, 5, 2], [5, 3, 1, 0], [6, 2, 4, 1]]

    response = infer(client, {"inputs": [v2_input(x, [3, 4], "INT64")]})

    assert response.status_code == 200
    assert output(response.get_json(), "predict")["data"] == estimator.predict(x).tolist()


def test_infer_shape_of_one_row(client: FlaskClient, estimator) -> None:
    response = infer(client, {"inputs": [v2_input([6.7, 3.0, 5.2, 2.3], [4], "FP32")]})

    assert response.status_code == 200
    labels = output(response.get_json(), "predict")
    assert labels["shape"] == [1]
    assert labels["data"] == estimator.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_infer_requested_outputs(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    x = rows[::10]
    body = {
        "inputs": [v2_input(x.ravel().tolist(), list(x.shape))],
        "outputs": [{"name": "predict_proba"}, {"name": "predict"}],
    }

    response = infer(client, body)

    assert response.status_code == 200
    outputs = response.get_json()["outputs"]
    assert [o["name"] for o in outputs] == ["predict_proba", "predict"], "in the order asked for"
    probabilities = outputs[0]
    assert probabilities["datatype"] == "FP64"
    assert probabilities["shape"] == [len(x), 3]
    matrix = np.array(probabilities["data"]).reshape(probabilities["shape"])
    np.testing.assert_allclose(matrix, estimator.predict_proba(x))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert outputs[1]["data"] == estimator.predict(x).tolist()


def test_infer_only_probabilities(client: FlaskClient, estimator) -> None:
    body = {"inputs": [v2_input([5.1, 3.5, 1.4, 0.2], [1, 4])], "outputs": [{"name": "predict_proba"}]}

    outputs = infer(client, body).get_json()["outputs"]

    assert [o["name"] for o in outputs] == ["predict_proba"]
    np.testing.assert_allclose(outputs[0]["data"], estimator.predict_proba([[5.1, 3.5, 1.4, 0.2]]).ravel())


def test_infer_id_is_echoed_or_the_request_id(client: FlaskClient) -> None:
    tensor = v2_input([1, 2, 3, 4], [4])

    assert infer(client, {"id": "my-42", "inputs": [tensor]}).get_json()["id"] == "my-42"
    response = infer(client, {"inputs": [tensor]})
    assert response.get_json()["id"] == response.headers["X-Request-ID"]


def test_infer_ignores_unknown_fields(client: FlaskClient) -> None:
    body = {"inputs": [{**v2_input([1, 2, 3, 4], [4]), "extra": 1}], "parameters": {"x": "y"}, "more": []}

    assert infer(client, body).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "fragments"),
    [
        ({"inputs": [v2_input([1, 2, 3, 4], [4])], "outputs": [{"name": "logits"}]}, 422, ["unknown output 'logits'"]),
        ({"inputs": [v2_input(["a", "b", "c", "d"], [4], "BYTES")]}, 422, ["BYTES", "not numeric"]),
        ({"inputs": [v2_input([True, False, True, True], [4], "BOOL")]}, 422, ["BOOL", "not numeric"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [4], "FLOAT")]}, 422, ["FLOAT", "not numeric"]),
        ({"inputs": [v2_input([1, 2, 3, 4, 5, 6, 7], [2, 4])]}, 422, ["shape [2, 4] needs 8 values, got 7"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [2, 4])]}, 422, ["needs 8 values, got 4"]),
        ({"inputs": [v2_input([1, 2, 3, 4, 5, 6], [2, 3])]}, 422, ["expected 4 features per row, got 3"]),
        ({"inputs": [v2_input([1, 2, 3], [3])]}, 422, ["expected 4 features per row, got 3"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [1, 2, 2])]}, 422, ["shape must be [rows, 4] or [4]"]),
        ({"inputs": [v2_input([1], [])]}, 422, ["shape must be"]),
        ({"inputs": [v2_input([], [0, 4])]}, 422, ["no rows"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [-1, 4])]}, 422, ["negative dimension"]),
        ({"inputs": [v2_input([1, "2", 3, 4], [4])]}, 422, ["data[1] must be a number", "string"]),
        ({"inputs": [v2_input([1, 2, None, 4], [4])]}, 422, ["data[2] must be a number", "null"]),
        ({"inputs": [v2_input([1, 2, 3, True], [4], "FP32")]}, 422, ["data[3] must be a number", "boolean"]),
        ({"inputs": [v2_input(7, [1])]}, 422, ["inputs.0.data"]),
        ({"inputs": [{"name": "input-0", "shape": [4], "datatype": "FP32"}]}, 422, ["neither 'data' nor binary data"]),
        ({"inputs": []}, 422, ["inputs"]),
        ({}, 422, ["inputs", "field required"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [4])] * 2}, 422, ["exactly one input tensor", "got 2"]),
        ({"inputs": [{"name": "input-0", "datatype": "FP32", "data": [1, 2, 3, 4]}]}, 422, ["inputs.0.shape"]),
        ({"inputs": [{"name": "input-0", "shape": [4], "data": [1, 2, 3, 4]}]}, 422, ["inputs.0.datatype"]),
        ({"inputs": [v2_input([[[[[[[[[[[1, 2, 3, 4]]]]]]]]]]], [1] * 8)]}, 422, ["shape", "has 8 dimensions"]),
        ({"inputs": [v2_input([1, 2, 3, 4], [4])], "id": 5}, 422, ["id"]),
    ],
)
def test_infer_invalid_request(client: FlaskClient, body: dict, status: int, fragments: list[str]) -> None:
    assert_error(infer(client, body), status, *fragments)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_infer_non_finite_is_422(client: FlaskClient, literal: str) -> None:
    body = f'{{"inputs": [{{"name": "input-0", "shape": [4], "datatype": "FP64", "data": [1, 2, {literal}, 4]}}]}}'

    assert_error(client.post(INFER, data=body), 422, "row 0, feature 2", "finite")


def test_infer_values_past_float32_are_422(client: FlaskClient) -> None:
    assert_error(infer(client, {"inputs": [v2_input([1, 2, 1e39, 4], [4])]}), 422, "feature 2", "float32")


@pytest.mark.parametrize("body", [b"{", b"", b"inputs"])
def test_infer_malformed_json_is_400(client: FlaskClient, body: bytes) -> None:
    assert_error(client.post(INFER, data=body), 400)


def test_infer_body_not_an_object_is_422(client: FlaskClient) -> None:
    assert_error(client.post(INFER, data=b"[1, 2, 3, 4]"), 422, "JSON object")


def test_infer_too_many_rows_is_413(app_factory) -> None:
    client = app_factory(max_batch_rows=3).test_client()

    assert infer(client, {"inputs": [v2_input([[1, 2, 3, 4]] * 3, [3, 4])]}).status_code == 200
    assert_error(infer(client, {"inputs": [v2_input([[1, 2, 3, 4]] * 4, [4, 4])]}), 413, "MAX_BATCH_ROWS")


# --- infer, binary tensor data extension, bodies built by hand --------------------------------


def binary_request(header: dict[str, Any], *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    encoded = json.dumps(header).encode()
    return encoded + b"".join(tensors), {HEADER_LENGTH: str(len(encoded))}


def binary_input(x: np.ndarray, datatype: str, dtype: str) -> tuple[dict[str, Any], bytes]:
    raw = np.ascontiguousarray(x, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    tensor = {
        "name": "input-0",
        "shape": list(x.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return tensor, raw


def split_binary_response(response: TestResponse) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A binary response -> (JSON header, {output name: raw bytes})."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/octet-stream"
    raw = response.get_data()
    size = int(response.headers[HEADER_LENGTH])
    header = json.loads(raw[:size])
    tensors, offset = {}, size
    for out in header["outputs"]:
        assert "data" not in out
        length = out["parameters"]["binary_data_size"]
        tensors[out["name"]] = raw[offset : offset + length]
        offset += length
    assert offset == len(raw), "nothing after the last output"
    return header, tensors


@pytest.mark.parametrize(("datatype", "dtype"), [("FP32", "f4"), ("FP64", "f8"), ("INT64", "i8"), ("FP16", "f2")])
def test_binary_input_json_output(client: FlaskClient, estimator, rows: np.ndarray, datatype: str, dtype: str) -> None:
    x = rows[::9].astype(dtype)
    tensor, raw = binary_input(x, datatype, dtype)
    body, headers = binary_request({"inputs": [tensor], "outputs": [{"name": "predict"}]}, raw)

    response = client.post(INFER, data=body, headers=headers, content_type="application/octet-stream")

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert output(response.get_json(), "predict")["data"] == estimator.predict(x.astype(np.float64)).tolist()


def test_binary_input_binary_outputs(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    x = rows[3::8]
    tensor, raw = binary_input(x, "FP32", "f4")
    binary = {"binary_data": True}  # per output (test_v2_tensors.py mixes binary and JSON outputs)
    outputs = [{"name": "predict", "parameters": binary}, {"name": "predict_proba", "parameters": binary}]
    body, headers = binary_request({"id": "b-1", "inputs": [tensor], "outputs": outputs}, raw)

    header, tensors = split_binary_response(client.post(INFER, data=body, headers=headers))

    assert header["id"] == "b-1"
    expected = x.astype(np.float32).astype(np.float64)
    by_name = {o["name"]: o for o in header["outputs"]}
    assert by_name["predict"]["datatype"] == "INT64"
    assert by_name["predict"]["shape"] == [len(x)]
    np.testing.assert_array_equal(np.frombuffer(tensors["predict"], "<i8"), estimator.predict(expected))
    assert by_name["predict_proba"]["shape"] == [len(x), 3]
    probabilities = np.frombuffer(tensors["predict_proba"], "<f8").reshape(len(x), 3)
    np.testing.assert_allclose(probabilities, estimator.predict_proba(expected))


def test_binary_output_for_a_json_request(client: FlaskClient, estimator) -> None:
    body = {"inputs": [v2_input([5.9, 3.0, 5.1, 1.8], [1, 4])], "parameters": {"binary_data_output": True}}

    header, tensors = split_binary_response(infer(client, body))

    assert [o["name"] for o in header["outputs"]] == ["predict"]
    assert np.frombuffer(tensors["predict"], "<i8").tolist() == estimator.predict([[5.9, 3.0, 5.1, 1.8]]).tolist()


def test_binary_input_with_a_json_header_only(client: FlaskClient, estimator) -> None:
    # A JSON request may carry the header-length header with no binary part at all.
    body, headers = binary_request({"inputs": [v2_input([6, 3, 5, 2], [4])]})

    response = client.post(INFER, data=body, headers=headers)

    assert output(response.get_json(), "predict")["data"] == estimator.predict([[6, 3, 5, 2]]).tolist()


def test_binary_non_finite_is_422(client: FlaskClient) -> None:
    tensor, raw = binary_input(np.array([[1.0, np.nan, 3.0, 4.0]]), "FP64", "f8")
    body, headers = binary_request({"inputs": [tensor]}, raw)

    assert_error(client.post(INFER, data=body, headers=headers), 422, "row 0, feature 1", "finite")


def test_binary_values_past_float32_are_422(client: FlaskClient) -> None:
    tensor, raw = binary_input(np.array([[1.0, 2.0, 3.0, -1e300]]), "FP64", "f8")
    body, headers = binary_request({"inputs": [tensor]}, raw)

    assert_error(client.post(INFER, data=body, headers=headers), 422, "row 0, feature 3", "float32")


@pytest.mark.parametrize(
    ("header_length", "status", "fragment"),
    [
        ("abc", 400, HEADER_LENGTH),
        ("-5", 400, HEADER_LENGTH),
        ("\u00b2", 400, HEADER_LENGTH),  # str.isdigit() says yes, int() says no
        ("9" * 5000, 400, HEADER_LENGTH),  # past Python's int-parsing digit limit
        ("100000", 400, HEADER_LENGTH),
        ("0", 400, "not valid JSON"),
        ("5", 400, "not valid JSON"),
    ],
)
def test_binary_bad_header_length(client: FlaskClient, header_length: str, status: int, fragment: str) -> None:
    tensor, raw = binary_input(np.ones((1, 4)), "FP64", "f8")
    body, _ = binary_request({"inputs": [tensor]}, raw)

    response = client.post(INFER, data=body, headers={HEADER_LENGTH: header_length})

    assert_error(response, status, fragment)


def test_binary_header_not_an_object_is_422(client: FlaskClient) -> None:
    body, headers = binary_request([1, 2, 3, 4], b"\x00" * 8)  # type: ignore[arg-type]

    assert_error(client.post(INFER, data=body, headers=headers), 422, "inference header must be a JSON object")


@pytest.mark.parametrize("declared", [16, 40, "32", True, None])
def test_binary_size_must_match_the_binary_part(client: FlaskClient, declared: object) -> None:
    tensor, raw = binary_input(np.ones((1, 4)), "FP64", "f8")  # 32 bytes
    tensor["parameters"]["binary_data_size"] = declared
    body, headers = binary_request({"inputs": [tensor]}, raw)

    response = client.post(INFER, data=body, headers=headers)

    if declared is None:  # no binary_data_size and no data
        assert_error(response, 422, "neither 'data' nor binary data")
    else:
        assert_error(response, 400, "binary_data_size does not match")


def test_binary_size_without_a_binary_part_is_400(client: FlaskClient) -> None:
    tensor = {"name": "input-0", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}

    assert_error(infer(client, {"inputs": [tensor]}), 400, "binary_data_size")


def test_binary_partial_values_is_422(client: FlaskClient) -> None:
    raw = np.ones(4, "<f4").tobytes()[:-2]  # 14 bytes: three and a half FP32 values
    tensor = {"name": "input-0", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    body, headers = binary_request({"inputs": [tensor]}, raw)

    assert_error(client.post(INFER, data=body, headers=headers), 422, "not a whole number of FP32 values")


def test_binary_shape_mismatch_is_422(client: FlaskClient) -> None:
    tensor, raw = binary_input(np.ones((2, 4)), "FP64", "f8")
    tensor["shape"] = [3, 4]
    body, headers = binary_request({"inputs": [tensor]}, raw)

    assert_error(client.post(INFER, data=body, headers=headers), 422, "needs 12 values, got 8")


# --- the stock V2 client ----------------------------------------------------------------------


def triton_infer(client: FlaskClient, inputs: list, outputs: list | None = None, **kwargs: Any) -> triton.InferResult:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs, **kwargs)
    headers = {"Content-Type": "application/octet-stream"}
    if json_size is not None:
        headers[HEADER_LENGTH] = str(json_size)
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    length = response.headers.get(HEADER_LENGTH)
    return triton.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=int(length) if length is not None else None
    )


@pytest.mark.parametrize(("datatype", "dtype"), [("FP32", np.float32), ("FP64", np.float64), ("INT64", np.int64)])
def test_tritonclient_default_binary_request(
    client: FlaskClient, estimator, rows: np.ndarray, datatype: str, dtype: type
) -> None:
    x = rows[1::6].astype(dtype)
    tensor = triton.InferInput("input-0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)  # binary_data=True: the client's default
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]

    result = triton_infer(client, [tensor], outputs, request_id="triton-1")

    expected = x.astype(np.float64)
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(expected))
    probabilities = result.as_numpy("predict_proba")
    assert probabilities.shape == (len(x), 3)
    np.testing.assert_allclose(probabilities, estimator.predict_proba(expected))
    response = result.get_response()
    assert response["id"] == "triton-1"
    assert response["model_name"] == MODEL
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


def test_tritonclient_no_outputs_named(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    x = rows[:12].astype(np.float32)
    tensor = triton.InferInput("input-0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)

    result = triton_infer(client, [tensor])  # the client then asks for binary_data_output

    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(x.astype(np.float64)))
    assert "binary_data_size" in result.get_output("predict")["parameters"]


def test_tritonclient_json_mode(client: FlaskClient, estimator, rows: np.ndarray) -> None:
    x = rows[40:52]
    tensor = triton.InferInput("input-0", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x, binary_data=False)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=False),
        triton.InferRequestedOutput("predict_proba", binary_data=False),
    ]

    result = triton_infer(client, [tensor], outputs)

    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(x))
    assert "data" in result.get_output("predict")


def test_tritonclient_string_labels_come_back_as_bytes(app_factory, tmp_path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    from skops.io import dump

    iris = load_iris()
    labels = iris.target_names[iris.target]  # strings: a BYTES output tensor
    model = DecisionTreeClassifier(random_state=0).fit(iris.data, labels)
    dump(model, tmp_path / "model.skops")
    (tmp_path / "metadata.json").write_text("{}")  # complete, with nothing recorded
    client = app_factory(model_repository=repository_of(tmp_path, tmp_path / "repository", "names")).test_client()
    x = iris.data[::15].astype(np.float32)
    tensor = triton.InferInput("input-0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)

    body, json_size = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=[triton.InferRequestedOutput("predict")]
    )
    response = client.post("/v2/models/names/infer", data=body, headers={HEADER_LENGTH: str(json_size)})
    result = triton.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=int(response.headers[HEADER_LENGTH])
    )

    assert result.get_output("predict")["datatype"] == "BYTES"
    decoded = [v.decode() for v in result.as_numpy("predict")]
    assert decoded == model.predict(x.astype(np.float64)).tolist()
    assert len(set(decoded)) == 3
    assert client.get("/v2/models/names").get_json()["outputs"][0]["datatype"] == "BYTES"
    assert client.post("/predict", json={"features": x[:2].tolist()}).get_json()["prediction"] == decoded[:2]


@pytest.mark.parametrize(
    ("datatype", "value"), [("INT64", 1.5), ("UINT8", -5), ("UINT8", 256), ("INT8", 200), ("INT32", 1e10)]
)
def test_integer_tensor_values_must_fit_their_datatype(client: FlaskClient, datatype: str, value: float) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": datatype, "data": [1, 2, 3, value]}]}
    assert_error(client.post(INFER, json=body), 422, f"inputs[0] (input-0).data[3] = {value}", "value")
