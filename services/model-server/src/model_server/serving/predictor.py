"""The loaded model: what it expects, what it returns, and one call that predicts.

:class:`Predictor` wraps a fitted scikit-learn estimator with the description the API needs
(name, version, feature and class names) and the runtime that executes it (:mod:`.runtime`);
every served call is reported to the version's :class:`..monitoring.version_metrics.VersionMetrics`.
It is made in two steps (:mod:`.version_loader`): :func:`prepare`, the heavy part, then the
:class:`Predictor` with its metrics.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..monitoring.version_metrics import VersionMetrics
from ..repository.artifact import Artifact, ModelLoadError
from ..repository.boosted import BoostedModel
from ..repository.signature import Signature, SignatureError, read_signature
from .model_input import ModelInput
from .runtime import COMPILED_PIPELINE, Runtime, select_runtime


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class ModelDescription:
    name: str
    version: str
    sha256: str
    runtime: str  # what executes the model: "sklearn", "treelite", "sklearn+treelite" or "numpy+treelite"
    runtime_reason: str  # why that runtime (published in the V2 model metadata)
    estimator: str
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...] | None  # the estimator's classes_, in predict_proba column order
    class_names: tuple[str, ...] | None  # a readable name per class, same order
    has_probabilities: bool
    signature: Signature
    metadata: dict[str, Any] = field(default_factory=dict)
    platform: str = "sklearn"  # what made the model: scikit-learn, or a gradient-boosting library

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


@dataclass(frozen=True)
class PreparedModel:
    """A version's model, checked and warmed up, before it serves: what :func:`prepare` makes."""

    runtime: Runtime
    description: ModelDescription
    model_input: ModelInput


def prepare(artifact: Artifact, name: str = "", version: str = "", runtime: str = "auto") -> PreparedModel:
    """Choose and check the runtime (:mod:`.runtime`), describe the model and warm it up on a typical row.

    Pure computation on the artifact's own objects (no metrics, no logging): safe to run in a
    native thread beside the serving greenlets (:mod:`.version_loader`). ModelLoadError when the
    model cannot serve.
    """
    d = describe(artifact, name, version)
    choice = select_runtime(artifact.estimator, runtime, d.signature)
    d = dataclasses.replace(d, runtime=choice.runtime.name, runtime_reason=choice.reason)
    # A bare forest on Treelite needs no column names: its rows stay a matrix, fitted on a DataFrame or not. A compiled
    # preprocessing takes the rows as they were validated.
    model_input = ModelInput(
        d.signature,
        frame=d.signature.frame and choice.runtime.name != "treelite",
        as_validated=choice.runtime.name == COMPILED_PIPELINE,
    )
    try:
        _call(choice.runtime, d, model_input(model_input.example(d.metadata)), with_probabilities=d.has_probabilities)
    except Exception as exc:
        raise ModelLoadError(f"warm-up prediction failed: {type(exc).__name__}: {exc}") from None
    return PreparedModel(choice.runtime, d, model_input)


