"""Packaging a gradient-boosted model file: XGBoost (``.json``, ``.ubj``) or LightGBM (``.txt``).

``python -m model_server.package --estimator model.json --train-data train.csv --target-column y ...``
runs where the model was trained, with its library installed (the server has neither). It:

* reads the model with the native library: its objective (binary logistic, multiclass softprob,
  squared-error regression; anything else is refused), its feature names and its categorical
  features with their categories, in the order of the codes the trees split on: XGBoost 3 keeps
  them in the model file (``learner.gradient_booster.model.cats``), LightGBM beside its trees
  (``pandas_categorical``). Treelite does not read XGBoost's section, so a model that has one is
  written back as ``model.json`` with the section emptied, its categories kept in the signature;
  any other file is copied unchanged;
* derives the signature from the training data (CSV with a header, or Parquet): each feature
  column in the model's order, numbers ``double`` or ``long``, a categorical feature a ``coded``
  ``string`` column (an unknown category is taken as missing, and counted); nullable where
  training had missing values (trees send one down the branch they learned for it), as for a
  scikit-learn model: an all-numeric model without missing values keeps the float matrix;
* takes the classes from the target column: its distinct values, sorted (the order of
  ``LabelEncoder`` and of pandas' categories), one per output of the model;
* predicts up to :data:`REFERENCE_ROWS` training rows with the native library, given the rows as
  its users give them (a DataFrame, categorical columns as pandas categories), and records rows
  and outputs in ``metadata.json`` (``boosted.reference``): the server refuses the version unless
  Treelite predicts them alike (:mod:`..repository.boosted`). The version is loaded exactly as the
  server loads it before it is published.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from ..monitoring.reference import column_references, prediction_shares
from ..repository.artifact import METADATA_NAME, ModelLoadError, load_artifact, sha256_of
from ..repository.boosted import BOOSTED_SUFFIXES, OBJECTIVES
from ..repository.signature import MAX_CATEGORIES, Column, Signature
from .dataset import Frame, read_frame
from .publish import publish
from .signature import input_example, signature_json

REFERENCE_ROWS = 256  # training rows predicted by the native library, checked by the server at every load


class BoostedPackageError(Exception):
    """The model file cannot be packaged as given; the message is a one-line reason."""


@dataclass
class NativeModel:
    """A model file as its library reads it: what the packaging needs, and the library's own predictions."""

    library: str
    version: str
    objective: str
    n_features: int
    feature_names: list[str] | None
    categories: dict[int, list[str]]  # feature position -> its categories, in code order
    n_outputs: int  # 1 (binary, regression) or the number of classes
    artifact: tuple[str, bytes]  # what the version folder holds
    booster: Any = field(repr=False)

    @property
    def task(self) -> str:
        return OBJECTIVES[self.library][self.objective]

    def predict(self, frame: Any) -> np.ndarray:
        """The library's outputs for a DataFrame of the model's columns (categorical ones as pandas categories)."""
        if self.library == "xgboost":
            import xgboost

            outputs = self.booster.predict(xgboost.DMatrix(frame, enable_categorical=True, missing=np.nan))
        else:
            outputs = self.booster.predict(frame)
        return np.asarray(outputs, dtype=np.float64).reshape(len(frame), -1)


def read_native(path: Path) -> NativeModel:
    """The model in ``path`` read by xgboost or lightgbm; BoostedPackageError if unreadable or unsupported."""
    library = BOOSTED_SUFFIXES[path.suffix.lower()]
    try:
        reader = _read_xgboost if library == "xgboost" else _read_lightgbm
        model = reader(path)
    except ImportError:
        raise BoostedPackageError(f"{path}: packaging a {library} model needs {library} installed") from None
    except BoostedPackageError:
        raise
    except Exception as exc:  # the libraries raise their own errors on a file they cannot read
        raise BoostedPackageError(
            f"{path} could not be read by {library}: {' '.join(str(exc).split())[:300]}"
        ) from None
    if model.objective not in OBJECTIVES[library]:
        served = ", ".join(OBJECTIVES[library])
        raise BoostedPackageError(f"{path}: unsupported objective {model.objective!r} (served: {served})")
    return model


