"""Schemathesis: every operation of /openapi.json, sent to the app in process, and every answer checked against
the document (no server error, a documented status, content type, headers and body), issues 22 and 24.

Two apps serve one repository (the iris model and both penguins models): the numeric one, iris-rf by default and
no API key; the tabular one, penguins-lr by default and an API key (sent with every request). The path
parameters and the names in the bodies are mostly drawn from what the repository serves (schemathesis'
dictionaries), so that requests get past the 404 and the input check into the models; the rest is generated.

The schema is the document the app serves: ``openapi_document()``, which /openapi.json returns, built from the
pydantic models without an app, so that the operations are known when the module is collected
(test_the_schema_is_what_the_apps_serve loads it from each app with ``from_wsgi`` and compares). Loading it from
a fixture's app (``schemathesis.pytest.from_fixture``) is not possible with schemathesis 4.32.5 and pytest 9.2:
its loader sets ``Node._nodeid``, which pytest 9.2 no longer has (AttributeError).

Generation is derandomized, with a fixed seed and no example database (none is written): every run sends the
same requests. Hypothesis' deadline is off (schemathesis' default).

Binary bodies: the document declares requests as JSON only (the binary tensor data extension's request is
told apart by its Inference-Header-Content-Length header, whatever the content type), and the /infer 200 as
JSON or application/octet-stream. Schemathesis checks the octet-stream's content type but cannot read it; the
check ``binary_inference_response`` below reads it as the extension writes it. Fuzzing hardly ever asks for
a binary output, and cannot build a valid tabular request (seven columns of mixed types), so
``test_valid_requests`` sends such requests, binary ones included, through the same checks.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import schemathesis
from flask import Flask
from model_server.app import create_app
from model_server.config import Settings
from model_server.rest import openapi
from model_server.rest.v2 import HEADER_LENGTH
from model_server.rest.v2_schema import ALL_DATATYPES, NUMERIC_DATATYPES
from openapi_schema_validator import OAS31Validator
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from harness import penguins

from ..helpers import MODEL

API_KEY = "schemathesis-test-key-0123456789abcdef"
MODELS = [MODEL, penguins.LOGISTIC, penguins.FOREST]
PENGUIN_COLUMNS = list(penguins.records()[0])
CLASSES = [0, 1, 2, "setosa", "versicolor", "virginica", "Adelie", "Chinstrap", "Gentoo"]
MAX_EXAMPLES = 25  # per operation and app, in the fuzzing phase (the examples and coverage phases add theirs)

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 2224,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "dictionaries": {
            "models": {"values": MODELS},
            "versions": {"values": ["1"]},
            "inputs": {"values": ["input-0", *PENGUIN_COLUMNS]},
            "datatypes": {"values": list(ALL_DATATYPES)},
            "outputs": {"values": ["predict", "predict_proba"]},
            "classes": {"values": CLASSES},
        },
        # Mostly a name the repository serves; otherwise generated (a 404).
        "parameters": {
            "path.name": {"dictionary": "models", "probability": 0.9},
            "path.version": {"dictionary": "versions", "probability": 0.9},
            "body.inputs[*].name": {"dictionary": "inputs", "probability": 0.8},
            "body.inputs[*].datatype": {"dictionary": "datatypes", "probability": 0.8},
            "body.outputs[*].name": {"dictionary": "outputs", "probability": 0.8},
            "body.prediction[*]": {"dictionary": "classes", "probability": 0.8},
            "body.truth[*]": {"dictionary": "classes", "probability": 0.8},
        },
    }
)
DOCUMENT = openapi.openapi_document()
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)


def binary_inference_response(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """An application/octet-stream answer of /infer is the binary tensor data extension's: a JSON header, an
    InferenceResponse of Inference-Header-Content-Length bytes, then each binary output's bytes, in output order,
    as many as its ``binary_data_size`` and its shape and datatype say."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code != 200 or content_type.partition(";")[0].strip() != "application/octet-stream":
        return
    lengths = response.headers.get(HEADER_LENGTH.lower()) or []
    assert len(lengths) == 1, f"one {HEADER_LENGTH} header, got {lengths}"
    length = int(lengths[0])
    assert 0 < length <= len(response.content), f"{HEADER_LENGTH} {length} of a {len(response.content)}-byte body"
    header = json.loads(response.content[:length])
    assert errors_against({"$ref": "#/components/schemas/InferenceResponse"}, header) == []
    tail = memoryview(response.content)[length:]
    offset = 0
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            assert "data" in output, f"{output['name']}: neither data nor binary_data_size"
            continue
        assert "data" not in output, f"{output['name']}: binary, yet data in the header"
        values = decode(output["datatype"], tail[offset : offset + size])
        assert len(values) == math.prod(output["shape"]), (output, values)
        offset += size
    assert offset == len(tail), f"the binary outputs take {offset} bytes of the {len(tail)} after the header"


