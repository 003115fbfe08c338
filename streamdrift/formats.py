"""Which decoder reads a payload: JSON, Avro or Protobuf, per topic where they differ.

Pure. Every decoder turns a batch of payloads into the same ``DecodedColumns``, so that the
windows, divergences and metrics downstream never know the format. The Avro and Protobuf
modules are imported only when a config asks for them (importing fastavro and protobuf
would slow every command's start).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from streamdrift.config import Config
from streamdrift.decoding import MessageDecoder
from streamdrift.features import FeatureColumn
from streamdrift.schema import DecodedColumns, MessageSchema
from streamdrift.values import RecordDecoder

PartitionRuns = Sequence[tuple[Hashable, int]]


class Decoder(Protocol):
    def decode(self, payloads: Sequence[bytes | None]) -> DecodedColumns: ...


class PayloadDecoder:
    """The decoder of each topic's format; ``decode`` splits a batch by format only when the
    config names more than one."""

    def __init__(self, config: Config, writer_schemas: Mapping[int, Any] | None = None,
                 message_class: Any = None) -> None:
        self.config = config
        self.decoders: dict[str, Decoder] = {
            name: _decoder(config, name, writer_schemas, message_class)
            for name in sorted(config.input.formats())}
        self._single = (self.decoders[config.input.format]
                        if not config.input.formats_by_topic else None)

    def decode(self, payloads: Sequence[bytes | None],
               partitions: PartitionRuns = ((None, 0),)) -> DecodedColumns:
        if self._single is not None:
            return self._single.decode(payloads)
        parts = [(positions, self.decoders[name].decode([payloads[i] for i in positions]))
                 for name, positions in self._by_format(payloads, partitions).items()]
        if len(parts) == 1:
            positions, decoded = parts[0]
            return _moved(decoded, positions)
        return merge_decoded(parts, self.config.features)


    def decode_records(self, payloads: Sequence[bytes | None],
                       partitions: PartitionRuns = ((None, 0),)
                       ) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        """The messages as mappings (JSON objects, Avro records, Protobuf messages), in
        batch order, and the refused payloads as (position, reason): what a reference
        dataset is built from, every value still raw."""
        found: list[tuple[int, dict[str, Any]]] = []
        rejections: list[tuple[int, str]] = []
        for name, positions in self._by_format(payloads, partitions).items():
            batch = [payloads[i] for i in positions]
            decoder = self.decoders[name]
            if isinstance(decoder, RecordDecoder):
                records, kept, refused = decoder.decode_records(batch)
            else:  # JSON: the general decoder keeps every value raw
                decoded = MessageDecoder(self.config.input.max_message_bytes).decode(batch)
                records, kept, refused = decoded.objects, decoded.positions, decoded.rejections
            found += [(positions[i], record) for i, record in zip(kept, records, strict=True)]
            rejections += [(positions[i], reason) for i, reason in refused]
        found.sort(key=lambda item: item[0])
        return [record for _, record in found], sorted(rejections)

    def _by_format(self, payloads: Sequence[bytes | None], partitions: PartitionRuns
                   ) -> dict[str, list[int]]:
        """The positions of ``payloads`` by the format of their topic."""
        if self._single is not None:
            return {self.config.input.format: list(range(len(payloads)))}
        groups: dict[str, list[int]] = {}
        bounds = [start for _, start in partitions[1:]] + [len(payloads)]
        for (partition, start), end in zip(partitions, bounds, strict=True):
            topic = partition[0] if isinstance(partition, tuple) else None
            groups.setdefault(self.config.input.format_of(topic), []).extend(
                range(start, end))
        return groups


def _decoder(config: Config, name: str, writer_schemas: Mapping[int, Any] | None,
             message_class: Any) -> Decoder:
    window = config.window
    time_field = window.time_field if window.is_event_time else None
    max_bytes = config.input.max_message_bytes
    if name == "json":
        return MessageSchema(config.features, max_bytes, time_field)
    if name == "avro":
        from streamdrift.avro import AvroSchema

        # (not ``writer_schemas or {}``: an empty cache is falsy, and must stay the one filled)
        return AvroSchema(config.features, max_bytes,
                          {} if writer_schemas is None else writer_schemas, time_field,
                          window.time_unit)
    from streamdrift.protobuf import ProtobufSchema

    if message_class is None:
        raise ValueError("a Protobuf topic needs its message class (input.protobuf)")
    return ProtobufSchema(config.features, max_bytes, message_class, time_field,
                          window.time_unit)


def _moved(decoded: DecodedColumns, positions: Sequence[int]) -> DecodedColumns:
    """``decoded`` with its positions (in a sub-batch) mapped to ``positions``."""
    return DecodedColumns(
        decoded.typed, decoded.general, [positions[i] for i in decoded.positions],
        [(positions[i], reason) for i, reason in decoded.rejections], decoded.event_times,
        decoded.specs)


def merge_decoded(parts: Sequence[tuple[Sequence[int], DecodedColumns]],
                  specs: Sequence[Any]) -> DecodedColumns:
    """Sub-batches decoded apart (each with the batch positions of its payloads) as one,
    rows in batch order."""
    moved = [_moved(decoded, positions) for positions, decoded in parts]
    positions = [p for part in moved for p in part.positions]
    order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
    column_sets = [part.columns for part in moved]
    columns = [FeatureColumn(np.concatenate([c[f].values for c in column_sets])[order],
                             np.concatenate([c[f].status for c in column_sets])[order])
               for f in range(len(specs))]
    times = None
    if all(part.event_times is not None for part in moved):
        merged = [t for part in moved for t in part.event_times or ()]
        times = [merged[i] for i in order.tolist()]
    rejections = sorted(r for part in moved for r in part.rejections)
    return DecodedColumns(None, columns, [positions[i] for i in order.tolist()], rejections,
                          times, tuple(specs))

