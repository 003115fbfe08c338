"""``streamdrift run | produce`` and ``demo --kafka``: the commands that talk to Kafka."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamdrift.config import (
    Config,
    KafkaConfig,
    MetricsConfig,
    ServiceConfig,
    load_config,
    parse_duration_s,
    split_path,
)
from streamdrift.errors import ConfigError, InputError, StreamdriftError


def run(args: argparse.Namespace) -> int:
    from streamdrift.eventlog import EventLog
    from streamdrift.service import DriftService

    config = load_config(args.config)
    log = EventLog(config.service.log_format)
    service = DriftService(config, args.baseline or config.baseline.path, log)
    return service.run()


def parse_drift(spec: str, rate: float) -> tuple[str, int]:
    """``FEATURE[@START]`` -> (feature, index of the first drifted message).

    >>> parse_drift("age@5000", 100.0), parse_drift("age@30s", 100.0), parse_drift("age", 1.0)
    (('age', 5000), ('age', 3000), ('age', 0))
    """
    feature, _, start = spec.partition("@")
    if not start:
        return feature, 0
    if start.isdigit():
        return feature, int(start)
    try:
        seconds = parse_duration_s(start)
    except ValueError:
        raise ConfigError(f"--drift {spec}: START must be a message count or a duration "
                          "like 30s") from None
    if rate <= 0:
        raise ConfigError(f"--drift {spec}: a duration needs a --rate above 0")
    return feature, int(seconds * rate)


def produce(args: argparse.Namespace) -> int:
    from streamdrift.sources.kafka import KafkaSink, ensure_topic

    config = load_config(args.config)
    topic = args.topic or config.kafka.topic
    if topic is None:
        raise ConfigError("--topic is required when the config subscribes to a topic_pattern")
    # Every argument is checked before anything reaches the broker (a topic created for a
    # run that then stops on a typo would be left behind).
    batches = (_recorded_batches(args, config) if args.input is not None
               else _synthetic_batches(args, config))
    output_format = args.format or config.input.format_of(topic)
    if output_format != "json":
        batches = _encoded(batches, config, topic, output_format)
    try:
        existing = ensure_topic(config.kafka, topic, args.partitions)
        sink = KafkaSink(config.kafka)
    except ConnectionError as error:
        raise StreamdriftError(str(error)) from None
    if existing is None:
        print(f"created topic {topic} with {args.partitions} partitions")
    elif existing != args.partitions:
        print(f"topic {topic} exists with {existing} partition{'s' if existing != 1 else ''}: "
              f"--partitions {args.partitions} applies only to a topic it creates")
    started = time.monotonic()
    sent = 0
    try:
        for payloads, keys, timestamps in batches:
            sink.send(topic, payloads, keys, timestamps)
            sent += len(payloads)
            if args.rate > 0:
                ahead_s = sent / args.rate - (time.monotonic() - started)
                if ahead_s > 0:
                    time.sleep(ahead_s)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
    print(f"produced {sent} messages to {topic} in {time.monotonic() - started:.1f}s")
    return 0


Batch = tuple[list[bytes], list[bytes | None] | None, list[int | None] | None]


def _chunk(rate: float) -> int:
    """Messages per send: a tenth of a second's worth, at most 1000."""
    return 1000 if rate <= 0 else max(1, min(1000, int(rate / 10)))


