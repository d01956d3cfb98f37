"""The nginx configuration renders, parses and starts under the runtime setup compose uses.

nginx runs in its image exactly as compose runs it: uid 101, read-only root filesystem, all
capabilities dropped, tmpfs at /tmp and at the envsubst output dir, nginx/nginx.conf and
nginx/templates/ mounted read-only, and the settings passed as environment variables, so the
image's own entrypoint renders the templates. Behaviour (proxying, retries, rate limits) is
covered by the end-to-end tests.

Needs Docker and the nginx image present locally (never pulled). Without Docker these tests
fail rather than skip; deselect them with `-m "not docker"`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "nginx"
COMPOSE_FILE = REPO / "docker-compose.yml"
DEFAULT_IMAGE = "nginx:1.30.0-alpine"
DOCKER_TIMEOUT = 120  # seconds for one docker command

# The settings compose passes (the defaults documented in nginx/README.md).
ENV = {
    "MODEL_UPSTREAM": "model:8000",
    "NGINX_RATE_LIMIT": "100r/s",
    "NGINX_RATE_BURST": "200",
    "MAX_BODY_BYTES": "1048576",
    "NGINX_PROXY_READ_TIMEOUT": "30s",
    "NGINX_UPSTREAM_ADDR_HEADER": "off",
}

# Must match services.nginx in docker-compose.yml.
RUNTIME_ARGS = [
    "--user=101:101",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges:true",
    "--tmpfs=/tmp:size=64m,mode=1777",
    "--tmpfs=/etc/nginx/conf.d:size=1m,uid=101,gid=101,mode=0755",
    f"--volume={NGINX_DIR / 'nginx.conf'}:/etc/nginx/nginx.conf:ro",
    f"--volume={NGINX_DIR / 'templates'}:/etc/nginx/templates:ro",
    # No network: nothing may need DNS at start-up (the upstream is resolved at run time).
    "--network=none",
    "--pull=never",
]

RENDERED_MARKER = "# configuration file /etc/nginx/conf.d/model-serving.conf:"


def _interpolate(value: str) -> str:
    """Resolve compose's ${VAR}, ${VAR:-default} and ${VAR-default} from the environment."""

    def repl(m: re.Match[str]) -> str:
        name, sep, default = m.group(1), m.group(2), m.group(3) or ""
        current = os.environ.get(name)
        if sep == ":-" and not current:
            return default
        if sep == "-" and current is None:
            return default
        return current or ""

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", repl, value)


def nginx_image() -> str:
    """services.nginx.image from docker-compose.yml, or the default without PyYAML/entry."""
    try:
        import yaml
    except ImportError:
        return DEFAULT_IMAGE
    try:
        compose = yaml.safe_load(COMPOSE_FILE.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return DEFAULT_IMAGE
    image = ((compose.get("services") or {}).get("nginx") or {}).get("image")
    return _interpolate(image) if isinstance(image, str) and image else DEFAULT_IMAGE


def docker(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = ["docker", *args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=DOCKER_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {DOCKER_TIMEOUT}s: {' '.join(cmd)}\n{exc.output or ''}")
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{output(result)}")
    return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def env_args(env: dict[str, str]) -> list[str]:
    return [f"--env={k}={v}" for k, v in env.items()]


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        pytest.fail("docker CLI not found: these tests need Docker (deselect: -m 'not docker')")
    info = docker("info", "--format", "{{.ServerVersion}}")
    if info.returncode != 0:
        pytest.fail(f"Docker daemon not reachable:\n{output(info)}")
    ref = nginx_image()
    if docker("image", "inspect", ref).returncode != 0:
        pytest.fail(f"image {ref} is not present locally (these tests never pull it)")
    return ref


def run_nginx_t(image: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nginx -T` through the image's entrypoint: render the templates, test, dump config."""
    return docker("run", "--rm", *RUNTIME_ARGS, *env_args(env), image, "nginx", "-T")


@pytest.mark.parametrize("upstream", ["model:8000", "tasks.model:8000"])
def test_config_renders_and_parses(image: str, upstream: str) -> None:
    result = run_nginx_t(image, {**ENV, "MODEL_UPSTREAM": upstream})
    text = result.stdout + result.stderr
    assert result.returncode == 0, f"nginx -T failed:\n{output(result)}"
    assert "test is successful" in text, output(result)
    assert "[warn]" not in result.stderr and "[alert]" not in result.stderr, output(result)

    assert RENDERED_MARKER in result.stdout, f"template was not rendered:\n{output(result)}"
    dumped = result.stdout.split(RENDERED_MARKER, 1)[1]
    rendered = "\n".join(line.split("#", 1)[0] for line in dumped.splitlines())  # sans comments
    # Our variables were substituted ...
    assert "${" not in rendered, rendered
    assert f"server {upstream} resolve " in rendered
    assert "rate=100r/s;" in rendered
    assert "burst=200 " in rendered
    assert "client_max_body_size 1048576;" in rendered
    assert "proxy_read_timeout 30s;" in rendered
    # ... and nginx's own variables were left alone.
    for var in ("$binary_remote_addr", "$req_id", "$upstream_addr", "$error_message"):
        assert var in rendered, f"{var} missing from rendered config"


def test_missing_variable_fails_closed(image: str) -> None:
    env = {k: v for k, v in ENV.items() if k != "NGINX_RATE_LIMIT"}
    result = run_nginx_t(image, env)
    assert result.returncode != 0, f"nginx accepted an unset variable:\n{output(result)}"
    assert "NGINX_RATE_LIMIT" in result.stdout + result.stderr, output(result)


def test_starts_and_answers_on_internal_listener(image: str) -> None:
    """Beyond parsing: pid file, temp dirs and logs work as uid 101 on a read-only root."""
    name = f"nginx-config-test-{uuid.uuid4().hex[:12]}"
    docker("run", "--detach", f"--name={name}", *RUNTIME_ARGS, *env_args(ENV), image, check=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            health = docker("exec", name, "wget", "-q", "-O", "-", "http://127.0.0.1:8081/healthz")
            if health.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        logs = docker("logs", name)
        assert health.returncode == 0, f"healthz failed:\n{output(health)}\n{output(logs)}"
        assert '"ok"' in health.stdout

        status = docker("exec", name, "wget", "-q", "-O", "-", "http://127.0.0.1:8081/stub_status")
        assert status.returncode == 0 and "Active connections" in status.stdout, output(status)

        logs = docker("logs", name)
        for level in ("[emerg]", "[alert]", "[crit]"):
            assert level not in logs.stderr, output(logs)
    finally:
        docker("rm", "--force", "--volumes", name)
