"""The multi-scale scan: at each pane close, the two-sample test of the last 1, 2, 4, ...
panes and of the whole window against the reference, for every feature. Pure math.

A sliding window must fill with changed data before its KL crosses the threshold; the
newest panes alone show a large change as soon as they hold it. Each scale is the G-test of
homogeneity of ``divergence.homogeneity_test`` (sparse columns pooled, Williams'
correction), at a level that keeps the scan's false alarms under a stated rate:

- A pane close that covers ``r`` messages may raise a false alarm with probability at most
  ``rate * r / 10**6`` (``rate``: false alarms per million messages), so that their expected
  number over any stream is at most ``rate`` per million messages, however the rounds
  depend on one another (a sum of probabilities bounds the expected count).
- That budget is split evenly over the scales (Bonferroni: the scales overlap, so the true
  chance is lower), and divided by ``TAIL_FACTOR`` for the chi-square law's error in the
  far tail at small scales. Measured with the test's own p-values (10^6 null draws per
  case: 10 to 50 bins, equal-frequency or skewed, 100 to 5,000 values against a reference
  of 50,000, drawn or fixed as a baseline file has it), the chance of p <= level is 0.6 to
  1.5 times the level at 1e-3 to 1e-5 for scales of at least ten values per occupied bin
  (``VALUES_PER_BIN``); scales with fewer values are not tested.
- An alarm is the start of a run of pane closes at which some scale rejects; it holds
  while one does, and clears at the first pane close where none does.

The score of a feature is the largest ``ln p / ln level`` over its scales: 1 at the
threshold, above 1 past it.

Most pane closes show nothing, and the full test costs more than everything else at a pane
close: a bound screens them first. The test's G is at most the G of the same table before
any column is pooled (pooling merges columns, which never raises a likelihood-ratio
statistic; Williams' correction only divides it), and its degrees of freedom are at least
one less than the columns whose reference count alone keeps them from being pooled
(``r * min(n, m) / (n + m) >= 5``). So ``p >= chi2_sf(G unpooled, that)``: where that bound
is above the level, no scale can reject, and the full test runs only for the scores, when
they are asked for.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from streamdrift.divergence import MIN_EXPECTED, chi2_sf, homogeneity_test, xlogx

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# The chi-square tail's error at the scan's levels, bounded (module docstring).
TAIL_FACTOR = 2.0
# A scale is tested once it holds this many values per bin the reference occupies. At 5, the
# G-test's pooling of columns under 5 expected values would follow the window's own counts
# in equal-frequency bins (all on that edge at once), and reject 13 to 23 times as often as
# its level; at 7.5, 1.2 to 1.3 times; at 10, within the noise of 10^6 draws.
VALUES_PER_BIN = 10
# Fewer values than this are never tested, whatever the bins.
MIN_SCALE_VALUES = 30


def scan_scales(panes: int) -> tuple[int, ...]:
    """The scales, in panes: the powers of two below the window, then the whole window.

    >>> scan_scales(10), scan_scales(1), scan_scales(8)
    ((1, 2, 4, 8, 10), (1,), (1, 2, 4, 8))
    """
    if panes < 1:
        raise ValueError(f"a window has at least one pane (got {panes})")
    scales = []
    scale = 1
    while scale < panes:
        scales.append(scale)
        scale *= 2
    scales.append(panes)
    return tuple(scales)


def scale_level(false_alarms_per_million: float, messages: int, n_scales: int) -> float:
    """The level of each scale's test at a pane close that covers ``messages`` messages;
    at most 0.5 (a test at a higher level would say nothing).

    >>> scale_level(1.0, 500, 5)  # 1 per million, panes of 500, 5 scales
    5e-05
    """
    return min(0.5, false_alarms_per_million * messages / 1e6 / n_scales / TAIL_FACTOR)


class PaneScan:
    """The scan of every feature, fed with the window's arrivals and told of pane closes.

    ``reference``: the reference counts of every histogram bin, feature by feature (the
    layout of ``bin_starts``); ``occupied``: the bins each feature's reference occupies.
    Register ``on_change`` as a window listener: it keeps what arrives (departures are the
    window's business, not the scan's), and ``close`` ends the pane.

    >>> scan = PaneScan(np.array([500, 500]), np.array([0]), np.array([2]), panes=2,
    ...                 false_alarms_per_million=1.0, bin_slots=np.array([0, 1]),
    ...                 first_feature_slots=slice(0, 4))
    >>> scan.on_change(None, np.array([50, 50, 0, 0]))
    >>> scan.close().tolist(), scan.holding.tolist()
    ([False], [False])
    >>> scan.on_change(None, np.array([100, 0, 0, 0]))
    >>> scan.close().tolist(), scan.holding.tolist(), scan.scale_messages.tolist()
    ([True], [True], [100])
    """

    def __init__(self, reference: IntArray, bin_starts: IntArray, occupied: IntArray,
                 panes: int, false_alarms_per_million: float, bin_slots: IntArray,
                 first_feature_slots: slice) -> None:
        self.scales = scan_scales(panes)
        self.false_alarms_per_million = false_alarms_per_million
        self._bin_starts = np.asarray(bin_starts, dtype=np.int64)
        self._bin_slots = np.asarray(bin_slots, dtype=np.int64)
        # Every message fills one slot of each feature: the first feature's slots count them.
        self._message_slots = first_feature_slots
        n_bins_total = len(self._bin_slots)
        n_bins = np.diff(np.append(self._bin_starts, n_bins_total))
        self._feature_of_bin = np.repeat(np.arange(len(self._bin_starts)), n_bins)
        n_features = len(self._bin_starts)
        self._panes = np.zeros((panes, n_bins_total), dtype=np.int64)
        self._closed = 0
        self._arrivals: IntArray | None = None
        # What the last pane close tested: (windows, tested, level), and the full test's
        # p-values once computed.
        self._last: tuple[IntArray, npt.NDArray[np.bool_], float] | None = None
        self._last_p_value: FloatArray | None = None
        self.set_reference(reference, occupied)
        self.holding = np.zeros(n_features, dtype=bool)
        # The smallest scale that rejects, in values, while the alarm holds (0: none).
        self.scale_messages = np.zeros(n_features, dtype=np.int64)

    def set_reference(self, reference: IntArray, occupied: IntArray) -> None:
        """Test against another reference with the same bins (a new baseline): the panes
        stay, and the last close is tested again against it when its scores are asked for."""
        self._reference = np.asarray(reference, dtype=np.int64)
        # Against (scales, features).
        self._min_values = np.maximum(MIN_SCALE_VALUES, VALUES_PER_BIN * np.asarray(
            occupied, dtype=np.int64))[None, :]
        self._reference_values = np.add.reduceat(self._reference, self._bin_starts
                                                 ).astype(np.float64)
        self._reference_xlogx = np.add.reduceat(xlogx(self._reference), self._bin_starts)
        self._stacks: dict[int, tuple[IntArray, IntArray]] = {}
        self._last_p_value = None

    def on_change(self, counts_after: IntArray | None, delta: IntArray) -> None:
        """Keep an arrival (a batch's counts: no negative entry) for the open pane."""
        if delta.min(initial=0) < 0:
            return
        if self._arrivals is None:
            self._arrivals = np.array(delta, dtype=np.int64)
        else:
            self._arrivals += delta

    def close(self) -> npt.NDArray[np.bool_]:
        """End the open pane and test every scale; returns which features raised an alarm
        (the start of a holding run)."""
        arrivals = self._arrivals
        self._arrivals = None
        n_features = len(self._bin_starts)
        ring = len(self._panes)
        row = self._closed % ring
        if arrivals is None:
            self._panes[row] = 0
            messages = 0
        else:
            self._panes[row] = arrivals[self._bin_slots]
            messages = int(arrivals[self._message_slots].sum())
        self._closed += 1
        closed = min(self._closed, ring)
        usable = self._usable_scales(closed)
        level = scale_level(self.false_alarms_per_million, messages, len(self.scales))
        was_holding = self.holding
        if not usable or level <= 0.0:
            self._last = None
            self.holding = np.zeros(n_features, dtype=bool)
            self.scale_messages = np.zeros(n_features, dtype=np.int64)
            return np.zeros(n_features, dtype=bool)
        # The ring's rows from the newest back, summed: row k - 1 is the last k panes.
        newest_first = (row - np.arange(closed)) % ring
        cumulative = np.cumsum(self._panes[newest_first], axis=0)
        windows = cumulative[[scale - 1 for scale in usable]]  # (scales, bins)
        values = np.add.reduceat(windows, self._bin_starts, axis=1)  # (scales, features)
        tested = values >= self._min_values
        self._last = (windows, tested, level)
        self._last_p_value = None
        if (tested & self._may_reject(windows, values, level)).any():
            rejects = tested & (self._p_values() <= level)
        else:
            rejects = np.zeros_like(tested)
        self.holding = np.asarray(rejects.any(axis=0), dtype=bool)
        first_rejecting = np.argmax(rejects, axis=0)
        self.scale_messages = np.where(self.holding,
                                       values[first_rejecting, np.arange(n_features)], 0)
        raised: npt.NDArray[np.bool_] = self.holding & ~was_holding
        return raised

    @property
    def scores(self) -> FloatArray:
        """Every feature's score at the last pane close (NaN: no scale tested)."""
        if self._last is None:
            return np.full(len(self._bin_starts), np.nan)
        _, tested, level = self._last
        # ln p / ln level: above 1 where p is below the level; untested scales count -inf.
        scores = np.where(tested, np.log(np.maximum(self._p_values(), 1e-300)), np.inf) \
            / math.log(level)
        best = scores.max(axis=0)
        return np.where(best > -np.inf, best, np.nan)

    def _p_values(self) -> FloatArray:
        """The full test of every scale at the last pane close, (scales, features); computed
        once per pane close, when asked for."""
        if self._last_p_value is None:
            assert self._last is not None
            windows, _, _ = self._last
            starts, reference = self._stacked(len(windows))
            _, _, p_value = homogeneity_test(windows.ravel(), reference, starts)
            self._last_p_value = p_value.reshape(len(windows), len(self._bin_starts))
        return self._last_p_value

    def _may_reject(self, windows: IntArray, values: IntArray, level: float
                    ) -> npt.NDArray[np.bool_]:
        """False where the test of a scale cannot reject at ``level`` (module docstring):
        ``chi2_sf(G before pooling, columns never pooled - 1) > level``."""
        m = self._reference_values  # (features,)
        n = values.astype(np.float64)
        smaller_share = np.minimum(n, m) / np.maximum(n + m, 1.0)  # (scales, features)
        by_bin = self._feature_of_bin
        kept = (self._reference[None, :] * smaller_share[:, by_bin]) >= MIN_EXPECTED
        never_pooled = np.add.reduceat(kept, self._bin_starts, axis=1)
        # G / 2 of the table before pooling: sum over cells of O ln O, less the rows' and
        # the columns' totals' x ln x, plus the grand total's.
        half_g = (np.add.reduceat(xlogx(windows) - xlogx(windows + self._reference),
                                  self._bin_starts, axis=1)
                  + self._reference_xlogx - xlogx(n) - xlogx(m) + xlogx(n + m))
        bound = chi2_sf(2.0 * np.maximum(half_g, 0.0), np.maximum(never_pooled - 1, 1))
        may: npt.NDArray[np.bool_] = bound <= level
        return may

    def _usable_scales(self, closed: int) -> list[int]:
        """The scales that ``closed`` panes can fill."""
        return [scale for scale in self.scales if scale <= closed]

    def _stacked(self, n_scales: int) -> tuple[IntArray, IntArray]:
        """Where each (scale, feature) starts in the scales' bins laid end to end, and the
        reference repeated for each scale (kept: they depend on the number of scales only)."""
        cached = self._stacks.get(n_scales)
        if cached is None:
            n_bins_total = len(self._reference)
            starts = (self._bin_starts[None, :]
                      + n_bins_total * np.arange(n_scales)[:, None]).ravel()
            cached = (starts, np.tile(self._reference, n_scales))
            self._stacks[n_scales] = cached
        return cached
