"""The decision, calibrated: seeded simulations with no drift at every window size (the share
of feature evaluations flagged stays under 0.5 %), and with drift (it is still found).

A model of ten features of the kinds teams have: continuous, skewed, heavy-tailed,
integer-valued with few values, categorical with 3 to 60 categories. The reference holds
50,000 rows; the defaults decide (threshold 0.1, alpha 0.001, min_samples auto).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from streamdrift.baseline import build_baseline
from streamdrift.config import Config, parse_config
from streamdrift.features import FeatureColumn
from streamdrift.monitor import DriftMonitor, DriftReport, compare_columns

REFERENCE_ROWS = 50_000
WINDOW_SIZES = (50, 100, 150, 300, 1_000, 10_000)
BIN_COUNTS = (5, 20, 50)
# Share of no-drift feature evaluations that may be flagged.
MAX_FALSE_FLAGS = 0.005

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def _categories(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    weights = np.random.default_rng(seed).dirichlet(np.ones(count) * 0.7)
    return [f"c{index}" for index in range(count)], weights


def _categorical(count: int, seed: int) -> Sampler:
    names, weights = _categories(count, seed)

    def sample(rng: np.random.Generator, size: int) -> np.ndarray:
        return np.array(names, dtype=object)[rng.choice(count, size=size, p=weights)]
    return sample


FEATURES: dict[str, tuple[str, Sampler]] = {
    "normal": ("numeric", lambda rng, size: rng.normal(0.0, 1.0, size)),
    "skewed": ("numeric", lambda rng, size: rng.lognormal(3.0, 0.8, size)),
    "heavy_tailed": ("numeric", lambda rng, size: rng.standard_t(1.5, size)),
    "uniform": ("numeric", lambda rng, size: rng.uniform(-5.0, 5.0, size)),
    "counts": ("numeric", lambda rng, size: rng.poisson(2.0, size).astype(np.float64)),
    "score": ("numeric", lambda rng, size: rng.binomial(4, 0.3, size).astype(np.float64)),
    "flag": ("categorical", _categorical(3, 1)),
    "channel": ("categorical", _categorical(8, 2)),
    "region": ("categorical", _categorical(20, 3)),
    "sku": ("categorical", _categorical(60, 4)),
}


def _config(bins: int, window: int = 1_000) -> Config:
    features = [{"name": name, "type": kind} for name, (kind, _) in FEATURES.items()]
    return parse_config({"features": features, "baseline": {"bins": bins},
                         "window": {"size": window, "panes": 10}}, Path.cwd(), environ={})


def _columns(rng: np.random.Generator, size: int, shift: dict[str, float] | None = None
             ) -> dict[str, FeatureColumn]:
    columns = {}
    for name, (_, sample) in FEATURES.items():
        values = sample(rng, size)
        if shift and name in shift:
            values = values + shift[name]
        columns[name] = FeatureColumn(values, np.zeros(size, dtype=np.int8))
    return columns


def _flags(reports: list[DriftReport]) -> tuple[int, int]:
    """(feature evaluations, of which flagged); insufficient data is not an evaluation."""
    evaluated = flagged = 0
    for report in reports:
        for feature in report.features.values():
            if feature.status != "insufficient_data":
                evaluated += 1
                flagged += feature.drift
    return evaluated, flagged


@pytest.mark.slow
@pytest.mark.parametrize("bins", BIN_COUNTS)
def test_without_drift_compare_flags_almost_nothing_at_any_size(bins):
    config = _config(bins)
    rng = np.random.default_rng(bins)
    reference = _columns(rng, REFERENCE_ROWS)
    for size in WINDOW_SIZES:
        draws = 40 if size < 10_000 else 15
        reports = [compare_columns(config, reference, _columns(rng, size))
                   for _ in range(draws)]
        evaluated, flagged = _flags(reports)
        # Every feature of a model, over every draw; insufficient data counts as unflagged.
        total = draws * len(FEATURES)
        assert flagged <= MAX_FALSE_FLAGS * total, (size, flagged, total)
        if size >= 1_000:
            assert evaluated == total, (size, evaluated)  # every feature evaluated


@pytest.mark.slow
@pytest.mark.parametrize("bins", BIN_COUNTS)
def test_without_drift_replay_flags_almost_nothing_at_any_pane(bins):
    """A stream of JSON messages through the windows replay and the service use, the report
    taken at every pane close, windows of every size."""
    rng = np.random.default_rng(100 + bins)
    reference = _columns(rng, REFERENCE_ROWS)
    specs = _config(bins).features
    baseline = build_baseline(specs, reference, dict.fromkeys(FEATURES, bins), 50, 0.5, "ref")
    for size in WINDOW_SIZES:
        monitor = DriftMonitor(_config(bins, size), baseline)
        pane = size // 10
        panes = 60 if size < 10_000 else 20
        stream = _columns(rng, pane * panes)
        rows = [{name: stream[name].values[i] for name in FEATURES}
                for i in range(pane * panes)]
        payloads = [json.dumps(row).encode() for row in rows]
        reports = []
        for start in range(0, len(payloads), pane):
            monitor.process_payloads(payloads[start:start + pane])
            reports.append(monitor.report())
        _, flagged = _flags(reports)
        total = len(reports) * len(FEATURES)
        assert flagged <= MAX_FALSE_FLAGS * total, (size, flagged, total)
        assert reports[-1].window_messages == size


@pytest.mark.slow
def test_a_shift_of_0_6_sd_is_found_at_1000_values_and_nothing_else_is():
    config = _config(20)
    rng = np.random.default_rng(7)
    reference = _columns(rng, REFERENCE_ROWS)
    for _ in range(20):
        report = compare_columns(config, reference,
                                 _columns(rng, 1_000, shift={"normal": 0.6}))
        assert report.drifted == ["normal"]
