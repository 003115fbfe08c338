"""The confluent-kafka adapter (librdkafka): the only module that imports ``confluent_kafka``.

``ConfluentSource`` has the interface and the semantics of ``sources.kafka.KafkaSource``
(``kafka.client: confluent``): a consumer group on ``kafka.topic`` or ``kafka.topic_pattern``,
no auto-commit and no automatic offset store (the service commits a batch's offsets, once
counted, synchronously), history read outside the group, dead letters with headers. What
librdkafka does differently is handled here:

- its constructor does not fail when no broker answers: ``connect`` asks for metadata
  (``list_topics``) until a broker does, logging ``kafka_unavailable`` meanwhile;
- rebalance callbacks run inside ``consume()``, on the service's thread: they only note the
  assignment, and the service refills after the poll, as with kafka-python;
- its log lines and errors come through a Python logger and ``error_cb``, served by
  ``consume()``/``flush()``, and become events as ``sources.clientlog`` says (librdkafka
  retries a refused connection every few tens of milliseconds);
- a regular-expression subscription is a topic name starting with ``^``, in POSIX syntax:
  Python-only syntax (``\\d``, ``(?...)``) is refused at start;
- a broker answers a connection's requests in order, so a watermark or metadata request
  waits behind the group consumer's long-poll fetch: they go through a consumer of their
  own that never fetches.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import is_not, itemgetter
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamdrift.config import KafkaConfig
from streamdrift.errors import StreamdriftError
from streamdrift.eventlog import EventLog
from streamdrift.sources.clientlog import ClientLogHandler, route_client_logs
from streamdrift.sources.records import (
    EMPTY_BATCH,
    Partition,
    PartitionsListener,
    Record,
    RecordBatch,
    RevokedCommitListener,
    RevokedListener,
    dead_letter_headers,
    partition_runs,
)

CLIENT_LOGGER = "rdkafka"
# librdkafka's lines about a refused connection, said by ``kafka_unavailable`` while
# connect() retries; its lines while a group forms; what changes between repetitions.
_CONNECTION_LINES = re.compile(r"Connect to .* failed|brokers are down|_TRANSPORT|"
                               r"Connection refused|_ALL_BROKERS_DOWN")
_FORMING_LINES = re.compile(r"UNKNOWN_TOPIC_OR_PART|Subscribed topic not available|"
                            r"COORDINATOR_NOT_AVAILABLE|NOT_COORDINATOR|"
                            r"COORDINATOR_LOAD_IN_PROGRESS")
_VARYING = re.compile(r"\(after \d+ms in state \w+\)|#(consumer|producer)-\d+")
# Python regular expression syntax that librdkafka's (POSIX extended) refuses or reads
# otherwise: \d (a plain "d" there), \A, \Z, (?...) groups, lazy quantifiers.
_NOT_POSIX = re.compile(r"\\[dDAZ]|\(\?|[*+?}]\?")
_POSIX_HINT = ("with kafka.client: confluent it is a POSIX extended regular expression "
               "(librdkafka): write [0-9] for \\d, and no (?...) groups or lazy quantifiers")


def client_settings(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings shared by every client: servers, TLS and SASL passed through."""
    settings: dict[str, Any] = {
        "bootstrap.servers": ",".join(server.strip()
                                      for server in config.bootstrap_servers.split(",")),
        "client.id": config.client_id,
        "security.protocol": config.security_protocol.lower(),
        # Reconnect within seconds after an outage rather than backing off to 10 s.
        "reconnect.backoff.max.ms": 2000,
    }
    if config.sasl_mechanism is not None:
        settings["sasl.mechanisms"] = config.sasl_mechanism
    if config.sasl_username is not None:
        settings["sasl.username"] = config.sasl_username
    if config.sasl_password is not None:
        settings["sasl.password"] = config.sasl_password.reveal()
    for key, setting in (("ssl_cafile", "ssl.ca.location"),
                         ("ssl_certfile", "ssl.certificate.location"),
                         ("ssl_keyfile", "ssl.key.location")):
        path = getattr(config, key)
        if path is not None:
            settings[setting] = str(path)
    return settings


