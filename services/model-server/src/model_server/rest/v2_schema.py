"""Open Inference Protocol V2 (KServe / MLServer / Triton) request and response bodies.

The pydantic models validate incoming requests and give the OpenAPI document its schemas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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


class _Lenient(BaseModel):
    # V2 clients may add fields of their own; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Lenient):
    name: str = Field(max_length=256, description="The input's name as the model metadata publishes it: input-0")
    shape: list[int] = Field(max_length=8)
    datatype: str
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size: the byte count of this tensor in the binary part of the body"
    )
    data: list[Any] | None = Field(
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
    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="binary_data_output: whether outputs without their own binary_data are binary (default false)",
    )
    inputs: list[RequestInput] = Field(min_length=1, max_length=64)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=16)


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
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
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ErrorBody(BaseModel):
    error: str
