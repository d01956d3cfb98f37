"""Every default is stated once, and every copy of it agrees.

The model server's settings have their defaults in services/model-server/src/model_server/
config.py (``Settings``, ``ProcessSettings``); the stack's other settings (nginx, Prometheus,
Grafana, ports, replica limits) in the compose files' ``${NAME:-default}``. The copies a
user reads — docker-compose.yml for the server's settings, .env.example, the README's
configuration table — are checked here against that one source, so a changed default cannot
leave a stale copy, and a setting cannot be added to one place only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from model_server.config import ProcessSettings, Settings
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}")
# README rows whose default is a sentence rather than a value: what the sentence stands for.
DESCRIBED = {
    "COMPOSE_PROJECT_NAME": None,  # the folder's name (compose's own default)
    "GUNICORN_WORKERS": "0",  # one per CPU
    "API_KEYS_FILE": None,  # unset
    "GUNICORN_WORKER_TMP_DIR": None,  # /dev/shm where it exists
}
MODELS: tuple[type[BaseSettings], ...] = (Settings, ProcessSettings)


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """Environment variable -> field name, for every field a settings model reads."""
    return {name.upper(): name for name, field in model.model_fields.items() if not field.exclude}


def model_default(variable: str) -> tuple[type[BaseSettings], str] | None:
    for model in MODELS:
        if variable in env_names(model):
            return model, env_names(model)[variable]
    return None


def same_setting(model: type[BaseSettings], field: str, value: str) -> bool:
    """Whether ``value``, set as the variable, gives the field its default."""
    if value == "":
        return True  # an empty variable means the default (ProcessSettings) or the empty default
    parsed: Any = model.model_validate({field: value})
    return getattr(parsed, field) == getattr(model(), field)


def swarm_defaults() -> dict[str, str]:
    """The variables only the Swarm files read, with their defaults (those Compose reads too may differ on purpose)."""
    found: dict[str, str] = {}
    for path in sorted(ROOT.glob("docker-compose.swarm*.yml")):
        found.update(COMPOSE_DEFAULT.findall(path.read_text()))
    return found


def compose_defaults() -> dict[str, str]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "docker-compose.yml", ROOT / "docker-compose.override.yml"):  # Swarm's files differ on purpose
        for name, default in COMPOSE_DEFAULT.findall(path.read_text()):
            found.setdefault(name, set()).add(default)
    different = {name: values for name, values in found.items() if len(values) > 1}
    assert not different, f"the compose files give one variable different defaults: {different}"
    return {name: values.pop() for name, values in found.items()}


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.match(r"([A-Z][A-Z0-9_]*)=(\S*)", line):
            values[match.group(1)] = match.group(2)
    return values


def readme_table() -> dict[str, str | None]:
    """The configuration table: variable -> its default as written (None for a sentence)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str | None] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        values = re.findall(r"`([^`]*)`", cells[1])
        if cells[1].startswith("empty"):
            values = [""] * len(names)
        for i, name in enumerate(names):
            rows[name] = values[i] if len(values) == len(names) else None
    return rows


README = readme_table()
COMPOSE = compose_defaults()
ENV_EXAMPLE = env_example()
SWARM = {name: default for name, default in swarm_defaults().items() if name not in COMPOSE}


def test_the_readme_table_lists_every_setting() -> None:
    server = {name for model in MODELS for name in env_names(model)}
    assert not (set(COMPOSE) - set(README)), f"compose variables missing from the README: {set(COMPOSE) - set(README)}"
    assert not (set(ENV_EXAMPLE) - set(README)), (
        f".env.example variables not in the README: {set(ENV_EXAMPLE) - set(README)}"
    )
    assert not (server - set(README)), f"server settings missing from the README table: {server - set(README)}"
    swarm = set(SWARM) - set(README)
    assert not swarm, f"Swarm file variables missing from the README table: {swarm}"
    unread = set(README) - server - set(COMPOSE) - set(SWARM) - {"COMPOSE_PROJECT_NAME"}  # compose reads it
    assert not unread, f"README table rows that nothing reads: {unread}"


@pytest.mark.parametrize("variable", sorted(README))
def test_every_copy_of_a_default_agrees_with_its_source(variable: str) -> None:
    copies = {"README": DESCRIBED[variable] if variable in DESCRIBED else README[variable] or "?"}
    if README[variable] == "":
        copies["README"] = ""
    if variable in COMPOSE:
        copies["docker-compose.yml"] = COMPOSE[variable]
    if variable in ENV_EXAMPLE:
        copies[".env.example"] = ENV_EXAMPLE[variable]
    assert copies["README"] != "?", f"{variable}: the README states no value; add it to DESCRIBED if it is a sentence"
    source = model_default(variable)
    if source is not None:  # the server's setting: config.py is the source
        model, field = source
        for where, value in copies.items():
            if value is not None:
                assert same_setting(model, field, value), f"{variable}: {where} says {value!r}, config.py another"
    elif variable in COMPOSE:  # the stack's setting: the compose files are the source
        for where, value in copies.items():
            # `${NAME:-default}` gives an empty variable the default: .env.example may leave it empty
            accepted = (None, COMPOSE[variable], *([""] if where == ".env.example" else []))
            assert value in accepted, f"{variable}: {where} says {value!r}, compose {COMPOSE[variable]!r}"
    elif variable in SWARM:  # read by the Swarm files only: they are the source
        for where, value in copies.items():
            assert value in (None, SWARM[variable]), (
                f"{variable}: {where} says {value!r}, the Swarm file {SWARM[variable]!r}"
            )
    else:
        assert variable in DESCRIBED, f"{variable}: no default in the compose files"


def test_a_changed_default_would_be_caught() -> None:
    """The check itself: a stale copy of a server default fails it."""
    assert same_setting(Settings, "batch_max_rows", "256")
    assert not same_setting(Settings, "batch_max_rows", "255")
    assert not same_setting(ProcessSettings, "gunicorn_timeout", "31")
