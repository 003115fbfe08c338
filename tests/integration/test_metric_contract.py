"""The metric contract on a live service: what the metric table of
docs/reference/metrics.md promises is what ``/metrics`` serves, after a stream that has
everything (late, missing, invalid and drifting values, refused messages) and is longer
than the window."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamdrift import __version__
from streamdrift.baseline import load_baseline
from streamdrift.config import load_config
from streamdrift.monitor import DriftMonitor
from tests.integration.conftest import (
    FEATURES,
    ServiceFactory,
    demo_messages,
    produce,
    setup_service,
)
from tests.metric_contract import contract_violations

COUNT = 3000
DRIFTED = "age"


def _stream(config: Path) -> list[bytes]:
    """Ten messages a second of event time over 300 s, against a window of 40 s; age
    drifts for the last third; some values missing, of the wrong type, or infinite; five
    messages far too old for the window at the end; two that are not JSON objects."""
    payloads = []
    for index, payload in enumerate(demo_messages(config, COUNT, drifted=(DRIFTED,),
                                                  drift_from=2000)):
        message = json.loads(payload)
        message["ts"] = index / 10
        if index % 97 == 0:
            del message["customer"]["country"]  # missing
        if index % 89 == 0:
            message["usage"]["session_length"] = "long"  # wrong type
        if index == 123:
            message["offer"]["discount_rate"] = float("inf")  # written as Infinity
        payloads.append(json.dumps(message).encode())
    late = [json.loads(payloads[i]) | {"ts": 1.0} for i in range(5)]
    return [*payloads, *(json.dumps(m).encode() for m in late), b"[1]", b"{oops"]


def _bin_oracle(baseline_path: Path, config: Path, payloads: list[bytes]
                ) -> dict[str, list[int]]:
    """Values per baseline bin over the whole stream, binned straight from the baseline
    file's edges and categories."""
    specs = load_config(config, environ={}).features
    baseline = load_baseline(baseline_path)
    totals = {}
    for spec in specs:
        feature = baseline[spec.name]
        bins: list[int] = []
        for payload in payloads:
            try:
                value: object = json.loads(payload)
            except ValueError:
                continue
            for key in spec.path:
                value = value.get(key) if isinstance(value, dict) else None
            if spec.type == "numeric":
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and np.isfinite(value):
                    bins.append(int(np.searchsorted(feature.edges, value, side="right")))
            elif isinstance(value, str):
                categories = list(feature.categories)
                bins.append(categories.index(value) if value in categories
                            else len(categories))
        totals[spec.name] = np.bincount(bins, minlength=feature.n_bins).tolist()
    return totals


def test_the_live_exposition_keeps_the_documented_contract(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory) -> None:
    topic = topic_factory(partitions=1)  # one partition: the service reads the file's order
    config, port = setup_service(tmp_path, bootstrap, topic, window_size="40s", panes=20,
                                 extra={"window": {"time_field": "ts", "time_unit": "s"}})
    payloads = _stream(config)
    produce(bootstrap, topic, payloads)
    service = service_factory(config, port)
    service.wait_until(lambda: service.value("streamdrift_messages_total") == len(payloads),
                       90, what=f"all {len(payloads)} messages counted")
    text = service.scrape_text()
    assert contract_violations(text) == []

    samples = service.scrape()

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    # Everything the stream holds shows, with the values of an in-process run over it.
    monitor = DriftMonitor(load_config(config, environ={}),
                           load_baseline(tmp_path / "baseline.json"))
    monitor.process_payloads(payloads)
    report = monitor.report()
    assert report.late == 5
    assert value("streamdrift_late_messages_total") == report.late
    assert value("streamdrift_invalid_messages_total", reason="not_object") == 1
    assert value("streamdrift_invalid_messages_total", reason="not_json") == 1
    assert value("streamdrift_build_info", version=__version__) == 1
    assert value("streamdrift_feature_drifted", feature=DRIFTED) == 1
    assert value("streamdrift_last_message_timestamp_seconds") > 1.6e9  # the Kafka timestamp
    for name, feature in report.features.items():
        assert value("streamdrift_missing_values_total", feature=name) == feature.missing_total
        assert value("streamdrift_unseen_categories_total", feature=name) == \
            feature.unseen_total
        assert value("streamdrift_out_of_range_total", feature=name) == \
            feature.out_of_range_total
        assert value("streamdrift_drift_changes_total", feature=name) == feature.change_points
        for reason, count in feature.invalid_values_total.items():
            assert value("streamdrift_invalid_values_total", feature=name,
                         reason=reason) == count
    # (message 0 lacks its country and has a wrong session_length, and so has its late copy)
    assert report.features["country"].missing_total == len(range(0, COUNT, 97)) + 1
    assert report.features["session_length"].invalid_values_total == {
        "wrong_type": len(range(0, COUNT, 89)) + 1, "non_finite": 0}
    assert report.features["discount_rate"].invalid_values_total["non_finite"] == 1
    assert report.features[DRIFTED].change_points > 0

    # streamdrift_bin_total counts every value since start, far more than the window holds.
    oracle = _bin_oracle(tmp_path / "baseline.json", config, payloads)
    for name in FEATURES:
        totals = [value("streamdrift_bin_total", feature=name, bin=str(index))
                  for index in range(len(oracle[name]))]
        assert totals == oracle[name], name
        assert sum(totals) > 2 * value("streamdrift_window_samples", feature=name)
