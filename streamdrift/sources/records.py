"""What every Kafka source hands to the service, whichever client it uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Partition = tuple[str, int]
PartitionsListener = Callable[[list[Partition]], None]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None


@dataclass(frozen=True)
class RecordBatch:
    """One poll's records as columns: what the hot path needs, without an object per
    record. ``next_offsets`` is the offset after the last record of each partition (what
    to commit once the batch is counted); ``record(i)`` builds record ``i`` in full, for
    the few that go to the dead-letter topic."""

    values: Sequence[bytes | None]
    timestamps_ms: Sequence[int]
    next_offsets: dict[Partition, int]
    record: Callable[[int], Record]

    def __len__(self) -> int:
        return len(self.values)


EMPTY_BATCH = RecordBatch([], [], {}, lambda index: Record("", 0, index, 0, None))
