"""Package a fitted estimator and a sample of its training data as a new version of a model repository.

``python -m model_server.package --estimator FILE --train-data FILE --name NAME --version V
--repository DIR [--target-column C] [--eval-data FILE] [--max-features N]`` publishes
``<repository>/<name>/<version>/`` (atomically, by model_server.tools.publish) holding:

* ``model.skops``, whatever format the estimator came in, so that the server loads it without
  pickle; types skops does not trust by default (beyond the server's DEFAULT_TRUSTED_TYPES) are
  printed, for the operator to list in MODEL_TRUSTED_TYPES;
* ``metadata.json``, built by :func:`write_model_dir` (model_server.train uses it too): names,
  versions, SHA-256, feature means, training rows, the ``reference`` distribution of
  model_server.monitoring.reference and, with --eval-data, the held-out accuracy.

A gradient-boosted model's own file (XGBoost ``.json``/``.ubj``, LightGBM ``.txt``) is packaged as
that file, with the native library's reference predictions (:mod:`.boosted`).

Refusals exit with status 2 and a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io

from ..monitoring.reference import column_references, feature_reference, prediction_shares
from ..repository.artifact import DEFAULT_TRUSTED_TYPES, METADATA_NAME, sha256_of
from ..repository.boosted import BOOSTED_SUFFIXES
from ..repository.errors import one_line
from ..repository.signature import MAX_CATEGORIES, Signature
from .boosted import BoostedPackageError, package_boosted
from .dataset import FRAME_FORMATS, DataError, Frame, Table, read_frame, read_table
from .publish import PublishError, new_version_dir, publish
from .signature import SignatureDerivationError, derive_signature, input_example, signature_json

ARTIFACT_NAME = "model.skops"
DEFAULT_MAX_FEATURES = 32  # as the server's DRIFT_MAX_FEATURES
ROUND_TRIP_ROWS = 256  # rows predicted by the written artifact and the original, which must agree


class PackageError(Exception):
    """The estimator cannot be packaged as given; the message is a one-line reason."""


def package(
    estimator_path: Path,
    train_path: Path,
    *,
    name: str,
    version: str,
    repository: Path,
    target_column: str | None = None,
    eval_path: Path | None = None,
    max_features: int = DEFAULT_MAX_FEATURES,
    max_categories: int = MAX_CATEGORIES,
    class_names: Sequence[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Publish ``<repository>/<name>/<version>`` from an estimator file and a training sample.

    ``class_names``: a readable name per class, in the model's class order (a classifier fitted on integer labels).
    """
    new_version_dir(repository, name, version)  # refuse before any work
    if class_names is not None and (len(set(class_names)) != len(class_names) or not all(class_names)):
        raise PackageError("--class-names must be distinct and non-empty")
    if estimator_path.suffix.lower() in BOOSTED_SUFFIXES:  # a gradient-boosted model's own file (tools/boosted.py)
        if eval_path is not None:
            raise PackageError("--eval-data is not measured for a gradient-boosted model file yet")
        try:
            return package_boosted(
                estimator_path, train_path, name=name, version=version, repository=repository,
                target_column=target_column, max_features=max_features, class_names=class_names,
            )  # fmt: skip
        except BoostedPackageError as exc:
            raise PackageError(str(exc)) from None
    estimator = load_estimator(estimator_path)
    check_class_names(class_names, getattr(estimator, "classes_", None))
    # A model fitted on a DataFrame (it knows its columns' names) is packaged from the DataFrame its data reads as
    # (a .npy sample of one is a matrix of its numeric columns, as before).
    named = getattr(estimator, "feature_names_in_", None) is not None
    read = read_frame if named and train_path.suffix.lower() in FRAME_FORMATS else read_table
    training = read(train_path, target_column)
    feature_names = _feature_names(estimator, training)
    metrics = None
    if eval_path is not None:
        if target_column is None:
            raise PackageError("--eval-data needs --target-column (the true labels of the held-out rows)")
        evaluation = read(eval_path, target_column)
        if _names(evaluation) and _names(training) and _names(evaluation) != _names(training):
            raise PackageError(f"{eval_path}: its columns {_names(evaluation)} differ from {train_path}'s")
        _feature_names(estimator, evaluation)
        metrics = held_out_metrics(estimator, evaluation)

    def write(directory: Path) -> dict[str, Any]:
        metadata = write_model_dir(
            directory, estimator, training.x, name=name, version=version, feature_names=feature_names,
            max_features=max_features, max_categories=max_categories, metrics=metrics, class_names=class_names,
        )  # fmt: skip
        _check_round_trip(directory / ARTIFACT_NAME, estimator, training.x)
        return metadata

    return publish(repository, name, version, write)


def check_class_names(class_names: Sequence[str] | None, classes: Any) -> None:
    """``--class-names``: one name per class of a classifier (distinct and non-empty: checked first, in package)."""
    if class_names is None:
        return
    if classes is None:
        raise PackageError("--class-names names a classifier's classes; this model has none")
    if len(class_names) != len(classes):
        shown = ", ".join(str(c) for c in list(classes)[:10])
        raise PackageError(
            f"--class-names gives {len(class_names)} names for the model's {len(classes)} classes ({shown})"
        )


