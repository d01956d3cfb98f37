"""Gauges of what a worker serves right now, produced when ``/metrics`` is scraped.

``model_info``, ``model_ready``, ``feature_training_mean``, ``model_load_failed`` and
``repository_unreadable`` describe the current set of model versions, which changes when the
repository does, as do each model's rollout (``traffic_share``, ``rollout_role``) and
``model_config_invalid``; so do the references that prometheus/rules/quality.yml compares the
live counts with: ``feature_reference_share``, ``prediction_reference_share``,
``drift_reference`` and ``model_heldout_accuracy``, beside two settings of its ModelAccuracyLow
alert (``accuracy_alert_margin``, ``accuracy_min_feedback``). Written as ordinary gauges, they
could never forget an unloaded version: prometheus_client's multiprocess mode keeps every label
set ever written in the workers' files (there is no label removal), and it ignores collectors
registered in a worker. So they are computed from the live models' current snapshot by a
collector that the scrape adds to its own, per-scrape registry
(:func:`..monitoring.worker_files.exposition`): an unloaded version disappears from them at the next
scrape. The worker answering the scrape speaks for its replica; every worker polls the same
repository and converges on the same set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from ..config import Settings
from ..monitoring.metrics import PREFIX
from .live_models import Servable, Snapshot

# name: (help, labels) of every gauge the collector yields
_GAUGES: dict[str, tuple[str, list[str]]] = {
    "model_info": (
        "Model versions loaded and serving (value is always 1).",
        ["model", "version", "sha256", "runtime"],
    ),
    "feature_training_mean": (
        "Mean of each input feature in the training data of a loaded version (drift reference).",
        ["model", "version", "feature"],
    ),
    "model_ready": (
        "1 when a version of the model is loaded and warmed up; 0 when the repository has it but none serves.",
        ["model"],
    ),
    "model_load_failed": (
        "1 for a version the version policy wants that was refused (see the log, or the repository index).",
        ["model", "version"],
    ),
    "feature_reference_share": (
        "Share of the training sample in each reference bin of a column, per loaded version: deciles 0..9 of a "
        "number, the most frequent categories and other of a string, false and true of a boolean, and missing where "
        "the column takes it.",
        ["model", "version", "feature", "bin"],
    ),
    "prediction_reference_share": (
        "Share of each class in the predictions on the training sample, per loaded version.",
        ["model", "version", "class"],
    ),
    "drift_reference": (
        "1 when a loaded version has (valid) feature reference statistics and its inputs are binned, else 0.",
        ["model", "version"],
    ),
    "traffic_share": (
        "Share of the model's unversioned requests each loaded version gets (config.json traffic; without it the "
        "newest loaded version gets 1).",
        ["model", "version"],
    ),
    "rollout_role": (
        "1 for each role a loaded version has in the model's rollout: primary (largest share), canary (another "
        "version with a share), shadow.",
        ["model", "version", "role"],
    ),
    "repository_unreadable": (
        "1 while a model's folder (or a version folder of it) exists but cannot be read; without a model label, the "
        "repository folder itself. What was loaded from it keeps serving; see the log for why.",
        ["model"],
    ),
    "model_config_invalid": (
        "1 while the model's config.json is invalid (the last valid configuration stays in force; see the log).",
        ["model"],
    ),
    "model_heldout_accuracy": (
        "Accuracy of a loaded version on held-out data, from its metadata (metrics.accuracy).",
        ["model", "version"],
    ),
}


class ServingCollector:
    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self._snapshot = snapshot
        self._settings = settings
        self._max_features = settings.drift_max_features

    def collect(self) -> Iterator[Metric]:
        info = _gauge("model_info")
        means = _gauge("feature_training_mean")
        for servable in self._snapshot.servables():
            d = servable.description
            info.add_metric([d.name, d.version, d.sha256, d.runtime], 1)
            values = d.metadata.get("feature_means")  # of the numeric columns, in order
            numeric = [c.name for c in d.signature.inputs if c.numeric]
            if isinstance(values, list) and len(values) == len(numeric):
                for feature, mean in zip(numeric[: self._max_features], values, strict=False):
                    if isinstance(mean, int | float):
                        means.add_metric([d.name, d.version, feature], float(mean))

        ready = _gauge("model_ready")
        failed = _gauge("model_load_failed")
        names = {s.name for s in self._snapshot.statuses} | set(self._snapshot.models)
        for name in sorted(names):
            ready.add_metric([name], 1 if self._snapshot.models.get(name) else 0)
        for status in self._snapshot.statuses:
            if status.failed:  # refused: UNAVAILABLE, or READY from memory when nothing else can serve
                failed.add_metric([status.name, str(status.version)], 1)
        unreadable = _gauge("repository_unreadable")
        unreadable.add_metric([""], 1 if "" in self._snapshot.unreadable else 0)  # the repository: no model label
        for name in sorted((set(self._snapshot.models) | set(self._snapshot.unreadable)) - {""}):
            unreadable.add_metric([name], 1 if name in self._snapshot.unreadable else 0)
        yield from (info, ready, means, failed, unreadable)
        yield from self._rollout()
        yield from self._quality()

    def _rollout(self) -> Iterator[Metric]:
        """Each model's traffic split and roles, and whether its config.json is invalid right now."""
        shares, roles, invalid = _gauge("traffic_share"), _gauge("rollout_role"), _gauge("model_config_invalid")
        for name, versions in self._snapshot.models.items():
            routing = self._snapshot.routing(name)
            for version, share in routing.shares(versions).items():
                shares.add_metric([name, str(version)], share)
            for version, held in routing.roles(versions).items():
                for role in held:
                    roles.add_metric([name, str(version), role], 1)
        for name in sorted(set(self._snapshot.models) | set(self._snapshot.config_errors)):
            invalid.add_metric([name], 1 if name in self._snapshot.config_errors else 0)
        yield from (shares, roles, invalid)

    def _quality(self) -> Iterator[Metric]:
        """The references of input drift, prediction drift and live accuracy, and the accuracy alert's settings."""
        feature_shares = _gauge("feature_reference_share")
        prediction_shares = _gauge("prediction_reference_share")
        has_reference = _gauge("drift_reference")
        heldout = _gauge("model_heldout_accuracy")
        for servable in self._snapshot.servables():
            d, version_metrics = servable.description, servable.predictor.metrics
            for column in version_metrics.reference.columns:
                for label, share in column.bin_shares().items():
                    feature_shares.add_metric([d.name, d.version, column.name, label], share)
            for label, share in _class_shares(servable).items():
                prediction_shares.add_metric([d.name, d.version, label], share)
            has_reference.add_metric([d.name, d.version], 1 if version_metrics.has_drift_reference else 0)
            accuracy = heldout_accuracy(d.metadata)
            if accuracy is not None:
                heldout.add_metric([d.name, d.version], accuracy)
        margin = GaugeMetricFamily(
            f"{PREFIX}_accuracy_alert_margin",
            "ModelAccuracyLow fires when live accuracy is this far under the held-out one (ACCURACY_ALERT_MARGIN).",
            value=self._settings.accuracy_alert_margin,
        )
        min_feedback = GaugeMetricFamily(
            f"{PREFIX}_accuracy_min_feedback",
            "Feedback pairs an hour needs before ModelAccuracyLow judges it (ACCURACY_MIN_FEEDBACK).",
            value=self._settings.accuracy_min_feedback,
        )
        yield from (feature_shares, prediction_shares, has_reference, heldout, margin, min_feedback)


def _gauge(name: str) -> GaugeMetricFamily:
    documentation, labels = _GAUGES[name]
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)


def _class_shares(servable: Servable) -> dict[str, float]:
    """The reference share of every class of the model, by its metric label (0 if the reference omits it)."""
    recorded = servable.predictor.metrics.reference.predictions
    if recorded is None:
        return {}
    shares: dict[str, float] = {}
    names = dict(zip(servable.description.class_names or (), servable.predictor.metrics.class_labels, strict=True))
    for name, label in names.items():  # a name given to two classes counts once, as in the reference
        shares[label] = shares.get(label, 0.0) + recorded.get(name, 0.0)
    return shares


def heldout_accuracy(metadata: dict[str, Any]) -> float | None:
    """``metrics.accuracy`` of the metadata, if it is a number between 0 and 1."""
    recorded = metadata.get("metrics")
    accuracy = recorded.get("accuracy") if isinstance(recorded, dict) else None
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0 <= accuracy <= 1:
        return None
    return float(accuracy)
