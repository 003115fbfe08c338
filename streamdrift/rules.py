"""Prometheus recording and alerting rules for streamdrift, rendered from a few parameters.

``deploy/prometheus/streamdrift-rules.yml`` is ``render_rules(RuleParameters())``;
``streamdrift rules`` renders it with other parameters (hold times, the fleet window, the
severe multiple, a runbook base URL: by default the runbooks page of the published
documentation, ``RUNBOOKS_URL``). A test keeps the shipped file equal to the default
rendering.

Fleet-wide divergence (several replicas in one consumer group): each replica exports
cumulative per-bin counts (``streamdrift_bin_total``) and the baseline
(``streamdrift_baseline_probability``). The recording rules sum the counts' increase over
the window across instances first, smooth them like the baseline
(``p_i = (c_i + a) / (n + a B)``), take the baseline once (``max`` across instances, never
``sum``), and only then compute the divergence, so N replicas report the KL that one
consumer of the whole topic would. The fleet drift alert asks for significance too, as
each replica's decision does, in the one form PromQL can compute: ``2 n m / (n + m) * KL``
(``n`` values in the fleet's window, ``m`` in the reference) is about chi-square under no
drift, so the KL must pass ``G* / 2 * (1/n + 1/m)``, with ``G*`` the critical value each
replica exports (``streamdrift_drift_g_critical``: divergence.alpha, Bonferroni over the
features, no pooling of sparse bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

JOB = "streamdrift"
# The published documentation site (mkdocs.yml's site_url; tests/test_rules.py holds them
# equal), and its runbooks page: the alerts' runbook_url unless ``--runbook-base`` says
# where a self-hosted copy of the site is.
DOCS_URL = "https://streamdrift.github.io/streamdrift/"
RUNBOOKS_URL = f"{DOCS_URL}operations/runbooks/"


@dataclass(frozen=True)
class RuleParameters:
    drift_for: str = "5m"
    severe_multiple: float = 3.0
    p_value_alpha: float = 1e-6
    fleet_window: str = "10m"
    fleet_smoothing: float = 0.5
    missing_ratio_jump: float = 0.1
    surge_ratio: float = 0.05
    invalid_ratio: float = 0.01
    lag_messages: int = 100_000
    service_for: str = "5m"
    runbook_base: str = RUNBOOKS_URL
    job: str = JOB


def recording_names(window: str) -> dict[str, str]:
    """The recorded series, named level:metric:operation as Prometheus recommends."""
    return {
        "bin_count": f"streamdrift:bin_count:increase{window}",
        "baseline": "streamdrift:baseline_probability:max",
        "bins": "streamdrift:bins:count",
        "samples": f"streamdrift:window_samples:increase{window}",
        "probability": f"streamdrift:window_probability:smoothed{window}",
        "kl": f"streamdrift:kl_divergence:fleet{window}",
        "js": f"streamdrift:js_divergence:fleet{window}",
        "reference_samples": "streamdrift:baseline_samples:max",
        "g_critical": "streamdrift:drift_g_critical:max",
        "kl_critical": f"streamdrift:kl_critical:fleet{window}",
    }


def recording_rules(params: RuleParameters) -> list[dict[str, Any]]:
    names = recording_names(params.fleet_window)
    window, alpha = params.fleet_window, params.fleet_smoothing
    p, q = names["probability"], names["baseline"]
    middle = f"(({p} + on(feature, bin) {q}) / 2)"
    return [
        {"record": names["bin_count"],
         "expr": f"sum by (feature, bin) (increase(streamdrift_bin_total[{window}]))"},
        {"record": q,
         "expr": "max by (feature, bin) (streamdrift_baseline_probability)"},
        {"record": names["bins"], "expr": f"count by (feature) ({q})"},
        {"record": names["samples"],
         "expr": f"sum by (feature) ({names['bin_count']})"},
        {"record": p,
         "expr": f"({names['bin_count']} + {alpha:g})"
                 f" / on(feature) group_left() ({names['samples']} + {alpha:g} * {names['bins']})"},
        {"record": names["kl"],
         "expr": f"sum by (feature) ({p} * ln({p} / on(feature, bin) {q}))"},
        {"record": names["js"],
         "expr": f"sum by (feature) ({p} * ln({p} / {middle})) / 2"
                 f" + sum by (feature) ({q} * ln({q} / {middle})) / 2"},
        {"record": names["reference_samples"],
         "expr": "max by (feature) (streamdrift_baseline_samples)"},
        {"record": names["g_critical"],
         "expr": "max by (feature) (streamdrift_drift_g_critical)"},
        # G* / 2 * (1/n + 1/m); a baseline without counts (m = 0) is taken as exact: 1/m = 0.
        {"record": names["kl_critical"],
         "expr": f"{names['g_critical']} / 2 * on(feature) (1 / {names['samples']}"
                 f" + on(feature) (({names['reference_samples']} > bool 0)"
                 f" / clamp_min({names['reference_samples']}, 1)))"},
    ]


def unseen_excess(params: RuleParameters) -> str:
    """Share of a feature's values in its other bin (categories the baseline does not list)
    minus the reference's share there: the part the baseline does not explain. Both are
    shares of usable values, so a change in how often the feature is missing does not move
    it. The three operands come from one target and are matched on all their labels: one
    result per replica and feature, with the target's labels kept."""
    window = params.service_for
    return (f"rate(streamdrift_unseen_categories_total[{window}])"
            f" / sum without (bin) (rate(streamdrift_bin_total[{window}]))"
            " - streamdrift_baseline_other_ratio")


