"""Divergences against independent oracles: scipy for KL/JS/G-test, plain numpy for PSI."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chi2, chi2_contingency, entropy, kstest, power_divergence

from streamdrift.divergence import (
    MIN_SAMPLES_FLOOR,
    IncrementalKL,
    _CompensatedSum,
    auto_min_samples,
    divergences,
    expected_null_kl,
    g_test_p_value,
    holm_adjusted,
    homogeneity_test,
    kl_contributions,
    xlogx,
)
from streamdrift.sketch import SlotLayout, WindowedHistogram
from tests.strategies import (
    count_vectors,
    histograms_against_baseline,
    holm_oracle,
    js_oracle,
    probability_vectors,
    two_sample_oracle,
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
def test_incremental_kl_stays_exact_after_300_000_pane_rotations():
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
    rotations = 300_000
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


# ---- the two-sample test, Holm, the noise floor -----------------------------------------------

@st.composite
def count_tables(draw: st.DrawFn, max_features: int = 4):
    """Several features' (window counts, reference counts): empty bins, thin bins, rows
    far apart in size, an empty row now and then."""
    pairs = []
    for _ in range(draw(st.integers(1, max_features))):
        n_bins = draw(st.integers(1, 30))
        window = draw(count_vectors(n_bins, huge=False))
        reference = draw(count_vectors(n_bins, huge=False))
        pairs.append((window, reference))
    return pairs


def _tables_flat(pairs):
    window = np.concatenate([w for w, _ in pairs])
    reference = np.concatenate([r for _, r in pairs])
    starts = np.cumsum([0] + [len(w) for w, _ in pairs[:-1]])
    return window, reference, starts


@given(count_tables())
def test_the_two_sample_test_equals_its_oracle_on_any_table(pairs):
    """G from scipy's chi2_contingency on the table pooled as documented (built column by
    column in tests/strategies.py), the p-value with Williams' correction."""
    window, reference, starts = _tables_flat(pairs)
    g, dof, p = homogeneity_test(window, reference, starts)
    for index, (w, r) in enumerate(pairs):
        expected_g, expected_dof, expected_p = two_sample_oracle(w, r)
        assert dof[index] == expected_dof
        assert g[index] == pytest.approx(expected_g, rel=1e-9, abs=1e-9)
        assert p[index] == pytest.approx(expected_p, rel=1e-9, abs=1e-12)


@given(st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_with_no_sparse_column_the_statistic_is_scipys_on_the_table_itself(n_bins, seed):
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(n_bins) * 5)
    window = rng.multinomial(int(rng.integers(2_000, 20_000)), probabilities)
    reference = rng.multinomial(int(rng.integers(2_000, 50_000)), probabilities)
    total = window + reference
    smaller = min(window.sum(), reference.sum()) / total.sum()
    if (total * smaller < 5).any():
        return  # a sparse column: the pooled oracle above covers it
    g, dof, _ = homogeneity_test(window, reference, np.array([0]))
    expected = chi2_contingency([window, reference], correction=False,
                                lambda_="log-likelihood")
    # G is a difference of sums of c ln c: near zero, rounding of order N * eps remains.
    assert g[0] == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12 * total.sum())
    assert dof[0] == expected.dof == n_bins - 1


KINDS = {
    # name: the law of one feature's bins
    "uniform, 20 bins": np.ones(20) / 20,
    "uniform, 50 bins": np.ones(50) / 50,
    "skewed, 50 categories": (lambda w: w / w.sum())(1 / np.arange(1, 51) ** 1.2),
    "60 categories, many rare": np.random.default_rng(11).dirichlet(np.ones(60) * 0.5),
    "3 categories": np.array([0.6, 0.3, 0.1]),
    "5 integer values": np.array([0.05, 0.25, 0.4, 0.25, 0.05]),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_p_values_of_two_samples_of_one_law_are_uniform(kind):
    """600 pairs of samples of one law, each of its own sizes (reference and window drawn
    apart, log-uniform from 1,000 to 50,000): the p-values pass a Kolmogorov-Smirnov test
    against the uniform law, and their 1 % tail holds about 1 % of them."""
    probabilities = KINDS[kind]
    rng = np.random.default_rng(sum(map(ord, kind)))
    draws = 600
    sizes = np.exp(rng.uniform(np.log(1_000), np.log(50_000), size=(draws, 2))).astype(int)
    reference = np.stack([rng.multinomial(m, probabilities) for m in sizes[:, 0]])
    window = np.stack([rng.multinomial(n, probabilities) for n in sizes[:, 1]])
    starts = np.arange(draws) * len(probabilities)
    _, _, p = homogeneity_test(window.ravel(), reference.ravel(), starts)
    assert kstest(p, "uniform").pvalue > 0.001
    # 6 expected under 1 %; a binomial 99.9 % band is 0 to 15.
    assert np.count_nonzero(p < 0.01) <= 15


def test_the_reference_is_a_sample_too():
    """Two samples of one law, the window a fifth of the reference: the one-sample test,
    which takes the reference as exact, rejects far more often than its level; the
    two-sample test does not."""
    rng = np.random.default_rng(3)
    probabilities = np.ones(20) / 20
    draws, m, n = 2000, 5_000, 25_000
    reference = rng.multinomial(m, probabilities, size=draws)
    window = rng.multinomial(n, probabilities, size=draws)
    starts = np.arange(draws) * 20
    _, _, p_two = homogeneity_test(window.ravel(), reference.ravel(), starts)
    q = ((reference + 0.5) / (m + 0.5 * 20)).astype(np.float64)
    p_one = divergences(window.ravel(), q.ravel(), starts, 0.5).p_value
    assert np.mean(p_two < 0.01) < 0.02
    assert np.mean(p_one < 0.01) > 0.3


def test_a_feature_without_reference_counts_keeps_the_one_sample_test():
    q = np.array([0.5, 0.3, 0.2, 0.25, 0.75])
    counts = np.array([60, 20, 20, 10, 90])
    starts = np.array([0, 3])
    reference = np.array([500, 300, 200, 0, 0])  # the second feature has no counts
    result = divergences(counts, q, starts, 0.5, reference)
    one_sample = power_divergence(counts[3:], 100 * q[3:], lambda_="log-likelihood")
    assert result.p_value[1] == pytest.approx(one_sample.pvalue, rel=1e-9)
    assert result.p_value[0] == pytest.approx(two_sample_oracle(counts[:3], reference[:3])[2],
                                              rel=1e-9)
    assert result.dof.tolist() == [2, 1]


@given(st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), max_size=12),
       st.sampled_from([0.001, 0.01, 0.05]))
