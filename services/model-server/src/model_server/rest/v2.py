"""Open Inference Protocol V2 endpoints, as MLServer, KServe and Triton serve them.

Supports the JSON tensor format and the binary tensor data extension (what ``tritonclient``
sends by default): a JSON header of ``Inference-Header-Content-Length`` bytes followed by raw
little-endian tensors. A numeric model takes one input tensor, named ``input-0`` as its metadata
publishes, of shape ``[rows, n_features]``; any model also takes one input per column, named as
the column, as MLServer's pandas codec writes a DataFrame (request ``parameters.content_type:
"pd"``; shape ``[N]`` or ``[N, 1]``; ``BYTES`` for strings, ``BOOL``, or a numeric datatype;
JSON ``null`` for a missing value), which is how a model of named columns of mixed types is sent
(its metadata lists the columns). Each value is checked against the version's signature
(rest/records.py). Outputs: ``predict`` (labels) and, for classifiers, ``predict_proba``.

Each output is binary or JSON on its own, as the extension says: its ``parameters.binary_data``
if given, else the request's ``parameters.binary_data_output``, else JSON. A response may mix
them: JSON outputs keep ``data`` in the header, binary ones give ``binary_data_size`` and their
bytes follow the header, in output order.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from flask import Blueprint, Response, g, jsonify, request
from pydantic import ValidationError

from .. import __version__
from ..repository.signature import Column, Signature
from ..serving.live_models import Route
from ..serving.predictor import ModelDescription, Prediction
from . import repository_api
from .dispatch import infer, inference_endpoint, route, server_state
from .errors import bad_request, unprocessable
from .records import rows_from_columns
from .v2_schema import (
    NUMERIC_DATATYPES,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    RequestInput,
    ResponseOutput,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
)
from .validation import json_object, matrix_from_tensor, numbers_from_values, tensor_values

bp = Blueprint("v2", __name__, url_prefix="/v2")

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT_NAME = "input-0"
OUTPUT_LABELS = "predict"
OUTPUT_PROBABILITIES = "predict_proba"
_BYTE_COUNT = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also accepts '²'


@bp.get("")
def server_metadata() -> Response:
    extensions = ["binary_tensor_data", repository_api.EXTENSION]
    body = ServerMetadata(name="model-server", version=__version__, extensions=extensions)
    return jsonify(body.model_dump())


@bp.get("/health/live")
def live() -> Response:
    return jsonify(ServerLive(live=True).model_dump())


@bp.get("/health/ready")
def ready() -> tuple[Response, int]:
    """Ready once a model version serves (and DEFAULT_MODEL, when set, is one of them)."""
    state = server_state()
    snapshot = state.live_models.snapshot
    default = state.settings.default_model
    is_ready = bool(snapshot.models.get(default)) if default else bool(snapshot)
    return jsonify(ServerReady(ready=is_ready).model_dump()), 200 if is_ready else 503


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    target = route(name, version)
    model = target.servable.description
    loaded = [str(v) for v in target.snapshot.models.get(name, {})] if version is None else None
    outputs = [TensorMetadata(name=OUTPUT_LABELS, datatype=_datatype(model), shape=[-1])]
    if model.has_probabilities:
        outputs.append(TensorMetadata(name=OUTPUT_PROBABILITIES, datatype="FP64", shape=[-1, len(model.classes or ())]))
    body = ModelMetadata(
        name=model.name,
        versions=loaded or [model.version],
        platform=model.platform,
        inputs=_inputs_metadata(model.signature),
        outputs=outputs,
        parameters={
            "estimator": model.estimator,
            "runtime": model.runtime,
            "runtime_reason": model.runtime_reason,
            "sha256": model.sha256,
            "feature_names": list(model.feature_names),
            "class_names": list(model.class_names or ()),
            **{k: model.metadata[k] for k in ("created", "sklearn_version", "metrics") if k in model.metadata},
        },
    )
    return jsonify(body.model_dump())


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> tuple[Response, int]:
    """200 for a loaded version (unversioned: any); 404 for one that is not loaded, as the metadata."""
    model = route(name, version).servable.description
    return jsonify(ModelReady(name=model.name, ready=True).model_dump()), 200


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@inference_endpoint
def model_infer(target: Route) -> Response:
    model = target.servable.description  # this request's version, kept to its end
    payload, binary = _read_request()
    try:
        req = InferenceRequest.model_validate(payload)
    except ValidationError as exc:
        raise unprocessable(_first_error(exc)) from None
    columnar = _columnar(req, model.signature)
    if not columnar and len(req.inputs) != 1:
        raise unprocessable(
            f"expected exactly one input tensor of shape [rows, {model.n_features}], got {len(req.inputs)}"
        )
    if not columnar and req.inputs[0].name != INPUT_NAME:
        raise unprocessable(
            f"unknown input {req.inputs[0].name!r}; this model's input is {INPUT_NAME!r}, or one input per column "
            f"(see GET /v2/models/{model.name})"
        )

    wanted = [o.name for o in req.outputs] if req.outputs else [OUTPUT_LABELS]
    known = {OUTPUT_LABELS} | ({OUTPUT_PROBABILITIES} if model.has_probabilities else set())
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise unprocessable(f"unknown output {unknown[0]!r}; this model has {', '.join(sorted(known))}")

    binary_outputs = _binary_outputs(req, wanted)

    rows = _column_rows(req.inputs, model.signature) if columnar else _input_rows(req.inputs[0], binary, model)
    prediction = infer(target, rows, with_probabilities=OUTPUT_PROBABILITIES in wanted)
    outputs = [_output(n, prediction, model) for n in wanted]
    response = InferenceResponse(
        model_name=model.name, model_version=model.version, id=req.id or g.request_id, outputs=outputs
    )
    if any(binary_outputs):
        return _binary_response(response, binary_outputs)
    return jsonify(response.model_dump(exclude_none=True))


def _read_request() -> tuple[dict[str, Any], bytes | None]:
    header_length = request.headers.get(HEADER_LENGTH)
    if header_length is None:
        return json_object(), None
    raw = request.get_data(cache=True)
    if not _BYTE_COUNT.fullmatch(header_length) or int(header_length) > len(raw):
        raise bad_request(f"{HEADER_LENGTH} must be a byte count within the body")
    size = int(header_length)
    try:
        payload = json.loads(raw[:size])
    except (ValueError, RecursionError) as exc:  # ValueError: also integers over 4300 digits
        raise bad_request(f"inference header is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise unprocessable("inference header must be a JSON object")
    return payload, raw[size:]


def _input_rows(tensor: RequestInput, binary: bytes | None, model: ModelDescription) -> np.ndarray:
    where = f"inputs[0] ({tensor.name})"
    dtype = NUMERIC_DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise unprocessable(f"{where}: datatype {tensor.datatype!r} is not numeric; use FP32, FP64 or an INT type")
    if any(d < 0 for d in tensor.shape):
        raise unprocessable(f"{where}: shape {tensor.shape} has a negative dimension")
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if binary is None or not isinstance(size, int) or size != len(binary):
            raise bad_request(f"{where}: binary_data_size does not match the binary part of the body")
        if size % dtype.itemsize:
            raise unprocessable(f"{where}: {size} bytes is not a whole number of {tensor.datatype} values")
        values = np.frombuffer(binary, dtype=dtype)
    elif tensor.data is None:
        raise unprocessable(f"{where}: has neither 'data' nor binary data")
    else:
        values = numbers_from_values(tensor_values(tensor.data, tensor.shape, f"{where}.data"), f"{where}.data", dtype)
    max_rows = server_state().settings.max_batch_rows
    return matrix_from_tensor(values, tensor.shape, model.n_features, max_rows, where)


def _columnar(req: InferenceRequest, signature: Signature) -> bool:
    """Whether the request sends one input per column (the pandas codec), rather than one ``input-0`` tensor."""
    if signature.matrix and len(req.inputs) == 1 and req.inputs[0].name == INPUT_NAME:
        return False  # the rows as one tensor, whatever content type the request names
    content_type = (req.parameters or {}).get("content_type")
    return content_type == "pd" or not signature.matrix or any(i.name != INPUT_NAME for i in req.inputs)


_DATATYPES = {"double": "FP64", "long": "INT64", "boolean": "BOOL", "string": "BYTES"}


def _column_rows(inputs: list[RequestInput], signature: Signature) -> np.ndarray:
    """One input per column -> the model's rows, every value checked against its column."""
    columns: dict[str, list[Any]] = {}
    by_name = {column.name: column for column in signature.inputs}
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] ({tensor.name})"
        column = by_name.get(tensor.name)
        if column is None:
            one = f"this model's input is {INPUT_NAME!r} (the rows), or " if signature.matrix else "this model takes "
            raise unprocessable(
                f"{where}: unknown input {tensor.name!r}; {one}one input per column: {', '.join(signature.names)}"
            )
        if tensor.name in columns:
            raise unprocessable(f"{where}: column {tensor.name!r} is sent twice")
        _check_column_datatype(tensor, column, where)
        if (tensor.parameters or {}).get("binary_data_size") is not None or tensor.data is None:
            raise unprocessable(f"{where}: a column's values are sent as JSON 'data'")
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise unprocessable(f"{where}: a column's shape is [rows] or [rows, 1], got {tensor.shape}")
        if tensor.shape[0] < 0:
            raise unprocessable(f"{where}: shape {tensor.shape} has a negative dimension")
        values = tensor_values(tensor.data, tensor.shape, f"{where}.data")
        if len(values) != tensor.shape[0]:
            raise unprocessable(f"{where}: shape {tensor.shape} needs {tensor.shape[0]} values, got {len(values)}")
        columns[tensor.name] = values
    return rows_from_columns(columns, signature, server_state().settings.max_batch_rows, "inputs")


