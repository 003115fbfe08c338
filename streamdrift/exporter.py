"""Prometheus exposition of the latest ``DriftReport`` and service status.

The collector builds its metric families at scrape time from one immutable snapshot that
the service loop swaps in (``publish``); the scrape never touches the monitor's mutable
state, so there are no locks on the hot path. Every labelled child exists from the first
scrape (the service publishes a report of the empty window at start), so no series is
missing before the first message. Label values are feature names from the config, bin
indices, partitions and rejection reasons: never values taken from messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamdrift import __version__
from streamdrift.baseline import Baseline
from streamdrift.decoding import REJECT_REASONS
from streamdrift.features import INVALID_VALUE_REASONS
from streamdrift.monitor import DriftReport

NAN = math.nan


@dataclass(frozen=True)
class ServiceStatus:
    """What the service loop knows about its connection, published with each report."""

    connected: bool = False
    assigned: tuple[tuple[str, int], ...] = ()
    lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    last_message_timestamp_s: float | None = None
    refilling: bool = False
    # The configured topic, while the brokers say it does not exist.
    missing_topic: str | None = None
    dead_letters: int = 0
    # Messages counted on partitions that moved away before their offsets were committed.
    handed_over_uncommitted: int = 0
    baseline_reloads: Mapping[str, int] = field(default_factory=dict)
    # False while the Schema Registry does not answer (consumption waits for it).
    schema_registry_up: bool = True

    @property
    def ready(self) -> bool:
        return self.connected and bool(self.assigned) and not self.refilling


@dataclass(frozen=True)
class Snapshot:
    report: DriftReport
    baseline: Baseline
    status: ServiceStatus


class DriftCollector(Collector):
    """Reads the published snapshot at scrape time."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def publish(self, snapshot: Snapshot) -> None:
        """Swap in a new snapshot; one reference assignment, atomic for readers."""
        self._snapshot = snapshot

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        yield from _feature_metrics(snapshot.report, snapshot.baseline)
        yield from _service_metrics(snapshot)


