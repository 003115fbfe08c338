"""The Kafka source factory and the confluent-kafka adapter's settings (no broker needed)."""

from __future__ import annotations

import inspect
import io
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaError, Message, TopicPartition

from streamdrift.config import Config, load_config
from streamdrift.errors import ConfigError, StreamdriftError
from streamdrift.eventlog import EventLog
from streamdrift.sources import CONFLUENT_MISSING, make_source
from streamdrift.sources.confluent import ConfluentSource, client_settings, subscription
from streamdrift.sources.kafka import KafkaSource
from streamdrift.sources.records import Partition, Record
from tests.conftest import EXAMPLE_CONFIG


def _load(tmp_path: Path, kafka: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"features": [{"name": "x"}], "kafka": kafka}))
    return load_config(path, environ=environ or {})


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _ignore(partitions: list[Partition]) -> None:
    pass


def _none_to_commit(partitions: list[Partition], lost: bool) -> dict[Partition, int]:
    return {}


def _ignore_offsets(offsets: dict[Partition, int], committed: bool) -> None:
    pass


def _source(config: Config, stream: io.StringIO | None = None) -> Any:
    return make_source(config.kafka, EventLog(stream=stream or io.StringIO()), _ignore,
                       _none_to_commit, _ignore_offsets)


def test_the_factory_gives_kafka_python_by_default(tmp_path: Path):
    assert load_config(EXAMPLE_CONFIG, environ={}).kafka.client == "kafka-python"
    config = _load(tmp_path, {"topic": "t"})
    assert config.kafka.client == "kafka-python"
    assert type(_source(config)) is KafkaSource


def test_the_factory_gives_confluent_when_configured(tmp_path: Path):
    config = _load(tmp_path, {"topic": "t", "client": "confluent"})
    assert config.kafka.client == "confluent"
    assert type(_source(config)) is ConfluentSource
    from_environment = _load(tmp_path, {"topic": "t"},
                             environ={"STREAMDRIFT_KAFKA_CLIENT": "confluent"})
    assert type(_source(from_environment)) is ConfluentSource


def test_an_unknown_client_is_refused_naming_the_key(tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"client": "librdkafka"})
    assert "kafka.client must be one of kafka-python, confluent (got 'librdkafka')" \
        in str(raised.value)
    with pytest.raises(ConfigError, match=r"kafka\.client must be one of"):
        _load(tmp_path, {}, environ={"STREAMDRIFT_KAFKA_CLIENT": "rdkafka"})


def test_confluent_without_its_package_says_which_extra_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = _load(tmp_path, {"client": "confluent"})
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails: not installed
    monkeypatch.delitem(sys.modules, "streamdrift.sources.confluent")
    with pytest.raises(StreamdriftError) as raised:
        _source(config)
    assert str(raised.value) == CONFLUENT_MISSING
    assert "pip install 'streamdrift[confluent]'" in CONFLUENT_MISSING


def test_both_sources_have_the_same_public_interface():
    def interface(cls: type) -> dict[str, inspect.Signature]:
        return {name: inspect.signature(member) for name, member in vars(cls).items()
                if callable(member) and not name.startswith("_")}

    assert interface(ConfluentSource) == interface(KafkaSource)
    assert set(interface(KafkaSource)) == {
        "connect", "poll", "commit", "assignment", "probe_lag", "committed_offsets",
        "read_history", "send_dead_letters", "close", "topic_exists", "take_client_notices",
        "partition_count", "fatal_error", "rewind"}


def test_confluent_settings_map_sasl_and_tls_and_the_password_never_shows(tmp_path: Path):
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    config = _load(tmp_path, {
        "bootstrap_servers": "a:9093, b:9093", "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "reader", "client_id": "drift",
        "ssl_cafile": "ca.pem", "ssl_certfile": "client.pem", "ssl_keyfile": "client.key",
    }, environ={"STREAMDRIFT_KAFKA_SASL_PASSWORD": "hunter2"})
    assert client_settings(config.kafka) == {
        "bootstrap.servers": "a:9093,b:9093",
        "client.id": "drift",
        "security.protocol": "sasl_ssl",
        "reconnect.backoff.max.ms": 2000,
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "reader",
        "sasl.password": "hunter2",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
    }
    plain = _load(tmp_path, {})
    assert client_settings(plain.kafka) == {
        "bootstrap.servers": "127.0.0.1:9092", "client.id": "streamdrift",
        "security.protocol": "plaintext", "reconnect.backoff.max.ms": 2000}
    stream = io.StringIO()
    source = ConfluentSource(config.kafka, EventLog(stream=stream), _ignore, _none_to_commit,
                             _ignore_offsets)
    EventLog(stream=stream)("kafka_connected", config=config.kafka)
    assert "hunter2" not in repr(source)
    assert "hunter2" not in stream.getvalue()
    assert "***" in stream.getvalue()


