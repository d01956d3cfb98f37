"""Safe loading of a model artifact from a model directory.

A model directory holds one artifact and ``metadata.json`` (written by
``model_server.package`` and ``model_server.train``): a version without it is incomplete. Artifacts load by format:

* ``model.skops``: skops, with an explicit list of trusted types; any other type in the
  file refuses the load. This is the default and recommended format.
* ``model.joblib`` / ``model.pkl``: pickle-based formats run arbitrary code when loaded, so
  they load only when the file's SHA-256 is one of the digests listed in ``MODEL_SHA256``.
* ``model.json`` / ``model.ubj`` (XGBoost) and ``model.txt`` (LightGBM): gradient-boosted trees,
  data read by Treelite and checked against the native library's predictions (:mod:`.boosted`).

The artifact is read once, into memory, and the bytes that were hashed (and type-checked, for
skops) are the bytes that are loaded: opening the file a second time would load whatever it
holds by then, and a file replaced between the check and the load would run unverified code.

Every refusal raises :class:`ModelLoadError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .boosted import load_boosted
from .errors import ModelLoadError, one_line
from .files import MAX_ARTIFACT_BYTES, MAX_JSON_BYTES, UnsafeFile, read_file

ARTIFACT_NAMES = ("model.skops", "model.joblib", "model.pkl", "model.json", "model.ubj", "model.txt")
METADATA_NAME = "metadata.json"

# Types that skops does not trust by default but that scikit-learn's estimators are made of:
# the trees of its tree ensembles, and the dtypes its transformers record (a pipeline fitted on a
# DataFrame): data descriptions, which run no code. Anything else must be named in
# MODEL_TRUSTED_TYPES by the operator.
DEFAULT_TRUSTED_TYPES = ("sklearn.tree._tree.Tree", "numpy.dtype")


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    estimator: Any
    metadata: dict[str, Any]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(model_dir: Path, limits: FileLimits | None = None) -> dict[str, Any]:
    limits = limits or FileLimits(model_dir.parent.parent)
    path = model_dir / METADATA_NAME
    if not os.path.lexists(path):
        # Required: without it the SHA-256 check would be skipped, and a version copied in place
        # could load before its metadata arrives (model_server.package writes it; publish with mv).
        raise ModelLoadError(
            f"{path} is missing: a version loads only when complete (metadata.json records its artifact's SHA-256; "
            "python -m model_server.package writes it)"
        )
    data = _read(path, limits, limits.max_json_bytes, "MODEL_MAX_JSON_BYTES")
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return metadata


def find_artifact(model_dir: Path, metadata: dict[str, Any]) -> Path:
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    named = metadata.get("artifact")
    if named is not None:
        if not isinstance(named, str) or Path(named).name != named:
            raise ModelLoadError(f"metadata 'artifact' must be a file name, got {named!r}")
        path = model_dir / named
        if not os.path.lexists(path):
            raise ModelLoadError(f"artifact {path} named in {METADATA_NAME} does not exist")
        return path
    for name in ARTIFACT_NAMES:  # whatever the entry is: reading it says why it cannot be a model (.files)
        if os.path.lexists(model_dir / name):
            return model_dir / name
    raise ModelLoadError(f"no model artifact in {model_dir} (expected one of {', '.join(ARTIFACT_NAMES)})")


@dataclass(frozen=True)
class FileLimits:
    """Where a version's files must lie, and how large they may be (:mod:`.files`)."""

    repository: Path
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES
    max_json_bytes: int = MAX_JSON_BYTES


def load_artifact(
    model_dir: Path,
    trusted_sha256: Collection[str] = (),
    extra_trusted_types: tuple[str, ...] = (),
    limits: FileLimits | None = None,
) -> Artifact:
    """Load and verify the artifact in ``model_dir``; raise ModelLoadError on any refusal.

    ``trusted_sha256`` (MODEL_SHA256) lists the digests of the pickle/joblib files trusted to load.
    ``limits``: the repository the files must lie in (default: the folder two levels up, as in
    ``<repository>/<model>/<version>``) and the size caps.
    """
    limits = limits or FileLimits(model_dir.parent.parent)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    # One digest given as a str is one digest: ``in`` on a str would match any 64-character substring.
    trusted = frozenset((trusted_sha256,) if isinstance(trusted_sha256, str) else trusted_sha256)
    metadata = read_metadata(model_dir, limits)
    path = find_artifact(model_dir, metadata)
    # The one read: everything below checks and loads these bytes.
    data = _read(path, limits, limits.max_artifact_bytes, "MODEL_MAX_ARTIFACT_BYTES")
    digest = hashlib.sha256(data).hexdigest()
    recorded = metadata.get("sha256")
    if recorded and recorded != digest:
        raise ModelLoadError(f"{path.name} has SHA-256 {digest}, but {METADATA_NAME} records {recorded}")

    if path.suffix == ".skops":
        estimator = _load_skops(path, data, DEFAULT_TRUSTED_TYPES + extra_trusted_types)
    elif path.suffix in (".pkl", ".joblib"):
        if digest not in trusted:
            raise ModelLoadError(
                f"refusing to unpickle {path.name} (SHA-256 {digest}): pickle can run arbitrary code; add "
                f"its digest to MODEL_SHA256 if you trust this exact file, or convert it to skops "
                "(python -m model_server.package)"
            )
        estimator = _load_pickle(path, data)
    elif path.suffix in (".json", ".ubj", ".txt"):
        estimator = load_boosted(path.name, data, metadata)
    else:
        raise ModelLoadError(f"unsupported artifact format {path.suffix!r}")

    if not callable(getattr(estimator, "predict", None)):
        raise ModelLoadError(f"{path.name} holds a {type(estimator).__name__}, which has no predict()")
    return Artifact(path=path, sha256=digest, estimator=estimator, metadata=metadata)


def _read(path: Path, limits: FileLimits, max_bytes: int, setting: str) -> bytes:
    try:
        return read_file(path, limits.repository, max_bytes, setting)
    except UnsafeFile as exc:
        raise ModelLoadError(str(exc)) from None
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read: {one_line(exc)}") from None


def _load_skops(path: Path, data: bytes, trusted: tuple[str, ...]) -> Any:
    import skops.io

    if not data:  # skops takes empty data for no data at all
        raise ModelLoadError(f"{path.name} is not a readable skops file: it is empty")
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises a variety of errors on corrupt files
        raise ModelLoadError(f"{path.name} is not a readable skops file: {one_line(exc)}") from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise ModelLoadError(
            f"{path.name} contains untrusted types {', '.join(refused)}; "
            "add them to MODEL_TRUSTED_TYPES only if you trust where the file came from"
        )
    try:
        return skops.io.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} could not be loaded: {one_line(exc)}") from None


def _load_pickle(path: Path, data: bytes) -> Any:
    try:
        if path.suffix == ".joblib":
            import joblib

            return joblib.load(io.BytesIO(data))
        return pickle.loads(data)  # noqa: S301 - guarded by the SHA-256 check above
    except Exception as exc:
        raise ModelLoadError(f"{path.name} could not be unpickled: {one_line(exc)}") from None