def load_estimator(path: Path) -> Any:
    """A fitted estimator from a ``.skops``, ``.joblib`` or ``.pkl`` file."""
    # This file is the user's own, on their own machine, handed to this tool by them: it is trusted
    # as a whole (every skops type; pickle). The server never does that: it loads the model.skops
    # written here, with a fixed list of trusted types.
    suffix = path.suffix.lower()
    if suffix not in (".skops", ".joblib", ".pkl"):
        raise PackageError(
            f"{path}: unsupported estimator format {suffix!r}; expected .skops, .joblib or .pkl (scikit-learn), "
            ".json or .ubj (XGBoost), .txt (LightGBM)"
        )
    try:
        if suffix == ".skops":
            estimator = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        elif suffix == ".joblib":
            import joblib

            estimator = joblib.load(path)
        else:
            with path.open("rb") as handle:
                estimator = pickle.load(handle)  # noqa: S301 - the user's own file (see above)
    except Exception as exc:  # corrupt files raise anything
        raise PackageError(f"{path} could not be loaded: {one_line(exc)}") from None
    if not callable(getattr(estimator, "predict", None)):
        raise PackageError(f"{path} holds a {type(estimator).__name__}, which has no predict()")
    if getattr(estimator, "n_features_in_", None) is None:
        raise PackageError(f"{path} holds a {type(estimator).__name__} without n_features_in_: is it fitted?")
    return estimator


