"""/openapi.json is a valid OpenAPI 3.1 document describing exactly the routes the app serves."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from .helpers import INFER, v2_input

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def conforms(document: dict[str, Any], schema_name: str, instance: object) -> list[str]:
    """Validation errors of ``instance`` against a component schema of the document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return [error.message for error in OAS31Validator(schema).iter_errors(instance)]


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == version("model-server")


def test_every_route_is_documented_and_nothing_else(app: Flask, document: dict[str, Any]) -> None:
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}

    assert served == documented
    assert len(served) == 18


def test_path_parameters_are_declared(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]

    assert len(ids) == len(set(ids))


def test_the_documented_example_is_served(client: FlaskClient, document: dict[str, Any]) -> None:
    request_schema = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert client.post("/predict", json=request_schema["example"]).status_code == 200


def test_responses_conform_to_the_documented_schemas(client: FlaskClient, document: dict[str, Any]) -> None:
    request = {"id": "1", "inputs": [v2_input([1, 2, 3, 4], [1, 4])], "outputs": [{"name": "predict_proba"}]}
    assert conforms(document, "InferenceRequest", request) == []
    assert conforms(document, "InferenceRequest", {"inputs": "x"}) != [], "the check can fail"

    assert conforms(document, "InferenceResponse", client.post(INFER, json=request).get_json()) == []
    assert conforms(document, "ModelMetadata", client.get("/v2/models/iris-rf").get_json()) == []
    assert conforms(document, "ServerMetadata", client.get("/v2").get_json()) == []
    assert conforms(document, "ErrorBody", client.post(INFER, json={}).get_json()) == []


def test_documented_error_statuses_include_the_ones_served(client: FlaskClient, document: dict[str, Any]) -> None:
    predict = document["paths"]["/predict"]["post"]["responses"]
    for status, body in [(400, b"{"), (422, b"{}"), (413, b'{"features": [' + b"[1,2,3,4]," * 1100 + b"[1,2,3,4]]}")]:
        assert client.post("/predict", data=body).status_code == status
        assert str(status) in predict
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]["responses"]
    assert client.post("/v2/models/x/infer", json={}).status_code == 404
    assert "404" in infer
    assert "503" in document["paths"]["/v2/health/ready"]["get"]["responses"]


def test_repository_responses_are_documented(client: FlaskClient, document: dict[str, Any]) -> None:
    index = document["paths"]["/v2/repository/index"]["post"]
    schema = index["responses"]["200"]["content"]["application/json"]["schema"]
    body = client.post("/v2/repository/index").get_json()
    assert body
    assert [error.message for error in OAS31Validator(schema).iter_errors(body)] == []
    assert client.post("/v2/repository/index", json={"ready": "yes"}).status_code == 422
    assert "422" in index["responses"]
    for action in ("load", "unload"):
        assert client.post(f"/v2/repository/models/iris-rf/{action}").status_code == 400
        assert "400" in document["paths"][f"/v2/repository/models/{{name}}/{action}"]["post"]["responses"]


def test_the_model_version_header_is_documented(client: FlaskClient, document: dict[str, Any]) -> None:
    headers = document["paths"]["/predict"]["post"]["responses"]["200"]["headers"]
    assert set(headers) == {"X-Model-Version"}
    assert client.post("/predict", json={"features": [1, 2, 3, 4]}).headers["X-Model-Version"] == "1"


FEEDBACK_PATHS = ["/feedback", "/v2/models/{name}/feedback", "/v2/models/{name}/versions/{version}/feedback"]


@pytest.mark.parametrize("path", FEEDBACK_PATHS)
def test_the_feedback_example_is_served_and_answered_as_documented(
    client: FlaskClient, document: dict[str, Any], path: str
) -> None:
    operation = document["paths"][path]["post"]
    example = operation["requestBody"]["content"]["application/json"]["schema"]["example"]
    response_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    target = path.format(name="iris-rf", version="1")

    response = client.post(target, json=example)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert [error.message for error in OAS31Validator(response_schema).iter_errors(response.get_json())] == []
    assert response.get_json()["accepted"] == len(example["prediction"])
    too_many = b'{"prediction": [' + b"0," * 1024 + b'0], "truth": [0]}'
    for status, body in [(400, b"{"), (422, b'{"prediction": [true], "truth": [0]}'), (413, too_many)]:
        assert client.post(target, data=body).status_code == status
        assert str(status) in operation["responses"]
    if "{name}" in path:
        assert client.post(path.format(name="nope", version="1"), json=example).status_code == 404
        assert "404" in operation["responses"]
