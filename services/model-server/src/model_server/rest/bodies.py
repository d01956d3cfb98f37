"""The JSON bodies of this server's own API: ``/predict``, ``/invocations``, feedback and ``/openapi.json``.

The endpoints parse their requests and build their responses with these models (but for the answers of
``/predict`` and ``/invocations``, dicts of the models' fields on the hot path: see rest/predict.py), and
the OpenAPI document (rest/openapi.py) takes its schemas, descriptions and examples from them. The Open
Inference Protocol's bodies (V2 inference, metadata, health, the model repository, the error
body) are in rest/v2_schema.py.

Fields a response leaves out when they have no value (``model_dump(exclude_none=True)``) are
typed ``X | SkipJsonSchema[None]``: optional in the schema, never null.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, StrictBool, ValidationError
from pydantic.json_schema import SkipJsonSchema

_Value = Annotated[float | str | bool | None, Field(description="A value of the column: its signature says which")]
_Row = Annotated[list[_Value], Field(min_length=1, description="The values of one row, in the model's column order")]
_Record = Annotated[dict[str, _Value], Field(description="One row as column name: value, every column once")]
_Class = Annotated[
    float | str, Field(description='A class as /predict returns it (e.g. 2) or its name (e.g. "virginica")')
]


# InvocationsRequest.dataframe_split: the keys rest/invocations.py reads; it ignores any other (pandas' "index").
class DataframeSplit(TypedDict):
    columns: NotRequired[list[str] | None]
    data: list[_Row]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a field left out of the body has no value to show


def refused_field(exc: ValidationError) -> str:
    """The first field of a request model that pydantic refused (errors come in field order)."""
    return str(exc.errors(include_url=False)[0]["loc"][0])


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"features": [5.1, 3.5, 1.4, 0.2]},
                {"features": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]},
                {"features": {"island": "Biscoe", "bill_length_mm": 45.2, "sex": None, "year": 2008}},
            ]
        }
    )

    # Declared for the schema, not validated by pydantic (SkipValidation): rest/validation.py and rest/records.py
    # check the rows against the version's signature, so that errors name the row and column as clients see them
    # ("features[1][2] must be a number, got a string"). It is as fast as pydantic for one row; on batches a
    # strict pydantic check measured ~25 % faster, which is under 3 % of such a request (32 and 1024 rows).
    features: SkipValidation[
        _Row | Annotated[list[_Row], Field(min_length=1)] | _Record | Annotated[list[_Record], Field(min_length=1)]
    ] = Field(
        description="One row (values in the model's column order, or a record of column: value), or an array of rows"
    )
    return_probabilities: StrictBool = Field(
        default=False, description="Add the probability of each class, in the order of 'classes'"
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prediction": [0]},
                {
                    "prediction": [0],
                    "probabilities": [[1.0, 0.0, 0.0]],
                    "classes": ["setosa", "versicolor", "virginica"],
                },
            ]
        }
    )

    prediction: list[Any] = Field(description="One label per row")
    probabilities: list[list[float]] | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_no_default,
        description="With return_probabilities: one row per input row, one column per class",
    )
    classes: list[str] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default, description="With return_probabilities: the columns' class names"
    )


class InvocationsRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"dataframe_split": {"data": [[5.1, 3.5, 1.4, 0.2]]}},
                {
                    "dataframe_records": [
                        {
                            "sepal length (cm)": 6.2,
                            "sepal width (cm)": 2.9,
                            "petal length (cm)": 4.3,
                            "petal width (cm)": 1.3,
                        }
                    ]
                },
                {"inputs": [[5.9, 3.0, 5.1, 1.8]]},
            ]
        }
    )

    # Exactly one of the four (rest/invocations.py checks it, naming the row and column of a bad value).
    dataframe_split: SkipValidation[DataframeSplit] | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_no_default,
        description="pandas' split orient: 'columns' (the columns' names; default: the model's order) and 'data' "
        "(the rows, each one value per column)",
    )
    dataframe_records: SkipValidation[list[_Record]] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default, description="One record per row"
    )
    instances: SkipValidation[list[_Row] | list[_Record] | dict[str, list[_Value]]] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default, description="Rows (records or arrays), or one array per column"
    )
    inputs: SkipValidation[list[_Row] | list[_Record] | dict[str, list[_Value]]] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default, description="As instances"
    )
    params: SkipValidation[dict[str, Any]] | None = Field(
        default=None, json_schema_extra=_no_default, description="Inference parameters, or null (none is taken)"
    )


class InvocationsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"predictions": [0]}]})

    predictions: list[Any] = Field(description="One label per row")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"prediction": [2, "versicolor"], "truth": ["virginica", 2]}]}
    )

    # Checked by rest/validation.py (class_positions), not pydantic: its errors name the item
    # ("truth[3] = 7 is not a class of the model; its classes: ...") and list the model's classes.
    prediction: SkipValidation[Annotated[list[_Class], Field(min_length=1)]] = Field(
        description="The predicted classes, at most MAX_BATCH_ROWS"
    )
    truth: SkipValidation[Annotated[list[_Class], Field(min_length=1)]] = Field(
        description="The true class of each prediction, in the same order"
    )


class FeedbackResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model_name": "iris-rf", "model_version": "1", "accepted": 2}]}
    )

    model_name: str
    model_version: str = Field(description="The version the feedback was counted for")
    accepted: int = Field(description="Pairs counted")


class OpenApiDocument(BaseModel):
    """This document: OpenAPI 3.1."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
