"""Settings of the model server, read from environment variables only, and their defaults.

Every field maps to an upper-case environment variable of the same name (``MODEL_REPOSITORY``,
``MAX_BATCH_ROWS``, ...): :class:`Settings` for the app, :class:`ProcessSettings` for the
gunicorn process around it (gunicorn.conf.py). This module is where each default is stated;
docker-compose.yml, .env.example and the README's configuration table restate them, and
tests/stack/test_defaults.py checks every copy against it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .repository.files import MAX_ARTIFACT_BYTES, MAX_JSON_BYTES
from .repository.layout import is_model_name

# Words of example values that must never guard a real deployment, even inside a long key.
PLACEHOLDER_WORDS = ("changeme", "change-me", "replace-me", "placeholder", "example", "password", "secret")
MIN_API_KEY_LENGTH = 16


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of one model-server process (shared by its gunicorn workers)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # The model repository: <repository>/<model>/<version>/ (README, "Model repository").
    model_repository: Path = Path("/opt/models")
    model_poll_seconds: float = Field(default=5.0, ge=0)  # 0: load once, at start
    default_model: str = ""  # what /predict serves; empty: the only model there is
    # Digests of the pickle/joblib artifacts trusted to load (comma-separated).
    model_sha256: Annotated[list[str], NoDecode] = Field(default_factory=list)
    model_trusted_types: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Size caps of the files read from the repository (repository/files.py): model files; metadata and config.
    model_max_artifact_bytes: int = Field(default=MAX_ARTIFACT_BYTES, ge=1)
    model_max_json_bytes: int = Field(default=MAX_JSON_BYTES, ge=1024)
    model_load_timeout: float = Field(default=300.0, gt=0)  # seconds one version's load may take; then abandoned
    # Settings of the single-model server that the repository replaced: refused if set, with the way over.
    model_dir: Path | None = Field(default=None, exclude=True)
    model_name: str | None = Field(default=None, exclude=True)
    model_version: str | None = Field(default=None, exclude=True)

    max_batch_rows: int = Field(default=1024, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    drift_max_features: int = Field(default=32, ge=0)
    # ModelAccuracyLow (prometheus/rules/quality.yml) reads both from the replicas' /metrics.
    accuracy_alert_margin: float = Field(default=0.05, ge=0, lt=1)  # live accuracy this far under held-out: alert
    accuracy_min_feedback: int = Field(default=100, ge=1)  # feedback pairs an hour needs to be judged

    model_runtime: Literal["auto", "sklearn"] = "auto"
    batch_max_rows: int = Field(default=256, ge=0)  # 0 turns micro-batching off
    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    shadow_queue_rows: int = Field(default=1024, ge=1)  # rows waiting for the shadow version; beyond: dropped

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    api_keys_file: Path | None = None  # more keys, one per line or comma-separated (a mounted secret)
    log_level: str = "info"
    access_log: bool = False  # nginx logs every request with its id; this adds the server's own line

    @model_validator(mode="before")
    @classmethod
    def _keys_from_file(cls, data: object) -> object:
        if not isinstance(data, dict) or not data.get("api_keys_file"):
            return data
        path = Path(data["api_keys_file"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"API_KEYS_FILE {path} cannot be read: {exc}") from None
        from_file = [key for key in re.split(r"[\s,]+", text) if key]
        return {**data, "api_keys": [*_split_csv(data.get("api_keys") or []), *from_file]}

    @field_validator("model_trusted_types", "api_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("model_sha256", mode="before")
    @classmethod
    def _sha256_hex(cls, value: object) -> object:
        digests = _split_csv(value)
        if not isinstance(digests, list):
            return digests
        digests = [str(d).strip().lower() for d in digests]
        for digest in digests:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("MODEL_SHA256 must be 64 hexadecimal characters (several: comma-separated)")
        return digests

    @field_validator("model_dir", "model_name", "model_version")
    @classmethod
    def _replaced_by_the_repository(cls, value: object, info: ValidationInfo) -> None:
        if value is not None:
            raise ValueError(
                f"{info.field_name.upper()} was replaced by MODEL_REPOSITORY: put the model directory at "
                "<repository>/<model name>/<version>/ (the folder names are the name and version) and set "
                "MODEL_REPOSITORY=<repository> (README, 'Model repository')"
            )
        return None

    @field_validator("default_model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        value = value.strip()
        if value and not is_model_name(value):
            raise ValueError("DEFAULT_MODEL must be a model name: a letter or digit, then up to 63 of [A-Za-z0-9._-]")
        return value

    @field_validator("api_keys")
    @classmethod
    def _refuse_weak_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < MIN_API_KEY_LENGTH or any(word in key.lower() for word in PLACEHOLDER_WORDS):
                raise ValueError(
                    f"every API key must be at least {MIN_API_KEY_LENGTH} characters and not a "
                    "placeholder (generate one with: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
        return keys

    @field_validator("model_runtime", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be one of debug, info, warning, error, critical")
        return value


class ProcessSettings(BaseSettings):
    """The gunicorn process of one replica (gunicorn.conf.py); an empty variable means the default."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    port: int = Field(default=8000, ge=1, le=65535)
    # 0: one per CPU the replica may use (gevent workers use one core each at most).
    # gunicorn itself reads WEB_CONCURRENCY (and fails on an empty one): compose sets GUNICORN_WORKERS.
    gunicorn_workers: int = Field(default=0, ge=0, validation_alias=AliasChoices("gunicorn_workers", "web_concurrency"))
    gunicorn_worker_connections: int = Field(default=1000, ge=1)
    gunicorn_timeout: int = Field(default=30, ge=0)
    gunicorn_graceful_timeout: int = Field(default=25, ge=0)  # SIGTERM: time for in-flight requests
    gunicorn_keepalive: int = Field(default=75, ge=0)  # longer than nginx's upstream keepalive (60 s)
    gunicorn_max_requests: int = Field(default=0, ge=0)  # restart a worker after this many requests; 0: never
    # Renew a worker after it has unloaded this many model versions (+ up to half as many more,
    # drawn per worker so that they renew at different times); 0: never.
    gunicorn_max_unloads: int = Field(default=20, ge=0)
    gunicorn_worker_tmp_dir: str | None = None  # heartbeat files; default: /dev/shm where it exists
    log_level: str = "info"

    @classmethod
    def from_environment(cls) -> ProcessSettings:
        """The settings, or SystemExit with one line per bad variable (gunicorn then stops with it)."""
        try:
            return cls()
        except ValidationError as exc:
            lines = []
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]).upper() if error["loc"] else "settings"
                got = error.get("input")
                if error["type"].startswith("int"):
                    lines.append(f"gunicorn.conf.py: {name} must be an integer (or empty), got {got!r}")
                else:
                    lines.append(f"gunicorn.conf.py: {name}: {error['msg']}, got {got!r}")
            raise SystemExit("\n".join(lines)) from None
