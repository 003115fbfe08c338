"""Every PromQL expression of the Grafana dashboard and alert rules, ready for Prometheus.

``grafana_queries(repo)`` reads the committed files under ``deploy/grafana`` and returns
``(where, expr)`` pairs, Grafana's variables replaced by values that suit a Prometheus
scraping streamdrift as job "streamdrift", so that a test can parse them (promtool) or run
them against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DASHBOARD = Path("deploy/grafana/dashboards/streamdrift.json")
ALERTS = Path("deploy/grafana/provisioning/alerting/streamdrift-alerts.yml")
# The provisioned data source: the alert rules name it, the dashboard's data source
# variable (a "datasource" variable, not a query: nothing here for Prometheus) defaults to
# it, and every panel and query variable of the dashboard refers to that variable.
DATASOURCE_UID = "streamdrift-prometheus"
DATASOURCE_VARIABLE = "datasource"
DASHBOARD_DATASOURCE = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}

# What each Grafana variable stands for in a test against job "streamdrift". Multi-value
# variables become the regex of their "All" value.
VARIABLES = {
    "job": "streamdrift",
    "instance": ".+",
    "feature": ".+",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}

# $var, ${var}, ${var:format}, [[var]], [[var:format]]
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::[^}]*)?\}|\[\[(?P<bracketed>\w+)(?::[^\]]*)?\]\]|\$(?P<plain>\w+)")
# label_values(selector, label): the selector is the query Prometheus answers.
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$",
                           re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)


def substitute(expr: str) -> str:
    """Replace Grafana's variables; an unknown one is an error, not left behind.

    >>> substitute('rate(x{job="$job",i=~"${instance}"}[[[__rate_interval]]])')
    'rate(x{job="streamdrift",i=~".+"}[1m])'
    """
    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        if name not in VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels, rows' nested panels included (a collapsed row keeps its own)."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _variable_query(variable: dict[str, Any]) -> str | None:
    """The PromQL behind a query variable, or None when it has none (label_values(label))."""
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str) or not query.strip():
        return None
    if match := _LABEL_VALUES.match(query):
        return match.group("selector").strip()
    if match := _QUERY_RESULT.match(query):
        return match.group("expr").strip()
    if query.lstrip().startswith(("label_values(", "label_names(", "metrics(")):
        return None
    return query


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = _variable_query(variable)
        if query is not None:
            found.append((f"dashboard variable {variable['name']!r}", substitute(query)))
    found.extend((f"dashboard panel {panel.get('title')!r} target {target.get('refId')}",
                  substitute(target["expr"]))
                 for panel in _panels(dashboard.get("panels", []))
                 for target in panel.get("targets", []) if "expr" in target)
    found.extend((f"dashboard annotation {annotation.get('name')!r}",
                  substitute(annotation["expr"]))
                 for annotation in dashboard.get("annotations", {}).get("list", [])
                 if "expr" in annotation)
    return found


def alert_queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            for query in rule.get("data", []):
                if query.get("datasourceUid") == "__expr__":
                    continue
                found.append((f"alert rule {rule.get('title')!r} query {query.get('refId')}",
                              substitute(query["model"]["expr"])))
    return found


def grafana_queries(repo: Path) -> list[tuple[str, str]]:
    """(where, PromQL) for every Prometheus expression of the committed Grafana files."""
    dashboard = json.loads((repo / DASHBOARD).read_text(encoding="utf-8"))
    alerts = yaml.safe_load((repo / ALERTS).read_text(encoding="utf-8"))
    return dashboard_queries(dashboard) + alert_queries(alerts)
