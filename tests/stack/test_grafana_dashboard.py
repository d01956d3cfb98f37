"""Static checks of the Grafana provisioning and the model-serving dashboard (no docker).

Whether every query returns data is checked against a live Prometheus by the e2e tests;
here we check structure, datasource wiring and the conventions those tests rely on.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from model_server.config import Settings
from model_server.monitoring import metrics as server_metrics
from model_server.serving.live_models import Snapshot
from model_server.serving.state_metrics import ServingCollector
from prometheus_client.metrics import MetricWrapperBase

from tests import dashboard as dashboard_helper
from tests.dashboard import all_values, iter_panels, metric_names, panel_queries, render_expr

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "model-serving.json"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS_FILE = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))

# What the other scrape targets export: Prometheus' own series, and the nginx exporter's
# (nginx-prometheus-exporter, from stub_status). The model server's come from its code.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
NGINX_EXPORTER_METRICS = frozenset(
    {"nginx_up", "nginx_http_requests_total"}
    | {f"nginx_connections_{state}" for state in ("accepted", "active", "handled", "reading", "waiting", "writing")}
)
# The samples a metric family of each type exposes (prometheus_client, multiprocess mode: no _created).
_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}

# Where the compose file mounts grafana/dashboards and grafana/provisioning.
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
PROVISIONING_MOUNT = "/etc/grafana/provisioning"


@pytest.fixture(scope="module")
def dashboard_text():
    return DASHBOARD_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dashboard(dashboard_text):
    return json.loads(dashboard_text)


@pytest.fixture(scope="module")
def datasources():
    return yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def providers():
    return yaml.safe_load(PROVIDERS_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def datasource_uid(datasources):
    prometheus = [d for d in datasources["datasources"] if d.get("type") == "prometheus"]
    assert len(prometheus) == 1, f"expected one Prometheus datasource, got {prometheus}"
    return prometheus[0]["uid"]


def _panels(dashboard):
    return list(iter_panels(dashboard))


def _query_panels(dashboard):
    return [p for p in _panels(dashboard) if p.get("type") != "row"]


def _all_exprs(dashboard):
    return [expr for _, expr in panel_queries(dashboard)]


def _sample_names(family) -> set[str]:
    return {family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type]}


@pytest.fixture(scope="module")
def existing_series() -> set[str]:
    """Every metric a dashboard query may read: the model server's (its metrics module, and the gauges its
    scrape computes), the recording rules, the nginx exporter's and Prometheus' own."""
    exported = set()
    for metric in vars(server_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                exported |= _sample_names(family)
    for family in ServingCollector(Snapshot(), Settings()).collect():
        exported |= _sample_names(family)
    assert "model_server_unknown_categories_total" in exported and "model_server_drift_reference" in exported
    recorded = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            recorded |= {rule["record"] for rule in group["rules"] if "record" in rule}
    assert "model_server:feature_psi:1h" in recorded
    return exported | recorded | NGINX_EXPORTER_METRICS | PROMETHEUS_SERIES


# ------------------------------------------------------------------------ provisioning


def test_datasource_provisioning(datasources):
    assert datasources["apiVersion"] == 1
    assert isinstance(datasources["datasources"], list) and datasources["datasources"]
    (prometheus,) = [d for d in datasources["datasources"] if d.get("type") == "prometheus"]
    assert prometheus["name"]
    assert prometheus["uid"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["access"] == "proxy"
    assert prometheus["isDefault"] is True
    assert prometheus["editable"] is False
    # $__rate_interval is only right if Grafana knows the scrape interval.
    assert prometheus["jsonData"]["timeInterval"] == dashboard_helper.SCRAPE_INTERVAL


def test_dashboard_provider_provisioning(providers):
    assert providers["apiVersion"] == 1
    assert isinstance(providers["providers"], list) and providers["providers"]
    for provider in providers["providers"]:
        assert provider["name"]
        assert provider["type"] == "file"
        assert provider["folder"], "dashboards should land in a named folder"
        assert provider["options"]["path"] == DASHBOARDS_MOUNT


def test_provider_path_matches_compose_mount(providers):
    paths = {p["options"]["path"] for p in providers["providers"]}
    assert paths == {DASHBOARDS_MOUNT}
    # Every dashboard and provisioning file is a config of the grafana service, at its path.
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    files = {name: spec["file"].removeprefix("./") for name, spec in compose["configs"].items()}
    mounted = {ref["target"]: files[ref["source"]] for ref in compose["services"]["grafana"]["configs"]}
    expected = {f"{DASHBOARDS_MOUNT}/{p.name}": p for p in (GRAFANA / "dashboards").glob("*.json")}
    expected |= {f"{PROVISIONING_MOUNT}/{p.relative_to(GRAFANA / 'provisioning')}": p
                 for p in (GRAFANA / "provisioning").rglob("*.yml")}  # fmt: skip
    assert mounted == {target: str(p.relative_to(ROOT)) for target, p in expected.items()}


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "model-serving"
    assert dashboard["title"] == "Model serving"
    # Grafana 12 writes schemaVersion 41; older numbers get migrated on every load.
    assert dashboard["schemaVersion"] >= 39
    assert "id" not in dashboard or dashboard["id"] is None


def test_dashboard_is_not_an_export_with_inputs(dashboard, dashboard_text):
    assert "__inputs" not in dashboard
    assert "__requires" not in dashboard
    assert "${DS_" not in dashboard_text


def test_panel_ids_unique(dashboard):
    ids = [p.get("id") for p in _panels(dashboard)]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), sorted(ids)


def test_every_panel_and_target_uses_the_provisioned_datasource(dashboard, datasource_uid):
    expected = {"type": "prometheus", "uid": datasource_uid}
    for panel in _panels(dashboard):
        assert panel.get("datasource") == expected, panel.get("title")
        for target in panel.get("targets") or []:
            assert target.get("datasource") == expected, (panel.get("title"), target)
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if not annotation.get("builtIn"):
            assert annotation.get("datasource") == expected, annotation.get("name")


def test_every_panel_has_a_query(dashboard):
    panels = _query_panels(dashboard)
    assert len(panels) >= 15
    for panel in panels:
        targets = panel.get("targets") or []
        assert targets, f"panel {panel.get('title')!r} has no targets"
        assert any(t.get("expr", "").strip() for t in targets), panel.get("title")
        for target in targets:
            assert target.get("expr", "").strip(), (panel.get("title"), target)
            assert target.get("refId"), (panel.get("title"), target)
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel.get("title")


def test_panel_titles_unique_and_set(dashboard):
    titles = [p.get("title") for p in _query_panels(dashboard)]
    assert all(titles)
    assert len(titles) == len(set(titles)), titles


def test_units_set(dashboard):
    for panel in _query_panels(dashboard):
        if panel["type"] in ("timeseries", "stat"):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            assert unit, f"panel {panel['title']!r} has no unit"


def test_grid_positions(dashboard):
    rectangles = []
    for panel in dashboard["panels"]:  # the top-level layout (rows are expanded)
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0, panel["title"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["y"] >= 0, panel["title"]
        rectangles.append((panel["title"], pos))
    for i, (title_a, a) in enumerate(rectangles):
        for title_b, b in rectangles[i + 1 :]:
            overlap = (
                a["x"] < b["x"] + b["w"]
                and b["x"] < a["x"] + a["w"]
                and a["y"] < b["y"] + b["h"]
                and b["y"] < a["y"] + a["h"]
            )
            assert not overlap, f"{title_a!r} overlaps {title_b!r}"


def _balanced(expr: str) -> bool:
    """Brackets balanced and string literals closed (PromQL strings: "..", '..', `..`)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    quote = None
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and quote is None


