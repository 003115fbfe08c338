"""Adapters that bring messages in: files here, Kafka in ``kafka``. Nothing else does I/O.

Kafka has two clients behind one interface, ``Source``: kafka-python (``sources.kafka``, the
default) and confluent-kafka (``sources.confluent``, ``kafka.client: confluent``, an optional
extra). ``make_source`` picks one; neither client is imported before it is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from streamdrift.errors import StreamdriftError
from streamdrift.sources.records import (
    Partition,
    PartitionsListener,
    Record,
    RecordBatch,
    RevokedCommitListener,
    RevokedListener,
)

if TYPE_CHECKING:
    from streamdrift.config import KafkaConfig
    from streamdrift.eventlog import EventLog

CONFLUENT_MISSING = ("kafka.client: confluent needs confluent-kafka: "
                     "pip install 'streamdrift[confluent]'")


class Source(Protocol):
    """A consumer in a consumer group that the service drives from one thread."""

    def connect(self, stop: threading.Event) -> bool:
        """Join the group, retrying with backoff until a broker answers; False once ``stop``
        is set first."""

    def poll(self, timeout_s: float) -> RecordBatch:
        """The next batch (at most ``kafka.max_poll_records``); rebalance callbacks run here."""

    def commit(self, next_offsets: Mapping[Partition, int]) -> bool:
        """Commit synchronously; False (logged) when the brokers refused or did not answer."""

    def rewind(self, offsets: Mapping[Partition, int]) -> None:
        """Read these partitions again from these offsets at the next poll (a batch that
        could not be decoded yet, and was not counted); partitions no longer held are
        left alone."""

    def assignment(self) -> list[Partition]:
        """The partitions held now, sorted."""

    def probe_lag(self, timeout_s: float = 2.0) -> dict[Partition, int] | None:
        """Messages not yet consumed per assigned partition; None when no broker answers."""

    def topic_exists(self, topic: str) -> bool | None:
        """Whether the brokers know ``topic``; None when they do not answer."""

    def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has; None when the brokers do not say."""

    def fatal_error(self) -> str | None:
        """What made the client unusable for good (it will neither consume nor commit
        again), or None."""

    def take_client_notices(self) -> int:
        """The client's harmless lines counted while the group formed, since the last call."""

    def committed_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """The committed offset, or where ``auto_offset_reset`` starts a partition without."""

    def read_history(
        self,
        ends: Mapping[Partition, int],
        count_per_partition: int | None,
        since_ms: int | None,
        timeout_s: float,
    ) -> tuple[list[Record], bool]:
        """Records before ``ends``, read outside the group; and whether all came in time."""

    def send_dead_letters(self, topic: str, letters: Sequence[tuple[Record, str]]) -> bool:
        """Produce rejected records with their reason in headers; True once acknowledged."""

    def close(self) -> None:
        """Leave the group without committing and release the clients."""


def make_source(config: KafkaConfig, log: EventLog, on_assigned: PartitionsListener,
                on_revoked: RevokedListener, on_revoked_commit: RevokedCommitListener) -> Source:
    """The source of ``config.client``: kafka-python, or confluent-kafka when installed."""
    if config.client == "confluent":
        try:
            from streamdrift.sources.confluent import ConfluentSource
        except ModuleNotFoundError as error:
            if error.name is None or error.name.partition(".")[0] != "confluent_kafka":
                raise
            raise StreamdriftError(CONFLUENT_MISSING) from None
        return ConfluentSource(config, log, on_assigned, on_revoked, on_revoked_commit)
    from streamdrift.sources.kafka import KafkaSource

    return KafkaSource(config, log, on_assigned, on_revoked, on_revoked_commit)
