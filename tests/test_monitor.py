"""The whole engine against a batch recomputation over the messages in the window."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import chi2, entropy

from streamdrift.baseline import Baseline, build_baseline
from streamdrift.config import Config, parse_config
from streamdrift.divergence import auto_min_samples
from streamdrift.errors import BaselineError
from streamdrift.features import (
    FeatureColumn,
    categorical_column,
    extract_features,
    numeric_column,
    table_columns,
)
from streamdrift.monitor import (
    DriftMonitor,
    PaneSnapshot,
    compare_columns,
    compare_to_baseline,
    occupied_bins,
    reference_baseline,
)
from tests.strategies import holm_oracle, js_oracle, two_sample_oracle

CONFIG = {
    "features": [
        {"name": "amount", "path": "order.amount", "type": "numeric", "bins": 6},
        {"name": "channel", "type": "categorical"},
    ],
    "window": {"size": 12, "panes": 4},
    "baseline": {"bins": 5, "max_categories": 3},
    "divergence": {"threshold": 0.1, "min_samples": 3},
}
CHANNELS = ["web", "app", "shop", "phone", "mail"]


def _config(**changes: object) -> Config:
    return parse_config({**CONFIG, **changes}, Path.cwd(), environ={})


def _baseline(config: Config, seed: int = 0) -> Baseline:
    rng = np.random.default_rng(seed)
    reference = [{"order": {"amount": float(a)}, "channel": str(c)}
                 for a, c in zip(rng.gamma(2.0, 10.0, 400), rng.choice(CHANNELS[:4], 400),
                                 strict=True)]
    columns = _columns(config, reference)
    return build_baseline(config.features, columns, {"amount": 6, "channel": 5}, 3, 0.5, "t")


message_values = st.fixed_dictionaries({
    "amount": st.one_of(st.floats(-10, 200, allow_nan=False), st.none(), st.just("12"),
                        st.just(float("nan"))),
    "channel": st.one_of(st.sampled_from(CHANNELS), st.none(), st.just(3)),
})


def _oracle_bins(baseline: Baseline, message: dict) -> tuple[int | None, int | None]:
    """The bins of one message, the way the baseline file documents them."""
    amount = message["order"]["amount"]
    channel = message["channel"]
    amount_bin = None
    if isinstance(amount, float) and amount == amount:
        amount_bin = int(np.searchsorted(baseline["amount"].edges, amount, side="right"))
    channel_bin = None
    if isinstance(channel, str):
        categories = baseline["channel"].categories
        channel_bin = categories.index(channel) if channel in categories else len(categories)
    elif isinstance(channel, int):
        channel_bin = len(baseline["channel"].categories)  # "3" was never a category
    return amount_bin, channel_bin


@given(st.lists(message_values, min_size=1, max_size=60), st.integers(1, 9))
def test_report_equals_batch_computation_over_the_window(values, batch_size):
    config = _config()
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    messages = [{"order": {"amount": v["amount"]}, "channel": v["channel"]} for v in values]
    payloads = [json.dumps(message).encode() for message in messages]
    pane_length = 3
    for start in range(0, len(payloads), batch_size):
        monitor.process_payloads(payloads[start:start + batch_size])
        seen = start + len(payloads[start:start + batch_size])
        newest = (seen - 1) // pane_length
        window = messages[max(0, (newest - 3) * pane_length):seen]
        report = monitor.report()
        assert report.messages == seen
        assert report.window_messages == len(window)
        oracle = [_oracle_bins(baseline, message) for message in window]
        evaluated: dict[str, float] = {}
        for index, name in enumerate(["amount", "channel"]):
            feature = report.features[name]
            bins = [b for pair in oracle if (b := pair[index]) is not None]
            counts = np.bincount(bins, minlength=baseline[name].n_bins)
            assert list(feature.window_counts) == counts.tolist()
            assert feature.samples == len(bins)
            q = baseline[name].probabilities
            if len(bins) < 3:
                assert feature.kl is None
                assert feature.status == "insufficient_data"
                continue
            assert feature.kl == pytest.approx(entropy(counts, q), rel=1e-9, abs=1e-12)
            assert feature.js == pytest.approx(js_oracle(counts / len(bins), q),
                                               rel=1e-7, abs=1e-12)
            # PSI is the symmetric KL of the smoothed window and the baseline.
            smoothed = (counts + 0.5) / (len(bins) + 0.5 * len(counts))
            assert feature.psi == pytest.approx(entropy(smoothed, q) + entropy(q, smoothed),
                                                rel=1e-9, abs=1e-12)
            # The two-sample test of the window's counts against the reference's.
            _, _, expected_p = two_sample_oracle(counts, baseline[name].counts)
            assert feature.p_value is not None
            assert feature.p_value == pytest.approx(expected_p, rel=1e-6, abs=1e-12)
            evaluated[name] = feature.p_value
        # Drift: KL above the threshold and significant, Holm over the features evaluated.
        significant = holm_oracle(evaluated, alpha=0.001)
        for name, feature in report.features.items():
            assert feature.drift == (name in significant and feature.kl is not None
                                     and feature.kl > 0.1)
        missing = sum(1 for m in window if m["order"]["amount"] is None
                      or m["order"]["amount"] != m["order"]["amount"])
        assert report.features["amount"].missing == missing
        assert report.features["amount"].missing_ratio == pytest.approx(missing / len(window))


def test_totals_count_every_value_by_its_fate():
    config = _config()
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    known = baseline["channel"].categories[0].encode()
    monitor.process_payloads([
        b'{"order": {"amount": 5.0}, "channel": "%s"}' % known,
        b'{"order": {"amount": "5"}, "channel": "tv"}',
        b'{"order": {"amount": 1e9}, "channel": null}',
        b'{"order": {"amount": Infinity}, "channel": ["web"]}',
        b"not json", b"[]", b"",
    ])
    report = monitor.report()
    assert report.messages == 7
    assert report.invalid == 3
    assert dict(report.invalid_reasons) == {"not_json": 1, "not_object": 1, "empty": 1}
    amount, channel = report.features["amount"], report.features["channel"]
    assert amount.invalid_values_total == {"wrong_type": 1, "non_finite": 1}
    assert amount.out_of_range_total == 1
    assert sum(amount.bin_totals) == 2
    assert amount.invalid == 2
    assert channel.unseen_total == 1  # "tv" is not among the baseline's categories
    assert channel.invalid_values_total == {"wrong_type": 1, "non_finite": 0}
    assert channel.missing_total == 1


def _stream(count: int, seed: int, shift: float = 0.0) -> list[bytes]:
    """``count`` messages: gamma amounts (shifted), channels from all five, a few missing."""
    rng = np.random.default_rng(seed)
    amounts = rng.gamma(2.0, 10.0, count) + shift
    channels = rng.choice(CHANNELS, count)
    return [json.dumps({"order": {"amount": None if i % 17 == 0 else float(a)},
                        "channel": str(c)}).encode()
            for i, (a, c) in enumerate(zip(amounts, channels, strict=True))]


def _reweighted(baseline: Baseline, seed: int) -> Baseline:
    """The same bins with other reference counts, smoothed the same way."""
    rng = np.random.default_rng(seed)
    features = {}
    for name, feature in baseline.features.items():
        counts = rng.integers(1, 200, feature.n_bins)
        probabilities = (counts + baseline.smoothing) / (
            counts.sum() + baseline.smoothing * feature.n_bins)
        features[name] = dataclasses.replace(feature, counts=counts,
                                             probabilities=probabilities)
    return Baseline(features, "2024-06-01T00:00:00+00:00", "reweighted", baseline.smoothing)


def _divergences(report) -> dict[str, tuple]:
    """What the window decides. The scan's and the sequential test's state is not the
    window's: it depends on the panes as they arrived, which a refill cannot replay."""
    return {name: (f.kl, f.js, f.psi, f.p_value, "window" in f.flagged_by, f.window_counts)
            for name, f in report.features.items()}


def _assert_same_divergences(actual, expected) -> None:
    for name, values in expected.items():
        *numbers, status, counts = values
        *got, got_status, got_counts = actual[name]
        assert got_counts == counts, name
        assert got_status == status, name
        assert got == pytest.approx(numbers, rel=1e-9, abs=1e-12), name