def held_out_metrics(estimator: Any, evaluation: Table | Frame) -> dict[str, Any]:
    """``{"accuracy": ..., "eval_rows": n}`` of a classifier on held-out rows with their target column."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or evaluation.y is None:
        raise PackageError("--eval-data measures accuracy, which needs a classifier and a target column")
    truth = _as_classes(evaluation, np.asarray(classes))
    accuracy = float(np.mean(_predict(estimator, evaluation.x) == truth))
    return {"accuracy": accuracy, "eval_rows": len(truth)}


def write_model_dir(
    directory: Path,
    estimator: Any,
    x_train: Any,
    *,
    name: str,
    version: str,
    feature_names: Sequence[str],
    class_names: Sequence[str] | None = None,
    max_features: int = DEFAULT_MAX_FEATURES,
    max_categories: int = MAX_CATEGORIES,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model.skops`` and ``metadata.json`` into the existing ``directory``; return the metadata.

    ``x_train``: the training sample, a float matrix, or the pandas DataFrame a model fitted on one
    was trained with (its signature is derived from it: :mod:`.signature`).
    """
    if hasattr(x_train, "columns"):
        try:
            signature = derive_signature(x_train, estimator, max_categories)
        except SignatureDerivationError as exc:
            raise PackageError(str(exc)) from None
        numeric = [c.name for c in signature.inputs if c.numeric]
        x_numeric = x_train[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        named = getattr(estimator, "feature_names_in_", None) is not None
        signature, numeric, x_numeric = (
            Signature.of_doubles(list(feature_names), frame=named),
            list(feature_names),
            x_train,
        )
    artifact = directory / ARTIFACT_NAME
    skops.io.dump(estimator, artifact)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    created = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    metadata: dict[str, Any] = {
        "name": name,
        "version": str(version),
        "created": created.isoformat(timespec="seconds"),
        "artifact": ARTIFACT_NAME,
        "sha256": sha256_of(artifact),
        "estimator": type(estimator).__name__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "feature_names": list(feature_names),
        "signature": signature_json(signature),
    }
    if hasattr(x_train, "columns"):
        metadata["input_example"] = input_example(x_train, signature)
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        metadata["class_names"] = list(class_names) if class_names is not None else [str(c) for c in classes]
    # The mean of each numeric column over its values present (the drift reference's, too).
    metadata["feature_means"] = [round(float(m), 6) for m in _column_means(x_numeric)]
    metadata["training_rows"] = len(x_train)
    if hasattr(x_train, "columns"):
        reference: dict[str, Any] = {"features": column_references(x_train, signature, max_features)}
    else:
        reference = {"features": feature_reference(x_numeric, numeric, max_features)}
    if classes is not None:
        reference["predictions"] = prediction_shares(_predict(estimator, x_train), classes, metadata["class_names"])
    metadata["reference"] = reference
    if metrics is not None:
        metadata["metrics"] = metrics
    metadata.update(extra or {})
    text = json.dumps(metadata, indent=2, allow_nan=False) + "\n"
    (directory / METADATA_NAME).write_text(text, encoding="utf-8")
    return metadata


def untrusted_types(artifact: Path) -> list[str]:
    """Types in ``artifact`` that the server refuses unless they are listed in MODEL_TRUSTED_TYPES."""
    return sorted(set(skops.io.get_untrusted_types(file=artifact)) - set(DEFAULT_TRUSTED_TYPES))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_server.package", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--estimator", type=Path, required=True,
        help="the fitted model: .skops, .joblib or .pkl (scikit-learn), .json or .ubj (XGBoost), .txt (LightGBM)",
    )  # fmt: skip
    parser.add_argument(
        "--train-data", type=Path, required=True, help="a training sample: .csv with header, .parquet, or .npy"
    )
    parser.add_argument("--target-column", help="the target column of both data files (CSV: name; .npy: index)")
    parser.add_argument("--name", required=True, help="the model's name in the repository")
    parser.add_argument("--version", required=True, help="the new version: a positive integer")
    parser.add_argument("--repository", type=Path, required=True, help="the model repository folder")
    parser.add_argument("--eval-data", type=Path, help="held-out rows with the target column: records accuracy")
    parser.add_argument("--max-features", type=_at_least_zero, default=DEFAULT_MAX_FEATURES, help="features to bin")
    parser.add_argument(
        "--max-categories",
        type=_at_least_zero,
        default=MAX_CATEGORIES,
        help="categories listed per string column (a gradient-boosted model's categorical features list all theirs)",
    )
    parser.add_argument(
        "--class-names", type=lambda text: [name.strip() for name in text.split(",")],
        help="comma-separated names of the classes, in the model's order (for a classifier fitted on integer labels)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        path, metadata = package(
            args.estimator, args.train_data, name=args.name, version=args.version, repository=args.repository,
            target_column=args.target_column, eval_path=args.eval_data, max_features=args.max_features,
            max_categories=args.max_categories, class_names=args.class_names,
        )  # fmt: skip
    except (PackageError, PublishError, DataError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    untrusted = untrusted_types(path / ARTIFACT_NAME) if (path / ARTIFACT_NAME).exists() else []
    if untrusted:
        print(
            f"warning: {ARTIFACT_NAME} holds types that skops does not trust by default; the server refuses it "
            f"unless you trust them and set MODEL_TRUSTED_TYPES={','.join(untrusted)}",
            file=sys.stderr,
        )
    summary = {k: metadata[k] for k in ("name", "version", "sha256", "metrics") if k in metadata}
    print(json.dumps({"path": str(path), **summary}))


def _feature_names(estimator: Any, table: Table | Frame) -> list[str]:
    """The feature names of ``table`` (header, else the estimator's, else x0..), checked against the estimator."""
    n = int(estimator.n_features_in_)
    fitted = getattr(estimator, "feature_names_in_", None)
    fitted = None if fitted is None else [str(f) for f in fitted]
    if isinstance(table, Frame):  # the model picks its columns by name: the data may hold more
        missing = [name for name in fitted or () if name not in table.x.columns]
        if missing:
            raise PackageError(f"{table.path} has no column {missing[0]!r}, which the estimator was fitted on")
        return list(fitted or ())
    if table.x.shape[1] != n:
        raise PackageError(f"{table.path} has {table.x.shape[1]} feature columns, but the estimator takes {n}")
    if table.feature_names is not None and fitted is not None and list(table.feature_names) != fitted:
        raise PackageError(f"{table.path}: the header names {list(table.feature_names)}, the estimator {fitted}")
    return list(table.feature_names or fitted or [f"x{i}" for i in range(n)])


def _names(table: Table | Frame) -> list[str] | None:
    if isinstance(table, Frame):
        return [str(c) for c in table.x.columns]
    return list(table.feature_names) if table.feature_names is not None else None


def _column_means(x: np.ndarray) -> np.ndarray:
    present = ~np.isnan(x)
    return np.where(present, x, 0.0).sum(axis=0) / np.maximum(present.sum(axis=0), 1)


def _as_classes(evaluation: Table | Frame, classes: np.ndarray) -> np.ndarray:
    """The target column as the estimator's class values (text "2" or 2.0 name class 2)."""
    numeric = classes.dtype.kind in "iuf"
    known = {(float(c) if numeric else str(c)): c for c in classes.tolist()}
    labels = []
    for row, value in enumerate(np.asarray(evaluation.y).tolist(), start=1):
        try:
            key: object = float(value) if numeric else str(value)
        except ValueError:
            key = None
        if key not in known:
            shown = ", ".join(str(c) for c in classes.tolist()[:10])
            raise PackageError(f"{evaluation.path}: target {value!r} of data row {row} is not a class ({shown})")
        labels.append(known[key])
    return np.asarray(labels, dtype=classes.dtype)


def _predict(estimator: Any, x: Any) -> np.ndarray:
    with warnings.catch_warnings():
        # An estimator fitted on a named table, given a plain array as the server gives it.
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        return np.asarray(estimator.predict(x))


def _check_round_trip(artifact: Path, estimator: Any, x: Any) -> None:
    restored = skops.io.load(artifact, trusted=skops.io.get_untrusted_types(file=artifact))
    head = x.iloc[:ROUND_TRIP_ROWS] if hasattr(x, "iloc") else x[:ROUND_TRIP_ROWS]
    if not np.array_equal(_predict(restored, head), _predict(estimator, head)):
        raise PackageError(f"{artifact.name} does not predict like the estimator it was written from")


def _at_least_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


if __name__ == "__main__":
    main()
