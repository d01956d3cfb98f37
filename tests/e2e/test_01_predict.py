"""The tutorial's request, through nginx, exactly as the tutorial sends it."""

import json
import re
import secrets

import requests

from harness.load import answering_replica

from .stack import Stack, run, wait_for


def test_tutorial_curl_through_nginx(stack: Stack) -> None:
    response = requests.post(
        f"{stack.nginx_url}/predict",
        data='{"features": [1, 2, 3, 4]}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"prediction": [2]}  # the tutorial's answer for its row
    assert response.headers["Content-Type"].startswith("application/json")


def test_request_id_created_by_nginx_and_echoed(stack: Stack) -> None:
    response = requests.post(f"{stack.nginx_url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, timeout=10)
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert "," not in response.headers["X-Request-ID"], "the request id must be sent once"
    mine = "trace-42.abc"
    response = requests.post(
        f"{stack.nginx_url}/predict",
        json={"features": [5.1, 3.5, 1.4, 0.2]},
        headers={"X-Request-ID": mine},
        timeout=10,
    )
    assert response.headers["X-Request-ID"] == mine


def test_replica_header_names_a_replica(stack: Stack) -> None:
    response = requests.post(f"{stack.nginx_url}/predict", json={"features": [6.3, 3.3, 6.0, 2.5]}, timeout=10)
    assert response.json() == {"prediction": [2]}
    upstream = answering_replica(response.headers["X-Upstream-Addr"])
    assert upstream in stack.replica_ips()


def test_nginx_logs_each_request_as_json_with_its_request_id(stack: Stack) -> None:
    # nginx buffers its access log (64 KiB or 1 s): the line must still arrive within seconds.
    request_id = f"e2e-log-{secrets.token_hex(8)}"
    row, headers = {"features": [5.9, 3.0, 5.1, 1.8]}, {"X-Request-ID": request_id}
    response = requests.post(f"{stack.nginx_url}/predict", json=row, headers=headers, timeout=10)
    assert response.status_code == 200

    [nginx] = stack.container_ids("nginx")

    def logged() -> dict | None:
        for line in run(["docker", "logs", nginx], timeout=60).splitlines():  # the access log is stdout
            if request_id in line:
                return json.loads(line)
        return None

    entry = wait_for("nginx's access log line", logged, timeout=15)
    assert entry["request_id"] == request_id
    assert entry["method"] == "POST" and entry["uri"] == "/predict" and entry["status"] == 200
    assert answering_replica(entry["upstream_addr"]) in stack.replica_ips()