def decode(datatype: str, raw: memoryview) -> list[Any]:
    if datatype == "BYTES":  # each element: its length (4 bytes, little-endian), then its bytes
        values, at = [], 0
        while at < len(raw):
            size = int.from_bytes(raw[at : at + 4], "little")
            assert at + 4 + size <= len(raw), "a BYTES element past the end of its tensor"
            values.append(bytes(raw[at + 4 : at + 4 + size]).decode())
            at += 4 + size
        return values
    dtype = NUMERIC_DATATYPES[datatype]
    assert len(raw) % dtype.itemsize == 0, f"{len(raw)} bytes is not a whole number of {datatype} values"
    return np.frombuffer(raw, dtype=dtype).tolist()


def errors_against(schema: dict[str, Any], instance: object) -> list[str]:
    resolvable = {**schema, "components": DOCUMENT["components"]}
    return [error.message for error in OAS31Validator(resolvable).iter_errors(instance)]


# Every check of schemathesis 4 that applies to a stateless API, and the binary answer's. Not here:
# use_after_free, ensure_resource_availability and object_level_authorization, which follow resources that
# an operation creates (this API creates none); and positive_data_acceptance, but for the operations whose
# schema is all the server checks (``checks_for``).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
    binary_inference_response,
]
# A schema-valid body may still be refused, as documented (422): what a model takes (its number of features,
# its columns and their types, its classes and input names) is the model's signature, not the document's. And
# load/unload always answer 400 (explicit model control is off).
SIGNATURE_CHECKED = {"predict", "invocations", "feedback", "model_feedback", "model_infer"}
ALWAYS_REFUSED = {"repository_load", "repository_unload"}


def checks_for(case: schemathesis.Case) -> list[Any]:
    operation_id = case.operation.definition.raw["operationId"].removesuffix("_version")
    if operation_id in SIGNATURE_CHECKED | ALWAYS_REFUSED:
        return CHECKS
    return [*CHECKS, positive_data_acceptance]


class Served(NamedTuple):
    app: Flask
    headers: dict[str, str]


@pytest.fixture(scope="module")
def mixed_repository(repository: Path, penguin_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris model and both penguins models, each as version 1."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(repository, root, dirs_exist_ok=True)
    shutil.copytree(penguin_repository, root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="module")
def apps(mixed_repository: Path) -> dict[str, Served]:
    common: dict[str, Any] = {"model_repository": mixed_repository, "model_poll_seconds": 0, "log_level": "error"}
    return {
        "numeric": Served(create_app(Settings(**common, default_model=MODEL)), {}),
        "tabular": Served(
            create_app(Settings(**common, default_model=penguins.LOGISTIC, api_keys=[API_KEY])),
            {"Authorization": f"Bearer {API_KEY}"},
        ),
    }


@pytest.fixture(scope="module", params=["numeric", "tabular"])
def served(request: pytest.FixtureRequest, apps: dict[str, Served]) -> Served:
    return apps[request.param]


def test_the_schema_is_what_the_apps_serve(apps: dict[str, Served]) -> None:
    for app, headers in apps.values():
        loaded = schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG, headers=headers)
        assert loaded.raw_schema == schema.raw_schema
    assert len(list(schema.get_all_operations())) == 19


@schema.parametrize()
def test_api(case: schemathesis.Case, served: Served) -> None:
    # A copy: schemathesis adds its User-Agent to the headers it is given.
    case.call_and_validate(app=served.app, headers=dict(served.headers), checks=checks_for(case))


