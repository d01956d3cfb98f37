"""The loaded model: what it expects, what it returns, and one call that predicts.

:class:`Predictor` wraps a fitted scikit-learn estimator with the description the API needs
(name, version, feature and class names) and records the model-side metrics of every call: the
predicted classes, the count and sum of the input values (for their mean) and, for a version with reference
statistics, every input value in its reference bin (:mod:`.drift`). It also counts the feedback
pairs (predicted class, true class) that clients send for the version.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import drift, metrics
from .artifact import Artifact, ModelLoadError
from .runtime import select_runtime

MAX_CLASS_LABELS = 50  # more classes than this share one "other" metric label
OTHER_CLASS = "other"
# Feedback counters of every (predicted, truth) pair start at 0 for up to this many class labels
# (100 series), so that increase() sees a pair's first count; beyond, they appear when first counted.
FEEDBACK_ZERO_LABELS = 10


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class ModelDescription:
    name: str
    version: str
    sha256: str
    runtime: str  # what executes the model: "treelite" or "sklearn"
    runtime_reason: str  # why that runtime (published in the V2 model metadata)
    estimator: str
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...] | None  # the estimator's classes_, in predict_proba column order
    class_names: tuple[str, ...] | None  # a readable name per class, same order
    has_probabilities: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


class Predictor:
    """A fitted estimator ready to serve; thread-safe for concurrent ``predict`` calls."""

    def __init__(
        self,
        artifact: Artifact,
        name: str = "",
        version: str = "",
        drift_max_features: int = 32,
        runtime: str = "auto",
    ) -> None:
        choice = select_runtime(artifact.estimator, runtime)
        self._runtime = choice.runtime
        self.description = describe(artifact, name, version, choice.runtime.name, choice.reason)
        d = self.description
        self._ready = False
        self._inference_seconds = metrics.INFERENCE_DURATION.labels(d.name, d.version)
        self.requests = metrics.VersionRequests(d.name, d.version)  # counted by http_hooks
        self._feature_values = [
            metrics.FEATURE_VALUE.labels(d.name, d.version, feature) for feature in d.feature_names[:drift_max_features]
        ]
        self._class_counters: dict[Any, Any] = {}
        self.class_labels: tuple[str, ...] = ()  # the metric label of each class (its name, or "other")
        if d.classes is not None and d.class_names is not None:
            many = len(d.classes) > MAX_CLASS_LABELS
            self.class_labels = (OTHER_CLASS,) * len(d.classes) if many else d.class_names
            for cls, label in zip(d.classes, self.class_labels, strict=True):
                self._class_counters[_key(cls)] = metrics.PREDICTIONS.labels(d.name, d.version, label)
        self._init_feedback()
        try:
            self.reference = drift.read_reference(d.metadata, d.feature_names, d.class_names, drift_max_features)
            self.reference_problem = ""
        except drift.InvalidReference as exc:  # served all the same, without drift monitoring
            self.reference, self.reference_problem = drift.DriftReference(), str(exc)
        self._feature_bins = drift.FeatureBins(d.name, d.version, self.reference.features)

    @property
    def has_drift_reference(self) -> bool:
        """Whether live inputs are counted in reference bins (model_server_drift_reference)."""
        return bool(self.reference.features)

    @property
    def ready(self) -> bool:
        return self._ready

    def warm_up(self) -> None:
        """One prediction on a typical row; the model is ready only if it succeeds."""
        d = self.description
        means = d.metadata.get("feature_means")
        row = np.asarray(means if _is_row(means, d.n_features) else [0.0] * d.n_features, dtype=np.float64)
        try:
            self._call(row.reshape(1, -1), with_probabilities=d.has_probabilities)
        except Exception as exc:
            raise ModelLoadError(f"warm-up prediction failed: {type(exc).__name__}: {exc}") from None
        self._ready = True

    def predict(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        """Predict a validated ``(n_rows, n_features)`` float matrix and record metrics."""
        prediction = self.predict_quietly(rows, with_probabilities)
        self._observe(rows, prediction.labels)
        return prediction

    def predict_quietly(self, rows: np.ndarray, with_probabilities: bool = False) -> Prediction:
        """Predict, recording only the model call's duration: a shadow call (:mod:`.shadow`), not served."""
        start = time.perf_counter()
        prediction = self._call(rows, with_probabilities)
        self._inference_seconds.observe(time.perf_counter() - start)
        return prediction

    def _call(self, rows: np.ndarray, with_probabilities: bool) -> Prediction:
        if with_probabilities and self.description.has_probabilities:
            labels, probabilities = self._runtime.predict_with_probabilities(rows)
            return Prediction(labels=labels, probabilities=probabilities)
        return Prediction(labels=self._runtime.predict(rows))

    def _observe(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self._feature_bins.observe(rows)  # first: it asserts that the rows are finite
        metrics.observe_column_sums(self._feature_values, rows)
        if self._class_counters:
            # tolist() gives the Python values the counters are keyed by; Counter beats np.unique on a micro-batch.
            for value, count in collections.Counter(labels.tolist()).items():
                counter = self._class_counters.get(value)
                if counter is not None:
                    counter.inc(count)

    # --- feedback ------------------------------------------------------------------------------
    def _init_feedback(self) -> None:
        d = self.description
        self._class_by_value: dict[Any, int] = {}
        self._class_by_name: dict[str, int] = {}
        for i, (cls, name) in enumerate(zip(d.classes or (), d.class_names or (), strict=True)):
            self._class_by_value.setdefault(_key(cls), i)
            self._class_by_name.setdefault(name, i)
        # Classes that share a label ("other", or a repeated name) share its counters.
        self._feedback_labels = tuple(dict.fromkeys(self.class_labels))
        self._label_of_class = np.array([self._feedback_labels.index(label) for label in self.class_labels], np.intp)
        if len(self._feedback_labels) <= FEEDBACK_ZERO_LABELS:
            for predicted in self._feedback_labels:
                for truth in self._feedback_labels:
                    metrics.FEEDBACK.labels(d.name, d.version, predicted, truth)

    def class_index(self, item: Any) -> int | None:
        """The position in ``classes`` of a class as /predict returns it (``2``) or by its name (``"virginica"``).

        A string is looked up as a name first, then as a class value; None if it is neither.
        """
        if isinstance(item, str) and item in self._class_by_name:
            return self._class_by_name[item]
        return self._class_by_value.get(item)

    def count_feedback(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Count pairs of class positions (:meth:`class_index`) in model_server_feedback_total, one inc per pair."""
        d, n = self.description, len(self._feedback_labels)
        pairs = self._label_of_class[predicted] * n + self._label_of_class[truth]
        counts = np.bincount(pairs, minlength=n * n)
        for index in np.flatnonzero(counts):
            predicted_label, truth_label = self._feedback_labels[index // n], self._feedback_labels[index % n]
            metrics.FEEDBACK.labels(d.name, d.version, predicted_label, truth_label).inc(int(counts[index]))


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
    return ModelDescription(
        name=name or str(meta.get("name") or artifact.path.parent.name or "model"),
        version=version or str(meta.get("version") or "1"),
        sha256=artifact.sha256,
        runtime=runtime,
        runtime_reason=runtime_reason,
        estimator=type(estimator).__name__,
        feature_names=tuple(str(f) for f in feature_names),
        classes=classes,
        class_names=class_names,
        has_probabilities=classes is not None and callable(getattr(estimator, "predict_proba", None)),
        metadata=meta,
    )


def _key(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _is_row(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(isinstance(v, int | float) for v in value)