def _synthetic_batches(args: argparse.Namespace, config: Config) -> Iterator[Batch]:
    """Messages drawn from the baseline (every feature from its bins and categories), or
    from the demo's laws when there is no baseline, with the asked-for drifts. The
    arguments are checked here, the messages drawn as the iterator is read."""
    from streamdrift.baseline import load_baseline
    from streamdrift.synthetic import SyntheticStream

    for name, given in (("--key-field", args.key_field),
                        ("--timestamp-field", args.timestamp_field),
                        ("--timestamp-unit", args.timestamp_unit)):
        if given is not None:
            raise ConfigError(f"{name} goes with --input (a recorded file's fields)")
    duration_s = None
    if args.duration is not None:
        try:
            duration_s = parse_duration_s(args.duration)
        except ValueError as error:
            raise ConfigError(f"--duration: {error}") from None
    if args.count is not None and args.count < 0:
        raise ConfigError(f"--count must be 0 or more (got {args.count})")

    baseline_path: Path = args.baseline or config.baseline.path
    baseline = load_baseline(baseline_path) if (args.baseline or baseline_path.exists()) \
        else None
    stream = SyntheticStream(config, seed=args.seed, baseline=baseline,
                             drift_size=args.drift_size, unseen=args.unseen)
    drifts = dict(parse_drift(spec, args.rate) for spec in args.drift)
    names = {spec.name for spec in config.features}
    unknown = sorted(set(drifts) - names)
    if unknown:
        raise ConfigError(f"--drift names unknown feature(s): {', '.join(unknown)}")
    try:
        for name in names:
            stream.sampler(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    source = f"baseline {baseline_path}" if baseline is not None else "the demo's laws"
    print(f"drawing every feature from {source}"
          + (f"; drifting {', '.join(sorted(drifts))}" if drifts else ""))

    def draw() -> Iterator[Batch]:
        limit = args.count
        deadline = None if duration_s is None else time.monotonic() + duration_s
        sent = 0
        while (limit is None or sent < limit) and (deadline is None
                                                   or time.monotonic() < deadline):
            size = _chunk(args.rate) if limit is None else min(_chunk(args.rate), limit - sent)
            now = time.time()
            payloads = []
            for message in stream.messages(size, drifts, offset=sent):
                _stamp(message, config, now)
                payloads.append(json.dumps(message).encode())
            yield payloads, None, None
            sent += size

    return draw()


def _encoded(batches: Iterator[Batch], config: Config, topic: str, output_format: str
             ) -> Iterator[Batch]:
    """``batches`` of JSON messages framed for a Schema Registry: Avro records of the schema
    of the config's features (registered under ``TOPIC-value``, the registry's default
    subject for a topic's values), or Protobuf messages of ``input.protobuf.message``. Set
    up before the first message, so that a registry that does not answer stops the run
    before the topic is touched."""
    encode = (_avro_encoder(config, topic) if output_format == "avro"
              else _protobuf_encoder(config))
    return ((list(map(encode, payloads)), keys, timestamps)
            for payloads, keys, timestamps in batches)


def _avro_encoder(config: Config, topic: str) -> Any:
    import fastavro

    from streamdrift.avro import encode_framed, feature_record_schema
    from streamdrift.registry import RegistryUnavailableError, SchemaRegistry

    registry_config = config.input.schema_registry
    if registry_config is None:
        raise ConfigError("--format avro needs input.schema_registry.url (or "
                          "STREAMDRIFT_SCHEMA_REGISTRY_URL)")
    time_field = config.window.time_field
    try:
        schema = feature_record_schema(config.features, time_field)
    except ValueError as error:
        raise ConfigError(f"--format avro: {error}") from None
    try:
        schema_id = SchemaRegistry(registry_config).register(f"{topic}-value",
                                                             json.dumps(schema))
    except RegistryUnavailableError as error:
        raise StreamdriftError(f"cannot register the schema at {registry_config.url}: "
                               f"{error}") from None
    print(f"registered the schema of {len(config.features)} features under {topic}-value "
          f"(id {schema_id})")
    parsed = fastavro.parse_schema(schema)
    unit = config.window.time_unit

    def encode(payload: bytes) -> bytes:
        message = json.loads(payload)
        if time_field is not None:
            value = _field(message, time_field)
            if value is not None:
                target = message
                for key in time_field[:-1]:
                    target = target[key]
                target[time_field[-1]] = _timestamp_ms(value, unit, Path("message"), 0)
        try:
            return encode_framed(schema_id, parsed, message)
        except (ValueError, TypeError) as error:  # a value the schema does not allow
            raise InputError(f"cannot encode a message as Avro ({error}): "
                             f"{payload[:200]!r}") from None

    return encode


def _protobuf_encoder(config: Config) -> Any:
    from google.protobuf import json_format

    from streamdrift.framing import frame
    from streamdrift.protobuf import load_message_class, message_indexes

    if config.input.protobuf is None:
        raise ConfigError("--format protobuf needs input.protobuf.descriptor_set and "
                          "input.protobuf.message")
    message_class = load_message_class(config.input.protobuf.descriptor_set,
                                       config.input.protobuf.message)
    indexes = message_indexes(message_class.DESCRIPTOR)

    def encode(payload: bytes) -> bytes:
        try:
            message = json_format.ParseDict(json.loads(payload), message_class(),
                                            ignore_unknown_fields=True)
        except json_format.ParseError as error:
            raise InputError(f"cannot encode a message as {config.input.protobuf} "
                             f"({error}): {payload[:200]!r}") from None
        # (schema id 0: nothing is registered; readers take the type from their config)
        return frame(0, message.SerializeToString(), indexes)

    return encode


def _recorded_batches(args: argparse.Namespace, config: Config) -> Iterator[Batch]:
    """The lines of a JSONL file as they are, with a key and a timestamp per message taken
    from fields of it when asked (``--key-field``, ``--timestamp-field``). The arguments are
    checked here, the file read as the iterator is."""
    if args.drift or args.count is not None or args.duration is not None or args.unseen:
        raise ConfigError("--input sends a file as it is: --drift, --unseen, --count and "
                          "--duration go with synthetic messages")
    key_path = None if args.key_field is None else split_path(args.key_field)
    time_path = None if args.timestamp_field is None else split_path(args.timestamp_field)
    unit = args.timestamp_unit or config.window.time_unit
    input_path: Path = args.input
    if not input_path.is_file():
        raise InputError(f"cannot read {input_path}: no such file")
    return _read_recorded(input_path, key_path, time_path, unit, args.rate)


def _read_recorded(input_path: Path, key_path: tuple[str, ...] | None,
                   time_path: tuple[str, ...] | None, unit: str,
                   rate: float) -> Iterator[Batch]:
    from streamdrift.sources.file import iter_jsonl_lines

    for numbers, payloads in iter_jsonl_lines(input_path, _chunk(rate)):
        keys: list[bytes | None] | None = None
        timestamps: list[int | None] | None = None
        if key_path is not None or time_path is not None:
            keys, timestamps = [], []
            for number, payload in zip(numbers, payloads, strict=True):
                try:
                    message = json.loads(payload)
                except ValueError:
                    raise InputError(f"{input_path} line {number}: not JSON, so it has no "
                                     "key or timestamp field") from None
                key = _field(message, key_path)
                keys.append(None if key is None else str(key).encode())
                timestamps.append(_timestamp_ms(_field(message, time_path), unit,
                                                input_path, number))
        yield payloads, keys, timestamps


def _field(message: Any, path: tuple[str, ...] | None) -> Any:
    if path is None:
        return None
    for key in path:
        message = message.get(key) if isinstance(message, dict) else None
    return message


def _timestamp_ms(value: Any, unit: str, path: Path, number: int) -> int | None:
    """A message's time field as Kafka milliseconds (None: the producer's clock)."""
    if value is None:
        return None
    if unit == "iso":
        if not isinstance(value, str):
            raise InputError(f"{path} line {number}: timestamp {value!r} is not ISO-8601 text")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(f"{path} line {number}: timestamp {value!r} is not ISO-8601") \
                from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{path} line {number}: timestamp {value!r} is not a number")
    return int(value * (1000 if unit == "s" else 1))


def _stamp(message: dict[str, Any], config: Config, now_s: float) -> None:
    """Put the event time where an event-time window looks for it."""
    window = config.window
    if window.time_field is None:
        return
    value: Any = now_s
    if window.time_unit == "ms":
        value = int(now_s * 1000)
    elif window.time_unit == "iso":
        value = datetime.fromtimestamp(now_s, UTC).isoformat()
    target = message
    for key in window.time_field[:-1]:
        target = target.setdefault(key, {})
    target[window.time_field[-1]] = value


def demo_kafka(args: argparse.Namespace) -> int:
    """Producer thread -> topic -> the real service (main thread) -> its published report,
    printed every few seconds. The topic and the baseline's folder are removed at the end."""
    import shutil
    import tempfile
    import threading

    from streamdrift.baseline import save_baseline
    from streamdrift.commands.demo import demo_baseline
    from streamdrift.eventlog import EventLog
    from streamdrift.service import DriftService
    from streamdrift.sources.kafka import KafkaSink, delete_topic, ensure_topic
    from streamdrift.synthetic import DEMO_DRIFTED, SyntheticStream, demo_config
    from streamdrift.textreport import render_report

    base = demo_config()
    topic = f"streamdrift-demo-{int(time.time())}"
    if args.format == "avro":
        from streamdrift.config import SchemaRegistryConfig

        base = dataclasses.replace(base, input=dataclasses.replace(
            base.input, format="avro", schema_registry=SchemaRegistryConfig(args.registry)))
    config = dataclasses.replace(
        base,
        kafka=KafkaConfig(bootstrap_servers=args.bootstrap, topic=topic,
                          group_id=f"{topic}-group", auto_offset_reset="earliest",
                          connect_timeout_s=5.0),
        metrics=MetricsConfig(port=args.metrics_port, bind_address="127.0.0.1"),
        service=ServiceConfig(publish_interval_s=1.0, lag_interval_s=2.0),
    )
    stream = SyntheticStream(config, seed=args.seed)
    encode = _avro_encoder(config, topic) if args.format == "avro" else None
    try:
        ensure_topic(config.kafka, topic, 3)
        sink = KafkaSink(config.kafka)
    except (ConnectionError, OSError) as error:
        raise StreamdriftError(f"{error}; start a broker with: deploy/local/kafka start") \
            from None
    except Exception as error:  # kafka-python's errors stay behind the adapter's types
        raise StreamdriftError(f"cannot reach Kafka at {args.bootstrap} ({error}); start a "
                               "broker with: deploy/local/kafka start") from None
    folder = Path(tempfile.mkdtemp(prefix="streamdrift-demo-"))
    try:
        baseline_path = folder / "baseline.json"
        save_baseline(demo_baseline(config, stream), baseline_path)
        total = int(args.seconds * args.rate)
        drift_from = total // 2
        service = DriftService(config, baseline_path, EventLog(stream=sys.stderr))
        names = [spec.name for spec in config.features]

        def send() -> None:
            started = time.monotonic()
            sent = 0
            chunk = max(1, int(args.rate / 10))
            while sent < total and not service.stop.is_set():
                messages = stream.messages(min(chunk, total - sent), DEMO_DRIFTED, drift_from,
                                           offset=sent)
                payloads = [json.dumps(message).encode() for message in messages]
                sink.send(topic, payloads if encode is None else list(map(encode, payloads)))
                sent += len(messages)
                time.sleep(max(0.0, sent / args.rate - (time.monotonic() - started)))
            sink.close()

        def show() -> None:
            print(f"topic {topic} ({args.format}): {total} messages at {args.rate:g}/s, "
                  f"drift from message "
                  f"{drift_from} in {', '.join(DEMO_DRIFTED)}; metrics on "
                  f"http://127.0.0.1:{args.metrics_port}/metrics")
            print(f"{'consumed':>9} " + " ".join(f"{name:>15}" for name in names), flush=True)
            while not service.stop.wait(3.0):
                report = service.collector.snapshot.report
                cells = ["." if report.features[n].kl is None else
                         f"{report.features[n].kl:.4f}"
                         f"{'*' if report.features[n].drift else ' '}" for n in names]
                print(f"{report.messages:>9} " + " ".join(f"{cell:>15}" for cell in cells),
                      flush=True)

        threading.Thread(target=send, daemon=True).start()
        threading.Thread(target=show, daemon=True).start()
        threading.Timer(args.seconds + 5.0, service.stop.set).start()
        service.run()
        report = service.collector.snapshot.report
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        delete_topic(config.kafka, topic)
    print(f"\ndrifted at the end: {', '.join(report.drifted) or 'none'}"
          f"   (expected: {', '.join(DEMO_DRIFTED)})")
    print(render_report(report))
    return 0 if sorted(report.drifted) == sorted(DEMO_DRIFTED) else 1
