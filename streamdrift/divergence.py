"""Divergences of a window's bin counts from the baseline probabilities. Pure math.

For one feature with window counts ``c_i`` (``n = sum c_i``), window distribution
``p_i = c_i / n`` and smoothed baseline probabilities ``q_i > 0`` over ``B`` bins:

- ``KL(P||Q) = sum p_i ln(p_i / q_i)`` in nats (``0 ln 0 = 0``);
- ``JS(P, Q) = KL(P||M)/2 + KL(Q||M)/2`` with ``M = (P + Q)/2``, in nats, at most ln 2;
- ``PSI = sum (p~_i - q_i) ln(p~_i / q_i)`` with the window smoothed like the baseline,
  ``p~_i = (c_i + alpha) / (n + alpha B)``, since PSI is undefined for an empty bin;
- the G-test: ``G = 2 n KL(P||Q)`` follows a chi-square law with ``B - 1`` degrees of
  freedom when the window is drawn from Q, so ``p_value = P(chi2_{B-1} >= G)``. Unlike one
  fixed KL threshold, it means the same at every window size.

Functions here work on all features at once: counts of every feature's bins laid end to end
and ``starts``, where each feature's bins begin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from streamdrift.sketch import IntArray, SlotLayout

FloatArray = npt.NDArray[np.float64]


def xlogx(counts: npt.ArrayLike) -> FloatArray:
    """``c ln c`` with ``0 ln 0 = 0``, for non-negative counts.

    >>> xlogx(np.array([0, 1, np.e])).round(12).tolist()
    [0.0, 0.0, 2.718281828459]
    """
    values = np.asarray(counts, dtype=np.float64)  # pragma: no mutate: int or float counts
    return values * np.log(np.where(values > 0, values, 1.0))


@dataclass(frozen=True)
class Divergences:
    """Per-feature divergences; NaN where a feature has no value in the window."""

    samples: IntArray
    kl: FloatArray
    js: FloatArray
    psi: FloatArray
    g_statistic: FloatArray
    p_value: FloatArray


def divergences(
    counts: IntArray, q: FloatArray, starts: IntArray, alpha: float
) -> Divergences:
    """KL, JS, PSI and the G-test p-value of every feature.

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
    p_value = g_test_p_value(g_statistic, n_bins)
    missing = ~has_data
    for values in (kl, js, psi, g_statistic, p_value):
        values[missing] = np.nan  # pragma: no mutate: None is NaN in a float array
    return Divergences(samples, kl, js, psi, g_statistic, p_value)


def g_test_p_value(g_statistic: FloatArray, n_bins: IntArray) -> FloatArray:
    """``P(chi2_{B-1} >= G)``; 1 for a single bin, where no difference is possible.

    >>> g_test_p_value(np.array([0.0, 5.991464547107979]), np.array([3, 3])).round(6).tolist()
    [1.0, 0.05]
    """
    dof = n_bins - 1
    safe_dof = np.maximum(dof, 1)
    return np.where(dof > 0, chi2.sf(g_statistic, safe_dof), 1.0)


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
