"""The kafka-python 3 adapter: with ``confluent`` beside it for confluent-kafka, the only
modules that import a Kafka client.

``KafkaSource`` consumes in a consumer group with auto-commit off: the service commits the
offsets of a batch only after the batch has been counted (at-least-once). It survives
brokers that are not there yet (kafka-python 3 raises ``KafkaTimeoutError`` from the
constructor when no broker answers: retried with backoff) and brokers that go away (the
client reconnects; ``probe_lag`` tells whether requests succeed). It also reads partition
history outside the group, to refill the window after a restart, and a time range of a
topic, to build a baseline from it (``read_time_range``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import FencedInstanceIdError, KafkaError
from kafka.structs import OffsetAndMetadata

from streamdrift.config import KafkaConfig
from streamdrift.errors import StreamdriftError
from streamdrift.eventlog import EventLog
from streamdrift.sources.clientlog import ClientLogHandler, route_client_logs
from streamdrift.sources.records import (
    EMPTY_BATCH,
    RecordBatch,
    RevokedCommitListener,
    RevokedListener,
    dead_letter_headers,
)
from streamdrift.sources.records import Partition as Partition  # re-exported
from streamdrift.sources.records import PartitionsListener as PartitionsListener
from streamdrift.sources.records import Record as Record

# kafka-python's lines about a refused connection, said by ``kafka_unavailable`` while
# connect() retries; its lines while a group forms (the coordinator not elected yet on a new
# broker, metadata not loaded yet, a topic not there); and what changes between repetitions.
_CONNECTION_LINES = re.compile(r"ECONNREFUSED|Connection (failed|lost)|[Bb]ootstrap|"
                               r"Unable to connect|timed out")
_FORMING_LINES = re.compile(r"NotCoordinator|CoordinatorNotAvailable|coordinator dead|"
                            r"No partition metadata for topic|not found in cluster metadata|"
                            r"not available during auto-create|RebalanceInProgress")
_VARYING = re.compile(r"\d+(\.\d+)? secs|node_id=\S+|coordinator-\d+")

# Columns of the consumer's records, read in C.
_VALUE = attrgetter("value")
_TIMESTAMP = attrgetter("timestamp")


def client_settings(config: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by every client: servers, TLS and SASL passed through."""
    settings: dict[str, Any] = {
        "bootstrap_servers": [server.strip() for server in config.bootstrap_servers.split(",")],
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
        # Reconnect within seconds after an outage rather than backing off to 30 s.
        "reconnect_backoff_max_ms": 2000,
    }
    if config.sasl_mechanism is not None:
        settings["sasl_mechanism"] = config.sasl_mechanism
    if config.sasl_username is not None:
        settings["sasl_plain_username"] = config.sasl_username
    if config.sasl_password is not None:
        settings["sasl_plain_password"] = config.sasl_password.reveal()
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(config, key)
        if path is not None:
            settings[key] = str(path)
    return settings


def _runs(batches: dict[Any, list[Any]]) -> list[tuple[Partition, int]]:
    """kafka-python hands a poll over partition by partition: one run each."""
    runs: list[tuple[Partition, int]] = []
    start = 0
    for tp, records in batches.items():
        if records:
            runs.append(((tp.topic, tp.partition), start))
            start += len(records)
    return runs