def _check_column_datatype(tensor: RequestInput, column: Column, where: str) -> None:
    numeric = tensor.datatype in NUMERIC_DATATYPES
    expected = _DATATYPES[column.type]
    if (column.numeric and not numeric) or (not column.numeric and tensor.datatype != expected):
        kinds = "a numeric datatype (FP64, INT64, ...)" if column.numeric else expected
        raise unprocessable(f"{where}: column {column.name!r} holds {column.type} values: send it as {kinds}")


def _inputs_metadata(signature: Signature) -> list[TensorMetadata]:
    """A numeric model's one input-0 tensor; a model of mixed columns' inputs, one per column."""
    if signature.matrix:
        return [TensorMetadata(name=INPUT_NAME, datatype="FP64", shape=[-1, len(signature.inputs)])]
    return [TensorMetadata(name=c.name, datatype=_DATATYPES[c.type], shape=[-1, 1]) for c in signature.inputs]


def _output(name: str, prediction: Prediction, model: ModelDescription) -> ResponseOutput:
    if name == OUTPUT_PROBABILITIES:
        probabilities = prediction.probabilities
        assert probabilities is not None  # requested, and the model has them (checked above)
        return ResponseOutput(
            name=name, shape=list(probabilities.shape), datatype="FP64", data=probabilities.ravel().tolist()
        )
    labels = prediction.labels
    data = labels.tolist() if labels.dtype.kind in "iufb" else [str(v) for v in labels.tolist()]
    return ResponseOutput(name=name, shape=list(labels.shape), datatype=_datatype(model, labels), data=data)


