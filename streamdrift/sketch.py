"""Sliding-window histograms: a ring of panes of bin counts for all features at once.

All features share one flat vector of *slots*: feature ``f`` owns ``n_bins[f] + 2`` slots,
its histogram bins followed by a "missing" and an "invalid" slot. A batch becomes one
integer matrix of slot indices (messages x features) and one ``np.bincount`` per pane it
touches, however many features there are.

A window is ``panes`` panes. A message belongs to pane ``pane_id``: its ordinal divided by
the pane length for a count window, its event time divided by the pane duration for a time
window. The window holds the newest pane (possibly still filling) and the ``panes - 1``
panes before it; when a newer pane starts, the panes that fall out are subtracted from the
window totals: O(slots) per pane, whatever the window length.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SlotLayout:
    """Where each feature's slots sit in the flat count vector.

    >>> layout = SlotLayout.from_bins([3, 1])
    >>> layout.offsets.tolist(), layout.n_slots, layout.missing_slot(1), layout.invalid_slot(0)
    ([0, 5], 8, 6, 4)
    >>> layout.bin_slots.tolist()
    [0, 1, 2, 5]
    """

    n_bins: IntArray
    offsets: IntArray
    n_slots: int
    # Index of every histogram slot (missing and invalid slots left out), feature by feature.
    bin_slots: IntArray
    # The feature each slot belongs to.
    slot_feature: IntArray
    # True for histogram slots, False for the missing and invalid slots.
    is_bin_slot: npt.NDArray[np.bool_]

    @classmethod
    def from_bins(cls, n_bins: Sequence[int]) -> SlotLayout:
        bins = np.asarray(n_bins, dtype=np.int64)  # pragma: no mutate: Python ints are int64 anyway
        widths = bins + 2
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        n_slots = int(widths.sum())
        slot_feature = np.repeat(np.arange(len(bins)), widths).astype(np.int64)
        local = np.arange(n_slots) - offsets[slot_feature]
        is_bin_slot = local < bins[slot_feature]
        return cls(bins, offsets, n_slots, np.flatnonzero(is_bin_slot).astype(np.int64),
                   slot_feature, is_bin_slot)

    @property
    def n_features(self) -> int:
        return len(self.n_bins)

    @property
    def bin_starts(self) -> IntArray:
        """Where each feature's bins start in a vector of histogram slots only."""
        return np.concatenate([[0], np.cumsum(self.n_bins)[:-1]]).astype(np.int64)

    def missing_slot(self, feature: int) -> int:
        return int(self.offsets[feature] + self.n_bins[feature])

    def invalid_slot(self, feature: int) -> int:
        return int(self.offsets[feature] + self.n_bins[feature] + 1)


# Called with the window totals just after a change and the change itself (both by slot).
WindowListener = Callable[[IntArray, IntArray], None]
# Called with the id of a pane that has just been completed, before anything leaves the window.
PaneClosedListener = Callable[[int], None]


