"""The sequential mixture CUSUM: a test on every value that raises an alarm soon after a
feature's distribution leaves its baseline, and rarely otherwise. Pure math.

For one feature with ``B`` bins and baseline probabilities ``q_i > 0`` (summing to 1), each
member ``m`` of the detector has a prior strength ``a`` and keeps the bin counts ``c_i``
(``n = sum c_i``) of the values of its current run and a score ``W``. A value in bin ``i``:

- starts a run when there is none (``n = 0``): it is counted and ``W`` stays 0;
- else adds ``ln((c_i + a q_i) / (n + a)) - ln q_i`` to ``W``, the log of the ratio of the
  value's Dirichlet-multinomial predictive probability (prior ``Dir(a q)``, updated with the
  run's counts) to its baseline probability. When ``W <= 0`` the run ends (``W = 0``, counts
  cleared, this value not counted): the data since the run began favours the baseline.
  Otherwise the value is counted.

A feature alarms at a value that brings any of its members to ``W >= h``; then all its
members end their runs. A bin index of -1 (a missing or invalid value) changes nothing.

Within a run that began with a value in bin ``j``, ``W`` is the log Bayes factor of the
later values of the run, ``N`` values in all, with counts ``C_i`` (the first included):
``W = ln G(a + 1) - ln G(a + N) + sum_i [ln G(a q_i + C_i) - ln G(a q_i + [i = j])]
- sum_i (C_i - [i = j]) ln q_i`` (``G`` is the gamma function). A weak prior (small ``a``)
tracks a large shift quickly; a strong one needs more values but pays less for its
flexibility on a small shift: members with a few strengths cover both.

False alarms. When the values are drawn from ``q``, ``exp(W)`` of a run that began at value
``s`` is the mixture likelihood ratio ``L_s`` of the values from ``s`` on (the first value's
predictive probability is ``q`` itself), a martingale of mean 1; it is one term of the
Shiryaev-Roberts statistic ``R = sum_s L_s``, for which ``R_t - t`` is a martingale. Summing
``R`` over ``M`` members and stopping at the first ``W >= h`` gives, by optional stopping,
``M E[T] >= e^h``: the average run length to a false alarm is at least ``e^h / M`` values
(an e-detector, Shin, Ramdas and Rinaldo 2023). ``cusum_threshold`` inverts it. The bound
is loose: drawn from ``q`` itself, values with members ``a`` = 100 and 400 and ``h`` for
an ``arl0`` of 2,000 gave one false alarm in about 900,000 (tests/test_sequential.py), since a
run ends as soon as ``W <= 0`` while the bound counts every past value as a possible start.

State layout: features are padded to the most bins of any feature, so the state is three
arrays, ``counts`` of shape (features, members, max_bins), and ``totals`` (``n``) and
``scores`` (``W``) of shape (features, members). The per-value loop is a numba kernel,
compiled on the first detector built; without numba (the ``fast`` extra) a numpy loop over
rows, vectorized across features and members, gives the same results bit for bit (both
take the logarithm from libm). The kernel lives in ``cusum_kernel``, apart: mutation
testing rewrites the functions of the modules it mutates into dispatchers that numba cannot
compile; this module's numpy loop is mutated instead, and a test holds the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from streamdrift.cusum_kernel import compiled_kernel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# As the baseline file allows: probabilities written with some rounding.
_PROBABILITY_SUM_TOLERANCE = 1e-6


def cusum_threshold(arl0: float, members: int) -> float:
    """The threshold ``h = ln(members * arl0)`` that keeps the average run length to a
    false alarm at ``arl0`` values or more (module docstring).

    >>> round(cusum_threshold(1_000_000, 2), 4)
    14.5087
    >>> round(math.exp(cusum_threshold(2_000, 2)) / 2, 9)  # e^h / members
    2000.0
    """
    if not arl0 > 1 or math.isinf(arl0):
        raise ValueError(f"arl0 must be a finite number above 1 (got {arl0!r})")
    if members < 1:
        raise ValueError(f"members must be at least 1 (got {members!r})")
    return math.log(members * arl0)


class MixtureCusum:
    """The mixture CUSUM of every feature, one member per prior strength.

    ``update`` takes a batch of bin indices, one row per message and one column per feature
    (-1 where a value is missing or invalid), and returns where features alarmed.

    >>> detector = MixtureCusum([np.full(4, 0.25)], prior_strengths=[100.0],
    ...                         threshold=cusum_threshold(1_000, 1))
    >>> rows, features = detector.update(np.zeros((100, 1), dtype=np.int64))
    >>> rows.tolist(), features.tolist()  # all in bin 0: an alarm every 26 values
    ([25, 51, 77], [0, 0, 0])
    >>> detector.scores.round(3).tolist()  # the 22 values since the last alarm
    [5.192]
    >>> rows, _ = detector.update(np.array([[-1], [1], [-1]]))  # -1: skipped
    >>> rows.tolist(), detector.scores.round(3).tolist()  # a value in bin 1 lowers W
    ([], [4.993])
    """

    def __init__(
        self,
        probabilities: Sequence[FloatArray],
        prior_strengths: Sequence[float],
        threshold: float,
        *,
        compiled: bool | None = None,
    ) -> None:
        """``compiled``: True needs numba, False takes the numpy loop, None (the default)
        numba when it can be imported."""
        baselines = [np.asarray(q, dtype=np.float64) for q in probabilities]
        for feature, q in enumerate(baselines):
            _check_probabilities(feature, q)
        strengths = tuple(float(a) for a in prior_strengths)
        if not strengths or not all(0 < a < math.inf for a in strengths):
            raise ValueError(
                f"prior_strengths must be one or more finite numbers above 0 (got {strengths!r})")
        if not threshold > 0:
            raise ValueError(f"threshold must be above 0 (got {threshold!r})")
        self._threshold = float(threshold)
        self._prior_strengths = strengths

        n_features, n_members = len(baselines), len(strengths)
        self._n_bins = np.array([len(q) for q in baselines], dtype=np.int64)
        max_bins = int(self._n_bins.max(initial=1))
        # Padding holds q = 1 so that no arithmetic on it could fail; bins are checked
        # against each feature's own count before they reach the kernel.
        self._q = np.ones((n_features, max_bins))
        for feature, q in enumerate(baselines):
            self._q[feature, : len(q)] = q
        self._strengths = np.array(strengths)
        self._prior_mass = self._strengths[None, :, None] * self._q[:, None, :]  # a q_i
        self._counts = np.zeros((n_features, n_members, max_bins), dtype=np.int64)
        self._totals = np.zeros((n_features, n_members), dtype=np.int64)
        self._scores = np.zeros((n_features, n_members))

        kernel: Callable[..., None] | None = None
        if compiled is None:
            try:
                kernel = compiled_kernel()
            except ImportError:
                kernel = None
        elif compiled:
            kernel = compiled_kernel()
        self._kernel = kernel if kernel is not None else _update_rows_numpy

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def prior_strengths(self) -> tuple[float, ...]:
        return self._prior_strengths

    @property
    def compiled(self) -> bool:
        """Whether the numba kernel runs the updates."""
        return self._kernel is not _update_rows_numpy

    @property
    def scores(self) -> FloatArray:
        """Every feature's score: the largest ``W`` of its members."""
        scores: FloatArray = self._scores.max(axis=1, initial=0.0)
        return scores

    def reset(self) -> None:
        """Ends every run: all features and members as if no value had come."""
        self._counts[...] = 0
        self._totals[...] = 0
        self._scores[...] = 0.0

    def update(self, bins: IntArray) -> tuple[IntArray, IntArray]:
        """Processes the rows of ``bins`` in order; returns the row and the feature of every
        alarm, in the order they happened (row by row, features in order within a row).

        ``bins[r, f]`` is the bin of row ``r``'s value of feature ``f`` (0 to ``B_f - 1``), or
        -1 to skip it. A bin out of range raises ``ValueError`` before any state changes.
        """
        values = np.asarray(bins)
        n_features = len(self._n_bins)
        if values.ndim != 2 or values.shape[1] != n_features:
            raise ValueError(f"bins must have shape (rows, {n_features}) "
                             f"(got {values.shape})")
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"bins must be integers (got {values.dtype})")
        values = np.ascontiguousarray(values, dtype=np.int64)
        if values.size:
            out_of_range = (values < -1) | (values >= self._n_bins)
            if out_of_range.any():
                row, feature = (int(i[0]) for i in np.nonzero(out_of_range))
                raise ValueError(
                    f"bin {int(values[row, feature])} of feature {feature} at row {row} is "
                    f"outside -1..{int(self._n_bins[feature]) - 1}")
        alarms = np.zeros(values.shape, dtype=np.bool_)
        self._kernel(values, self._counts, self._totals, self._scores, self._prior_mass,
                     self._q, self._strengths, self._n_bins, self._threshold, alarms)
        rows, features = np.nonzero(alarms)
        return rows.astype(np.int64), features.astype(np.int64)


