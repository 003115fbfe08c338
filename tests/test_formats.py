"""Avro and Protobuf topics: framing, decoding and path walking, against the JSON path.

The oracle is the JSON path itself: the same data, encoded as JSON, must give the same
columns and the same report, exactly. Pure: no registry (writer schemas are given by id).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.avro import AvroSchema, encode_framed, feature_record_schema
from streamdrift.config import Config, parse_config
from streamdrift.features import extract_features
from streamdrift.formats import PayloadDecoder
from streamdrift.framing import frame, split_frame, split_message_indexes
from streamdrift.monitor import DriftMonitor, reference_baseline
from streamdrift.protobuf import ProtobufSchema, load_message_class, message_mapping
from streamdrift.registry import WriterSchemas

FEATURES = [
    {"name": "age", "path": "user.age", "type": "numeric"},
    {"name": "spend", "type": "numeric"},
    {"name": "plan", "type": "categorical"},
    {"name": "country", "path": "user.country", "type": "categorical"},
]
CONFIG: dict[str, Any] = {"features": FEATURES, "window": {"size": 600, "panes": 6},
                          "baseline": {"bins": 8, "max_categories": 4}}
REGISTRY = {"url": "http://127.0.0.1:1"}


def _config(input_format: str = "json", **extra: Any) -> Config:
    raw = dict(CONFIG)
    if input_format == "avro":
        raw["input"] = {"format": "avro", "schema_registry": REGISTRY, **extra}
    elif extra:
        raw["input"] = extra
    return parse_config(raw, Path.cwd(), environ={})


def _messages(count: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    plans = ["free", "pro", "team", "NA", "None", "enterprise"]
    messages = []
    for index in range(count):
        age = float(rng.normal(40 + shift, 10))
        messages.append({
            "user": {"age": None if index % 37 == 0 else age,
                     "country": str(rng.choice(["DE", "NA", "FR", "US", "JP"]))},
            "spend": float(rng.gamma(2.0, 30.0)) if index % 53 else None,
            "plan": str(rng.choice(plans, p=[.4, .2, .15, .1, .1, .05])),
        })
    return messages


def _avro(config: Config, messages: list[dict[str, Any]], schema_id: int = 7
          ) -> tuple[list[bytes], dict[int, Any]]:
    schema = fastavro.parse_schema(feature_record_schema(config.features))
    return [encode_framed(schema_id, schema, m) for m in messages], {schema_id: schema}


def _report(monitor: DriftMonitor, payloads: list[bytes], batch: int = 97) -> dict[str, Any]:
    for start in range(0, len(payloads), batch):
        monitor.process_payloads(payloads[start:start + batch])
    return monitor.report().to_json()


def test_one_stream_in_json_and_in_avro_gives_the_same_report_exactly():
    json_config, avro_config = _config(), _config("avro")
    reference = _messages(5000, seed=1)
    baseline = reference_baseline(json_config, dict(zip(
        [f["name"] for f in FEATURES], extract_features(reference, json_config.features),
        strict=True)))
    stream = _messages(1500, seed=2) + _messages(900, seed=3, shift=8.0)
    avro_payloads, schemas = _avro(avro_config, stream)
    as_json = _report(DriftMonitor(json_config, baseline),
                      [json.dumps(m).encode() for m in stream])
    as_avro = _report(DriftMonitor(avro_config, baseline, writer_schemas=schemas), avro_payloads)
    assert as_json["features"]["age"]["status"] == "drift"  # the stream does move
    assert as_avro == as_json


def test_framing_round_trips_and_refuses_what_is_not_framed():
    assert split_frame(frame(2**31 - 1, b"xyz")).schema_id == 2**31 - 1  # type: ignore[union-attr]
    assert split_frame(b"{}") is None
    assert split_frame(b"\x01\x00\x00\x00\x01a") is None
    for indexes in [(0,), (1,), (3, 0, 2), (200, 5)]:
        framed = frame(1, b"body", indexes)
        split = split_message_indexes(split_frame(framed).body)  # type: ignore[union-attr]
        assert split is not None
        assert (split[0], bytes(split[1])) == (indexes, b"body")
    assert split_message_indexes(memoryview(b"\x06\x02")) is None  # three indexes, one there


def test_bad_frames_are_refused_each_for_its_own_reason():
    config = _config("avro")
    (good,), schemas = _avro(config, _messages(1, seed=4))
    payloads = [good, b"", b'{"spend": 3}', b"\x00\x00\x00", good[:1] + b"\x00\x00\x00\x63"
                + good[5:], good[:-3], good + b"\x00\x00", b"\x00" * 5 + b"\xff" * 4]
    decoded = AvroSchema(config.features, 10_000, schemas).decode(payloads)
    assert decoded.positions == [0]
    assert decoded.rejections == [(1, "empty"), (2, "not_framed"), (3, "not_framed"),
                                  (4, "unknown_schema"), (5, "undecodable"),
                                  (6, "undecodable"), (7, "unknown_schema")]


def test_a_field_missing_from_an_older_writer_schema_is_missing_not_invalid():
    config = _config("avro")
    new = feature_record_schema(config.features)
    old = {**new, "fields": [f for f in new["fields"] if f["name"] != "spend"]}
    schemas = {1: fastavro.parse_schema(old), 2: fastavro.parse_schema(new)}
    message = _messages(2, seed=5)[1]  # (the first has no spend)
    old_payload = encode_framed(1, schemas[1], {k: v for k, v in message.items()
                                                if k != "spend"})
    columns = AvroSchema(config.features, 10_000, schemas).decode(
        [old_payload, encode_framed(2, schemas[2], message)]).columns
    spend = [spec.name for spec in config.features].index("spend")
    assert columns[spend].status.tolist() == [1, 0]  # missing, then valid


def test_avro_logical_types_read_as_json_would_carry_them():
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                                   "precision": 9, "scale": 2}},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "TIN"]}},
        {"name": "vip", "type": "boolean"},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "scores", "type": {"type": "array", "items": "double"}},
    ]})
    config = parse_config({
        "features": [{"name": n, "path": p, "type": t} for n, p, t in [
            ("when", "when", "numeric"), ("day", "day", "categorical"),
            ("price", "price", "numeric"), ("tier", "tier", "categorical"),
            ("vip", "vip", "numeric"), ("clicks", "tags.clicks", "numeric"),
            ("second", "scores.1", "numeric"), ("tenth", "scores.9", "numeric")]],
        "window": {"size": "1h", "panes": 4, "time_field": "when", "time_unit": "ms"},
        "input": {"format": "avro", "schema_registry": REGISTRY}}, Path.cwd(), environ={})
    record = {"when": datetime(2024, 5, 1, 12, tzinfo=UTC), "day": date(2024, 5, 1),
              "price": Decimal("19.99"), "tier": "TIN", "vip": True, "tags": {"clicks": 4},
              "scores": [0.5, 2.5]}
    decoded = AvroSchema(config.features, 10_000, {3: schema}, config.window.time_field,
                         "ms").decode([encode_framed(3, schema, record)])
    values = [column.values[0] if column.status[0] == 0 else None for column in decoded.columns]
    assert values == [1714564800.0, "2024-05-01", 19.99, "TIN", 1.0, 4.0, 2.5, None]
    assert decoded.event_times == [1714564800000.0]


# ---- path walking: any Avro shape, against the JSON path on the same values --------------

leaf = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32),
                 st.integers(-2**31, 2**31 - 1), st.text(max_size=5))


@st.composite
def shaped_records(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """An Avro schema with a nested record, a map, a nullable union and an array, a value
    for it, and paths into it (some absent)."""
    numbers = draw(st.lists(st.floats(-1e6, 1e6), max_size=4))
    tags = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 9),
                                max_size=3))
    inner = draw(st.one_of(st.none(), st.floats(-100, 100)))
    label = draw(st.one_of(st.none(), st.sampled_from(["x", "y", "NA", ""])))
    schema = {"type": "record", "name": "Top", "fields": [
        {"name": "nested", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "value", "type": ["null", "double"]},
            {"name": "label", "type": ["null", "string"]}]}},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "numbers", "type": {"type": "array", "items": "double"}},
        {"name": "maybe", "type": ["null", "Inner"]}]}
    maybe = draw(st.one_of(st.none(), st.just({"value": inner, "label": label})))
    record = {"nested": {"value": inner, "label": label}, "tags": tags, "numbers": numbers,
              "maybe": maybe}
    paths = ["nested.value", "nested.label", "tags.a", "tags.b", "numbers.0", "numbers.3",
             "maybe.value", "maybe.label", "nested.absent", "numbers.x"]
    return schema, record, paths


@settings(max_examples=150, deadline=None)
@given(shaped_records())
def test_paths_walk_avro_records_maps_unions_and_arrays_as_they_walk_json(case):
    schema, record, paths = case
    specs = [{"name": f"f{i}", "path": path,
              "type": "categorical" if path.endswith("label") else "numeric"}
             for i, path in enumerate(paths)]
    config = parse_config({"features": specs, "input": {"format": "avro",
                                                        "schema_registry": REGISTRY}},
                          Path.cwd(), environ={})
    parsed = fastavro.parse_schema(schema)
    avro = AvroSchema(config.features, 10_000, {1: parsed}).decode(
        [encode_framed(1, parsed, record)]).columns
    as_json = extract_features([json.loads(json.dumps(record))], config.features)
    for a, j in zip(avro, as_json, strict=True):
        assert a.status.tolist() == j.status.tolist()
        assert a.values.tolist() == j.values.tolist()


# ---- topics of several formats ------------------------------------------------------------

def test_a_batch_from_topics_of_two_formats_decodes_each_by_its_topic():
    config = _config("avro", formats_by_topic={"legacy-json": "json"})
    messages = _messages(40, seed=6)
    avro_payloads, schemas = _avro(config, messages)
    payloads = [json.dumps(m).encode() if i % 3 == 0 else avro_payloads[i]
                for i, m in enumerate(messages)]
    # runs: which topic each stretch of the batch came from
    runs, start = [], 0
    for index in range(1, len(payloads) + 1):
        if index == len(payloads) or (index % 3 == 0) != ((index - 1) % 3 == 0):
            runs.append(((("legacy-json" if (index - 1) % 3 == 0 else "events"), 0), start))
            start = index
    decoded = PayloadDecoder(config, schemas).decode(payloads, runs)
    expected = extract_features(messages, config.features)
    assert (decoded.positions, decoded.rejections) == (list(range(len(messages))), [])
    for got, want in zip(decoded.columns, expected, strict=True):
        assert got.values.tolist() == want.values.tolist()


# ---- the registry cache ---------------------------------------------------------------------

class CountingRegistry:
    """Answers like a registry that knows ``schemas``; counts the questions."""

    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas
        self.asked: list[int] = []

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        self.asked.append(schema_id)
        text = self.schemas.get(schema_id)
        return None if text is None else {"schema": text}


def test_writer_schemas_are_fetched_once_by_id_and_unknown_ids_are_asked_again_later():
    from streamdrift.registry import avro_writer_schema

    text = json.dumps(feature_record_schema(_config("avro").features))
    registry = CountingRegistry({5: text, 6: text})
    now = [0.0]
    unknown: list[int] = []
    cache = WriterSchemas(registry, avro_writer_schema, cache_size=1,  # type: ignore[arg-type]
                          on_unknown=lambda i, why: unknown.append(i), clock=lambda: now[0])
    payloads = [frame(5, b""), frame(5, b""), frame(9, b""), b"{}", None]
    assert cache.resolve(payloads) == [5, 9]
    assert (cache.resolve(payloads), unknown, cache.get(9, "x")) == ([], [9], None)
    now[0] = 61.0
    assert cache.resolve(payloads) == [9]
    assert cache.resolve([frame(6, b"")]) == [6]
    assert 5 not in cache  # cache_size 1
    assert registry.asked == [5, 9, 9, 6]


# ---- Protobuf ------------------------------------------------------------------------------

def _descriptor_set(tmp_path: Path) -> Path:
    """A descriptor set as protoc --include_imports writes it, built field by field."""
    proto = descriptor_pb2.FileDescriptorProto(name="features.proto", package="shop",
                                               syntax="proto3")
    proto.dependency.append("google/protobuf/timestamp.proto")
    user = proto.message_type.add(name="User")
    user.field.add(name="age", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                   proto3_optional=True, oneof_index=0)
    user.oneof_decl.add(name="_age")
    user.field.add(name="country", number=2,
                   type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    event = proto.message_type.add(name="Event")
    plan = proto.enum_type.add(name="Plan")
    for number, name in enumerate(["FREE", "PRO", "TEAM"]):
        plan.value.add(name=name, number=number)
    event.field.add(name="user", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                    type_name=".shop.User",
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    event.field.add(name="spend", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    event.field.add(name="plan", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                    type_name=".shop.Plan",
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    event.field.add(name="at", number=4, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                    type_name=".google.protobuf.Timestamp",
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    files = descriptor_pb2.FileDescriptorSet()
    from google.protobuf import timestamp_pb2

    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    files.file.extend([timestamp, proto])
    path = tmp_path / "features.desc"
    path.write_bytes(files.SerializeToString())
    return path


def test_protobuf_messages_give_the_columns_their_json_form_gives(tmp_path):
    event = load_message_class(_descriptor_set(tmp_path), "shop.Event")
    config = parse_config({"features": [
        {"name": "age", "path": "user.age", "type": "numeric"},
        {"name": "country", "path": "user.country", "type": "categorical"},
        {"name": "spend", "type": "numeric"}, {"name": "plan", "type": "categorical"},
        {"name": "at", "type": "numeric"}]}, Path.cwd(), environ={})
    messages = [event(user={"age": 31.5, "country": "NA"}, spend=0, plan=1,
                      at={"seconds": 1714564800}),
                event(user={"country": ""}, spend=120), event()]
    payloads = [frame(12, m.SerializeToString(), (1,)) for m in messages]
    payloads += [frame(12, b"\xff\xff", (1,)), frame(12, b"", (0,)), b"{}"]
    decoded = ProtobufSchema(config.features, 10_000, event).decode(payloads)
    assert decoded.positions == [0, 1, 2]
    assert decoded.rejections == [(3, "undecodable"), (4, "unknown_schema"), (5, "not_framed")]
    as_json = [{"user": {"age": 31.5, "country": "NA"}, "spend": 0, "plan": "PRO",
                "at": 1714564800.0},
               {"user": {"country": ""}, "spend": 120, "plan": "FREE"},
               {"spend": 0, "plan": "FREE"}]
    for got, want in zip(decoded.columns, extract_features(as_json, config.features),
                         strict=True):
        assert got.status.tolist() == want.status.tolist()
        assert got.values.tolist() == want.values.tolist()
    assert message_mapping(messages[2]) == {"spend": 0, "plan": "FREE"}


def test_a_descriptor_set_without_the_message_names_what_it_has(tmp_path):
    from streamdrift.errors import StreamdriftError

    with pytest.raises(StreamdriftError, match=r"'shop.Order' is not in .*shop.Event"):
        load_message_class(_descriptor_set(tmp_path), "shop.Order")
    bad = tmp_path / "bad.desc"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(StreamdriftError, match="not a FileDescriptorSet"):
        load_message_class(bad, "shop.Event")


def test_the_config_says_what_a_framed_format_needs():
    from streamdrift.errors import ConfigError

    with pytest.raises(ConfigError, match=r"input\.schema_registry\.url is required"):
        parse_config({**CONFIG, "input": {"format": "avro"}}, Path.cwd(), environ={})
    with pytest.raises(ConfigError, match=r"input\.protobuf\.descriptor_set and"):
        parse_config({**CONFIG, "input": {"formats_by_topic": {"t": "protobuf"}}},
                     Path.cwd(), environ={})
    with pytest.raises(ConfigError, match="must not be written in the config"):
        parse_config({**CONFIG, "input": {"format": "avro", "schema_registry": {
            **REGISTRY, "username": "u", "password": "hunter2"}}}, Path.cwd(), environ={})
    config = parse_config({**CONFIG, "input": {"format": "avro", "schema_registry": {
        "username": "svc"}}}, Path.cwd(), environ={
        "STREAMDRIFT_SCHEMA_REGISTRY_URL": "http://registry:8081/apis/ccompat/v7/",
        "STREAMDRIFT_SCHEMA_REGISTRY_PASSWORD": "hunter2"})
    assert config.input.schema_registry is not None
    assert config.input.schema_registry.url == "http://registry:8081/apis/ccompat/v7"
    assert "hunter2" not in repr(config)



# ---- files: Avro containers for baselines and replay ---------------------------------------

def _write_churnlike(tmp_path: Path, messages: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The same messages as JSONL and as an Avro container of data records."""
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in messages))
    ocf = tmp_path / "data.avro"
    schema = fastavro.parse_schema(feature_record_schema(_config().features))
    with ocf.open("wb") as stream:
        fastavro.writer(stream, schema, messages)
    return jsonl, ocf