def test_confluent_connect_retries_until_stopped_and_logs_without_the_password(
        tmp_path: Path):
    config = _load(tmp_path, {
        "bootstrap_servers": f"127.0.0.1:{_unused_port()}", "client": "confluent",
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_username": "reader", "connect_timeout_s": 0.3,
    }, environ={"STREAMDRIFT_KAFKA_SASL_PASSWORD": "hunter2"})
    stream = io.StringIO()
    source = _source(config, stream)
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    try:
        assert source.connect(stop) is False
    finally:
        timer.cancel()
    source.close()
    text = stream.getvalue()
    assert "event=kafka_unavailable" in text
    assert "retry_in_s=0.5" in text
    assert "hunter2" not in text
    # One line per retry: the client's own lines about the refused connection are dropped.
    assert all("event=kafka_unavailable" in line for line in text.splitlines()), text


def test_kafka_python_connect_says_one_line_per_retry_with_the_next_delay(tmp_path: Path):
    config = _load(tmp_path, {"bootstrap_servers": f"127.0.0.1:{_unused_port()}",
                              "connect_timeout_s": 0.3})
    stream = io.StringIO()
    source = _source(config, stream)
    stop = threading.Event()
    timer = threading.Timer(2.5, stop.set)
    timer.start()
    try:
        assert source.connect(stop) is False
    finally:
        timer.cancel()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2, lines
    assert all("event=kafka_unavailable" in line for line in lines), lines
    assert [line.split("retry_in_s=")[1] for line in lines[:2]] == ["0.5", "1"]


def test_confluent_subscribes_to_a_posix_pattern_with_a_leading_caret(tmp_path: Path):
    assert subscription(_load(tmp_path, {"topic": "features"}).kafka) == ["features"]
    assert subscription(_load(tmp_path, {"topic_pattern": r"features\..*"}).kafka) \
        == [r"^features\..*"]
    assert subscription(_load(tmp_path, {"topic_pattern": "^f.*"}).kafka) == ["^f.*"]
    # librdkafka's regular expressions are POSIX: Python-only syntax is refused, not
    # left to match nothing (\d is a plain "d" there).
    for pattern in (r"features-\d+", r"(?:a|b)-x", r"f.*?"):
        with pytest.raises(StreamdriftError, match=r"kafka\.topic_pattern .*POSIX"):
            subscription(_load(tmp_path, {"topic_pattern": pattern}).kafka)


class _FakeConsumer:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.asked: tuple[int, float] | None = None

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.asked = (num_messages, timeout)
        return self.messages


def test_confluent_poll_skips_errors_and_returns_records(tmp_path: Path):
    config = _load(tmp_path, {"client": "confluent", "max_poll_records": 7})
    stream = io.StringIO()
    source = _source(config, stream)
    fake = _FakeConsumer([
        Message(topic="t", partition=1, offset=5, value=b'{"x": 1}', timestamp=(1, 1234)),
        Message(topic="t", partition=1, error=KafkaError(KafkaError._PARTITION_EOF)),
        Message(topic="t", partition=2, offset=9, value=None, timestamp=(1, 1240)),
        Message(topic="t", partition=0,
                error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "no such topic")),
    ])
    source._consumer = fake
    batch = source.poll(0.25)
    assert list(batch.values) == [b'{"x": 1}', None]
    assert list(batch.timestamps_ms) == [1234, 1240]
    assert batch.next_offsets == {("t", 1): 6, ("t", 2): 10}
    assert [batch.record(i) for i in range(len(batch))] == [Record("t", 1, 5, 1234, b'{"x": 1}'),
                                                           Record("t", 2, 9, 1240, None)]
    assert fake.asked == (7, 0.25)
    # While the group forms (nothing assigned yet), an unknown topic is a notice, counted.
    assert stream.getvalue() == ""  # and the partition EOF is silent
    assert source.take_client_notices() == 1
    # Once partitions are assigned, the same error is a problem, and said.
    source._assigned(fake, [TopicPartition("t", 0)])
    source._consumer = _FakeConsumer([
        Message(topic="t", partition=0,
                error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "no such topic"))])
    source.poll(0.25)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "level=warning event=kafka_client logger=rdkafka" in lines[0]
    assert "UNKNOWN_TOPIC_OR_PART" in lines[0]


def test_confluent_a_fatal_error_among_the_messages_makes_the_source_fatal(tmp_path: Path):
    """After a broker restart librdkafka can say that a static member was fenced as a
    message of consume() (code _FATAL), not through error_cb: the service must see it."""
    config = _load(tmp_path, {"client": "confluent"})
    source = _source(config)
    source._consumer = _FakeConsumer([
        Message(topic="t", partition=1, offset=5, value=b'{"x": 1}', timestamp=(1, 1234)),
        Message(error=KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer "
                                 "fenced by other consumer with same group.instance.id")),
    ])
    assert source.fatal_error() is None
    batch = source.poll(0.25)
    assert list(batch.values) == [b'{"x": 1}']
    fatal = source.fatal_error()
    assert fatal is not None
    assert fatal.startswith("_FATAL")
    assert "fenced" in fatal