def test_model_and_version_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"model", "version", "feature"}
    assert "model_server_model_info" in variables["model"]["definition"]
    assert "$model" in variables["version"]["definition"], "versions follow the chosen model"
    assert "$model" in variables["feature"]["definition"], "features follow the chosen model"
    assert all_values(dashboard) == {"model": ".*", "version": ".*", "feature": ".*"}
    per_version = [e for _, e in panel_queries(dashboard) if 'version=~"$version"' in e]
    for metric in ("model_server_model_requests_total", "model_server_model_request_duration_seconds_bucket",
                   "model_server_predictions_total", "model_server_unknown_categories_total",
                   "model_server:feature_missing_share:1h",
                   "model_server:feature_missing_reference_share:max"):  # fmt: skip
        assert any(re.search(re.escape(metric) + r'\{[^}]*version=~"\$version"', e) for e in per_version), (
            f"no per-version panel on {metric}"
        )


def test_every_query_reads_metrics_that_exist(dashboard, existing_series):
    # A misspelt metric returns no data; the live test cannot see it where a query falls back to
    # `or vector(0)` (unknown categories, alerts, errors), and a panel of an empty series shows nothing.
    for title, expr in panel_queries(dashboard):
        names = metric_names(expr)
        assert names, (title, expr)
        unknown = names - existing_series
        assert not unknown, f"panel {title!r} reads {sorted(unknown)}, which nothing exports or records: {expr}"
    for variable in dashboard["templating"]["list"]:
        selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"]).group(1)
        assert metric_names(selector) <= existing_series, (variable["name"], variable["definition"])


