"""Window counts against the batch oracle: np.bincount over the messages still in the window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.sketch import PartitionedWindow, SlotLayout, WindowedHistogram


def _window_oracle(pane_ids: np.ndarray, slots: np.ndarray, n_panes: int, n_slots: int):
    """Counts of the messages whose pane is within n_panes of the newest pane seen *when
    they arrived* and is still in the window now (late messages never count)."""
    newest_then = np.maximum.accumulate(pane_ids)
    on_time = pane_ids > newest_then - n_panes
    newest = pane_ids.max()
    in_window = on_time & (pane_ids > newest - n_panes)
    return np.bincount(slots[in_window].ravel(), minlength=n_slots), int((~on_time).sum())


@given(
    n_panes=st.integers(1, 8),
    pane_length=st.integers(1, 7),
    batches=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    n_slots=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_count_window_equals_bincount_of_the_last_messages(
    n_panes, pane_length, batches, n_slots, seed
):
    rng = np.random.default_rng(seed)
    histogram = WindowedHistogram(n_slots, n_panes)
    seen = np.empty(0, dtype=np.int64)
    for size in batches:
        values = rng.integers(0, n_slots, size=size)
        ordinals = len(seen) + np.arange(size)
        histogram.update(ordinals // pane_length, values.reshape(-1, 1))
        seen = np.concatenate([seen, values])
        if len(seen) == 0:
            continue
        # The window: the newest pane (maybe partial) and the n_panes - 1 before it.
        newest = (len(seen) - 1) // pane_length
        first = max(0, (newest - n_panes + 1) * pane_length)
        expected = np.bincount(seen[first:], minlength=n_slots)
        np.testing.assert_array_equal(histogram.counts, expected)


@given(
    n_panes=st.integers(1, 6),
    pane_ids=st.lists(st.integers(0, 30), min_size=1, max_size=80),
    seed=st.integers(0, 2**32 - 1),
    split=st.integers(1, 10),
)
def test_event_time_window_handles_gaps_disorder_and_late_messages(n_panes, pane_ids, seed,
                                                                    split):
    rng = np.random.default_rng(seed)
    n_slots = 4
    panes = np.array(pane_ids, dtype=np.int64)
    slots = rng.integers(0, n_slots, size=(len(panes), 2))
    histogram = WindowedHistogram(n_slots, n_panes)
    for start in range(0, len(panes), split):
        added = histogram.update(panes[start:start + split], slots[start:start + split])
        # What a batch adds to the running totals: all of it, late messages included.
        np.testing.assert_array_equal(
            added, np.bincount(slots[start:start + split].ravel(), minlength=n_slots))
    expected, late = _window_oracle(panes, slots, n_panes, n_slots)
    np.testing.assert_array_equal(histogram.counts, expected)
    assert histogram.late == late


def test_panes_close_in_order_before_they_leave():
    histogram = WindowedHistogram(n_slots=2, n_panes=2)
    closed: list[tuple[int, list[int]]] = []
    histogram.pane_listeners.append(
        lambda pane: closed.append((pane, np.asarray(histogram.counts).tolist())))
    histogram.update(np.array([0, 0, 1, 3]), np.array([[0], [0], [1], [1]]))
    # Pane 0 closes with only itself; pane 1 closes with panes 0 and 1 both in the window.
    assert closed == [(0, [2, 0]), (1, [2, 1])]
    assert np.asarray(histogram.counts).tolist() == [0, 1]


def test_pane_counts_and_memory_do_not_depend_on_window_length():
    """The ring holds one row of counts per pane, however many messages a pane has."""
    n_slots, n_panes, pane_length = 10, 10, 20_000
    histogram = WindowedHistogram(n_slots=n_slots, n_panes=n_panes)
    rng = np.random.default_rng(1)
    values = rng.integers(0, n_slots, size=(25 * pane_length, 1))
    for start in range(0, len(values), 50_000):
        chunk = values[start:start + 50_000]
        ordinals = start + np.arange(len(chunk))
        histogram.update(ordinals // pane_length, chunk)
    assert histogram._ring.nbytes == n_panes * n_slots * np.dtype(np.int64).itemsize
    newest = (len(values) - 1) // pane_length
    for pane in range(newest - n_panes + 1, newest + 1):
        expected = np.bincount(values[pane * pane_length:(pane + 1) * pane_length].ravel(),
                               minlength=n_slots)
        np.testing.assert_array_equal(histogram.pane_counts(pane), expected)
    # Panes outside the window, older or not yet begun, hold nothing.
    assert histogram.pane_counts(newest - n_panes).sum() == 0
    assert histogram.pane_counts(newest + 1).sum() == 0


def test_layout_gives_each_feature_its_bins_then_missing_and_invalid():
    layout = SlotLayout.from_bins([2, 3])
    assert layout.offsets.tolist() == [0, 4]
    assert layout.is_bin_slot.tolist() == [True, True, False, False,
                                           True, True, True, False, False]
    assert layout.slot_feature.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert layout.bin_starts.tolist() == [0, 2]


def test_n_panes_must_be_positive():
    with pytest.raises(ValueError, match="n_panes"):
        WindowedHistogram(3, 0)


@pytest.mark.parametrize("n_panes", [1, 3])
def test_a_message_exactly_n_panes_behind_the_newest_is_late(n_panes):
    newest = 7
    panes = np.array([newest, newest - n_panes, newest - n_panes + 1], dtype=np.int64)
    slots = np.array([[0], [1], [2]])
    histogram = WindowedHistogram(n_slots=3, n_panes=n_panes)
    for pane, slot in zip(panes, slots, strict=True):
        histogram.update(pane.reshape(1), slot.reshape(1, 1))
    expected, late = _window_oracle(panes, slots, n_panes, 3)
    assert late == 1
    assert histogram.late == late
    np.testing.assert_array_equal(histogram.counts, expected)
    # A pane outside the window has no counts, in the same integer type as one inside.
    assert histogram.pane_counts(newest - n_panes).dtype == histogram.pane_counts(newest).dtype
    assert histogram.pane_counts(newest - n_panes).dtype == np.int64


@given(pane_ids=st.lists(st.integers(0, 12), min_size=1, max_size=40),
       n_panes=st.integers(1, 4), split=st.integers(1, 8))
def test_each_pane_closes_once_when_a_newer_one_begins(pane_ids, n_panes, split):
    """However the messages are batched, a pane is reported closed exactly once: when the
    first message of a newer pane arrives, not when more of its own arrive."""
    panes = np.array(pane_ids, dtype=np.int64)
    histogram = WindowedHistogram(n_slots=1, n_panes=n_panes)
    closed: list[int] = []
    histogram.pane_listeners.append(closed.append)
    for start in range(0, len(panes), split):
        chunk = panes[start:start + split]
        histogram.update(chunk, np.zeros((len(chunk), 1), dtype=np.int64))
    newest_before = np.maximum.accumulate(panes)[:-1]
    expected = newest_before[panes[1:] > newest_before].tolist()
    assert closed == expected


@given(
    n_panes=st.integers(1, 6),
    pane_length=st.integers(1, 5),
    partitions=st.lists(st.integers(0, 3), min_size=1, max_size=120),
    seed=st.integers(0, 2**32 - 1),
    dropped=st.integers(0, 3),
)
def test_partitioned_count_window_is_the_last_messages_of_each_partition(
        n_panes, pane_length, partitions, seed, dropped):
    rng = np.random.default_rng(seed)
    n_slots = 5
    keys = np.array(partitions)
    values = rng.integers(0, n_slots, size=len(keys))
    window = PartitionedWindow(n_slots, n_panes, shared_clock=False)
    seen: dict[int, list[int]] = {}
    # Arrival in runs of one partition, as a poll hands them over.
    boundaries = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), len(keys)]
    for start, end in itertools.pairwise(boundaries):
        key = int(keys[start])
        before = len(seen.setdefault(key, []))
        ordinals = before + np.arange(end - start)
        window.update(key, ordinals // pane_length, values[start:end].reshape(-1, 1))
        seen[key].extend(values[start:end].tolist())

    def oracle(key: int) -> np.ndarray:
        messages = np.array(seen[key], dtype=np.int64)
        newest = (len(messages) - 1) // pane_length
        first = max(0, (newest - n_panes + 1) * pane_length)
        return np.bincount(messages[first:], minlength=n_slots)

    expected = sum((oracle(key) for key in seen), np.zeros(n_slots, dtype=np.int64))
    np.testing.assert_array_equal(window.counts, expected)
    removed = window.drop(dropped)
    np.testing.assert_array_equal(removed, oracle(dropped) if dropped in seen
                                  else np.zeros(n_slots))
    np.testing.assert_array_equal(window.counts, expected - removed)
    assert dropped not in window.partitions


@given(
    n_panes=st.integers(1, 5),
    messages=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 25)), min_size=1,
                      max_size=80),
    seed=st.integers(0, 2**32 - 1),
    dropped=st.integers(0, 2),
)
def test_partitioned_event_time_window_shares_one_clock(n_panes, messages, seed, dropped):
    """Each message is in the window if its pane was not older than the window when it
    arrived (over all partitions) and is still within it; dropping a partition takes out
    exactly its messages."""
    rng = np.random.default_rng(seed)
    n_slots = 4
    keys = np.array([key for key, _ in messages])
    panes = np.array([pane for _, pane in messages], dtype=np.int64)
    slots = rng.integers(0, n_slots, size=(len(panes), 1))
    window = PartitionedWindow(n_slots, n_panes, shared_clock=True)
    closed: list[int] = []
    window.pane_listeners.append(closed.append)
    for index in range(len(panes)):
        window.update(int(keys[index]), panes[index:index + 1], slots[index:index + 1])
    newest_then = np.maximum.accumulate(panes)
    on_time = panes > newest_then - n_panes
    in_window = on_time & (panes > panes.max() - n_panes)
    np.testing.assert_array_equal(
        window.counts, np.bincount(slots[in_window].ravel(), minlength=n_slots))
    assert window.late == int((~on_time).sum())
    # A pane closes each time a newer one opens, in order, once.
    assert closed == sorted(set(newest_then[:-1][np.diff(newest_then) > 0].tolist()))
    window.drop(dropped)
    kept = in_window & (keys != dropped)
    np.testing.assert_array_equal(
        window.counts, np.bincount(slots[kept].ravel(), minlength=n_slots))


def test_advancing_to_the_newest_pane_closes_nothing():
    window = WindowedHistogram(n_slots=2, n_panes=3)
    closed: list[int] = []
    window.pane_listeners.append(closed.append)
    window.update(np.array([4, 4]), np.array([[0], [1]]))
    window.advance(4)
    window.advance(3)
    assert closed == []
    window.advance(5)
    assert closed == [4]


def test_a_partitioned_window_s_counts_by_partition_and_in_all():
    window = PartitionedWindow(n_slots=3, n_panes=2, shared_clock=True)
    closing: list[tuple[int, int]] = []
    window.pane_listeners.append(lambda pane: closing.append((pane, window.closing_row)))
    added = window.update("a", np.array([0, 1, 1, 2]), np.array([[0], [1], [2], [2]]))
    assert added.tolist() == [1, 1, 2]  # the whole batch, across the panes it opened
    assert closing == [(0, 1), (1, 3)]
    window.update("b", np.array([2, 5]), np.array([[0], [0]]), first_row=10)
    assert closing[-1] == (2, 11)
    assert window.partition_counts("a").tolist() == [0, 0, 0]  # pane 2 left with pane 5
    assert window.partition_counts("b").tolist() == [1, 0, 0]
    assert window.partition_counts("nobody").tolist() == [0, 0, 0]
    assert window.partition_counts("nobody").dtype == np.int64
    assert window.drop("nobody").dtype == np.int64
    held = window.partition_counts("b")
    held[0] = 99  # a copy: the window is not changed through it
    assert window.counts.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="read-only"):
        window.counts[0] = 5


def test_late_messages_of_dropped_partitions_stay_counted():
    window = PartitionedWindow(n_slots=1, n_panes=2, shared_clock=False)
    for partition in ("a", "b"):
        window.update(partition, np.array([5, 1, 1]), np.array([[0], [0], [0]]))
    assert window.late == 4
    window.drop("a")
    window.drop("b")
    assert window.late == 4


def test_a_window_needs_a_pane():
    with pytest.raises(ValueError, match=r"^n_panes must be >= 1 \(got 0\)$"):
        PartitionedWindow(n_slots=2, n_panes=0, shared_clock=True)
