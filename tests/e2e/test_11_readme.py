"""The README followed as written: its walk-through runs, block by block, on a fresh copy of the checkout.

After the end-to-end stack is down, the README's shell blocks marked to run (tests/walkthrough.py)
run in order in one bash session, in a copy of the checkout's files (what ``git clone`` gives,
with uncommitted changes) whose folder name is its own Compose project. They start the stack
(``docker compose up -d --build --wait``), serve a repository of their own, package, publish, send
feedback and walk a rollout through, with the production defaults of ``.env.example``. What differs
from a reader's machine, and nothing else:

* ``localhost:8080`` becomes ``127.0.0.1:<a free port>``, and the stack publishes its ports there
  (``HTTP_PORT``, ``PROMETHEUS_PORT``, ``ALERTMANAGER_PORT``, ``GRAFANA_PORT`` in the environment:
  they beat ``.env``);
* ``docker compose up`` names the services whose image is here, where one is missing (offline,
  Grafana's);
* ``python3`` is the Python the tests run on (the README asks for 3.12 or newer);
* every setting of ``.env.example`` is taken out of the inherited environment, so that the stack
  reads ``.env`` as a reader's does.

The stack is taken down (``down -v``) however the walk ends.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.addresses import free_port
from harness.compose import ComposeProject
from tests.walkthrough import Shell, walk

from .stack import ROOT, run, startable_services

README_PORT = "localhost:8080"
COMPOSE_UP = re.compile(r"^(?P<command>docker compose up\b[^#\n]*?)(?P<comment>\s+#.*)?$", re.MULTILINE)
PORTS = ("HTTP_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT")


def settings_of_env_example() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and not name.startswith("#"):
            names.add(name)
    return names


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The checkout's files (tracked, and new ones not ignored) in a folder named as a Compose project of its own."""
    project = f"{os.environ.get('E2E_PROJECT') or 'e2e-' + secrets.token_hex(3)}-readme"
    folder = tmp_path / project
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as a commit would
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def reader_environment(tmp_path: Path) -> dict[str, str]:
    """This process's environment as a reader's shell has it: no stack settings, no venv, python3 ≥ 3.12."""
    drop = settings_of_env_example() | {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    drop |= {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    python_bin = tmp_path / "python-bin"
    python_bin.mkdir()
    (python_bin / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([str(python_bin), *path])
    return env | {name: str(free_port()) for name in PORTS}


def test_the_readme_walkthrough_gives_what_it_says(checkout: Path, tmp_path: Path) -> None:
    env = reader_environment(tmp_path)
    # What the reader's `docker compose` reads in the checkout: the stack, then the override file.
    files = (checkout / "docker-compose.yml", checkout / "docker-compose.override.yml")
    project = ComposeProject(project=checkout.name, env=env, files=files)
    services, skipped = startable_services(project)
    for service, reason in skipped.items():
        print(f"\n[readme] not started: {service}: {reason}")

    def rewrite(command: str) -> str:
        command = command.replace(README_PORT, f"127.0.0.1:{env['HTTP_PORT']}")
        if skipped:
            command = COMPOSE_UP.sub(lambda m: f"{m['command']} {' '.join(services)}{m['comment'] or ''}", command)
        return command

    shell = Shell(checkout, env, tmp_path / "walkthrough.log")
    try:
        done = walk((checkout / "README.md").read_text(), shell, rewrite)
    finally:
        shell.close()
        project.down()
    print(f"\n[readme] {len(done)} commands run, {sum(c.expected is not None for c in done)} outputs compared")
