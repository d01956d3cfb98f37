"""What one model version records about its traffic: requests, model calls, inputs, predictions, feedback.

:class:`VersionMetrics` is the monitoring half of a loaded version (its :class:`..serving.predictor.Predictor`
holds one and reports every served call to it): the request count and duration by status
(counted by the inference endpoints), the model calls' duration, the predicted classes, the count
and sum of the input values (for their mean) and, for a version with reference statistics, every
input value in its reference bin (:mod:`.drift`). It also counts the feedback pairs (predicted
class, true class) that clients send for the version: right or wrong (live accuracy), and by
class label (the confusion table).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import drift, metrics

MAX_CLASS_LABELS = 50  # more classes than this share one "other" metric label
OTHER_CLASS = "other"
# Feedback counters of every (predicted, truth) pair start at 0 for up to this many class labels
# (100 series), so that increase() sees a pair's first count; beyond, they appear when first counted.
FEEDBACK_ZERO_LABELS = 10


class VersionMetrics:
    """The metrics of one loaded version; thread-safe for concurrent calls, as prometheus_client is."""

    def __init__(
        self,
        name: str,
        version: str,
        feature_names: Sequence[str],
        classes: Sequence[Any] | None,
        class_names: Sequence[str] | None,
        metadata: dict[str, Any],
        drift_max_features: int = 32,
        categories: Sequence[tuple[int, str, frozenset[str]]] = (),
        string_columns: Mapping[str, int] | None = None,
        boolean_columns: Mapping[str, int] | None = None,
    ) -> None:
        self.requests = metrics.VersionRequests(name, version)  # counted by the inference endpoints
        self.inference_seconds = metrics.INFERENCE_DURATION.labels(name, version)
        self._feature_values = [
            metrics.FEATURE_VALUE.labels(name, version, feature) for feature in feature_names[:drift_max_features]
        ]
        self._class_counters: dict[Any, Any] = {}
        self.class_labels: tuple[str, ...] = ()  # the metric label of each class (its name, or "other")
        if classes is not None and class_names is not None:
            many = len(classes) > MAX_CLASS_LABELS
            self.class_labels = (OTHER_CLASS,) * len(classes) if many else tuple(class_names)
            for cls, label in zip(classes, self.class_labels, strict=True):
                self._class_counters[_key(cls)] = metrics.PREDICTIONS.labels(name, version, label)
        self._name, self._version = name, version
        self._init_feedback(classes or (), class_names or ())
        try:
            self.reference = drift.read_reference(
                metadata, feature_names, class_names, drift_max_features, string_columns, boolean_columns
            )
            self.reference_problem = ""
        except drift.InvalidReference as exc:  # served all the same, without drift monitoring
            self.reference, self.reference_problem = drift.DriftReference(), str(exc)
        self._feature_bins = drift.FeatureBins(name, version, self.reference.features)
        self._category_bins = drift.CategoryBins(name, version, (*self.reference.categories, *self.reference.booleans))
        # (position in the rows, known categories, counter) of the string columns that take unknown categories
        self._unknown = [
            (position, known, metrics.UNKNOWN_CATEGORIES.labels(name, version, column))
            for position, column, known in categories[:drift_max_features]
        ]

    @property
    def has_drift_reference(self) -> bool:
        """Whether live inputs are counted in reference bins (model_server_drift_reference)."""
        return bool(self.reference.columns)

    def observe(self, rows: np.ndarray, labels: np.ndarray) -> None:
        """Count a served model call's input rows and predicted labels."""
        self._feature_bins.observe(rows)  # first: it asserts that the rows are finite
        metrics.observe_column_sums(self._feature_values, rows)
        if self._class_counters:
            # tolist() gives the Python values the counters are keyed by; Counter beats np.unique on a micro-batch.
            for value, count in collections.Counter(labels.tolist()).items():
                counter = self._class_counters.get(value)
                if counter is not None:
                    counter.inc(count)

    def observe_categories(self, rows: np.ndarray) -> None:
        """Count the string and boolean columns' values (an object matrix): in their drift bins, and the strings
        outside the training categories where the model takes them."""
        self._category_bins.observe(rows)
        for position, known, counter in self._unknown:
            unknown = sum(1 for value in rows[:, position].tolist() if value is not None and value not in known)
            if unknown:
                counter.inc(unknown)

    # --- feedback ------------------------------------------------------------------------------
    def _init_feedback(self, classes: Sequence[Any], class_names: Sequence[str]) -> None:
        self._class_by_value: dict[Any, int] = {}
        self._class_by_name: dict[str, int] = {}
        for i, (cls, name) in enumerate(zip(classes, class_names, strict=True)):
            self._class_by_value.setdefault(_key(cls), i)
            self._class_by_name.setdefault(name, i)
        # Classes that share a label ("other", or a repeated name) share its counters.
        # Right and wrong are counted by class position, exactly: with more than MAX_CLASS_LABELS
        # classes every pair is (other, other), which the pairs alone would count as right.
        self._right = metrics.FEEDBACK_RESULTS.labels(self._name, self._version, "correct")
        self._wrong = metrics.FEEDBACK_RESULTS.labels(self._name, self._version, "wrong")
        self._feedback_labels = tuple(dict.fromkeys(self.class_labels))
        self._label_of_class = np.array([self._feedback_labels.index(label) for label in self.class_labels], np.intp)
        if len(self._feedback_labels) <= FEEDBACK_ZERO_LABELS:
            for predicted in self._feedback_labels:
                for truth in self._feedback_labels:
                    metrics.FEEDBACK.labels(self._name, self._version, predicted, truth)

    def class_index(self, item: Any) -> int | None:
        """The position in ``classes`` of a class as /predict returns it (``2``) or by its name (``"virginica"``).

        A string is looked up as a name first, then as a class value; None if it is neither.
        """
        if isinstance(item, str) and item in self._class_by_name:
            return self._class_by_name[item]
        return self._class_by_value.get(item)

    def count_feedback(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Count pairs of class positions (:meth:`class_index`): right or wrong, and by class label (the confusion)."""
        right = int(np.count_nonzero(predicted == truth))
        self._right.inc(right)
        self._wrong.inc(len(predicted) - right)
        n = len(self._feedback_labels)
        pairs = self._label_of_class[predicted] * n + self._label_of_class[truth]
        counts = np.bincount(pairs, minlength=n * n)
        for index in np.flatnonzero(counts):
            predicted_label, truth_label = self._feedback_labels[index // n], self._feedback_labels[index % n]
            metrics.FEEDBACK.labels(self._name, self._version, predicted_label, truth_label).inc(int(counts[index]))


def _key(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
