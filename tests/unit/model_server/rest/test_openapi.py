"""/openapi.json is a valid OpenAPI 3.1 document describing exactly the routes the app serves, generated from
the pydantic models the endpoints parse and build their bodies with."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.rest import bodies, openapi, v2_schema
from model_server.rest.auth import OPEN_PATHS
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from pydantic import BaseModel

from ..helpers import INFER, MODEL, v2_input

IGNORED_METHODS = {"HEAD", "OPTIONS"}
# The bodies that are not JSON, hence not models: the Prometheus text and the binary tensor data extension's.
NOT_JSON = {("/metrics", "get", "text/plain")} | {
    (path, "post", "application/octet-stream")
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def conforms(document: dict[str, Any], schema_name: str, instance: object) -> list[str]:
    """Validation errors of ``instance`` against a component schema of the document."""
    return errors_against(document, {"$ref": f"#/components/schemas/{schema_name}"}, instance)


def errors_against(document: dict[str, Any], schema: dict[str, Any], instance: object) -> list[str]:
    """Validation errors of ``instance`` against a schema of the document (which may ``$ref`` its components)."""
    resolvable = {**schema, "components": document["components"]}
    return [error.message for error in OAS31Validator(resolvable).iter_errors(instance)]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def contents(operation: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, media type, media type object) of every body of an operation: request and responses."""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        yield "request", media_type, media
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            yield status, media_type, media


def body_models() -> set[type[BaseModel]]:
    """Every pydantic model of the body modules."""
    return {
        model
        for module in (bodies, v2_schema)
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, BaseModel)
        and model.__module__ == module.__name__
        and model.__name__.isidentifier()  # not RootModel[...], which pydantic registers in the module
        and not model.__name__.startswith("_")
    }


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
    documented = {(path, method) for path, method, _ in operations(document)}

    assert served == documented
    assert len(served) == 19


# --- generated from the models ----------------------------------------------------------------