def test_the_threshold_itself_is_not_drift():
    """``drift`` means KL strictly above the threshold: at exactly the threshold, no flag."""
    # The scan flags a shift of 6 on its own: this is the window's rule.
    config = _config(window={"size": 400, "panes": 4}, divergence={"min_samples": 50},
                     scan={"enabled": False})
    baseline = _baseline(config)
    payloads = _stream(300, seed=4, shift=6.0)
    probe = DriftMonitor(config, baseline)
    probe.process_payloads(payloads)
    kl = probe.report().features["amount"].kl
    assert kl is not None
    assert kl > 0

    def status_at(threshold: float) -> str:
        amount, channel = cast(list[dict[str, object]], CONFIG["features"])
        features = [{**amount, "threshold": threshold}, channel]
        monitor = DriftMonitor(_config(window={"size": 400, "panes": 4}, features=features,
                                       divergence={"min_samples": 50},
                                       scan={"enabled": False}), baseline)
        monitor.process_payloads(payloads)
        feature = monitor.report().features["amount"]
        assert feature.kl == kl  # the same messages give the very same number
        return feature.status

    assert status_at(kl) == "ok"
    assert status_at(math.nextafter(kl, -math.inf)) == "drift"
    assert status_at(math.nextafter(kl, math.inf)) == "ok"


def test_refilled_messages_fill_the_window_without_being_counted():
    config = _config(window={"size": 200, "panes": 4})
    baseline = _baseline(config)
    history = [*_stream(500, seed=1), b"not json", b'{"order": {"amount": "x"}}']
    later = _stream(120, seed=2, shift=3.0)
    refilled = DriftMonitor(config, baseline)
    refilled.refill(history)
    report = refilled.report()
    assert report.messages == 0
    assert report.invalid == 0
    assert report.panes_closed > 0  # the detectors saw the panes go by
    for feature in report.features.values():
        assert sum(feature.bin_totals) == 0
        assert feature.missing_total == feature.unseen_total == feature.out_of_range_total == 0
        assert sum(feature.invalid_values_total.values()) == 0
        assert feature.change_points == 0
    # The window is the one a monitor that read the history itself would have.
    uninterrupted = DriftMonitor(config, baseline)
    uninterrupted.process_payloads(history)
    _assert_same_divergences(_divergences(report), _divergences(uninterrupted.report()))

    # Messages after the refill are counted, and only they.
    refilled.process_payloads(later)
    uninterrupted.process_payloads(later)
    after = refilled.report()
    assert after.messages == len(later)
    only_later = DriftMonitor(config, baseline)
    only_later.process_payloads(later)
    for name, feature in after.features.items():
        assert feature.bin_totals == only_later.report().features[name].bin_totals
    _assert_same_divergences(_divergences(after), _divergences(uninterrupted.report()))


@pytest.mark.parametrize("window", [{"size": 200, "panes": 4},
                                    {"size": "40s", "panes": 4, "time_field": "ts"}])
def test_a_new_baseline_with_the_same_bins_equals_a_fresh_monitor_on_it(window):
    config = _config(window=window)
    old = _baseline(config)
    new = _reweighted(old, seed=8)
    assert all(old[name].same_bins(new[name]) for name in ("amount", "channel"))
    payloads = _stream(700, seed=3, shift=2.0)
    if "time_field" in window:
        payloads = [json.dumps({**json.loads(p), "ts": i / 10}).encode()
                    for i, p in enumerate(payloads)]
    swapped = DriftMonitor(config, old)
    fresh = DriftMonitor(config, new)
    for start in range(0, 700, 64):  # the window slides before and after the swap
        if start == 384:
            assert swapped.swap_baseline(new)
        swapped.process_payloads(payloads[start:start + 64])
        fresh.process_payloads(payloads[start:start + 64])
        if start >= 384:
            _assert_same_divergences(_divergences(swapped.report()),
                                     _divergences(fresh.report()))
    assert swapped.report().baseline_hash == new.content_hash()


def test_a_new_baseline_with_other_bins_is_refused_and_changes_nothing():
    config = _config()
    old = _baseline(config)
    other = _baseline(config, seed=11)
    assert not old["amount"].same_bins(other["amount"])
    monitor = DriftMonitor(config, old)
    monitor.process_payloads(_stream(10, seed=5))
    before = _divergences(monitor.report())
    assert not monitor.swap_baseline(other)
    assert monitor.baseline is old
    assert _divergences(monitor.report()) == before


class _Record(NamedTuple):
    """A message as Kafka keeps it: partition, offset, Kafka timestamp, value."""

    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


def _topic(payloads: list[bytes], first_ms: int, seed: int, partitions: int, chunk: int,
           offsets: dict[int, int]) -> list[list[_Record]]:
    """``payloads`` as polls of ``chunk`` messages each from one partition picked at random
    (so that every partition holds a whole number of chunks), 100 ms apart."""
    rng = np.random.default_rng(seed)
    polls = []
    for start in range(0, len(payloads), chunk):
        partition = int(rng.integers(partitions))
        poll = [_Record(partition, offsets.get(partition, 0) + i,
                        first_ms + (start + i) * 100, payload)
                for i, payload in enumerate(payloads[start:start + chunk])]
        offsets[partition] = poll[-1].offset + 1
        polls.append(poll)
    return polls


def _process(monitor: DriftMonitor, records: Sequence[_Record], refill: bool = False
             ) -> None:
    """Hand ``records`` to ``monitor`` as the service does: Kafka timestamps in seconds,
    one run per partition."""
    runs = [(record.partition, index) for index, record in enumerate(records)
            if index == 0 or records[index - 1].partition != record.partition]
    method = monitor.refill if refill else monitor.process_payloads
    method([record.value for record in records],
           [record.timestamp_ms / 1000.0 for record in records], runs)


def _reload_with_other_bins(running: DriftMonitor, baseline: Baseline,
                            read: Sequence[_Record]) -> DriftMonitor:
    """The service's reload of a baseline whose bins differ (``Service._reload``,
    ``_replace_monitor`` and ``_refill``): ``swap_baseline`` refuses it, a new monitor on it
    takes the running one's partition count, and is refilled, without counting, with what
    the service reads back from Kafka below the committed offsets (here every message
    ``read``): each partition's last ``partition_window_size`` messages (a count window),
    or those from the start of the oldest pane of a window that ends at the newest of them
    (a time window); partition by partition, in offset order."""
    before = running.report()
    assert not running.swap_baseline(baseline, "new.json")
    assert running.baseline is not baseline
    assert _divergences(running.report()) == _divergences(before)
    replaced = DriftMonitor(running.config, baseline, "new.json")
    replaced.set_partition_count(running.partition_count)
    history = sorted(read, key=lambda record: (record.partition, record.offset))
    share = replaced.partition_window_size
    if share is not None:
        history = [record for partition in sorted({r.partition for r in history})
                   for record in [r for r in history if r.partition == partition][-share:]]
    else:
        window = running.config.window
        assert window.duration_s is not None
        pane_s = window.duration_s / window.panes
        newest_s = max(record.timestamp_ms for record in history) / 1000.0
        since_ms = math.floor((math.floor(newest_s / pane_s) - window.panes + 1)
                              * pane_s * 1000.0)
        history = [record for record in history if record.timestamp_ms >= since_ms]
    _process(replaced, history, refill=True)
    return replaced


@pytest.mark.parametrize("window", [{"size": 240, "panes": 4}, {"size": "8s", "panes": 4}],
                         ids=["count", "time"])