def _datatype(model: ModelDescription, labels: np.ndarray | None = None) -> str:
    kind = labels.dtype.kind if labels is not None else np.asarray(model.classes or [0.0]).dtype.kind
    return {"i": "INT64", "u": "UINT64", "f": "FP64", "b": "BOOL"}.get(kind, "BYTES")


def _binary_outputs(req: InferenceRequest, wanted: list[str]) -> list[bool]:
    """Whether each wanted output is sent binary: its own ``binary_data``, else the request's default."""
    default = _flag(req.parameters, "binary_data_output", "parameters") or False
    if not req.outputs:
        return [default] * len(wanted)
    flags = [_flag(o.parameters, "binary_data", f"outputs[{i}].parameters") for i, o in enumerate(req.outputs)]
    return [default if flag is None else flag for flag in flags]


def _flag(parameters: dict[str, Any] | None, name: str, where: str) -> bool | None:
    value = (parameters or {}).get(name)
    if value is not None and not isinstance(value, bool):
        raise unprocessable(f"{where}.{name} must be a boolean, got {json.dumps(value)[:40]}")
    return value


def _binary_response(response: InferenceResponse, binary_outputs: list[bool]) -> Response:
    """The header with the JSON outputs' data, then the binary outputs' bytes in output order."""
    chunks = []
    for output, binary in zip(response.outputs, binary_outputs, strict=True):
        if not binary:
            continue
        raw = _tensor_bytes(output)
        output.parameters = {**(output.parameters or {}), "binary_data_size": len(raw)}
        output.data = None
        chunks.append(raw)
    header = json.dumps(response.model_dump(exclude_none=True), separators=(",", ":")).encode()
    return Response(
        header + b"".join(chunks),
        content_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def _tensor_bytes(output: ResponseOutput) -> bytes:
    if output.datatype == "BYTES":
        parts = [s.encode() for s in output.data or []]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)
    dtype = NUMERIC_DATATYPES.get(output.datatype, np.dtype("?"))
    return np.asarray(output.data, dtype=dtype).tobytes()


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