def test_every_component_schema_is_its_models_schema(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    expected: dict[str, Any] = {}
    for model, mode in openapi.models():
        schema = model.model_json_schema(mode=mode, ref_template=openapi.REF_TEMPLATE)
        expected |= schema.pop("$defs", {})
        expected[model.__name__] = schema

    assert components == expected
    assert len(components) >= 20


def test_every_body_model_is_in_the_document(document: dict[str, Any]) -> None:
    documented = {model for model, _ in openapi.models()}
    nested = {v2_schema.RequestInput, v2_schema.RequestOutput, v2_schema.ResponseOutput, v2_schema.TensorMetadata}
    nested |= {v2_schema.RepositoryIndexItem}

    assert body_models() == documented | nested
    assert {m.__name__ for m in body_models()} <= set(document["components"]["schemas"])


def test_every_json_body_of_every_route_references_a_model(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    not_json, with_body = set(), set()
    for path, method, operation in operations(document):
        for where, media_type, media in contents(operation):
            if media_type != "application/json":
                not_json.add((path, method, media_type))
                continue
            assert set(media["schema"]) == {"$ref"}, (path, method, where)
            assert media["schema"]["$ref"].removeprefix("#/components/schemas/") in components, (path, method, where)
        if "requestBody" in operation:
            with_body.add(path)
            assert operation["requestBody"]["required"] == (path != "/v2/repository/index"), path

    assert not_json == NOT_JSON
    posts = {path for path, method, _ in operations(document) if method == "post"}
    assert with_body == {path for path in posts if "/repository/models/" not in path}, "load and unload take none"


def test_the_routes_reference_the_models_that_build_their_bodies(document: dict[str, Any]) -> None:
    def model(path: str, method: str, where: str) -> str:
        operation = document["paths"][path][method]
        body = operation["requestBody"] if where == "request" else operation["responses"][where]
        return body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    assert model("/predict", "post", "request") == "PredictRequest"
    assert model("/predict", "post", "200") == "PredictResponse"
    assert model("/v2/models/{name}/versions/{version}/feedback", "post", "request") == "FeedbackRequest"
    assert model("/feedback", "post", "200") == "FeedbackResponse"
    assert model(INFER.replace(MODEL, "{name}"), "post", "request") == "InferenceRequest"
    assert model("/v2/repository/index", "post", "200") == "RepositoryIndex"
    assert model("/v2/health/ready", "get", "503") == "ServerReady"
    assert model("/openapi.json", "get", "200") == "OpenApiDocument"
    for path, method, operation in operations(document):
        for status in operation["responses"]:
            if status != "200" and (path, status) != ("/v2/health/ready", "503"):
                assert model(path, method, status) == "ErrorBody", (path, method, status)


def test_the_descriptions_come_from_the_models(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in body_models():
        for name, field in model.model_fields.items():
            if field.description:
                assert schemas[model.__name__]["properties"][name]["description"] == field.description

    features = schemas["PredictRequest"]["properties"]["features"]
    assert {arm["type"] for arm in features["anyOf"]} == {"array", "object"}, "declared, though records.py checks it"
    assert "A class as /predict returns it" in schemas["FeedbackRequest"]["properties"]["truth"]["items"]["description"]


def test_protected_routes_say_so_and_document_the_401(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if path in OPEN_PATHS:
            assert "security" not in operation, path
            assert "401" not in operation["responses"], path
        else:
            assert operation["security"] == [{"apiKey": []}, {}], path
            assert "401" in operation["responses"], (path, method)


# --- examples ---------------------------------------------------------------------------------


def test_every_example_validates_against_its_own_schema(document: dict[str, Any]) -> None:
    examples = 0
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert conforms(document, name, example) == [], (name, example)
            examples += 1
    for path, method, operation in operations(document):
        for where, _, media in contents(operation):
            if "example" in media:
                assert errors_against(document, media["schema"], media["example"]) == [], (path, method, where)
                examples += 1

    assert examples >= 20
    assert conforms(document, "PredictRequest", {"features": "x"}) != [], "the check can fail"


def test_every_request_and_success_body_shows_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for where, media_type, media in contents(operation):
            if media_type == "application/json" and where in ("request", "200") and path != "/openapi.json":
                assert "example" in media, (path, method, where)


def test_the_documented_example_is_served(client: FlaskClient, document: dict[str, Any]) -> None:
    example = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]

    assert example == {"features": [5.1, 3.5, 1.4, 0.2]}
    assert client.post("/predict", json=example).status_code == 200


def test_every_request_example_is_served_and_answered_as_documented(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    served = 0
    for path, method, operation in operations(document):
        if "requestBody" not in operation:
            continue
        example = operation["requestBody"]["content"]["application/json"]["example"]
        response = client.open(path.format(name=MODEL, version="1"), method=method, json=example)

        assert response.status_code == 200, (path, response.get_data(as_text=True))
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert errors_against(document, schema, response.get_json()) == [], path
        served += 1

    assert served == 8


# --- the served bodies conform ----------------------------------------------------------------


def test_responses_conform_to_the_documented_schemas(client: FlaskClient, document: dict[str, Any]) -> None:
    request = {"id": "1", "inputs": [v2_input([1, 2, 3, 4], [1, 4])], "outputs": [{"name": "predict_proba"}]}
    assert conforms(document, "InferenceRequest", request) == []
    assert conforms(document, "InferenceRequest", {"inputs": "x"}) != [], "the check can fail"

    assert conforms(document, "InferenceResponse", client.post(INFER, json=request).get_json()) == []
    assert conforms(document, "ModelMetadata", client.get("/v2/models/iris-rf").get_json()) == []
    assert conforms(document, "ServerMetadata", client.get("/v2").get_json()) == []
    assert conforms(document, "ErrorBody", client.post(INFER, json={}).get_json()) == []


@pytest.mark.parametrize(
    "path",
    [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL}",
        f"/v2/models/{MODEL}/versions/1",
        f"/v2/models/{MODEL}/ready",
        f"/v2/models/{MODEL}/versions/1/ready",
        "/openapi.json",
    ],
)
def test_every_json_get_answers_as_documented(client: FlaskClient, document: dict[str, Any], path: str) -> None:
    template = re.sub(rf"/{MODEL}\b", "/{name}", path).replace("/versions/1", "/versions/{version}")
    schema = document["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]

    response = client.get(path)

    assert response.status_code == 200
    assert errors_against(document, schema, response.get_json()) == []


def test_predict_answers_as_documented(client: FlaskClient, document: dict[str, Any]) -> None:
    for body in ({"features": [[1, 2, 3, 4], [6, 3, 5, 2]]}, {"features": [1, 2, 3, 4], "return_probabilities": True}):
        answer = client.post("/predict", json=body).get_json()
        assert conforms(document, "PredictResponse", answer) == []
    assert set(answer) == set(bodies.PredictResponse.model_fields), "built as a dict: the model's fields"
    assert set(client.post("/predict", json={"features": [1, 2, 3, 4]}).get_json()) == {"prediction"}, "not null"


def test_not_ready_answers_as_documented(app_factory, document: dict[str, Any]) -> None:
    response = app_factory(default_model="other").test_client().get("/v2/health/ready")
    documented = document["paths"]["/v2/health/ready"]["get"]["responses"]["503"]

    assert response.status_code == 503
    assert errors_against(document, documented["content"]["application/json"]["schema"], response.get_json()) == []


DOCUMENTED_STATUSES = {
    "predict": "200 400 401 404 413 422 503",
    "invocations": "200 400 401 404 413 422 503",
    "feedback": "200 400 401 404 413 422",
    "model_feedback": "200 400 401 404 413 422",
    "server_metadata": "200 401",
    "server_live": "200",
    "server_ready": "200 503",
    "model_metadata": "200 401 404",
    "model_ready": "200 401 404",
    "model_infer": "200 400 401 404 413 422 503",
    "repository_index": "200 400 401 413 422",
    "repository_load": "400 401",
    "repository_unload": "400 401",
    "metrics": "200",
    "openapi": "200 401",
}


def test_every_operation_documents_its_statuses(document: dict[str, Any]) -> None:
    for _, _, operation in operations(document):
        expected = DOCUMENTED_STATUSES[operation["operationId"].removesuffix("_version")].split()
        assert list(operation["responses"]) == expected, operation["operationId"]
        for status, response in operation["responses"].items():
            assert response["description"], (operation["operationId"], status)


def test_documented_error_statuses_include_the_ones_served(client: FlaskClient, document: dict[str, Any]) -> None:
    predict = document["paths"]["/predict"]["post"]["responses"]
    for status, body in [(400, b"{"), (422, b"{}"), (413, b'{"features": [' + b"[1,2,3,4]," * 1100 + b"[1,2,3,4]]}")]:
        assert client.post("/predict", data=body).status_code == status
        assert str(status) in predict
        assert conforms(document, "ErrorBody", client.post("/predict", data=body).get_json()) == []
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]["responses"]
    assert client.post("/v2/models/x/infer", json={}).status_code == 404
    assert "404" in infer
    assert "503" in document["paths"]["/v2/health/ready"]["get"]["responses"]


def test_repository_responses_are_documented(client: FlaskClient, document: dict[str, Any]) -> None:
    index = document["paths"]["/v2/repository/index"]["post"]
    schema = index["responses"]["200"]["content"]["application/json"]["schema"]
    body = client.post("/v2/repository/index").get_json()
    assert body
    assert errors_against(document, schema, body) == []
    assert client.post("/v2/repository/index", json={"ready": "yes"}).status_code == 422
    assert "422" in index["responses"]
    for action in ("load", "unload"):
        assert client.post(f"/v2/repository/models/iris-rf/{action}").status_code == 400
        assert "400" in document["paths"][f"/v2/repository/models/{{name}}/{action}"]["post"]["responses"]


def test_path_parameters_are_declared(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]

    assert len(ids) == len(set(ids))


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
    example = operation["requestBody"]["content"]["application/json"]["example"]
    response_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    target = path.format(name="iris-rf", version="1")

    response = client.post(target, json=example)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert errors_against(document, response_schema, response.get_json()) == []
    assert response.get_json()["accepted"] == len(example["prediction"])
    too_many = b'{"prediction": [' + b"0," * 1024 + b'0], "truth": [0]}'
    for status, body in [(400, b"{"), (422, b'{"prediction": [true], "truth": [0]}'), (413, too_many)]:
        assert client.post(target, data=body).status_code == status
        assert str(status) in operation["responses"]
    if "{name}" in path:
        assert client.post(path.format(name="nope", version="1"), json=example).status_code == 404
        assert "404" in operation["responses"]