def _read_xgboost(path: Path) -> NativeModel:
    import xgboost

    booster = xgboost.Booster(model_file=str(path))
    document = json.loads(bytes(booster.save_raw("json")))
    learner = document["learner"]
    if learner["gradient_booster"]["name"] != "gbtree":
        raise BoostedPackageError(f"{path}: a {learner['gradient_booster']['name']} booster; served: gbtree")
    objective, model = learner["objective"]["name"], learner["gradient_booster"]["model"]
    if int(learner["learner_model_param"].get("num_target", "1")) != 1:
        raise BoostedPackageError(
            f"{path}: a model of {learner['learner_model_param']['num_target']} targets; served: one"
        )
    categories = _xgboost_categories(path, model.get("cats") or {})
    if categories:  # Treelite reads the trees only: the categories move to the signature (module docstring)
        model["cats"] = {"enc": [], "feature_segments": [], "sorted_idx": []}
        artifact = ("model.json", json.dumps(document, separators=(",", ":")).encode())
    else:
        artifact = (f"model{path.suffix.lower()}", path.read_bytes())
    classes = int(learner["learner_model_param"].get("num_class", "0"))
    return NativeModel(
        "xgboost", xgboost.__version__, objective, booster.num_features(), booster.feature_names, categories,
        max(classes, 1), artifact, booster,
    )  # fmt: skip


def _xgboost_categories(path: Path, cats: dict[str, Any]) -> dict[int, list[str]]:
    """Each categorical feature's categories from XGBoost's ``cats`` section: per feature, its names' UTF-8 bytes
    concatenated (``values``) and where each starts (``offsets``); a feature without categories has neither."""
    categories = {}
    for position, encoding in enumerate(cats.get("enc") or []):
        offsets, values = encoding.get("offsets") or [], encoding.get("values") or []
        if not offsets and values:
            raise BoostedPackageError(f"{path}: feature {position} has numeric categories; served: string categories")
        if offsets:
            text = bytes(values)
            categories[position] = [text[a:b].decode() for a, b in pairwise(offsets)]
    return categories


def _read_lightgbm(path: Path) -> NativeModel:
    import lightgbm

    text = path.read_text(encoding="utf-8")
    booster = lightgbm.Booster(model_str=text)
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("["))
    objective = lines.get("objective", "").split(" ")[0]
    infos = lines.get("feature_infos", "").split(" ")
    # feature_infos: a numeric feature's range "[min:max]" (or "none"), a categorical one's codes "0:1:2".
    positions = [j for j, info in enumerate(infos) if info and not info.startswith("[") and info != "none"]
    lists = booster.pandas_categorical or []
    if any(not isinstance(value, str) for values in lists for value in values):
        raise BoostedPackageError(
            f"{path}: a categorical feature whose categories are not text; served: string categories"
        )
    if positions and len(lists) != len(positions):
        raise BoostedPackageError(
            f"{path}: {len(positions)} categorical features but {len(lists)} category lists: fit on a DataFrame "
            "with pandas category columns, so that LightGBM records their categories"
        )
    classes = booster.params.get("num_class") or int(lines.get("num_class", "1"))
    return NativeModel(
        "lightgbm", lightgbm.__version__, objective, booster.num_feature(), booster.feature_name(),
        {j: [str(c) for c in values] for j, values in zip(positions, lists, strict=True)}, max(int(classes), 1),
        ("model.txt", path.read_bytes()), booster,
    )  # fmt: skip


