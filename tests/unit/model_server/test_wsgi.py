"""``model_server.wsgi``: a model or a configuration that cannot be served ends the process with
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

from .helpers import SETTINGS_ENV

EXIT_CANNOT_SERVE = 3


def import_wsgi(code: str = "import model_server.wsgi", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in {*SETTINGS_ENV, "PROMETHEUS_MULTIPROC_DIR"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> dict:
    assert result.returncode == EXIT_CANNOT_SERVE, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["level"] == "CRITICAL"
    assert record["logger"] == "model_server"
    for fragment in fragments:
        assert fragment in record["message"], record["message"]
    return record


def test_missing_model_directory(tmp_path: Path) -> None:
    result = import_wsgi(MODEL_DIR=str(tmp_path / "absent"))

    assert_refused(result, "cannot serve the model:", "does not exist")


def test_corrupt_model(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"garbage")

    assert_refused(import_wsgi(MODEL_DIR=str(tmp_path)), "not a readable skops file")


def test_metadata_of_the_wrong_shape(model_dir: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(model_dir, tmp_path / "model"))
    metadata = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**metadata, "class_names": 3}))

    assert_refused(import_wsgi(MODEL_DIR=str(model)), "'class_names' must be an array")


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"API_KEYS": "short"}, ["invalid configuration:", "API_KEYS:", "at least 16 characters"]),
        ({"MODEL_SHA256": "xyz"}, ["invalid configuration:", "MODEL_SHA256:"]),
        ({"MAX_BATCH_ROWS": "0", "LOG_LEVEL": "loud"}, ["MAX_BATCH_ROWS:", "LOG_LEVEL:"]),
    ],
)
def test_invalid_configuration(model_dir: Path, env: dict[str, str], fragments: list[str]) -> None:
    assert_refused(import_wsgi(MODEL_DIR=str(model_dir), **env), *fragments)


def test_a_servable_model_gives_an_app(model_dir: Path) -> None:
    code = "import model_server.wsgi as w; print(type(w.app).__name__, sorted(w.app.blueprints))"

    result = import_wsgi(code, MODEL_DIR=str(model_dir), LOG_LEVEL="warning")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == ["Flask", "['openapi', 'predict', 'prometheus', 'v2']\n"]