def _alert(name: str, expr: str, hold: str, severity: str, summary: str, description: str,
           params: RuleParameters, feature: str | None = None) -> dict[str, Any]:
    labels = {"severity": severity}
    # Service-wide alerts concern every feature of the instance.
    labels["feature"] = feature if feature is not None else "all"
    return {
        "alert": name,
        "expr": expr,
        "for": hold,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{params.runbook_base}#runbook-{name.lower()}",
        },
    }


def alerting_rules(params: RuleParameters) -> list[dict[str, Any]]:
    job = params.job
    enough = "streamdrift_window_samples >= on(instance, job, feature) " \
             "streamdrift_window_min_samples"
    # The service's own decision (docs/statistics.md): flagged by any of its detectors, the
    # window (KL above the threshold and significant), the scan or the sequential test.
    drifted = "streamdrift_feature_drifted == 1"
    per_message = ("ignoring(feature) group_left "
                   f"rate(streamdrift_messages_total[{params.service_for}])")
    fleet = recording_names(params.fleet_window)
    return [
        _alert("StreamdriftFeatureDrift",
               f"streamdrift_kl_divergence and on(instance, job, feature) {drifted}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} has drifted from its baseline",
               "{{ $labels.feature }} on {{ $labels.instance }} has been flagged for "
               f"{params.drift_for} by the window (KL above its threshold and significant), "
               "the multi-scale scan or the sequential test; its KL(window || baseline) is "
               "{{ $value | printf \"%.3f\" }} nats.", params, "{{ $labels.feature }}"),
        _alert("StreamdriftFeatureDriftSevere",
               f"streamdrift_kl_divergence > on(instance, job, feature) "
               f"({params.severe_multiple:g} * streamdrift_drift_threshold)"
               f" and on(instance, job, feature) {drifted}",
               params.drift_for, "critical",
               "Feature {{ $labels.feature }} has drifted far from its baseline",
               "KL of {{ $labels.feature }} on {{ $labels.instance }} is "
               "{{ $value | printf \"%.3f\" }} nats, more than "
               f"{params.severe_multiple:g} times its threshold.", params,
               "{{ $labels.feature }}"),
        _alert("StreamdriftFeatureDriftPValue",
               f"streamdrift_drift_p_value < {params.p_value_alpha:g}"
               f" and on(instance, job, feature) {enough}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} fails the G-test against its baseline",
               "The chance of a difference this large between the window and the reference "
               "sample without drift is "
               "{{ $value | printf \"%.2g\" }} for {{ $labels.feature }} on "
               f"{{{{ $labels.instance }}}} (alpha {params.p_value_alpha:g}).", params,
               "{{ $labels.feature }}"),
        _alert("StreamdriftSequentialAlarm",
               f"increase(streamdrift_sequential_alarms_total[{params.service_for}]) > 0",
               "0m", "warning",
               "The sequential test raised an alarm on feature {{ $labels.feature }}",
               "The mixture CUSUM on every value of {{ $labels.feature }} on "
               "{{ $labels.instance }} crossed its threshold in the last "
               f"{params.service_for}: the feature counts as drifted until the pane of the "
               "alarm has left the window.", params, "{{ $labels.feature }}"),
        _alert("StreamdriftMissingRatioJump",
               "streamdrift_feature_missing_ratio - on(instance, job, feature) "
               f"streamdrift_baseline_missing_ratio > {params.missing_ratio_jump:g}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} is missing far more often than in training",
               "{{ $value | humanizePercentage }} more of the messages lack "
               "{{ $labels.feature }} than in the baseline.", params, "{{ $labels.feature }}"),
        _alert("StreamdriftUnseenCategoriesSurge",
               f"{unseen_excess(params)} > {params.surge_ratio:g}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} receives categories the baseline never had",
               "{{ $value | humanizePercentage }} more of the values of "
               "{{ $labels.feature }} are of categories the baseline does not list than in "
               "its reference.", params, "{{ $labels.feature }}"),
        _alert("StreamdriftOutOfRangeSurge",
               f"rate(streamdrift_out_of_range_total[{params.service_for}]) / "
               f"{per_message} > {params.surge_ratio:g}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} receives values outside the training range",
               "{{ $value | humanizePercentage }} of the values of {{ $labels.feature }} "
               "fall outside the reference's [min, max].", params, "{{ $labels.feature }}"),
        _alert("StreamdriftConsumerStalled",
               f"rate(streamdrift_messages_total[{params.service_for}]) == 0"
               " and on(instance, job) sum by (instance, job) (streamdrift_consumer_lag) > 0",
               params.service_for, "critical",
               "streamdrift on {{ $labels.instance }} has stopped consuming",
               "No message consumed for "
               f"{params.service_for} while its partitions have messages waiting.", params),
        _alert("StreamdriftConsumerLagging",
               "sum by (instance, job) (streamdrift_consumer_lag) > "
               f"{params.lag_messages}",
               params.service_for, "warning",
               "streamdrift on {{ $labels.instance }} is falling behind its topic",
               "{{ $value | printf \"%.0f\" }} messages wait to be consumed: its gauges describe "
               "older traffic.", params),
        _alert("StreamdriftInvalidMessagesHigh",
               f"sum by (instance, job) (rate(streamdrift_invalid_messages_total"
               f"[{params.service_for}])) / on(instance, job) "
               f"rate(streamdrift_messages_total[{params.service_for}]) > "
               f"{params.invalid_ratio:g}",
               params.service_for, "warning",
               "Many messages to streamdrift on {{ $labels.instance }} are invalid",
               "{{ $value | humanizePercentage }} of the messages are rejected; see "
               "streamdrift_invalid_messages_total by reason.", params),
        _alert("StreamdriftDown", f'up{{job="{job}"}} == 0', "1m", "critical",
               "streamdrift on {{ $labels.instance }} cannot be scraped",
               "Prometheus has not reached the drift detector for a minute: drift goes "
               "unseen.", params),
        _alert("StreamdriftAbsent", f'absent(up{{job="{job}"}})', "5m", "critical",
               "No streamdrift instance is scraped",
               f'Prometheus has no target in job "{job}": drift goes unseen.', params),
        _alert("StreamdriftNotReady", "streamdrift_ready == 0", params.service_for,
               "warning", "streamdrift on {{ $labels.instance }} is not ready",
               "Not connected to Kafka, without partitions, or refilling its window: its "
               "gauges may be stale or empty; see /readyz.", params),
        _alert("StreamdriftBaselineMissing",
               f'up{{job="{job}"}} == 1 unless on(instance, job) streamdrift_baseline_info',
               params.service_for, "critical",
               "streamdrift on {{ $labels.instance }} has no baseline",
               "The target answers but exports no baseline: nothing is being compared.",
               params),
        _alert("StreamdriftBaselineRefused",
               'increase(streamdrift_baseline_reloads_total{result="refused"}[15m]) > 0',
               "0m", "warning",
               "streamdrift on {{ $labels.instance }} refused a new baseline",
               "A baseline reload failed validation; the previous baseline is still in "
               "use. See the service log (event=baseline_refused).", params),
        _alert("StreamdriftFleetDrift",
               f"{fleet['kl']} > on(feature) max by (feature) "
               f"(streamdrift_drift_threshold) and on(feature) {fleet['samples']} >= on(feature)"
               " max by (feature) (streamdrift_window_min_samples)"
               f" and on(feature) {fleet['kl']} > on(feature) {fleet['kl_critical']}",
               params.drift_for, "warning",
               "Feature {{ $labels.feature }} has drifted across the fleet",
               f"KL over the last {params.fleet_window} of all replicas' traffic is "
               "{{ $value | printf \"%.3f\" }} nats, above its threshold and significant.",
               params, "{{ $labels.feature }}"),
    ]


