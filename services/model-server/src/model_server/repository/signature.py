"""A version's input signature: the columns its model takes, in order, and what each column accepts.

``metadata.json`` records it (``python -m model_server.package`` derives it from the training
data and the fitted estimator, :mod:`..tools.signature`)::

    "signature": {
      "frame": true,
      "inputs": [
        {"name": "island", "type": "string", "dtype": "str", "nullable": false,
         "categories": ["Biscoe", "Dream", "Torgersen"], "unknown": "accept"},
        {"name": "bill_length_mm", "type": "double", "nullable": true},
        {"name": "year", "type": "long"}
      ]
    }

* ``type``: ``double`` (a JSON number), ``long`` (a JSON integer: 3.7 is refused, never
  truncated), ``boolean`` (``true``/``false``) or ``string``;
* ``nullable``: whether a missing value (JSON ``null``) may be sent, because the model handles
  it (an imputer, or a model that takes missing values as they are);
* ``categories`` (strings): every category the model knows (its fitted encoder's, else those
  seen in the training sample), and ``unknown``: ``refuse`` where the model fails on another (an
  encoder with ``handle_unknown="error"``), ``accept`` where it takes one
  (``handle_unknown="ignore"`` or infrequent categories), counted per column;
* ``dtype``: the pandas dtype the training data had, and ``frame``: the model was fitted on a
  pandas DataFrame of these columns and is given one (built as pandas reads a CSV file: the same
  dtypes, NaN for a missing value);
* ``coded`` (strings): the model takes the column as its category's position in ``categories``
  (a gradient-boosted model's categorical feature, :mod:`.boosted`); a missing value, or an
  unknown category where ``unknown`` is ``accept``, is given as missing (NaN).

A version without a signature (packaged before it existed) takes its feature names as that many
non-null ``double`` columns: the all-numeric matrix the server always took, unchanged.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ColumnType = Literal["double", "long", "boolean", "string"]
MAX_CATEGORIES = 1000  # categories listed per string column (package --max-categories)


class SignatureError(ValueError):
    """The recorded signature is unusable or does not fit the model; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Column(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    type: ColumnType
    nullable: bool = False
    categories: Annotated[tuple[str, ...], Field(max_length=MAX_CATEGORIES)] | None = None
    unknown: Literal["accept", "refuse"] = "accept"
    dtype: Annotated[str, Field(max_length=64)] | None = None
    coded: bool = False

    @model_validator(mode="after")
    def _categories_of_strings(self) -> Self:
        if self.categories is not None and self.type != "string":
            raise ValueError(f"column {self.name!r}: only string columns list categories")
        if self.coded and self.categories is None:
            raise ValueError(f"column {self.name!r}: a coded column needs its categories, in the order of their codes")
        if self.unknown == "refuse" and self.categories is None:
            raise ValueError(f"column {self.name!r}: unknown 'refuse' needs the categories listed")
        return self

    @property
    def numeric(self) -> bool:
        return self.type in ("double", "long")


class Signature(_Strict):
    inputs: Annotated[tuple[Column, ...], Field(min_length=1)]
    frame: bool = False

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for column in self.inputs:
            if column.name in seen:
                raise ValueError(f"column {column.name!r} is listed twice")
            seen.add(column.name)
        return self

    @classmethod
    def of_doubles(cls, names: tuple[str, ...] | list[str], frame: bool = False) -> Signature:
        """The signature of a model that takes these numeric features, none missing."""
        return cls(inputs=tuple(Column(name=name, type="double") for name in names), frame=frame)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.inputs)

    @property
    def matrix(self) -> bool:
        """Whether every value is a finite double: requests decode to a float matrix (the fast path)."""
        return all(column.type == "double" and not column.nullable for column in self.inputs)

    def position(self) -> dict[str, int]:
        return {column.name: i for i, column in enumerate(self.inputs)}


def read_signature(metadata: dict, feature_names: tuple[str, ...], fitted_names: tuple[str, ...] | None) -> Signature:
    """The signature recorded in ``metadata`` (or the legacy one of ``feature_names``), checked against the model.

    ``fitted_names``: the estimator's ``feature_names_in_`` (None if it was fitted on a plain
    array); a frame signature must list exactly those, in that order.
    """
    recorded = metadata.get("signature")
    if recorded is None:  # packaged before signatures: the float matrix it was always given
        return Signature.of_doubles(feature_names)
    if not isinstance(recorded, dict):
        raise SignatureError(f"'signature' must be an object, got {type(recorded).__name__}")
    try:
        signature = Signature.model_validate(recorded, strict=False)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise SignatureError(f"'signature'{'.' + where if where else ''}: {error['msg']}") from None
    if signature.names != tuple(feature_names):
        raise SignatureError(
            f"'signature' lists columns {list(signature.names)}, the model takes {list(feature_names)}"
        )
    if signature.frame and fitted_names is not None and signature.names != fitted_names:
        raise SignatureError(f"'signature' lists {list(signature.names)}, the model was fitted on {list(fitted_names)}")
    return signature