class _Listener(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python 3 runs these on its IO thread, inside the event loop, while the
    service's thread waits in poll(). A blocking commit would wait on the very loop it
    blocks; awaiting the commit's future lets the loop send it, before the group moves
    on: the revoked partitions' counted offsets are committed while this member still
    owns them, and their next owner starts after them."""

    def __init__(self, on_assigned: PartitionsListener, on_revoked: RevokedListener,
                 on_revoked_commit: RevokedCommitListener, client_log: ClientLogHandler) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_revoked_commit = on_revoked_commit
        self._client_log = client_log
        self.consumer: Any = None

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self._client_log.group_forming = True
        uncommitted = self._on_revoked([(tp.topic, tp.partition) for tp in revoked], False)
        if not uncommitted:
            return
        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                   for (topic, partition), offset in uncommitted.items()}
        try:
            await self.consumer.commit_async(offsets)
        except KafkaError:
            self._on_revoked_commit(uncommitted, False)
        else:
            self._on_revoked_commit(uncommitted, True)

    async def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        # No longer this member's: a commit would be refused (its generation is gone).
        self._client_log.group_forming = True
        self._on_revoked([(tp.topic, tp.partition) for tp in lost], True)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._client_log.group_forming = not assigned
        self._on_assigned([(tp.topic, tp.partition) for tp in assigned])


class KafkaSource:
    def __init__(self, config: KafkaConfig, log: EventLog, on_assigned: PartitionsListener,
                 on_revoked: RevokedListener, on_revoked_commit: RevokedCommitListener) -> None:
        self.config = config
        self.log = log
        self._client_log = ClientLogHandler(log, _CONNECTION_LINES, _FORMING_LINES, _VARYING)
        route_client_logs("kafka", self._client_log)
        self._listener = _Listener(on_assigned, on_revoked, on_revoked_commit, self._client_log)
        self._consumer: Any = None
        self._producer: Any = None
        self._settings = client_settings(config)
        # The last poll's failure, said once until a poll succeeds.
        self._poll_failure: str | None = None
        self._fatal: str | None = None

    # ---- group consumption -------------------------------------------------------------

    def connect(self, stop: threading.Event) -> bool:
        """Create the consumer and subscribe, retrying with backoff until it works or
        ``stop`` is set (then False)."""
        delay_s = 0.5
        self._client_log.connecting = True
        while not stop.is_set():
            try:
                consumer = KafkaConsumer(
                    group_id=self.config.group_id,
                    enable_auto_commit=False,
                    auto_offset_reset=self.config.auto_offset_reset,
                    max_poll_records=self.config.max_poll_records,
                    bootstrap_timeout_ms=int(self.config.connect_timeout_s * 1000),
                    # A member killed with -9 holds its partitions until its session
                    # expires: 10 s rather than the client's 45 s gets a restart going.
                    session_timeout_ms=int(self.config.session_timeout_s * 1000),
                    # Static membership: a restart within the session keeps the assignment.
                    group_instance_id=self.config.group_instance_id,
                    # A topic that does not exist is said (topic_missing), not created with
                    # the broker's defaults behind the user's back.
                    allow_auto_create_topics=False,
                    heartbeat_interval_ms=max(100, int(self.config.session_timeout_s * 1000
                                                       / 3)),
                    **self._settings,
                )
            except KafkaError as error:
                self.log("kafka_unavailable", level="warning", error=type(error).__name__,
                         detail=str(error), retry_in_s=delay_s)
                stop.wait(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                continue
            # kafka-python 3.0 does not hand allow_auto_create_topics on to the metadata it
            # keeps, which then asks the broker to create a subscribed topic that is missing.
            cluster_config = getattr(getattr(consumer, "_cluster", None), "config", None)
            if isinstance(cluster_config, dict):
                cluster_config["allow_auto_create_topics"] = False
            if self.config.topic_pattern is not None:
                consumer.subscribe(pattern=self.config.topic_pattern, listener=self._listener)
            else:
                consumer.subscribe(topics=[self.config.topic], listener=self._listener)
            self._consumer = consumer
            self._listener.consumer = consumer
            self._client_log.connecting = False
            self.log("kafka_connected", bootstrap=self.config.bootstrap_servers,
                     group=self.config.group_id,
                     topic=self.config.topic or self.config.topic_pattern,
                     new_group_starts_at=self.config.auto_offset_reset)
            return True
        return False

    def topic_exists(self, topic: str) -> bool | None:
        """Whether the brokers know ``topic``; None when they do not answer."""
        try:
            return topic in self._consumer.topics()
        except KafkaError:
            return None

    def fatal_error(self) -> str | None:
        return self._fatal

    def _note_fatal(self, error: KafkaError) -> None:
        # A static member fenced by another with the same kafka.group_instance_id: its
        # heartbeats stop and every commit is refused from then on (it goes on fetching).
        if isinstance(error, FencedInstanceIdError) and self._fatal is None:
            self._fatal = (f"FencedInstanceIdError: another consumer joined group "
                           f"{self.config.group_id!r} with group_instance_id "
                           f"{self.config.group_instance_id!r}")

    def partition_count(self, topic: str) -> int | None:
        try:
            partitions = self._consumer.partitions_for_topic(topic)
        except KafkaError:
            return None
        return len(partitions) if partitions else None

    def take_client_notices(self) -> int:
        return self._client_log.take_notices()

    def poll(self, timeout_s: float) -> RecordBatch:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        except KafkaError as error:
            self._note_fatal(error)
            # kafka-python 3 raises from poll() what it meets finding the group coordinator
            # (a refused connection while the brokers restart): the client reconnects on its
            # own; the lag probe tells the service it is disconnected meanwhile.
            failure = type(error).__name__
            if failure != self._poll_failure:
                self.log("poll_failed", level="warning", error=failure, detail=str(error))
            self._poll_failure = failure
            time.sleep(timeout_s)
            return EMPTY_BATCH
        self._poll_failure = None
        if not batches:
            return EMPTY_BATCH
        raw = [record for partition_records in batches.values()
               for record in partition_records]

        def record_at(index: int) -> Record:
            record = raw[index]
            return Record(record.topic, record.partition, record.offset, record.timestamp,
                          record.value, record.key, tuple(record.headers or ()))

        return RecordBatch(
            list(map(_VALUE, raw)),
            list(map(_TIMESTAMP, raw)),
            {(tp.topic, tp.partition): records[0].offset
             for tp, records in batches.items() if records},
            {(tp.topic, tp.partition): records[-1].offset + 1
             for tp, records in batches.items() if records},
            record_at,
            _runs(batches),
        )

    def commit(self, next_offsets: Mapping[Partition, int]) -> bool:
        """Commit ``next_offsets`` (the offset of the next message to read, per partition).
        False when the brokers refused or did not answer: the offsets stay to commit later,
        and at worst the batch is counted again (at-least-once)."""
        if not next_offsets:
            return True
        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                   for (topic, partition), offset in next_offsets.items()}
        try:
            self._consumer.commit(offsets=offsets, timeout_ms=5000)
        except KafkaError as error:
            self.log("commit_failed", level="warning", error=type(error).__name__,
                     detail=str(error))
            self._note_fatal(error)
            return False
        return True

    def rewind(self, offsets: Mapping[Partition, int]) -> None:
        held = set(self._consumer.assignment())
        for (topic, partition), offset in offsets.items():
            key = TopicPartition(topic, partition)
            if key in held:  # a rebalance since the poll: its next owner reads it
                self._consumer.seek(key, offset)

    def assignment(self) -> list[Partition]:
        if self._consumer is None:
            return []
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def probe_lag(self, timeout_s: float = 2.0) -> dict[Partition, int] | None:
        """Messages not yet consumed per assigned partition; None when the brokers do not
        answer (which is how the service knows it is disconnected)."""
        assigned = list(self._consumer.assignment())
        timeout_ms = int(timeout_s * 1000)
        try:
            if not assigned:
                self._consumer.bootstrap(timeout_ms=timeout_ms, refresh=True)
                return {}
            ends = self._consumer.end_offsets(assigned, timeout_ms=timeout_ms)
            return {(tp.topic, tp.partition):
                    max(0, ends[tp] - self._consumer.position(tp, timeout_ms=timeout_ms))
                    for tp in assigned}
        except KafkaError:
            return None

    def committed_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Where the group will resume: the committed offset, or where a partition without
        one starts under ``auto_offset_reset``."""
        result: dict[Partition, int] = {}
        missing: list[TopicPartition] = []
        for topic, partition in partitions:
            tp = TopicPartition(topic, partition)
            committed = self._consumer.committed(tp, timeout_ms=10_000)
            if committed is None:
                missing.append(tp)
            else:
                result[(topic, partition)] = int(committed)
        if missing:
            if self.config.auto_offset_reset == "latest":
                starts = self._consumer.end_offsets(missing, timeout_ms=10_000)
            else:
                starts = self._consumer.beginning_offsets(missing, timeout_ms=10_000)
            result.update({(tp.topic, tp.partition): int(offset)
                           for tp, offset in starts.items()})
        return result

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False, timeout_ms=5000)
            except KafkaError as error:
                self.log("close_failed", level="warning", error=type(error).__name__)
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    # ---- history, outside the group ----------------------------------------------------

    def read_history(
        self,
        ends: Mapping[Partition, int],
        count_per_partition: int | None,
        since_ms: int | None,
        timeout_s: float,
    ) -> tuple[list[Record], bool]:
        """The records before ``ends`` in each partition: the last ``count_per_partition``,
        or those from ``since_ms`` on. Returns them and whether all were read in time."""
        if not ends:
            return [], True
        reader = KafkaConsumer(group_id=None, enable_auto_commit=False,
                               bootstrap_timeout_ms=int(self.config.connect_timeout_s * 1000),
                               **self._settings)
        try:
            partitions = [TopicPartition(topic, partition) for topic, partition in ends]
            reader.assign(partitions)
            beginnings = reader.beginning_offsets(partitions, timeout_ms=10_000)
            starts: dict[TopicPartition, int] = {}
            for tp in partitions:
                end = ends[(tp.topic, tp.partition)]
                start = beginnings[tp]
                if count_per_partition is not None:
                    start = max(start, end - count_per_partition)
                starts[tp] = start
            if since_ms is not None:
                found = reader.offsets_for_times(dict.fromkeys(partitions, since_ms),
                                                 timeout_ms=10_000)
                for tp in partitions:
                    located = found.get(tp)
                    starts[tp] = max(starts[tp], located.offset if located is not None
                                     else ends[(tp.topic, tp.partition)])
            records: list[Record] = []
            pending = {tp for tp in partitions if starts[tp] < ends[(tp.topic, tp.partition)]}
            for tp in partitions:
                reader.seek(tp, starts[tp])
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                for tp, batch in reader.poll(timeout_ms=500).items():
                    end = ends[(tp.topic, tp.partition)]
                    records.extend(Record(r.topic, r.partition, r.offset, r.timestamp, r.value)
                                   for r in batch if r.offset < end)
                    if batch and batch[-1].offset >= end - 1:
                        pending.discard(tp)
                        reader.pause(tp)
                for tp in list(pending):
                    if reader.position(tp, timeout_ms=5000) >= ends[(tp.topic, tp.partition)]:
                        pending.discard(tp)
            return records, not pending
        finally:
            reader.close(autocommit=False, timeout_ms=5000)

    # ---- dead letters ------------------------------------------------------------------

    def send_dead_letters(self, topic: str, letters: Sequence[tuple[Record, str]]) -> bool:
        """Produce rejected records to ``topic`` with the reason and origin in headers, and
        wait until the brokers have them (they are committed right after). False when the
        brokers did not take them all."""
        try:
            if self._producer is None:
                self._producer = KafkaProducer(acks="all", linger_ms=5, **self._settings)
            futures = []
            for record, reason in letters:
                futures.append(self._producer.send(
                    topic, value=record.value, key=record.key,
                    headers=dead_letter_headers(record, reason),
                    timestamp_ms=record.timestamp_ms))
            self._producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as error:
            self.log("dead_letter_failed", level="error", topic=topic,
                     error=type(error).__name__, detail=str(error))
            # After some errors (a record too large, say) kafka-python's producer refuses
            # every later send: the retry starts with a new one.
            if self._producer is not None:
                self._producer.close(timeout=0)
                self._producer = None
            return False
        return True


