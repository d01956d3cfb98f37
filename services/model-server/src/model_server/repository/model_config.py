"""A model's optional ``config.json``: its version policy, validated, as TensorFlow Serving and Triton have it.

::

    {"version_policy": {"latest": 2}}          the 2 highest versions (default: latest 1)
    {"version_policy": {"specific": [1, 3]}}   these versions, those of them that exist
    {"version_policy": {"all": {}}}            every version

A rollout between loaded versions (:mod:`model_server.serving.routing` applies it)::

    "traffic": {"1": 90, "2": 10}              shares of the unversioned requests, by weight
    "sticky_header": "X-User-Id"               the same header value always reaches the same version
    "shadow": {"version": "2", "percent": 100} that share of them also runs on version 2, compared

A model without the file serves its latest version. Validation is strict, so that a mistake is
reported rather than guessed at: unknown keys are refused (a typo such as ``"lates"`` would
otherwise fall back to the default without a word), version-policy numbers must be JSON integers
(not ``"2"`` or ``2.0``), and a policy names exactly one kind. Versions in ``traffic`` keys and
``shadow.version`` are positive integers written as JSON object keys are, as strings (``"2"``;
``shadow.version`` also takes ``2``). Weights are numbers >= 0, at least one above 0; ``percent``
is 0..100. Every refusal raises ModelConfigError with one line naming the file and the field.

Extending: a new setting is one more optional field of ModelConfig with a default, so existing
files keep their meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .files import MAX_JSON_BYTES, UnsafeFile, read_file
from .layout import is_version

Kind = Literal["latest", "specific", "all"]
KINDS: tuple[Kind, ...] = ("latest", "specific", "all")

PositiveInt = Annotated[int, Field(gt=0)]


def _version_name(value: object) -> object:
    """``"2"`` -> 2 (a version written as a JSON object key is); anything else is left to the int check."""
    if isinstance(value, str):
        if not is_version(value):
            raise PydanticCustomError("version", 'a version is a positive integer, such as "2"')
        return int(value)
    return value


Version = Annotated[int, BeforeValidator(_version_name), Field(gt=0)]
# A weight is a share of the weights' sum; bounded so that a sum never overflows (1e308 + 1e308 is inf).
MAX_WEIGHT = 1_000_000
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # an HTTP field name (RFC 9110 token), not too long


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


class Shadow(_Strict):
    """``percent`` of the unversioned requests also run on ``version``; its answers are compared, never returned."""

    version: Version
    percent: Percent


class ModelConfig(_Strict):
    """A model's config.json."""

    version_policy: VersionPolicy = VersionPolicy(latest=1)
    traffic: dict[Version, Weight] | None = None
    sticky_header: str | None = None
    shadow: Shadow | None = None

    @field_validator("traffic")
    @classmethod
    def _some_weight(cls, traffic: dict[int, float] | None) -> dict[int, float] | None:
        if traffic is not None and not any(weight > 0 for weight in traffic.values()):
            raise PydanticCustomError("traffic_empty", "give at least one version a weight above 0")
        return traffic

    @field_validator("sticky_header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is not None and not HEADER_NAME.fullmatch(name):
            raise PydanticCustomError("header_name", "an HTTP header name: 1 to 64 letters, digits or -")
        return name


def read_model_config(
    path: Path | None, repository: Path | None = None, max_bytes: int = MAX_JSON_BYTES
) -> ModelConfig:
    """The config at ``path``; the default (latest 1) when there is none; ModelConfigError if it is unusable.

    ``path`` must be a regular file within ``repository`` (default: the folder above its model's)
    of at most ``max_bytes`` (:mod:`.files`).
    """
    if path is None:
        return ModelConfig()
    try:
        text = read_file(path, repository or path.parent.parent, max_bytes, "MODEL_MAX_JSON_BYTES")
    except FileNotFoundError:
        if path.is_symlink():
            raise ModelConfigError(f"{path} is a broken symlink") from None
        return ModelConfig()
    except UnsafeFile as exc:
        raise ModelConfigError(str(exc)) from None
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
