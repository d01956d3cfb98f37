"""Gauges of what a worker serves right now, produced when ``/metrics`` is scraped.

``model_info``, ``model_ready``, ``feature_training_mean`` and ``model_load_failed`` describe
the current set of model versions, which changes when the repository does. Written as ordinary
gauges, they could never forget an unloaded version: prometheus_client's multiprocess mode keeps
every label set ever written in the workers' files (there is no label removal), and it ignores
collectors registered in a worker. So they are computed from the registry's current snapshot by
a collector that the scrape adds to its own, per-scrape registry (:func:`.metrics.exposition`):
an unloaded version disappears from them at the next scrape. The worker answering the scrape
speaks for its replica; every worker polls the same repository and converges on the same set.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .metrics import PREFIX
from .registry import Snapshot, State


class ServingCollector:
    def __init__(self, snapshot: Snapshot, drift_max_features: int) -> None:
        self._snapshot = snapshot
        self._max_features = drift_max_features

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            f"{PREFIX}_model_info",
            "Model versions loaded and serving (value is always 1).",
            labels=["model", "version", "sha256", "runtime"],
        )
        means = GaugeMetricFamily(
            f"{PREFIX}_feature_training_mean",
            "Mean of each input feature in the training data of a loaded version (drift reference).",
            labels=["model", "version", "feature"],
        )
        for servable in self._snapshot.servables():
            d = servable.description
            info.add_metric([d.name, d.version, d.sha256, d.runtime], 1)
            values = d.metadata.get("feature_means")
            if isinstance(values, list) and len(values) == d.n_features:
                for feature, mean in zip(d.feature_names[: self._max_features], values, strict=False):
                    if isinstance(mean, int | float):
                        means.add_metric([d.name, d.version, feature], float(mean))

        ready = GaugeMetricFamily(
            f"{PREFIX}_model_ready",
            "1 when a version of the model is loaded and warmed up; 0 when the repository has it but none serves.",
            labels=["model"],
        )
        failed = GaugeMetricFamily(
            f"{PREFIX}_model_load_failed",
            "1 for a version the version policy wants that was refused (see the log, or the repository index).",
            labels=["model", "version"],
        )
        names = {s.name for s in self._snapshot.statuses} | set(self._snapshot.models)
        for name in sorted(names):
            ready.add_metric([name], 1 if self._snapshot.models.get(name) else 0)
        for status in self._snapshot.statuses:
            if status.failed and status.state == State.UNAVAILABLE:
                failed.add_metric([status.name, str(status.version)], 1)
        yield from (info, ready, means, failed)
