"""Settings come from environment variables; weak secrets and malformed digests are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_server.config import MIN_API_KEY_LENGTH, PLACEHOLDER_WORDS, ProcessSettings, Settings
from pydantic import ValidationError

GOOD_KEY = "k" * MIN_API_KEY_LENGTH


def test_defaults() -> None:
    settings = Settings()

    assert settings.model_repository == Path("/opt/models")
    assert settings.model_poll_seconds == 5
    assert settings.default_model == ""
    assert settings.model_sha256 == []
    assert settings.model_trusted_types == []
    assert settings.api_keys == []
    assert settings.max_batch_rows == 1024
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.log_level == "INFO"
    assert (settings.accuracy_alert_margin, settings.accuracy_min_feedback) == (0.05, 100)


def test_every_field_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "MODEL_REPOSITORY": str(tmp_path),
        "MODEL_POLL_SECONDS": "0.5",
        "DEFAULT_MODEL": " flowers ",
        "MODEL_SHA256": f"{'AB' * 32}, {'cd' * 32}",
        "MODEL_TRUSTED_TYPES": " a.B , c.D,, ",
        "MAX_BATCH_ROWS": "12",
        "MAX_BODY_BYTES": "2048",
        "DRIFT_MAX_FEATURES": "3",
        "ACCURACY_ALERT_MARGIN": "0.1",
        "ACCURACY_MIN_FEEDBACK": "500",
        "API_KEYS": f"{GOOD_KEY}, {'z' * 40} ,",
        "LOG_LEVEL": "debug",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.model_repository == tmp_path
    assert (settings.model_poll_seconds, settings.default_model) == (0.5, "flowers")
    assert settings.model_sha256 == ["ab" * 32, "cd" * 32], "a comma-separated list, normalised to lower case"
    assert settings.model_trusted_types == ["a.B", "c.D"]
    assert (settings.max_batch_rows, settings.max_body_bytes, settings.drift_max_features) == (12, 2048, 3)
    assert (settings.accuracy_alert_margin, settings.accuracy_min_feedback) == (0.1, 500)
    assert settings.api_keys == [GOOD_KEY, "z" * 40]
    assert settings.log_level == "DEBUG"


def test_lower_case_variable_names_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("max_batch_rows", "9")

    assert Settings().max_batch_rows == 9


def test_unrelated_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    without = Settings().model_dump()
    monkeypatch.setenv("MODEL_COLOUR", "blue")

    settings = Settings()

    assert settings.model_dump() == without, "no setting changed, none added"
    assert "model_colour" not in settings.model_dump()


def test_api_keys_are_not_in_the_repr() -> None:
    assert GOOD_KEY not in repr(Settings(api_keys=[GOOD_KEY]))


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().max_batch_rows = 5  # type: ignore[misc]


def field_error(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**env)
    return str(caught.value)


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "k" * (MIN_API_KEY_LENGTH - 1),
        *PLACEHOLDER_WORDS,
        "CHANGEME",
        *(f"my-{word}-0123456789abcdef" for word in PLACEHOLDER_WORDS),  # long enough, still a placeholder
    ],
)
def test_weak_api_keys_are_refused(key: str) -> None:
    assert f"at least {MIN_API_KEY_LENGTH} characters" in field_error(api_keys=[GOOD_KEY, key])


def test_weak_api_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", f"{GOOD_KEY},changeme")

    with pytest.raises(ValidationError, match="api_keys"):
        Settings()


@pytest.mark.parametrize(
    "digest",
    ["abc", "a" * 63, "a" * 65, "g" * 64, "sha256:" + "a" * 57, "a" * 32 + " " + "a" * 31],
)
def test_malformed_sha256_is_refused(digest: str) -> None:
    assert "MODEL_SHA256 must be 64 hexadecimal characters" in field_error(model_sha256=digest)


@pytest.mark.parametrize("digests", [["a" * 64, "abc"], f"{'a' * 64},abc"], ids=["list", "csv"])
def test_one_malformed_sha256_among_several_is_refused(digests: object) -> None:
    assert "MODEL_SHA256 must be 64 hexadecimal characters" in field_error(model_sha256=digests)


def test_sha256_is_trimmed_and_lowered() -> None:
    assert Settings(model_sha256=f"  {'AbC1' * 16}\n").model_sha256 == ["abc1" * 16]
    assert Settings(model_sha256=f" {'A' * 64} ,, {'b' * 64},").model_sha256 == ["a" * 64, "b" * 64]
    assert Settings(model_sha256="").model_sha256 == []


@pytest.mark.parametrize("variable", ["MODEL_DIR", "MODEL_NAME", "MODEL_VERSION"])
def test_single_model_settings_are_refused_with_the_way_to_a_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, str(tmp_path) if variable == "MODEL_DIR" else "7")

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = str(caught.value)
    assert f"{variable} was replaced by MODEL_REPOSITORY" in message
    assert "<repository>/<model name>/<version>/" in message


@pytest.mark.parametrize("name", ["-iris", "iris rf", "a/b", "x" * 65])
def test_default_model_must_be_a_model_name(name: str) -> None:
    assert "DEFAULT_MODEL must be a model name" in field_error(default_model=name)


def test_poll_seconds_may_not_be_negative() -> None:
    assert "model_poll_seconds" in field_error(model_poll_seconds="-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_batch_rows", "0"),
        ("max_body_bytes", "1023"),
        ("drift_max_features", "-1"),
        ("max_batch_rows", "many"),
        ("accuracy_alert_margin", "-0.01"),
        ("accuracy_alert_margin", "1"),
        ("accuracy_alert_margin", "5%"),
        ("accuracy_min_feedback", "0"),
        ("accuracy_min_feedback", "2.5"),
    ],
)
def test_limits_are_validated(monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    monkeypatch.setenv(field.upper(), value)

    with pytest.raises(ValidationError, match=field):
        Settings()


def test_unknown_log_level_is_refused() -> None:
    assert "LOG_LEVEL must be one of" in field_error(log_level="verbose")


def test_api_keys_from_a_file_add_to_the_environment_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = "another-key-0123456789abcdef"
    third = "third-key-0123456789abcdefgh"
    secret = tmp_path / "api_keys"
    secret.write_text(f"{other}\n{third},\n", encoding="utf-8")
    monkeypatch.setenv("API_KEYS", GOOD_KEY)
    monkeypatch.setenv("API_KEYS_FILE", str(secret))
    assert Settings().api_keys == [GOOD_KEY, other, third]


def test_api_keys_file_weak_or_missing_is_refused(tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    weak.write_text("short\n", encoding="utf-8")
    assert f"at least {MIN_API_KEY_LENGTH} characters" in field_error(api_keys_file=weak)
    assert "cannot be read" in field_error(api_keys_file=tmp_path / "missing")


@pytest.mark.parametrize(("margin", "feedback"), [("0", "1"), ("0.999", "1000000")])
def test_accuracy_alert_settings_at_their_bounds(monkeypatch: pytest.MonkeyPatch, margin: str, feedback: str) -> None:
    monkeypatch.setenv("ACCURACY_ALERT_MARGIN", margin)
    monkeypatch.setenv("ACCURACY_MIN_FEEDBACK", feedback)

    settings = Settings()

    assert (settings.accuracy_alert_margin, settings.accuracy_min_feedback) == (float(margin), int(feedback))


def test_process_settings_defaults_and_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ProcessSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    defaults = ProcessSettings()
    assert (defaults.port, defaults.gunicorn_workers, defaults.gunicorn_worker_connections) == (8000, 0, 1000)
    assert (defaults.gunicorn_timeout, defaults.gunicorn_graceful_timeout, defaults.gunicorn_keepalive) == (30, 25, 75)

    # compose passes `GUNICORN_WORKERS: ${GUNICORN_WORKERS:-}`: empty means the default (one per CPU)
    monkeypatch.setenv("GUNICORN_WORKERS", "")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "")
    assert (ProcessSettings().gunicorn_workers, ProcessSettings().gunicorn_timeout) == (0, 30)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")  # gunicorn's own variable, when GUNICORN_WORKERS is not set
    assert ProcessSettings().gunicorn_workers == 3
    monkeypatch.setenv("GUNICORN_WORKERS", "2")
    assert ProcessSettings().gunicorn_workers == 2


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GUNICORN_WORKERS", "# workers", "GUNICORN_WORKERS must be an integer (or empty), got '# workers'"),
        ("GUNICORN_TIMEOUT", "1.5", "GUNICORN_TIMEOUT must be an integer (or empty), got '1.5'"),
        ("PORT", "0", "PORT: Input should be greater than or equal to 1, got '0'"),
    ],
)
def test_a_bad_process_setting_stops_with_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        ProcessSettings.from_environment()
    assert str(stopped.value) == f"gunicorn.conf.py: {message}"
