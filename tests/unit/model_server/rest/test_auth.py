"""API keys: with API_KEYS set, every endpoint but health and /metrics needs ``Bearer <key>``."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from ..helpers import INFER, assert_error, sample, v2_input

KEYS = ["first-key-0123456789abcdef", "second-key-ABCDEFGHIJ0123"]
PROTECTED = [
    ("POST", "/predict", {"features": [1, 2, 3, 4]}),
    ("GET", "/v2", None),
    ("GET", "/v2/models/iris-rf", None),
    ("GET", "/v2/models/iris-rf/versions/1", None),
    ("GET", "/v2/models/iris-rf/ready", None),
    ("GET", "/v2/models/iris-rf/versions/1/ready", None),
    ("POST", INFER, {"inputs": [v2_input([1, 2, 3, 4], [4])]}),
    ("POST", "/v2/models/iris-rf/versions/1/infer", {"inputs": [v2_input([1, 2, 3, 4], [4])]}),
    ("GET", "/openapi.json", None),
]
OPEN = ["/v2/health/live", "/v2/health/ready", "/metrics"]


@pytest.fixture
def secured(app_factory) -> FlaskClient:
    return app_factory(api_keys=KEYS).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_missing_key_is_401_with_a_challenge(secured: FlaskClient, method: str, path: str, body) -> None:
    response = secured.open(path, method=method, json=body)

    assert_error(response, 401, "missing API key", "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="model-server"'


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_right_key_is_200(secured: FlaskClient, method: str, path: str, body) -> None:
    for key in KEYS:
        response = secured.open(path, method=method, json=body, headers=bearer(key))
        assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {KEYS[0]}x",
        f"Bearer {KEYS[0][:-1]}",
        f"Bearer {KEYS[0].upper()}",
        f"Bearer {KEYS[0]}{KEYS[1]}",
        "Bearer " + "x" * len(KEYS[0]),
        "Bearer caf\u00e9-key-0123456789ab",
    ],
)
def test_wrong_key_is_401(secured: FlaskClient, authorization: str) -> None:
    response = secured.post("/predict", json={"features": [1, 2, 3, 4]}, headers={"Authorization": authorization})

    assert_error(response, 401, "invalid API key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["", KEYS[0], f"Basic {KEYS[0]}", f"Token {KEYS[0]}", "Bearer", "Bearer ", f"Bearer{KEYS[0]}"],
)
def test_malformed_authorization_is_401(secured: FlaskClient, authorization: str) -> None:
    response = secured.post("/predict", json={"features": [1, 2, 3, 4]}, headers={"Authorization": authorization})

    assert_error(response, 401, "missing API key")


def test_scheme_is_case_insensitive(secured: FlaskClient) -> None:
    response = secured.post("/predict", json={"features": [1, 2, 3, 4]}, headers={"Authorization": f"bearer {KEYS[1]}"})

    assert response.status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_health_and_metrics_stay_open(secured: FlaskClient, path: str) -> None:
    assert secured.get(path).status_code == 200


def test_unknown_paths_need_a_key_too(secured: FlaskClient) -> None:
    # Unauthenticated clients learn nothing about which paths exist.
    assert_error(secured.get("/admin"), 401)
    assert_error(secured.get("/admin", headers=bearer(KEYS[0])), 404)


def test_without_api_keys_nothing_is_asked(client: FlaskClient) -> None:
    for method, path, body in PROTECTED:
        assert client.open(path, method=method, json=body).status_code == 200, path


def test_refusals_are_counted_by_route(secured: FlaskClient) -> None:
    labels = {"route": "/predict", "method": "POST", "status": "401"}
    before = sample("model_server_requests_total", **labels)

    secured.post("/predict", json={"features": [1, 2, 3, 4]})
    secured.post("/predict", json={"features": [1, 2, 3, 4]}, headers=bearer("nope-nope-nope-nope"))

    assert sample("model_server_requests_total", **labels) == before + 2
    assert sample("model_server_requests_in_flight") == 0
