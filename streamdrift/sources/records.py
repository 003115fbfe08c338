"""What every Kafka source hands to the service, whichever client it uses."""

from __future__ import annotations

from collections.abc import Callable
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
