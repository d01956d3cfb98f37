"""The JSON bodies of this server's own API: ``/predict``, feedback and ``/openapi.json``.

The endpoints parse their requests and build their responses with these models (but for
``/predict``'s answer, a dict of PredictResponse's fields on the hot path: see rest/predict.py), and
the OpenAPI document (rest/openapi.py) takes its schemas, descriptions and examples from them. The Open
Inference Protocol's bodies (V2 inference, metadata, health, the model repository, the error
body) are in rest/v2_schema.py.

Fields a response leaves out when they have no value (``model_dump(exclude_none=True)``) are
typed ``X | SkipJsonSchema[None]``: optional in the schema, never null.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, StrictBool, ValidationError
from pydantic.json_schema import SkipJsonSchema

_Row = Annotated[list[float], Field(min_length=1)]
_Class = Annotated[
    float | str, Field(description='A class as /predict returns it (e.g. 2) or its name (e.g. "virginica")')
]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # a field left out of the body has no value to show


def refused_field(exc: ValidationError) -> str:
    """The first field of a request model that pydantic refused (errors come in field order)."""
    return str(exc.errors(include_url=False)[0]["loc"][0])


class PredictRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"features": [5.1, 3.5, 1.4, 0.2]}]})

    # Declared for the schema, not validated by pydantic (SkipValidation): rest/validation.py checks the rows
    # (matrix_from_features), so that errors keep naming the row and column as clients see them today
    # ("features[1][2] must be a number, got a string"). It is as fast as pydantic for one row; on batches a
    # strict pydantic check measured ~25 % faster, which is under 3 % of such a request (32 and 1024 rows).
    features: SkipValidation[_Row | Annotated[list[_Row], Field(min_length=1)]] = Field(
        description="One row of numbers, or an array of rows"
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
