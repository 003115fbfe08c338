"""Window counts against the batch oracle: np.bincount over the messages still in the window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.sketch import SlotLayout, WindowedHistogram


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
    short = WindowedHistogram(n_slots=10, n_panes=10)
    long = WindowedHistogram(n_slots=10, n_panes=10)
    values = np.arange(10).reshape(-1, 1) % 10
    short.update(np.arange(10) // 1, values)
    long.update(np.arange(10) // 1_000_000, values)
    assert short._ring.nbytes == long._ring.nbytes
    assert short.pane_counts(9).tolist() == [0] * 9 + [1]
    assert long.pane_counts(0).sum() == 10
    assert short.pane_counts(-5).sum() == 0


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
