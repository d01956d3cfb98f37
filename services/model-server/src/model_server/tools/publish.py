"""Publishing a new version into a model repository atomically.

:func:`publish` creates ``<repository>/<name>/<version>/`` by writing everything into a hidden
``.<version>.tmp-<random>`` folder beside the versions (a repository scan ignores hidden
entries), fsync'ing the files and the folder, then renaming it to ``<version>`` and fsync'ing the
model folder, so that the rename survives a crash too. A server polling the repository therefore
sees no version or a complete one, never a half-written one.

An existing version is never replaced: versions are immutable (publish a new number). The check
runs before writing and again just before the rename, which leaves only a tiny window to two
publishers of the same number at once. The temp folder is removed on any failure (and the model
folder too, when this call created it and it is still empty). Names follow the repository's
rules (model_server.repository.layout), so nothing published is skipped by a scan.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from ..repository.errors import one_line
from ..repository.layout import is_model_name, is_version

T = TypeVar("T")


class PublishError(Exception):
    """The version cannot be published; the message is a one-line reason."""


def new_version_dir(repository: Path, name: str, version: str) -> Path:
    """``<repository>/<name>/<version>``, after checking both names and that the version does not exist."""
    if not is_model_name(name):
        raise PublishError(f"model name {name!r} is invalid: a letter or digit, then up to 63 of [A-Za-z0-9._-]")
    if not is_version(version):
        raise PublishError(f"version {version!r} is invalid: a positive integer without leading zeros")
    path = repository / name / version
    if os.path.lexists(path):
        raise PublishError(f"{path} already exists; versions are immutable, publish a new version number")
    return path


def publish(repository: Path, name: str, version: str, write: Callable[[Path], T]) -> tuple[Path, T]:
    """Create ``<repository>/<name>/<version>`` atomically from ``write(temp folder)``; return it and write's result."""
    final = new_version_dir(repository, name, version)
    model_dir = final.parent
    created = not model_dir.exists()
    temp = model_dir / f".{version}.tmp-{secrets.token_hex(4)}"
    try:
        temp.mkdir(parents=True)
        result = write(temp)
        for path in temp.iterdir():
            _fsync(path)
        _fsync(temp)
        new_version_dir(repository, name, version)  # published by someone else meanwhile?
        os.rename(temp, final)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if created:
            with suppress(OSError):
                model_dir.rmdir()  # only succeeds while empty
        if isinstance(exc, OSError):
            raise PublishError(f"cannot publish {final}: {one_line(exc)}") from None
        raise
    _fsync(model_dir)
    return final, result


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # a directory too: that is how its entries are made durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
