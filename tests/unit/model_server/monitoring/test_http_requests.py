"""Request ids and the JSON access log (ACCESS_LOG=true; off by default: nginx logs every request)."""

from __future__ import annotations

import io
import json
import logging
import random
import re
import string
import sys

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pythonjsonlogger.json import JsonFormatter

from ..helpers import json_logs, sample

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app(app_factory) -> Flask:
    return app_factory(access_log=True)


def test_access_log_is_off_by_default(app_factory) -> None:
    client = app_factory().test_client()
    with json_logs() as lines:
        response = client.post("/predict", json={"features": [1, 2, 3, 4]})
    assert response.status_code == 200
    assert lines() == []


@pytest.mark.parametrize(
    "incoming",
    ["abc", "0123456789abcdef0123456789abcdef", "req-1:2.3_4", "A" * 128, "f47ac10b-58cc-4372-a567-0e02b2c3d479"],
)
def test_well_formed_request_id_is_echoed(client: FlaskClient, incoming: str) -> None:
    response = client.post("/predict", json={"features": [1, 2, 3, 4]}, headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["", " ", "has space", "A" * 129, "semi;colon", "new\tline", "<script>", "caf\u00e9", "a/b", "a,b"],
)
def test_malformed_request_id_is_replaced(client: FlaskClient, incoming: str) -> None:
    response = client.get("/v2/health/live", headers={"X-Request-ID": incoming})

    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != incoming


def test_absent_request_id_is_generated_and_unique(client: FlaskClient) -> None:
    ids = {client.get("/v2").headers["X-Request-ID"] for _ in range(20)}

    assert len(ids) == 20
    assert all(HEX32.fullmatch(i) for i in ids)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("GET", "/predict"), ("POST", "/predict"), ("GET", "/metrics")]
)
def test_errors_and_every_endpoint_carry_the_request_id(client: FlaskClient, method: str, path: str) -> None:
    assert client.open(path, method=method, headers={"X-Request-ID": "r-1"}).headers["X-Request-ID"] == "r-1"


def test_access_log_line(client: FlaskClient, log_lines) -> None:
    client.post(
        "/predict", json={"features": [1, 2, 3, 4]}, headers={"X-Request-ID": "trace-7", "X-Real-IP": "203.0.113.9"}
    )

    [line] = log_lines()
    assert line["logger"] == "model_server.access"
    assert line["level"] == "INFO"
    assert line["message"] == "request"
    assert line["request_id"] == "trace-7"
    assert line["method"] == "POST"
    assert line["path"] == "/predict"
    assert line["route"] == "/predict"
    assert line["status"] == 200
    assert line["remote_addr"] == "203.0.113.9"
    assert line["bytes_in"] == len(b'{"features": [1, 2, 3, 4]}')
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert "time" in line


def test_access_log_of_a_generated_id_matches_the_response(client: FlaskClient, log_lines) -> None:
    response = client.get("/v2/models/nope")

    [line] = log_lines()
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["status"] == 404
    assert line["route"] == "/v2/models/<name>"
    assert line["path"] == "/v2/models/nope"


def test_access_log_of_an_unmatched_path(client: FlaskClient, log_lines) -> None:
    client.get("/some/where", headers={"X-Request-ID": "u-1"})

    [line] = log_lines()
    assert (line["route"], line["path"], line["status"], line["request_id"]) == (
        "<unmatched>",
        "/some/where",
        404,
        "u-1",
    )
    assert line["remote_addr"] == "127.0.0.1"


def test_probes_and_scrapes_are_logged_at_debug_only(app_factory) -> None:
    quiet = ["/metrics", "/v2/health/live", "/v2/health/ready"]

    info_client = app_factory(log_level="info", access_log=True).test_client()
    with json_logs() as lines:
        for path in quiet:
            info_client.get(path)
        info_client.get("/v2")
    assert [line["path"] for line in lines()] == ["/v2"]

    debug_client = app_factory(log_level="debug", access_log=True).test_client()
    with json_logs() as lines:
        for path in quiet:
            debug_client.get(path)
    assert [(line["path"], line["level"]) for line in lines() if line["logger"] == "model_server.access"] == [
        (path, "DEBUG") for path in quiet
    ]


def test_log_level_warning_silences_the_access_log(app_factory) -> None:
    client = app_factory(log_level="warning", access_log=True).test_client()

    with json_logs() as lines:
        client.post("/predict", json={"features": [1, 2, 3, 4]})

    assert lines() == []


def test_start_up_line_names_the_model(app_factory, metadata, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", buffer)  # the handler create_app installs writes to sys.stderr
        app_factory(log_level="info", api_keys=["k" * 20, "j" * 20])
    # From here on the handler writes to pytest's stderr again, not to the buffer.
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    handler.setStream(sys.stderr)

    loaded, ready = [json.loads(text) for text in buffer.getvalue().splitlines()]
    # One line per version loaded: name and version from the repository's folders.
    assert (loaded["message"], loaded["logger"]) == ("model version ready", "model_server.serving.repository_poller")
    assert (loaded["model"], loaded["version"], loaded["sha256"]) == ("iris-rf", "1", metadata["sha256"])
    assert (loaded["estimator"], loaded["runtime"]) == ("RandomForestClassifier", "treelite")
    # Then one for the server: what it serves, and how it is configured.
    assert (ready["message"], ready["logger"]) == ("model server ready", "model_server.app")
    assert (ready["models"], ready["poll_seconds"], ready["api_keys"]) == ({"iris-rf": [1]}, 0, 2)
    for line in (loaded, ready):
        assert "request_id" not in line, "outside a request there is no request id"
    assert "k" * 20 not in buffer.getvalue(), "keys are counted, never logged"


def series_count(client: FlaskClient) -> int:
    """Sample lines of the model server's own families in the /metrics exposition."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(1 for line in text.splitlines() if line.startswith("model_server_"))


def test_request_data_cannot_create_metric_series(app_factory) -> None:
    # Methods and paths are the client's to choose: each one, if it became a label value, would
    # be a new series in every replica's metrics, without bound.
    client = app_factory().test_client()
    rng = random.Random(2024)

    def token() -> str:
        return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))

    def path() -> str:
        shapes = ["/{}", "/{}/{}", "/v2/models/{}", "/v2/models/{}/versions/{}/infer", "/predict/{}"]
        return rng.choice(shapes).format(token().lower(), token())

    def others() -> float:
        return sum(
            sample("model_server_requests_total", route="<unmatched>", method="other", status=status)
            for status in ("404", "405")
        )

    for method in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "WARMUP"):
        for target in ("/nope", "/v2/models/x", "/predict", "/v2/models/iris-rf/versions/1/infer"):
            client.open(target, method=method)
    before = series_count(client)
    others_before = others()

    for _ in range(200):
        assert client.open(path(), method=token()).status_code in (404, 405)

    assert series_count(client) == before
    assert others() - others_before == 200, "every invented method is counted, as 'other'"