class WindowedHistogram:
    """Counts per slot over the last ``n_panes`` panes, kept as a ring.

    ``update`` takes a batch in arrival order; a message whose pane is older than the window
    is late: it is counted in ``late`` and left out.

    >>> histogram = WindowedHistogram(n_slots=3, n_panes=2)
    >>> histogram.update(np.array([0, 0, 1]), np.array([[0], [1], [1]])).tolist()
    [1, 2, 0]
    >>> histogram.counts.tolist()
    [1, 2, 0]
    >>> _ = histogram.update(np.array([2]), np.array([[2]]))  # pane 0 leaves the window
    >>> histogram.counts.tolist()
    [0, 1, 1]
    """

    def __init__(self, n_slots: int, n_panes: int) -> None:
        if n_panes < 1:
            raise ValueError(f"n_panes must be >= 1 (got {n_panes})")
        self.n_slots = n_slots
        self.n_panes = n_panes
        self._ring = np.zeros((n_panes, n_slots), dtype=np.int64)
        self._counts = np.zeros(n_slots, dtype=np.int64)
        self.newest_pane: int | None = None
        # While pane listeners run: the row, in the batch being added, of the message that
        # opened the newer pane (every row before it is in the window).
        self.closing_row = 0
        self.late = 0
        self.window_listeners: list[WindowListener] = []
        self.pane_listeners: list[PaneClosedListener] = []

    @property
    def counts(self) -> IntArray:
        """The window totals per slot (read-only view)."""
        return _read_only(self._counts)

    def pane_counts(self, pane_id: int) -> IntArray:
        """The counts of one pane still in the window (zeros for a pane outside it)."""
        if self.newest_pane is None or not (self.newest_pane - self.n_panes < pane_id
                                            <= self.newest_pane):
            return np.zeros(self.n_slots, dtype=np.int64)
        pane: IntArray = self._ring[pane_id % self.n_panes].copy()
        return pane

    def update(self, pane_ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]
               ) -> IntArray:
        """Add a batch: ``slots[i]`` are the slot indices of message ``i`` in pane
        ``pane_ids[i]`` (one per feature). Returns the batch's counts per slot, late
        messages (too old for the window) included."""
        batch_counts = np.zeros(self.n_slots, dtype=np.int64)
        if len(pane_ids) == 0:
            return batch_counts
        # Runs of messages in the same pane; arrival order is kept between runs.
        boundaries = np.flatnonzero(np.diff(pane_ids)) + 1
        starts = np.concatenate([[0], boundaries])
        ends = np.concatenate([boundaries, [len(pane_ids)]])
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            pane_id = int(pane_ids[start])
            # order="K": a batch within one pane is counted from the matrix as it lies.
            delta = np.bincount(slots[start:end].ravel(order="K"), minlength=self.n_slots)
            batch_counts += delta
            if self.newest_pane is None or pane_id > self.newest_pane:
                self.closing_row = start
                self._advance(pane_id)
            elif pane_id <= self.newest_pane - self.n_panes:
                self.late += end - start
                continue
            self._ring[pane_id % self.n_panes] += delta
            self._counts += delta
            self._notify(delta)
        return batch_counts

    def advance(self, pane_id: int) -> None:
        """Make ``pane_id`` the newest pane if it is newer (panes that fall out leave the
        window), as if a message of that pane had arrived."""
        if self.newest_pane is None or pane_id > self.newest_pane:
            self._advance(pane_id)

    def _advance(self, pane_id: int) -> None:
        """Make ``pane_id`` the newest pane; panes that fall out leave the window."""
        previous = self.newest_pane
        if previous is not None:
            for listener in self.pane_listeners:
                listener(previous)
        self.newest_pane = pane_id
        if previous is None:
            return
        leaving = min(pane_id - previous, self.n_panes)
        # Ring rows of the panes previous - n_panes + 1 ... previous - n_panes + leaving.
        rows = [(previous - self.n_panes + k) % self.n_panes for k in range(1, leaving + 1)]
        delta = -self._ring[rows].sum(axis=0)
        self._ring[rows] = 0
        if delta.any():
            self._counts += delta
            self._notify(delta)

    def _notify(self, delta: IntArray) -> None:
        for listener in self.window_listeners:
            listener(self._counts, delta)


