"""Prometheus metrics of the model server.

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set before start (the image sets it) and
wiped at start (``gunicorn.conf.py``), each worker writes its own files, ``/metrics`` sums them,
and ``child_exit`` folds a dead worker's files into archives (:mod:`.worker_files`, which also
answers ``/metrics``): its live gauges disappear, its counts stay. Only versions that some
worker serves are in ``/metrics``. Without that variable (tests, the Flask dev server) the
default single-process registry is used.

Label values are bounded, since each value is a series kept by every replica and Prometheus:
nothing a client sends becomes a label as sent. Routes are URL rules (never raw paths, and
``<unmatched>`` for none), methods are the standard HTTP methods' names or ``other``
(:func:`method_label`), statuses are the HTTP codes the server answers with, and classes and
features come from the loaded model (features capped by DRIFT_MAX_FEATURES, classes beyond
predictor.MAX_CLASS_LABELS share one "other"; feedback names known classes only), bins are 0..9,
missing, a string column's at most 9 most frequent training categories and other, or a boolean's false and true.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    Summary,
)

from .worker_files import VERSION_WORKERS_NAME

M = TypeVar("M", Counter, Histogram)

PREFIX = "model_server"
# RFC 9110's methods and PATCH (RFC 5789); any other method a client invents counts as "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = tuple(float(2**i) for i in range(11))  # 1 .. 1024

REQUESTS = Counter(
    f"{PREFIX}_requests",
    "HTTP requests handled, by route (URL rule), method and status code.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "Time from request start to response, by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    f"{PREFIX}_requests_in_flight",
    "Requests being handled right now, summed over the worker processes.",
    multiprocess_mode="livesum",
)


def in_flight_here() -> float:
    """The requests this process is handling right now (its own IN_FLIGHT value, read without a scrape)."""
    return IN_FLIGHT._value.get()


VERSION_WORKERS = Gauge(
    VERSION_WORKERS_NAME,
    "Worker processes of this replica serving the model version right now (live workers only); versions no "
    "worker serves leave /metrics (monitoring/worker_files.py).",
    ["model", "version"],
    multiprocess_mode="livesum",
)
REQUEST_ROWS = Histogram(
    f"{PREFIX}_request_rows",
    "Rows (samples) per inference request.",
    ["route"],
    buckets=ROW_BUCKETS,
)
INFERENCE_DURATION = Histogram(
    f"{PREFIX}_inference_duration_seconds",
    "Time spent in one model call (one batch), by model version.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    f"{PREFIX}_predictions",
    "Predicted class labels, by model version.",
    ["model", "version", "class"],
)
# The count and sum of the inputs, for the mean per feature; their distribution is in the
# reference-decile bins (FEATURE_BINS), which fit each feature, where fixed buckets could not.
FEATURE_VALUE = Summary(
    f"{PREFIX}_feature_value",
    "Input values per feature (count and sum, for the mean), by model version.",
    ["model", "version", "feature"],
)
FEATURE_BINS = Counter(
    f"{PREFIX}_feature_bin",
    "Live input values per bin of the version's reference, by model version and feature (column): deciles 0..9 of "
    "a number, categories and other of a string, false and true of a boolean, missing (drift.py).",
    ["model", "version", "feature", "bin"],
)
UNKNOWN_CATEGORIES = Counter(
    f"{PREFIX}_unknown_categories",
    "Values of a string column outside the categories seen in training, where the model takes them (its encoder "
    "ignores them), by model version and column.",
    ["model", "version", "column"],
)
FEEDBACK = Counter(
    f"{PREFIX}_feedback",
    "Feedback pairs (predicted class, true class) received for a model version (POST .../feedback).",
    ["model", "version", "predicted", "truth"],
)
REPOSITORY_READ_ERRORS = Counter(
    f"{PREFIX}_repository_read_errors",
    'Polls that found a model\'s folder (or one of its version folders) there but unreadable; model "" is the '
    "repository folder itself. What was loaded from it keeps serving.",
    ["model"],
)
FEEDBACK_RESULTS = Counter(
    f"{PREFIX}_feedback_results",
    "Feedback pairs of a model version by whether its prediction was the true class (correct) or not (wrong); "
    "exact for any number of classes, where the pairs' class labels are bounded.",
    ["model", "version", "result"],
)
MODEL_REQUESTS = Counter(
    f"{PREFIX}_model_requests",
    "Inference requests answered by a model version (/predict and V2 infer), by status code.",
    ["model", "version", "status"],
)
MODEL_REQUEST_DURATION = Histogram(
    f"{PREFIX}_model_request_duration_seconds",
    "Time from request start to response of the inference requests a model version answered.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_REQUESTS = Counter(
    f"{PREFIX}_shadow_requests",
    "Requests also run on a shadow version (shadow.py), by served version (primary) and result: "
    "agree, disagree, error or dropped.",
    ["model", "version", "primary", "result"],
)
SHADOW_PROBABILITY_DIFFERENCE = Summary(
    f"{PREFIX}_shadow_probability_difference",
    "Per shadowed request, the mean absolute difference of the shadow's and the served version's probabilities.",
    ["model", "version", "primary"],
)
MODEL_LOAD_FAILURES = Counter(
    f"{PREFIX}_model_load_failures",
    "Model versions refused by a worker (verification, runtime check or warm-up failed), per attempt.",
    ["model", "version"],
)
# model_info, model_ready, feature_training_mean, model_load_failed and the reference and
# settings gauges of quality monitoring describe the versions loaded right now: computed at
# scrape time from the live models (serving/state_metrics.py).


BATCH_SIZE = Histogram(
    f"{PREFIX}_batch_size",
    "Requests served by one model call (micro-batching).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)
BATCH_QUEUE_WAIT = Histogram(
    f"{PREFIX}_batch_queue_wait_seconds",
    "Time a request waited for its model call to start (micro-batching).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


class Children(Generic[M]):
    """The children of one labelled metric, each made on first use and then looked up.

    ``metric.labels(...)`` checks and converts its arguments and takes a lock on every call
    (about 3 µs); the request path asks for the same few children again and again. Calling a
    ``Children`` with the remaining label values costs a dict lookup. ``prefix`` fixes the first
    label values (a model version's own metrics). The cache keeps every child it made, like
    prometheus_client itself: only for label values from a bounded set (routes, methods, statuses).
    """

    def __init__(self, metric: M, *prefix: str) -> None:
        self._metric = metric
        self._prefix = prefix
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*self._prefix, *values)
        return child


class VersionRequests:
    """One model version's request metrics: count by status, and duration, of the requests it answered."""

    def __init__(self, model: str, version: str) -> None:
        self._by_status = Children(MODEL_REQUESTS, model, version)
        self._duration = MODEL_REQUEST_DURATION.labels(model, version)

    def start_at_zero(self) -> None:
        """Write the 200 series at 0, so that ``increase()`` counts the version's first requests."""
        self._by_status("200")

    def observe(self, status: int, seconds: float) -> None:
        self._by_status(str(status)).inc()
        self._duration.observe(seconds)


def method_label(method: str) -> str:
    """The ``method`` label of a request: its method if a standard one, else ``other``."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value ``v`` (finite), with one write for the sum and one per touched bucket.

    prometheus_client has no bulk observe: per value, ``observe`` scans the buckets in Python and
    writes the sum and a bucket (in multiprocess mode each write takes a lock and touches an mmap).
    This is for the few values of one micro-batch, where plain Python beats numpy's per-call cost.
    It reads the histogram's own fields (``_upper_bounds``, ``_buckets``, ``_sum``) of the pinned
    prometheus_client; tests/unit/model_server/monitoring/test_metrics.py checks the result against ``observe``.
    """
    if not values:
        return
    bounds = histogram._upper_bounds  # ascending, +Inf last
    # observe() counts a value in the first bucket whose bound is >= the value: bisect "left".
    touched = collections.Counter(bisect.bisect_left(bounds, value) for value in values)
    histogram._sum.inc(sum(values))
    for index, count in touched.items():
        histogram._buckets[index].inc(count)


class FixedObservation:
    """``histogram.observe(value)``, ``times`` times, for one value known in advance (``value`` >= 0): its bucket
    found once, then one write per call (two if the value is not 0). For the lone requests of micro-batching,
    counted in memory and written in bulk. Reads the same fields as :func:`observe_many`.
    """

    def __init__(self, histogram: Histogram, value: float) -> None:
        self._bucket = histogram._buckets[bisect.bisect_left(histogram._upper_bounds, value)]
        self._sum = histogram._sum if value else None
        self._value = value

    def observe(self, times: int = 1) -> None:
        self._bucket.inc(times)
        if self._sum is not None:
            self._sum.inc(self._value * times)


def observe_column_sums(summaries: Sequence[Summary], matrix: np.ndarray) -> None:
    """``summaries[j].observe(v)`` for every value ``v`` of column ``j`` of a 2-D array but NaN (missing): two writes
    per column.

    Reads the summaries' own fields (``_count``, ``_sum``) of the pinned prometheus_client;
    tests/unit/model_server/monitoring/test_metrics.py checks the result against ``observe``.
    """
    if matrix.size == 0 or not summaries:
        return
    columns = matrix[:, : len(summaries)]
    present = ~np.isnan(columns)
    if present.all():
        counts, totals = [len(matrix)] * len(summaries), columns.sum(axis=0)
    else:
        counts, totals = present.sum(axis=0).tolist(), np.where(present, columns, 0.0).sum(axis=0)
    for summary, count, total in zip(summaries, counts, totals, strict=True):
        if count:
            summary._count.inc(count)
            summary._sum.inc(float(total))
