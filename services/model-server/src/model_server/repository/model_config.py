"""A model's optional ``config.json``: its version policy, validated, as TensorFlow Serving and Triton have it.

::

    {"version_policy": {"latest": 2}}          the 2 highest versions (default: latest 1)
    {"version_policy": {"specific": [1, 3]}}   these versions, those of them that exist
    {"version_policy": {"all": {}}}            every version

A model without the file serves its latest version. Validation is strict, so that a mistake is
reported rather than guessed at: unknown keys are refused (a typo such as ``"lates"`` would
otherwise fall back to the default without a word), numbers must be JSON integers (not ``"2"``
or ``2.0``), and a policy names exactly one kind. Every refusal raises ModelConfigError with one
line naming the file and the field.

Extending: a new setting (a later issue adds ``traffic`` and ``shadow``) is one more optional
field of ModelConfig with a default, so existing files keep their meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

Kind = Literal["latest", "specific", "all"]
KINDS: tuple[Kind, ...] = ("latest", "specific", "all")

PositiveInt = Annotated[int, Field(gt=0)]


class ModelConfigError(Exception):
    """A model's config.json is unusable; the message is a one-line reason naming the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AllVersions(_Strict):
    """The ``all`` policy: an empty object, as in Triton (it takes no settings)."""


class VersionPolicy(_Strict):
    """Which versions of a model to serve: exactly one of ``latest``, ``specific``, ``all``."""

    latest: PositiveInt | None = None
    specific: Annotated[tuple[PositiveInt, ...], Field(min_length=1)] | None = None
    all: AllVersions | None = None

    @field_validator("specific")
    @classmethod
    def _ascending(cls, versions: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if versions is None else tuple(sorted(set(versions)))

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise PydanticCustomError("policy_kind", "set exactly one of latest, specific, all{got}", {"got": got})
        return self

    @property
    def kind(self) -> Kind:
        return cast(Kind, next(kind for kind in KINDS if getattr(self, kind) is not None))


class ModelConfig(_Strict):
    """A model's config.json."""

    version_policy: VersionPolicy = VersionPolicy(latest=1)


def read_model_config(path: Path | None) -> ModelConfig:
    """The config at ``path``; the default (latest 1) when there is none; ModelConfigError if it is unusable."""
    if path is None:
        return ModelConfig()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            raise ModelConfigError(f"{path} is a broken symlink") from None
        return ModelConfig()
    except OSError as exc:
        raise ModelConfigError(f"{path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        return ModelConfig.model_validate_json(text)
    except ValidationError as exc:
        raise ModelConfigError(_reason(path, exc)) from None


def _reason(path: Path, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first, more = errors[0], len(errors) - 1
    also = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    if first["type"] == "json_invalid":
        return f"{path} is not valid JSON: {(first.get('ctx') or {}).get('error', first['msg'])}"
    if not first["loc"] and first["type"] == "model_type":
        return f"{path} must hold a JSON object"
    return f"{path}: {_field(first)}: {_message(first)}{also}"


def _field(error: ErrorDetails) -> str:
    text = ""
    for part in error["loc"]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return error["msg"]
