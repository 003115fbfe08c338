from __future__ import annotations

from streamdrift.decoding import MessageDecoder


def test_every_rejected_message_is_counted_by_reason():
    decoder = MessageDecoder(max_bytes=64)
    payloads = [b'{"a": 1}', b"", None, b"x" * 65, b"{broken", b'"text"', b"[1, 2]",
                b"\xff\xfe", b'{"b": 2}']
    batch = decoder.decode(payloads)
    assert batch.objects == [{"a": 1}, {"b": 2}]
    assert batch.positions == [0, 8]
    assert dict(batch.rejected) == {"empty": 2, "oversized": 1, "not_json": 2,
                                    "not_object": 2}
    assert len(batch.objects) + sum(batch.rejected.values()) == len(payloads)


def test_deeply_nested_json_is_rejected_not_a_crash():
    batch = MessageDecoder(10**7).decode([b"[" * 100_000 + b"]" * 100_000])
    assert sum(batch.rejected.values()) == 1


def test_a_message_of_exactly_max_bytes_is_accepted():
    payload = b'{"a": 1}'
    batch = MessageDecoder(max_bytes=len(payload)).decode([payload, payload + b" "])
    assert batch.positions == [0]
    assert batch.rejections == [(1, "oversized")]


def test_an_integer_too_long_for_int_is_infinite_not_a_reason_to_refuse():
    # Found by fuzzing (tests/fuzz/corpus/decoding/integer-of-over-4300-digits-in-a-key-no-
    # feature-reads): the typed decoder took such a message and the general path refused it
    # as not JSON, since Python's int() stops at 4,300 digits.
    payload = b'{"a": 1, "b": ' + b"7" * 5000 + b"}"
    batch = MessageDecoder(10**6).decode([payload])
    assert batch.positions == [0]
    assert batch.objects[0]["b"] == float("inf")
