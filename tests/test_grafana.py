"""The Grafana dashboard and provisioning files (deploy/grafana): generated, consistent with
the Prometheus alerts, and every PromQL expression in them valid."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from streamdrift.rules import RuleParameters, alerting_rules, value_conditions
from tests.grafana_queries import (
    ALERTS,
    DASHBOARD,
    DASHBOARD_DATASOURCE,
    DATASOURCE_UID,
    DATASOURCE_VARIABLE,
    grafana_queries,
)

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"
GENERATOR = GRAFANA / "generate.py"
GENERATED = [
    Path("dashboards/streamdrift.json"),
    Path("provisioning/alerting/streamdrift-alerts.yml"),
    Path("provisioning/datasources/streamdrift.yml"),
    Path("provisioning/dashboards/streamdrift.yml"),
]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("streamdrift_grafana_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((REPO / DASHBOARD).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def alerts() -> dict:
    return yaml.safe_load((REPO / ALERTS).read_text(encoding="utf-8"))


def all_panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(all_panels(panel.get("panels", [])))
    return found


def prometheus_alerts() -> list[dict]:
    return alerting_rules(RuleParameters())


# (a) The committed files are the generator's output.

def test_generator_output_matches_committed_files(tmp_path):
    result = subprocess.run([sys.executable, str(GENERATOR), "--output-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    for relative in GENERATED:
        committed = (GRAFANA / relative).read_text(encoding="utf-8")
        generated = (tmp_path / relative).read_text(encoding="utf-8")
        assert generated == committed, (
            f"deploy/grafana/{relative} differs from the generator's output: "
            "run `python deploy/grafana/generate.py` and commit the result")
    written = {path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file()}
    assert written == set(GENERATED)


def test_generator_is_importable_and_writes_where_it_is_told(tmp_path):
    generator = load_generator()
    assert generator.dashboard_json() == (GRAFANA / GENERATED[0]).read_text(encoding="utf-8")
    # Importing it wrote nothing; main() writes where it is told.
    assert generator.main(["--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / GENERATED[1]).is_file()


# (b) The dashboard.

def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "streamdrift"
    assert dashboard["title"] == "streamdrift: feature drift"
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["annotations"]["list"], "the built-in annotation list is missing"


def test_every_panel_and_target_uses_the_datasource_variable(dashboard):
    """No panel names a data source uid: a Grafana whose Prometheus has another uid than
    the provisioned one (kube-prometheus-stack's is "prometheus") picks it in the variable."""
    panels = [panel for panel in all_panels(dashboard["panels"]) if panel["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        where = f"panel {panel.get('title')!r}"
        assert panel["datasource"] == DASHBOARD_DATASOURCE, where
        assert panel["targets"], f"{where} has no target"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), where
        for target in panel["targets"]:
            assert target["datasource"] == DASHBOARD_DATASOURCE, where
            assert target["expr"].strip(), f"{where} target {target['refId']} has no expr"
    # The provisioned uid appears once: as the variable's default.
    text = json.dumps(dashboard)
    assert text.count(DATASOURCE_UID) == 1, "a data source uid outside the variable"


def test_the_datasource_variable_defaults_to_the_provisioned_datasource(dashboard):
    variables = dashboard["templating"]["list"]
    # First: the query variables use it.
    datasource = variables[0]
    assert datasource["name"] == DATASOURCE_VARIABLE
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["multi"] is False
    assert datasource["includeAll"] is False
    assert datasource["current"]["value"] == DATASOURCE_UID
    provisioned = yaml.safe_load((GRAFANA / GENERATED[2]).read_text(encoding="utf-8"))
    [source] = provisioned["datasources"]
    assert (datasource["current"]["value"], datasource["current"]["text"]) == (
        source["uid"], source["name"])
    # Every ${...} data source reference of the dashboard names a variable it defines.
    names = {variable["name"] for variable in variables}
    references = re.findall(r'"uid": "\$\{(\w+)\}"', json.dumps(dashboard))
    assert references
    assert set(references) <= names


def test_panel_ids_unique_and_positioned(dashboard):
    panels = all_panels(dashboard["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids), ids
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) >= {"x", "y", "w", "h"}, panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]


def test_template_variables(dashboard):
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert set(variables) >= {"job", "instance", "feature"}
    assert variables["job"]["query"] == "label_values(up, job)"
    assert variables["job"]["current"]["value"] == "streamdrift"
    assert variables["instance"]["query"] == (
        'label_values(streamdrift_messages_total{job="$job"}, instance)')
    assert variables["feature"]["query"] == (
        'label_values(streamdrift_kl_divergence{job="$job"}, feature)')
    for name in ("instance", "feature"):
        assert variables[name]["multi"] is True
        assert variables[name]["includeAll"] is True
    for name in ("job", "instance", "feature"):
        assert variables[name]["datasource"] == DASHBOARD_DATASOURCE, name


def test_dashboard_covers_the_service_metrics(dashboard):
    exprs = " ".join(target["expr"] for panel in all_panels(dashboard["panels"])
                     for target in panel.get("targets", []))
    for metric in ("streamdrift_kl_divergence", "streamdrift_drift_threshold",
                   "streamdrift_drift_p_value", "streamdrift_window_samples",
                   "streamdrift_window_min_samples", "streamdrift_window_messages",
                   "streamdrift_feature_drifted", "streamdrift_messages_total",
                   "streamdrift_invalid_messages_total", "streamdrift_consumer_lag",
                   "streamdrift:kl_divergence:fleet10m", "streamdrift:js_divergence:fleet10m",
                   "streamdrift_baseline_info", "streamdrift_kafka_connected",
                   "streamdrift_ready", "up{", "streamdrift_feature_missing_ratio",
                   "streamdrift_baseline_missing_ratio", "streamdrift_scan_score",
                   "streamdrift_sequential_statistic", "streamdrift_scan_alarms_total",
                   "streamdrift_sequential_alarms_total"):
        assert metric in exprs, metric


def test_dashboard_parses_into_the_sdk_models(dashboard):
    """The JSON fits grafana-foundation-sdk's Grafana 11.6 models: known panel plugins with
    typed options, Prometheus targets."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.models import dashboard as dashboard_model
    from grafana_foundation_sdk.models import prometheus as prometheus_model

    plugins.register_default_plugins()
    parsed = dashboard_model.Dashboard.from_json(dashboard)
    assert parsed.uid == "streamdrift"
    panels = []
    for panel in parsed.panels or []:
        if isinstance(panel, dashboard_model.RowPanel):
            panels.extend(panel.panels)
        else:
            panels.append(panel)
    assert panels
    for panel in panels:
        module = f"grafana_foundation_sdk.models.{panel.type_val.replace('-', '')}"
        assert type(panel.options).__module__ == module, panel.title
        for query in panel.targets or []:
            assert isinstance(query, prometheus_model.Dataquery), panel.title


# (c) The alert rules.

def test_alert_rules_match_the_prometheus_alerts(alerts):
    generator = load_generator()
    conditions = value_conditions(RuleParameters())
    assert alerts["apiVersion"] == 1
    [group] = alerts["groups"]
    assert group["folder"] == "streamdrift"
    assert group["interval"] == "1m"
    rules = {rule["title"]: rule for rule in group["rules"]}
    expected = {alert["alert"]: alert for alert in prometheus_alerts()}
    assert len(rules) == len(group["rules"]), "two Grafana rules share a title"
    assert set(rules) == set(expected)
    uids = [rule["uid"] for rule in group["rules"]]
    assert len(set(uids)) == len(uids)
    for name, alert in expected.items():
        rule = rules[name]
        condition = conditions[name]
        assert rule["uid"] == name.lower()[:40]
        assert len(rule["uid"]) <= 40
        assert rule["for"] == alert["for"], name
        static = {key: value for key, value in alert["labels"].items() if "{{" not in value}
        assert rule["labels"] == static, name
        assert rule["noDataState"] == "OK"
        assert rule["execErrState"] == "Error"
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        for key, text in alert["annotations"].items():
            translated = rule["annotations"][key]
            assert translated == generator.grafana_template(text), (name, key)
            assert translated == text.replace("$value", "$values.D.Value"), (name, key)
        queries = {query["refId"]: query for query in rule["data"]}
        uses_value = any("$value" in text for text in alert["annotations"].values())
        assert list(queries) == (["A", "B", "C", "D"] if uses_value else ["A", "B", "C"]), name
        for ref_id in ("A", "D") if uses_value else ("A",):
            query = queries[ref_id]
            assert query["datasourceUid"] == DATASOURCE_UID, (name, ref_id)
            assert query["model"]["datasource"]["uid"] == DATASOURCE_UID, (name, ref_id)
            assert query["model"]["instant"] is True, (name, ref_id)
            assert query["relativeTimeRange"] == {"from": 600, "to": 0}, (name, ref_id)
        # A: the alert's value, which holds exactly where the Prometheus alert does
        # (tests/test_rules.py); C: its threshold.
        assert queries["A"]["model"]["expr"] == condition.value, name
        assert queries["C"]["model"]["conditions"] == [
            {"evaluator": {"params": [float(condition.threshold)], "type": condition.op}}], name
        if uses_value:
            # D carries the Prometheus expression itself, for Prometheus' $value.
            assert queries["D"]["model"]["expr"] == f"({alert['expr']}) or ({condition.value})"


def test_alert_rules_have_no_dollar_where_grafana_expands_env_vars(alerts):
    """Grafana's file provisioning expands $VAR in uid, title, for, condition and labels
    (not in annotations nor query models): a template there would be emptied."""
    for rule in alerts["groups"][0]["rules"]:
        for key in ("uid", "title", "for", "condition"):
            assert "$" not in rule[key], (rule["title"], key)
        for name, value in rule.get("labels", {}).items():
            assert "$" not in value, (rule["title"], name)


def test_alert_rule_expressions_are_wired(alerts):
    for rule in alerts["groups"][0]["rules"]:
        queries = {query["refId"]: query for query in rule["data"]}
        assert rule["condition"] == "C"
        assert rule["condition"] in queries, rule["title"]
        for ref_id, query in queries.items():
            assert query["model"]["refId"] == ref_id
            if query["datasourceUid"] != "__expr__":
                assert query["model"]["expr"].strip(), (rule["title"], ref_id)
                continue
            model = query["model"]
            assert model["datasource"] == {"type": "__expr__", "uid": "__expr__"}
            assert model["expression"] in queries, (rule["title"], ref_id)
            assert model["expression"] != ref_id, (rule["title"], ref_id)
        reduce, threshold = queries["B"]["model"], queries["C"]["model"]
        assert reduce["type"] == "reduce"
        assert reduce["expression"] == "A"
        assert reduce["reducer"] == "last"
        # Grafana reads a NaN condition as firing: drop NaN as PromQL comparisons do.
        assert reduce["settings"] == {"mode": "dropNN"}
        assert threshold["type"] == "threshold"
        assert threshold["expression"] == "B"
        [evaluator] = [condition["evaluator"] for condition in threshold["conditions"]]
        assert evaluator["type"] in ("gt", "lt")
        assert len(evaluator["params"]) == 1


def test_datasource_and_dashboard_provider():
    datasources = yaml.safe_load((GRAFANA / GENERATED[2]).read_text(encoding="utf-8"))
    assert datasources["apiVersion"] == 1
    [datasource] = datasources["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["jsonData"]["timeInterval"] == "15s"
    providers = yaml.safe_load((GRAFANA / GENERATED[3]).read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/streamdrift"


# (d) grafana_queries covers everything and leaves no variable behind.

def test_grafana_queries_cover_every_target_and_rule(dashboard, alerts):
    queries = grafana_queries(REPO)
    targets = [(panel, target) for panel in all_panels(dashboard["panels"])
               for target in panel.get("targets", [])]
    places = [where for where, _ in queries]
    for panel, target in targets:
        assert f"dashboard panel {panel['title']!r} target {target['refId']}" in places
    for rule in alerts["groups"][0]["rules"]:
        assert f"alert rule {rule['title']!r} query A" in places
        for query in rule["data"]:
            if query["datasourceUid"] != "__expr__":
                assert f"alert rule {rule['title']!r} query {query['refId']}" in places
    assert len(queries) >= len(targets) + len(alerts["groups"][0]["rules"])
    # The data source variable lists data sources: it has no PromQL.
    assert f"dashboard variable {DATASOURCE_VARIABLE!r}" not in places
    exprs = [expr for _, expr in queries]
    for where, expr in queries:
        assert "$" not in expr, where
        assert "[[" not in expr, where
        assert expr.strip(), where
    for selector in ("up", 'streamdrift_messages_total{job="streamdrift"}',
                     'streamdrift_kl_divergence{job="streamdrift"}'):
        assert selector in exprs, selector
    assert ('sum by (instance) (rate(streamdrift_messages_total{job="streamdrift",'
            'instance=~".+"}[1m]))') in exprs


# (e) Every expression parses, as Prometheus 2.42's promtool sees it.

def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool"
                                        if Path("/usr/bin/promtool").exists() else None)
    assert path is not None, (
        "promtool (Prometheus 2.x) is required: tests/run installs Debian's prometheus "
        "package; or put promtool on PATH")
    return path


def check_rules(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    """promtool has no command to parse an expression: check them as recording rules, one
    group each, so that an error names the group of the faulty expression."""
    document = {"groups": [{"name": f"expr_{index}",
                            "rules": [{"record": f"check:expr_{index}", "expr": expr}]}
                           for index, expr in enumerate(exprs)]}
    path = tmp_path / "grafana-exprs.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return subprocess.run([promtool(), "check", "rules", str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.tool
def test_promtool_rejects_a_bad_expression(tmp_path):
    result = check_rules(tmp_path, ["up", "sum(rate(up[5m])"])
    assert result.returncode != 0, result.stdout


@pytest.mark.tool
def test_every_grafana_expression_parses(tmp_path):
    queries = grafana_queries(REPO)
    result = check_rules(tmp_path, [expr for _, expr in queries])
    if result.returncode != 0:
        index = {f"expr_{i}": f"{where}: {expr}" for i, (where, expr) in enumerate(queries)}
        failing = [text for name, text in index.items()
                   if f'"{name}"' in result.stdout + result.stderr]
        pytest.fail("promtool check rules failed:\n" + result.stdout + result.stderr
                    + "\nexpressions:\n" + "\n".join(failing))
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout, result.stdout
