"""The mixture CUSUM against its closed form (log-gamma functions), the compiled kernel
against the numpy loop, its alarms, and its false-alarm rate when nothing drifts."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import gammaln, pdtrc

from streamdrift.config import DetectorConfig
from streamdrift.sequential import MixtureCusum, cusum_threshold

# The members streamdrift runs unless configured.
DEFAULT_PRIOR_STRENGTHS = DetectorConfig().prior_strengths


def _baseline(rng, n_bins):
    # Dirichlet draws: no two runs' Bayes factors can cancel exactly, so a restart (W <= 0)
    # is never a matter of the last bit.
    return rng.dirichlet(np.full(n_bins, 3.0))


def _drifting_column(rng, q, rows, missing=0.05):
    """Values from q, then from another distribution (the middle third), then from q again;
    ``missing`` of them -1."""
    other = rng.dirichlet(np.full(len(q), 1.0))
    third = rows // 3
    column = np.concatenate([
        rng.choice(len(q), size=third, p=q),
        rng.choice(len(q), size=third, p=other),
        rng.choice(len(q), size=rows - 2 * third, p=q),
    ])
    column[rng.random(rows) < missing] = -1
    return column


def _log_bayes_factor(counts, first_bin, a, q):
    """W of a run in closed form: the log Bayes factor of its values after the first, with
    ``counts`` of all its values (the first, in ``first_bin``, included)."""
    first = np.zeros(len(q))
    first[first_bin] = 1.0
    n = counts.sum()
    return float(gammaln(a + 1) - gammaln(a + n)
                 + np.sum(gammaln(a * q + counts) - gammaln(a * q + first))
                 - np.sum((counts - first) * np.log(q)))


def _closed_form_replay(column, q, strengths, threshold):
    """The detector's rules on one feature, W of each member from its run's counts in closed
    form: the score after every value, the alarms, the restarts (W <= 0)."""
    runs: list[tuple[np.ndarray, int] | None] = [None] * len(strengths)
    member_scores = [0.0] * len(strengths)
    scores, alarms, restarts = [], [], 0
    for index, b in enumerate(column):
        if b >= 0:
            alarm = False
            for member, a in enumerate(strengths):
                run = runs[member]
                if run is None:
                    counts = np.zeros(len(q))
                    counts[b] = 1.0
                    runs[member], member_scores[member] = (counts, b), 0.0
                    continue
                counts = run[0].copy()
                counts[b] += 1.0
                score = _log_bayes_factor(counts, run[1], a, q)
                if score <= 0:
                    runs[member], member_scores[member] = None, 0.0
                    restarts += 1
                else:
                    runs[member], member_scores[member] = (counts, run[1]), score
                    alarm = alarm or score >= threshold
            if alarm:
                alarms.append(index)
                runs = [None] * len(strengths)
                member_scores = [0.0] * len(strengths)
        scores.append(max(member_scores))
    return np.array(scores), alarms, restarts


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("strengths", [(1.0,), (30.0,), (100.0,), DEFAULT_PRIOR_STRENGTHS,
                                       (5.0, 100.0, 1000.0)])
def test_scores_equal_the_closed_form_at_every_value(strengths, compiled):
    rng = np.random.default_rng(len(strengths) * 1000 + int(sum(strengths)))
    bin_counts = [2, 8, 20, 50]  # padded to 50 in the detector
    baselines = [_baseline(rng, n) for n in bin_counts]
    rows = 3_000
    bins = np.column_stack([_drifting_column(rng, q, rows) for q in baselines])
    threshold = cusum_threshold(300, len(strengths))
    detector = MixtureCusum(baselines, strengths, threshold, compiled=compiled)

    scores = np.empty((rows, len(baselines)))
    alarms = []
    for row in range(rows):
        alarm_rows, alarm_features = detector.update(bins[row : row + 1])
        assert alarm_rows.tolist() == [0] * len(alarm_rows)
        alarms += [(row, int(feature)) for feature in alarm_features]
        scores[row] = detector.scores

    expected_alarms, restarts = [], 0
    for feature, q in enumerate(baselines):
        expected, feature_alarms, feature_restarts = _closed_form_replay(
            bins[:, feature], q, strengths, threshold)
        np.testing.assert_allclose(scores[:, feature], expected, rtol=0, atol=1e-9)
        expected_alarms += [(row, feature) for row in feature_alarms]
        restarts += feature_restarts
    assert alarms == sorted(expected_alarms)
    # Both ways of ending a run were taken.
    assert len(alarms) >= 4
    assert restarts > 100

    # One batch of all the rows: the same alarms, in row-major order.
    whole = MixtureCusum(baselines, strengths, threshold, compiled=compiled)
    alarm_rows, alarm_features = whole.update(bins)
    assert list(zip(alarm_rows.tolist(), alarm_features.tolist(), strict=True)) == alarms
    np.testing.assert_array_equal(whole.scores, scores[-1])


def test_compiled_kernel_and_numpy_loop_agree_bit_for_bit():
    # Both take the logarithm from libm (the numpy loop through math.log): equal, not close.
    rng = np.random.default_rng(5)
    baselines = [_baseline(rng, n) for n in (3, 12, 20, 40, 7, 25)]
    rows = 12_000
    bins = np.column_stack([_drifting_column(rng, q, rows, missing=0.1) for q in baselines])
    strengths = (10.0, 100.0, 400.0)
    threshold = cusum_threshold(200, len(strengths))
    compiled = MixtureCusum(baselines, strengths, threshold, compiled=True)
    fallback = MixtureCusum(baselines, strengths, threshold, compiled=False)
    assert compiled.compiled
    assert not fallback.compiled

    # Batches of every size from 0 rows up, so that batch edges fall everywhere.
    edges = np.cumsum(np.concatenate([[0, 0, 1, 1], rng.integers(0, 700, 60)]))
    edges = np.append(edges[edges < rows], rows)
    total_alarms = 0
    for start, stop in itertools.pairwise(edges):
        got = compiled.update(bins[start:stop])
        expected = fallback.update(bins[start:stop])
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(compiled.scores, fallback.scores)
        total_alarms += len(got[0])
    assert total_alarms >= 10


def test_numba_is_the_default_and_is_installed():
    # numba is a dev dependency: without it this fails (ImportError), it does not skip.
    detector = MixtureCusum([np.full(3, 1 / 3)], DEFAULT_PRIOR_STRENGTHS, 5.0, compiled=True)
    assert detector.compiled
    assert MixtureCusum([np.full(3, 1 / 3)], DEFAULT_PRIOR_STRENGTHS, 5.0).compiled


def test_importing_the_module_does_not_import_numba():
    code = ("import sys, streamdrift.sequential as s; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "s.MixtureCusum([[0.5, 0.5]], [100.0], 5.0, compiled=False).update([[0]]); "
            "assert 'numba' not in sys.modules, 'numba imported by the numpy loop'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _alarm_value_count(a, q, threshold):
    """How many values, all in one bin of probability q, bring a fresh member to W >= h:
    W after N such values is ln G(a + 1) - ln G(a + N) + ln G(aq + N) - ln G(aq + 1)
    - (N - 1) ln q, increasing in N."""
    n = 1
    while (gammaln(a + 1) - gammaln(a + n) + gammaln(a * q + n) - gammaln(a * q + 1)
           - (n - 1) * math.log(q)) < threshold:
        n += 1
    return n


@pytest.mark.parametrize("compiled", [True, False])
def test_a_strong_shift_alarms_after_the_closed_form_count_and_again_after_a_restart(compiled):
    q = np.full(8, 1 / 8)
    threshold = cusum_threshold(1_000_000, 1)
    n = _alarm_value_count(100.0, 1 / 8, threshold)
    assert n < 60  # every value in one bin of eight: a fast alarm even at arl0 = 10^6
    detector = MixtureCusum([q], [100.0], threshold, compiled=compiled)

    rows, features = detector.update(np.full((3 * n + 5, 1), 6))
    assert rows.tolist() == [n - 1, 2 * n - 1, 3 * n - 1]
    assert features.tolist() == [0, 0, 0]
    assert detector.scores[0] > 0  # five values into the next run


@pytest.mark.parametrize("compiled", [True, False])
def test_skipped_values_change_nothing(compiled):
    rng = np.random.default_rng(9)
    baselines = [_baseline(rng, n) for n in (4, 10, 30)]
    rows = 6_000
    values = np.column_stack([_drifting_column(rng, q, rows, missing=0) for q in baselines])
    threshold = cusum_threshold(500, 2)

    # The same values of each feature with -1 between them, at other places per feature.
    extra = 2_000
    gapped = np.full((rows + extra, len(baselines)), -1)
    for feature in range(len(baselines)):
        keep = np.sort(rng.choice(rows + extra, size=rows, replace=False))
        gapped[keep, feature] = values[:, feature]

    plain = MixtureCusum(baselines, DEFAULT_PRIOR_STRENGTHS, threshold, compiled=compiled)
    with_gaps = MixtureCusum(baselines, DEFAULT_PRIOR_STRENGTHS, threshold, compiled=compiled)
    plain_rows, plain_features = plain.update(values)
    gapped_rows, gapped_features = with_gaps.update(gapped)
    assert len(plain_rows) >= 3
    for feature in range(len(baselines)):
        # Each alarm's place among the feature's values (not among the rows).
        position = np.cumsum(gapped[:, feature] >= 0) - 1
        at = gapped_rows[gapped_features == feature]
        np.testing.assert_array_equal(position[at], plain_rows[plain_features == feature])
    np.testing.assert_array_equal(with_gaps.scores, plain.scores)

    before = with_gaps.scores
    assert with_gaps.update(np.full((50, len(baselines)), -1))[0].tolist() == []
    np.testing.assert_array_equal(with_gaps.scores, before)
    # And the state behind the scores too: both go on alike.
    tail = np.column_stack([_drifting_column(rng, q, 900, missing=0) for q in baselines])
    for got, expected in zip(with_gaps.update(tail), plain.update(tail), strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(with_gaps.scores, plain.scores)


@pytest.mark.parametrize("compiled", [True, False])
def test_an_alarm_restarts_every_member_of_its_feature_only(compiled):
    rng = np.random.default_rng(21)
    q = np.full(10, 0.1)
    shifted = np.array([0.3, 0.2, *[0.5 / 8] * 8])
    threshold = cusum_threshold(10_000, 2)
    rows = 400
    drifting = rng.choice(10, size=rows, p=shifted)
    steady = rng.choice(10, size=rows, p=q)
    bins = np.column_stack([drifting, steady])
    both = MixtureCusum([q, q], (20.0, 400.0), threshold, compiled=compiled)
    alarm_rows, alarm_features = both.update(bins)
    assert alarm_features.tolist()[:1] == [0]
    first = int(alarm_rows[0])

    # At that value only the weak member reached h; the strong one had a run of its own.
    strong = MixtureCusum([q], (400.0,), threshold, compiled=compiled)
    strong.update(bins[: first + 1, :1])
    assert 0 < strong.scores[0] < threshold

    # After the alarm the feature goes on as a fresh detector would: no member kept counts.
    fresh = MixtureCusum([q], (20.0, 400.0), threshold, compiled=compiled)
    fresh_rows, _ = fresh.update(bins[first + 1 :, :1])
    np.testing.assert_array_equal(alarm_rows[alarm_features == 0][1:], fresh_rows + first + 1)
    np.testing.assert_array_equal(both.scores[:1], fresh.scores)
    # The other feature was not touched by it.
    alone = MixtureCusum([q], (20.0, 400.0), threshold, compiled=compiled)
    alone_rows, _ = alone.update(bins[:, 1:])
    np.testing.assert_array_equal(alarm_rows[alarm_features == 1], alone_rows)
    np.testing.assert_array_equal(both.scores[1:], alone.scores)


def test_false_alarms_stay_under_the_bound_when_nothing_drifts():
    """values / arl0 alarms at most, by the e-detector bound, over 2 x 10^6 values drawn from
    the baseline itself (20 features x 100,000 values, B = 20, members a = 100 and 400).

    At arl0 = 2,000 the bound allows 1,000 alarms. The check fails above 1,154 alarms, a count
    that a Poisson law of mean 1,000 exceeds with probability under 10^-6: a detector whose
    rate sat at the bound would fail about once in a million runs.

    Measured: 5 alarms here (seed 2023); 112 in 10^8 values in a longer run of the same
    set-up (seed 99), one in 890,000 values, some 450 times rarer than the bound, which counts
    every past value as a possible start of a change while the CUSUM's runs end as soon as
    W <= 0. At arl0 = 10 (h = ln 20), where the bound allows 200,000: 436 here, and one in
    4,700 values over 10^8.
    """
    rng = np.random.default_rng(2023)
    features, rows, n_bins = 20, 100_000, 20
    baselines = [np.full(n_bins, 1 / n_bins), *(_baseline(rng, n_bins) for _ in range(19))]
    bins = np.column_stack([rng.choice(n_bins, size=rows, p=q) for q in baselines])
    values = features * rows
    for arl0 in (2_000, 10):
        detector = MixtureCusum(baselines, DEFAULT_PRIOR_STRENGTHS, cusum_threshold(arl0, 2))
        alarms = len(detector.update(bins)[0])
        bound = values / arl0
        allowed = int(bound)
        while pdtrc(allowed, bound) > 1e-6:  # P(Poisson(bound) > allowed)
            allowed += 1
        assert alarms <= allowed
        if arl0 == 10:
            assert alarms > 0  # a detector that never alarmed would pass the check above


def test_cusum_threshold():
    for arl0 in (1.5, 2_000.0, 1e6, 1e12):
        assert cusum_threshold(arl0, 2) == math.log(2 * arl0)
    assert math.isclose(math.exp(cusum_threshold(1e6, 3)) / 3, 1e6)
    for arl0 in (1.0, 0.5, -3.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="arl0"):
            cusum_threshold(arl0, 2)
    with pytest.raises(ValueError, match="members"):
        cusum_threshold(100.0, 0)


def test_state_and_attributes():
    q = np.full(4, 0.25)
    detector = MixtureCusum([q, np.full(2, 0.5)], [100, 400], 3.5)
    assert detector.threshold == 3.5
    assert detector.prior_strengths == (100.0, 400.0)
    assert detector.update(np.zeros((0, 2), dtype=np.int64))[0].tolist() == []
    detector.update(np.array([[0, 1]] * 10))
    scores = detector.scores
    assert (scores > 0).all()
    scores[:] = 99.0  # a copy
    assert (detector.scores < 99).all()
    detector.reset()
    assert detector.scores.tolist() == [0.0, 0.0]
    # After a reset a value starts a run again: the first increment is 0.
    detector.update(np.array([[0, 1]]))
    assert detector.scores.tolist() == [0.0, 0.0]
    # And from then on it is a fresh detector: nothing of before the reset is left.
    fresh = MixtureCusum([q, np.full(2, 0.5)], [100, 400], 3.5)
    fresh.update(np.array([[0, 1]]))
    rows = np.array([[0, 1], [1, 1], [0, 0], [0, 1], [2, 1], [0, 1]])
    assert detector.update(rows)[0].tolist() == fresh.update(rows)[0].tolist()
    np.testing.assert_array_equal(detector.scores, fresh.scores)
    # A threshold under 1 is a threshold too.
    assert MixtureCusum([q], [100.0], 0.5).threshold == 0.5
    # Without an alarm threshold within reach: never an alarm, W grows.
    endless = MixtureCusum([q], [100.0], math.inf)
    assert endless.update(np.zeros((5_000, 1), dtype=np.int64))[0].tolist() == []
    assert endless.scores[0] > 1_000


@pytest.mark.parametrize(("probabilities", "message"), [
    ([np.array([0.5, 0.6])], "sum to 1"),
    ([np.array([1.0, 0.0])], "above 0"),
    ([np.array([np.nan, 1.0])], "above 0"),
    ([np.array([])], "non-empty"),
    ([np.full((2, 2), 0.25)], "non-empty vector"),
])
def test_bad_probabilities_are_refused(probabilities, message):
    with pytest.raises(ValueError, match=message):
        MixtureCusum(probabilities, [100.0], 5.0)
    # The message names the feature.
    with pytest.raises(ValueError, match="of feature 1 "):
        MixtureCusum([np.full(2, 0.5), *probabilities], [100.0], 5.0)


def test_bad_strengths_and_thresholds_are_refused():
    q = [np.full(2, 0.5)]
    for strengths in ([], [0.0], [-1.0], [math.inf], [math.nan]):
        with pytest.raises(ValueError, match="prior_strengths"):
            MixtureCusum(q, strengths, 5.0)
    for threshold in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            MixtureCusum(q, [100.0], threshold)


@pytest.mark.parametrize("compiled", [True, False])
def test_bad_bins_are_refused_before_any_change(compiled):
    detector = MixtureCusum([np.full(3, 1 / 3), np.full(2, 0.5)], [100.0], 50.0,
                            compiled=compiled)
    detector.update(np.array([[0, 0]] * 5))
    before = detector.scores
    cases: list[tuple[np.ndarray, str]] = [
        (np.array([[0, 0], [0, 2]]), r"bin 2 of feature 1 at row 1 is outside -1\.\.1$"),
        (np.array([[-2, 0]]), "bin -2 of feature 0 at row 0"),
        (np.zeros((2, 3), dtype=np.int64), "shape"),
        (np.zeros(2, dtype=np.int64), "shape"),
        (np.zeros((2, 2)), "integers"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            detector.update(bad)
    np.testing.assert_array_equal(detector.scores, before)
    assert detector.update(np.array([[0, 0]]))[0].tolist() == []
