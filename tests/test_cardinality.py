"""Values from messages never become series: a hundred thousand categories the baseline has
never seen, each once, leave /metrics with exactly the series it had. They are counted in
the "other" bin and in streamdrift_unseen_categories_total, and named nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamdrift.baseline import build_baseline
from streamdrift.config import parse_config
from streamdrift.exporter import DriftCollector, ServiceStatus, Snapshot, make_registry
from streamdrift.features import categorical_column, numeric_column
from streamdrift.monitor import DriftMonitor

UNSEEN = 100_000
BATCH = 10_000


def _exposition(monitor: DriftMonitor, collector: DriftCollector) -> str:
    collector.publish(Snapshot(monitor.report(), collector.snapshot.baseline,
                               collector.snapshot.status))
    return generate_latest(make_registry(collector)).decode()


def _series(text: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {(sample.name, frozenset(sample.labels.items()))
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_unseen_categories_add_no_series() -> None:
    config = parse_config({"features": [{"name": "amount"},
                                        {"name": "country", "type": "categorical"}],
                           "window": {"size": 1000, "panes": 10}}, Path.cwd(), environ={})
    rng = np.random.default_rng(0)
    known = ["us", "de", "fr", "in"]
    baseline = build_baseline(
        config.features,
        {"amount": numeric_column(rng.normal(size=2000).tolist()),
         "country": categorical_column(rng.choice(known, 2000).tolist())},
        {"amount": 10, "country": 10}, 50, 0.5, "test")
    monitor = DriftMonitor(config, baseline)
    collector = DriftCollector(Snapshot(monitor.report(), baseline, ServiceStatus()))
    monitor.process_payloads([json.dumps({"amount": float(a), "country": str(c)}).encode()
                              for a, c in zip(rng.normal(size=2000), rng.choice(known, 2000),
                                              strict=True)])
    before = _exposition(monitor, collector)

    for start in range(0, UNSEEN, BATCH):
        monitor.process_payloads([b'{"amount": 0.5, "country": "unseen-%d"}' % index
                                  for index in range(start, start + BATCH)])
    after = _exposition(monitor, collector)

    assert _series(after) == _series(before)
    assert len([line for line in after.splitlines() if line and not line.startswith("#")]) \
        == len([line for line in before.splitlines() if line and not line.startswith("#")])
    assert "unseen-" not in after
    unseen = {sample.labels["feature"]: sample.value
              for family in text_string_to_metric_families(after) for sample in family.samples
              if sample.name == "streamdrift_unseen_categories_total"}
    assert unseen == {"amount": 0, "country": UNSEEN}
