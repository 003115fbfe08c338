"""End to end: Kafka -> streamdrift run -> Prometheus (shipped rules) -> Alertmanager ->
a webhook, all real servers on 127.0.0.1; then every Grafana query on that Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamdrift.config import load_config
from streamdrift.rules import RuleParameters, render_rules, value_conditions
from streamdrift.synthetic import SyntheticStream
from tests.grafana_queries import grafana_queries
from tests.integration.conftest import (
    REPO,
    ServiceProcess,
    build_demo_baseline,
    free_port,
    http_get,
    produce,
    wait_until,
    write_service_config,
)

DRIFTED = "age"
# The shipped rules with hold times short enough for a test; every other parameter as shipped.
TEST_RULES = RuleParameters(drift_for="5s")


class Webhook:
    """An Alertmanager webhook receiver that keeps what it is sent."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for payload in self.payloads for alert in payload["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: tests/run installs Debian's prometheus and "
                    "prometheus-alertmanager packages")
    return path


class Server:
    """A child process with its output in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture
def stack(tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
          service_factory: Callable[..., ServiceProcess]) -> Iterator[dict[str, Any]]:
    topic = topic_factory(partitions=1)
    metrics_port = free_port()
    baseline = tmp_path / "baseline.json"
    config = write_service_config(
        tmp_path, bootstrap, topic, f"alerting-{topic}", baseline, metrics_port,
        window_size=2000, panes=10,
        extra={"kafka": {"auto_offset_reset": "earliest", "connect_timeout_s": 2},
               "service": {"publish_interval_s": 0.2, "lag_interval_s": 0.5}})
    build_demo_baseline(config, baseline)
    service = service_factory(config, metrics_port)
    service.wait_healthy(30)

    webhook = Webhook()
    alertmanager_port, prometheus_port = free_port(), free_port()
    shipped_alertmanager = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "alertmanager.yml").read_text())
    shipped_alertmanager["route"].update(group_wait="1s", group_interval="1s")
    for route in shipped_alertmanager["route"].get("routes", []):
        route.update(group_wait="1s")
    shipped_alertmanager["receivers"][0]["webhook_configs"][0]["url"] = \
        f"http://127.0.0.1:{webhook.port}/alerts"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(shipped_alertmanager))
    (tmp_path / "streamdrift-rules.yml").write_text(render_rules(TEST_RULES))
    shipped_prometheus = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    shipped_prometheus["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    shipped_prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{alertmanager_port}"]
    shipped_prometheus["scrape_configs"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{metrics_port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(shipped_prometheus))

    alertmanager = Server([
        _binary("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{alertmanager_port}", "--cluster.listen-address=",
    ], tmp_path / "alertmanager.log")
    prometheus = Server([
        _binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ], tmp_path / "prometheus.log")
    state = {"topic": topic, "config": config, "service": service, "webhook": webhook,
             "prometheus": f"http://127.0.0.1:{prometheus_port}",
             "alertmanager": f"http://127.0.0.1:{alertmanager_port}"}
    try:
        yield state
    except BaseException:
        print(prometheus.tail(), alertmanager.tail(), sep="\n")
        raise
    finally:
        prometheus.stop()
        alertmanager.stop()
        webhook.close()


def _query(prometheus: str, expr: str) -> dict[str, Any]:
    status, body = http_get(f"{prometheus}/api/v1/query?"
                            + urllib.parse.urlencode({"query": expr}))
    document: dict[str, Any] = json.loads(body)
    assert status == 200, (expr, body[:500])
    assert document["status"] == "success", (expr, body[:500])
    return document


def _alerts(prometheus: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{prometheus}/api/v1/alerts")
    assert status == 200
    alerts: list[dict[str, Any]] = json.loads(body)["data"]["alerts"]
    return alerts


def test_drift_in_one_feature_fires_its_alert_end_to_end(stack: dict[str, Any],
                                                         bootstrap: str) -> None:
    prometheus, service = stack["prometheus"], stack["service"]
    stream = SyntheticStream(load_config(stack["config"], environ={}), seed=3)

    def send(count: int, offset: int, drifted: tuple[str, ...] = ()) -> None:
        produce(bootstrap, stack["topic"], [
            json.dumps(m).encode()
            for m in stream.messages(count, drifted, drift_from=offset, offset=offset)])

    send(2000, 0)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 2000, 60,
                       what="a full window of undrifted traffic")
    # Prometheus scrapes its first target a few seconds after it starts: wait for it.
    wait_until(lambda: list(_query(prometheus, 'up{job="streamdrift"} == 1')["data"]
                        ["result"]), 60, interval_s=0.5, what="Prometheus' first scrape")
    wait_until(lambda: _query(prometheus, "streamdrift_window_samples")["data"]["result"],
               30, what="streamdrift's series in Prometheus")
    assert not [a for a in _alerts(prometheus) if a["labels"].get("feature") != "all"]

    send(2000, 2000, drifted=(DRIFTED,))
    states: list[str] = []

    def drift_alert_state() -> str | None:
        for alert in _alerts(prometheus):
            labels = alert["labels"]
            if labels["alertname"] == "StreamdriftFeatureDrift" \
                    and labels.get("feature") == DRIFTED:
                states.append(alert["state"])
                return str(alert["state"]) if alert["state"] == "firing" else None
        return None

    wait_until(drift_alert_state, 90, interval_s=0.2, what=f"{DRIFTED}'s drift alert firing")
    assert states[0] == "pending", states
    feature_alerts = {(a["labels"]["alertname"], a["labels"]["feature"])
                      for a in _alerts(prometheus) if a["labels"]["feature"] != "all"}
    assert {feature for _, feature in feature_alerts} == {DRIFTED}, feature_alerts

    webhook = stack["webhook"]
    received = wait_until(lambda: [
        alert for alert in webhook.alerts()
        if alert["labels"]["alertname"] == "StreamdriftFeatureDrift"
        and alert["status"] == "firing"], 60, what="the alert at the webhook")
    assert {alert["labels"]["feature"] for alert in received} == {DRIFTED}
    assert received[0]["annotations"]["summary"] == f"Feature {DRIFTED} has drifted from its " \
                                                    "baseline"
    assert all(alert["labels"]["feature"] in (DRIFTED, "all") for alert in webhook.alerts())
    # Alertmanager has it too.
    status, body = http_get(f"{stack['alertmanager']}/api/v2/alerts")
    assert status == 200
    assert DRIFTED in {alert["labels"]["feature"] for alert in json.loads(body)}

    # The Grafana form of the drift alert holds exactly for the same feature.
    condition = value_conditions(TEST_RULES)["StreamdriftFeatureDrift"]
    holding = _query(prometheus, f"({condition.value}) > {condition.threshold!r}")
    assert {r["metric"]["feature"] for r in holding["data"]["result"]} == {DRIFTED}

    # Every query of the Grafana dashboard and alert rules parses and returns data here
    # (the recording rules need an evaluation or two over the drifted traffic first).
    queries = grafana_queries(REPO)

    def all_answered() -> bool:
        empty = [(where, expr) for where, expr in queries
                 if not _query(prometheus, expr)["data"]["result"]]
        if empty:  # "not yet", and what wait_until reports if it never comes
            raise AssertionError(f"no data yet for {empty}")
        return True

    wait_until(all_answered, 60, interval_s=0.5,
               what="every Grafana query to return data")