# --- valid requests that generation does not build ---------------------------------------------

RECORDS = penguins.records()[:4]  # the fourth has missing values
BINARY_OUTPUTS = [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}]
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
INFER, INFER_VERSION = "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"


@dataclass(frozen=True)
class Valid:
    app: str
    path: str
    body: dict[str, Any]
    path_parameters: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.app} {self.path.format(**self.path_parameters)}"

    @property
    def binary(self) -> bool:
        """Whether an output is asked for as binary data."""
        outputs = self.body.get("outputs") or []
        flags = [(self.body.get("parameters") or {}).get("binary_data_output")]
        return any(flags + [(o.get("parameters") or {}).get("binary_data") for o in outputs])


def iris_input(rows: list[list[float]], datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "input-0", "shape": [len(rows), 4], "datatype": datatype, "data": rows}


VALID = [
    Valid(
        "numeric", "/predict", {"features": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], "return_probabilities": True}
    ),
    Valid("numeric", "/invocations", {"dataframe_split": {"data": [[5.9, 3.0, 5.1, 1.8]]}}),
    Valid(
        "numeric", "/invocations", {"dataframe_split": {"index": [7], "columns": IRIS_COLUMNS, "data": [[6, 3, 5, 2]]}}
    ),
    Valid(
        "numeric",
        INFER,
        {"inputs": [iris_input([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], "FP32")], "outputs": BINARY_OUTPUTS},
        {"name": MODEL},
    ),
    Valid(
        "numeric",
        INFER_VERSION,
        {"inputs": [iris_input([[6.2, 2.9, 4.3, 1.3]])], "parameters": {"binary_data_output": True}},
        {"name": MODEL, "version": "1"},
    ),
    Valid("tabular", "/predict", {"features": RECORDS, "return_probabilities": True}),
    Valid("tabular", "/predict", {"features": [list(record.values()) for record in RECORDS]}),
    Valid("tabular", "/invocations", {"dataframe_records": RECORDS}),
    Valid(
        "tabular",
        "/invocations",
        {"dataframe_split": {"columns": PENGUIN_COLUMNS, "data": [list(RECORDS[0].values())]}},
    ),
    Valid("tabular", "/feedback", {"prediction": ["Adelie", "Gentoo"], "truth": ["Adelie", "Chinstrap"]}),
    Valid("tabular", INFER, penguins.pandas_codec_request(RECORDS), {"name": penguins.LOGISTIC}),
    Valid(
        "tabular",
        INFER_VERSION,
        penguins.pandas_codec_request(RECORDS, flat=True) | {"outputs": BINARY_OUTPUTS},
        {"name": penguins.FOREST, "version": "1"},
    ),
    Valid(
        "tabular",
        INFER,
        penguins.pandas_codec_request(RECORDS[:1]) | {"parameters": {"content_type": "pd", "binary_data_output": True}},
        {"name": penguins.FOREST},
    ),
]


@pytest.mark.parametrize("valid", VALID, ids=str)
def test_valid_requests(apps: dict[str, Served], valid: Valid) -> None:
    app, headers = apps[valid.app]
    case = schema[valid.path]["POST"].Case(
        body=valid.body, media_type="application/json", path_parameters=valid.path_parameters
    )

    response = case.call_and_validate(app=app, headers=dict(headers), checks=[*CHECKS, positive_data_acceptance])

    assert response.status_code == 200, response.content
    content_type = "application/octet-stream" if valid.binary else "application/json"
    assert response.headers["content-type"] == [content_type]


@pytest.mark.parametrize(("params", "status"), [([None, None], 422), ("x", 422), (1, 422), (None, 200), ({}, 200)])
def test_invocations_takes_params_as_an_object_or_null(apps: dict[str, Served], params: Any, status: int) -> None:
    body = {"dataframe_split": {"data": [[5.1, 3.5, 1.4, 0.2]]}, "params": params}

    response = apps["numeric"].app.test_client().post("/invocations", json=body)

    assert response.status_code == status, response.get_json()
    if status == 422:
        assert "'params' must be an object of inference parameters" in response.get_json()["error"]
