"""Rollouts end to end, through nginx: a canary split, a weight change under load, a shadow.

The replicas serve a host repository with model ``iris-rollout``, versions 1 and 2 (policy
all; both the default iris forest, so they always agree), and the ``config.json`` the README's
walk-through edits:

1. ``{"1": 90, "2": 10}``: over 4,000 requests the versions read from the responses
   (``X-Model-Version``) are within ±3 points of 90/10, every answer is counted for its version,
   and the dashboard's served-share query agrees with the responses within 1 %.
2. ``{"2": 100}`` written under load: within two poll intervals no request reaches version 1,
   and no request fails.
3. ``{"1": 100}`` with version 2 as a 100 % shadow: every request is compared exactly once, and
   every panel of the dashboard's Rollout row returns data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from model_server.tools.train import train_into_repository

from harness.load import send_load
from tests.dashboard import all_values, panel_queries, render_expr, row_of_panels

from .stack import ROOT, Stack, serving_repository, wait_for

MODEL = "iris-rollout"
POLL_SECONDS = 5.0  # MODEL_POLL_SECONDS: the compose default, which the tests run with
REQUESTS = 4_000
DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "model-serving.json").read_text())


def write_config(root: Path, **rollout: object) -> float:
    """Publish the model's config.json as the README says (a temp name, then a rename); return when."""
    temporary = root / MODEL / ".config.json.tmp"
    temporary.write_text(json.dumps({"version_policy": {"all": {}}, **rollout}))
    temporary.chmod(0o644)
    os.replace(temporary, root / MODEL / "config.json")
    return time.monotonic()


def in_force(stack: Stack, shares: dict[str, float], shadow: str | None = None) -> None:
    """Wait until every replica reports these traffic shares (and shadow role) for the model."""
    replicas = int(stack.env["MODEL_REPLICAS"])

    def reported() -> bool | None:
        got = stack.query(f'model_server_traffic_share{{job="model",model="{MODEL}"}}')
        by_version: dict[str, set[float]] = {}
        for r in got:
            by_version.setdefault(r["metric"]["version"], set()).add(round(float(r["value"][1]), 6))
        roles = stack.query(f'count(model_server_rollout_role{{job="model",model="{MODEL}",role="shadow"}})')
        shadows = int(float(roles[0]["value"][1])) if roles else 0
        return (
            len(got) == replicas * len(shares)
            and by_version == {v: {s} for v, s in shares.items()}
            and shadows == (replicas if shadow else 0)
        ) or None

    wait_for(f"every replica to apply traffic {shares}, shadow {shadow}", reported, timeout=60, interval=2)


@pytest.fixture(scope="module")
def rollout(stack: Stack) -> Iterator[tuple[Stack, Path]]:
    root = Path(tempfile.mkdtemp(prefix="e2e-rollout-"))
    for version in ("1", "2"):
        train_into_repository(root, MODEL, version)
    write_config(root, traffic={"1": 90, "2": 10})
    try:
        with serving_repository(stack, root, default_model=MODEL):
            in_force(stack, {"1": 0.9, "2": 0.1})
            yield stack, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def answered(stack: Stack, metric: str, by: str, **labels: str) -> dict[str, float]:
    selector = ",".join(f'{k}="{v}"' for k, v in {"job": "model", "model": MODEL, **labels}.items())
    return {r["metric"][by]: float(r["value"][1]) for r in stack.query(f"sum by ({by}) ({metric}{{{selector}}})")}


