"""Avro topics on a real broker and a real Schema Registry (Apicurio Registry, its
Confluent-compatible API): the service equals replay, schema evolution, a registry outage,
and bad frames dead-lettered with their reasons."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamdrift.avro import encode_framed, feature_record_schema
from streamdrift.cli import main as cli_main
from streamdrift.config import SchemaRegistryConfig, load_config
from streamdrift.registry import SchemaRegistry
from streamdrift.sources.framed_file import write_framed_records
from streamdrift.sources.records import Record
from tests.integration.conftest import (
    FEATURES,
    RegistryProcess,
    ServiceFactory,
    assert_gauges_match_report,
    committed_offsets,
    consume_all,
    demo_messages,
    feature_gauges,
    messages_total,
    produce,
    setup_service,
    wait_counted,
    wait_until,
)

CCOMPAT = "/apis/ccompat/v7"


def _avro_setup(tmp_path: Path, bootstrap: str, topic: str, registry: str,
                client: str = "kafka-python", window_size: int = 30_000,
                extra: dict[str, Any] | None = None) -> tuple[Path, int]:
    document: dict[str, Any] = {"input": {"format": "avro",
                                          "schema_registry": {"url": registry + CCOMPAT,
                                                              "timeout_s": 2}}}
    for key, value in (extra or {}).items():
        document[key] = {**document.get(key, {}), **value}
    return setup_service(tmp_path, bootstrap, topic, window_size=window_size, extra=document,
                         client=client)


def _register(registry: str, subject: str, schema: dict[str, Any]) -> tuple[int, Any]:
    client = SchemaRegistry(SchemaRegistryConfig(registry + CCOMPAT))
    return client.register(subject, json.dumps(schema)), fastavro.parse_schema(schema)


def _framed(config: Path, messages: Sequence[bytes], schema_id: int, parsed: Any,
            drop: Sequence[str] = ()) -> list[bytes]:
    """The demo's JSON messages as framed Avro records (top-level fields in ``drop`` left
    out, for an older schema)."""
    del config
    out = []
    for payload in messages:
        record = json.loads(payload)
        for name in drop:
            record.pop(name, None)
        out.append(encode_framed(schema_id, parsed, record))
    return out


def _replay_report(tmp_path: Path, config: Path, records: Sequence[Any], topic: str,
                   name: str = "topic.avro") -> dict[str, Any]:
    """``streamdrift replay`` of ``records`` written to an Avro container of Kafka records."""
    path = tmp_path / name
    write_framed_records(path, [Record(topic, r.partition, r.offset, r.timestamp, r.value, r.key)
                                for r in records])
    report_path = tmp_path / f"{name}.report.json"
    assert cli_main(["replay", "--config", str(config), "--input", str(path), "--report",
                     str(report_path)]) == 0
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


def test_the_service_on_an_avro_topic_equals_replay_and_the_json_stream(
        tmp_path: Path, bootstrap: str, registry_url: str,
        topic_factory: Callable[..., str], service_factory: ServiceFactory,
        kafka_client: str) -> None:
    topic = topic_factory(partitions=3)
    config, port = _avro_setup(tmp_path, bootstrap, topic, registry_url, kafka_client)
    schema_id, parsed = _register(registry_url, f"{topic}-value", feature_record_schema(
        load_config(config, environ={}).features))
    messages = demo_messages(config, 8000, drifted=("age", "device"), drift_from=4000)
    framed = _framed(config, messages, schema_id, parsed)
    produce(bootstrap, topic, framed)
    service = service_factory(config, port)
    service.wait_ready(60)
    service.wait_until(lambda: service.value("streamdrift_window_messages") == 8000, 60,
                       what="all 8000 messages in the window")
    scraped = feature_gauges(service)
    assert service.value("streamdrift_schema_registry_up") == 1

    records = consume_all(bootstrap, topic)
    report = _replay_report(tmp_path, config, records, topic)
    assert_gauges_match_report(scraped, report["features"])
    assert {f for f in FEATURES if report["features"][f]["drift"]} == {"age", "device"}
    # The same messages as JSON, in the same partitions and order, give the same report,
    # exactly (a file of Kafka records may hold JSON values too).
    as_json = dict(zip(framed, messages, strict=True))
    json_config = tmp_path / "json.yaml"
    json_config.write_text(config.read_text().replace("format: avro", "format: json"))
    json_report = _replay_report(tmp_path, json_config, [r._replace(value=as_json[r.value or b""])
                                                         for r in records], topic, "json.avro")
    assert json_report["features"] == report["features"]


def test_two_schema_versions_in_one_topic_a_field_added_and_one_removed(
        tmp_path: Path, bootstrap: str, registry_url: str,
        topic_factory: Callable[..., str], service_factory: ServiceFactory) -> None:
    topic = topic_factory(partitions=2)
    config, port = _avro_setup(tmp_path, bootstrap, topic, registry_url)
    first = feature_record_schema(load_config(config, environ={}).features)
    # v2: a field added with a default; v3: v2 without the top-level "plan".
    second = {**first, "fields": [*first["fields"],
                                  {"name": "campaign", "type": "string", "default": "none"}]}
    third = {**second, "fields": [f for f in second["fields"] if f["name"] != "plan"]}
    versions = [_register(registry_url, f"{topic}-value", schema)
                for schema in (first, second, third)]
    assert len({schema_id for schema_id, _ in versions}) == 3
    messages = demo_messages(config, 3000)
    payloads = (_framed(config, messages[:1000], *versions[0])
                + [encode_framed(versions[1][0], versions[1][1],
                                 {**json.loads(m), "campaign": "spring"})
                   for m in messages[1000:2000]]
                + _framed(config, messages[2000:], *versions[2], drop=("plan",)))
    produce(bootstrap, topic, payloads)
    service = service_factory(config, port)
    wait_counted(service, 3000)
    samples = service.scrape()
    missing = {dict(labels)["feature"]: value for (name, labels), value in samples.items()
               if name == "streamdrift_missing_values_total"}
    invalid = sum(value for (name, _), value in samples.items()
                  if name in ("streamdrift_invalid_values_total",
                              "streamdrift_invalid_messages_total"))
    expected_missing = Counter(f for m in messages for f in FEATURES
                               if _is_missing(json.loads(m), f))
    expected_missing["plan"] += sum(not _is_missing(json.loads(m), "plan")
                                    for m in messages[2000:])
    assert invalid == 0
    assert {f: missing.get(f, 0) for f in FEATURES} == {f: expected_missing[f] for f in FEATURES}
    report = _replay_report(tmp_path, config, consume_all(bootstrap, topic), topic)
    assert_gauges_match_report(feature_gauges(service), report["features"])


_PATHS = {"session_length": ("usage", "session_length"),
          "purchases_30d": ("usage", "purchases_30d"), "age": ("customer", "age"),
          "discount_rate": ("offer", "discount_rate"), "country": ("customer", "country"),
          "device": ("device",), "plan": ("plan",)}


def _is_missing(message: dict[str, Any], feature: str) -> bool:
    value: Any = message
    for key in _PATHS[feature]:
        value = value.get(key) if isinstance(value, dict) else None
    return value is None


@pytest.mark.timeout(400)
def test_a_registry_outage_pauses_consumption_and_loses_nothing(
        tmp_path: Path, bootstrap: str, registry_factory: Callable[..., RegistryProcess],
        topic_factory: Callable[..., str], service_factory: ServiceFactory,
        kafka_client: str) -> None:
    registry = registry_factory()
    topic = topic_factory(partitions=3)
    dead = topic_factory(partitions=1)
    config, port = _avro_setup(tmp_path, bootstrap, topic, registry.url, kafka_client,
                               extra={"kafka": {"dead_letter_topic": dead}})
    first = feature_record_schema(load_config(config, environ={}).features)
    second = {**first, "fields": [*first["fields"],
                                  {"name": "campaign", "type": "string", "default": "none"}]}
    v1, v2 = (_register(registry.url, f"{topic}-value", s) for s in (first, second))
    messages = demo_messages(config, 4000)
    produce(bootstrap, topic, _framed(config, messages[:2000], *v1))
    service = service_factory(config, port)
    wait_counted(service, 2000)
    group = f"streamdrift-{topic}"

    with registry.stopped():
        # Records of a writer schema the service has not seen: it must ask the registry.
        produce(bootstrap, topic, _framed(config, messages[2000:], *v2))
        service.wait_until(lambda: service.value("streamdrift_schema_registry_up") == 0, 60,
                           what="streamdrift_schema_registry_up 0")
        wait_until(lambda: "event=schema_registry_unreachable" in service.log_text(), 30,
                   what="the schema_registry_unreachable event")
        # One line per attempt, the waits growing: three of them, then hold the outage to
        # the 30 s it must survive, checking all along that nothing was counted.
        wait_until(lambda: service.log_text().count("event=schema_registry_unreachable") >= 3,
                   60, what="three schema_registry_unreachable attempts")
        outage_ends = time.monotonic() + 30
        while time.monotonic() < outage_ends:
            assert messages_total(service) == 2000  # nothing decoded, nothing counted
            time.sleep(1)  # (how often the invariant is sampled, not a wait for an event)
        assert sum(committed_offsets(bootstrap, group, topic, 3).values()) == 2000

    wait_counted(service, 4000, timeout_s=90)
    service.wait_until(lambda: service.value("streamdrift_schema_registry_up") == 1, 30,
                       what="streamdrift_schema_registry_up 1 again")
    assert "event=schema_registry_reachable" in service.log_text()
    assert messages_total(service) == 4000
    assert service.value("streamdrift_dead_letter_messages_total") == 0
    assert consume_all(bootstrap, dead, quiet_s=1.0) == []
    wait_until(lambda: sum(committed_offsets(bootstrap, group, topic, 3).values()) == 4000,
               30, what="every offset committed")


def test_unknown_ids_truncated_and_unframed_records_are_dead_lettered_with_their_reason(
        tmp_path: Path, bootstrap: str, registry_url: str,
        topic_factory: Callable[..., str], service_factory: ServiceFactory) -> None:
    topic = topic_factory(partitions=1)
    dead = topic_factory(partitions=1)
    config, port = _avro_setup(tmp_path, bootstrap, topic, registry_url,
                               extra={"kafka": {"dead_letter_topic": dead}})
    schema_id, parsed = _register(registry_url, f"{topic}-value", feature_record_schema(
        load_config(config, environ={}).features))
    good = _framed(config, demo_messages(config, 300), schema_id, parsed)
    unknown_id = 2**31 - 7
    bad = {"unknown_schema": good[0][:1] + unknown_id.to_bytes(4, "big") + good[0][5:],
           "undecodable": good[1][:-4], "not_framed": b'{"device": "phone"}'}
    payloads = good[:100] + list(bad.values()) + good[100:]
    produce(bootstrap, topic, payloads)
    service = service_factory(config, port)
    wait_counted(service, len(payloads))
    samples = service.scrape()
    by_reason = {dict(labels)["reason"]: value for (name, labels), value in samples.items()
                 if name == "streamdrift_invalid_messages_total" and value}
    assert by_reason == {"unknown_schema": 1, "undecodable": 1, "not_framed": 1}
    letters = consume_all(bootstrap, dead)
    assert {dict(r.headers)["streamdrift-reason"].decode(): r.value for r in letters} == bad
    assert f"event=schema_unknown schema_id={unknown_id}" in service.log_text()


def test_produce_as_avro_then_a_baseline_from_the_avro_topic(
        tmp_path: Path, bootstrap: str, registry_url: str,
        topic_factory: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    topic = topic_factory(partitions=2)
    config, _ = _avro_setup(tmp_path, bootstrap, topic, registry_url)
    assert cli_main(["produce", "--config", str(config), "--count", "3000", "--rate", "0",
                     "--seed", "4"]) == 0  # the topic's format: avro
    out = capsys.readouterr().out
    assert f"under {topic}-value (id " in out
    records = consume_all(bootstrap, topic)
    assert len(records) == 3000
    # Every record is framed with the registered schema and decodes to the features.
    from streamdrift.avro import AvroSchema
    from streamdrift.registry import WriterSchemas, avro_writer_schema

    loaded = load_config(config, environ={})
    assert loaded.input.schema_registry is not None
    schemas = WriterSchemas(SchemaRegistry(loaded.input.schema_registry), avro_writer_schema)
    values = [r.value for r in records]
    assert len(schemas.resolve(values)) == 1
    decoded = AvroSchema(loaded.features, 10**6, schemas).decode(values)
    assert decoded.rejections == []
    assert all((column.status == 0).mean() > 0.9 for column in decoded.columns)

    # The topic read back as a baseline: the same as one built from its records as JSONL.
    records_jsonl = tmp_path / "records.jsonl"
    records_jsonl.write_text("".join(
        json.dumps(record) + "\n" for record in AvroSchema(
            loaded.features, 10**6, schemas).decode_records(values)[0]))
    assert cli_main(["baseline", "build", "--config", str(config), "--from-kafka", "--since",
                     "1h", "--output", str(tmp_path / "topic.json")]) == 0
    assert cli_main(["baseline", "build", "--config", str(config), "--input",
                     str(records_jsonl), "--output", str(tmp_path / "file.json")]) == 0
    from_topic, from_file = (json.loads((tmp_path / name).read_text())
                             for name in ("topic.json", "file.json"))
    assert from_topic["features"] == from_file["features"]
    assert "3000 messages" in from_topic["source"]


def test_demo_kafka_runs_the_whole_loop_on_an_avro_topic(bootstrap: str,
                                                        registry_url: str) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.integration.conftest import free_port

    result = subprocess.run(
        [sys.executable, "-m", "streamdrift", "demo", "--kafka", "--format", "avro",
         "--registry", registry_url + CCOMPAT, "--bootstrap", bootstrap, "--seconds", "8",
         "--rate", "2000", "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(avro)" in result.stdout
    assert "drifted at the end: session_length, device" in result.stdout
    assert "messages 16000, invalid 0" in result.stdout