def test_holm_rejects_what_the_step_down_procedure_rejects(p_values, alpha):
    adjusted = holm_adjusted(np.array(p_values, dtype=np.float64))
    named = {str(i): p for i, p in enumerate(p_values) if not math.isnan(p)}
    rejected = {str(i) for i, a in enumerate(adjusted.tolist()) if a <= alpha}
    assert rejected == holm_oracle(named, alpha)
    assert all(math.isnan(a) == math.isnan(p) for a, p in zip(adjusted, p_values,
                                                               strict=True))


def test_the_noise_floor_is_the_mean_kl_of_a_window_without_drift():
    """Simulated: the plug-in KL of a window of n against a smoothed reference of m values,
    both drawn from one law, averages (B - 1)/2 (1/n + 1/m)."""
    rng = np.random.default_rng(5)
    bins, draws = 20, 4000
    probabilities = rng.dirichlet(np.ones(bins) * 20)
    for n, m in [(300, 50_000), (1_000, 5_000), (5_000, 5_000)]:
        reference = rng.multinomial(m, probabilities, size=draws)
        window = rng.multinomial(n, probabilities, size=draws)
        q = ((reference + 0.5) / (m + 0.5 * bins)).astype(np.float64)
        kl = divergences(window.ravel(), q.ravel(), np.arange(draws) * bins, 0.5).kl
        expected = expected_null_kl([n], [m], [bins])[0]
        assert kl.mean() == pytest.approx(expected, rel=0.05), (n, m)


@given(st.floats(0.01, 1.0), st.integers(1, 100), st.integers(0, 10**6))
def test_auto_min_samples_is_the_smallest_window_under_half_the_threshold(threshold, bins,
                                                                         reference):
    n = auto_min_samples(threshold, bins, reference)
    assert n >= MIN_SAMPLES_FLOOR
    floor = expected_null_kl([n, n - 1], [reference] * 2, [bins] * 2)
    if n > MIN_SAMPLES_FLOOR and n != reference:
        assert floor[0] <= threshold / 2 * (1 + 1e-12)
        assert floor[1] > threshold / 2
    if bins > 1 and reference > 0 and (bins - 1) / (2 * reference) >= threshold / 2:
        assert n == max(MIN_SAMPLES_FLOOR, reference)  # the reference itself is too noisy


def _smallest_window_exactly(threshold: float, bins: int, reference: int) -> int | None:
    """The smallest n with (bins - 1)/2 (1/n + 1/reference) <= threshold/2 in exact decimal
    arithmetic (the threshold as written); None when no window is small enough."""
    room = Fraction(str(threshold)) / (bins - 1) - (Fraction(1, reference) if reference else 0)
    return math.ceil(1 / room) if room > 0 else None


@pytest.mark.parametrize("threshold", [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.02, 2.0])
def test_auto_min_samples_is_exactly_the_smallest_window_at_the_boundaries(threshold):
    """Over a grid that holds windows whose noise is exactly half the threshold: the exact
    answer, or one more where floats put the exact one a rounding above half the threshold;
    the reference's size where no window is small enough; 30 at least."""
    for bins, reference in itertools.product(range(1, 60), [0, 1, 2, 100, 300, 1000, 5000]):
        n = auto_min_samples(threshold, bins, reference)
        exact = None if bins <= 1 else _smallest_window_exactly(threshold, bins, reference)
        if bins <= 1:
            expected = {MIN_SAMPLES_FLOOR}
        elif exact is None:
            expected = {max(MIN_SAMPLES_FLOOR, reference)}
        else:
            expected = {max(MIN_SAMPLES_FLOOR, exact)}
            if expected_null_kl([exact], [reference], [bins])[0] > threshold / 2:
                expected.add(max(MIN_SAMPLES_FLOOR, exact + 1))
        assert n in expected, (threshold, bins, reference)