def read_time_range(config: KafkaConfig, since_ms: int, until_ms: int | None,
                    timeout_s: float = 300.0) -> tuple[list[Record], list[str]]:
    """Every record of the configured topic (or of every topic matching the pattern) with
    a timestamp in ``[since_ms, until_ms)`` (``until_ms`` None: up to the end), on every
    partition, read outside any consumer group (nothing is committed). Returns the records,
    in (topic, partition, offset) order, and the topics read. Raises ``StreamdriftError``
    when the brokers cannot be reached or the topic does not exist."""
    try:
        reader = KafkaConsumer(group_id=None, enable_auto_commit=False,
                               bootstrap_timeout_ms=int(config.connect_timeout_s * 1000),
                               **client_settings(config))
    except KafkaError as error:
        raise StreamdriftError(f"kafka: cannot reach {config.bootstrap_servers}: "
                               f"{type(error).__name__}: {error}") from None
    try:
        available = reader.topics()
        if config.topic_pattern is not None:
            pattern = re.compile(config.topic_pattern)
            topics = sorted(t for t in available
                            if pattern.match(t) and not t.startswith("__"))
        else:
            topics = [config.topic] if config.topic in available else []
        if not topics:
            raise StreamdriftError(
                f"kafka: no topic {config.topic or config.topic_pattern!r} on "
                f"{config.bootstrap_servers}")
        partitions = [TopicPartition(topic, number) for topic in topics
                      for number in sorted(reader.partitions_for_topic(topic) or ())]
        reader.assign(partitions)
        ends = reader.end_offsets(partitions)
        starts = _offsets_at(reader, partitions, since_ms, ends)
        stops = ends if until_ms is None else _offsets_at(reader, partitions, until_ms, ends)
        records: list[Record] = []
        pending = set()
        for tp in partitions:
            if starts[tp] < stops[tp]:
                reader.seek(tp, starts[tp])
                pending.add(tp)
            else:
                reader.pause(tp)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise StreamdriftError(f"kafka: reading {', '.join(topics)} took more than "
                                       f"{timeout_s:g} s")
            for tp, batch in reader.poll(timeout_ms=500).items():
                records.extend(Record(r.topic, r.partition, r.offset, r.timestamp, r.value)
                               for r in batch if r.offset < stops[tp]
                               and since_ms <= r.timestamp
                               and (until_ms is None or r.timestamp < until_ms))
                if batch and batch[-1].offset >= stops[tp] - 1:
                    pending.discard(tp)
                    reader.pause(tp)
            for tp in list(pending):  # past the stop without a record there (compaction)
                if reader.position(tp, timeout_ms=5000) >= stops[tp]:
                    pending.discard(tp)
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records, topics
    except KafkaError as error:
        raise StreamdriftError(f"kafka: reading the topic failed: {type(error).__name__}: "
                               f"{error}") from None
    finally:
        reader.close(autocommit=False, timeout_ms=5000)


