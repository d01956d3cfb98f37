"""Every panel of the Grafana dashboard returns data from the live Prometheus after load.

The Rollout row's panels need a rollout (a canary and a shadow): test_09_rollout.py checks them.

Where Grafana itself cannot run (no registry here), this and the structural checks in
tests/stack/test_grafana_dashboard.py are what prove the dashboard.
"""

import json

import pytest

from harness.load import send_load
from tests.dashboard import all_values, panel_queries, render_expr, row_of_panels

from .stack import ROOT, Stack, wait_for

DASHBOARD = ROOT / "grafana" / "dashboards" / "model-serving.json"
DASHBOARD_JSON = json.loads(DASHBOARD.read_text())
ROLLOUT_ROW = "Rollout"  # its queries need a canary and a shadow: checked by test_09_rollout.py
QUERIES = [(t, e) for t, e in panel_queries(DASHBOARD_JSON) if row_of_panels(DASHBOARD_JSON)[t] != ROLLOUT_ROW]


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:
    """Mixed traffic (one row, several rows, probabilities, V2, feedback), then two scrapes and rule runs."""
    url = stack.nginx_url
    assert send_load(f"{url}/predict", 300, concurrency=4).failed == 0
    rows = {"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], "return_probabilities": True}
    assert send_load(f"{url}/predict", 100, concurrency=4, body=rows).failed == 0
    v2 = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.9, 3.0, 4.2, 1.5]}]}
    assert send_load(f"{url}/v2/models/iris-rf/infer", 100, concurrency=4, body=v2).failed == 0
    feedback = {"prediction": [0, 1, 2, 2], "truth": [0, 1, 2, 1]}
    assert send_load(f"{url}/feedback", 50, concurrency=2, body=feedback).failed == 0
    # rate() needs two samples of every series: wait for them.
    wait_for(
        "two scrapes after the load",
        lambda: stack.query('count_over_time(model_server_request_rows_count{job="model"}[1m]) >= 2') or None,
        timeout=60,
    )
    return stack


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{t}: {e[:60]}" for t, e in QUERIES])
def test_panel_query_returns_data(loaded: Stack, title: str, expr: str) -> None:
    promql = render_expr(expr, interval="1m", variables=all_values(DASHBOARD_JSON))  # the "All" choices
    result = wait_for(f"panel {title!r} to return data", lambda: loaded.query(promql) or None, timeout=30, interval=3)
    assert result, f"panel {title!r}: {promql} returned no data"