def test_a_baseline_from_an_avro_data_file_equals_the_one_from_the_same_jsonl(tmp_path):
    from streamdrift.cli import main as cli_main

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(CONFIG))
    jsonl, ocf = _write_churnlike(tmp_path, _messages(3000, seed=8))
    for source, out in ((jsonl, "j.json"), (ocf, "a.json")):
        assert cli_main(["baseline", "build", "--config", str(config), "--input", str(source),
                         "--output", str(tmp_path / out)]) == 0
    built = [json.loads((tmp_path / out).read_text())["features"] for out in ("j.json", "a.json")]
    assert built[0] == built[1]


def test_replay_of_a_file_of_protobuf_kafka_records_equals_replay_of_the_json(tmp_path):
    from streamdrift.cli import main as cli_main
    from streamdrift.sources.framed_file import write_framed_records
    from streamdrift.sources.records import Record

    event = load_message_class(_descriptor_set(tmp_path), "shop.Event")
    features = [{"name": "age", "path": "user.age", "type": "numeric"},
                {"name": "country", "path": "user.country", "type": "categorical"},
                {"name": "spend", "type": "numeric"}, {"name": "plan", "type": "categorical"}]
    rng = np.random.default_rng(9)
    plans = ["FREE", "PRO", "TEAM"]
    messages = [{"user": {"age": float(rng.normal(40, 9)), "country": str(rng.choice(
        ["DE", "NA", "FR"]))}, "spend": int(rng.poisson(30 + (20 if i > 2500 else 0))),
        "plan": plans[int(rng.integers(3))]} for i in range(4000)]
    base = {"features": features, "window": {"size": 1000, "panes": 10},
            "baseline": {"path": str(tmp_path / "b.json"), "bins": 10}}
    json_config, proto_config = tmp_path / "j.yaml", tmp_path / "p.yaml"
    json_config.write_text(json.dumps(base))
    proto_config.write_text(json.dumps({**base, "input": {"format": "protobuf", "protobuf": {
        "descriptor_set": str(tmp_path / "features.desc"), "message": "shop.Event"}}}))
    reference = tmp_path / "reference.jsonl"
    reference.write_text("".join(json.dumps(m) + "\n" for m in messages[:2000]))
    assert cli_main(["baseline", "build", "--config", str(json_config), "--input",
                     str(reference)]) == 0
    stream = messages[2000:]
    (tmp_path / "stream.jsonl").write_text("".join(json.dumps(m) + "\n" for m in stream))
    records = [Record("events", 0, i, 1_700_000_000_000 + i,
                      frame(0, event(**m).SerializeToString(), (1,)))
               for i, m in enumerate(stream)]
    write_framed_records(tmp_path / "stream.avro", records)
    reports = []
    for config, source in ((json_config, "stream.jsonl"), (proto_config, "stream.avro")):
        out = tmp_path / f"{source}.report.json"
        assert cli_main(["replay", "--config", str(config), "--input", str(tmp_path / source),
                         "--report", str(out)]) == 0
        reports.append(json.loads(out.read_text())["features"])
    assert reports[0]["spend"]["drift"]  # the stream does move
    assert reports[1] == reports[0]


