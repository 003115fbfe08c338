"""Files of Kafka records as they sit on a topic: replay and baselines for Avro and
Protobuf topics.

A binary record has no line to live on, so a file of framed records is an Avro object
container file (OCF) whose records are ``streamdrift.KafkaRecord`` (``RECORD_SCHEMA``):
the topic, partition, offset, timestamp and key of each record, and its value exactly as
the topic carried it (framed: magic byte, schema id, encoded record). An OCF, rather than
length-prefixed frames of our own, because it is self-describing, compressed by block,
and read and written by every Avro tool (``fastavro``, ``avro-tools tojson``), and keeps
the Kafka metadata that replaying an event-time window needs.

An OCF whose records are anything else holds data records: a reference dataset, read by
path like a JSONL file's messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamdrift.errors import InputError
from streamdrift.sources.records import Record

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "KafkaRecord", "namespace": "streamdrift",
    "doc": "A Kafka record as its topic carried it; value holds the framed bytes.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": "long"},
        {"name": "key", "type": ["null", "bytes"], "default": None},
        {"name": "value", "type": ["null", "bytes"]},
    ],
}
RECORD_SCHEMA_NAME = "streamdrift.KafkaRecord"


@dataclass
class FramedBatch:
    numbers: list[int]  # record numbers in the file, from 1
    values: list[bytes | None]
    timestamps_ms: list[int]
    partitions: list[tuple[str, int]]


def write_framed_records(path: Path, records: Iterable[Record]) -> int:
    """Write ``records`` (values framed) to an OCF of ``RECORD_SCHEMA``; how many."""
    import fastavro

    rows = [{"topic": r.topic, "partition": r.partition, "offset": r.offset,
             "timestamp_ms": r.timestamp_ms, "key": r.key, "value": r.value}
            for r in records]
    with path.open("wb") as stream:
        fastavro.writer(stream, fastavro.parse_schema(RECORD_SCHEMA), rows, codec="deflate")
    return len(rows)


def is_framed_record_file(path: Path) -> bool:
    """Whether ``path`` is an OCF of Kafka records (else of data records)."""
    schema = _writer_schema(path)
    return isinstance(schema, dict) and _full_name(schema) == RECORD_SCHEMA_NAME


def iter_framed_records(path: Path, batch_size: int = 1000) -> Iterator[FramedBatch]:
    """Batches of the Kafka records of an OCF of ``RECORD_SCHEMA``."""
    import fastavro

    if not is_framed_record_file(path):
        raise InputError(f"{path}: not a file of Kafka records (an Avro container of "
                         f"{RECORD_SCHEMA_NAME}); a file of data records is a reference "
                         "dataset (baseline build, compare)")
    batch = FramedBatch([], [], [], [])
    with path.open("rb") as stream:
        try:
            for number, row in enumerate(fastavro.reader(stream), start=1):
                assert isinstance(row, dict)
                batch.numbers.append(number)
                batch.values.append(row["value"])
                batch.timestamps_ms.append(row["timestamp_ms"])
                batch.partitions.append((row["topic"], row["partition"]))
                if len(batch.values) >= batch_size:
                    yield batch
                    batch = FramedBatch([], [], [], [])
        except (ValueError, EOFError, StopIteration) as error:
            raise InputError(f"{path}: a damaged Avro container ({error})") from None
    if batch.values:
        yield batch


def iter_data_records(path: Path, batch_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """Batches of the records of an OCF of data (any record schema)."""
    import fastavro

    batch: list[dict[str, Any]] = []
    try:
        with path.open("rb") as stream:
            for row in fastavro.reader(stream):
                if not isinstance(row, dict):
                    raise InputError(f"{path}: its records are not Avro records (fields by "
                                     f"name), but {type(row).__name__}")
                batch.append(row)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, EOFError, StopIteration) as error:
        raise InputError(f"{path}: not a readable Avro container ({error})") from None
    if batch:
        yield batch


def runs(partitions: Sequence[tuple[str, int]]) -> list[tuple[tuple[str, int], int]]:
    from streamdrift.sources.records import partition_runs

    return partition_runs(partitions)


def _writer_schema(path: Path) -> Any:
    import fastavro

    try:
        with path.open("rb") as stream:
            return fastavro.reader(stream).writer_schema
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, EOFError, StopIteration) as error:
        raise InputError(f"{path}: not an Avro container file ({error})") from None


def _full_name(schema: dict[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
