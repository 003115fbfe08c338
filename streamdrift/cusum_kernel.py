"""The per-value loop of the sequential mixture CUSUM (``streamdrift.sequential``), for
numba to compile. Pure math.

It sits in a module of its own because mutation testing rewrites every function of the
modules it mutates into a dispatcher, which numba cannot compile: this module is left out
of it, and ``sequential._update_rows_numpy``, which is mutated, is held equal to it value
for value by tests/test_sequential.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def update_rows(
    bins: IntArray, counts: IntArray, totals: IntArray, scores: FloatArray,
    prior_mass: FloatArray, q: FloatArray, strengths: FloatArray, n_bins: IntArray,
    threshold: float, alarms: npt.NDArray[np.bool_],
) -> None:  # pragma: no cover - runs compiled, where coverage does not see it
    """The rules of ``streamdrift.sequential``, value by value; numba compiles this function.

    The increment is written ``ln((c_i + a q_i) / ((n + a) q_i))``: one logarithm instead of
    two, the same arithmetic, in the same order, as ``sequential._update_rows_numpy``.
    """
    n_rows, n_features = bins.shape
    n_members = strengths.shape[0]
    for row in range(n_rows):
        for feature in range(n_features):
            b = bins[row, feature]
            if b < 0:
                continue
            alarm = False
            for member in range(n_members):
                n = totals[feature, member]
                if n == 0:
                    counts[feature, member, b] = 1
                    totals[feature, member] = 1
                    continue
                score = scores[feature, member] + math.log(
                    (counts[feature, member, b] + prior_mass[feature, member, b])
                    / ((n + strengths[member]) * q[feature, b]))
                if score <= 0.0:
                    scores[feature, member] = 0.0
                    totals[feature, member] = 0
                    for i in range(n_bins[feature]):
                        counts[feature, member, i] = 0
                else:
                    scores[feature, member] = score
                    totals[feature, member] = n + 1
                    counts[feature, member, b] += 1
                    if score >= threshold:
                        alarm = True
            if alarm:
                alarms[row, feature] = True
                for member in range(n_members):
                    scores[feature, member] = 0.0
                    totals[feature, member] = 0
                    for i in range(n_bins[feature]):
                        counts[feature, member, i] = 0


_KERNEL_SIGNATURE = (
    "void(int64[:, ::1], int64[:, :, ::1], int64[:, ::1], float64[:, ::1], "
    "float64[:, :, ::1], float64[:, ::1], float64[::1], int64[::1], float64, boolean[:, ::1])"
)


@functools.cache
def compiled_kernel() -> Callable[..., None]:
    """``update_rows`` compiled by numba, once per process (about a second); numba is
    imported here, not with the module, which would take a quarter of a second. No
    ``cache=True``: the container's file system is read-only."""
    import numba

    kernel: Callable[..., None] = numba.njit(_KERNEL_SIGNATURE, nogil=True)(update_rows)
    return kernel
