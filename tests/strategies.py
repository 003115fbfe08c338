"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chi2, chi2_contingency, entropy


@st.composite
def probability_vectors(draw: st.DrawFn, n_bins: int) -> np.ndarray:
    """Baseline-like probabilities: all > 0, summing to 1, some very small."""
    weights = draw(hnp.arrays(np.float64, n_bins,
                              elements=st.floats(1e-6, 1e3, allow_nan=False)))
    return weights / weights.sum()


@st.composite
def count_vectors(draw: st.DrawFn, n_bins: int, huge: bool = True) -> np.ndarray:
    """Window-like counts: empty bins, small counts and (optionally) huge ones."""
    top = 10**12 if huge else 10**4
    elements = st.one_of(st.just(0), st.integers(0, 5), st.integers(0, top))
    return draw(hnp.arrays(np.int64, n_bins, elements=elements))


@st.composite
def histograms_against_baseline(draw: st.DrawFn, max_features: int = 4):
    """Several features' (counts, probabilities) pairs, bin counts from 1 to 40."""
    n_features = draw(st.integers(1, max_features))
    pairs = []
    for _ in range(n_features):
        n_bins = draw(st.integers(1, 40))
        pairs.append((draw(count_vectors(n_bins)), draw(probability_vectors(n_bins))))
    return pairs


def js_oracle(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats from scipy's entropy. (scipy's ``jensenshannon`` is
    its square root and takes the root of a rounding-negative value when P equals Q.)"""
    m = (np.asarray(p) + np.asarray(q)) / 2
    return float(entropy(p, m) / 2 + entropy(q, m) / 2)


def pooled_table(window, reference, min_expected: float = 5.0) -> list[list[float]]:
    """The 2 x k table the two-sample test runs on, built column by column as the
    divergence module documents it: columns empty in both rows dropped, columns whose
    expected count in the smaller row is under ``min_expected`` pooled into one, and that
    one, if still under, added to the thinnest other column."""
    n, m = float(sum(window)), float(sum(reference))
    share = min(n, m) / max(n + m, 1.0)
    kept, pooled = [], [0.0, 0.0]
    for c, b in zip(window, reference, strict=True):
        if c + b == 0:
            continue
        if (c + b) * share < min_expected:
            pooled = [pooled[0] + c, pooled[1] + b]
        else:
            kept.append([float(c), float(b)])
    if sum(pooled) > 0:
        if sum(pooled) * share < min_expected and kept:
            thinnest = min(range(len(kept)), key=lambda j: (sum(kept[j]), j))
            kept[thinnest] = [kept[thinnest][0] + pooled[0], kept[thinnest][1] + pooled[1]]
        else:
            kept.append(pooled)
    return [[c for c, _ in kept], [b for _, b in kept]]


def two_sample_oracle(window, reference) -> tuple[float, int, float]:
    """(G, degrees of freedom, p-value) of the two-sample test: G from scipy's
    ``chi2_contingency`` on the pooled table, the p-value with Williams' correction."""
    if sum(window) == 0 or sum(reference) == 0:
        return 0.0, 0, 1.0  # nothing to compare
    table = pooled_table(window, reference)
    columns = len(table[0])
    if columns < 2 or sum(table[0]) == 0 or sum(table[1]) == 0:
        return 0.0, max(columns - 1, 0), 1.0
    g = float(chi2_contingency(table, correction=False, lambda_="log-likelihood").statistic)
    n, m = sum(table[0]), sum(table[1])
    total = n + m
    inverse_columns = sum(1.0 / (c + b) for c, b in zip(*table, strict=True))
    q = 1 + (total * inverse_columns - 1) * (total * (1 / n + 1 / m) - 1) / (
        6 * total * (columns - 1))
    return g, columns - 1, float(chi2.sf(g / q, columns - 1))


def holm_oracle(p_values: dict[str, float], alpha: float) -> set[str]:
    """The hypotheses Holm's procedure rejects at ``alpha``, step by step."""
    ordered = sorted(p_values, key=lambda name: p_values[name])
    rejected = set()
    for rank, name in enumerate(ordered):
        if p_values[name] > alpha / (len(ordered) - rank):
            break
        rejected.add(name)
    return rejected
