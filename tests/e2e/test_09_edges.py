"""Hostile and mistaken requests through the public port: clear JSON errors, never a 500."""

import secrets

import pytest
import requests

from harness.load import send_load

from .stack import Stack


def assert_json_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert isinstance(response.json()["error"], str)


def test_malformed_json_is_400(stack: Stack) -> None:
    response = requests.post(f"{stack.nginx_url}/predict", data="{not json", timeout=10)
    assert_json_error(response, 400)


def test_wrong_feature_count_is_422(stack: Stack) -> None:
    response = requests.post(f"{stack.nginx_url}/predict", json={"features": [1, 2, 3]}, timeout=10)
    assert_json_error(response, 422)
    assert "expected 4 features" in response.json()["error"]


def test_oversized_body_is_413(stack: Stack) -> None:
    limit = int(stack.env["MAX_BODY_BYTES"])
    body = b'{"features": [' + b"1.0, " * (limit // 5 + 10) + b"1.0]}"
    response = requests.post(f"{stack.nginx_url}/predict", data=body, timeout=30)
    assert_json_error(response, 413)


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics?format=x", "//metrics", "/%6Detrics"])
def test_replica_metrics_not_public(stack: Stack, path: str) -> None:
    response = requests.get(f"{stack.nginx_url}{path}", timeout=10)
    assert response.status_code in (403, 404)
    assert "model_server_" not in response.text


def test_burst_over_rate_limit_gets_429(stack: Stack) -> None:
    strict = {"NGINX_RATE_LIMIT": "5r/s", "NGINX_RATE_BURST": "5"}
    stack.up("--no-deps", services=["nginx"], env=strict)
    try:
        result = send_load(f"{stack.nginx_url}/predict", 60, concurrency=6)
        assert result.statuses[429] > 0, result.statuses
        assert result.statuses[200] > 0, result.statuses
        assert set(result.statuses) <= {200, 429}, result.statuses
        response = requests.post(f"{stack.nginx_url}/predict", json={"features": [1, 2, 3, 4]}, timeout=10)
        if response.status_code == 429:
            assert_json_error(response, 429)
    finally:
        stack.up("--no-deps", services=["nginx"])


def test_replica_addresses_not_told_to_clients_by_default(stack: Stack) -> None:
    # The test stack opts in (NGINX_UPSTREAM_ADDR_HEADER=on); nginx with the default must not.
    url, body = f"{stack.nginx_url}/predict", {"features": [1, 2, 3, 4]}
    assert "X-Upstream-Addr" in requests.post(url, json=body, timeout=10).headers
    stack.up("--no-deps", services=["nginx"], env={"NGINX_UPSTREAM_ADDR_HEADER": "off"})
    try:
        answered, not_found = requests.post(url, json=body, timeout=10), requests.get(f"{url}/nope", timeout=10)
        for response in (answered, not_found):
            assert response.status_code in (200, 404), response.text
            assert "X-Upstream-Addr" not in response.headers, response.headers
            assert not any(ip in str(response.headers) for ip in stack.replica_ips()), response.headers
    finally:
        stack.up("--no-deps", services=["nginx"])


def test_api_keys_enforced_when_configured(stack: Stack) -> None:
    key = secrets.token_urlsafe(32)
    stack.up("--no-deps", services=["model"], env={"API_KEYS": key})
    try:
        url = f"{stack.nginx_url}/predict"
        body = {"features": [1, 2, 3, 4]}
        assert_json_error(requests.post(url, json=body, timeout=10), 401)
        wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
        assert_json_error(requests.post(url, json=body, headers=wrong, timeout=10), 401)
        right = requests.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert right.status_code == 200, right.text
        assert requests.get(f"{stack.nginx_url}/v2/health/ready", timeout=10).status_code == 200
    finally:
        stack.up("--no-deps", services=["model"])
