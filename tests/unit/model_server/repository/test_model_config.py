"""model_server.repository.model_config: a model's config.json, its version policy, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_server.repository.model_config import (
    AllVersions,
    ModelConfig,
    ModelConfigError,
    VersionPolicy,
    read_model_config,
)
from pydantic import ValidationError


def config_file(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "iris" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ModelConfigError) as raised:
        read_model_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message[len(str(path)) :]


def test_no_config_is_latest_one(tmp_path: Path) -> None:
    assert read_model_config(None) == ModelConfig(version_policy=VersionPolicy(latest=1))
    assert read_model_config(tmp_path / "config.json") == ModelConfig()  # removed since the scan


def test_an_empty_object_is_the_default(tmp_path: Path) -> None:
    assert read_model_config(config_file(tmp_path, {})) == ModelConfig()


@pytest.mark.parametrize(
    ("policy", "kind", "expected"),
    [
        ({"latest": 1}, "latest", VersionPolicy(latest=1)),
        ({"latest": 3}, "latest", VersionPolicy(latest=3)),
        ({"specific": [2]}, "specific", VersionPolicy(specific=(2,))),
        ({"specific": [3, 1]}, "specific", VersionPolicy(specific=(1, 3))),
        ({"specific": [1, 3, 1]}, "specific", VersionPolicy(specific=(1, 3))),
        ({"all": {}}, "all", VersionPolicy(all=AllVersions())),
    ],
)
def test_valid_policies(tmp_path: Path, policy: dict, kind: str, expected: VersionPolicy) -> None:
    config = read_model_config(config_file(tmp_path, {"version_policy": policy}))

    assert config.version_policy == expected
    assert config.version_policy.kind == kind


def test_specific_versions_are_kept_ascending_and_unique(tmp_path: Path) -> None:
    config = read_model_config(config_file(tmp_path, {"version_policy": {"specific": [7, 2, 7, 5]}}))

    assert config.version_policy.specific == (2, 5, 7)


def test_a_config_is_frozen_and_hashable() -> None:
    config = ModelConfig(version_policy=VersionPolicy(specific=(1, 3)))

    with pytest.raises(ValidationError):
        config.version_policy = VersionPolicy(latest=2)  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.version_policy.latest = 2  # type: ignore[misc]
    assert hash(config) == hash(ModelConfig(version_policy=VersionPolicy(specific=(3, 1))))


def test_a_policy_built_in_code_is_validated_too() -> None:
    with pytest.raises(ValidationError, match="set exactly one of latest, specific, all"):
        VersionPolicy()
    with pytest.raises(ValidationError, match="greater than 0"):
        VersionPolicy(latest=0)


@pytest.mark.parametrize(
    ("policy", "field", "fragment"),
    [
        ({"latest": 0}, "version_policy.latest", "greater than 0"),
        ({"latest": -2}, "version_policy.latest", "greater than 0"),
        ({"latest": "2"}, "version_policy.latest", "valid integer"),
        ({"latest": 2.0}, "version_policy.latest", "valid integer"),
        ({"latest": 1.5}, "version_policy.latest", "valid integer"),
        ({"latest": True}, "version_policy.latest", "valid integer"),
        ({"latest": [2]}, "version_policy.latest", "valid integer"),
        ({"specific": []}, "version_policy.specific", "at least 1 item"),
        ({"specific": [1, 0]}, "version_policy.specific[1]", "greater than 0"),
        ({"specific": [1, -3]}, "version_policy.specific[1]", "greater than 0"),
        ({"specific": ["1"]}, "version_policy.specific[0]", "valid integer"),
        ({"specific": 1}, "version_policy.specific", "valid array"),
        ({"all": {"versions": 2}}, "version_policy.all.versions", "unknown key"),
        ({"all": True}, "version_policy.all", "object"),
        ({"all": []}, "version_policy.all", "object"),
        ({"lates": 1}, "version_policy.lates", "unknown key"),
        ({"latest": 1, "num_versions": 2}, "version_policy.num_versions", "unknown key"),
        ({}, "version_policy", "set exactly one of latest, specific, all"),
        ({"latest": None}, "version_policy", "set exactly one of latest, specific, all"),
        ({"latest": 1, "all": {}}, "version_policy", "(got latest, all)"),
        ({"latest": 1, "specific": [1], "all": {}}, "version_policy", "(got latest, specific, all)"),
    ],
)
def test_invalid_policies_name_the_file_and_the_field(tmp_path: Path, policy: dict, field: str, fragment: str) -> None:
    message = refusal(config_file(tmp_path, {"version_policy": policy}))

    assert message.startswith(f": {field}: ")
    assert fragment in message


@pytest.mark.parametrize("policy", [None, 1, "latest", [{"latest": 1}]])
def test_a_policy_must_be_an_object(tmp_path: Path, policy: object) -> None:
    assert refusal(config_file(tmp_path, {"version_policy": policy})).startswith(": version_policy: ")


def test_unknown_top_level_keys_are_refused(tmp_path: Path) -> None:
    """A typo must not silently fall back to the default policy."""
    assert refusal(config_file(tmp_path, {"version_polcy": {"latest": 2}})) == ": version_polcy: unknown key"


def test_more_errors_are_counted(tmp_path: Path) -> None:
    message = refusal(config_file(tmp_path, {"version_policy": {"latest": 1}, "trafic": 1, "shaddow": 2}))

    assert message == ": trafic: unknown key (and 1 more error)"  # in the order of the file


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{", " is not valid JSON: EOF while parsing an object at line 1 column 1"),
        ("", " is not valid JSON: EOF while parsing a value at line 1 column 0"),
        ('{"version_policy": {"latest": 1},}', " is not valid JSON: trailing comma at line 1 column 34"),
        ("[]", " must hold a JSON object"),
        ("3", " must hold a JSON object"),
        ("null", " must hold a JSON object"),
    ],
)
def test_a_file_that_is_not_a_json_object(tmp_path: Path, content: str, reason: str) -> None:
    assert refusal(config_file(tmp_path, content)) == reason


def test_invalid_utf8_is_refused(tmp_path: Path) -> None:
    path = config_file(tmp_path, "")
    path.write_bytes(b'{"version_policy": {"latest": "\xff"}}')

    assert " is not valid JSON: " in refusal(path)


def test_a_directory_named_config_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.mkdir()

    assert refusal(path) == " is a directory, not a regular file"


def test_a_broken_symlink_is_not_taken_for_no_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.symlink_to(tmp_path / "gone.json")

    assert refusal(path) == " is a broken symlink"
