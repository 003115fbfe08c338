"""Message bytes -> JSON objects, with every rejected message counted by reason.

Pure: no I/O. The Kafka source and the JSONL replay both hand their payloads here, so a
message is accepted or rejected for the same reason whichever way it arrives.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Reasons a whole message is rejected; each is a label value of
# streamdrift_invalid_messages_total{reason}.
REJECT_EMPTY = "empty"
REJECT_OVERSIZED = "oversized"
REJECT_NOT_JSON = "not_json"
REJECT_NOT_OBJECT = "not_object"
REJECT_BAD_TIMESTAMP = "bad_timestamp"
# Framed formats (Avro, Protobuf): not in the Schema Registry wire format, a schema id the
# registry does not know, bytes the writer schema does not decode.
REJECT_NOT_FRAMED = "not_framed"
REJECT_UNKNOWN_SCHEMA = "unknown_schema"
REJECT_UNDECODABLE = "undecodable"
REJECT_REASONS = (REJECT_EMPTY, REJECT_OVERSIZED, REJECT_NOT_JSON, REJECT_NOT_OBJECT,
                  REJECT_BAD_TIMESTAMP, REJECT_NOT_FRAMED, REJECT_UNKNOWN_SCHEMA,
                  REJECT_UNDECODABLE)


@dataclass
class DecodedBatch:
    """The objects decoded from one batch of payloads.

    ``positions[i]`` is the index in the input batch of ``objects[i]``, so the caller can line
    up per-record metadata (Kafka timestamps, offsets) with the accepted messages;
    ``rejections`` pairs the index of every refused payload with the reason.
    """

    objects: list[dict[str, Any]]
    positions: list[int]
    rejections: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rejected(self) -> Counter[str]:
        return Counter(reason for _, reason in self.rejections)


class MessageDecoder:
    """Decodes JSON messages; a message must be a JSON object of at most ``max_bytes`` bytes.

    msgspec parses strict JSON several times faster than the stdlib. Producers written in
    Python often emit the non-standard literals ``NaN`` and ``Infinity`` (``json.dumps``
    does by default), which msgspec refuses; those payloads get a second chance through the
    stdlib parser, so that NaN counts as a missing value and Infinity as a non-finite one
    instead of losing the whole message.

    >>> batch = MessageDecoder(1024).decode([b'{"a": 1}', b'[1]', b'{"a": NaN}', b'oops'])
    >>> batch.positions, sorted(batch.rejected.items())
    ([0, 2], [('not_json', 1), ('not_object', 1)])
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._decoder = msgspec.json.Decoder()

    def decode(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        objects: list[dict[str, Any]] = []
        positions: list[int] = []
        rejections: list[tuple[int, str]] = []
        decode = self._decoder.decode
        max_bytes = self.max_bytes
        for position, payload in enumerate(payloads):
            if not payload:
                rejections.append((position, REJECT_EMPTY))
                continue
            if len(payload) > max_bytes:
                rejections.append((position, REJECT_OVERSIZED))
                continue
            try:
                value = decode(payload)
            except (msgspec.MsgspecError, RecursionError):
                value = _decode_lenient(payload)
                if value is _NOT_JSON:
                    rejections.append((position, REJECT_NOT_JSON))
                    continue
            if type(value) is not dict:
                rejections.append((position, REJECT_NOT_OBJECT))
                continue
            objects.append(value)
            positions.append(position)
        return DecodedBatch(objects, positions, rejections)


_NOT_JSON = object()


def _decode_lenient(payload: bytes) -> Any:
    """The stdlib parser, which also accepts NaN, Infinity and numbers too large for a float
    (an integer too long for Python's ``int()`` reads as an infinite float)."""
    try:
        return json.loads(payload, parse_int=_parse_int)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _parse_int(text: str) -> int | float:
    """A JSON integer: an int, or a float (infinite) when it has more digits than ``int()``
    converts (``sys.get_int_max_str_digits()``, 4,300 by default).

    >>> _parse_int("-12"), _parse_int("9" * 5000)
    (-12, inf)
    """
    try:
        return int(text)
    except ValueError:
        return float(text)
