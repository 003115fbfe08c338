"""End to end on a real broker: CPU per message of the consuming process.

Each contender consumes the whole topic from the beginning in a new consumer group, in a
process of its own: ``streamdrift run`` (kafka-python, and ``kafka.client: confluent``
when ``streamdrift.sources.confluent`` exists and the config accepts it), and this module's
own consumers (``python -m benchmarks.e2e consume``):

- ``raw``: the client's poll and nothing else (the payloads of each batch in a list);
- ``floor``: the client + the fastest decode + one vectorized binning (the in-process
  floor, ``benchmarks.contenders.Floor``), nothing else; on an Avro topic the Avro floor
  (``--decoder fastavro --writer-schema FILE``).

An Avro topic needs a Schema Registry for ``streamdrift run``: ``local_registry`` starts one
with ``deploy/local/registry`` (Apicurio, its Confluent-compatible API) and stops it after.

The CPU of a process (user + system, all threads, from ``/proc/<pid>/stat``) is read when
its partitions are assigned (the ``partitions_assigned`` log line of the service, the
``assigned`` line of our consumers) and when it has counted the last message (the group's
committed offsets reach the end of the topic for the service, whose /metrics
``streamdrift_messages_total`` is then checked; the ``done`` line for our consumers, which
then wait to be told to exit). The difference, divided by the number of messages, is the
CPU per message; the start-up of the process and the group join are left out, the fetching
of the first batch is in.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MAX_POLL_RECORDS = 1000
CCOMPAT = "/apis/ccompat/v7"  # Apicurio's Confluent-compatible API


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        text = stream.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ---- availability --------------------------------------------------------------------------

def confluent_client_available() -> bool:
    return importlib.util.find_spec("confluent_kafka") is not None


def streamdrift_confluent_status(config_document: dict[str, Any]) -> str | None:
    """None when ``streamdrift run`` can use ``kafka.client: confluent``, else why not."""
    if importlib.util.find_spec("streamdrift.sources.confluent") is None:
        return "not available (no streamdrift.sources.confluent)"
    if not confluent_client_available():
        return "not available (confluent-kafka not installed)"
    from streamdrift.config import parse_config
    from streamdrift.errors import ConfigError

    try:
        parse_config(config_document, REPO, environ={})
    except ConfigError as error:
        return f"not available (config refused: {str(error).splitlines()[-1].strip()})"
    return None


# ---- schema registry -----------------------------------------------------------------------

@contextlib.contextmanager
def local_registry(data_dir: Path, timeout_s: float = 300.0) -> Iterator[str]:
    """A Schema Registry of its own on a free port (``deploy/local/registry start``, data in
    ``data_dir``), stopped on exit; yields the URL of its Confluent-compatible API.
    ``RuntimeError`` when it does not start (no Java, no Maven cache...)."""
    port = free_port()
    script = str(REPO / "deploy" / "local" / "registry")
    env = {**os.environ, "REGISTRY_PORT": str(port), "REGISTRY_DATA_DIR": str(data_dir)}

    def registry(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, command], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout_s, check=False)

    try:
        started = registry("start")
    except (OSError, subprocess.TimeoutExpired) as error:
        registry("stop")
        raise RuntimeError(f"deploy/local/registry start: {error}") from None
    if started.returncode != 0:
        registry("stop")
        tail = (started.stderr or started.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"deploy/local/registry start failed: {' | '.join(tail)}")
    try:
        yield f"http://127.0.0.1:{port}{CCOMPAT}"
    finally:
        registry("stop")


def register_schema(registry_url: str, subject: str, schema: dict[str, Any]) -> int:
    """Register an Avro schema under ``subject`` with streamdrift's registry client; its id."""
    from streamdrift.config import SchemaRegistryConfig
    from streamdrift.registry import SchemaRegistry

    return SchemaRegistry(SchemaRegistryConfig(registry_url)).register(subject,
                                                                       json.dumps(schema))


# ---- topic ---------------------------------------------------------------------------------

def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    except Exception as error:  # cleanup only: say so and go on
        print(f"  (could not delete topic {topic}: {error})", file=sys.stderr)
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, payloads: Sequence[bytes]) -> str:
    """Write the payloads to the topic (round robin over its partitions) and wait for the
    broker's acknowledgement of all of them. Returns the client used."""
    if confluent_client_available():
        confluent = importlib.import_module("confluent_kafka")
        producer = confluent.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                                       "batch.size": 1_000_000, "acks": "all",
                                       "queue.buffering.max.messages": 200_000,
                                       "sticky.partitioning.linger.ms": 0})
        failures: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for payload in payloads:
            while True:
                try:
                    producer.produce(topic, payload, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120) != 0 or failures:
            raise RuntimeError(f"producing to {topic} failed: {failures[:3]}")
        return "confluent-kafka"
    from kafka import KafkaProducer

    kafka_producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                   batch_size=1_000_000, max_request_size=10_000_000)
    for payload in payloads:
        kafka_producer.send(topic, value=payload)
    kafka_producer.flush(timeout=300)
    kafka_producer.close()
    return "kafka-python"