FLEET_ALERT = "StreamdriftFleetDrift"


@dataclass(frozen=True)
class ValueCondition:
    """An alert as a value and a threshold, the shape of a Grafana-managed rule (query A,
    reduce B, threshold C): the value query returns data whether or not the alert holds,
    and ``value <op> threshold`` holds exactly where the Prometheus expression does."""

    value: str
    op: str  # "gt" or "lt", Grafana's threshold evaluators
    threshold: float


def value_conditions(params: RuleParameters) -> dict[str, ValueCondition]:
    key = "on(instance, job, feature)"
    # 1 where the window holds enough values, 0 where it does not.
    enough = f"(streamdrift_window_samples >= bool {key} streamdrift_window_min_samples)"
    drifted = "streamdrift_feature_drifted"
    ratio = f"streamdrift_kl_divergence / {key} streamdrift_drift_threshold"
    per_message = ("ignoring(feature) group_left "
                   f"rate(streamdrift_messages_total[{params.service_for}])")
    job = params.job
    fleet = recording_names(params.fleet_window)
    return {
        # drifted is 0 or 1, and may be 1 with KL under the threshold (a scan or sequential
        # alarm): the alert is drifted == 1 wherever the feature has a KL series.
        "StreamdriftFeatureDrift": ValueCondition(
            f"{drifted} and {key} streamdrift_kl_divergence", "gt", 0),
        # ratio > multiple > 1 where drifted is 1; 0 where it is 0.
        "StreamdriftFeatureDriftSevere": ValueCondition(f"({ratio}) * {key} {drifted}", "gt",
                                                        params.severe_multiple),
        # Where the window is too small the value is p / 0 = +Inf: never below alpha.
        "StreamdriftFeatureDriftPValue": ValueCondition(
            f"streamdrift_drift_p_value / {key} {enough}", "lt", params.p_value_alpha),
        "StreamdriftSequentialAlarm": ValueCondition(
            f"increase(streamdrift_sequential_alarms_total[{params.service_for}])", "gt", 0),
        "StreamdriftMissingRatioJump": ValueCondition(
            f"streamdrift_feature_missing_ratio - {key} streamdrift_baseline_missing_ratio",
            "gt", params.missing_ratio_jump),
        "StreamdriftUnseenCategoriesSurge": ValueCondition(
            unseen_excess(params), "gt", params.surge_ratio),
        "StreamdriftOutOfRangeSurge": ValueCondition(
            f"rate(streamdrift_out_of_range_total[{params.service_for}]) / {per_message}",
            "gt", params.surge_ratio),
        "StreamdriftConsumerStalled": ValueCondition(
            f"(rate(streamdrift_messages_total[{params.service_for}]) == bool 0)"
            " * on(instance, job) (sum by (instance, job) (streamdrift_consumer_lag) > bool 0)",
            "gt", 0),
        "StreamdriftConsumerLagging": ValueCondition(
            "sum by (instance, job) (streamdrift_consumer_lag)", "gt", params.lag_messages),
        "StreamdriftInvalidMessagesHigh": ValueCondition(
            f"sum by (instance, job) (rate(streamdrift_invalid_messages_total"
            f"[{params.service_for}])) / on(instance, job) "
            f"rate(streamdrift_messages_total[{params.service_for}])",
            "gt", params.invalid_ratio),
        "StreamdriftDown": ValueCondition(f'up{{job="{job}"}}', "lt", 1),
        "StreamdriftAbsent": ValueCondition(f'count(up{{job="{job}"}}) or vector(0)', "lt", 1),
        "StreamdriftNotReady": ValueCondition("streamdrift_ready", "lt", 1),
        "StreamdriftBaselineMissing": ValueCondition(
            f'(up{{job="{job}"}} == bool 1) - on(instance, job) (count by (instance, job) '
            f'(streamdrift_baseline_info) or on(instance, job) 0 * up{{job="{job}"}})',
            "gt", 0),
        "StreamdriftBaselineRefused": ValueCondition(
            'increase(streamdrift_baseline_reloads_total{result="refused"}[15m])', "gt", 0),
        FLEET_ALERT: ValueCondition(
            f"({fleet['kl']} / on(feature) max by (feature) (streamdrift_drift_threshold))"
            f" * on(feature) ({fleet['samples']} >= bool on(feature)"
            " max by (feature) (streamdrift_window_min_samples))"
            f" * on(feature) ({fleet['kl']} > bool on(feature) {fleet['kl_critical']})",
            "gt", 1),
    }


