"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import entropy


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
