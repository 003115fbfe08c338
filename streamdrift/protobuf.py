"""Protobuf records framed for a Schema Registry -> feature columns.

The message type comes from a compiled descriptor set (``protoc --include_imports
--descriptor_set_out=FILE``) named in ``input.protobuf``, read with Google's ``protobuf``
runtime, which builds the message class from it at start: no generated code, no protoc at
run time, and no ``.proto`` compiler inside streamdrift (the registry holds ``.proto`` text,
which only a compiler can turn into a descriptor). The frame's schema id is not looked up;
its message-type path must be the configured message's (else ``unknown_schema``).

Each decoded message becomes a mapping as JSON would give it (``message_mapping``) and takes
the general path, so that the same data gives the same columns in every format. Fields
with explicit presence (``optional``, message fields, oneof members) that are not set are
absent, hence missing; proto3 scalars without presence read as their value, zero included,
since the wire cannot tell an unset one from a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from streamdrift.config import FeatureSpec, TimeUnit
from streamdrift.decoding import (
    REJECT_EMPTY,
    REJECT_NOT_FRAMED,
    REJECT_OVERSIZED,
    REJECT_UNDECODABLE,
    REJECT_UNKNOWN_SCHEMA,
)
from streamdrift.errors import StreamdriftError
from streamdrift.framing import HEADER_BYTES, MAGIC_BYTE, split_message_indexes
from streamdrift.values import RecordDecoder

_WRAPPERS = {f"google.protobuf.{name}Value" for name in
             ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String")}


def load_message_class(descriptor_set: Path, message: str) -> type[Message]:
    """The message class named ``message`` (its full name, package included) in a
    serialized ``FileDescriptorSet``; ``StreamdriftError`` naming the file otherwise."""
    try:
        data = descriptor_set.read_bytes()
    except OSError as error:
        raise StreamdriftError(f"input.protobuf.descriptor_set cannot be read: "
                               f"{descriptor_set} ({error.strerror})") from None
    files = descriptor_pb2.FileDescriptorSet()
    try:
        files.ParseFromString(data)
    except DecodeError:
        raise StreamdriftError(f"input.protobuf.descriptor_set is not a FileDescriptorSet: "
                               f"{descriptor_set}") from None
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files.file:
            pool.Add(file)
        descriptor = pool.FindMessageTypeByName(message)
    except KeyError:
        names = sorted(f"{file.package}.{m.name}".lstrip(".") for file in files.file
                       for m in file.message_type)
        raise StreamdriftError(f"input.protobuf.message {message!r} is not in {descriptor_set} "
                               f"(its messages: {', '.join(names) or 'none'})") from None
    except TypeError as error:  # a file whose imports are not in the set
        raise StreamdriftError(f"input.protobuf.descriptor_set {descriptor_set}: {error} "
                               "(compile it with protoc --include_imports)") from None
    message_class: type[Message] = message_factory.GetMessageClass(descriptor)
    return message_class


def message_indexes(descriptor: Any) -> tuple[int, ...]:
    """The path of a message type in its file, as the wire format writes it: the index of
    the top-level message, then of each nested one."""
    path: list[int] = []
    current = descriptor
    while current is not None:
        parent = current.containing_type
        siblings = (parent.nested_types if parent is not None
                    else list(current.file.message_types_by_name.values()))
        path.append([sibling.full_name for sibling in siblings].index(current.full_name))
        current = parent
    return tuple(reversed(path))


class ProtobufSchema(RecordDecoder):
    """Decodes framed Protobuf payloads of one message type into feature columns."""

    def __init__(self, specs: Sequence[FeatureSpec], max_bytes: int,
                 message_class: type[Message], time_field: tuple[str, ...] | None = None,
                 time_unit: TimeUnit = "s") -> None:
        self.specs = tuple(specs)
        self.max_bytes = max_bytes
        self.message_class = message_class
        self.indexes = message_indexes(message_class.DESCRIPTOR)
        self.time_field = time_field
        self.time_unit = time_unit

    def decode_records(self, payloads: Sequence[bytes | None]
                       ) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
        """The decoded messages as mappings, their positions in ``payloads``, and the
        refused ones."""
        records: list[dict[str, Any]] = []
        positions: list[int] = []
        rejections: list[tuple[int, str]] = []
        parse = self.message_class.FromString
        for position, payload in enumerate(payloads):
            if not payload:
                rejections.append((position, REJECT_EMPTY))
                continue
            if len(payload) > self.max_bytes:
                rejections.append((position, REJECT_OVERSIZED))
                continue
            if len(payload) < HEADER_BYTES + 1 or payload[0] != MAGIC_BYTE:
                rejections.append((position, REJECT_NOT_FRAMED))
                continue
            split = split_message_indexes(memoryview(payload)[HEADER_BYTES:])
            if split is None:
                rejections.append((position, REJECT_NOT_FRAMED))
                continue
            indexes, body = split
            if indexes != self.indexes:
                rejections.append((position, REJECT_UNKNOWN_SCHEMA))
                continue
            try:
                message = parse(bytes(body))
            except DecodeError:
                rejections.append((position, REJECT_UNDECODABLE))
                continue
            records.append(message_mapping(message))
            positions.append(position)
        return records, positions, rejections


def message_mapping(message: Message) -> dict[str, Any]:
    """A message as the mapping a JSON object of it would be: fields by name, enums by
    name, nested messages as mappings, ``Timestamp`` as a time and the wrapper types as
    their value; unset fields with presence absent."""
    mapping: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and not message.HasField(field.name):
            continue
        mapping[field.name] = _field_value(field, getattr(message, field.name))
    return mapping


# (descriptors typed Any: the C and the Python implementations have types of their own)
def _field_value(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {str(key): _single_value(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_single_value(field, item) for item in value]
    return _single_value(field, value)


def _single_value(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    name = field.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return datetime.fromtimestamp(value.seconds + value.nanos / 1e9, UTC)
    if name in _WRAPPERS:
        return value.value
    return message_mapping(value)
