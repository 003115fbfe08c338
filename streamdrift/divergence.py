"""Divergences of a window's bin counts from the baseline probabilities. Pure math.

For one feature with window counts ``c_i`` (``n = sum c_i``), window distribution
``p_i = c_i / n`` and smoothed baseline probabilities ``q_i > 0`` over ``B`` bins:

- ``KL(P||Q) = sum p_i ln(p_i / q_i)`` in nats (``0 ln 0 = 0``);
- ``JS(P, Q) = KL(P||M)/2 + KL(Q||M)/2`` with ``M = (P + Q)/2``, in nats, at most ln 2;
- ``PSI = sum (p~_i - q_i) ln(p~_i / q_i)`` with the window smoothed like the baseline,
  ``p~_i = (c_i + alpha) / (n + alpha B)``, since PSI is undefined for an empty bin;
- the G-test of homogeneity between the window's counts ``c_i`` and the reference's counts
  ``b_i`` (the baseline file keeps them, ``m = sum b_i``): the 2 x B table of both rows,
  ``G = 2 sum O ln(O / E)`` with ``E = row total * column total / (n + m)``, follows a
  chi-square law with ``B' - 1`` degrees of freedom when both samples come from one
  distribution, so ``p_value = P(chi2_{B'-1} >= G)``. The reference is a sample too: treating
  it as exact (the one-sample test ``G = 2 n KL(P||Q)``) makes p-values too small by a factor
  that grows with ``n / m``. Columns empty in both rows are dropped; columns whose expected
  count in the smaller row is under 5 (``MIN_EXPECTED``), where the chi-square law does not
  hold, are pooled into one (and that one, if still under 5, into the thinnest other
  column); ``B'`` counts the columns left. The p-value takes Williams' correction,
  ``P(chi2 >= G / q)`` with ``q = 1 + (N sum 1/C_j - 1)(N (1/n + 1/m) - 1) / (6 N (B' - 1))``
  over the column totals ``C_j`` and ``N = n + m``: without it G runs a little above its
  chi-square law at these sizes. A baseline without counts falls back to the one-sample
  test.

Functions here work on all features at once: counts of every feature's bins laid end to end
and ``starts``, where each feature's bins begin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamdrift.sketch import IntArray, SlotLayout

FloatArray = npt.NDArray[np.float64]


def chi2_sf(statistic: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """``P(chi2_dof >= statistic)``: scipy's chi-square survival function, imported on first
    use (scipy.special, not scipy.stats, whose import takes a second).

    >>> round(float(chi2_sf(3.841458820694124, 1)), 6)
    0.05
    """
    from scipy.special import chdtrc

    values = np.asarray(statistic, dtype=np.float64)
    freedom = np.asarray(dof, dtype=np.float64)
    result: FloatArray = np.asarray(chdtrc(freedom, values), dtype=np.float64)
    return result


def chi2_isf(level: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """The statistic whose chi-square tail is ``level``: the inverse of ``chi2_sf``.

    >>> round(float(chi2_isf(0.05, 1)), 6)
    3.841459
    """
    from scipy.special import chdtri

    levels = np.asarray(level, dtype=np.float64)
    freedom = np.asarray(dof, dtype=np.float64)
    result: FloatArray = np.asarray(chdtri(freedom, levels), dtype=np.float64)
    return result


def xlogx(counts: npt.ArrayLike) -> FloatArray:
    """``c ln c`` with ``0 ln 0 = 0``, for non-negative counts.

    >>> xlogx(np.array([0, 1, np.e])).round(12).tolist()
    [0.0, 0.0, 2.718281828459]
    """
    values = np.asarray(counts, dtype=np.float64)  # pragma: no mutate: int or float counts
    return values * np.log(np.where(values > 0, values, 1.0))


# Below this expected count in a table cell the chi-square law of G is too generous
# (Cochran's rule): such columns are pooled before the test.
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class Divergences:
    """Per-feature divergences; NaN where a feature has no value in the window."""

    samples: IntArray
    kl: FloatArray
    js: FloatArray
    psi: FloatArray
    g_statistic: FloatArray
    p_value: FloatArray
    dof: IntArray


def divergences(
    counts: IntArray, q: FloatArray, starts: IntArray, alpha: float,
    reference_counts: IntArray | None = None,
) -> Divergences:
    """KL, JS, PSI and the G-test p-value of every feature.

    The G-test compares the window with ``reference_counts`` (same layout as ``counts``)
    where a feature has them, and with ``q`` taken as exact where it has none (all zero).

    >>> from scipy.stats import entropy
    >>> result = divergences(np.array([3, 0, 1]), np.array([0.5, 0.25, 0.25]),
    ...                      np.array([0]), alpha=0.5)
    >>> bool(np.isclose(result.kl[0], entropy([3, 0, 1], [0.5, 0.25, 0.25])))
    True
    """
    counts = np.asarray(counts, dtype=np.int64)  # pragma: no mutate: counts are int64 already
    n_bins = np.diff(np.append(starts, len(counts)))
    samples = np.add.reduceat(counts, starts)
    has_data = samples > 0
    n_each = np.repeat(np.maximum(samples, 1), n_bins).astype(np.float64)
    p = counts / n_each
    positive = p > 0
    log_p_over_q = np.log(np.where(positive, p, 1.0) / q)
    kl = np.add.reduceat(np.where(positive, p * log_p_over_q, 0.0), starts)

    m = (p + q) / 2
    js_terms = np.where(positive, p * np.log(np.where(positive, p, 1.0) / m), 0.0)
    js_terms += q * np.log(q / m)
    js = np.add.reduceat(js_terms, starts) / 2

    smoothed_total = np.repeat(samples + alpha * n_bins, n_bins).astype(np.float64)
    p_smooth = (counts + alpha) / smoothed_total
    psi = np.add.reduceat((p_smooth - q) * np.log(p_smooth / q), starts)

    kl = np.maximum(kl, 0.0)  # rounding can leave -1e-17 where P equals Q
    g_statistic = 2.0 * samples * kl
    dof = n_bins - 1
    p_value = g_test_p_value(g_statistic, n_bins)
    if reference_counts is not None:
        two_sample = np.add.reduceat(np.asarray(reference_counts), starts) > 0
        if two_sample.any():
            g2, dof2, p2 = homogeneity_test(counts, reference_counts, starts)
            g_statistic = np.where(two_sample, g2, g_statistic)
            dof = np.where(two_sample, dof2, dof)
            p_value = np.where(two_sample, p2, p_value)
    missing = ~has_data
    for values in (kl, js, psi, g_statistic, p_value):
        values[missing] = np.nan  # pragma: no mutate: None is NaN in a float array
    return Divergences(samples, kl, js, psi, g_statistic, p_value, dof)


def kl_contributions(counts: IntArray, q: FloatArray, starts: IntArray
                     ) -> tuple[FloatArray, FloatArray]:
    """Every bin's window probability ``p_i = c_i / n`` and its term of the KL,
    ``p_i ln(p_i / q_i)`` (0 where ``c_i = 0``): a feature's terms sum to its KL, so they say
    which bins made it. A term is negative where the window has less than the baseline.
    NaN where the feature's window is empty.

    >>> p, terms = kl_contributions(np.array([3, 0, 1]), np.array([0.5, 0.25, 0.25]),
    ...                             np.array([0]))
    >>> p.tolist(), round(float(terms.sum()), 12) == round(float(
    ...     divergences(np.array([3, 0, 1]), np.array([0.5, 0.25, 0.25]), np.array([0]),
    ...                 0.5).kl[0]), 12)
    ([0.75, 0.0, 0.25], True)
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_bins = np.diff(np.append(starts, len(counts)))
    samples = np.repeat(np.add.reduceat(counts, starts), n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / samples
        terms = np.where(counts > 0, p * np.log(np.where(counts > 0, p, 1.0) / q), 0.0)
    empty = samples == 0
    p[empty] = np.nan
    terms[empty] = np.nan
    return p, terms


def homogeneity_test(
    window: IntArray, reference: IntArray, starts: IntArray,
    min_expected: float = MIN_EXPECTED,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """The G-test of homogeneity of every feature's window and reference counts:
    ``(G, degrees of freedom, p-value)`` per feature, with sparse columns pooled first
    (module docstring). A feature with an empty row has ``G = 0`` and ``p = 1``.

    >>> from scipy.stats import chi2_contingency
    >>> window, reference = np.array([30, 50, 20]), np.array([400, 450, 150])
    >>> g, dof, p = homogeneity_test(window, reference, np.array([0]))
    >>> expected = chi2_contingency([window, reference], correction=False,
    ...                             lambda_="log-likelihood")
    >>> bool(np.isclose(g[0], expected.statistic)), int(dof[0])
    (True, 2)
    >>> bool(expected.pvalue < p[0] < 1.03 * expected.pvalue)  # Williams' correction
    True
    """
    window = np.asarray(window, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    n_features = len(starts)
    n_bins = np.diff(np.append(starts, len(window)))
    feature = np.repeat(np.arange(n_features), n_bins)
    n = np.add.reduceat(window, starts)
    m = np.add.reduceat(reference, starts)
    total = np.maximum(n + m, 1.0)
    # The expected count of a column in the smaller row decides whether it is sparse.
    smaller_share = np.minimum(n, m) / total
    column = window + reference
    occupied = column > 0
    sparse = occupied & (column * smaller_share[feature] < min_expected)
    kept = occupied & ~sparse
    pooled_window = _sum_by(feature[sparse], window[sparse], n_features)
    pooled_reference = _sum_by(feature[sparse], reference[sparse], n_features)
    pooled = pooled_window + pooled_reference
    kept_columns = np.bincount(feature[kept], minlength=n_features)
    # A pooled column still too thin joins the thinnest kept column of its feature.
    joins = (pooled > 0) & (pooled * smaller_share < min_expected) & (kept_columns > 0)
    table_window = np.where(kept, window, 0.0)
    table_reference = np.where(kept, reference, 0.0)
    if joins.any():
        candidates = np.flatnonzero(kept & joins[feature])
        by_thinness = candidates[np.lexsort((column[candidates], feature[candidates]))]
        first = np.ones(len(by_thinness), dtype=bool)
        first[1:] = feature[by_thinness][1:] != feature[by_thinness][:-1]
        thinnest = by_thinness[first]  # one column per joining feature, in feature order
        table_window[thinnest] += pooled_window[joins]
        table_reference[thinnest] += pooled_reference[joins]
    apart = (pooled > 0) & ~joins
    dof = (kept_columns + apart - 1).astype(np.int64)

    def deviance(observed: FloatArray, expected: FloatArray) -> FloatArray:
        """``O ln(O / E)``, 0 where O is 0."""
        positive = observed > 0
        return np.where(positive, observed * np.log(
            np.where(positive, observed, 1.0) / np.where(positive, expected, 1.0)), 0.0)

    window_share, reference_share = n / total, m / total
    table_column = table_window + table_reference
    cells = (deviance(table_window, table_column * window_share[feature])
             + deviance(table_reference, table_column * reference_share[feature]))
    g = 2.0 * np.bincount(feature, weights=cells, minlength=n_features)
    g += 2.0 * np.where(apart, deviance(pooled_window, pooled * window_share)
                        + deviance(pooled_reference, pooled * reference_share), 0.0)
    g = np.maximum(g, 0.0)  # rounding where the rows are proportional
    testable = (dof > 0) & (n > 0) & (m > 0)
    # Williams' correction: G runs about q times its chi-square law in finite samples.
    inverse_columns = np.bincount(feature, weights=np.where(
        table_column > 0, 1.0 / np.where(table_column > 0, table_column, 1.0), 0.0),
        minlength=n_features) + np.where(apart, 1.0 / np.where(apart, pooled, 1.0), 0.0)
    safe_n, safe_m = np.maximum(n, 1.0), np.maximum(m, 1.0)
    q = 1.0 + ((total * inverse_columns - 1.0) * (total * (1.0 / safe_n + 1.0 / safe_m) - 1.0)
               / (6.0 * total * np.maximum(dof, 1)))
    p_value = np.where(testable, chi2_sf(g / q, np.maximum(dof, 1)), 1.0)
    return np.where(testable, g, 0.0), np.maximum(dof, 0), p_value


def _sum_by(groups: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """The sum of ``values`` in each group ``0 .. n_groups - 1``."""
    return np.bincount(groups, weights=values, minlength=n_groups).astype(np.float64)


def holm_adjusted(p_values: FloatArray) -> FloatArray:
    """Holm's step-down adjustment of p-values tested together (NaN ones left out): a
    hypothesis is rejected at level alpha when its adjusted p-value is at most alpha, and
    the chance of rejecting any true one is at most alpha, whatever their dependence.

    >>> holm_adjusted(np.array([0.01, 0.04, np.nan, 0.03])).round(4).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p_values), np.nan)
    tested = np.flatnonzero(~np.isnan(p_values))
    if len(tested) == 0:
        return adjusted
    order = tested[np.argsort(p_values[tested], kind="stable")]
    factors = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(np.maximum.accumulate(p_values[order] * factors), 1.0)
    return adjusted


def expected_null_kl(samples: npt.ArrayLike, reference_samples: npt.ArrayLike,
                     occupied_bins: npt.ArrayLike) -> FloatArray:
    """The KL(window || baseline) expected when nothing drifted: ``(B - 1)/2 * (1/n + 1/m)``
    for ``B`` bins the reference occupies, a window of ``n`` values and a reference of ``m``
    (``m = 0``: no counts, the baseline taken as exact). NaN where ``n = 0``. Both samples'
    noise: ``2 n m / (n + m) * KL`` is about chi-square with ``B - 1`` degrees of freedom.

    >>> expected_null_kl([100, 1000, 0], [50_000, 0, 100], [20, 20, 20]).round(4).tolist()
    [0.0952, 0.0095, nan]
    """
    n = np.asarray(samples, dtype=np.float64)
    m = np.asarray(reference_samples, dtype=np.float64)
    bins = np.asarray(occupied_bins, dtype=np.float64)
    inverse_m = np.where(m > 0, 1.0 / np.maximum(m, 1.0), 0.0)
    with np.errstate(divide="ignore"):
        floor = (np.maximum(bins, 1.0) - 1.0) / 2.0 * (1.0 / n + inverse_m)
    return np.where(n > 0, floor, np.nan)


# The fewest values a window needs whatever the bins: fewer say nothing (min_samples: auto).
MIN_SAMPLES_FLOOR = 30


def auto_min_samples(threshold: float, occupied_bins: int, reference_samples: int) -> int:
    """The smallest window whose KL expected without drift is at most half the threshold
    (``expected_null_kl(n, m, B) <= threshold / 2``), and at least ``MIN_SAMPLES_FLOOR``.
    When even an endless window cannot get there (a reference too small for the threshold:
    its own noise is half the threshold or more), the reference's size.

    >>> auto_min_samples(0.1, 20, 50_000), auto_min_samples(0.1, 50, 0)
    (191, 490)
    >>> auto_min_samples(0.1, 3, 50_000), auto_min_samples(0.1, 20, 300)
    (30, 519)
    >>> auto_min_samples(0.1, 20, 150)  # 150 reference values: noise 0.063 of their own
    150
    """
    if occupied_bins <= 1:
        return MIN_SAMPLES_FLOOR
    inverse_m = 1.0 / reference_samples if reference_samples > 0 else 0.0
    room = threshold / (occupied_bins - 1) - inverse_m
    if room <= 0:
        return max(MIN_SAMPLES_FLOOR, reference_samples)
    samples = math.ceil(1.0 / room)
    # 1/room can round up past an exact integer: take the smaller window when it also fits.
    if samples > 1 and (occupied_bins - 1) / 2 * (1 / (samples - 1) + inverse_m) <= threshold / 2:
        samples -= 1
    return max(MIN_SAMPLES_FLOOR, samples)


def g_test_p_value(g_statistic: FloatArray, n_bins: IntArray) -> FloatArray:
    """``P(chi2_{B-1} >= G)``; 1 for a single bin, where no difference is possible.

    >>> g_test_p_value(np.array([0.0, 5.991464547107979]), np.array([3, 3])).round(6).tolist()
    [1.0, 0.05]
    """
    dof = n_bins - 1
    safe_dof = np.maximum(dof, 1)
    return np.where(dof > 0, chi2_sf(g_statistic, safe_dof), 1.0)


def g_critical_values(level: float, dof: IntArray) -> FloatArray:
    """The G above which a chi-square test with ``dof`` degrees of freedom rejects at
    ``level``; +inf where ``dof`` is 0 (one bin: nothing to test).

    >>> g_critical_values(0.05, np.array([1, 0])).round(4).tolist()
    [3.8415, inf]
    """
    dof = np.asarray(dof)
    return np.where(dof > 0, chi2_isf(level, np.maximum(dof, 1)), np.inf)


def kl_from_sums(
    sum_c_log_c: FloatArray, sum_c_log_q: FloatArray, samples: IntArray
) -> FloatArray:
    """``KL = (1/n) sum c_i ln c_i - ln n - (1/n) sum c_i ln q_i``; NaN where ``n = 0``.

    >>> from scipy.stats import entropy
    >>> c, q = np.array([3.0, 0.0, 1.0]), np.array([0.5, 0.25, 0.25])
    >>> kl = kl_from_sums(xlogx(c).sum(keepdims=True), (c @ np.log(q)).reshape(1),
    ...                   np.array([4]))
    >>> bool(np.isclose(kl[0], entropy(c, q)))
    True
    """
    n = np.maximum(samples, 1).astype(np.float64)
    kl = (sum_c_log_c - sum_c_log_q) / n - np.log(n)
    return np.where(samples > 0, np.maximum(kl, 0.0), np.nan)


class IncrementalKL:
    """KL of every feature's window, kept as two running sums per feature.

    With ``S1 = sum c_i ln c_i`` and ``S2 = sum c_i ln q_i``, a change of the window (a batch
    entering, a pane leaving) changes the sums by the terms of the bins it touches only, so
    the cost does not grow with the window length. The sums are compensated (Neumaier), so
    that rounding does not accumulate over millions of pane rotations.

    Register ``on_change`` as a window listener of the feature's ``WindowedHistogram``.
    """

    def __init__(self, layout: SlotLayout, log_q_by_slot: FloatArray) -> None:
        self.layout = layout
        # ln q for histogram slots, 0 for the missing and invalid slots (never in the sums).
        self._log_q = np.where(layout.is_bin_slot, log_q_by_slot, 0.0)
        n_features = layout.n_features
        self._s1 = _CompensatedSum(n_features)
        self._s2 = _CompensatedSum(n_features)
        self._samples = np.zeros(n_features, dtype=np.int64)  # pragma: no mutate: same counts

    def on_change(self, counts_after: IntArray, delta: IntArray) -> None:
        touched = np.flatnonzero(delta)
        touched = touched[self.layout.is_bin_slot[touched]]
        if len(touched) == 0:
            return
        change = delta[touched]
        after = counts_after[touched]
        feature = self.layout.slot_feature[touched]
        n_features = self.layout.n_features
        s1_terms = xlogx(after) - xlogx(after - change)
        self._s1.add(np.bincount(feature, weights=s1_terms, minlength=n_features))
        self._s2.add(np.bincount(feature, weights=change * self._log_q[touched],
                                 minlength=n_features))
        self._samples += np.bincount(feature, weights=change,
                                     minlength=n_features).astype(np.int64)

    @property
    def samples(self) -> IntArray:
        return self._samples.copy()

    def values(self) -> FloatArray:
        """The KL of every feature's window; NaN where the window has no value."""
        return kl_from_sums(self._s1.value(), self._s2.value(), self._samples)


class _CompensatedSum:
    """Element-wise running sums with Neumaier's compensation."""

    def __init__(self, size: int) -> None:
        self._total = np.zeros(size)
        self._compensation = np.zeros(size)

    def add(self, increment: npt.NDArray[Any]) -> None:
        total = self._total
        new_total = total + increment
        self._compensation += np.where(
            np.abs(total) >= np.abs(increment),
            (total - new_total) + increment,
            (increment - new_total) + total,
        )
        self._total = new_total

    def value(self) -> FloatArray:
        return self._total + self._compensation