def test_a_new_baseline_with_other_bins_rebins_the_window_like_a_fresh_monitor_on_it(window):
    """After a reload with new bins the window holds the same messages, binned by the new
    baseline: KL, JS, PSI, p-value, status and window counts equal those of a monitor
    built on the new baseline that read the whole stream, then and as the window slides
    on; the running totals start again with the messages after the reload."""
    config = _config(window=window)
    old, new = _baseline(config), _baseline(config, seed=11)
    assert not old["amount"].same_bins(new["amount"])
    offsets: dict[int, int] = {}
    # Polls of 20 messages, a pane of a partition's count window (240 / 3 partitions / 4
    # panes): a partition's window is then exactly its last 80 messages, which the service
    # reads back, as it is for the monitor that read everything.
    polls = _topic(_stream(800, seed=3), 0, seed=4, partitions=3, chunk=20,
                   offsets=offsets)
    later = _topic(_stream(300, seed=5, shift=9.0), 80_000, seed=6, partitions=3, chunk=20,
                   offsets=offsets)
    running = DriftMonitor(config, old)
    fresh = DriftMonitor(config, new)
    for monitor in (running, fresh):
        monitor.set_partition_count(3)
        for poll in polls:
            _process(monitor, poll)
    assert running.report().window_messages < 800  # the window has slid

    replaced = _reload_with_other_bins(running, new, [r for poll in polls for r in poll])
    report, expected = replaced.report(), fresh.report()
    assert report.baseline_hash == new.content_hash()
    assert report.window_messages == expected.window_messages
    # A partition none of whose messages is left in a time window is not read back: shown
    # by the fresh monitor with 0 messages, by the refilled one not at all.
    assert report.partition_messages == {
        partition: count for partition, count in expected.partition_messages.items() if count}
    _assert_same_divergences(_divergences(report), _divergences(expected))
    assert report.messages == 0
    assert all(sum(feature.bin_totals) == 0 for feature in report.features.values())
    # Re-binned: the window's amounts counted in the new bins (the old ones differ).
    assert report.features["amount"].window_counts != \
        running.report().features["amount"].window_counts
    assert report.features["amount"].status != "insufficient_data"

    counted_after = DriftMonitor(config, new)
    counted_after.set_partition_count(3)
    for poll in later:  # the window slides on past the refilled messages
        _process(replaced, poll)
        _process(fresh, poll)
        _process(counted_after, poll)
        _assert_same_divergences(_divergences(replaced.report()),
                                 _divergences(fresh.report()))
        assert replaced.report().window_messages == fresh.report().window_messages
    after = replaced.report()
    assert after.messages == 300
    assert {name: f.bin_totals for name, f in after.features.items()} == {
        name: f.bin_totals for name, f in counted_after.report().features.items()}
    assert after.features["amount"].status == "drift"


def test_event_time_window_uses_the_time_field_and_counts_late_and_bad_times():
    config = _config(window={"size": "4s", "panes": 4, "time_field": "ts"})
    monitor = DriftMonitor(config, _baseline(config))

    def message(ts: object) -> bytes:
        return json.dumps({"ts": ts, "order": {"amount": 10.0}, "channel": "web"}).encode()

    monitor.process_payloads([message(t) for t in (0.5, 1.5, 2.5, 3.5)])
    assert monitor.report().window_messages == 4
    monitor.process_payloads([message(t) for t in (5.2, 0.1, "yesterday", None, 4.9)])
    report = monitor.report()
    # Window (1, 5]: panes 2, 3, 4, 5 -> messages at 2.5, 3.5, 5.2, 4.9; 0.1 is late.
    assert report.window_messages == 4
    assert report.late == 1
    assert report.invalid_reasons == {"bad_timestamp": 2}