class PartitionedWindow:
    """One window made of a ``WindowedHistogram`` per partition, summed.

    Whose messages are in the window never depends on how partitions are spread over
    consumers: ``drop`` takes exactly one partition's messages out (it moved to another
    consumer), and the windows of a group's members add up to the window of one consumer
    of all the partitions.

    - With ``shared_clock`` False (count windows), pane ids are per partition (the
      partition's own message ordinals divided by its pane length): each partition's ring
      turns with its own messages. Closing panes for the change detectors is left to the
      caller, who knows the message ordinals across partitions.
    - With ``shared_clock`` True (event-time windows), pane ids are times, the same for all
      partitions: a message that opens a newer pane in one partition moves every
      partition's window on, and the pane listeners hear of it first, as with a single
      ``WindowedHistogram``. A message older than the window in any partition is late.

    >>> window = PartitionedWindow(n_slots=2, n_panes=2, shared_clock=False)
    >>> _ = window.update("p0", np.array([0, 0]), np.array([[0], [1]]))
    >>> _ = window.update("p1", np.array([0]), np.array([[1]]))
    >>> window.counts.tolist(), window.messages_by_partition(slice(0, 2))
    ([1, 2], {'p0': 2, 'p1': 1})
    >>> window.drop("p0").tolist()
    [1, 1]
    >>> window.counts.tolist()
    [0, 1]
    """

    def __init__(self, n_slots: int, n_panes: int, shared_clock: bool) -> None:
        if n_panes < 1:
            raise ValueError(f"n_panes must be >= 1 (got {n_panes})")
        self.n_slots = n_slots
        self.n_panes = n_panes
        self.shared_clock = shared_clock
        self._partitions: dict[Hashable, WindowedHistogram] = {}
        self._counts = np.zeros(n_slots, dtype=np.int64)
        # The newest pane of any partition (shared clock only).
        self.newest_pane: int | None = None
        self.closing_row = 0
        self._late_of_dropped = 0
        self.window_listeners: list[WindowListener] = []
        self.pane_listeners: list[PaneClosedListener] = []

    @property
    def counts(self) -> IntArray:
        """The window totals per slot, all partitions (read-only view)."""
        return _read_only(self._counts)

    @property
    def late(self) -> int:
        return self._late_of_dropped + sum(part.late for part in self._partitions.values())

    @property
    def partitions(self) -> list[Hashable]:
        return list(self._partitions)

    def partition_counts(self, partition: Hashable) -> IntArray:
        """One partition's window totals per slot (zeros for a partition not held)."""
        part = self._partitions.get(partition)
        return (np.zeros(self.n_slots, dtype=np.int64) if part is None
                else np.array(part.counts))

    def messages_by_partition(self, feature_slots: slice) -> dict[Hashable, int]:
        """Messages in each partition's window: its counts over the slots of one feature
        (every message fills exactly one slot of each feature)."""
        return {key: int(part.counts[feature_slots].sum())
                for key, part in self._partitions.items()}

    def update(self, partition: Hashable, pane_ids: npt.NDArray[np.int64],
               slots: npt.NDArray[np.int64], first_row: int = 0) -> IntArray:
        """Add messages of one partition, in arrival order (see
        ``WindowedHistogram.update``); ``first_row`` is where they start in the caller's
        batch, for ``closing_row``. Returns their counts per slot, late ones included."""
        part = self._partitions.get(partition)
        if part is None:
            part = WindowedHistogram(self.n_slots, self.n_panes)
            part.window_listeners.append(self._on_partition_change)
            if self.shared_clock and self.newest_pane is not None:
                part.advance(self.newest_pane)
            self._partitions[partition] = part
        if not self.shared_clock or len(pane_ids) == 0:
            return part.update(pane_ids, slots)
        batch_counts = np.zeros(self.n_slots, dtype=np.int64)
        # Runs up to each message that opens a newer pane: the clock moves for everyone
        # before that message is added.
        running_max = np.maximum.accumulate(pane_ids)
        newest = -np.inf if self.newest_pane is None else self.newest_pane
        opening = np.flatnonzero(running_max > np.concatenate([[newest], running_max[:-1]]))
        bounds = [0, *opening.tolist(), len(pane_ids)]
        for start, end in itertools.pairwise(bounds):
            if start == end:
                continue
            pane_id = int(pane_ids[start])
            if self.newest_pane is None or pane_id > self.newest_pane:
                if self.newest_pane is not None:
                    self.close_pane(self.newest_pane, first_row + start)
                self.newest_pane = pane_id
                for other in self._partitions.values():
                    other.advance(pane_id)
            batch_counts += part.update(pane_ids[start:end], slots[start:end])
        return batch_counts

    def close_pane(self, pane_id: int, closing_row: int) -> None:
        """Tell the pane listeners that pane ``pane_id`` is complete; the row of the batch
        that opens the next one is ``closing_row``. Count windows call it from outside,
        every so many messages of the consumer (their partitions' panes turn apart)."""
        self.closing_row = closing_row
        for listener in self.pane_listeners:
            listener(pane_id)

    def drop(self, partition: Hashable) -> IntArray:
        """Take one partition's messages out of the window; returns their counts per slot
        (zeros for a partition not held)."""
        part = self._partitions.pop(partition, None)
        if part is None:
            return np.zeros(self.n_slots, dtype=np.int64)
        self._late_of_dropped += part.late
        removed = np.array(part.counts)
        if removed.any():
            self._counts -= removed
            self._notify(-removed)
        return removed

    def _on_partition_change(self, counts: IntArray, delta: IntArray) -> None:
        self._counts += delta
        self._notify(delta)

    def _notify(self, delta: IntArray) -> None:
        for listener in self.window_listeners:
            listener(self._counts, delta)


def _read_only(counts: IntArray) -> IntArray:
    """A view of ``counts`` that callers cannot write through."""
    view = counts.view()
    view.flags.writeable = False
    return view
