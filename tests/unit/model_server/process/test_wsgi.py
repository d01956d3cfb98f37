"""``model_server.process.wsgi``: a model or a configuration that cannot be served ends the process with
exit code 3 and one JSON log line giving the reason, never a traceback.

Each case imports the module in a fresh interpreter, as gunicorn does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import SETTINGS_ENV

EXIT_CANNOT_SERVE = 3


def import_wsgi(code: str = "import model_server.process.wsgi", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in {*SETTINGS_ENV, "PROMETHEUS_MULTIPROC_DIR"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> dict:
    """Exit code 3, no traceback, every line JSON; the last one (CRITICAL) names the reason.

    Lines before it are what the repository pass logged on the way (a version refused).
    """
    assert result.returncode == EXIT_CANNOT_SERVE, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    record = records[-1]
    assert record["level"] == "CRITICAL"
    assert record["logger"] == "model_server"
    assert all(r["level"] != "CRITICAL" for r in records[:-1])
    for fragment in fragments:
        assert fragment in record["message"], record["message"]
    return record


def repository_with(model_dir: Path, root: Path) -> Path:
    """A repository at ``root`` whose iris-rf version 1 is a copy of ``model_dir``."""
    shutil.copytree(model_dir, root / "iris-rf" / "1")
    return root


def test_missing_repository(tmp_path: Path) -> None:
    result = import_wsgi(MODEL_REPOSITORY=str(tmp_path / "absent"), MODEL_POLL_SECONDS="0")

    assert_refused(result, "cannot serve the model:", "does not exist")


def test_empty_repository(tmp_path: Path) -> None:
    result = import_wsgi(MODEL_REPOSITORY=str(tmp_path), MODEL_POLL_SECONDS="0")

    assert_refused(result, "cannot serve the model:", f"no servable model in {tmp_path}")


def test_corrupt_model(tmp_path: Path) -> None:
    version = tmp_path / "iris-rf" / "1"
    version.mkdir(parents=True)
    (version / "model.skops").write_bytes(b"garbage")
    (version / "metadata.json").write_text("{}")

    record = assert_refused(import_wsgi(MODEL_REPOSITORY=str(tmp_path), MODEL_POLL_SECONDS="0"), "iris-rf version 1")
    assert "not a readable skops file" in record["message"]


def test_corrupt_model_with_polling_starts_not_ready(tmp_path: Path) -> None:
    # Polled, the repository may still receive a good version: the server starts, not ready.
    version = tmp_path / "iris-rf" / "1"
    version.mkdir(parents=True)
    (version / "model.skops").write_bytes(b"garbage")
    code = (
        "import model_server.process.wsgi as w; c = w.app.test_client(); "
        "print(c.get('/v2/health/ready').status_code, c.post('/v2/repository/index').get_json()[0]['state'])"
    )

    result = import_wsgi(code, MODEL_REPOSITORY=str(tmp_path), MODEL_POLL_SECONDS="5")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["503", "UNAVAILABLE"]
    refused = [json.loads(line) for line in result.stderr.splitlines() if "model version refused" in line]
    assert [(r["model"], r["version"]) for r in refused] == [("iris-rf", "1")]


def test_metadata_of_the_wrong_shape(model_dir: Path, tmp_path: Path) -> None:
    repository = repository_with(model_dir, tmp_path)
    metadata_path = repository / "iris-rf" / "1" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps({**metadata, "class_names": 3}))

    assert_refused(
        import_wsgi(MODEL_REPOSITORY=str(repository), MODEL_POLL_SECONDS="0"), "'class_names' must be an array"
    )


def test_model_dir_is_an_invalid_configuration(model_dir: Path) -> None:
    assert_refused(import_wsgi(MODEL_DIR=str(model_dir)), "invalid configuration:", "MODEL_DIR:", "MODEL_REPOSITORY")


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"API_KEYS": "short"}, ["invalid configuration:", "API_KEYS:", "at least 16 characters"]),
        ({"MODEL_SHA256": "xyz"}, ["invalid configuration:", "MODEL_SHA256:"]),
        ({"MAX_BATCH_ROWS": "0", "LOG_LEVEL": "loud"}, ["MAX_BATCH_ROWS:", "LOG_LEVEL:"]),
    ],
)
def test_invalid_configuration(repository: Path, env: dict[str, str], fragments: list[str]) -> None:
    assert_refused(import_wsgi(MODEL_REPOSITORY=str(repository), **env), *fragments)


def test_a_servable_model_gives_an_app(repository: Path) -> None:
    code = (
        "import flask, model_server.process.wsgi as w; print(isinstance(w.app, flask.Flask), sorted(w.app.blueprints))"
    )

    result = import_wsgi(code, MODEL_REPOSITORY=str(repository), MODEL_POLL_SECONDS="0", LOG_LEVEL="warning")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == [
        "True",
        "['feedback', 'invocations', 'openapi', 'predict', 'prometheus', 'repository', 'v2']\n",
    ]
