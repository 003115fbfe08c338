"""The Schema Registry wire format: what frames a record's bytes on a topic.

A framed value is one magic byte 0, the writer schema's id as 4 bytes big-endian, then the
encoded record; a Protobuf record also carries, after the id, the path of its message type
within the schema (a zig-zag varint count, then that many zig-zag varint indexes; a single
0 byte stands for the first message type). Confluent's serializers, Apicurio's in its
Confluent-compatible mode, and Redpanda's all write this. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC_BYTE = 0
HEADER_BYTES = 5
MAX_SCHEMA_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Frame:
    schema_id: int
    body: memoryview


def split_frame(payload: bytes) -> Frame | None:
    """The schema id and the encoded record, or None when ``payload`` is not framed (too
    short, or a first byte other than 0).

    >>> frame = split_frame(b"\\x00\\x00\\x00\\x01\\x02abc")
    >>> frame.schema_id, bytes(frame.body)
    (258, b'abc')
    >>> split_frame(b'{"a": 1}') is None, split_frame(b"\\x00\\x00\\x01") is None
    (True, True)
    """
    if len(payload) < HEADER_BYTES or payload[0] != MAGIC_BYTE:
        return None
    return Frame(int.from_bytes(payload[1:HEADER_BYTES], "big"),
                 memoryview(payload)[HEADER_BYTES:])


def schema_id_of(payload: bytes | None) -> int | None:
    """The schema id a framed payload names; None when it is not framed."""
    if payload is None or len(payload) < HEADER_BYTES or payload[0] != MAGIC_BYTE:
        return None
    return int.from_bytes(payload[1:HEADER_BYTES], "big")


def frame(schema_id: int, body: bytes, message_indexes: tuple[int, ...] | None = None
          ) -> bytes:
    """``body`` framed for ``schema_id``; with ``message_indexes`` (Protobuf) the message
    type's path is written after the id.

    >>> frame(258, b"abc")
    b'\\x00\\x00\\x00\\x01\\x02abc'
    >>> frame(1, b"", (0,)), frame(1, b"", (1, 0))
    (b'\\x00\\x00\\x00\\x00\\x01\\x00', b'\\x00\\x00\\x00\\x00\\x01\\x04\\x02\\x00')
    """
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"a schema id is between 0 and {MAX_SCHEMA_ID} (got {schema_id})")
    header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")
    if message_indexes is None:
        return header + body
    if message_indexes == (0,):
        return header + b"\x00" + body
    path = _zigzag_varint(len(message_indexes)) + b"".join(
        _zigzag_varint(index) for index in message_indexes)
    return header + path + body


def split_message_indexes(body: memoryview) -> tuple[tuple[int, ...], memoryview] | None:
    """A Protobuf frame's message-type path and the encoded message after it; None when the
    path is cut short or absurd (more indexes than bytes).

    >>> path, rest = split_message_indexes(memoryview(b"\\x04\\x02\\x00xyz"))
    >>> path, bytes(rest)
    ((1, 0), b'xyz')
    >>> split_message_indexes(memoryview(b"\\x00xyz"))[0]
    (0,)
    """
    count, position = _read_zigzag_varint(body, 0)
    if count is None or count < 0 or count > len(body):
        return None
    if count == 0:
        return (0,), body[position:]
    indexes: list[int] = []
    for _ in range(count):
        index, position = _read_zigzag_varint(body, position)
        if index is None or index < 0:
            return None
        indexes.append(index)
    return tuple(indexes), body[position:]


def _zigzag_varint(value: int) -> bytes:
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        low = encoded & 0x7F
        encoded >>= 7
        if encoded:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_zigzag_varint(data: memoryview, position: int) -> tuple[int | None, int]:
    """The zig-zag varint at ``position`` and the position after it; None when cut short or
    longer than 10 bytes."""
    result = shift = 0
    for offset in range(10):
        if position + offset >= len(data):
            return None, position
        byte = data[position + offset]
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position + offset + 1
    return None, position