def package_boosted(
    model_path: Path,
    train_path: Path,
    *,
    name: str,
    version: str,
    repository: Path,
    target_column: str | None,
    max_features: int,
    class_names: Sequence[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Publish ``<repository>/<name>/<version>`` from a boosted model file and its training data."""
    native = read_native(model_path)
    training = read_frame(train_path, target_column)
    names = _feature_names(native, training)
    frame = training.x[names]
    signature = _signature(native, frame)
    given = _as_given(native, frame, signature)
    codes = _codes(frame, signature)
    sample = np.linspace(0, len(frame) - 1, min(REFERENCE_ROWS, len(frame))).round().astype(int)
    outputs = native.predict(given.iloc[sample])
    metadata: dict[str, Any] = {
        "name": name, "version": str(version), "created": _created(), "artifact": native.artifact[0],
        "estimator": f"{native.library} {native.objective}", "python_version": platform.python_version(),
        "feature_names": names, "signature": signature_json(signature),
        "input_example": input_example(frame, signature),
    }  # fmt: skip
    if class_names is not None and native.task == "regression":
        raise BoostedPackageError("--class-names names a classifier's classes; this model is a regression")
    reference: dict[str, Any] = {"features": column_references(frame, signature, max_features)}
    if native.task != "regression":
        classes = _classes(native, training)
        metadata["classes"] = classes
        if class_names is not None and len(class_names) != len(classes):
            raise BoostedPackageError(
                f"--class-names gives {len(class_names)} names for the model's {len(classes)} classes"
            )
        metadata["class_names"] = list(class_names) if class_names is not None else [str(c) for c in classes]
        all_outputs = native.predict(given)
        probabilities = (
            np.column_stack([1 - all_outputs[:, 0], all_outputs[:, 0]]) if native.n_outputs == 1 else all_outputs
        )
        predicted = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
        reference["predictions"] = prediction_shares(predicted, classes, metadata["class_names"])
    numeric = [j for j, column in enumerate(signature.inputs) if column.numeric]
    present = ~np.isnan(codes[:, numeric])
    means = np.where(present, codes[:, numeric], 0.0).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    metadata["feature_means"] = [round(float(m), 6) for m in means]
    metadata["training_rows"] = len(frame)
    metadata["reference"] = reference
    metadata["boosted"] = {
        "library": native.library, "library_version": native.version, "objective": native.objective,
        "task": native.task, "reference": {"rows": _json_rows(codes[sample]), "outputs": outputs.tolist()},
    }  # fmt: skip

    def write(directory: Path) -> dict[str, Any]:
        artifact = directory / native.artifact[0]
        artifact.write_bytes(native.artifact[1])
        metadata["sha256"] = sha256_of(artifact)
        (directory / METADATA_NAME).write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n", "utf-8")
        try:  # what the server will do with it: Treelite reads it and predicts the references alike
            load_artifact(directory, limits=None)
        except ModelLoadError as exc:
            raise BoostedPackageError(f"the server would refuse this version: {exc}") from None
        return metadata

    return publish(repository, name, version, write)


def _feature_names(native: NativeModel, training: Frame) -> list[str]:
    """The model's feature names (the data's columns in order for a model without any), all in the data."""
    columns = [str(c) for c in training.x.columns]
    names = native.feature_names
    if not names or (native.library == "lightgbm" and names == [f"Column_{j}" for j in range(native.n_features)]):
        names = columns  # fitted on a plain array: the data's columns, in their order
    if native.library == "lightgbm":  # LightGBM writes a name's spaces as underscores: the data's own names
        spelled = {column.replace(" ", "_"): column for column in columns}
        names = [name if name in columns else spelled.get(name, name) for name in names]
    if len(names) != native.n_features:
        raise BoostedPackageError(
            f"{training.path} has {len(names)} feature columns, the model takes {native.n_features}"
        )
    missing = [name for name in names if name not in columns]
    if missing:
        raise BoostedPackageError(f"{training.path} has no column {missing[0]!r}, which the model takes")
    return list(names)


def _signature(native: NativeModel, frame: Any) -> Signature:
    columns = []
    for j, name in enumerate(frame.columns):
        values = frame[name]
        nullable = bool(values.isna().any())
        if j in native.categories:
            if len(native.categories[j]) > MAX_CATEGORIES:
                raise BoostedPackageError(
                    f"column {name!r} has {len(native.categories[j])} categories; a signature lists at most "
                    f"{MAX_CATEGORIES}"
                )
            columns.append(Column(name=name, type="string", nullable=nullable,
                                  categories=tuple(native.categories[j]), unknown="accept", coded=True))  # fmt: skip
            continue
        kind = values.dtype.kind
        if kind not in "biuf":
            raise BoostedPackageError(
                f"column {name!r} holds text, but the model takes it as a number (no categories recorded for it)"
            )
        column_type = "boolean" if kind == "b" else "long" if kind in "iu" else "double"
        columns.append(Column(name=name, type=column_type, nullable=nullable))
    return Signature(inputs=tuple(columns))


def _as_given(native: NativeModel, frame: Any, signature: Signature) -> Any:
    """The rows as the library's users give them: categorical columns as pandas categories of the model's."""
    import pandas as pd

    given = frame.copy()
    for column in signature.inputs:
        if column.coded:
            given[column.name] = pd.Categorical(frame[column.name], categories=list(column.categories or ()))
    return given


def _codes(frame: Any, signature: Signature) -> np.ndarray:
    """The rows as the server gives them to Treelite: numbers, a category's code, NaN for missing or unknown."""
    matrix = np.empty((len(frame), len(signature.inputs)))
    for j, column in enumerate(signature.inputs):
        values = frame[column.name]
        if column.coded:
            codes = {category: float(i) for i, category in enumerate(column.categories or ())}
            matrix[:, j] = [codes.get(value, np.nan) for value in values.astype(object)]
        else:
            matrix[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def _classes(native: NativeModel, training: Frame) -> list[Any]:
    n_classes = 2 if native.task == "binary" else native.n_outputs
    if training.y is None:
        return list(range(n_classes))
    values = [v for v in training.y.tolist() if not (isinstance(v, float) and np.isnan(v))]
    if values and all(isinstance(v, bool) for v in values):
        values = [str(v) for v in values]  # "False" < "True": the order of their codes, 0 and 1
    classes = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(classes) != n_classes:
        raise BoostedPackageError(
            f"{training.path}: the target column has {len(classes)} distinct values, the model {n_classes} classes"
        )
    return [int(c) if isinstance(c, float) and c.is_integer() else c for c in classes]


def _json_rows(rows: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return (datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)).isoformat(timespec="seconds")