def _check_probabilities(feature: int, q: FloatArray) -> None:
    if q.ndim != 1 or len(q) == 0:
        raise ValueError(f"probabilities of feature {feature} must be a non-empty vector "
                         f"(got shape {q.shape})")
    if not (np.isfinite(q).all() and (q > 0).all()):
        raise ValueError(f"probabilities of feature {feature} must be finite and above 0")
    total = math.fsum(q.tolist())
    if abs(total - 1.0) > _PROBABILITY_SUM_TOLERANCE:
        raise ValueError(f"probabilities of feature {feature} must sum to 1 (got {total!r})")


def _update_rows_numpy(
    bins: IntArray, counts: IntArray, totals: IntArray, scores: FloatArray,
    prior_mass: FloatArray, q: FloatArray, strengths: FloatArray, n_bins: IntArray,
    threshold: float, alarms: npt.NDArray[np.bool_],
) -> None:
    """``cusum_kernel.update_rows`` without numba: a Python loop over rows, each row one step of all
    (feature, member) pairs at once. ``n_bins`` is not needed: padded counts stay zero."""
    n_features, n_members, max_bins = counts.shape
    # Flat views: a pair p = feature * members + member; writes go to the state arrays.
    pair_counts = counts.reshape(n_features * n_members, max_bins)
    flat_counts, flat_prior_mass, flat_q = counts.reshape(-1), prior_mass.reshape(-1), q.reshape(-1)
    pair_totals, pair_scores = totals.reshape(-1), scores.reshape(-1)
    pair_feature = np.repeat(np.arange(n_features), n_members)
    pair_strength = np.tile(strengths, n_features)
    pair_start = np.arange(n_features * n_members) * max_bins  # of the pair's counts
    q_start = pair_feature * max_bins  # of the pair's feature's q
    for row, row_bins in enumerate(bins):
        b = row_bins[pair_feature]
        valid = b >= 0
        running = pair_totals > 0
        starting = np.flatnonzero(valid & ~running)
        flat_counts[pair_start[starting] + b[starting]] = 1
        pair_totals[starting] = 1
        stepping = np.flatnonzero(valid & running)
        if len(stepping) == 0:
            continue
        b = b[stepping]
        slot = pair_start[stepping] + b
        ratio = ((flat_counts[slot] + flat_prior_mass[slot])
                 / ((pair_totals[stepping] + pair_strength[stepping])
                    * flat_q[q_start[stepping] + b]))
        # libm's log, as the compiled kernel: numpy's SIMD log differs from it in the last bit
        # for about 1 % of arguments, enough to split the two at a score near 0 or h.
        logs = np.fromiter(map(math.log, ratio.tolist()), dtype=np.float64, count=len(ratio))
        new_scores = pair_scores[stepping] + logs
        ended = new_scores <= 0.0
        if ended.any():
            kept = ~ended
            pair_counts[stepping[ended]] = 0
            pair_totals[stepping[ended]] = 0
            pair_scores[stepping[ended]] = 0.0
            stepping, slot, new_scores = stepping[kept], slot[kept], new_scores[kept]
        pair_scores[stepping] = new_scores
        pair_totals[stepping] += 1
        flat_counts[slot] += 1
        alarmed = stepping[new_scores >= threshold]
        if len(alarmed):
            features = np.unique(pair_feature[alarmed])
            alarms[row, features] = True
            counts[features] = 0
            totals[features] = 0
            scores[features] = 0.0
