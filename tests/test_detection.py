"""The detectors through DriftMonitor: their false alarms stay under the rates they state,
and they flag a change soon after it starts (seeded simulations, no timing), and
benchmarks/detection.py, which measures both, runs and writes only its own section.

The window rule's own false flags are held by tests/test_calibration.py.
"""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import poisson

from benchmarks import detection
from streamdrift.config import parse_config
from streamdrift.features import FeatureColumn
from streamdrift.monitor import DriftMonitor, reference_baseline
from streamdrift.scan import scale_level, scan_scales

REFERENCE_VALUES = 50_000
# A detector exactly at its stated rate passes a test of its false alarms with at most this
# probability (``_limit``).
PASS_AT_THE_BOUND = 0.001


def _column(values: np.ndarray) -> FeatureColumn:
    return FeatureColumn(values, np.zeros(len(values), dtype=np.int8))


def _null_alarms(sections: dict, size: int, messages: int, laws: list[tuple[str, str]],
                 seed: int) -> tuple[list[int], list[int]]:
    """Scan and sequential alarms per feature over ``messages`` messages without change, one
    feature per (name, type) of ``laws`` (normal or 5 categories), each with a reference of
    its own."""
    config = parse_config({"features": [{"name": name, "type": kind} for name, kind in laws],
                           "window": {"size": size, "panes": 10}, **sections},
                          Path.cwd(), environ={})
    samplers = {"numeric": detection._normal(0.0),
                "categorical": detection._categorical(detection.BASE_WEIGHTS)}
    rng = np.random.default_rng(seed)
    baseline = reference_baseline(config, {
        name: _column(samplers[kind](rng, REFERENCE_VALUES)) for name, kind in laws})
    monitor = DriftMonitor(config, baseline)
    for _ in range(0, messages, 20_000):
        monitor.process_columns([_column(samplers[kind](rng, 20_000)) for _, kind in laws])
    features = monitor.report().features.values()
    return ([f.scan_alarms_total for f in features],
            [f.sequential_alarms_total for f in features])


def _limit(mean: float) -> int:
    """The largest count that a Poisson count of mean ``mean`` (the count expected at the
    stated rate) stays at or under with probability at most PASS_AT_THE_BOUND: a detector at
    its stated rate fails a test ``count <= limit`` with probability 0.999 or more, so a
    pass says its rate is under the one stated."""
    k = int(poisson.ppf(PASS_AT_THE_BOUND, mean))
    return k if poisson.cdf(k, mean) <= PASS_AT_THE_BOUND else k - 1


LAWS = [(f"normal_{i}", "numeric") for i in range(5)] + \
    [(f"categories_{i}", "categorical") for i in range(5)]


def test_the_scan_stays_under_its_stated_false_alarm_rate():
    """1,000 false alarms per 10^6 messages stated, panes of 200 messages (a window of
    2,000 in 10): each scale is tested at 1000 * 200 / 10^6 / 5 scales / 2 = 0.02.
    10 features (5 normal with 20 bins, 5 of 5 categories, the smallest 8 %) x 100,000
    messages = 10^6 feature-messages: 1,000 alarms expected at the bound. The limit is 903:
    P(Poisson(1000) <= 903) = 0.00098, so a scan exactly at its bound would fail with
    probability 0.999. Measured: 241 (the union bound over the scales and the tail factor
    of 2 leave slack). Every scale holds at least 10 values per bin here (the smallest
    category 16)."""
    assert scale_level(1000.0, 200, len(scan_scales(10))) == pytest.approx(0.02)
    scan, _ = _null_alarms({"scan": {"false_alarms_per_million": 1000.0},
                            "detector": {"method": "none"}}, 2_000, 100_000, LAWS, seed=11)
    bound = 1000.0 / 1e6 * 100_000 * len(LAWS)
    assert bound == 1000.0
    assert _limit(bound) == 903
    assert sum(scan) <= _limit(bound), scan
    # Not silent either: the union bound is loose, but not by orders of magnitude.
    assert sum(scan) >= 100, scan
    # Each kind of feature on its own: 500 expected at the bound, limit 431
    # (P(Poisson(500) <= 431) = 0.00087).
    for kind in ("numeric", "categorical"):
        alarms = sum(n for n, (_, law) in zip(scan, LAWS, strict=True) if law == kind)
        assert alarms <= _limit(bound / 2), (kind, alarms)


def test_the_scan_stays_under_its_stated_rate_with_panes_of_five_values_per_bin():
    """A window of 1,000 in 10 panes, 20 equal-frequency bins: one pane holds 100 values, 5
    per bin, where the G-test's pooling of columns under 5 expected values follows the
    window's own counts (every bin on that edge at once) and rejects 13 to 24 times as often
    as its level; the scan tests a scale from 10 values per bin (``VALUES_PER_BIN``), so from
    two panes here. 10 false alarms per 10^6 stated (each scale at 10^-4), 20 normal
    features x 200,000 messages = 4 x 10^6 feature-messages: 40 expected at the bound. Too
    few for the power of the test above; the limit here is the bound's own count, 40, which
    a scan with the slack measured above (a quarter to a half of the bound: 10 to 20
    expected) stays under with probability 0.999 or more (P(Poisson(20) > 40) = 0.00003).
    Measured: 2; when the scan tested the one-pane scale (before a88a485), 69."""
    laws = [(f"normal_{i}", "numeric") for i in range(20)]
    scan, _ = _null_alarms({"scan": {"false_alarms_per_million": 10.0},
                            "detector": {"method": "none"}}, 1_000, 200_000, laws, seed=12)
    bound = 10.0 / 1e6 * 200_000 * len(laws)
    assert bound == 40
    assert sum(scan) <= bound, scan
    assert sum(scan) > 0, scan  # the two-pane scale and up are tested