def committed_total(admin: Any, group: str, topic: str) -> int:
    """Messages the group has committed on the topic (0 while it has none)."""
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # the group does not exist yet, or the coordinator is moving
        return 0
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


# ---- running one contender -----------------------------------------------------------------

@dataclass
class Measurement:
    contender: str
    messages: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_per_message_us(self) -> float:
        return self.cpu_s / self.messages * 1e6


class _Lines:
    """The lines a subprocess writes to one stream, read on a thread; a callback may act on
    each line as it arrives (e.g. read the CPU of the process at once)."""

    def __init__(self, stream: Any, on_line: Any = None) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.tail: list[str] = []
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            if self._on_line is not None:
                self._on_line(line)
            self.tail = [*self.tail[-40:], line.rstrip()]
            self.queue.put(line)

    def wait_for(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line starting with {prefix!r} within {timeout_s} s")
            try:
                line = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_consumer(contender: str, client: str, mode: str, bootstrap: str, topic: str,
                 group: str, count: int, config_path: Path | None = None,
                 baseline_path: Path | None = None, decoder: str | None = None,
                 writer_schema_path: Path | None = None,
                 timeout_s: float = 600.0) -> Measurement:
    """One of this module's consumers (raw or floor) over the whole topic; the Avro floor
    (``decoder`` fastavro) reads the writer schema from ``writer_schema_path``."""
    command = [sys.executable, "-m", "benchmarks.e2e", "consume", "--client", client,
               "--mode", mode, "--bootstrap", bootstrap, "--topic", topic, "--group", group,
               "--count", str(count)]
    if mode == "floor":
        assert config_path is not None
        assert baseline_path is not None
        assert decoder is not None
        command += ["--config", str(config_path), "--baseline", str(baseline_path),
                    "--decoder", decoder]
        if writer_schema_path is not None:
            command += ["--writer-schema", str(writer_schema_path)]
    process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: dict[str, tuple[float, float]] = {}

    def on_line(line: str) -> None:
        if line.startswith(("assigned", "done")) and line.split()[0] not in samples:
            samples[line.split()[0]] = (process_cpu_s(process.pid), time.monotonic())

    stdout = _Lines(process.stdout, on_line)
    stderr = _Lines(process.stderr)
    try:
        stdout.wait_for("assigned", 120.0)
        done = stdout.wait_for("done", timeout_s)
        consumed = int(done.split()[1])
        assert process.stdin is not None
        process.stdin.write("exit\n")
        process.stdin.flush()
        process.wait(30)
    except Exception as error:
        _stop(process)
        raise RuntimeError(f"{contender} failed: {error}; stderr: "
                           + " | ".join(stderr.tail[-8:])) from None
    (cpu0, t0), (cpu1, t1) = samples["assigned"], samples["done"]
    return Measurement(contender, consumed, cpu1 - cpu0, t1 - t0)


def run_service(contender: str, config_path: Path, metrics_port: int, bootstrap: str,
                topic: str, group: str, count: int, timeout_s: float = 900.0) -> Measurement:
    """``streamdrift run`` over the whole topic, until its group has committed every
    message and its /metrics says it counted them all."""
    from kafka.admin import KafkaAdminClient

    process = subprocess.Popen(
        [sys.executable, "-m", "streamdrift", "run", "--config", str(config_path)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    samples: dict[str, tuple[float, float]] = {}

    def on_line(line: str) -> None:
        if "event=partitions_assigned" in line and "assigned" not in samples:
            samples["assigned"] = (process_cpu_s(process.pid), time.monotonic())

    log = _Lines(process.stderr, on_line)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        first: tuple[float, float, int] | None = None
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done within {timeout_s} s")
            done = committed_total(admin, group, topic)
            if done and first is None:
                first = (process_cpu_s(process.pid), time.monotonic(), done)
            if done >= count:
                end = (process_cpu_s(process.pid), time.monotonic())
                break
            time.sleep(0.05)
        counted = _wait_for_metric(metrics_port, "streamdrift_messages_total", count, 15.0)
        if counted != count:
            raise RuntimeError(f"/metrics says streamdrift_messages_total {counted}, "
                               f"expected {count}")
    except Exception as error:
        _stop(process)
        raise RuntimeError(f"{contender} failed: {error}; log: "
                           + " | ".join(log.tail[-8:])) from None
    finally:
        admin.close()
    _stop(process)
    if "assigned" in samples:
        cpu0, t0 = samples["assigned"]
        return Measurement(contender, count, end[0] - cpu0, end[1] - t0)
    # No assignment line seen: from the first commit on, over the messages after it.
    assert first is not None
    return Measurement(contender, count - first[2], end[0] - first[0], end[1] - first[1])


def _wait_for_metric(port: int, name: str, expected: float, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    value = float("nan")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            time.sleep(0.2)
            continue
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                value = float(line.rsplit(" ", 1)[1])
        if value == expected:
            return value
        time.sleep(0.25)
    return value


# ---- the consumers (in their own process) --------------------------------------------------

def _consume_kafka_python(args: argparse.Namespace, floor: Any) -> int:
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            print("assigned", flush=True)

    # The settings of streamdrift's KafkaSource.
    consumer = KafkaConsumer(
        bootstrap_servers=[args.bootstrap], client_id="streamdrift-bench",
        security_protocol="PLAINTEXT", reconnect_backoff_max_ms=2000,
        group_id=args.group, enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=MAX_POLL_RECORDS, session_timeout_ms=10_000,
        heartbeat_interval_ms=3333)
    consumer.subscribe(topics=[args.topic], listener=Listener())
    consumed = 0
    while consumed < args.count:
        batches = consumer.poll(timeout_ms=500)
        values = [record.value for records in batches.values() for record in records]
        consumed += len(values)
        if floor is not None and values:
            floor.add(values)
    print(f"done {consumed}", flush=True)
    sys.stdin.readline()
    consumer.close(autocommit=False)
    return 0


def _consume_confluent(args: argparse.Namespace, floor: Any) -> int:
    confluent = importlib.import_module("confluent_kafka")
    # The settings of streamdrift's ConfluentSource.
    consumer = confluent.Consumer({
        "bootstrap.servers": args.bootstrap, "client.id": "streamdrift-bench",
        "security.protocol": "plaintext", "reconnect.backoff.max.ms": 2000,
        "group.id": args.group, "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000, "heartbeat.interval.ms": 3333, "log_level": 4})

    def assigned(consumer: Any, partitions: Any) -> None:
        print("assigned", flush=True)

    consumer.subscribe([args.topic], on_assign=assigned)
    consumed = 0
    while consumed < args.count:
        messages = consumer.consume(num_messages=MAX_POLL_RECORDS, timeout=0.5)
        values = [m.value() for m in messages if m.error() is None]
        consumed += len(values)
        if floor is not None and values:
            floor.add(values)
    print(f"done {consumed}", flush=True)
    sys.stdin.readline()
    consumer.close()
    return 0


def _consume(args: argparse.Namespace) -> int:
    floor = None
    if args.mode == "floor":
        from benchmarks.contenders import Floor
        from streamdrift.baseline import load_baseline
        from streamdrift.config import load_config

        writer_schema = None
        if args.writer_schema is not None:
            import fastavro

            writer_schema = fastavro.parse_schema(json.loads(args.writer_schema.read_text()))
        floor = Floor(load_config(args.config), load_baseline(args.baseline), args.decoder,
                      writer_schema=writer_schema)
    if args.client == "confluent":
        return _consume_confluent(args, floor)
    return _consume_kafka_python(args, floor)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e")
    commands = parser.add_subparsers(dest="command", required=True)
    consume = commands.add_parser("consume", help="consume a topic once (a benchmark contender)")
    consume.add_argument("--client", choices=("kafka-python", "confluent"), required=True)
    consume.add_argument("--mode", choices=("raw", "floor"), required=True)
    consume.add_argument("--bootstrap", required=True)
    consume.add_argument("--topic", required=True)
    consume.add_argument("--group", required=True)
    consume.add_argument("--count", type=int, required=True)
    consume.add_argument("--config", type=Path)
    consume.add_argument("--baseline", type=Path)
    consume.add_argument("--decoder")
    consume.add_argument("--writer-schema", type=Path,
                         help="the Avro writer schema (JSON) for --decoder fastavro")
    args = parser.parse_args(argv)
    return _consume(args)


if __name__ == "__main__":
    sys.exit(main())
