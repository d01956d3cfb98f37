"""Discovery: what a model repository on disk holds, without loading anything.

The layout is TensorFlow Serving's and Triton's::

    <repository>/
        <model-name>/
            config.json              optional: the version policy (see model_config)
            <version>/               a positive integer
                model.skops          the artifact (or model.joblib / model.pkl)
                metadata.json
            .<version>.tmp-XXXX/     a version being published: hidden, ignored

Rules:

* A model name matches MODEL_NAME: a letter or digit, then at most 63 letters, digits, ".", "_"
  or "-" (safe in a URL path segment and as a metric label).
* A version is a canonical decimal positive integer, VERSION: "1", "12", never "01", "+1" or
  "1.0", so each version number has exactly one folder name ("01" next to "1" would otherwise be
  two folders for one version). At most 18 digits, so every version fits an int64.
* Entries whose name starts with "." are ignored silently: a publisher (model_server.package)
  writes a version under a hidden temp name and renames it into place, so a half-written version
  is never seen. Plain files are ignored silently too (a README next to the models), except a
  file named like a version, which is reported.
* Symlinks are followed (the files a version loads must lie inside the repository all the same,
  :mod:`.files`); a broken one is reported.
* A version folder is listed, not opened: whether it holds a loadable artifact is the loader's
  question, and fingerprint() lets the caller retry a failed load only once the folder changed.

scan() never raises because of one odd entry (an invalid name, a broken symlink, a permission
error): it leaves the entry out and records why in ``Scan.skipped``, for the caller to log once.
Only a repository that is not a readable directory raises RepositoryError.

A folder that exists but cannot be read (EACCES, EIO, ESTALE on a network file system) is not a
folder that is gone: a model folder in that state is listed in ``Scan.unreadable``, a version
folder in its model's ``unreadable``, so that the caller keeps what it loaded from them rather
than withdrawing it. Only a folder that is gone withdraws what it held.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION = re.compile(r"[1-9][0-9]{0,17}")
CONFIG_NAME = "config.json"
CANNOT_READ = "cannot be read: "

# What fingerprint() returns: hashable, compared with ==, never interpreted.
Fingerprint = tuple[object, ...]


class RepositoryError(Exception):
    """The repository folder itself cannot be scanned; the message is a one-line reason."""


@dataclass(frozen=True)
class ModelDir:
    name: str
    path: Path
    versions: dict[int, Path]  # version number -> its folder, ascending
    config_path: Path | None  # <model>/config.json when that entry exists (read by model_config)
    unreadable: Mapping[int, str] = field(default_factory=dict)  # version folders that exist, unreadable: why


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Scan(dict[str, ModelDir]):
    """The models found, by name in sorted order; ``skipped`` lists the entries left out, with why;
    ``unreadable`` the model folders that exist but could not be read, with why."""

    def __init__(
        self,
        models: Mapping[str, ModelDir],
        skipped: Iterable[Skipped] = (),
        unreadable: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(models)
        self.skipped: tuple[Skipped, ...] = tuple(skipped)
        self.unreadable: Mapping[str, str] = dict(unreadable or {})


def is_model_name(name: str) -> bool:
    return MODEL_NAME.fullmatch(name) is not None


def is_version(name: str) -> bool:
    return VERSION.fullmatch(name) is not None


def scan(repository: Path) -> Scan:
    """The models of ``repository`` and their versions; raise RepositoryError if it is not a readable folder."""
    try:
        names = _names(repository)
    except FileNotFoundError:
        raise RepositoryError(f"model repository {repository} does not exist") from None
    except NotADirectoryError:
        raise RepositoryError(f"model repository {repository} is not a directory") from None
    except OSError as exc:
        raise RepositoryError(f"model repository {repository} cannot be read: {_reason(exc)}") from None

    models: dict[str, ModelDir] = {}
    skipped: list[Skipped] = []
    unreadable: dict[str, str] = {}
    for name in names:
        path = repository / name
        if name.startswith("."):
            continue
        is_dir, problem = _is_dir(path, skipped)
        if problem.startswith(CANNOT_READ) and is_model_name(name):
            unreadable[name] = problem  # there, but it cannot be told what it is
        if not is_dir:
            continue  # a plain file, or skipped
        if not is_model_name(name):
            skipped.append(Skipped(path, "not a model name (a letter or digit, then up to 63 of [A-Za-z0-9._-])"))
            continue
        try:
            models[name] = _model(name, path, skipped)
        except FileNotFoundError:
            continue  # removed since the listing
        except OSError as exc:
            skipped.append(Skipped(path, f"{CANNOT_READ}{_reason(exc)}"))
            unreadable[name] = skipped[-1].reason
    return Scan(models, skipped, unreadable)


def fingerprint(version_dir: Path) -> Fingerprint:
    """A cheap value that changes when a file of ``version_dir`` is added, removed, resized or modified.

    It holds the folder's identity (device and inode, so a folder replaced by another one differs
    even with identical files) and each entry's name, size, mtime and ctime (ctime changes on
    chmod, so fixing a permission error counts as a change). Entries are stat'ed, not descended
    into: an artifact is a file. It never raises; an unreadable folder or entry has its own value.
    """
    try:
        folder = os.stat(version_dir)
        names = _names(version_dir)
    except OSError as exc:
        return ("unreadable", exc.errno)
    entries: list[tuple[object, ...]] = []
    for name in names:
        try:
            info = os.stat(version_dir / name)
        except OSError as exc:
            entries.append((name, "unreadable", exc.errno))
            continue
        entries.append((name, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return ((folder.st_dev, folder.st_ino), tuple(entries))


def _model(name: str, path: Path, skipped: list[Skipped]) -> ModelDir:
    versions: dict[int, Path] = {}
    unreadable: dict[int, str] = {}
    config_path = None
    for entry in _names(path):
        child = path / entry
        if entry == CONFIG_NAME:
            config_path = child  # whatever it is: read_model_config says what is wrong with it
            continue
        if entry.startswith("."):
            continue
        is_dir, problem = _is_dir(child, skipped)
        if problem.startswith(CANNOT_READ) and is_version(entry):
            unreadable[int(entry)] = problem
        if is_dir and is_version(entry):
            versions[int(entry)] = child
        elif is_dir:
            skipped.append(Skipped(child, "not a version number (a positive integer without leading zeros)"))
        elif is_dir is False and is_version(entry):
            skipped.append(Skipped(child, "named like a version but not a directory"))
    return ModelDir(
        name=name, path=path, versions=dict(sorted(versions.items())), config_path=config_path, unreadable=unreadable
    )


def _is_dir(path: Path, skipped: list[Skipped]) -> tuple[bool | None, str]:
    """Whether ``path`` is a directory (following symlinks), and what went wrong when it cannot be told
    (None, then skipped with that reason; "" when it vanished since the listing: not odd, just gone)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if not path.is_symlink():
            return None, ""
        problem = "broken symlink"
    except OSError as exc:
        problem = f"{CANNOT_READ}{_reason(exc)}"
    else:
        return stat.S_ISDIR(mode), ""
    skipped.append(Skipped(path, problem))
    return None, problem


def _names(directory: Path) -> list[str]:
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