def test_the_sequential_test_stays_under_its_stated_false_alarm_rate():
    """arl0 2,000: at most one false alarm per 2,000 values of a feature (the e-detector
    bound, streamdrift/sequential.py). 10 features x 100,000 messages = 10^6 values: 500
    alarms expected at the bound, limit 431 (P(Poisson(500) <= 431) = 0.00087: a test at the
    bound would fail with probability 0.999). The bound is loose: about one alarm in 900,000
    values (tests/test_sequential.py); measured here: 1."""
    _, sequential = _null_alarms({"scan": {"enabled": False},
                                  "detector": {"method": "mixture_cusum",
                                               "params": {"arl0": 2000}}},
                                 5_000, 100_000, LAWS, seed=13)
    bound = 1e6 / 2000
    assert _limit(bound) == 431
    assert sum(sequential) <= _limit(bound), sequential
    assert sum(sequential) <= 10, sequential  # the bound's slack, as measured without a monitor


@pytest.fixture(scope="module")
def one_sd_delays() -> dict[str, detection.Delays]:
    """50 seeds of a normal feature shifted by 1 sd, window 5,000 in 10 panes, a reference of
    50,000 per seed: the change starts after 25,000 values plus an offset drawn uniformly
    from one pane (0 to 499), so the onset falls anywhere within a pane; the delay is the
    changed values read when the first flag was raised. The first 50 seeds of
    benchmarks/detection.py's table."""
    case = detection.CASES[2]
    assert case.label == "normal, +1 sd"
    return detection.run_delays(case, 2, seeds=50, sets=("default", "sequential"))


@pytest.mark.parametrize(("detectors", "most", "first_by"), [
    ("default", 500, "scan"),          # window and scan: within 500 values of the onset
    ("sequential", 150, "sequential"),  # and mixture_cusum: within 150
])
def test_a_one_sd_shift_is_flagged_within_the_stated_delay(one_sd_delays, detectors, most,
                                                          first_by):
    found = one_sd_delays[detectors]
    assert found.early == 0
    assert found.missed == 0
    assert len(found.delays) == 50
    assert found.quantile(0.5) <= most, sorted(found.delays)
    assert min(found.delays) > 0
    assert found.first_by.get(first_by, 0) > 25


def test_the_sequential_test_reads_json_messages_with_a_categorical_feature_first():
    """The typed JSON decoder's rows hold the numeric features first; the sequential test
    reads them in config order all the same (before a88a485 it was handed other features'
    bins and raised ValueError)."""
    config = parse_config({"features": [{"name": "c", "type": "categorical"}, {"name": "x"}],
                           "window": {"size": 1_000, "panes": 10},
                           "detector": {"method": "mixture_cusum"}}, Path.cwd(), environ={})
    rng = np.random.default_rng(14)
    categories = np.array(["a", "b", "c"], dtype=object)
    baseline = reference_baseline(config, {
        "c": _column(categories[rng.integers(0, 3, 5_000)]),
        "x": _column(rng.normal(size=5_000))})
    # Both features change at once: "a" three times as often, x shifted by 1.5 sd.
    chosen = categories[rng.choice(3, size=600, p=[0.6, 0.2, 0.2])]
    values = rng.normal(1.5, 1.0, size=600)
    by_columns = DriftMonitor(config, baseline)
    by_columns.process_columns([_column(chosen), _column(values)])
    by_payloads = DriftMonitor(config, baseline)
    by_payloads.process_payloads([json.dumps({"c": c, "x": float(x)}).encode()
                                  for c, x in zip(chosen, values, strict=True)])
    for name in ("c", "x"):
        expected = by_columns.report().features[name]
        got = by_payloads.report().features[name]
        assert expected.sequential_alarms_total > 0, name
        assert got.sequential_alarms_total == expected.sequential_alarms_total, name
        assert got.first_flag_messages == expected.first_flag_messages, name
        assert got.sequential_score == expected.sequential_score, name


def test_the_benchmark_writes_only_its_section(tmp_path, monkeypatch, capsys):
    """``--quick --write`` on a RESULTS.md that has a detection section: the section is
    replaced, the rest is left as it was."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n\n## Detection: delays and false alarms\n\n"
                       f"{detection.DETECTION_START}\nold\n{detection.DETECTION_END}\n\n"
                       "## Soak\n\nkept\n", encoding="utf-8")
    monkeypatch.setattr(detection, "RESULTS", results)
    monkeypatch.setattr(detection, "REPO", tmp_path)
    assert detection.main(["--quick", "--write"]) == 0
    printed = capsys.readouterr().out
    assert "| window | detector | alarms |" in printed
    text = results.read_text(encoding="utf-8")
    assert "\nold\n" not in text
    assert text.startswith("# results\n\n## Detection: delays and false alarms\n\n"
                           f"{detection.DETECTION_START}\nGenerated by `python -m "
                           "benchmarks.detection --quick --write`")
    assert text.endswith(f"{detection.DETECTION_END}\n\n## Soak\n\nkept\n")
    assert text.count(detection.DETECTION_START) == 1
    for case in detection.CASES:
        assert case.label in text


def test_the_benchmark_s_examples():
    """benchmarks/ is not among the doctest paths: its examples run here."""
    assert doctest.testmod(detection).failed == 0
