"""Avro records framed for a Schema Registry -> feature columns.

Pure: the writer schemas arrive parsed, in a mapping by id that an adapter fills
(``streamdrift.registry``); a payload whose id is not in it is refused as
``unknown_schema``. fastavro decodes the record; then the values take the general path
(``extract_column``), after the few Avro values a JSON message cannot carry are spelt as
JSON would spell them (``json_like``), so that one stream gives the same columns, windows
and report in Avro as in JSON.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import fastavro

from streamdrift.config import FeatureSpec, TimeUnit
from streamdrift.decoding import (
    REJECT_EMPTY,
    REJECT_NOT_FRAMED,
    REJECT_NOT_OBJECT,
    REJECT_OVERSIZED,
    REJECT_UNDECODABLE,
    REJECT_UNKNOWN_SCHEMA,
)
from streamdrift.framing import HEADER_BYTES, MAGIC_BYTE, frame
from streamdrift.values import RecordDecoder

ParsedSchema = Any  # what fastavro.parse_schema returns


def parse_writer_schema(text: str) -> ParsedSchema:
    """A writer schema from its JSON text, as a registry returns it; ``ValueError`` when it
    is not an Avro schema (fastavro's own errors are of several kinds)."""
    import json

    try:
        return fastavro.parse_schema(json.loads(text))
    except Exception as error:  # fastavro raises any of half a dozen types
        raise ValueError(f"not an Avro schema: {error}") from None


class AvroSchema(RecordDecoder):
    """Decodes a batch of framed Avro payloads into the configured features' columns."""

    def __init__(self, specs: Sequence[FeatureSpec], max_bytes: int,
                 writer_schemas: Mapping[int, ParsedSchema | None],
                 time_field: tuple[str, ...] | None = None, time_unit: TimeUnit = "s") -> None:
        self.specs = tuple(specs)
        self.max_bytes = max_bytes
        self.writer_schemas = writer_schemas
        self.time_field = time_field
        self.time_unit = time_unit

    def decode_records(self, payloads: Sequence[bytes | None]
                       ) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
        """The decoded records, their positions in ``payloads``, and the refused ones."""
        records: list[dict[str, Any]] = []
        positions: list[int] = []
        rejections: list[tuple[int, str]] = []
        schemas = self.writer_schemas
        reader = fastavro.schemaless_reader
        max_bytes = self.max_bytes
        for position, payload in enumerate(payloads):
            if not payload:
                rejections.append((position, REJECT_EMPTY))
                continue
            size = len(payload)
            if size > max_bytes:
                rejections.append((position, REJECT_OVERSIZED))
                continue
            if size < HEADER_BYTES or payload[0] != MAGIC_BYTE:
                rejections.append((position, REJECT_NOT_FRAMED))
                continue
            schema = schemas.get(int.from_bytes(payload[1:HEADER_BYTES], "big"))
            if schema is None:
                rejections.append((position, REJECT_UNKNOWN_SCHEMA))
                continue
            stream = io.BytesIO(payload)
            stream.seek(HEADER_BYTES)
            try:
                record = reader(stream, schema)
            except Exception:  # bytes the writer schema does not describe: any of its errors
                rejections.append((position, REJECT_UNDECODABLE))
                continue
            if stream.tell() != size:  # bytes left over: not this schema's record
                rejections.append((position, REJECT_UNDECODABLE))
                continue
            if type(record) is not dict:  # a schema that is not a record: no fields
                rejections.append((position, REJECT_NOT_OBJECT))
                continue
            records.append(record)
            positions.append(position)
        return records, positions, rejections


# ---- writing: produce, and the tests' streams ----------------------------------------------

_NAME = re.compile(r"[^A-Za-z0-9_]")


def feature_record_schema(specs: Sequence[FeatureSpec],
                          time_field: tuple[str, ...] | None = None,
                          name: str = "Features", namespace: str = "streamdrift"
                          ) -> dict[str, Any]:
    """The Avro schema of a message that carries ``specs`` (and an event time as a
    ``timestamp-millis``): a record per level of the feature paths, every value nullable
    (null first, the default). Field names that Avro does not allow are refused.

    >>> spec = FeatureSpec("age", ("user", "age"), "numeric")
    >>> schema = feature_record_schema([spec])
    >>> schema["fields"][0]["type"][1]["fields"][0]
    {'name': 'age', 'type': ['null', 'double'], 'default': None}
    """
    leaves: dict[tuple[str, ...], Any] = {
        spec.path: "double" if spec.type == "numeric" else "string" for spec in specs}
    if time_field is not None:
        leaves.setdefault(time_field, {"type": "long", "logicalType": "timestamp-millis"})
    for path in leaves:
        for key in path:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{'.'.join(path)!r}: {key!r} is not an Avro field name "
                                 "(letters, digits and _, not starting with a digit)")
    return _record(leaves, (), name, namespace)


def _record(leaves: dict[tuple[str, ...], Any], prefix: tuple[str, ...], name: str,
            namespace: str) -> dict[str, Any]:
    children: dict[str, Any] = {}
    for path, leaf in leaves.items():
        if path[:len(prefix)] == prefix and len(path) > len(prefix):
            key = path[len(prefix)]
            children[key] = leaf if len(path) == len(prefix) + 1 else children.get(key)
    fields = []
    for key, leaf in children.items():
        if leaf is None:
            nested = _record(leaves, (*prefix, key),
                             name + "_" + _NAME.sub("_", key), namespace)
            fields.append({"name": key, "type": ["null", nested], "default": None})
        else:
            fields.append({"name": key, "type": ["null", leaf], "default": None})
    return {"type": "record", "name": name, "namespace": namespace, "fields": fields}


def encode_framed(schema_id: int, schema: ParsedSchema, record: Mapping[str, Any]) -> bytes:
    """``record`` in Avro's binary encoding, framed for ``schema_id``."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, dict(record))
    return frame(schema_id, buffer.getvalue())