def subscription(config: KafkaConfig) -> list[str]:
    """What to subscribe to: the topic, or the pattern as librdkafka wants it (a leading
    ``^``; like kafka-python's ``re.match``, it is anchored at the start only). Python-only
    syntax is refused rather than left to match something else."""
    pattern = config.topic_pattern
    if pattern is not None:
        if _NOT_POSIX.search(pattern):
            raise StreamdriftError(f"kafka.topic_pattern {pattern!r}: {_POSIX_HINT}")
        return [pattern if pattern.startswith("^") else f"^{pattern}"]
    assert config.topic is not None
    return [config.topic]


class ConfluentSource:
    def __init__(self, config: KafkaConfig, log: EventLog, on_assigned: PartitionsListener,
                 on_revoked: RevokedListener, on_revoked_commit: RevokedCommitListener) -> None:
        self.config = config
        self.log = log
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_revoked_commit = on_revoked_commit
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._querier: Consumer | None = None
        self._client_lines = ClientLogHandler(log, _CONNECTION_LINES, _FORMING_LINES,
                                              _VARYING)
        self._fatal: str | None = None
        self._client_log = route_client_logs(CLIENT_LOGGER, self._client_lines)
        self._settings = client_settings(config)

    def _client_config(self, **settings: Any) -> dict[str, Any]:
        # Only warnings and errors are forwarded (syslog level 4), as with kafka-python.
        return {**self._settings, "error_cb": self._on_error, "logger": self._client_log,
                "log_level": 4, **settings}

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's errors outside a request. A refused connection is already a log line.
        A fatal one (a static member fenced by its own successor after a broker restart,
        say) leaves the consumer unusable for good."""
        # librdkafka says a fatal error with the code _FATAL (the error itself is not always
        # flagged fatal then).
        if error.fatal() or error.code() == KafkaError._FATAL:
            self._fatal = f"{error.name()}: {error.str()}"
        if error.code() != KafkaError._TRANSPORT:
            self._client_log.log(logging.ERROR if error.fatal() else logging.WARNING,
                                 "%s: %s", error.name(), error.str())

    # ---- group consumption -------------------------------------------------------------

    def connect(self, stop: threading.Event) -> bool:
        """Create the consumer and subscribe once a broker answers, retrying with backoff
        until one does or ``stop`` is set (then False)."""
        session_ms = int(self.config.session_timeout_s * 1000)
        try:
            consumer = Consumer(self._client_config(**{
                "group.id": self.config.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.config.auto_offset_reset,
                # A member killed with -9 holds its partitions until its session expires.
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 3),
                # A subscribed topic created after start (or new partitions) is seen within
                # 10 s rather than librdkafka's 5 minutes; kafka-python retries on its own.
                "topic.metadata.refresh.interval.ms": 10_000,
                **({} if self.config.group_instance_id is None
                   else {"group.instance.id": self.config.group_instance_id}),
            }))
        except KafkaException as error:  # a setting librdkafka refuses: no retry will help
            detail = _describe(error)
            raise StreamdriftError(f"kafka: librdkafka refused the settings: {detail}") from None
        delay_s = 0.5
        self._client_lines.connecting = True
        while not stop.is_set():
            problem = _ask_for_metadata(consumer, self.config.connect_timeout_s, stop)
            if problem is None or stop.is_set():
                break
            self.log("kafka_unavailable", level="warning", error=problem.name(),
                     detail=problem.str(), retry_in_s=delay_s)
            stop.wait(delay_s)
            delay_s = min(delay_s * 2, 30.0)
        if stop.is_set():
            consumer.close()
            return False
        try:
            consumer.subscribe(subscription(self.config), on_assign=self._assigned,
                               on_revoke=self._revoked, on_lost=self._lost)
        except KafkaException as error:  # only a pattern librdkafka cannot compile gets here
            consumer.close()
            raise StreamdriftError(f"kafka.topic_pattern {self.config.topic_pattern!r}: "
                                   f"{_describe(error)}; {_POSIX_HINT}") from None
        except StreamdriftError:
            consumer.close()
            raise
        self._consumer = consumer
        self._client_lines.connecting = False
        self.log("kafka_connected", bootstrap=self.config.bootstrap_servers,
                 group=self.config.group_id,
                 topic=self.config.topic or self.config.topic_pattern,
                 new_group_starts_at=self.config.auto_offset_reset)
        return True

    def topic_exists(self, topic: str) -> bool | None:
        """Whether the brokers know ``topic``; None when they do not answer."""
        try:
            metadata = self._offsets_querier().list_topics(topic, timeout=2.0)
        except KafkaException:
            return None
        found = metadata.topics.get(topic)
        return found is not None and (found.error is None or
                                      found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART)

    def fatal_error(self) -> str | None:
        return self._fatal

    def partition_count(self, topic: str) -> int | None:
        try:
            metadata = self._offsets_querier().list_topics(topic, timeout=5.0)
        except KafkaException:
            return None
        found = metadata.topics.get(topic)
        return len(found.partitions) if found is not None and found.partitions else None

    def take_client_notices(self) -> int:
        return self._client_lines.take_notices()

    # Called by librdkafka inside consume() (and close()), on the service's thread: blocking
    # would be allowed, but the service only notes the change and refills after the poll.

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._client_lines.group_forming = not partitions
        self._on_assigned([(tp.topic, tp.partition) for tp in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._client_lines.group_forming = True
        # Still this member's to commit: on this thread, before the group moves on.
        uncommitted = self._on_revoked([(tp.topic, tp.partition) for tp in partitions], False)
        if uncommitted:
            self._on_revoked_commit(uncommitted, self.commit(uncommitted))

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The session expired (a broker away longer than session_timeout_s): the partitions
        # may be another member's already. A commit would be refused, and a static member's
        # refusal is fatal to librdkafka ("fenced by other consumer with same
        # group.instance.id", its own successor): none is tried.
        self._client_lines.group_forming = True
        self._on_revoked([(tp.topic, tp.partition) for tp in partitions], True)

    def poll(self, timeout_s: float) -> RecordBatch:
        consumer = self._group_consumer()
        messages = consumer.consume(num_messages=self.config.max_poll_records,
                                    timeout=timeout_s)
        if not messages:
            return EMPTY_BATCH
        # Column by column through the Message type's own methods: the loops run in C.
        ok = messages
        # (is_not: a KafkaError raises when compared with None by ==)
        if any(map(is_not, map(Message.error, messages), repeat(None))):
            ok = [message for message in messages if message.error() is None]
            for message in messages:
                if message.error() is not None:
                    self._message_error(message)
        # The first and last message of each partition give its offsets (a partition's
        # messages arrive in order): a dict keeps the last index it is given per key.
        # (a message without an error always has its topic and partition)
        keys = cast(list[Partition], list(
            zip(map(Message.topic, ok), map(Message.partition, ok), strict=True)))
        count = len(ok)
        first = dict(zip(reversed(keys), range(count - 1, -1, -1), strict=True))
        last = dict(zip(keys, range(count), strict=True))
        return RecordBatch(
            list(map(Message.value, ok)),
            list(map(_SECOND, map(Message.timestamp, ok))),
            {key: cast(int, ok[index].offset()) for key, index in first.items()},
            {key: cast(int, ok[index].offset()) + 1 for key, index in last.items()},
            lambda index: _record(ok[index]),
            [(keys[0], 0)] if len(first) == 1 else partition_runs(keys),
        )

    def _message_error(self, message: Message) -> None:
        error = message.error()
        if error is None or error.code() == KafkaError._PARTITION_EOF:
            return
        # A fatal error (a static member fenced after a broker restart) can come as a
        # message of consume() rather than through error_cb.
        if (error.fatal() or error.code() == KafkaError._FATAL) and self._fatal is None:
            self._fatal = f"{error.name()}: {error.str()}"
        self._client_log.log(logging.ERROR if error.fatal() else logging.WARNING,
                             "%s: %s (topic %s, partition %s)", error.name(), error.str(),
                             message.topic(), message.partition())

    def rewind(self, offsets: Mapping[Partition, int]) -> None:
        consumer = self._group_consumer()
        held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in offsets.items():
            if (topic, partition) in held:  # a rebalance since the poll: its next owner reads it
                consumer.seek(TopicPartition(topic, partition, offset))

    def commit(self, next_offsets: Mapping[Partition, int]) -> bool:
        """Commit ``next_offsets`` (the offset of the next message to read, per partition),
        synchronously. False when the brokers refused or did not answer: the offsets stay to
        commit later, and at worst the batch is counted again (at-least-once)."""
        if not next_offsets:
            return True
        offsets = [TopicPartition(topic, partition, offset)
                   for (topic, partition), offset in next_offsets.items()]
        try:
            committed = self._group_consumer().commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            self.log("commit_failed", level="warning", error=_name(error),
                     detail=_describe(error))
            if _name(error) == "_FATAL" and self._fatal is None:
                self._fatal = _describe(error)
            return False
        refused = [(tp, tp.error) for tp in committed if tp.error is not None]
        if refused:
            first = refused[0][1]
            self.log("commit_failed", level="warning", error=first.name(), detail=first.str(),
                     partitions=",".join(f"{tp.topic}:{tp.partition}" for tp, _ in refused))
            return False
        return True

    def assignment(self) -> list[Partition]:
        if self._consumer is None:
            return []
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def probe_lag(self, timeout_s: float = 2.0) -> dict[Partition, int] | None:
        """Messages not yet consumed per assigned partition; None when the brokers do not
        answer (which is how the service knows it is disconnected)."""
        consumer = self._group_consumer()
        deadline = time.monotonic() + timeout_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        try:
            querier = self._offsets_querier()
            # The clients nobody polls keep their log lines and errors queued until served.
            querier.poll(0)
            if self._producer is not None:
                self._producer.poll(0)
            assigned = consumer.assignment()
            if not assigned:
                querier.list_topics(timeout=remaining())
                return {}
            # Where the application is (local, no request).
            positions = {(tp.topic, tp.partition): tp.offset
                         for tp in consumer.position(assigned)}
            # No message consumed yet since the assignment: the group resumes there.
            unknown = [key for key, offset in positions.items() if offset < 0]
            if unknown:
                positions.update(self._resume_offsets(unknown, remaining))
            lag: dict[Partition, int] = {}
            for tp in assigned:
                key = (tp.topic, tp.partition)
                _, high = querier.get_watermark_offsets(TopicPartition(*key),
                                                        timeout=remaining())
                lag[key] = max(0, high - positions[key])
            return lag
        except KafkaException:
            return None

    def committed_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Where the group will resume: the committed offset, or where a partition without
        one starts under ``auto_offset_reset``."""
        return self._resume_offsets(partitions, lambda: 10.0)

    def _resume_offsets(self, partitions: Sequence[Partition],
                        timeout_s: Callable[[], float]) -> dict[Partition, int]:
        result: dict[Partition, int] = {}
        missing: list[TopicPartition] = []
        # Asked of the group coordinator, on a connection of its own: no wait.
        committed = self._group_consumer().committed(
            [TopicPartition(topic, partition) for topic, partition in partitions],
            timeout=timeout_s())
        for tp in committed:
            if tp.error is not None:
                raise KafkaException(tp.error)
            if tp.offset >= 0:
                result[(tp.topic, tp.partition)] = tp.offset
            else:
                missing.append(tp)
        for tp in missing:
            low, high = self._offsets_querier().get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s())
            result[(tp.topic, tp.partition)] = (high if self.config.auto_offset_reset == "latest"
                                                else low)
        return result

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()  # leaves the group; commits nothing (auto-commit off)
            except (KafkaException, RuntimeError) as error:
                self.log("close_failed", level="warning", error=type(error).__name__)
            self._consumer = None
        if self._querier is not None:
            self._querier.close()
            self._querier = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None

    def _group_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("ConfluentSource.connect() has not succeeded")
        return self._consumer

    def _offsets_querier(self) -> Consumer:
        """A consumer that never fetches, for metadata and watermark requests. On the group
        consumer's connections they would wait behind its long-poll fetch (a broker answers
        a connection's requests in order), up to ``fetch.wait.max.ms``: 500 ms each."""
        if self._querier is None:
            self._querier = Consumer(self._client_config(**{
                "group.id": self.config.group_id,  # required; it never joins nor commits
                "enable.auto.commit": False,
            }))
        return self._querier

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
        # librdkafka wants a group id, but a consumer that only assign()s never joins the
        # group, and with auto-commit off it commits nothing: the group is not touched.
        reader = Consumer(self._client_config(**{
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }))
        try:
            starts: dict[Partition, int] = {}
            for key, end in ends.items():
                low, _ = reader.get_watermark_offsets(TopicPartition(*key), timeout=10.0)
                start = low
                if count_per_partition is not None:
                    start = max(start, end - count_per_partition)
                starts[key] = start
            if since_ms is not None:
                found = reader.offsets_for_times(
                    [TopicPartition(topic, partition, since_ms) for topic, partition in ends],
                    timeout=10.0)
                for tp in found:
                    if tp.error is not None:
                        raise KafkaException(tp.error)
                    key = (tp.topic, tp.partition)
                    # -1: no message that recent; the partition has nothing to give.
                    starts[key] = max(starts[key], tp.offset if tp.offset >= 0 else ends[key])
            pending = {key for key in ends if starts[key] < ends[key]}
            records: list[Record] = []
            if pending:
                reader.assign([TopicPartition(topic, partition, starts[(topic, partition)])
                               for topic, partition in sorted(pending)])
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                for message in reader.consume(num_messages=self.config.max_poll_records,
                                              timeout=0.2):
                    if message.error() is not None:
                        self._message_error(message)
                        continue
                    record = _record(message)
                    key = (record.topic, record.partition)
                    if key not in pending:
                        continue
                    end = ends[key]
                    if record.offset < end:
                        records.append(record)
                    if record.offset >= end - 1:
                        pending.discard(key)
                        reader.pause([TopicPartition(*key)])
                # Past the end without a record at end - 1 (transaction markers, compaction).
                if pending:
                    for tp in reader.position([TopicPartition(*key) for key in pending]):
                        if tp.offset >= ends[(tp.topic, tp.partition)]:
                            pending.discard((tp.topic, tp.partition))
            return records, not pending
        finally:
            reader.close()

    # ---- dead letters ------------------------------------------------------------------

    def send_dead_letters(self, topic: str, letters: Sequence[tuple[Record, str]]) -> bool:
        """Produce rejected records to ``topic`` with the reason and origin in headers, and
        wait until the brokers have them (they are committed right after). False when the
        brokers did not take them all."""
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(error)

        try:
            if self._producer is None:
                self._producer = Producer(self._client_config(**{"acks": "all",
                                                                  "linger.ms": 5}))
            producer = self._producer
            deadline = time.monotonic() + 30.0
            for record, reason in letters:
                headers: list[tuple[str, str | bytes | None]] = list(
                    dead_letter_headers(record, reason))
                while True:
                    try:
                        producer.produce(topic, value=record.value, key=record.key,
                                         headers=headers,
                                         timestamp=max(0, record.timestamp_ms),
                                         on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain
                        if time.monotonic() >= deadline:
                            raise KafkaException(KafkaError(KafkaError._QUEUE_FULL)) from None
                        producer.poll(0.1)
            unsent = producer.flush(max(0.0, deadline - time.monotonic()))
            if unsent:
                raise KafkaException(KafkaError(
                    KafkaError._MSG_TIMED_OUT, f"{unsent} dead letters not acknowledged"))
            if failures:
                raise KafkaException(failures[0])
        except KafkaException as error:
            if self._producer is not None:
                # Whatever is still queued is sent again with the next attempt.
                self._producer.purge(in_queue=True, in_flight=False)
                self._producer.poll(0)
            self.log("dead_letter_failed", level="error", topic=topic, error=_name(error),
                     detail=_describe(error))
            return False
        return True


_SECOND = itemgetter(1)  # of (timestamp type, timestamp in ms)


def _record(message: Message) -> Record:
    # A message without an error always has its topic, partition and offset.
    return Record(cast(str, message.topic()), cast(int, message.partition()),
                  cast(int, message.offset()), message.timestamp()[1], message.value(),
                  message.key(),
                  tuple(cast(list[tuple[str, bytes | None]], message.headers() or ())))


def _ask_for_metadata(consumer: Consumer, timeout_s: float,
                      stop: threading.Event) -> KafkaError | None:
    """None once a broker answers a metadata request within ``timeout_s``; else the last
    error. Asks in short turns, so that ``stop`` is seen within half a second."""
    deadline = time.monotonic() + timeout_s
    last = KafkaError(KafkaError._TIMED_OUT, "no broker answered")
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            consumer.list_topics(timeout=min(0.5, remaining))
        except KafkaException as error:
            last = _error(error)
            continue
        return None
    return last


def _error(exception: KafkaException) -> KafkaError:
    error = exception.args[0] if exception.args else None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(KafkaError._FAIL, str(exception))


def _name(exception: KafkaException) -> str:
    return _error(exception).name()


def _describe(exception: KafkaException) -> str:
    return _error(exception).str()
