"""Read the PromQL queries out of a Grafana dashboard and make them runnable.

Used by the dashboard tests: `panel_queries` lists every query of every panel (panels
nested in collapsed rows included), `render_expr` replaces Grafana's macros and template
variables (`all_values`) so that a query can be sent as is to Prometheus' /api/v1/query, and
`metric_names` lists the metrics (and recording rules) a query reads, so that a static test can
check each against what exists: a misspelt name returns no data, which a query's fallback
(``or vector(0)``) would hide from the live test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

# Prometheus' scrape_interval, also set as the datasource's timeInterval in
# grafana/provisioning/datasources/prometheus.yml; Grafana derives $__rate_interval from it.
SCRAPE_INTERVAL = "10s"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}
# $name, ${name}, ${name:format} and the deprecated [[name]] forms of Grafana variables
# ($1 / ${1} in label_replace replacements are left alone).
_VARIABLE = re.compile(
    "|".join(
        (
            r"\$\{(?P<braced>[A-Za-z_]\w*)(?::\w+)?\}",
            r"\$(?P<plain>[A-Za-z_]\w*)",
            r"\[\[(?P<old>\w+)\]\]",
        )
    )
)

# PromQL: string literals, label matchers ({...}), range and subquery brackets ([...]), the label
# lists of by/without/on/ignoring/group_left/group_right, and the words that are not metric names.
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
     "atan2", "inf", "nan", "Inf", "NaN"}
)  # fmt: skip


def iter_panels(dashboard: Mapping) -> Iterator[dict]:
    """Yield every panel, depth first, including rows and the panels inside rows.

    Collapsed rows keep their panels in the row's own "panels" list; expanded rows have an
    empty list and their panels follow them at the top level.
    """
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from iter_panels(panel)


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL expr) for every target of every panel, in dashboard order.

    Targets without an "expr" are returned with an empty string so that callers notice.
    """
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets") or []:
            queries.append((panel.get("title", ""), target.get("expr", "")))
    return queries


def row_of_panels(dashboard: Mapping) -> dict[str, str]:
    """Panel title -> the title of the row it sits in ("" above the first row)."""
    rows: dict[str, str] = {}
    current = ""
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            current = panel.get("title", "")
            for inner in panel.get("panels") or []:  # a collapsed row holds its panels
                rows[inner.get("title", "")] = current
        else:
            rows[panel.get("title", "")] = current
    return rows


def all_values(dashboard: Mapping) -> dict[str, str]:
    """Each template variable with the value its "All" option sends (its ``allValue``, e.g. ``.*``)."""
    variables = {}
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if not variable.get("includeAll") or variable.get("allValue") is None:
            raise ValueError(f"variable ${variable.get('name')} has no 'All' value to render with")
        variables[variable["name"]] = variable["allValue"]
    return variables


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration such as "10s", "1m30s" or "500ms"."""
    text = text.strip()
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration Prometheus accepts, in the largest unit that divides it: "1h", "70s"."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"duration must be positive: {seconds}")
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def render_expr(
    expr: str,
    interval: str = "1m",
    *,
    range_: str = "1h",
    scrape_interval: str = SCRAPE_INTERVAL,
    variables: Mapping[str, str] | None = None,
) -> str:
    """Substitute Grafana macros and template variables in a panel's PromQL expression.

    - ``$__interval`` becomes ``interval``; ``$__rate_interval`` becomes what Grafana uses:
      max(interval + scrape_interval, 4 * scrape_interval), i.e. "70s" for the defaults;
    - ``$__range`` becomes ``range_`` (``_s`` / ``_ms`` variants as numbers);
    - any other ``$name`` / ``${name}`` / ``[[name]]`` is looked up in ``variables``
      (:func:`all_values` gives the dashboard's, as its "All" option renders them).

    Raises ValueError for an unknown macro or variable, so a test cannot send a query that
    still contains one.
    """
    interval_s = parse_duration(interval)
    scrape_s = parse_duration(scrape_interval)
    range_s = parse_duration(range_)
    rate_interval_s = max(interval_s + scrape_s, 4 * scrape_s)
    values = {
        "__interval": format_duration(interval_s),
        "__interval_ms": str(round(interval_s * 1000)),
        "__rate_interval": format_duration(rate_interval_s),
        "__rate_interval_ms": str(round(rate_interval_s * 1000)),
        "__range": format_duration(range_s),
        "__range_s": str(round(range_s)),
        "__range_ms": str(round(range_s * 1000)),
    }
    values.update(variables or {})

    def substitute(match: re.Match) -> str:
        name = match.group("braced") or match.group("plain") or match.group("old")
        if name not in values:
            raise ValueError(f"unknown Grafana macro or variable ${name} in: {expr}")
        return values[name]

    return _VARIABLE.sub(substitute, expr)


def metric_names(expr: str) -> set[str]:
    """The metric and recording-rule names a PromQL expression selects (``up``, ``model_server:feature_psi:1h``).

    Not a parser, but enough for the dashboard's queries: strings, label matchers, range brackets
    and grouping label lists are dropped first; then every name not followed by ``(`` (a function
    or an aggregation) that is not a keyword is a selector. ValueError for a selector by
    ``__name__``, which this cannot read: a test must not pass a name it did not check.
    """
    if "__name__" in expr:
        raise ValueError(f"a selector by __name__ is not read here: {expr}")
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # sum(, rate(, label_replace(, vector(
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names
