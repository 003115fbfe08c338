"""The exposition, read from a fresh registry per test (client_python's own habit)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamdrift.baseline import Baseline, build_baseline, parse_baseline
from streamdrift.config import Config, parse_config
from streamdrift.exporter import DriftCollector, ServiceStatus, Snapshot, make_registry
from streamdrift.features import categorical_column, numeric_column
from streamdrift.monitor import DriftMonitor
from tests.metric_contract import contract_violations


def _monitor() -> tuple[Config, Baseline, DriftMonitor]:
    config = parse_config({"features": [{"name": "x"}, {"name": "c", "type": "categorical"}],
                           "window": {"size": 100, "panes": 4},
                           "divergence": {"min_samples": 10}}, Path.cwd(), environ={})
    rng = np.random.default_rng(0)
    baseline = build_baseline(
        config.features,
        {"x": numeric_column(rng.normal(size=500).tolist()),
         "c": categorical_column(rng.choice(["a", "b"], 500).tolist())},
        {"x": 5, "c": 5}, 10, 0.5, "test")
    return config, baseline, DriftMonitor(config, baseline)


def _samples(collector: DriftCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(make_registry(collector)).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_series_exists_before_the_first_message():
    _, baseline, monitor = _monitor()
    samples = _samples(DriftCollector(Snapshot(monitor.report(), baseline, ServiceStatus())))
    for feature in ("x", "c"):
        labels = frozenset({("feature", feature)})
        assert math.isnan(samples[("streamdrift_kl_divergence", labels)])
        assert samples[("streamdrift_window_samples", labels)] == 0
        assert samples[("streamdrift_drift_threshold", labels)] == 0.1
        assert samples[("streamdrift_feature_drifted", labels)] == 0
        assert samples[("streamdrift_unseen_categories_total", labels)] == 0
    for reason in ("empty", "oversized", "not_json", "not_object", "bad_timestamp"):
        assert samples[("streamdrift_invalid_messages_total",
                        frozenset({("reason", reason)}))] == 0
    assert samples[("streamdrift_kafka_connected", frozenset())] == 0
    assert samples[("streamdrift_ready", frozenset())] == 0
    info = [key for key in samples if key[0] == "streamdrift_baseline_info"]
    assert dict(info[0][1])["hash"] == baseline.content_hash()


def test_gauges_follow_the_report_and_bins_merge_like_the_window():
    _, baseline, monitor = _monitor()
    monitor.process_payloads([b'{"x": 0.1, "c": "a"}'] * 30 + [b'{"x": 9, "c": "zz"}'] * 30
                             + [b"oops"])
    report = monitor.report()
    status = ServiceStatus(connected=True, assigned=(("t", 0),), lag={("t", 0): 7})
    samples = _samples(DriftCollector(Snapshot(report, baseline, status)))
    x = frozenset({("feature", "x")})
    assert samples[("streamdrift_kl_divergence", x)] == report.features["x"].kl
    assert samples[("streamdrift_feature_drifted", x)] == 1
    assert samples[("streamdrift_out_of_range_total", x)] == 30
    assert samples[("streamdrift_unseen_categories_total", frozenset({("feature", "c")}))] == 30
    assert samples[("streamdrift_messages_total", frozenset())] == 61
    assert samples[("streamdrift_invalid_messages_total",
                    frozenset({("reason", "not_json")}))] == 1
    assert samples[("streamdrift_consumer_lag",
                    frozenset({("topic", "t"), ("partition", "0")}))] == 7
    assert samples[("streamdrift_ready", frozenset())] == 1
    probabilities = [samples[("streamdrift_baseline_probability",
                              frozenset({("feature", "x"), ("bin", str(i))}))]
                     for i in range(baseline["x"].n_bins)]
    assert probabilities == baseline["x"].probabilities.tolist()


def _bin_totals(samples: dict, feature: str, n_bins: int) -> list[float]:
    return [samples[("streamdrift_bin_total", frozenset({("feature", feature),
                                                         ("bin", str(i))}))]
            for i in range(n_bins)]


def test_bin_totals_count_every_value_since_start_not_the_window():
    _, baseline, monitor = _monitor()
    rng = np.random.default_rng(3)
    xs = rng.normal(0.5, 1.5, 450)
    cs = rng.choice(["a", "b", "c"], 450)
    payloads = [json.dumps({"x": float(x), "c": str(c)}).encode()
                for x, c in zip(xs, cs, strict=True)]
    for start in range(0, 450, 40):
        monitor.process_payloads(payloads[start:start + 40])
    report = monitor.report()
    assert report.window_messages < 450, "the window never slid: nothing tested"
    samples = _samples(DriftCollector(Snapshot(report, baseline, ServiceStatus())))
    # The oracle: each value's bin straight from the baseline's edges and categories.
    x_bins = np.searchsorted(baseline["x"].edges, xs, side="right")
    categories = list(baseline["c"].categories)
    c_bins = [categories.index(c) if c in categories else len(categories) for c in cs]
    assert _bin_totals(samples, "x", baseline["x"].n_bins) == \
        np.bincount(x_bins, minlength=baseline["x"].n_bins).tolist()
    assert _bin_totals(samples, "c", baseline["c"].n_bins) == \
        np.bincount(c_bins, minlength=baseline["c"].n_bins).tolist()


def test_the_exposition_keeps_the_documented_metric_contract():
    _, baseline, monitor = _monitor()
    monitor.process_payloads([b'{"x": 0.1, "c": "a"}'] * 30 + [b"oops"],
                             partitions=[(("t", 0), 0)])
    status = ServiceStatus(connected=True, assigned=(("t", 0),), lag={("t", 0): 7},
                           last_message_timestamp_s=1.7e9)
    text = generate_latest(make_registry(
        DriftCollector(Snapshot(monitor.report(), baseline, status)))).decode()
    assert contract_violations(text) == []
    # The check itself catches what it is there for.
    assert contract_violations(text.replace("streamdrift_psi", "streamdrift_psi_x")) == [
        "streamdrift_psi: documented, not exported",
        "streamdrift_psi_x: exported, not documented"]


def test_window_shares_and_bin_labels_are_exported_per_bin():
    _, baseline, monitor = _monitor()
    monitor.process_payloads([b'{"x": 0.1, "c": "a"}'] * 20 + [b'{"x": 3.0, "c": "q"}'] * 5)
    report = monitor.report()
    samples = _samples(DriftCollector(Snapshot(report, baseline, ServiceStatus())))
    for name in ("x", "c"):
        feature = report.features[name]
        assert feature.window_probabilities is not None
        for index, label in enumerate(baseline[name].bin_labels):
            labels = {("feature", name), ("bin", str(index))}
            assert samples[("streamdrift_window_probability", frozenset(labels))] == \
                feature.window_probabilities[index]
            assert samples[("streamdrift_bin_info",
                            frozenset(labels | {("label", label)}))] == 1
    # Label values come from the baseline only: a category seen in messages ("q") is not one.
    assert not [key for key in samples if key[0] == "streamdrift_bin_info"
                and ("label", "q") in key[1]]


def _other_ratios(samples: dict, features: tuple[str, ...]) -> dict[str, float]:
    return {name: samples[("streamdrift_baseline_other_ratio", frozenset({("feature", name)}))]
            for name in features}


def test_baseline_other_ratio_is_the_reference_s_unsmoothed_share_of_the_other_bin():
    """What the unseen-categories alert subtracts: the share of the reference's usable values
    in categories the baseline does not list (kept out by max_categories), unsmoothed."""
    config = parse_config({"features": [{"name": "x"},
                                         {"name": "c", "type": "categorical"},
                                         {"name": "k", "type": "categorical"}],
                           "window": {"size": 100, "panes": 4}}, Path.cwd(), environ={})
    # c: 4 categories, 2 kept, 20 of its 100 values beyond them, and 10 missing ones (not
    # values: they are not in the share). k: every category kept.
    c = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 10
    baseline = build_baseline(
        config.features,
        {"x": numeric_column(np.linspace(0, 1, 110).tolist()),
         "c": categorical_column(c),
         "k": categorical_column(["p", "q"] * 55)},
        {"x": 5, "c": 5, "k": 5}, 2, 0.5, "test")
    assert baseline["c"].categories == ("a", "b")
    assert baseline["c"].probabilities[-1] != 0.2  # smoothed: not what is exported
    monitor = DriftMonitor(config, baseline)
    samples = _samples(DriftCollector(Snapshot(monitor.report(), baseline, ServiceStatus())))
    assert _other_ratios(samples, ("x", "c", "k")) == {"x": 0.0, "c": 0.2, "k": 0.0}

    # It describes the baseline, not the traffic: as much in "other" as the reference, then
    # only categories it never had, leave it as it is, while the counter counts them all.
    monitor.process_payloads([b'{"x": 0.5, "c": "a", "k": "p"}'] * 8
                             + [b'{"x": 0.5, "c": "d", "k": "p"}'] * 2
                             + [b'{"x": 0.5, "c": "new", "k": "zz"}'] * 40)
    samples = _samples(DriftCollector(Snapshot(monitor.report(), baseline, ServiceStatus())))
    assert _other_ratios(samples, ("x", "c", "k")) == {"x": 0.0, "c": 0.2, "k": 0.0}
    assert samples[("streamdrift_unseen_categories_total", frozenset({("feature", "c")}))] == 42
    assert samples[("streamdrift_unseen_categories_total", frozenset({("feature", "k")}))] == 40


def test_baseline_other_ratio_of_a_file_without_counts_is_its_other_probability():
    config, built, _ = _monitor()
    document = built.to_json()
    document["features"]["c"] |= {"categories": ["a"], "probabilities": [0.75, 0.25]}
    for feature in document["features"].values():
        del feature["counts"], feature["count"]
    baseline = parse_baseline(document, "test")
    samples = _samples(DriftCollector(Snapshot(DriftMonitor(config, baseline).report(),
                                               baseline, ServiceStatus())))
    assert _other_ratios(samples, ("x", "c")) == {"x": 0.0, "c": 0.25}


def _detector_monitor(method: str) -> tuple[Baseline, DriftMonitor]:
    config = parse_config({"features": [{"name": "x"}, {"name": "c", "type": "categorical"}],
                           "window": {"size": 100, "panes": 4},
                           "divergence": {"min_samples": 10},
                           "detector": {"method": method}}, Path.cwd(), environ={})
    _, baseline, _ = _monitor()
    return baseline, DriftMonitor(config, baseline)


def test_detector_scores_and_alarms_follow_the_report():
    """The scan's and the sequential test's gauges and counters are the report's; NaN where
    the report has no score (the sequential test off, a scan with no scale tested)."""
    rng = np.random.default_rng(5)
    xs = rng.normal(size=200).tolist() + rng.normal(3, 1, 150).tolist()
    payloads = [json.dumps({"x": x, "c": str(c)}).encode()
                for x, c in zip(xs, rng.choice(["a", "b"], len(xs)), strict=True)]
    for method in ("none", "mixture_cusum"):
        baseline, monitor = _detector_monitor(method)
        empty = _samples(DriftCollector(Snapshot(monitor.report(), baseline,
                                                 ServiceStatus())))
        for name in ("x", "c"):
            labels = frozenset({("feature", name)})
            assert math.isnan(empty[("streamdrift_scan_score", labels)])
            assert math.isnan(empty[("streamdrift_sequential_statistic", labels)]) == \
                (method == "none")
            for metric in ("streamdrift_scan_alarm", "streamdrift_scan_alarms_total",
                           "streamdrift_sequential_alarm",
                           "streamdrift_sequential_alarms_total"):
                assert empty[(metric, labels)] == 0, metric
        monitor.process_payloads(payloads)
        report = monitor.report()
        samples = _samples(DriftCollector(Snapshot(report, baseline, ServiceStatus())))
        for name, feature in report.features.items():
            labels = frozenset({("feature", name)})
            exported = {metric: samples[(f"streamdrift_{metric}", labels)] for metric in (
                "scan_score", "scan_alarm", "scan_alarms_total", "sequential_statistic",
                "sequential_alarm", "sequential_alarms_total", "feature_drifted")}
            assert exported["scan_score"] == feature.scan_score
            assert exported["scan_alarm"] == feature.scan_alarm
            assert exported["scan_alarms_total"] == feature.scan_alarms_total
            if feature.sequential_score is None:
                assert math.isnan(exported["sequential_statistic"])
            else:
                assert exported["sequential_statistic"] == feature.sequential_score
            assert exported["sequential_alarm"] == feature.sequential_alarm
            assert exported["sequential_alarms_total"] == feature.sequential_alarms_total
            assert exported["feature_drifted"] == bool(feature.flagged_by)
        # The case shows what it is there for: x drifted, and each detector raised alarms.
        x = report.features["x"]
        assert x.scan_alarm
        assert x.scan_alarms_total > 0
        assert (x.sequential_alarms_total > 0) == (method == "mixture_cusum")
        assert (x.sequential_score is None) == (method == "none")