def rule_groups(params: RuleParameters) -> list[dict[str, Any]]:
    """The two rule groups: the fleet-wide recording rules with the fleet alert, and the
    other alerts."""
    alerts = alerting_rules(params)
    # The fleet alert sits in the recording rules' group, after them: rules of one group run
    # in order, so it sees this evaluation's divergence, not the one of the previous cycle.
    fleet = [rule for rule in alerts if rule["alert"] == FLEET_ALERT]
    return [
        {"name": "streamdrift-fleet", "rules": [*recording_rules(params), *fleet]},
        {"name": "streamdrift-alerts",
         "rules": [rule for rule in alerts if rule["alert"] != FLEET_ALERT]},
    ]


def render_prometheus_rule(params: RuleParameters, name: str = "streamdrift",
                           namespace: str | None = None) -> str:
    """The same groups as a Prometheus Operator ``PrometheusRule`` manifest."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/name": "streamdrift"}
    document = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": metadata, "spec": {"groups": rule_groups(params)}}
    header = ("# streamdrift's Prometheus rules as a PrometheusRule, rendered by\n"
              "# `streamdrift rules --format prometheusrule`. kubectl apply -f this "
              "file.\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


def render_rules(params: RuleParameters) -> str:
    document = {"groups": rule_groups(params)}
    header = ("# Prometheus rules for streamdrift, rendered by `streamdrift rules`.\n"
              "# Re-render with other parameters rather than editing by hand: "
              "`streamdrift rules --help`.\n")
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
