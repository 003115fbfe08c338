"""What every Kafka source hands to the service, whichever client it uses."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import chain, count
from typing import TypeVar

Partition = tuple[str, int]
PartitionKey = TypeVar("PartitionKey", bound=Hashable)

DEAD_LETTER_REASON_HEADER = "streamdrift-reason"
PartitionsListener = Callable[[list[Partition]], None]
# Called with the revoked partitions and whether they were lost (the member's session
# expired: no longer its to commit); returns the offsets counted on them that the source
# must commit itself before the group moves on (empty when the listener could commit them,
# or when they were lost).
RevokedListener = Callable[[list[Partition], bool], dict[Partition, int]]
# Called with the offsets a source committed for a revoked listener, and whether it could.
RevokedCommitListener = Callable[[dict[Partition, int], bool], None]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    # Only what a dead letter carries over unchanged: the original key and headers.
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True)
class RecordBatch:
    """One poll's records as columns: what the hot path needs, without an object per
    record. ``first_offsets`` and ``next_offsets`` are the offset of the first record of
    each partition and the one after its last (what to commit once the batch is counted);
    ``record(i)`` builds record ``i`` in full, for the few that need it (dead letters,
    records delivered again)."""

    values: Sequence[bytes | None]
    timestamps_ms: Sequence[int]
    first_offsets: dict[Partition, int]
    next_offsets: dict[Partition, int]
    record: Callable[[int], Record]
    # (partition, index of its first record) for each run of records of one partition.
    runs: Sequence[tuple[Partition, int]] = ()

    def __len__(self) -> int:
        return len(self.values)

    def only(self, indices: Sequence[int]) -> RecordBatch:
        """The records at ``indices``, in order; the offsets stay those of the whole poll."""
        values, timestamps, record = self.values, self.timestamps_ms, self.record
        run_starts = [start for _, start in self.runs]
        runs: list[tuple[Partition, int]] = []
        for position, index in enumerate(indices if self.runs else ()):
            partition = self.runs[bisect_right(run_starts, index) - 1][0]
            if not runs or runs[-1][0] != partition:
                runs.append((partition, position))
        return RecordBatch([values[i] for i in indices], [timestamps[i] for i in indices],
                           self.first_offsets, self.next_offsets,
                           lambda index: record(indices[index]), runs)


def partition_runs(partitions: Sequence[PartitionKey]) -> list[tuple[PartitionKey, int]]:
    """(partition, index of its first record) for each run of one partition.

    >>> partition_runs([("t", 0), ("t", 0), ("t", 1), ("t", 0)])
    [(('t', 0), 0), (('t', 1), 2), (('t', 0), 3)]
    """
    return [(partition, index) for index, partition, previous
            in zip(count(), partitions, chain([None], partitions)) if partition != previous]


EMPTY_BATCH = RecordBatch([], [], {}, {}, lambda index: Record("", 0, index, 0, None))


def dead_letter_headers(record: Record, reason: str) -> list[tuple[str, bytes | None]]:
    """The record's own headers, then why it was refused and where it came from.

    >>> dead_letter_headers(Record("orders", 2, 41, 0, b"{", headers=(("trace", b"7"),)),
    ...                     "not_json")  # doctest: +NORMALIZE_WHITESPACE
    [('trace', b'7'), ('streamdrift-reason', b'not_json'), ('streamdrift-topic', b'orders'),
     ('streamdrift-partition', b'2'), ('streamdrift-offset', b'41')]
    """
    return [
        *record.headers,
        (DEAD_LETTER_REASON_HEADER, reason.encode()),
        ("streamdrift-topic", record.topic.encode()),
        ("streamdrift-partition", str(record.partition).encode()),
        ("streamdrift-offset", str(record.offset).encode()),
    ]
