"""Assertions and small utilities shared by the model server's unit tests."""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from model_server.config import Settings
from model_server.serving.live_models import Servable
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

MODEL = "iris-rf"
INFER = f"/v2/models/{MODEL}/infer"
# The environment variables Settings reads (kept out of the tests' processes and subprocesses).
SETTINGS_ENV = tuple(name.upper() for name in Settings.model_fields)


def repository_of(model_dir: Path, root: Path, name: str = MODEL, version: int = 1) -> Path:
    """A repository at ``root`` whose only version is a copy of ``model_dir`` (a link would lead out of it)."""
    shutil.copytree(model_dir, root / name / str(version))
    return root


def served(app: Flask, name: str = MODEL, version: int | None = None) -> Servable:
    """The version ``app`` serves right now (unversioned: the newest loaded)."""
    return app.extensions["model_server"].live_models.snapshot.route(name, version).servable


def assert_error(response: TestResponse, status: int, *fragments: str) -> str:
    """The response is ``{"error": "..."}`` as JSON with ``status``; the message names each fragment."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str)
    assert message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    return message


def sample(name: str, **labels: str) -> float:
    """A sample of the in-process default registry (0 when the labelled child does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def bin_counts(feature: str, model: str = MODEL, version: str = "1") -> np.ndarray:
    """The 10 ``model_server_feature_bin_total`` counters of a feature, bin 0 first (0 where absent)."""
    labels = {"model": model, "version": version, "feature": feature}
    return np.array([sample("model_server_feature_bin_total", **labels, bin=str(i)) for i in range(10)])


def expected_bins(edges: Any, values: Any) -> np.ndarray:
    """Bin i holds edges[i-1] <= v < edges[i] (below the first edge: 0; from the last: 9), counted one bin at a
    time by comparisons: the rule of model_server.monitoring.reference, computed without its searchsorted."""
    bounds = np.concatenate([[-np.inf], np.asarray(edges, dtype=np.float64), [np.inf]])
    values = np.asarray(values, dtype=np.float64)
    return np.array([np.count_nonzero((bounds[i] <= values) & (values < bounds[i + 1])) for i in range(10)])


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus text exposition -> {(sample name, sorted labels): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def scraped(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def v2_input(data: Any, shape: list[int], datatype: str = "FP64", name: str = "input-0") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    """``app`` on a real HTTP server (werkzeug, threaded) on a free local port, for real clients."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Capture what the JSON handler installed by ``create_app`` writes; yields a reader of the lines.

    The handler itself is kept (its formatter and request-id filter are what is under test);
    only its stream is swapped for a buffer.
    """
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(handlers) == 1, "create_app installs exactly one JSON handler on the root logger"
    handler = handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        handler.setStream(previous)


def finishes(call: Callable[[], object], seconds: float = 10) -> object:
    """``call()``, in a daemon thread: a read that blocks fails the test instead of hanging it."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]
