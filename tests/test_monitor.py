"""The whole engine against a batch recomputation over the messages in the window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import entropy

from streamdrift.baseline import Baseline, build_baseline
from streamdrift.config import Config, parse_config
from streamdrift.features import extract_features
from streamdrift.monitor import DriftMonitor
from tests.strategies import js_oracle

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
    columns = dict(zip(["amount", "channel"], extract_features(reference, config.features),
                       strict=True))
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
            assert feature.drift == (feature.kl is not None and feature.kl > 0.1)
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