def test_replay_refuses_a_jsonl_file_for_a_framed_format_and_names_what_it_needs(
        tmp_path, capsys):
    from streamdrift.cli import main as cli_main

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**CONFIG, "input": {"format": "avro",
                                                      "schema_registry": REGISTRY}}))
    (tmp_path / "m.jsonl").write_text("{}\n")
    assert cli_main(["replay", "--config", str(config), "--input",
                     str(tmp_path / "m.jsonl")]) == 2
    assert "replay a file of Kafka records (.avro" in capsys.readouterr().err


def test_replay_says_when_the_registry_does_not_answer(tmp_path, capsys):
    from streamdrift.cli import main as cli_main
    from streamdrift.sources.framed_file import write_framed_records
    from streamdrift.sources.records import Record

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**CONFIG, "input": {"format": "avro", "schema_registry": {
        "url": "http://127.0.0.1:9/nothing-here", "timeout_s": 1}}}))
    write_framed_records(tmp_path / "r.avro", [Record("t", 0, 0, 0, frame(1, b"\x00"))])
    jsonl = tmp_path / "ref.jsonl"
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in _messages(300, seed=1)))
    assert cli_main(["baseline", "build", "--config", str(config), "--input", str(jsonl),
                     "--output", str(tmp_path / "b.json")]) == 0
    assert cli_main(["replay", "--config", str(config), "--baseline", str(tmp_path / "b.json"),
                     "--input", str(tmp_path / "r.avro")]) == 2
    assert "the Schema Registry at http://127.0.0.1:9/nothing-here does not answer" in \
        capsys.readouterr().err