def make_registry(collector: DriftCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def _value(number: float | None) -> float:
    return NAN if number is None else float(number)


def _feature_metrics(report: DriftReport, baseline: Baseline) -> Iterator[Metric]:
    gauges = {
        "kl_divergence": "KL(window || baseline) in nats; NaN while the window has too few "
                         "values",
        "js_divergence": "Jensen-Shannon divergence of the window and the baseline, in nats",
        "psi": "Population stability index of the window against the baseline",
        "drift_p_value": "Two-sample G-test p-value of the window against the reference "
                         "sample: chance of a difference this large if nothing drifted",
        "drift_threshold": "KL in nats above which the feature counts as drifted",
        "feature_drifted": "1 while any detector flags the feature: the window's KL above "
                           "the threshold and significant (Holm over the features), or a "
                           "scan or sequential alarm holding; else 0",
        "kl_noise_floor": "KL expected without drift at the window's size, nats",
        "baseline_samples": "Usable values in the reference sample (0: no counts in the file)",
        "drift_g_critical": "G significant at divergence.alpha with Bonferroni over the "
                            "features, for the fleet-wide rule",
        "window_samples": "Non-missing values of the feature in the window",
        "window_min_samples": "Values the window needs before divergences are reported",
        "feature_missing_ratio": "Share of the window's messages missing the feature",
        "baseline_missing_ratio": "Share of the reference data missing the feature",
        "baseline_other_ratio": "Share of the reference's values in the other bin "
                                "(categories the baseline does not list), unsmoothed; 0 for "
                                "a numeric feature",
        "scan_score": "Largest ln p / ln level over the multi-scale scan's scales: 1 at its "
                      "threshold; NaN while no scale is tested or the scan is off",
        "scan_alarm": "1 while a scale of the scan rejects (from the pane close of its alarm "
                      "to the first at which none does), else 0",
        "sequential_statistic": "The sequential test's largest CUSUM score divided by its "
                                "alarm threshold h: 1 at the alarm; NaN when the test is off "
                                "(detector.method other than mixture_cusum)",
        "sequential_alarm": "1 from a sequential alarm until the pane it was raised in has "
                            "left the window, else 0",
    }
    families = {name: GaugeMetricFamily(f"streamdrift_{name}", doc, labels=["feature"])
                for name, doc in gauges.items()}
    counters = {
        "unseen_categories": "Values in the other bin: categories the baseline does not "
                             "list, never seen in the reference or too rare to be listed",
        "out_of_range": "Numeric values outside the reference's [min, max]",
        "drift_changes": "Change points the river detector found in the KL series",
        "missing_values": "Missing (absent, null, NaN) values of the feature",
        "scan_alarms": "Alarms the multi-scale scan raised (starts of runs of rejecting pane "
                       "closes)",
        "sequential_alarms": "Alarms the sequential test raised",
    }
    counter_families = {
        name: CounterMetricFamily(f"streamdrift_{name}", doc, labels=["feature"])
        for name, doc in counters.items()}
    invalid_values = CounterMetricFamily(
        "streamdrift_invalid_values", "Unusable values of the feature, by reason",
        labels=["feature", "reason"])
    bins = CounterMetricFamily(
        "streamdrift_bin", "Values counted in each baseline bin since start (for merging "
        "replicas: sum over instances, then divide)", labels=["feature", "bin"])
    probabilities = GaugeMetricFamily(
        "streamdrift_baseline_probability", "Smoothed baseline probability of each bin",
        labels=["feature", "bin"])
    window_probabilities = GaugeMetricFamily(
        "streamdrift_window_probability", "Share of the window's values in each bin (its KL "
        "term is p ln(p / baseline)); NaN while the window is empty", labels=["feature", "bin"])
    bin_info = GaugeMetricFamily(
        "streamdrift_bin_info", "Each bin's label (a range or a category of the baseline)",
        labels=["feature", "bin", "label"])
    for name, feature in report.features.items():
        labels = [name]
        values = {
            "kl_divergence": _value(feature.kl),
            "js_divergence": _value(feature.js),
            "psi": _value(feature.psi),
            "drift_p_value": _value(feature.p_value),
            "drift_threshold": feature.threshold,
            "feature_drifted": 1.0 if feature.drift else 0.0,
            "kl_noise_floor": _value(feature.kl_noise_floor),
            "baseline_samples": float(feature.reference_samples),
            "drift_g_critical": feature.g_critical,
            "window_samples": float(feature.samples),
            "window_min_samples": float(feature.min_samples),
            "feature_missing_ratio": _value(feature.missing_ratio),
            "baseline_missing_ratio": feature.baseline_missing_ratio,
            "baseline_other_ratio": baseline[name].other_ratio,
            "scan_score": _value(feature.scan_score),
            "scan_alarm": 1.0 if feature.scan_alarm else 0.0,
            "sequential_statistic": _value(feature.sequential_score),
            "sequential_alarm": 1.0 if feature.sequential_alarm else 0.0,
        }
        for metric, value in values.items():
            families[metric].add_metric(labels, value)
        counter_families["unseen_categories"].add_metric(labels, feature.unseen_total)
        counter_families["out_of_range"].add_metric(labels, feature.out_of_range_total)
        counter_families["drift_changes"].add_metric(labels, feature.change_points)
        counter_families["missing_values"].add_metric(labels, feature.missing_total)
        counter_families["scan_alarms"].add_metric(labels, feature.scan_alarms_total)
        counter_families["sequential_alarms"].add_metric(labels,
                                                         feature.sequential_alarms_total)
        for reason in INVALID_VALUE_REASONS.values():
            invalid_values.add_metric([name, reason],
                                      feature.invalid_values_total.get(reason, 0))
        for index, total in enumerate(feature.bin_totals):
            bins.add_metric([name, str(index)], total)
        for index, probability in enumerate(baseline[name].probabilities.tolist()):
            probabilities.add_metric([name, str(index)], probability)
        window = feature.window_probabilities or (NAN,) * len(feature.bin_labels)
        for index, (label, share) in enumerate(zip(feature.bin_labels, window, strict=True)):
            window_probabilities.add_metric([name, str(index)], share)
            bin_info.add_metric([name, str(index), label], 1.0)
    yield from families.values()
    yield from counter_families.values()
    yield invalid_values
    yield bins
    yield probabilities
    yield window_probabilities
    yield bin_info


def _service_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    report, status, baseline = snapshot.report, snapshot.status, snapshot.baseline
    messages = CounterMetricFamily("streamdrift_messages",
                                   "Messages consumed (valid and invalid)")
    messages.add_metric([], report.messages)
    yield messages
    invalid = CounterMetricFamily("streamdrift_invalid_messages",
                                  "Messages rejected whole, by reason", labels=["reason"])
    reasons = dict.fromkeys(REJECT_REASONS, 0) | dict(report.invalid_reasons)
    for reason, count in sorted(reasons.items()):
        invalid.add_metric([reason], count)
    yield invalid
    late = CounterMetricFamily("streamdrift_late_messages",
                               "Messages older than the event-time window, left out of it")
    late.add_metric([], report.late)
    yield late
    dead = CounterMetricFamily("streamdrift_dead_letter_messages",
                               "Rejected messages produced to the dead-letter topic")
    dead.add_metric([], status.dead_letters)
    yield dead
    handed = CounterMetricFamily(
        "streamdrift_handed_over_uncommitted_messages",
        "Messages counted on partitions that moved to another member before their offsets "
        "were committed: that member counts them again")
    handed.add_metric([], status.handed_over_uncommitted)
    yield handed
    window = GaugeMetricFamily("streamdrift_window_messages", "Messages in the window")
    window.add_metric([], report.window_messages)
    yield window
    by_partition = GaugeMetricFamily("streamdrift_window_partition_messages",
                                     "Messages of each partition held in the window",
                                     labels=["topic", "partition"])
    for key, value in sorted(report.partition_messages.items(), key=str):
        if isinstance(key, tuple) and len(key) == 2:
            by_partition.add_metric([str(key[0]), str(key[1])], value)
    yield by_partition
    lag = GaugeMetricFamily("streamdrift_consumer_lag",
                            "Messages in the partition not yet consumed",
                            labels=["topic", "partition"])
    for (topic, partition), value in sorted(status.lag.items()):
        lag.add_metric([topic, str(partition)], value)
    yield lag
    assigned = GaugeMetricFamily("streamdrift_assigned_partitions",
                                 "Partitions assigned to this consumer")
    assigned.add_metric([], len(status.assigned))
    yield assigned
    last = GaugeMetricFamily("streamdrift_last_message_timestamp_seconds",
                             "Kafka timestamp of the newest message consumed")
    last.add_metric([], _value(status.last_message_timestamp_s))
    yield last
    connected = GaugeMetricFamily("streamdrift_kafka_connected",
                                  "1 while the last request to the brokers succeeded")
    connected.add_metric([], 1.0 if status.connected else 0.0)
    yield connected
    registry_up = GaugeMetricFamily(
        "streamdrift_schema_registry_up",
        "0 while the Schema Registry does not answer and consumption waits for it")
    registry_up.add_metric([], 1.0 if status.schema_registry_up else 0.0)
    yield registry_up
    ready = GaugeMetricFamily("streamdrift_ready",
                              "1 when connected, assigned partitions and the window filled")
    ready.add_metric([], 1.0 if status.ready else 0.0)
    yield ready
    info = GaugeMetricFamily("streamdrift_baseline_info", "The baseline in use",
                             labels=["format", "created_at", "hash", "source"])
    info.add_metric([baseline.format, baseline.created_at, baseline.content_hash(),
                     baseline.source], 1.0)
    yield info
    reloads = CounterMetricFamily("streamdrift_baseline_reloads",
                                  "Baseline reloads, by result", labels=["result"])
    for result in ("loaded", "refused"):
        reloads.add_metric([result], status.baseline_reloads.get(result, 0))
    yield reloads
    build = GaugeMetricFamily("streamdrift_build_info", "streamdrift version",
                              labels=["version"])
    build.add_metric([__version__], 1.0)
    yield build
