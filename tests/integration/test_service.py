"""``streamdrift run`` against the real broker, as a subprocess, scraped over HTTP."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from streamdrift.cli import main as cli_main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream
from tests.integration.conftest import (
    REPO,
    ServiceProcess,
    build_demo_baseline,
    consume_all,
    free_port,
    produce,
    write_service_config,
)

FEATURES = ["session_length", "purchases_30d", "age", "discount_rate", "country", "device",
            "plan"]
# Fast ticks so that tests wait for seconds, not minutes.
FAST: dict[str, dict[str, Any]] = {
    "service": {"publish_interval_s": 0.2, "lag_interval_s": 0.5,
                "baseline_watch_interval_s": 0.5},
    "kafka": {"auto_offset_reset": "earliest", "connect_timeout_s": 2},
}
ServiceFactory = Callable[..., ServiceProcess]


def _deep(extra: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(value) for key, value in FAST.items()}
    for key, value in extra.items():
        merged.setdefault(key, {}).update(value)
    return merged


@pytest.fixture(params=["kafka-python", "confluent"])
def kafka_client(request: pytest.FixtureRequest) -> str:
    """``kafka.client`` of the service under test: a test taking it runs with each client."""
    client: str = request.param
    return client


def _setup(tmp_path: Path, bootstrap: str, topic: str, window_size: int | str = 20_000,
           panes: int = 10, extra: dict[str, Any] | None = None,
           group: str = "streamdrift", client: str = "kafka-python") -> tuple[Path, int]:
    port = free_port()
    baseline = tmp_path / "baseline.json"
    document = _deep(extra or {})
    document.setdefault("kafka", {})["client"] = client
    config = write_service_config(tmp_path, bootstrap, topic, f"{group}-{topic}", baseline,
                                  port, window_size, panes, document,
                                  filename=f"{group}.yaml")
    if not baseline.exists():
        build_demo_baseline(config, baseline)
    return config, port


def _messages(config: Path, count: int, offset: int = 0, drifted: tuple[str, ...] = (),
              drift_from: int = 0) -> list[bytes]:
    stream = SyntheticStream(load_config(config, environ={}), seed=5)
    return [json.dumps(message).encode()
            for message in stream.messages(count, drifted, drift_from, offset=offset)]


def _messages_total(service: ServiceProcess) -> float:
    return service.value("streamdrift_messages_total") or 0.0


def _wait_counted(service: ServiceProcess, count: int, timeout_s: float = 60.0) -> None:
    service.wait_until(lambda: _messages_total(service) >= count, timeout_s,
                       what=f"{count} messages counted")


def _trickle(bootstrap: str, topic: str, payloads: list[bytes], chunk: int,
             pause_s: float) -> threading.Thread:
    """A thread (not started) that produces ``payloads`` in chunks, pausing between them:
    a stream that is still running while the test acts on the service."""
    def send() -> None:
        for start in range(0, len(payloads), chunk):
            produce(bootstrap, topic, payloads[start:start + chunk])
            time.sleep(pause_s)

    return threading.Thread(target=send)


def _gauges(service: ServiceProcess) -> dict[str, dict[str, float]]:
    samples = service.scrape()
    result: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        feature = dict(labels).get("feature")
        if feature is not None and len(labels) == 1:
            result.setdefault(feature, {})[name] = value
    return result


def test_gauges_equal_replay_of_the_same_messages(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    config, port = _setup(tmp_path, bootstrap, topic, window_size=10_000, client=kafka_client)
    payloads = _messages(config, 8000, drifted=("age", "device"), drift_from=4000)
    produce(bootstrap, topic, payloads)
    service = service_factory(config, port)
    service.wait_ready(60)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 8000, 60,
                       what="all 8000 messages in the window")
    scraped = _gauges(service)

    # The window holds every message, so the order the partitions were read in does not
    # matter: replay the topic's records as one JSONL file.
    records = consume_all(bootstrap, topic)
    assert len(records) == 8000
    jsonl = tmp_path / "topic.jsonl"
    jsonl.write_bytes(b"".join((record.value or b"") + b"\n" for record in records))
    report_path = tmp_path / "report.json"
    assert cli_main(["replay", "--config", str(config), "--input", str(jsonl), "--report",
                     str(report_path)]) == 0
    report = json.loads(report_path.read_text())["features"]
    for feature in FEATURES:
        gauges, replayed = scraped[feature], report[feature]
        assert gauges["streamdrift_window_samples"] == replayed["samples"]
        for metric, key in [("streamdrift_kl_divergence", "kl"),
                            ("streamdrift_js_divergence", "js"),
                            ("streamdrift_psi", "psi"),
                            ("streamdrift_drift_p_value", "p_value")]:
            assert math.isclose(gauges[metric], replayed[key], rel_tol=1e-9, abs_tol=1e-9), \
                (feature, metric, gauges[metric], replayed[key])
        assert gauges["streamdrift_feature_drifted"] == (1.0 if replayed["drift"] else 0.0)
    assert {f for f in FEATURES if report[f]["drift"]} == {"age", "device"}

    # Every labelled child exists, and promtool accepts the exposition.
    text = service.scrape_text()
    for reason in ("empty", "oversized", "not_json", "not_object", "bad_timestamp"):
        assert f'streamdrift_invalid_messages_total{{reason="{reason}"}} 0.0' in text
    assert 'streamdrift_bin_total{bin="0",feature="age"}' in text
    assert 'streamdrift_baseline_probability{bin="0",feature="age"}' in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_malformed_messages_are_counted_by_reason_and_dead_lettered(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    dead_letters = topic_factory(partitions=1, prefix="sd-dlq")
    config, port = _setup(tmp_path, bootstrap, topic, window_size=10_000, extra={
        "kafka": {"dead_letter_topic": dead_letters}, "input": {"max_message_bytes": 4096}},
        client=kafka_client)
    good = _messages(config, 100_000)
    bad = ([b"{not json"] * 400 + [b"[1, 2, 3]", b'"text"', b"42"] * 100 + [b""] * 200
           + [b'{"pad": "' + b"x" * 5000 + b'"}'] * 100)
    payloads = list(good)
    for index, payload in enumerate(bad):  # spread the bad ones through the stream
        payloads.insert(index * 100 + 50, payload)
    service = service_factory(config, port)
    service.wait_healthy(30)
    produce(bootstrap, topic, payloads, timeout_s=120)
    _wait_counted(service, 101_000, timeout_s=180)
    samples = service.scrape()
    assert samples[("streamdrift_messages_total", frozenset())] == 101_000
    expected = {"not_json": 400, "not_object": 300, "empty": 200, "oversized": 100,
                "bad_timestamp": 0}
    for reason, count in expected.items():
        key = ("streamdrift_invalid_messages_total", frozenset({("reason", reason)}))
        assert samples[key] == count, reason
    assert samples[("streamdrift_dead_letter_messages_total", frozenset())] == 1000
    assert service.running
    letters = consume_all(bootstrap, dead_letters)
    assert len(letters) == 1000
    consumer = KafkaConsumer(dead_letters, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    reasons: dict[str, int] = {}
    for record in consumer:
        reason = dict(record.headers)["streamdrift-reason"].decode()
        reasons[reason] = reasons.get(reason, 0) + 1
    consumer.close()
    assert reasons == {k: v for k, v in expected.items() if v}


def test_kill_9_then_restart_loses_nothing_and_matches_an_uninterrupted_run(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    config, port = _setup(tmp_path, bootstrap, topic, window_size=20_000,
                          extra={"kafka": {"max_poll_records": 200}}, client=kafka_client)
    payloads = _messages(config, 12_000, drifted=("plan",), drift_from=6000)
    sender = _trickle(bootstrap, topic, payloads, chunk=500, pause_s=0.1)
    service = service_factory(config, port)
    service.wait_ready(60)
    sender.start()
    _wait_counted(service, 3000)
    before_kill = _messages_total(service)
    assert service.kill() == -signal.SIGKILL
    assert before_kill < 12_000, "the stream was over before the kill: nothing tested"
    service.start()
    sender.join(timeout=120)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 12_000, 90,
                       what="the whole stream back in the window")
    # The restart put back what the first run had committed (it commits only what it has
    # counted, once per commit interval) and counted the rest: nothing lost, nothing twice.
    second_run = service.log_text().split("---- start #2")[1]
    found = re.search(r"event=window_refilled .*messages=(\d+)", second_run)
    assert found is not None, second_run
    refilled = int(found[1])
    assert refilled > 0
    assert refilled + _messages_total(service) == 12_000

    fresh_config, fresh_port = _setup(tmp_path, bootstrap, topic, window_size=20_000,
                                      group="uninterrupted", client=kafka_client)
    reference = service_factory(fresh_config, fresh_port)
    reference.wait_until(lambda: reference.value("streamdrift_window_messages") == 12_000,
                         90, what="the uninterrupted run to read the stream")
    restarted, uninterrupted = _gauges(service), _gauges(reference)
    for feature in FEATURES:
        for metric in ("streamdrift_kl_divergence", "streamdrift_window_samples",
                       "streamdrift_drift_p_value", "streamdrift_feature_missing_ratio"):
            assert math.isclose(restarted[feature][metric], uninterrupted[feature][metric],
                                rel_tol=1e-9, abs_tol=1e-12), (feature, metric)


def test_a_second_replica_takes_partitions_over_and_no_message_is_lost(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=4)
    config, port = _setup(tmp_path, bootstrap, topic, window_size=40_000, client=kafka_client,
                          extra={"kafka": {"max_poll_records": 200}})
    sender = _trickle(bootstrap, topic, _messages(config, 16_000), chunk=400, pause_s=0.2)
    first = service_factory(config, port)
    first.wait_ready(60)
    sender.start()
    _wait_counted(first, 2000)
    second_port = free_port()
    second = service_factory(config, second_port,
                             env={"STREAMDRIFT_METRICS_PORT": str(second_port)})
    second.wait_until(lambda: (second.value("streamdrift_assigned_partitions") or 0) > 0, 60,
                      what="partitions for the second replica")
    sender.join(timeout=120)
    assert _messages_total(first) < 16_000, "the stream was over before the rebalance"
    second.wait_until(lambda: _messages_total(first) + _messages_total(second) >= 16_000, 60,
                      what="every message counted by one replica or the other")
    time.sleep(1.5)  # a double count would show up by now
    first_total, second_total = _messages_total(first), _messages_total(second)
    assert second_total > 0
    assert first.terminate() == 0
    assert second.terminate() == 0

    total = first_total + second_total
    if kafka_client == "confluent":
        # Revoked partitions' counted offsets are committed in the revocation callback.
        assert total == 16_000
    elif total > 16_000:
        # kafka-python cannot commit there: the partitions that moved were counted again
        # from their last commit by their new owner, and the first replica said so.
        assert "event=revoked_offsets_not_committed" in first.log_text()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"streamdrift-{topic}",
                             enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(4)]
    ends = consumer.end_offsets(partitions)
    assert {tp: consumer.committed(tp) for tp in partitions} == ends
    consumer.close(autocommit=False)


def test_sigterm_commits_and_a_restart_counts_nothing_twice(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    config, port = _setup(tmp_path, bootstrap, topic, window_size=10_000, client=kafka_client)
    produce(bootstrap, topic, _messages(config, 3000))
    service = service_factory(config, port)
    _wait_counted(service, 3000)
    started = time.monotonic()
    assert service.terminate(timeout_s=15) == 0
    assert time.monotonic() - started < 10
    assert "committed=True" in service.log_text()

    group = f"streamdrift-{topic}"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    ends = consumer.end_offsets(partitions)
    assert {tp: consumer.committed(tp) for tp in partitions} == ends
    consumer.close(autocommit=False)

    service.start()
    service.wait_ready(60)
    produce(bootstrap, topic, _messages(config, 500, offset=3000))
    _wait_counted(service, 500)
    time.sleep(1.0)  # a double count would show up by now
    assert _messages_total(service) == 500
    assert service.value("streamdrift_window_messages") == 3500  # refilled + new


def test_a_new_baseline_is_taken_on_sighup_and_a_bad_one_refused(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=2)
    config, port = _setup(tmp_path, bootstrap, topic, window_size=5000,
                          extra={"service": {"baseline_watch_interval_s": 0}},
                          client=kafka_client)
    produce(bootstrap, topic, _messages(config, 4000))
    service = service_factory(config, port)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 4000, 60,
                       what="the window filled")

    def baseline_hash() -> str:
        for name, labels in service.scrape():
            if name == "streamdrift_baseline_info":
                return dict(labels)["hash"]
        raise AssertionError("no streamdrift_baseline_info")

    first = baseline_hash()
    baseline_path = tmp_path / "baseline.json"
    good = baseline_path.read_text()
    baseline_path.write_text(good.replace('"format": "streamdrift.baseline/v1"',
                                          '"format": "nonsense"'))
    service.send_signal(signal.SIGHUP)
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="refused") == 1, 20, what="a refusal")
    assert baseline_hash() == first
    assert "baseline_refused" in service.log_text()

    # New bins (10 instead of 20): the window is read again under them, not lost.
    document = json.loads(good)
    rebinned = tmp_path / "rebinned.yaml"
    rebinned.write_text(config.read_text().replace("bins: 20", "bins: 10"))
    build_demo_baseline(rebinned, baseline_path, seed=9)
    assert json.loads(baseline_path.read_text())["features"] != document["features"]
    service.send_signal(signal.SIGHUP)
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="loaded") == 1, 30, what="the reload")
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 4000, 30,
                       what="the window refilled under the new bins")
    assert baseline_hash() != first
    assert service.running


def test_broker_outage_keeps_the_service_up_and_shows_in_probes(
        tmp_path: Path, service_factory: ServiceFactory, kafka_client: str) -> None:
    # Its own broker: stopping the shared one would disturb the other tests.
    kafka_port = free_port()
    environment = {**os.environ, "KAFKA_PORT": str(kafka_port),
                   "KAFKA_CONTROLLER_PORT": str(free_port()),
                   "KAFKA_DATA_DIR": str(tmp_path / "kafka")}
    script = str(REPO / "deploy" / "local" / "kafka")

    def broker(action: str) -> None:
        result = subprocess.run([script, action], env=environment, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    broker("start")
    try:
        bootstrap = f"127.0.0.1:{kafka_port}"
        topic = "outage"
        config, port = _setup(tmp_path, bootstrap, topic, window_size=5000,
                              client=kafka_client)
        produce(bootstrap, topic, _messages(config, 1000))
        service = service_factory(config, port)
        service.wait_ready(60)
        _wait_counted(service, 1000)
        assert service.value("streamdrift_kafka_connected") == 1

        broker("stop")
        outage_started = time.monotonic()
        service.wait_until(lambda: service.value("streamdrift_kafka_connected") == 0, 20,
                           what="the outage to show in streamdrift_kafka_connected")
        assert service.get("/readyz")[0] == 503
        while time.monotonic() - outage_started < 30:
            assert service.get("/healthz")[0] == 200
            assert service.running
            time.sleep(1)
        broker("start")
        produce(bootstrap, topic, _messages(config, 1000, offset=1000))
        _wait_counted(service, 2000, timeout_s=90)
        service.wait_ready(60)
        assert service.value("streamdrift_kafka_connected") == 1
        assert service.value("streamdrift_messages_total") == 2000
    finally:
        subprocess.run([script, "stop"], env=environment, capture_output=True, timeout=60,
                       check=False)


@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_ctrl_c_stops_cleanly_while_no_broker_answers(
        tmp_path: Path, service_factory: ServiceFactory, signum: int) -> None:
    config, port = _setup(tmp_path, f"127.0.0.1:{free_port()}", "nowhere")
    service = service_factory(config, port)
    service.wait_healthy(30)
    assert service.get("/readyz")[0] == 503
    time.sleep(1)
    service.send_signal(signum)
    assert service.terminate(timeout_s=15) == 0
    assert "kafka_unavailable" in service.log_text()


def test_produce_writes_the_configured_features_with_drift_switched_on(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    config, _ = _setup(tmp_path, bootstrap, topic)
    assert cli_main(["produce", "--config", str(config), "--count", "4000", "--rate", "0",
                     "--drift", "device@2000"]) == 0
    records = consume_all(bootstrap, topic)
    assert len(records) == 4000
    messages = sorted((json.loads(record.value or b"") for record in records),
                      key=lambda message: message["id"])
    assert [m["id"] for m in messages] == list(range(4000))
    tv_before = sum(m["device"] == "tv" for m in messages[:2000])
    tv_after = sum(m["device"] == "tv" for m in messages[2000:])
    assert tv_before == 0  # the reference law has no "tv"; the drifted one has 30 %
    assert tv_after > 400


def test_demo_kafka_runs_the_whole_loop(bootstrap: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamdrift", "demo", "--kafka", "--bootstrap", bootstrap,
         "--seconds", "8", "--rate", "2000", "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drifted at the end: session_length, device" in result.stdout
    assert "event=drift_started feature=device" in result.stderr


def test_a_topic_pattern_and_a_changed_baseline_file(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    first = topic_factory(partitions=1, prefix="sd-pattern")
    second = first.replace("sd-pattern", "sd-pattern-b")  # created by the broker on produce
    config, port = _setup(tmp_path, bootstrap, first, window_size=5000, extra={
        "kafka": {"topic": None, "topic_pattern": f"sd-pattern(-b)?-{first.split('-')[-1]}"}},
        client=kafka_client)
    produce(bootstrap, first, _messages(config, 300))
    produce(bootstrap, second, _messages(config, 200, offset=300))
    service = service_factory(config, port)
    _wait_counted(service, 500)
    assert "sd-pattern-b" in service.log_text()

    # The file watch: a rebuilt baseline with the same bins is taken without a signal.
    baseline_path = tmp_path / "baseline.json"
    document = json.loads(baseline_path.read_text())
    probabilities = document["features"]["plan"]["probabilities"]
    probabilities[0], probabilities[1] = probabilities[1], probabilities[0]
    baseline_path.write_text(json.dumps(document, indent=2))
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="loaded") == 1, 20, what="the reload")
    assert service.value("streamdrift_window_messages") == 500  # same bins: window kept


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path,
                                       service_factory: ServiceFactory) -> None:
    config, port = _setup(tmp_path, f"127.0.0.1:{free_port()}", "nowhere",
                          extra={"kafka": {"connect_timeout_s": 30}})
    service = service_factory(config, port)
    service.wait_healthy(30)
    time.sleep(0.5)  # inside the 30 s connection attempt now
    service.send_signal(signal.SIGINT)
    time.sleep(0.2)
    service.send_signal(signal.SIGINT)
    assert service.terminate(timeout_s=5) == 130