def test_expected_null_kl_of_one_value_one_reference_value_and_one_bin():
    floor = expected_null_kl([1, 10, 10, 5, 1], [1, 0, 7, 3, 0], [3, 1, 0, 4, 2])
    assert floor.tolist() == pytest.approx([2.0, 0.0, 0.0, 1.5 * (1 / 5 + 1 / 3), 0.5])


def test_kl_terms_of_each_bin_and_nan_for_an_empty_window():
    counts = np.array([3, 0, 1, 0, 0, 1, 0])
    q = np.array([0.4, 0.3, 0.3, 0.5, 0.5, 0.2, 0.8])
    p, terms = kl_contributions(counts, q, np.array([0, 3, 5]))
    expected_p = [0.75, 0.0, 0.25, math.nan, math.nan, 1.0, 0.0]
    assert p.tolist() == pytest.approx(expected_p, nan_ok=True)
    assert terms.tolist() == pytest.approx(
        [0.75 * math.log(0.75 / 0.4), 0.0, 0.25 * math.log(0.25 / 0.3), math.nan, math.nan,
         math.log(1 / 0.2), 0.0], nan_ok=True)


def test_holm_adjusted_p_values_are_at_most_one():
    assert holm_adjusted(np.array([0.6, 0.01, np.nan, 0.7])).tolist() == pytest.approx(
        [1.0, 0.03, math.nan, 1.0], nan_ok=True)


def test_a_reference_of_one_value_is_a_sample_for_the_two_sample_test():
    counts = np.array([60, 30, 10, 40, 30, 20, 10])
    q = np.array([0.5, 0.3, 0.2, 0.25, 0.25, 0.25, 0.25])
    starts = np.array([0, 3])
    reference = np.array([1, 0, 0, 500, 300, 5, 1])  # a thin column pooled in the second
    result = divergences(counts, q, starts, 0.5, reference)
    g, dof, p = homogeneity_test(counts, reference, starts)
    np.testing.assert_allclose(result.g_statistic, g)
    np.testing.assert_array_equal(result.dof, dof)
    np.testing.assert_allclose(result.p_value, p)
    assert dof.tolist() == [0, 1]  # the second feature: its two thin columns pooled, joined


def _williams_p_value(table: np.ndarray) -> tuple[float, int, float]:
    """scipy's G of a 2 x k table, and its p-value with Williams' correction."""
    expected = chi2_contingency(table, correction=False, lambda_="log-likelihood")
    n, m = table.sum(axis=1)
    total, columns = n + m, table.shape[1]
    q = 1 + (total * np.sum(1.0 / table.sum(axis=0)) - 1) * (total * (1 / n + 1 / m) - 1) / (
        6 * total * (columns - 1))
    return float(expected.statistic), columns - 1, float(chi2.sf(expected.statistic / q,
                                                                 columns - 1))


@pytest.mark.parametrize(("window", "reference"), [
    # columns whose expected count in the smaller row is exactly 5: kept
    ([4, 6, 90], [6, 4, 90]),
    # thin columns pooled into one whose expected count is exactly 5: a column of its own
    ([1, 3, 96], [3, 3, 94]),
    # two columns: one degree of freedom
    ([30, 70], [50, 50]),
])
def test_the_two_sample_test_at_the_pooling_boundaries(window, reference):
    g, dof, p = homogeneity_test(np.array(window), np.array(reference), np.array([0]))
    expected_g, expected_dof, expected_p = two_sample_oracle(window, reference)
    assert int(dof[0]) == expected_dof
    assert (g[0], p[0]) == pytest.approx((expected_g, expected_p), rel=1e-9)
    assert 0 < p[0] < 1


@pytest.mark.parametrize(("window", "reference"), [
    ([1, 0, 0], [40, 25, 35]), ([10, 25, 5], [0, 1, 0]), ([3, 1, 4], [2, 7, 1]),
    ([1, 30, 20], [0, 25, 24])])
def test_without_pooling_even_a_row_of_one_value_is_tested(window, reference):
    window, reference = np.array(window), np.array(reference)
    g, dof, p = homogeneity_test(window, reference, np.array([0]), min_expected=0.0)
    occupied = (window + reference) > 0
    expected_g, expected_dof, expected_p = _williams_p_value(
        np.array([window[occupied], reference[occupied]]))
    assert (g[0], int(dof[0]), p[0]) == pytest.approx((expected_g, expected_dof, expected_p),
                                                       rel=1e-9)