def _offsets_at(reader: Any, partitions: Sequence[TopicPartition], timestamp_ms: int,
                ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The first offset at or after ``timestamp_ms`` in each partition (its end if none)."""
    found = reader.offsets_for_times(dict.fromkeys(partitions, timestamp_ms),
                                     timeout_ms=10_000)
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in partitions}


class KafkaSink:
    """Produces payloads to a topic (for ``streamdrift produce`` and the Kafka demo)."""

    def __init__(self, config: KafkaConfig) -> None:
        try:
            self._producer = KafkaProducer(acks="all", linger_ms=10,
                                           bootstrap_timeout_ms=int(
                                               config.connect_timeout_s * 1000),
                                           **client_settings(config))
        except KafkaError as error:
            raise ConnectionError(_no_broker(config, error)) from None

    def send(self, topic: str, payloads: Sequence[bytes],
             keys: Sequence[bytes | None] | None = None,
             timestamps_ms: Sequence[int | None] | None = None) -> None:
        """Produce ``payloads`` (with their keys and timestamps when given)."""
        for index, payload in enumerate(payloads):
            self._producer.send(topic, value=payload,
                                key=None if keys is None else keys[index],
                                timestamp_ms=None if timestamps_ms is None
                                else timestamps_ms[index])

    def close(self) -> None:
        self._producer.flush(timeout=30)
        self._producer.close(timeout=10)


def _no_broker(config: KafkaConfig, error: KafkaError) -> str:
    return (f"no Kafka broker answered at {config.bootstrap_servers} within "
            f"{config.connect_timeout_s:g} s (kafka.connect_timeout_s; "
            f"{type(error).__name__})")


def ensure_topic(config: KafkaConfig, topic: str, partitions: int) -> int | None:
    """Create ``topic`` with ``partitions`` partitions unless it exists: None when it was
    created, else the partitions it already has. Raises ``ConnectionError`` (one line) when
    no broker answers within ``connect_timeout_s`` or the broker refuses."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_timeout_ms=int(config.connect_timeout_s * 1000),
                                 **client_settings(config))
    except KafkaError as error:
        raise ConnectionError(_no_broker(config, error)) from None
    try:
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)])
        except TopicAlreadyExistsError:
            described = admin.describe_topics([topic])
            return len(described[0].get("partitions") or []) if described else 0
    except KafkaError as error:
        raise ConnectionError(f"cannot create topic {topic!r} at {config.bootstrap_servers}: "
                              f"{type(error).__name__}: {error}") from None
    finally:
        admin.close()
    return None


def delete_topic(config: KafkaConfig, topic: str) -> None:
    """Delete ``topic`` (``demo --kafka`` cleaning up after itself); errors are ignored."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(**client_settings(config))
    except KafkaError:
        return
    try:
        admin.delete_topics([topic], timeout_ms=10_000)
    except KafkaError:
        pass
    finally:
        admin.close()
