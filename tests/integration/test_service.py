"""``streamdrift run`` against the real broker, as a subprocess, scraped over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from streamdrift.baseline import load_baseline
from streamdrift.cli import main as cli_main
from tests.integration.conftest import (
    FEATURES,
    REPO,
    ServiceFactory,
    ServiceProcess,
    Trickle,
    assert_gauges_equal,
    assert_gauges_match_report,
    build_demo_baseline,
    committed_offsets,
    consume_all,
    counted_at_stop,
    demo_messages,
    feature_gauges,
    free_port,
    messages_total,
    produce,
    replayed_gauges,
    setup_service,
    shown_baseline_hash,
    wait_counted,
    wait_until,
)


def test_gauges_equal_replay_of_the_same_messages(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=30_000,
                                 client=kafka_client)
    payloads = demo_messages(config, 8000, drifted=("age", "device"), drift_from=4000)
    produce(bootstrap, topic, payloads)
    service = service_factory(config, port)
    service.wait_ready(60)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 8000, 60,
                       what="all 8000 messages in the window")
    scraped = feature_gauges(service)

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
    assert_gauges_match_report(scraped, report)
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
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=10_000, extra={
        "kafka": {"dead_letter_topic": dead_letters}, "input": {"max_message_bytes": 4096}},
        client=kafka_client)
    good = demo_messages(config, 100_000)
    bad = ([b"{not json"] * 400 + [b"[1, 2, 3]", b'"text"', b"42"] * 100 + [b""] * 200
           + [b'{"pad": "' + b"x" * 5000 + b'"}'] * 100)
    payloads = list(good)
    keys: list[bytes | None] = [None] * len(good)
    headers: list[list[tuple[str, bytes]] | None] = [None] * len(good)
    for index, payload in enumerate(bad):  # spread the bad ones through the stream
        position = index * 100 + 50
        payloads.insert(position, payload)
        # Some with a key and headers of their own, which the dead letter keeps.
        keys.insert(position, f"key-{index}".encode() if index % 3 == 0 else None)
        headers.insert(position, [("trace-id", str(index).encode())] if index % 2 else None)
    service = service_factory(config, port)
    service.wait_healthy(30)
    produce(bootstrap, topic, payloads, keys=keys, headers=headers, timeout_s=120)
    wait_counted(service, 101_000, timeout_s=180)
    samples = service.scrape()
    assert samples[("streamdrift_messages_total", frozenset())] == 101_000
    expected = {"not_json": 400, "not_object": 300, "empty": 200, "oversized": 100,
                "bad_timestamp": 0}
    for reason, count in expected.items():
        key = ("streamdrift_invalid_messages_total", frozenset({("reason", reason)}))
        assert samples[key] == count, reason
    service.wait_until(
        lambda: service.value("streamdrift_dead_letter_messages_total") == 1000, 30,
        what="1000 dead letters")

    # Every dead letter is its original record unchanged (value, key, headers, timestamp),
    # with where it came from and why it was refused in headers of ours after its own.
    originals = {(record.partition, record.offset): record
                 for record in consume_all(bootstrap, topic)}
    letters = consume_all(bootstrap, dead_letters)
    assert len(letters) == 1000
    reasons: dict[str, int] = {}
    origins = set()
    for letter in letters:
        own, ours = letter.headers[:-4], letter.headers[-4:]
        assert [name for name, _ in ours] == ["streamdrift-reason", "streamdrift-topic",
                                              "streamdrift-partition", "streamdrift-offset"]
        reason, source_topic, partition, offset = (value.decode() for _, value in ours)
        assert source_topic == topic
        origin = (int(partition), int(offset))
        original = originals[origin]
        assert letter.value == original.value
        assert letter.key == original.key
        assert own == original.headers
        assert letter.timestamp == original.timestamp
        reasons[reason] = reasons.get(reason, 0) + 1
        origins.add(origin)
    assert len(origins) == 1000  # each bad record once
    assert reasons == {k: v for k, v in expected.items() if v}
    assert {o for o, r in originals.items() if r.value in set(bad)} == origins
    assert service.running


def test_a_dead_letter_that_cannot_be_written_holds_the_commit_and_is_retried(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_admin: Any, kafka_client: str) -> None:
    topic = topic_factory(partitions=1)
    # The broker refuses every record to this topic until its size limit is raised.
    dead_letters = topic_factory(partitions=1, prefix="sd-dlq",
                                 configs={"max.message.bytes": "16"})
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=10_000, extra={
        "kafka": {"dead_letter_topic": dead_letters}}, client=kafka_client)
    payloads = [*demo_messages(config, 300), b"{broken", *demo_messages(config, 300, 300)]
    service = service_factory(config, port)
    service.wait_ready(60)
    produce(bootstrap, topic, payloads)
    service.wait_until(lambda: service.log_text().count("event=dead_letter_failed") >= 2, 60,
                       what="the dead letter refused, then refused again on a retry")
    group = f"streamdrift-{topic}"
    # Nothing from the batch holding the refused record on is committed.
    assert committed_offsets(bootstrap, group, topic, 1)[0] <= 300
    assert service.value("streamdrift_dead_letter_messages_total") == 0

    kafka_admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dead_letters,
                                              configs={"max.message.bytes": "1048588"})])
    service.wait_until(lambda: service.value("streamdrift_dead_letter_messages_total") == 1,
                       60, what="the dead letter written once the topic takes it")
    service.wait_until(
        lambda: committed_offsets(bootstrap, group, topic, 1)[0] == len(payloads), 30,
        what="the offsets committed past the dead letter")
    (letter,) = consume_all(bootstrap, dead_letters)
    assert letter.value == b"{broken"
    assert dict(letter.headers)["streamdrift-offset"] == b"300"


def test_a_second_replica_takes_partitions_over_and_no_message_is_lost(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=4)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=40_000,
                                 client=kafka_client, extra={"kafka": {"max_poll_records": 200}})
    sender = Trickle(bootstrap, topic, demo_messages(config, 16_000), chunk=400, pause_s=0.2)
    first = service_factory(config, port)
    first.wait_ready(60)
    sender.start()
    wait_counted(first, 2000)
    second_port = free_port()
    second = service_factory(config, second_port,
                             env={"STREAMDRIFT_METRICS_PORT": str(second_port)})
    second.wait_until(lambda: (second.value("streamdrift_assigned_partitions") or 0) > 0, 60,
                      what="partitions for the second replica")
    sender.join()
    assert messages_total(first) < 16_000, "the stream was over before the rebalance"
    second.wait_until(lambda: messages_total(first) + messages_total(second) >= 16_000, 60,
                      what="every message counted by one replica or the other")
    assert messages_total(second) > 0
    assert first.terminate() == 0
    assert second.terminate() == 0
    # What each counted in all, read once neither can count anything more.
    total = counted_at_stop(first) + counted_at_stop(second)
    # Revoked partitions' counted offsets are committed before the group moves on (in the
    # revocation callback; kafka-python's awaits its commit): nothing is counted twice.
    # What could not be committed is counted apart, and the new owner counted it again.
    handed_over = sum(int(value) for value in re.findall(
        r"event=revoked_offsets_not_committed .*messages=(\d+)", first.log_text()))
    assert total - handed_over == 16_000
    assert handed_over == 0, first.log_text()
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
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=30_000,
                                 client=kafka_client)
    produce(bootstrap, topic, demo_messages(config, 3000))
    service = service_factory(config, port)
    wait_counted(service, 3000)
    # SIGUSR1: every thread's stack on stderr, and the service goes on.
    service.send_signal(signal.SIGUSR1)
    service.wait_until(lambda: 'in _serve' in service.log_text(), 10,
                       what="the stacks of the threads")
    assert service.running
    assert service.terminate() == 0
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
    produce(bootstrap, topic, demo_messages(config, 500, offset=3000))
    wait_counted(service, 500)
    assert service.value("streamdrift_window_messages") == 3500  # refilled + new
    assert service.terminate() == 0
    assert counted_at_stop(service) == 500  # nothing of the first run counted twice


def test_a_new_baseline_is_taken_on_sighup_and_a_bad_one_refused(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    topic = topic_factory(partitions=2)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=10_000,
                          extra={"service": {"baseline_watch_interval_s": 0}},
                          client=kafka_client)
    produce(bootstrap, topic, demo_messages(config, 4000, drifted=("plan",), drift_from=3000))
    service = service_factory(config, port)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 4000, 60,
                       what="the window filled")
    # The window holds the whole topic: the order its partitions were read in is moot.
    records = consume_all(bootstrap, topic)

    def baseline_hash() -> str:
        return shown_baseline_hash(service)

    first = baseline_hash()
    baseline_path = tmp_path / "baseline.json"
    good = baseline_path.read_text()
    broken = json.loads(good)
    broken["format"] = "nonsense"
    broken["smoothing"] = -1
    baseline_path.write_text(json.dumps(broken))
    service.send_signal(signal.SIGHUP)
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="refused") == 1, 20, what="a refusal")
    assert baseline_hash() == first
    # One line per problem, each naming it and the baseline kept.
    refusals = [line for line in service.log_text().splitlines()
                if "event=baseline_refused" in line]
    assert len(refusals) == 2, refusals
    assert "problem=\"format must be" in refusals[0]
    assert "problem=\"smoothing must be a number > 0 (got -1)\"" in refusals[1]
    assert all(f"kept={first}" in line for line in refusals)

    # New bins (10 instead of 20): the window is read again under them, not lost.
    document = json.loads(good)
    rebinned = tmp_path / "rebinned.yaml"
    rebinned.write_text(config.read_text().replace("bins: 20", "bins: 10"))
    build_demo_baseline(rebinned, baseline_path, seed=9)
    assert json.loads(baseline_path.read_text())["features"] != document["features"]
    service.send_signal(signal.SIGHUP)
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="loaded") == 1, 30, what="the reload")
    new_hash = load_baseline(baseline_path).content_hash()
    service.wait_until(lambda: baseline_hash() == new_hash, 30,
                       what="the gauges computed against the new baseline")
    assert service.value("streamdrift_window_messages") == 4000  # refilled, not lost
    # The same window, binned under the new baseline: what a fresh start on it would show.
    assert_gauges_equal(feature_gauges(service), replayed_gauges(config, records,
                                                                 partitions=2))
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
        config, port = setup_service(tmp_path, bootstrap, topic, window_size=5000,
                              client=kafka_client,
                                     extra={"kafka": {"session_timeout_s": 6}})
        produce(bootstrap, topic, demo_messages(config, 1000))
        service = service_factory(config, port)
        service.wait_ready(60)
        wait_counted(service, 1000)
        assert service.value("streamdrift_kafka_connected") == 1

        broker("stop")
        outage_started = time.monotonic()
        service.wait_until(lambda: service.value("streamdrift_kafka_connected") == 0, 20,
                           what="the outage to show in streamdrift_kafka_connected")
        assert service.get("/readyz")[0] == 503
        # Longer than the session timeout: librdkafka gives its partitions up and rejoins.
        while time.monotonic() - outage_started < 10:
            assert service.get("/healthz")[0] == 200
            assert service.running
            time.sleep(1)
        broker("start")
        produce(bootstrap, topic, demo_messages(config, 1000, offset=1000))
        wait_counted(service, 2000, timeout_s=90)
        service.wait_ready(60)
        assert service.value("streamdrift_kafka_connected") == 1
        assert service.value("streamdrift_messages_total") == 2000
    finally:
        subprocess.run([script, "stop"], env=environment, capture_output=True, timeout=60,
                       check=False)


@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_ctrl_c_stops_cleanly_while_no_broker_answers(
        tmp_path: Path, service_factory: ServiceFactory, signum: int) -> None:
    config, port = setup_service(tmp_path, f"127.0.0.1:{free_port()}", "nowhere")
    service = service_factory(config, port)
    service.wait_healthy(30)
    assert service.get("/readyz")[0] == 503
    service.wait_until(lambda: "event=kafka_unavailable" in service.log_text(), 60,
                       what="a failed connection attempt, logged")
    service.send_signal(signum)
    assert service.terminate() == 0


def test_demo_kafka_runs_the_whole_loop_and_cleans_up(bootstrap: str,
                                                      kafka_admin: Any) -> None:
    temporary = Path(tempfile.gettempdir())
    folders_before = set(temporary.glob("streamdrift-demo-*"))
    result = subprocess.run(
        [sys.executable, "-m", "streamdrift", "demo", "--kafka", "--bootstrap", bootstrap,
         "--seconds", "8", "--rate", "2000", "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drifted at the end: session_length, device" in result.stdout
    assert "event=drift_started feature=device" in result.stderr
    # Its topic and its baseline's folder are gone.
    topic = re.search(r"topic (streamdrift-demo-\d+)", result.stdout)
    assert topic is not None, result.stdout
    wait_until(lambda: topic.group(1) not in kafka_admin.list_topics(), 30,
               what=f"topic {topic.group(1)} deleted")
    assert set(temporary.glob("streamdrift-demo-*")) == folders_before


def test_a_topic_pattern_and_a_changed_baseline_file(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    first = topic_factory(partitions=1, prefix="sd-pattern")
    second = first.replace("sd-pattern", "sd-pattern-b")  # created by the broker on produce
    config, port = setup_service(tmp_path, bootstrap, first, window_size=5000, extra={
        "kafka": {"topic": None, "topic_pattern": f"sd-pattern(-b)?-{first.split('-')[-1]}"}},
        client=kafka_client)
    produce(bootstrap, first, demo_messages(config, 300))
    produce(bootstrap, second, demo_messages(config, 200, offset=300))
    service = service_factory(config, port)
    wait_counted(service, 500)
    assert "sd-pattern-b" in service.log_text()

    # The file watch: a rebuilt baseline with the same bins is taken without a signal.
    baseline_path = tmp_path / "baseline.json"
    document = json.loads(baseline_path.read_text())
    for feature in document["features"].values():  # other probabilities, the same bins
        feature["probabilities"] = feature["probabilities"][::-1]
        feature["counts"] = feature["counts"][::-1]
    baseline_path.write_text(json.dumps(document, indent=2))
    service.wait_until(lambda: service.value("streamdrift_baseline_reloads_total",
                                             result="loaded") == 1, 20, what="the reload")
    new_hash = load_baseline(baseline_path).content_hash()
    service.wait_until(lambda: shown_baseline_hash(service) == new_hash, 30,
                       what="the gauges computed against the new baseline")
    assert service.value("streamdrift_window_messages") == 500  # same bins: window kept
    # Every divergence is now against the new baseline, as a fresh start on it would show.
    records = consume_all(bootstrap, first) + consume_all(bootstrap, second)
    assert_gauges_equal(feature_gauges(service), replayed_gauges(config, records))


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path,
                                       service_factory: ServiceFactory) -> None:
    # kafka-python's first connection attempt cannot be interrupted: a first Ctrl+C during
    # it is honoured only when it ends (here after 300 s), a second one at once. The
    # "broker" accepts connections and never answers: once the service has connected to
    # it, its first attempt is under way.
    with socket.create_server(("127.0.0.1", 0)) as broker:
        broker.setblocking(False)
        config, port = setup_service(tmp_path, f"127.0.0.1:{broker.getsockname()[1]}",
                                     "nowhere", extra={"kafka": {"connect_timeout_s": 300}})
        service = service_factory(config, port)
        accepted: list[socket.socket] = []

        def connected() -> bool:
            with contextlib.suppress(BlockingIOError):
                accepted.append(broker.accept()[0])
            return bool(accepted)

        try:
            service.wait_until(connected, 60,
                               what="the service's first connection attempt to the broker")
            service.send_signal(signal.SIGINT)
            service.wait_until(lambda: "event=stopping" in service.log_text(), 60,
                               what="the first Ctrl+C seen")
            service.send_signal(signal.SIGINT)
            assert service.terminate(timeout_s=60) == 130
        finally:
            for connection in accepted:
                connection.close()


def _static_replicas(service_factory: ServiceFactory, config: Path, port: int,
                     ids: tuple[str, str], partitions: int,
                     ) -> tuple[ServiceProcess, ServiceProcess]:
    """Two replicas with static member ids (from the environment, as a StatefulSet sets
    them): the second starts once the first holds all ``partitions``."""
    first = service_factory(config, port, env={"STREAMDRIFT_KAFKA_GROUP_INSTANCE_ID": ids[0]})
    first.wait_until(lambda: first.value("streamdrift_assigned_partitions") == partitions, 60,
                     what=f"all {partitions} partitions for the first replica")
    second_port = free_port()
    second = service_factory(config, second_port,
                             env={"STREAMDRIFT_KAFKA_GROUP_INSTANCE_ID": ids[1],
                                  "STREAMDRIFT_METRICS_PORT": str(second_port)})
    return first, second


def test_static_membership_lets_a_replica_restart_without_a_rebalance(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    """Two replicas with static member ids (from the environment, as a StatefulSet sets
    them): one restarts within the session timeout and gets its own partitions back, and
    the other is not disturbed at all."""
    topic = topic_factory(partitions=4)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=5000,
                                 client=kafka_client,
                                 extra={"kafka": {"session_timeout_s": 45}})
    produce(bootstrap, topic, demo_messages(config, 2000))
    first, second = _static_replicas(service_factory, config, port, ("a", "b"), 4)
    first.wait_until(lambda: first.value("streamdrift_assigned_partitions") == 2, 60,
                     what="two partitions for the first replica")
    second.wait_until(lambda: second.value("streamdrift_assigned_partitions") == 2, 60,
                      what="two partitions for the second replica")
    first.wait_ready(60)
    second.wait_ready(60)
    held = re.findall(r"event=partitions_assigned partitions=(\S+)", first.log_text())[-1]
    second_log_before = second.log_text()

    assert first.terminate() == 0
    first.start()
    first.wait_until(lambda: re.search(r"event=partitions_assigned partitions=\S",
                                       first.log_text().split("---- start #2")[1]), 60,
                     what="the restarted replica's partitions")
    again = re.findall(r"event=partitions_assigned partitions=(\S+)",
                       first.log_text().split("---- start #2")[1])
    assert again == [held]  # its own partitions, in one assignment
    first.wait_ready(60)
    # The other replica saw nothing: no revocation, no new assignment.
    assert second.log_text() == second_log_before or not re.search(
        r"event=partitions_(revoked|assigned)", second.log_text()[len(second_log_before):])
    assert second.value("streamdrift_assigned_partitions") == 2


def test_two_replicas_given_one_static_member_id_the_fenced_one_exits_75(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    """A misconfiguration (two pods given one ``kafka.group_instance_id``): the broker fences
    the older member, whose client can neither consume nor commit again. It says so
    (``kafka_fatal``) and exits with code 75 for its supervisor, rather than sitting idle
    and ready; the newer one consumes."""
    topic = topic_factory(partitions=2)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=5000,
                                 client=kafka_client)
    produce(bootstrap, topic, demo_messages(config, 500))
    first, second = _static_replicas(service_factory, config, port, ("same", "same"), 2)
    second.wait_until(lambda: second.value("streamdrift_assigned_partitions") == 2, 60,
                      what="both partitions for the newer replica")
    # Something to commit once fenced: kafka-python's fenced member goes on fetching, and
    # learns it is fenced from the refused commit (librdkafka says so at once).
    produce(bootstrap, topic, demo_messages(config, 200))
    code = wait_until(lambda: first.returncode, 90, what="the fenced replica leaving")
    assert code == 75, first.log_tail()
    fatal = re.findall(r"event=kafka_fatal .*", first.log_text())
    assert len(fatal) == 1, first.log_tail()
    assert "enced" in fatal[0], fatal[0]  # FENCED_INSTANCE_ID / FencedInstanceIdError
    assert second.running
    wait_counted(second, 200)  # the new ones, which the fenced one could not commit