def test_exprs_are_balanced_and_render(dashboard):
    for title, expr in panel_queries(dashboard):
        assert _balanced(expr), f"{title}: unbalanced brackets or quotes in {expr}"
        rendered = render_expr(expr, variables=all_values(dashboard))
        assert "$" not in re.sub(r'"[^"]*"', "", rendered), (title, rendered)
        assert _balanced(rendered), (title, rendered)


def test_range_windows_use_rate_interval(dashboard):
    # Grafana's $__rate_interval always spans >= 4 scrapes, so rate() never comes back empty
    # because the window holds a single sample.
    for title, expr in panel_queries(dashboard):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{title}: window [{window}] in {expr}"


def _uses(exprs, pattern):
    return any(re.search(pattern, e) for e in exprs)


@pytest.mark.parametrize(
    "what, pattern",
    [
        ("request rate total", r"sum\(rate\(model_server_requests_total\{"),
        ("request rate per replica", r"sum by \(instance\) \(rate\(model_server_requests_total"),
        ("5xx ratio", r'model_server_requests_total\{[^}]*status=~"5\.\."'),
        ("4xx ratio", r'model_server_requests_total\{[^}]*status=~"4\.\."'),
        (
            "request p50",
            r"histogram_quantile\(0\.5, .*model_server_request_duration_seconds_bucket",
        ),
        (
            "request p95",
            r"histogram_quantile\(0\.95, .*model_server_request_duration_seconds_bucket",
        ),
        (
            "request p99",
            r"histogram_quantile\(0\.99, .*model_server_request_duration_seconds_bucket",
        ),
        ("inference p50", r"histogram_quantile\(0\.5, .*model_server_inference_duration_seconds"),
        ("inference p95", r"histogram_quantile\(0\.95, .*model_server_inference_duration_seconds"),
        ("inference p99", r"histogram_quantile\(0\.99, .*model_server_inference_duration_seconds"),
        ("in-flight requests", r"model_server_requests_in_flight"),
        ("replicas up", r'up\{job="model"\}'),
        ("replicas ready", r"model_server_model_ready"),
        (
            "predictions by class",
            r"sum by \([^)]*class[^)]*\) \(rate\(model_server_predictions_total",
        ),
        (
            "live feature mean",
            r"model_server_feature_value_sum.*/.*model_server_feature_value_count",
        ),
        ("training feature mean", r"model_server_feature_training_mean"),
        ("rows per request", r"model_server_request_rows_bucket"),
        ("nginx connections", r"nginx_connections_active"),
        ("nginx request rate", r"rate\(nginx_http_requests_total"),
        ("firing alerts", r'ALERTS\{alertstate="firing"\}'),
        ("model info", r"model_server_model_info"),
        ("input PSI, 1 h", r"model_server:feature_psi:1h"),
        ("input PSI, 5 m", r"model_server:feature_psi:5m"),
        ("prediction PSI", r"model_server:prediction_psi:1h"),
        ("live vs reference bin shares", r"model_server:feature_bin_share:1h"),
        ("reference bin shares", r"model_server:feature_reference_share:max"),
        ("predicted class shares vs training", r"model_server:prediction_reference_share:max"),
        ("live accuracy", r"model_server:live_accuracy:1h"),
        ("held-out accuracy", r"model_server_model_heldout_accuracy"),
        ("confusion", r"model_server:feedback_pairs:1h"),
        ("no reference", r"model_server_drift_reference"),
        ("live missing values, 1 h", r"model_server:feature_missing_share:1h"),
        ("live missing values, 5 m", r"model_server:feature_missing_share:5m"),
        ("training missing values", r"model_server:feature_missing_reference_share:max"),
        ("unknown categories", r"rate\(model_server_unknown_categories_total\{"),
        ("served traffic share per version", r"sum by \(model, version\) \(rate\(model_server_model_requests_total"),
        ("configured traffic share", r"model_server_traffic_share"),
        ("canary vs primary", r'model_server_rollout_role\{[^}]*role=~"primary\|canary"'),
        ("shadow agreement", r'model_server_shadow_requests_total\{[^}]*result="agree"'),
        ("shadow probability difference", r"model_server_shadow_probability_difference_sum"),
        ("config.json invalid", r"model_server_model_config_invalid"),
    ],
)
def test_required_panels_present(dashboard, what, pattern):
    assert _uses(_all_exprs(dashboard), pattern), f"no panel query for {what} ({pattern})"