class Predictor:
    """A prepared model serving, with its version's metrics; thread-safe for concurrent ``predict`` calls."""

    def __init__(self, prepared: PreparedModel, drift_max_features: int = 32) -> None:
        self._runtime = prepared.runtime
        self._input = prepared.model_input
        self.description = d = prepared.description
        self.metrics = VersionMetrics(
            d.name, d.version, self._input.numeric_columns, d.classes, d.class_names, d.metadata, drift_max_features,
            categories=[
                (j, c.name, frozenset(c.categories or ()))
                for j, c in enumerate(d.signature.inputs)
                if c.type == "string" and c.categories is not None and c.unknown == "accept"
            ],
            string_columns={c.name: j for j, c in enumerate(d.signature.inputs) if c.type == "string"},
            boolean_columns={c.name: j for j, c in enumerate(d.signature.inputs) if c.type == "boolean"},
        )  # fmt: skip

    @property
    def ready(self) -> bool:
        """Always: a predictor is made from a model already warmed up (:func:`prepare`)."""
        return True

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        """Predict validated rows (:mod:`..rest.records`) and record them in the version's metrics."""
        prediction = self.predict_quietly(rows, with_probabilities)
        self.metrics.observe(self._input.numeric(rows), prediction.labels)
        if rows.dtype == object:
            self.metrics.observe_categories(rows)
        return prediction

    def predict_quietly(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        """Predict, recording only the model call's duration: a shadow call (:mod:`.shadow`), not served."""
        start = time.perf_counter()
        prediction = _call(self._runtime, self.description, self._input(rows), with_probabilities)
        self.metrics.inference_seconds.observe(time.perf_counter() - start)
        return prediction


def _call(runtime: Runtime, description: ModelDescription, rows: Any, with_probabilities: bool) -> Prediction:
    if not isinstance(rows, np.ndarray):
        # A DataFrame's value that overflows inside the pipeline (a scaled number past float32) is refused by the
        # model's input check as a ValueError (a 422: rest/dispatch.py), not first warned about on each such call.
        # (A matrix's values are within float32 already: rest/validation.py.)
        with np.errstate(over="ignore", invalid="ignore"):
            return _predict(runtime, description, rows, with_probabilities)
    return _predict(runtime, description, rows, with_probabilities)


def _predict(runtime: Runtime, description: ModelDescription, rows: Any, with_probabilities: bool) -> Prediction:
    if with_probabilities and description.has_probabilities:
        labels, probabilities = runtime.predict_with_probabilities(rows)
        return Prediction(labels=labels, probabilities=probabilities)
    return Prediction(labels=runtime.predict(rows))


def describe(
    artifact: Artifact, name: str = "", version: str = "", runtime: str = "sklearn", runtime_reason: str = ""
) -> ModelDescription:
    """Derive what the API needs from the estimator, preferring the recorded metadata."""
    estimator, meta = artifact.estimator, artifact.metadata
    n_features = getattr(estimator, "n_features_in_", None)
    for key in ("feature_names", "class_names"):
        if meta.get(key) is not None and not isinstance(meta[key], list):
            raise ModelLoadError(f"metadata '{key}' must be an array of names, got {type(meta[key]).__name__}")
    feature_names = meta.get("feature_names") or list(getattr(estimator, "feature_names_in_", []))
    if not feature_names and n_features:
        feature_names = [f"x{i}" for i in range(int(n_features))]
    if not feature_names:
        raise ModelLoadError("cannot tell how many features the model takes (no n_features_in_)")
    if n_features is not None and len(feature_names) != int(n_features):
        raise ModelLoadError(f"metadata lists {len(feature_names)} feature names but the model takes {n_features}")

    classes = getattr(estimator, "classes_", None)
    class_names = None
    if classes is not None:
        classes = tuple(np.asarray(classes).tolist())
        recorded = meta.get("class_names")
        class_names = tuple(str(n) for n in (recorded if recorded and len(recorded) == len(classes) else classes))
    fitted = getattr(estimator, "feature_names_in_", None)
    try:
        signature = read_signature(
            meta, tuple(str(f) for f in feature_names), None if fitted is None else tuple(str(f) for f in fitted)
        )
    except SignatureError as exc:
        raise ModelLoadError(str(exc)) from None
    return ModelDescription(
        name=name or str(meta.get("name") or artifact.path.parent.name or "model"),
        version=version or str(meta.get("version") or "1"),
        sha256=artifact.sha256,
        runtime=runtime,
        runtime_reason=runtime_reason,
        estimator=estimator.kind if isinstance(estimator, BoostedModel) else type(estimator).__name__,
        feature_names=tuple(str(f) for f in feature_names),
        classes=classes,
        class_names=class_names,
        has_probabilities=classes is not None and callable(getattr(estimator, "predict_proba", None)),
        signature=signature,
        metadata=meta,
        platform=estimator.library if isinstance(estimator, BoostedModel) else "sklearn",
    )