def test_a_90_10_canary_split(rollout: tuple[Stack, Path]) -> None:
    stack, _ = rollout

    result = send_load(f"{stack.nginx_url}/predict", REQUESTS, concurrency=8)

    assert result.failed == 0, result.summary()
    versions = Counter(version for _, version in result.versions)
    assert set(versions) == {"1", "2"}
    share = versions["2"] / REQUESTS
    print(f"\n[e2e] canary 10 %: version 2 answered {versions['2']} of {REQUESTS} ({share:.1%})")
    assert abs(share - 0.10) <= 0.03, versions

    # Every answer counted once, for the version that gave it.
    expected = {v: float(n) for v, n in versions.items()}
    wait_for("Prometheus to count every answer per version",
             lambda: answered(stack, "model_server_model_requests_total", "version") == expected or None,
             timeout=60, interval=2)  # fmt: skip

    # rate() extrapolates each replica's increase to the window's end by the time since its last
    # scrape (up to a scrape interval) relative to the span its samples cover. Right after a burst
    # that span is a few scrapes long, so replicas scraped at different moments weigh up to twice
    # as much as each other, and the shares move by a few percent. Once every replica's series
    # covers 70 s or more, the weights differ by at most a seventh.
    samples = f'min(count_over_time(model_server_model_requests_total{{job="model",model="{MODEL}"}}[10m]))'
    wait_for("every replica's counters to cover 70 s of scrapes",
             lambda: [r for r in stack.query(samples) if float(r["value"][1]) >= 8] or None,
             timeout=120, interval=5)  # fmt: skip

    # The dashboard's served share per version, over a window holding the whole run, from 0.
    [served] = [e for t, e in panel_queries(DASHBOARD) if t.startswith("Traffic share") and "traffic_share" not in e]
    promql = render_expr(served, interval="10m", variables={**all_values(DASHBOARD), "model": MODEL})
    shares = {r["metric"]["version"]: float(r["value"][1]) for r in stack.query(promql)}
    print(f"[e2e] dashboard served shares: {shares}")
    for version, n in versions.items():
        assert shares[version] == pytest.approx(n / REQUESTS, rel=0.01), (shares, versions)


def test_a_weight_change_under_load_applies_within_two_polls(rollout: tuple[Stack, Path]) -> None:
    stack, root = rollout
    stop = threading.Event()
    load: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: load.setdefault("result", send_load(f"{stack.nginx_url}/predict", 0, concurrency=4, until=stop))
    )
    worker.start()
    try:
        time.sleep(3)  # under load
        written = write_config(root, traffic={"2": 100})
        in_force(stack, {"1": 0.0, "2": 1.0})
        time.sleep(POLL_SECONDS)  # some more load on the new weights
    finally:
        stop.set()
        worker.join(timeout=60)
    result = load["result"]

    assert result.failed == 0, result.summary()  # type: ignore[attr-defined]
    answers = result.versions  # type: ignore[attr-defined]
    last_v1 = max((t for t, v in answers if v == "1"), default=written)
    print(f"\n[e2e] weights 90/10 -> 0/100 under load: {len(answers)} requests, 0 failed; "
          f"last answer from version 1 {last_v1 - written:.1f} s after the write")  # fmt: skip
    assert last_v1 - written <= 2 * POLL_SECONDS
    after = [v for t, v in answers if t > written + 2 * POLL_SECONDS]
    assert after and set(after) == {"2"}


def test_a_100_percent_shadow_compares_every_request_once(rollout: tuple[Stack, Path]) -> None:
    stack, root = rollout
    write_config(root, traffic={"1": 100}, shadow={"version": "2", "percent": 100})
    in_force(stack, {"1": 1.0, "2": 0.0}, shadow="2")
    time.sleep(POLL_SECONDS)  # every worker, not only the one that answered the scrape
    compared = {"version": "2", "primary": "1"}
    assert sum(answered(stack, "model_server_shadow_requests_total", "result", **compared).values()) == 0

    result = send_load(f"{stack.nginx_url}/predict", 2_000, concurrency=8)

    assert result.failed == 0, result.summary()
    assert {v for _, v in result.versions} == {"1"}  # the shadow never answers

    def comparisons() -> dict[str, float] | None:
        counts = answered(stack, "model_server_shadow_requests_total", "result", **compared)
        return counts if sum(counts.values()) >= 2_000 else None

    counted = wait_for("Prometheus to count every comparison", comparisons, timeout=60, interval=2)
    print(f"\n[e2e] shadow 100 %: {result.sent} requests, comparisons {counted}")
    # Identical models: every comparison agrees; none failed, none was dropped, none counted twice.
    assert counted == {"agree": 2_000, "disagree": 0, "error": 0, "dropped": 0}

    # Every panel of the Rollout row returns data now (a primary, a shadow, comparisons).
    rows = row_of_panels(DASHBOARD)
    queries = [(t, e) for t, e in panel_queries(DASHBOARD) if rows[t] == "Rollout"]
    assert len(queries) >= 6
    for title, expr in queries:
        promql = render_expr(expr, interval="1m", variables=all_values(DASHBOARD))
        wait_for(f"Rollout panel {title!r} to return data", lambda q=promql: stack.query(q) or None, timeout=30)