def test_event_time_window_falls_back_to_record_timestamps():
    config = _config(window={"size": "4s", "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    payload = b'{"order": {"amount": 1.0}, "channel": "web"}'
    monitor.process_payloads([payload] * 3, record_timestamps_s=[0.0, 10.0, 10.5])
    assert monitor.report().window_messages == 2
    with pytest.raises(ValueError, match="record timestamps"):
        monitor.process_payloads([payload])


def test_a_change_detector_flags_the_drift_and_stays_quiet_before_it():
    config = _config(window={"size": 400, "panes": 4}, divergence={"min_samples": 100})
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    rng = np.random.default_rng(5)

    def batch(shift: float) -> list[bytes]:
        amounts = rng.gamma(2.0, 10.0, 100) + shift
        return [json.dumps({"order": {"amount": float(a)}, "channel": "web"}).encode()
                for a in amounts]

    for _ in range(60):
        monitor.process_payloads(batch(0.0))
    before = monitor.report().features["amount"].change_points
    for _ in range(60):
        monitor.process_payloads(batch(25.0))
    after = monitor.report()
    assert before == 0
    assert after.features["amount"].change_points >= 1
    assert after.features["amount"].drift
    assert after.panes_closed == 119


def _mixed_messages(count: int, seed: int) -> list[dict]:
    """Amounts over and beyond the reference range, some missing or of a wrong type;
    channels known, unseen, missing or not text."""
    rng = np.random.default_rng(seed)
    amounts: list[object] = rng.gamma(2.0, 12.0, count).round(3).tolist()
    channels: list[object] = rng.choice(CHANNELS, count).tolist()
    for index in range(0, count, 7):
        amounts[index] = None
    for index in range(3, count, 11):
        amounts[index] = "12"
    for index in range(5, count, 13):
        channels[index] = None if index % 2 else ["web"]
    return [{"order": {"amount": a}, "channel": c}
            for a, c in zip(amounts, channels, strict=True)]


def _holm_adjusted_oracle(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's adjusted p-values, step by step: the i-th smallest of m times (m - i), never
    below the one before it, at most 1."""
    adjusted, running = {}, 0.0
    for rank, name in enumerate(sorted(p_values, key=lambda name: p_values[name])):
        running = max(running, min(1.0, p_values[name] * (len(p_values) - rank)))
        adjusted[name] = running
    return adjusted


def _psi_oracle(counts: np.ndarray, q: np.ndarray, alpha: float) -> float:
    smoothed = (counts + alpha) / (counts.sum() + alpha * len(counts))
    return float(np.sum((smoothed - q) * np.log(smoothed / q)))


def test_report_fields_equal_their_oracles_and_its_json_holds_them():
    from streamdrift.config import format_duration

    for window, expected_window in [({"size": 200, "panes": 4}, "200 messages, 4 panes"),
                                    ({"size": "90s", "panes": 3},
                                     f"{format_duration(90.0)}, 3 panes")]:
        config = _config(window=window, divergence={"threshold": 0.05, "min_samples": 20})
        baseline = _baseline(config)
        monitor = DriftMonitor(config, baseline)
        messages = _mixed_messages(150, seed=7)
        monitor.process_payloads([json.dumps(m).encode() for m in messages],
                                 record_timestamps_s=np.linspace(0.0, 20.0, len(messages)))
        report = monitor.report()
        assert report.window == expected_window
        assert report.baseline_hash == baseline.content_hash()
        assert report.baseline_created_at == baseline.created_at
        p_values = {name: f.p_value for name, f in report.features.items()
                    if f.p_value is not None}
        significant = holm_oracle(p_values, alpha=0.001)
        for spec in config.features:
            feature = report.features[spec.name]
            reference = baseline[spec.name]
            counts = np.array(feature.window_counts)
            assert (feature.name, feature.type) == (spec.name, spec.type)
            assert (feature.threshold, feature.min_samples) == (0.05, 20)
            assert (feature.alpha, feature.reference_samples) == (0.001, reference.count)
            assert feature.baseline_missing_ratio == reference.missing_ratio
            assert feature.status == ("drift" if feature.kl is not None and feature.kl > 0.05
                                      and spec.name in significant else "ok")
            q = reference.probabilities
            assert feature.psi == pytest.approx(_psi_oracle(counts, q, baseline.smoothing),
                                                rel=1e-9)
            _, _, expected_p = two_sample_oracle(counts, reference.counts)
            assert feature.p_value == pytest.approx(expected_p, rel=1e-6, abs=1e-300)
            occupied = np.count_nonzero(reference.counts)
            assert feature.kl_noise_floor == pytest.approx(
                (occupied - 1) / 2 * (1 / counts.sum() + 1 / reference.count), rel=1e-12)
            # Bonferroni over the features: the G a feature's test rejects above.
            assert feature.g_critical == pytest.approx(
                chi2.isf(0.001 / len(config.features), occupied - 1), rel=1e-9)
            assert feature.p_value_adjusted == pytest.approx(
                _holm_adjusted_oracle(p_values)[spec.name], rel=1e-12)
            others = counts.sum() - counts[:-1].sum() if spec.type == "categorical" else 0
            assert feature.unseen_total == others
        # The JSON report: every field, as plain JSON values, counters as integers.
        document = report.to_json()
        assert json.loads(json.dumps(document)) == document
        assert document["messages"] == report.messages == len(messages)
        assert document["invalid"] == report.invalid
        assert document["invalid_reasons"] == dict(sorted(report.invalid_reasons.items()))
        assert document["late"] == report.late
        assert document["window"] == {"description": report.window,
                                      "messages": report.window_messages,
                                      "panes_closed": report.panes_closed}
        assert document["baseline"] == {"hash": report.baseline_hash,
                                        "created_at": report.baseline_created_at}
        assert document["drifted"] == report.drifted
        for name, feature in report.features.items():
            entry = document["features"][name]
            for key in ("type", "status", "drift", "kl", "js", "psi", "p_value",
                        "p_value_adjusted", "kl_noise_floor", "threshold", "alpha", "samples",
                        "min_samples", "reference_samples", "missing", "invalid",
                        "missing_ratio", "baseline_missing_ratio", "change_points",
                        "unseen_total", "out_of_range_total"):
                assert entry[key] == getattr(feature, key), key
            assert entry["invalid_values_total"] == dict(feature.invalid_values_total)
            assert entry["window_counts"] == list(feature.window_counts)
            for total in (feature.change_points, feature.unseen_total,
                          feature.out_of_range_total, feature.missing_total,
                          *feature.bin_totals, *feature.invalid_values_total.values()):
                assert type(total) is int


def test_an_empty_window_reports_no_divergence():
    config = _config()
    report = DriftMonitor(config, _baseline(config)).report()
    assert (report.messages, report.window_messages, report.drifted) == (0, 0, [])
    for feature in report.features.values():
        assert feature.status == "insufficient_data"
        assert (feature.kl, feature.js, feature.psi, feature.p_value) == (None,) * 4
        assert feature.missing_ratio is None
        assert feature.samples == 0


def test_too_few_values_give_no_divergence():
    config = _config(divergence={"threshold": 0.1, "min_samples": 50})
    monitor = DriftMonitor(config, _baseline(config))
    monitor.process_payloads([json.dumps(m).encode() for m in _mixed_messages(12, seed=1)])
    for feature in monitor.report().features.values():
        assert 0 < feature.samples < 50
        assert feature.status == "insufficient_data"
        assert (feature.kl, feature.js, feature.psi, feature.p_value) == (None,) * 4


def test_running_totals_add_up_over_batches():
    config = _config()
    baseline = _baseline(config)
    payloads = [json.dumps(m).encode() for m in _mixed_messages(40, seed=3)]
    payloads += [b'{"order": {"amount": 1e9}, "channel": "tv"}', b'{"order": {"amount": -5}}']
    once = DriftMonitor(config, baseline)
    once.process_payloads(payloads)
    twice = DriftMonitor(config, baseline)
    twice.process_payloads(payloads)
    twice.process_payloads(payloads)
    for name, feature in once.report().features.items():
        again = twice.report().features[name]
        assert again.bin_totals == tuple(2 * t for t in feature.bin_totals)
        assert again.missing_total == 2 * feature.missing_total
        assert again.unseen_total == 2 * feature.unseen_total
        assert again.out_of_range_total == 2 * feature.out_of_range_total
        assert again.invalid_values_total == {
            reason: 2 * count for reason, count in feature.invalid_values_total.items()}
    assert once.report().features["amount"].out_of_range_total >= 2


def test_columns_are_counted_like_the_same_messages():
    config = _config(window={"size": 40, "panes": 4})
    baseline = _baseline(config)
    messages = _mixed_messages(130, seed=5)
    from_payloads = DriftMonitor(config, baseline)
    from_columns = DriftMonitor(config, baseline)
    for start in range(0, len(messages), 25):
        batch = messages[start:start + 25]
        from_payloads.process_payloads([json.dumps(m).encode() for m in batch])
        from_columns.process_columns(extract_features(batch, config.features))
        expected, report = from_payloads.report(), from_columns.report()
        assert (report.messages, report.window_messages, report.panes_closed) == (
            expected.messages, expected.window_messages, expected.panes_closed)
        for name, feature in report.features.items():
            assert dataclasses.asdict(feature) == dataclasses.asdict(expected.features[name])


def test_columns_need_a_count_window():
    config = _config(window={"size": "4s", "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    columns = extract_features([{"order": {"amount": 1.0}, "channel": "web"}], config.features)
    with pytest.raises(ValueError, match=r"^process_columns needs a count window "
                                         r"\(window\.size in messages\)$"):
        monitor.process_columns(columns)


def test_messages_refused_before_decoding_are_counted():
    config = _config()
    monitor = DriftMonitor(config, _baseline(config))
    monitor.process_payloads([b"[]"])
    monitor.reject("oversized", 3)
    monitor.reject("oversized")
    monitor.reject("empty")
    report = monitor.report()
    assert report.messages == 6
    assert report.invalid == 6
    assert report.invalid_reasons == {"not_object": 1, "oversized": 4, "empty": 1}


def test_a_baseline_that_does_not_fit_is_refused_by_its_name():
    from streamdrift.errors import BaselineError

    config = _config()
    right = _baseline(config)
    wrong = Baseline({**right.features,
                      "amount": dataclasses.replace(right["amount"], type="categorical")},
                     right.created_at, right.source, right.smoothing)
    with pytest.raises(BaselineError, match=r"^baseline b\.json does not fit the config: "
                                            r"feature 'amount' is numeric"):
        DriftMonitor(config, wrong, "b.json")
    with pytest.raises(BaselineError, match=r"^baseline baseline does not fit"):
        DriftMonitor(config, wrong)
    monitor = DriftMonitor(config, _baseline(config))
    with pytest.raises(BaselineError, match=r"^baseline new\.json does not fit"):
        monitor.swap_baseline(wrong, "new.json")
    with pytest.raises(BaselineError, match=r"^baseline baseline does not fit"):
        monitor.swap_baseline(wrong)


class _RecordingDetector:
    """Records the series it is fed and reports a change at every value."""

    def __init__(self) -> None:
        self.series: list[float] = []

    def update(self, x: float) -> None:
        self.series.append(x)

    @property
    def drift_detected(self) -> bool:
        return True


def test_each_detector_sees_its_kl_over_threshold_at_every_pane_close_with_enough_values():
    features = [{"name": "amount", "path": "order.amount", "type": "numeric", "bins": 6,
                 "threshold": 0.2},
                {"name": "channel", "type": "categorical", "threshold": 0.05}]
    config = _config(features=features, window={"size": 400, "panes": 4},
                     divergence={"min_samples": 100})
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    recorders = [_RecordingDetector(), _RecordingDetector()]
    monitor._detectors = list(recorders)
    expected: list[list[float]] = [[], []]

    def oracle(pane_id: int) -> None:
        # The window as the pane closes; amount lacks values at first, channel has exactly
        # min_samples at the first close.
        counts = np.asarray(monitor.histogram.counts)
        for index, spec in enumerate(config.features):
            start = int(monitor.layout.offsets[index])
            window = counts[start:start + baseline[spec.name].n_bins]
            if window.sum() >= 100:
                kl = entropy(window, baseline[spec.name].probabilities)
                expected[index].append(kl / config.threshold_for(spec))

    monitor.histogram.pane_listeners.append(oracle)
    rng = np.random.default_rng(9)
    payloads = [json.dumps({"order": {"amount": None if i < 250 else float(a)},
                            "channel": str(c)}).encode()
                for i, (a, c) in enumerate(zip(rng.gamma(2.0, 10.0, 1200),
                                               rng.choice(CHANNELS, 1200), strict=True))]
    for start in range(0, len(payloads), 90):
        monitor.process_payloads(payloads[start:start + 90])
    assert len(expected[1]) == monitor.panes_closed == 11
    assert 0 < len(expected[0]) < len(expected[1])
    for recorder, series in zip(recorders, expected, strict=True):
        assert recorder.series == pytest.approx(series, rel=1e-9, abs=1e-12)
    report = monitor.report()
    assert [report.features[s.name].change_points for s in config.features] == [
        len(series) for series in expected]


def test_event_times_in_milliseconds_fill_panes_of_their_duration():
    config = _config(window={"size": "8s", "panes": 4, "time_field": "ts", "time_unit": "ms"})
    monitor = DriftMonitor(config, _baseline(config))
    times_ms = [0, 1999, 2000, 4100, 5999, 6000, 7500, 9999, 10000, 11000]
    channels = [CHANNELS[i % 4] for i in range(len(times_ms))]
    monitor.process_payloads([json.dumps({"ts": t, "order": {"amount": 5.0}, "channel": c})
                              .encode() for t, c in zip(times_ms, channels, strict=True)])
    # Panes of 2 s; the newest is pane 5, so the window holds panes 2 to 5.
    panes = [t // 2000 for t in times_ms]
    in_window = [c for c, p in zip(channels, panes, strict=True) if p > max(panes) - 4]
    report = monitor.report()
    assert report.window_messages == len(in_window)
    categories = _baseline(config)["channel"].categories
    counted = np.bincount([categories.index(c) if c in categories else len(categories)
                           for c in in_window], minlength=len(categories) + 1)
    assert list(report.features["channel"].window_counts) == counted.tolist()


def test_bad_timestamps_are_rejected_by_position_and_counted_over_batches():
    config = _config(window={"size": "4s", "panes": 4, "time_field": "ts"})
    monitor = DriftMonitor(config, _baseline(config))

    def message(ts: object) -> bytes:
        return json.dumps({"ts": ts, "order": {"amount": 10.0}, "channel": "web"}).encode()

    rejected = monitor.process_payloads([message("soon"), b"[]", message(1.0), message(None)])
    assert rejected == [(0, "bad_timestamp"), (1, "not_object"), (3, "bad_timestamp")]
    assert monitor.report().window_messages == 1  # the one good message of the batch counts
    assert monitor.process_payloads([message(None), message([1])]) == [
        (0, "bad_timestamp"), (1, "bad_timestamp")]
    report = monitor.report()
    assert report.invalid_reasons == {"bad_timestamp": 4, "not_object": 1}
    assert (report.messages, report.window_messages) == (6, 1)


def test_event_times_read_every_unit():
    from datetime import UTC, datetime

    from streamdrift.monitor import event_times_s

    times, usable = event_times_s([None, "soon", "2024-03-01T10:00:00", "2024-03-01T10:00:00+02:00",
                                   5], "iso")
    assert usable.tolist() == [False, False, True, True, False]
    # A time without an offset is UTC.
    assert times[2] == datetime(2024, 3, 1, 10, tzinfo=UTC).timestamp()
    assert times[3] == datetime(2024, 3, 1, 8, tzinfo=UTC).timestamp()
    times, usable = event_times_s([1500, None, "1", 2.5], "ms")
    assert usable.tolist() == [True, False, False, True]
    assert times[usable].tolist() == [1500 / 1000, 2.5 / 1000]
    times, usable = event_times_s([1500, 2.5], "s")
    assert times.tolist() == [1500.0, 2.5]


def test_refilled_messages_keep_their_record_timestamps():
    config = _config(window={"size": "4s", "panes": 4})
    baseline = _baseline(config)
    payloads = [b'{"order": {"amount": 1.0}, "channel": "web"}'] * 4
    timestamps = [0.5, 1.5, 6.0, 6.5]  # the first two have left a window ending at 6.5
    refilled = DriftMonitor(config, baseline)
    refilled.refill(payloads, record_timestamps_s=timestamps)
    counted = DriftMonitor(config, baseline)
    counted.process_payloads(payloads, record_timestamps_s=timestamps)
    assert refilled.report().window_messages == counted.report().window_messages == 2
    assert refilled.report().messages == 0


def test_an_event_time_without_an_offset_is_utc_in_any_time_zone(monkeypatch):
    import time
    from datetime import UTC, datetime

    from streamdrift.monitor import event_times_s

    expected = datetime(2024, 3, 1, 10, tzinfo=UTC).timestamp()
    # POSIX zone strings (UTC-5, UTC+5:30): no time zone database needed.
    for zone in ("EST5", "IST-5:30"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        try:
            times, usable = event_times_s(["2024-03-01T10:00:00"], "iso")
        finally:
            monkeypatch.undo()
            time.tzset()
        assert usable.tolist() == [True]
        assert times[0] == expected


def test_the_bins_say_what_moved_and_their_terms_sum_to_the_kl():
    """Each bin's term of the KL against scipy's rel_entr of the same shares; the terms of a
    feature sum to its reported KL; labels and shares in bin order, in the JSON too."""
    config = _config(window={"size": 400, "panes": 4}, divergence={"min_samples": 20})
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    monitor.process_payloads(_stream(300, seed=6, shift=9.0))
    report = monitor.report()
    document = report.to_json()["features"]
    for name, feature in report.features.items():
        counts = np.array(feature.window_counts, dtype=np.float64)
        q = baseline[name].probabilities
        assert feature.kl is not None
        assert feature.contributions is not None
        assert feature.window_probabilities is not None
        assert feature.window_probabilities == pytest.approx((counts / counts.sum()).tolist())
        assert list(feature.contributions) == pytest.approx(
            rel_entr(counts / counts.sum(), q).tolist(), rel=1e-12, abs=1e-15)
        assert math.fsum(feature.contributions) == pytest.approx(feature.kl, rel=1e-9)
        assert feature.bin_labels == baseline[name].bin_labels
        assert document[name]["bins"] == [
            {"label": label, "reference": reference, "window": share, "contribution": term}
            for label, reference, share, term in zip(
                baseline[name].bin_labels, q.tolist(), feature.window_probabilities,
                feature.contributions, strict=True)]
        top = feature.top_contributions()
        assert [entry["contribution"] for entry in top] == sorted(
            (t for t in feature.contributions if t > 0 and t >= 0.01 * feature.kl),
            reverse=True)[:3]
    assert report.features["amount"].drift  # shifted by 9: its top bins are the high ones


def test_a_window_without_values_has_no_shares_or_terms():
    config = _config()
    report = DriftMonitor(config, _baseline(config)).report()
    for feature in report.features.values():
        assert feature.window_probabilities is None
        assert feature.contributions is None
        assert feature.top_contributions() == []
        assert [entry["window"] for entry in feature.bins()] == [None] * len(feature.bin_labels)


@pytest.mark.parametrize("window", [{"size": 40, "panes": 4},
                                    {"size": "8s", "panes": 4, "time_field": "ts"}])
def test_a_snapshot_at_every_pane_close_holds_the_window_of_that_moment(window):
    """The pane observers see, at each close, the KL of the messages then in the window
    (a batch recomputation with np.bincount and scipy), and where the input was."""
    config = _config(window=window, divergence={"min_samples": 5})
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    snapshots: list[PaneSnapshot] = []
    monitor.pane_observers.append(snapshots.append)
    rng = np.random.default_rng(4)
    messages: list[dict[str, Any]] = [
        {"order": {"amount": float(a)}, "channel": "web", "ts": i / 5}
        for i, a in enumerate(rng.gamma(2.0, 10.0, 230))]
    payloads = [json.dumps(m).encode() for m in messages]
    payloads.insert(17, b"not json")  # a refused message shifts the positions after it
    for start in range(0, len(payloads), 23):
        monitor.process_payloads(payloads[start:start + 23])
    assert snapshots
    event_time = "time_field" in window
    pane_length = 10  # messages per pane: 40 / 4, and 2 s of 5 messages a second
    for snapshot in snapshots:
        closing = (snapshot.pane + 1) * pane_length  # the message opening the next pane
        # Messages read before it: the refused one counts when it came before.
        assert snapshot.messages == closing + (1 if closing >= 17 else 0)
        assert snapshot.event_time_s == ((snapshot.pane + 1) * 2.0 if event_time else None)
        in_window = messages[max(0, closing - 4 * pane_length):closing]
        values = np.array([m["order"]["amount"] for m in in_window])
        counts = np.bincount(np.searchsorted(baseline["amount"].edges, values, side="right"),
                             minlength=baseline["amount"].n_bins)
        assert snapshot.report.features["amount"].kl == pytest.approx(
            entropy(counts, baseline["amount"].probabilities), rel=1e-9)
    assert [s.pane for s in snapshots] == list(range(len(snapshots)))


def test_missing_values_stay_missing_beside_a_message_with_a_bad_event_time():
    # Found by fuzzing (tests/fuzz/corpus/decoding/missing-value-in-a-batch-with-a-bad-event-
    # time): the messages kept beside one with a bad event time were binned from columns
    # that had lost their features' missing values, and -1 here was counted in a bin.
    config = _config(window={"size": "4s", "panes": 4, "time_field": "ts"},
                     input={"missing_values": [-1]})
    monitor = DriftMonitor(config, _baseline(config))
    payloads = [json.dumps({"order": {"amount": -1}, "channel": "web", "ts": 1.0}).encode(),
                json.dumps({"order": {"amount": 5.0}, "channel": "web", "ts": "soon"}).encode()]
    assert monitor.process_payloads(payloads) == [(1, "bad_timestamp")]
    amount = monitor.report().features["amount"]
    assert (amount.missing_total, sum(amount.bin_totals)) == (1, 0)


def _fleet_stream(seed: int, partitions: int, count: int
                  ) -> tuple[list[bytes], list[int]]:
    """``count`` messages spread over ``partitions`` partitions at random (uneven),
    drifting in the second half."""
    payloads = _stream(count // 2, seed) + _stream(count - count // 2, seed + 1, shift=8.0)
    keys = np.random.default_rng(seed).choice(partitions, count,
                                              p=np.linspace(1, 3, partitions) /
                                              np.linspace(1, 3, partitions).sum())
    return payloads, keys.tolist()


def _feed(monitor: DriftMonitor, payloads: list[bytes], keys: list[int], owned: set[int],
          batch: int) -> None:
    """Feed the messages of the ``owned`` partitions in polls of ``batch`` messages, each
    poll in runs of one partition (as a Kafka client hands them over)."""
    mine = [index for index, key in enumerate(keys) if key in owned]
    for start in range(0, len(mine), batch):
        chunk = sorted(mine[start:start + batch], key=lambda index: keys[index])
        runs, previous = [], None
        for position, index in enumerate(chunk):
            if keys[index] != previous:
                runs.append((keys[index], position))
                previous = keys[index]
        monitor.process_payloads([payloads[index] for index in chunk], partitions=runs)


@pytest.mark.parametrize(("partitions", "size", "panes"), [(4, 400, 4), (6, 600, 5),
                                                           (3, 100, 10)])
def test_a_group_of_consumers_holds_the_window_of_one_consumer_of_the_whole_topic(
        partitions, size, panes):
    """However the partitions are spread over members and however the polls interleave
    them, the members' windows add up to one consumer's, which is the last
    size/partitions messages of each partition (batch numpy over the messages)."""
    config = _config(window={"size": size, "panes": panes})
    baseline = _baseline(config)
    payloads, keys = _fleet_stream(7, partitions, 3000)
    solo = DriftMonitor(config, baseline)
    assert solo.set_partition_count(partitions)
    _feed(solo, payloads, keys, set(range(partitions)), batch=97)
    members = [{p for p in range(partitions) if p % 3 == member} for member in range(3)]
    fleet = []
    for owned, batch in zip(members, (31, 250, 1000), strict=True):
        monitor = DriftMonitor(config, baseline)
        monitor.set_partition_count(partitions)
        _feed(monitor, payloads, keys, owned, batch)
        fleet.append(monitor)
    share = size // partitions // panes * panes
    assert solo.partition_window_size == share
    pane = share // panes
    expected = np.zeros(solo.layout.n_slots, dtype=np.int64)
    for partition in range(partitions):
        indices = [index for index, key in enumerate(keys) if key == partition]
        newest = (len(indices) - 1) // pane
        in_window = indices[max(0, (newest - panes + 1) * pane):]
        expected += _window_slots(solo, [payloads[index] for index in in_window])
    np.testing.assert_array_equal(solo.histogram.counts, expected)
    np.testing.assert_array_equal(sum(np.asarray(m.histogram.counts) for m in fleet),
                                  expected)
    report = solo.report()
    assert report.partition_messages == {
        partition: _count_window_length(keys.count(partition), pane, panes)
        for partition in range(partitions)}
    assert report.window == (f"{share} messages of each of {partitions} partitions, "
                             f"{panes} panes")


def _count_window_length(messages: int, pane: int, panes: int) -> int:
    """How many of a partition's ``messages`` its window holds: the newest (partial) pane
    and the ``panes - 1`` before it."""
    newest = (messages - 1) // pane
    return messages - max(0, (newest - panes + 1) * pane)


def _window_slots(monitor: DriftMonitor, payloads: list[bytes]) -> np.ndarray:
    """The slot counts of ``payloads`` alone: a fresh monitor with a window that holds them
    all (the oracle's binning is the engine's, already held to its own oracle above)."""
    whole = dataclasses.replace(monitor.config, window=dataclasses.replace(
        monitor.config.window, size=max(1, len(payloads)), panes=1))
    fresh = DriftMonitor(whole, monitor.baseline)
    if payloads:
        fresh.process_payloads(payloads)
    return np.asarray(fresh.histogram.counts)


def test_a_partition_that_moves_away_takes_exactly_its_messages_with_it():
    config = _config(window={"size": 400, "panes": 4})
    baseline = _baseline(config)
    payloads, keys = _fleet_stream(3, 4, 1600)
    monitor = DriftMonitor(config, baseline)
    monitor.set_partition_count(4)
    _feed(monitor, payloads, keys, {0, 1, 2, 3}, batch=200)
    kept = DriftMonitor(config, baseline)
    kept.set_partition_count(4)
    _feed(kept, payloads, keys, {0, 2, 3}, batch=200)
    removed = monitor.drop_partition(1)
    assert removed == _count_window_length(keys.count(1), 25, 4)
    np.testing.assert_array_equal(monitor.histogram.counts, kept.histogram.counts)
    _assert_same_divergences(_divergences(monitor.report()), _divergences(kept.report()))
    assert 1 not in monitor.report().partition_messages


def test_a_new_partition_count_divides_the_window_again_and_empties_it():
    config = _config(window={"size": 400, "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    assert not monitor.set_partition_count(1)
    assert monitor.partition_window_size == 400
    monitor.process_payloads(_stream(50, 1), partitions=[(0, 0)])
    assert monitor.set_partition_count(3)
    assert monitor.partition_window_size == 132  # 400 / 3, whole panes of 33
    assert monitor.report().window_messages == 0
    assert monitor.set_partition_count(1000)
    assert monitor.partition_window_size == 4  # one message a pane at least
    with pytest.raises(ValueError, match="at least one partition"):
        monitor.set_partition_count(0)


def test_an_event_time_too_far_out_for_a_pane_number_is_a_bad_timestamp():
    # Found by fuzzing (tests/fuzz/corpus/decoding/event-time-beyond-int64-panes): the pane
    # number of a time of 1.8e32 ms did not fit an int64, and numpy's cast made one up.
    config = _config(window={"size": "4s", "panes": 4, "time_field": "ts", "time_unit": "ms"})
    monitor = DriftMonitor(config, _baseline(config))
    payloads = [json.dumps({"order": {"amount": 5.0}, "channel": "web", "ts": ts}).encode()
                for ts in (1000, 1.8e32, -1e300, 2000)]
    assert monitor.process_payloads(payloads) == [(1, "bad_timestamp"), (2, "bad_timestamp")]
    assert monitor.report().features["amount"].samples == 2
    by_record = DriftMonitor(_config(window={"size": "4s", "panes": 4}), _baseline(config))
    assert by_record.process_payloads(payloads[:2], [1.0, 1e300]) == [(1, "bad_timestamp")]


# ---- compare: two datasets, one window --------------------------------------------------------

def _columns(config: Config, messages: list[dict]) -> dict[str, FeatureColumn]:
    return dict(zip([spec.name for spec in config.features],
                    extract_features(messages, config.features), strict=True))


def _without_created_at(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "baseline": {**document["baseline"], "created_at": None}}


def test_compare_is_all_the_rows_as_one_window_against_a_baseline_of_the_reference():
    config = _config(baseline={"bins": 5, "max_categories": 3, "smoothing": 0.25})
    reference = _mixed_messages(400, seed=21)
    current = _mixed_messages(250, seed=22)
    for message in current[::2]:
        if isinstance(message["order"]["amount"], float):
            message["order"]["amount"] += 15.0
    reference_columns, current_columns = _columns(config, reference), _columns(config, current)

    baseline = reference_baseline(config, reference_columns, "reference.jsonl")
    assert (baseline.source, baseline.smoothing) == ("reference.jsonl", 0.25)
    assert baseline["amount"].n_bins == 6  # the feature's own bins, not baseline.bins
    channels = Counter(m["channel"] for m in reference if isinstance(m["channel"], str))
    ranked = sorted(channels.items(), key=lambda item: (-item[1], item[0]))
    assert baseline["channel"].categories == tuple(name for name, _ in ranked[:3])
    for name in ("amount", "channel"):
        counts = baseline[name].counts
        np.testing.assert_allclose(baseline[name].probabilities,
                                   (counts + 0.25) / (counts.sum() + 0.25 * len(counts)))

    report = compare_to_baseline(config, baseline, current_columns, {"not_json": 2})
    assert report.window == "one window of 250 rows"
    assert (report.messages, report.invalid_reasons) == (252, {"not_json": 2})
    assert report.window_messages == 250  # all of them, whatever the config's window
    assert report.baseline_hash == baseline.content_hash()
    for spec in config.features:
        feature, reference_feature = report.features[spec.name], baseline[spec.name]
        column = current_columns[spec.name]
        usable = column.usable
        counts = np.bincount(reference_feature.bin(column)[usable],
                             minlength=reference_feature.n_bins)
        assert list(feature.window_counts) == counts.tolist()
        assert feature.kl == pytest.approx(entropy(counts, reference_feature.probabilities),
                                           rel=1e-9)
        assert feature.change_points == 0
    # The same as a monitor whose one pane holds every row.
    whole = dataclasses.replace(config, window=dataclasses.replace(
        config.window, size=250, panes=1))
    monitor = DriftMonitor(whole, baseline, "reference.jsonl")
    monitor.reject("not_json", 2)
    monitor.process_columns([current_columns[spec.name] for spec in config.features])
    assert report.to_json() == {**monitor.report().to_json(),
                                "window": {**monitor.report().to_json()["window"],
                                           "description": "one window of 250 rows"}}
    assert report.features["amount"].drift

    both = compare_columns(config, reference_columns, current_columns, "reference.jsonl",
                           {"not_json": 2})
    assert _without_created_at(both.to_json()) == _without_created_at(report.to_json())
    nothing = compare_to_baseline(config, baseline, _columns(config, []))
    assert (nothing.window, nothing.window_messages, nothing.messages) == (
        "one window of 0 rows", 0, 0)
    many = 10_001  # more than a window holds by default
    large = compare_to_baseline(config, baseline, {
        "amount": numeric_column(np.linspace(0.0, 80.0, many).tolist()),
        "channel": categorical_column(["web"] * many)})
    assert large.window_messages == many
    assert reference_baseline(config, reference_columns).source == "reference"
    alone = Baseline({"amount": baseline["amount"]}, baseline.created_at, "amount-only.json",
                     baseline.smoothing)
    with pytest.raises(BaselineError, match=r"^baseline amount-only\.json does not fit"):
        compare_to_baseline(config, alone, current_columns)


def test_a_table_is_counted_as_its_columns_are():
    pyarrow = pytest.importorskip("pyarrow")
    config = _config(window={"size": 40, "panes": 4})
    baseline = _baseline(config)
    messages = _mixed_messages(90, seed=23)
    table = pyarrow.table({"amount": [m["order"]["amount"] if not isinstance(
                               m["order"]["amount"], str) else None for m in messages],
                           "channel": [m["channel"] if isinstance(m["channel"], str) else None
                                       for m in messages]})
    by_table, by_columns = DriftMonitor(config, baseline), DriftMonitor(config, baseline)
    for start in range(0, 90, 30):
        part = table.slice(start, 30)
        by_table.process_table(part)
        columns = table_columns(part, config.features)
        by_columns.process_columns([columns[spec.name] for spec in config.features])
    assert by_table.report().to_json() == by_columns.report().to_json()
    assert by_table.report().messages == 90


# ---- the report's details ---------------------------------------------------------------------

def test_a_window_of_exactly_min_samples_values_is_evaluated():
    config = _config(window={"size": 100, "panes": 4}, divergence={"min_samples": 20})
    monitor = DriftMonitor(config, _baseline(config))
    messages = [{"order": {"amount": float(a)}, "channel": "web"} for a in range(1, 20)]
    monitor.process_payloads([json.dumps(m).encode() for m in messages])
    assert monitor.report().features["amount"].status == "insufficient_data"
    monitor.process_payloads([json.dumps({"order": {"amount": 5.0}, "channel": "web"}).encode()])
    feature = monitor.report().features["amount"]
    assert (feature.samples, feature.min_samples) == (20, 20)
    assert feature.kl is not None
    assert feature.p_value_adjusted is not None


def test_min_samples_auto_comes_from_each_feature_s_threshold_bins_and_reference():
    features = [{"name": "amount", "path": "order.amount", "type": "numeric", "bins": 6,
                 "threshold": 0.02},
                {"name": "channel", "type": "categorical", "min_samples": 7}]
    config = _config(features=features, divergence={"threshold": 0.3})
    assert config.divergence.min_samples == "auto"
    baseline = _baseline(config)
    sparse = dataclasses.replace(baseline["amount"], counts=np.array([0, 50, 0, 100, 30, 20]))
    baseline = Baseline({**baseline.features, "amount": sparse}, baseline.created_at,
                        baseline.source, baseline.smoothing)
    assert occupied_bins(sparse) == 4
    assert occupied_bins(dataclasses.replace(sparse, counts=np.zeros(6, dtype=np.int64))) == 6
    report = DriftMonitor(config, baseline).report()
    assert report.features["amount"].min_samples == auto_min_samples(0.02, 4, 200) > 30
    assert report.features["channel"].min_samples == 7
    assert report.features["amount"].g_critical == pytest.approx(chi2.isf(0.001 / 2, 3))


def test_the_window_says_how_it_is_divided_between_partitions():
    config = _config(window={"size": 400, "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    assert monitor.report().window == "400 messages, 4 panes"
    assert monitor.report().partition_messages == {}
    monitor.process_payloads(_stream(10, seed=1))
    assert monitor.report().partition_messages == {}  # no partitions: one stream
    monitor.set_partition_count(2)
    assert monitor.report().window == "200 messages of each of 2 partitions, 4 panes"


def test_a_partition_count_that_keeps_the_share_keeps_the_window():
    config = _config(window={"size": 8, "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    assert monitor.set_partition_count(3)  # 8 / 3 is less than a pane each: one a pane
    monitor.process_payloads(_stream(6, seed=2), partitions=[(0, 0), (1, 3)])
    assert not monitor.set_partition_count(4)  # still one message a pane
    assert monitor.report().window_messages == 6


def test_the_top_contributions_are_positive_terms_of_at_least_a_hundredth_of_the_kl():
    config = _config(window={"size": 400, "panes": 4}, divergence={"min_samples": 10})
    monitor = DriftMonitor(config, _baseline(config))
    monitor.process_payloads(_stream(300, seed=3, shift=5.0))
    feature = monitor.report().features["amount"]
    n = len(feature.bin_labels)
    assert n == 6

    def top(kl: float | None, terms: list[float]) -> list[float]:
        changed = dataclasses.replace(feature, kl=kl, contributions=tuple(terms))
        return [entry["contribution"] for entry in changed.top_contributions(count=n)]

    terms = [0.0, 0.005, -0.02, 0.3, 0.004999, 0.1]
    assert top(0.5, terms) == [0.3, 0.1, 0.005]  # 0.005 is exactly 1 % of 0.5
    assert top(0.0, terms) == [0.3, 0.1, 0.005, 0.004999]  # never a zero term


# ---- decoding paths ---------------------------------------------------------------------------

def test_missing_values_are_missing_on_the_typed_path_before_and_after_a_new_baseline():
    config = _config(input={"missing_values": [-1]})
    baseline = _baseline(config)
    monitor = DriftMonitor(config, baseline)
    payloads = [json.dumps({"order": {"amount": amount}, "channel": "web"}).encode()
                for amount in (-1, 5.0, -1, 7.5)]
    monitor.process_payloads(payloads)
    assert monitor.report().features["amount"].missing_total == 2
    assert monitor.swap_baseline(_reweighted(baseline, seed=2))
    monitor.process_payloads(payloads)
    amount = monitor.report().features["amount"]
    assert (amount.missing_total, sum(amount.bin_totals)) == (4, 4)


def test_missing_values_stay_missing_in_a_batch_with_a_refused_and_a_late_message():
    config = _config(window={"size": "4s", "panes": 4, "time_field": "ts"},
                     input={"missing_values": [-1]})
    monitor = DriftMonitor(config, _baseline(config))
    payloads = [json.dumps({"order": {"amount": -1}, "channel": "web", "ts": 1.0}).encode(),
                json.dumps({"order": {"amount": 5.0}, "channel": "web", "ts": "soon"}).encode(),
                b""]
    assert monitor.process_payloads(payloads) == [(1, "bad_timestamp"), (2, "empty")]
    amount = monitor.report().features["amount"]
    assert (amount.missing_total, sum(amount.bin_totals)) == (1, 0)


def test_event_times_up_to_the_last_whole_pane_number_a_float_holds_are_usable():
    config = _config(window={"size": "40s", "panes": 4})  # panes of 10 s
    monitor = DriftMonitor(config, _baseline(config))
    payload = b'{"order": {"amount": 1.0}, "channel": "web"}'
    limit = 2.0**53 * 10.0
    times = [2.0**53 / 5, limit * 0.75, limit, limit * 1.2]
    assert monitor.process_payloads([payload] * 4, times) == [
        (2, "bad_timestamp"), (3, "bad_timestamp")]


def test_a_topic_of_another_format_is_decoded_by_its_own_format():
    from tests.test_formats import _avro, _messages
    from tests.test_formats import _config as format_config

    avro_config = format_config("avro", formats_by_topic={"legacy": "json"})
    json_config = format_config("json")
    messages = _messages(60, seed=8)
    avro_payloads, schemas = _avro(avro_config, messages)
    baseline = reference_baseline(json_config, _columns(json_config, messages))
    payloads = [json.dumps(m).encode() if i < 30 else avro_payloads[i]
                for i, m in enumerate(messages)]
    runs = [(("legacy", 0), 0), (("events", 0), 30)]
    mixed = DriftMonitor(avro_config, baseline, writer_schemas=schemas)
    assert mixed.process_payloads(payloads, partitions=runs) == []
    plain = DriftMonitor(json_config, baseline)
    plain.process_payloads([json.dumps(m).encode() for m in messages], partitions=runs)
    assert mixed.report().features == plain.report().features


def test_a_protobuf_topic_is_read_with_its_message_class(tmp_path):
    from streamdrift.framing import frame
    from streamdrift.protobuf import load_message_class, message_mapping
    from tests.test_formats import _descriptor_set

    descriptors = _descriptor_set(tmp_path)
    event = load_message_class(descriptors, "shop.Event")
    features = [{"name": "age", "path": "user.age", "type": "numeric"},
                {"name": "plan", "type": "categorical"}]
    config = parse_config({"features": features, "input": {
        "format": "protobuf", "protobuf": {"descriptor_set": str(descriptors),
                                           "message": "shop.Event"}}}, tmp_path, environ={})
    json_config = parse_config({"features": features}, tmp_path, environ={})
    rng = np.random.default_rng(4)
    messages = [event(user={"age": float(age)}, plan=int(plan))
                for age, plan in zip(rng.normal(40, 9, 50), rng.integers(0, 3, 50),
                                     strict=True)]
    as_json = [message_mapping(m) for m in messages]
    baseline = reference_baseline(json_config, _columns(json_config, as_json))
    monitor = DriftMonitor(config, baseline, message_class=event)
    assert monitor.process_payloads(
        [frame(3, m.SerializeToString(), (1,)) for m in messages]) == []
    plain = DriftMonitor(json_config, baseline)
    plain.process_payloads([json.dumps(m).encode() for m in as_json])
    assert monitor.report().features == plain.report().features


# ---- partitions and panes ---------------------------------------------------------------------

def test_a_batch_over_partitions_is_counted_whole_in_an_event_time_window():
    config = _config(window={"size": "40s", "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    payloads = _stream(30, seed=5)
    times = [float(i) for i in range(30)]
    monitor.process_payloads(payloads, times, partitions=[("a", 0), ("b", 10), ("a", 20)])
    report = monitor.report()
    assert report.partition_messages == {"a": 20, "b": 10}
    only = DriftMonitor(config, _baseline(config))
    only.process_payloads(payloads, times)
    for name, feature in report.features.items():
        assert feature.bin_totals == only.report().features[name].bin_totals
        assert sum(feature.bin_totals) + feature.missing_total == 30


@pytest.mark.parametrize("window", [{"size": 40, "panes": 4}, {"size": "40s", "panes": 4}])
def test_a_partition_whose_messages_were_all_refused_holds_no_window(window):
    config = _config(window=window)
    monitor = DriftMonitor(config, _baseline(config))
    monitor.set_partition_count(2)
    monitor.process_payloads([b"x", b"y", *_stream(4, seed=6)], [1.0] * 6,
                             partitions=[(0, 0), (1, 2)])
    assert monitor.report().partition_messages == {1: 4}


def test_pane_snapshots_say_how_many_messages_were_read_when_the_pane_closed():
    """Each snapshot's ``messages``: the input read before the message that opened the next
    pane, refused messages included, across batches, runs of partitions, columns and
    messages dropped for their event time; none while refilling."""
    seen: list[tuple[int, int]] = []

    def observe(snapshot: PaneSnapshot) -> None:
        seen.append((snapshot.pane, snapshot.messages))

    config = _config(window={"size": "4s", "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    monitor.pane_observers.append(observe)
    payload = b'{"order": {"amount": 1.0}, "channel": "web"}'
    monitor.refill([payload] * 3, [0.5, 1.5, 2.5])
    assert seen == []
    monitor.process_payloads([payload, b"x", payload, payload, payload],
                             [3.2, 3.3, float("nan"), 4.5, 5.5], partitions=[("a", 0), ("b", 3)])
    assert seen == [(2, 0), (3, 3), (4, 4)]

    seen.clear()
    counted = _config(window={"size": 4, "panes": 4})  # a pane of one message
    monitor = DriftMonitor(counted, _baseline(counted))
    monitor.pane_observers.append(observe)
    monitor.process_payloads(_stream(3, seed=7))
    columns = _columns(counted, [json.loads(p) for p in _stream(2, seed=8)])
    monitor.process_columns([columns[spec.name] for spec in counted.features])
    assert [messages for _, messages in seen] == [1, 2, 3, 4]
    assert monitor.report().panes_closed == 4


def test_a_partition_taken_back_fills_its_window_from_its_first_message_again():
    config = _config(window={"size": 80, "panes": 4})  # 40 of each partition, panes of 10
    monitor = DriftMonitor(config, _baseline(config))
    monitor.set_partition_count(2)
    monitor.process_payloads(_stream(25, seed=9), partitions=[(0, 0)])
    assert monitor.drop_partition(0) == 25
    assert monitor.drop_partition(7) == 0  # never held
    again = _stream(40, seed=10)
    monitor.process_payloads(again, partitions=[(0, 0)])
    fresh = DriftMonitor(config, _baseline(config))
    fresh.set_partition_count(2)
    fresh.process_payloads(again, partitions=[(0, 0)])
    np.testing.assert_array_equal(monitor.histogram.counts, fresh.histogram.counts)


def test_a_dropped_partition_s_count_is_its_messages_whatever_the_order_of_features():
    features = [{"name": "channel", "type": "categorical"},
                {"name": "amount", "path": "order.amount", "type": "numeric", "bins": 6}]
    config = _config(features=features, window={"size": 400, "panes": 4})
    monitor = DriftMonitor(config, _baseline(config))
    monitor.set_partition_count(2)
    payloads = [json.dumps({"order": {"amount": None if i % 3 else float(a)},
                            "channel": "web"}).encode()
                for i, a in enumerate(np.linspace(0, 90, 30))]
    monitor.process_payloads(payloads, partitions=[(0, 0)])
    assert monitor.drop_partition(0) == 30
