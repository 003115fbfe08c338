"""The typed fast path gives exactly what the general path gives, message for message."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.config import FeatureSpec
from streamdrift.decoding import MessageDecoder
from streamdrift.features import extract_features, raw_values
from streamdrift.monitor import event_times_s
from streamdrift.schema import MessageSchema

SPECS = [
    FeatureSpec("amount", ("order", "amount"), "numeric"),
    FeatureSpec("items", ("order", "items"), "numeric"),
    FeatureSpec("age", ("age",), "numeric"),
    FeatureSpec("tier", ("tier",), "categorical"),
    FeatureSpec("country", ("customer", "address", "country"), "categorical"),
]
TIME = ("meta", "ts")

any_value = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.sampled_from(["gold", "3", "silver"]), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object"] * 8 + ["array", "garbage", "empty"]))
    if kind == "empty":
        return b""
    if kind == "garbage":
        return b"{not json"
    if kind == "array":
        return b"[1, 2]"
    message: dict[str, object] = {"noise": draw(any_value)}
    for path in [spec.path for spec in SPECS] + [TIME]:
        if draw(st.booleans()):
            target = message
            for key in path[:-1]:
                if draw(st.integers(0, 9)) == 0:  # sometimes not an object on the way
                    target[key] = draw(any_value)
                    break
                child = target.get(key)
                if not isinstance(child, dict):
                    child = {}
                    target[key] = child
                target = child
            else:
                target[path[-1]] = draw(any_value)
    # json.dumps writes NaN and Infinity literals, as Python producers do.
    return json.dumps(message).encode()


def _same(left: np.ndarray, right: np.ndarray) -> bool:
    if left.dtype == object:
        return left.tolist() == right.tolist()
    return bool(np.array_equal(left, right))


@given(st.lists(payloads(), max_size=30))
def test_fast_path_equals_general_path(batch: list[bytes]) -> None:
    schema = MessageSchema(SPECS, max_bytes=10_000, time_field=TIME)
    fast = schema.decode(batch)
    general = MessageDecoder(10_000).decode(batch)
    assert fast.rejections == general.rejections
    assert fast.positions == general.positions
    for fast_column, general_column in zip(fast.columns,
                                           extract_features(general.objects, SPECS),
                                           strict=True):
        np.testing.assert_array_equal(fast_column.status, general_column.status)
        usable = general_column.status == 0
        assert _same(fast_column.values[usable], general_column.values[usable])
    assert fast.event_times is not None
    general_times = raw_values(general.objects, TIME)
    for unit in ("s", "ms", "iso"):
        fast_times, fast_usable = event_times_s(fast.event_times, unit)
        want_times, want_usable = event_times_s(general_times, unit)
        np.testing.assert_array_equal(fast_usable, want_usable)
        np.testing.assert_array_equal(fast_times[want_usable], want_times[want_usable])


def _assert_same_as_general_path(specs: list[FeatureSpec], batch: list[bytes], max_bytes: int,
                                 time_field: tuple[str, ...] | None = None) -> None:
    fast = MessageSchema(specs, max_bytes=max_bytes, time_field=time_field).decode(batch)
    general = MessageDecoder(max_bytes).decode(batch)
    assert fast.rejections == general.rejections
    assert fast.positions == general.positions
    for fast_column, general_column in zip(fast.columns, extract_features(general.objects, specs),
                                           strict=True):
        np.testing.assert_array_equal(fast_column.status, general_column.status)
        usable = general_column.status == 0
        assert _same(fast_column.values[usable], general_column.values[usable])
    if time_field is None:
        assert fast.event_times is None
    else:
        expected = raw_values(general.objects, time_field)
        assert fast.event_times is not None
        assert len(fast.event_times) == len(expected)
        # The same times in every unit: a whole number past 2**53 is a float on the typed
        # path and an int on the general one, the same float64 once read as a time.
        for unit in ("s", "ms", "iso"):
            got_s, got_usable = event_times_s(fast.event_times, unit)
            want_s, want_usable = event_times_s(expected, unit)
            np.testing.assert_array_equal(got_usable, want_usable)
            np.testing.assert_array_equal(got_s[want_usable], want_s[want_usable])


def test_an_event_time_past_two_to_the_53_is_the_same_time_on_both_paths():
    # Found by Hypothesis: 2**53 + 1 is read as the float 2**53 by the typed decoder.
    batch = [b'{"noise": null, "meta": {"ts": 9007199254740993}}']
    _assert_same_as_general_path(SPECS, batch, 10_000, time_field=TIME)


@pytest.mark.parametrize("features", [[0, 1, 2], [3, 4], [2], [4], [3, 0]])
@given(batch=st.lists(payloads(), max_size=12))
def test_any_mix_of_feature_types_decodes_like_the_general_path(features, batch):
    _assert_same_as_general_path([SPECS[i] for i in features], batch, 10_000)


@given(st.lists(payloads(), min_size=1, max_size=12), st.data())
def test_the_size_limit_is_the_general_path_s_on_both_paths(batch, data):
    # A limit equal to one payload's size, or just under it: some payloads are oversized.
    size = len(data.draw(st.sampled_from(batch)))
    max_bytes = max(1, size - data.draw(st.integers(0, 1)))
    _assert_same_as_general_path(SPECS, batch, max_bytes, time_field=TIME)
    _assert_same_as_general_path(SPECS, batch, max_bytes)


def test_a_clean_batch_takes_the_typed_path_with_its_event_times():
    batch = [json.dumps({"order": {"amount": 2.5, "items": 3}, "age": None, "tier": "gold",
                         "customer": {"address": {"country": "NL"}},
                         "meta": {"ts": ts}}).encode() for ts in (1.5, "2024-01-01T00:00:00Z")]
    decoded = MessageSchema(SPECS, max_bytes=10_000, time_field=TIME).decode(batch)
    assert decoded.typed is not None
    assert decoded.general is None
    assert decoded.event_times == [1.5, "2024-01-01T00:00:00Z"]
    assert decoded.columns[0].values.tolist() == [2.5, 2.5]
    assert decoded.columns[4].values.tolist() == ["NL", "NL"]


# Values the features name as missing, drawn often by payloads(): 0, "3" and 3.0, "gold".
MISSING_SPECS = [
    dataclasses.replace(SPECS[0], missing_values=(0.0, "3")),
    SPECS[1],
    dataclasses.replace(SPECS[3], missing_values=("gold", 3.0)),
]


@given(st.lists(payloads(), max_size=12))
def test_missing_values_are_missing_on_both_paths(batch):
    _assert_same_as_general_path(MISSING_SPECS, batch, 10_000, time_field=TIME)


def test_a_typed_message_keeps_its_missing_values_beside_a_general_path_one():
    # Found by fuzzing (tests/fuzz/corpus/decoding/missing-value-in-*): where a message took
    # the general path, or the monitor set some aside for a bad event time, the typed ones'
    # columns counted the values their features name as missing as ordinary values.
    typed = b'{"order": {"amount": 0}, "tier": "gold"}'
    general = b'{"order": {"amount": "n/a"}, "tier": "silver"}'
    schema = MessageSchema(MISSING_SPECS, max_bytes=10_000)
    for batch, amount, tier in (([typed], [1], [1]), ([typed, general], [1, 2], [1, 0])):
        decoded = schema.decode(batch)
        assert decoded.columns[0].status.tolist() == amount
        assert decoded.columns[2].status.tolist() == tier
        _assert_same_as_general_path(MISSING_SPECS, batch, 10_000)


def test_a_message_that_is_not_utf8_is_refused_on_both_paths():
    # Found by fuzzing (tests/fuzz/corpus/decoding/invalid-utf8-*): the typed decoder skips
    # the keys no feature reads without reading them, and took a message that is not text.
    bad = b'{"tier": "gold", "n\x8bise": 1}'
    good = b'{"tier": "g\xc3\xb6ld"}'
    schema = MessageSchema(SPECS, max_bytes=10_000)
    assert schema.decode([good]).typed is not None  # UTF-8 text stays on the typed path
    for batch in ([bad], [good, bad], [good, bad, b""]):
        assert schema.decode(batch).rejections[:1] == [(batch.index(bad), "not_json")]
        _assert_same_as_general_path(SPECS, batch, 10_000)


def test_an_integer_too_long_for_int_decodes_alike_on_both_paths():
    # Found by fuzzing (tests/fuzz/corpus/decoding/integer-of-over-4300-digits-*).
    huge = b"9" * 5000
    batch = [b'{"tier": "gold", "noise": ' + huge + b"}", b'{"age": ' + huge + b"}",
             b'{"tier": ' + huge + b"}"]
    _assert_same_as_general_path(SPECS, batch, 10**6)
    columns = MessageSchema(SPECS, max_bytes=10**6).decode(batch).columns
    assert columns[2].status.tolist() == [1, 3, 1]  # age: missing, non-finite, missing
    assert columns[3].status.tolist() == [0, 1, 2]  # tier: gold, missing, wrong type