def test_psi_panels_draw_the_watch_and_alert_lines(dashboard):
    psi = [p for p in _query_panels(dashboard) if any(":feature_psi:" in t["expr"] or ":prediction_psi:" in t["expr"]
                                                      for t in p["targets"])]  # fmt: skip
    assert len(psi) == 2
    for panel in psi:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, 0.1, 0.25], panel["title"]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"].startswith("line")
        assert panel["fieldConfig"]["defaults"]["noValue"] == "no reference"


def test_possibly_empty_series_have_a_fallback(dashboard):
    # These series legitimately do not exist while all is well (no 5xx yet, no alert);
    # the e2e test requires every query to return data then.
    for title, expr in panel_queries(dashboard):
        if re.search(r'status=~"[45]\.\."', expr) or "ALERTS{" in expr:
            assert re.search(r"or (on\(\) )?(vector\(0\)|label_replace\(vector\(0\))", expr), (
                title,
                expr,
            )


# ------------------------------------------------------------------ tests/dashboard.py


def test_panel_queries_includes_collapsed_rows():
    dashboard = {
        "panels": [
            {"type": "timeseries", "title": "top", "targets": [{"expr": "up"}, {"expr": "1"}]},
            {
                "type": "row",
                "title": "collapsed",
                "collapsed": True,
                "panels": [{"type": "stat", "title": "inner", "targets": [{"expr": "vector(1)"}]}],
            },
            {"type": "text", "title": "no targets"},
        ]
    }
    assert panel_queries(dashboard) == [("top", "up"), ("top", "1"), ("inner", "vector(1)")]


def test_panel_queries_covers_the_dashboard(dashboard):
    queries = panel_queries(dashboard)
    n_targets = sum(len(p.get("targets") or []) for p in _panels(dashboard))
    assert len(queries) == n_targets


def test_metric_names_reads_the_selectors_only():
    expr = (
        'histogram_quantile(0.99, sum by (le, model) (rate(model_server_x_bucket{job="model",a=~"b|c"}[5m])))'
        " / on (model) group_left () max without (instance) (model_server:y:1h offset 5m)"
        ' > bool 1e3 or on() label_replace(vector(0), "model", "none", "", "") unless count(ALERTS{x="{y}"}) by (le)'
    )
    assert metric_names(expr) == {"model_server_x_bucket", "model_server:y:1h", "ALERTS"}
    assert metric_names("sum(rate(model_server_unknown_categoris_total[5m])) or vector(0)") == {
        "model_server_unknown_categoris_total"
    }, "a fallback does not hide the name it falls back from"
    with pytest.raises(ValueError):
        metric_names('{__name__="up"}')


def test_render_expr_macros():
    expr = "rate(x[$__rate_interval]) + rate(x[${__interval}]) + increase(x[$__range])"
    assert render_expr(expr) == "rate(x[70s]) + rate(x[1m]) + increase(x[1h])"
    assert render_expr("rate(x[$__rate_interval])", "5m") == "rate(x[310s])"
    assert render_expr("rate(x[$__rate_interval])", "50s") == "rate(x[1m])"
    assert render_expr("rate(x[$__interval])", "1500ms") == "rate(x[1500ms])"
    assert render_expr("rate(x[$__rate_interval])", "15s") == "rate(x[40s])"
    assert render_expr("x > $__range_s", range_="2h") == "x > 7200"
    assert render_expr("x > $__interval_ms", "1m30s") == "x > 90000"
    assert render_expr("x[[[__interval]]]", "30s") == "x[30s]"


def test_render_expr_variables_and_unknowns():
    rendered = render_expr('up{instance=~"$instance"}', variables={"instance": ".*"})
    assert rendered == 'up{instance=~".*"}'
    replacement = 'label_replace(up, "a", "$1", "b", "(.*)")'
    assert render_expr(replacement) == replacement
    with pytest.raises(ValueError):
        render_expr('up{instance=~"$instance"}')
    with pytest.raises(ValueError):
        render_expr("rate(x[$__unknown])")
    with pytest.raises(ValueError):
        render_expr("rate(x[$__interval])", "soon")
