"""Divergences against independent oracles: scipy for KL/JS/G-test, plain numpy for PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chi2, entropy, power_divergence

from streamdrift.divergence import (
    IncrementalKL,
    _CompensatedSum,
    divergences,
    g_test_p_value,
    xlogx,
)
from streamdrift.sketch import SlotLayout, WindowedHistogram
from tests.strategies import (
    count_vectors,
    histograms_against_baseline,
    js_oracle,
    probability_vectors,
)


def _flat(pairs):
    counts = np.concatenate([c for c, _ in pairs])
    q = np.concatenate([p for _, p in pairs])
    starts = np.cumsum([0] + [len(c) for c, _ in pairs[:-1]])
    return counts, q, starts


def _psi_oracle(counts: np.ndarray, q: np.ndarray, alpha: float) -> float:
    p = (counts + alpha) / (counts.sum() + alpha * len(counts))
    return float(sum((pi - qi) * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))


@given(histograms_against_baseline(), st.floats(0.01, 2.0))
def test_every_divergence_equals_its_oracle(pairs, alpha):
    counts, q, starts = _flat(pairs)
    result = divergences(counts, q, starts, alpha)
    for index, (c, p_ref) in enumerate(pairs):
        n = int(c.sum())
        assert result.samples[index] == n
        if n == 0:
            assert math.isnan(result.kl[index])
            assert math.isnan(result.p_value[index])
            continue
        assert result.kl[index] == pytest.approx(entropy(c, p_ref), rel=1e-9, abs=1e-12)
        assert result.js[index] == pytest.approx(js_oracle(c / n, p_ref),
                                                 rel=1e-7, abs=1e-12)
        assert result.psi[index] == pytest.approx(_psi_oracle(c, p_ref, alpha),
                                                  rel=1e-9, abs=1e-12)
        if len(c) > 1:
            expected = power_divergence(c, n * p_ref, lambda_="log-likelihood")
            # G = 2 n KL: its rounding grows with n.
            assert result.g_statistic[index] == pytest.approx(expected.statistic, rel=1e-7,
                                                              abs=1e-9 + 2 * n * 1e-12)
            # scipy's statistic can round to -1e-14 where P equals Q; its p-value is then NaN.
            expected_p = 1.0 if expected.statistic <= 0 else expected.pvalue
            assert result.p_value[index] == pytest.approx(expected_p, rel=1e-6, abs=1e-12)
        else:
            assert result.kl[index] == 0.0
            assert result.p_value[index] == 1.0


def test_js_is_bounded_by_ln2_for_disjoint_support():
    result = divergences(np.array([10, 0]), np.array([1e-12, 1 - 1e-12]), np.array([0]), 0.5)
    assert result.js[0] == pytest.approx(math.log(2), rel=1e-6)


def test_single_bin_never_drifts():
    result = divergences(np.array([7]), np.array([1.0]), np.array([0]), 0.5)
    assert (result.kl[0], result.psi[0], result.p_value[0]) == (0.0, 0.0, 1.0)


def test_g_test_p_value_is_the_chi_square_tail():
    # 3.841458820694124 is the 95th percentile of chi-square with 1 degree of freedom.
    assert g_test_p_value(np.array([3.841458820694124]), np.array([2]))[0] == pytest.approx(0.05)


@given(count_vectors(30))
def test_xlogx_matches_definition(counts):
    expected = [0.0 if c == 0 else c * math.log(c) for c in counts.tolist()]
    assert xlogx(counts) == pytest.approx(expected, rel=1e-12)


def _batch_kl(counts: np.ndarray, layout: SlotLayout, q_by_slot: np.ndarray) -> list[float]:
    values = []
    for feature in range(layout.n_features):
        start = layout.offsets[feature]
        bins = slice(start, start + layout.n_bins[feature])
        c = counts[bins]
        values.append(float("nan") if c.sum() == 0 else float(entropy(c, q_by_slot[bins])))
    return values


@given(st.data())
def test_incremental_kl_equals_batch_kl_at_every_step(data):
    n_bins = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=4))
    layout = SlotLayout.from_bins(n_bins)
    q_by_slot = np.ones(layout.n_slots)
    for feature, bins in enumerate(n_bins):
        start = layout.offsets[feature]
        q_by_slot[start:start + bins] = data.draw(probability_vectors(bins))
    n_panes = data.draw(st.integers(1, 6))
    histogram = WindowedHistogram(layout.n_slots, n_panes)
    kl = IncrementalKL(layout, np.log(q_by_slot))
    histogram.window_listeners.append(kl.on_change)
    pane = 0
    for _ in range(data.draw(st.integers(1, 25))):
        rows = data.draw(st.integers(0, 30))
        pane += data.draw(st.integers(0, 2))
        local = [data.draw(st.lists(st.integers(0, bins + 1), min_size=rows, max_size=rows))
                 for bins in n_bins]
        slots = (np.array(local, dtype=np.int64).reshape(len(n_bins), rows).T
                 + layout.offsets)
        histogram.update(np.full(rows, pane, dtype=np.int64), slots)
        expected = _batch_kl(np.asarray(histogram.counts), layout, q_by_slot)
        np.testing.assert_allclose(kl.values(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_incremental_kl_stays_exact_after_a_million_pane_rotations():
    rng = np.random.default_rng(2024)
    n_bins = [20, 5]
    layout = SlotLayout.from_bins(n_bins)
    q_by_slot = np.ones(layout.n_slots)
    q_by_slot[0:20] = rng.dirichlet(np.ones(20))
    q_by_slot[22:27] = rng.dirichlet(np.ones(5))
    # One-message panes rotate the window once per update; a drifted window keeps KL far
    # from zero so that a relative error means something.
    n_panes = 50
    histogram = WindowedHistogram(layout.n_slots, n_panes)
    kl = IncrementalKL(layout, np.log(q_by_slot))
    histogram.window_listeners.append(kl.on_change)
    rotations = 1_000_000
    skewed = np.linspace(1, 5, 20) / np.linspace(1, 5, 20).sum()
    first = rng.choice(20, size=rotations, p=skewed)
    second = rng.choice(5, size=rotations) + 22
    slots = np.stack([first, second], axis=1).astype(np.int64)
    # Many rotations per call; each message opens a pane, so each is one rotation.
    chunk = 10_000
    for start in range(0, rotations, chunk):
        panes = np.arange(start, start + chunk, dtype=np.int64)
        histogram.update(panes, slots[start:start + chunk])
    assert histogram.newest_pane == rotations - 1
    expected = _batch_kl(np.asarray(histogram.counts), layout, q_by_slot)
    np.testing.assert_allclose(kl.values(), expected, rtol=1e-9)


def test_a_single_bin_has_p_value_one_whatever_g():
    g = np.array([0.0, 0.5, 7.0, 1e6])
    np.testing.assert_array_equal(g_test_p_value(g, np.ones(4, dtype=np.int64)), 1.0)
    # With more bins the same G is the chi-square tail with B - 1 degrees of freedom.
    np.testing.assert_allclose(g_test_p_value(g, np.full(4, 3)), chi2.sf(g, 2), rtol=1e-12)


@given(hnp.arrays(np.float64, st.integers(1, 30),
                  elements=st.floats(0.0, 1e6, allow_nan=False, allow_subnormal=False)))
def test_xlogx_is_x_ln_x_for_every_non_negative_real(values):
    # Fractions below 1 included: their terms are negative.
    expected = [0.0 if v == 0 else v * math.log(v) for v in values.tolist()]
    assert xlogx(values) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@st.composite
def cancelling_sums(draw: st.DrawFn) -> list[float]:
    """Small terms between huge ones that cancel: a plain running sum loses the small ones."""
    huge = draw(st.floats(1e12, 1e300))
    small = draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=20))
    terms = [huge, *small, -huge, *draw(st.lists(st.floats(-1e3, 1e3), max_size=5))]
    return draw(st.permutations(terms))


@given(cancelling_sums())
def test_compensated_sum_keeps_what_a_plain_sum_loses(terms):
    """Neumaier's bound: the error is at most about 2u|S| + n^2 u^2 sum|x_i|, so against
    math.fsum the sum is exact to a few ulps of the result, however large the terms were."""
    total = _CompensatedSum(2)
    for term in terms:
        total.add(np.array([term, -term]))
    exact = math.fsum(terms)
    bound = 4 * np.finfo(float).eps * abs(exact) + len(terms) ** 2 * np.finfo(
        float).eps ** 2 * math.fsum(abs(t) for t in terms)
    assert abs(total.value()[0] - exact) <= bound
    assert abs(total.value()[1] + exact) <= bound


def test_compensated_sum_recovers_terms_below_the_rounding_of_the_total():
    total = _CompensatedSum(1)
    terms = [1.0, 1e100, 1.0, -1e100]
    for term in terms:
        total.add(np.array([term]))
    assert total.value()[0] == math.fsum(terms) == 2.0
