"""Open Inference Protocol V2 (KServe / MLServer / Triton) request and response bodies: inference,
metadata, health, the model repository extension, and the error body (which every endpoint uses).

The pydantic models validate incoming requests, build the responses and give the OpenAPI document
(rest/openapi.py) its schemas. The bodies of this server's own API (``/predict``, feedback) are in
rest/bodies.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, RootModel, StrictBool
from pydantic_core import PydanticKnownError

from ..serving.live_models import State

# V2 tensor datatypes that carry numbers, with their little-endian numpy dtype.
NUMERIC_DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in {
        "UINT8": "u1", "UINT16": "u2", "UINT32": "u4", "UINT64": "u8",
        "INT8": "i1", "INT16": "i2", "INT32": "i4", "INT64": "i8",
        "FP16": "f2", "FP32": "f4", "FP64": "f8",
    }.items()
}  # fmt: skip
ALL_DATATYPES = (*NUMERIC_DATATYPES, "BOOL", "BYTES")
MAX_INPUTS = 4096  # one per column, in the pandas codec's request


_Value = float | str | bool | None  # numbers; strings (BYTES), booleans (BOOL) and null (missing) for a column
_Values = list[_Value] | list[list[_Value]]


def _a_list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise PydanticKnownError("list_type")  # pydantic's own "Input should be a valid list"
    return value


# A tensor's values: the schema declares numbers, flat or as rows, but pydantic only checks that
# they are an array (with the message it gave before). rest/validation.py checks the values
# (tensor_values, numbers_from_values, matrix_from_tensor), so that errors keep naming the position
# as clients see them today ("inputs[0] (input-0).data[5] must be a number, got a string"). It is as
# fast as pydantic for one row, not on batches: a strict pydantic check measured 1.5-1.7x faster on
# flat data and ~2.3x on nested rows from 32 rows on (a possible fast path: pydantic first, and
# validation.py only to word a refusal).
TensorData = Annotated[_Values, PlainValidator(_a_list, json_schema_input_type=_Values)]


class _Lenient(BaseModel):
    # V2 clients may add fields of their own; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Lenient):
    name: str = Field(
        max_length=256, description="The input's name as the model metadata publishes it: input-0, or a column's name"
    )
    shape: list[int] = Field(max_length=8)
    datatype: str
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size: the byte count of this tensor in the binary part of the body"
    )
    data: TensorData | None = Field(
        default=None,
        description="Row-major tensor values: flat, or nested as a regular array of exactly the tensor's shape; "
        "absent with binary data",
    )


class RequestOutput(_Lenient):
    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="binary_data: true sends this output as binary data after the JSON header, false as JSON "
        "'data'; absent, the request's parameters.binary_data_output decides",
    )


class InferenceRequest(_Lenient):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
            ]
        }
    )

    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="binary_data_output: whether outputs without their own binary_data are binary (default false)",
    )
    inputs: list[RequestInput] = Field(
        min_length=1,
        max_length=MAX_INPUTS,
        description='One tensor (input-0: the rows), or one per column (parameters.content_type "pd", as MLServer\'s '
        "pandas codec writes them)",
    )
    outputs: list[RequestOutput] | None = Field(default=None, max_length=16)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_name": "iris-rf",
                    "model_version": "1",
                    "id": "42",
                    "outputs": [
                        {"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]},
                        {"name": "predict_proba", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 0.0, 0.0]},
                    ],
                }
            ]
        }
    )

    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "iris-rf",
                    "versions": ["1"],
                    "platform": "sklearn",
                    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
                    "outputs": [
                        {"name": "predict", "datatype": "INT64", "shape": [-1]},
                        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
                    ],
                    "parameters": {"estimator": "RandomForestClassifier", "runtime": "treelite"},
                }
            ]
        }
    )

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)


class ServerMetadata(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "model-server", "version": "1.0.0", "extensions": ["binary_tensor_data", "model_repository"]}
            ]
        }
    )

    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"live": True}]})

    live: bool = Field(description="Always true: the process answers")


class ServerReady(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ready": True}]})

    ready: bool = Field(description="Whether a model version serves (DEFAULT_MODEL's, when set); false with a 503")


class ModelReady(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "iris-rf", "ready": True}]})

    name: str
    ready: bool = Field(description="Always true: a version that is not loaded is a 404")


class RepositoryIndexRequest(BaseModel):
    """An empty body means {}."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ready": True}]})

    ready: StrictBool = Field(default=False, description="List only the versions that serve")


class RepositoryIndexItem(BaseModel):
    name: str
    version: str
    state: State = Field(description="READY: serving; LOADING; UNAVAILABLE: the reason says why")
    reason: str = Field(description="Why the version does not serve; empty when it does")


class RepositoryIndex(RootModel[list[RepositoryIndexItem]]):
    """Every version this replica knows, with its state."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [[{"name": "iris-rf", "version": "1", "state": "READY", "reason": ""}]]}
    )


class ErrorBody(BaseModel):
    """Every error, of every endpoint."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "features[2] must be a number, got a string"},
                {"error": "model 'iris' not found; models served: 'iris-rf'"},
            ]
        }
    )

    error: str
