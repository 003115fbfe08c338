"""``streamdrift demo``: the engine on a built-in synthetic stream, no files, no Kafka."""

from __future__ import annotations

import argparse
import json

from streamdrift.baseline import Baseline, build_baseline
from streamdrift.config import Config
from streamdrift.features import extract_features
from streamdrift.monitor import DriftMonitor
from streamdrift.synthetic import DEMO_DRIFTED, SyntheticStream, demo_config
from streamdrift.textreport import render_report
from streamdrift.timeline import name_detectors

REFERENCE_MESSAGES = 50_000


def demo_baseline(config: Config, stream: SyntheticStream) -> Baseline:
    """The baseline of 50,000 reference messages of the synthetic stream."""
    columns = dict(zip([spec.name for spec in config.features],
                       extract_features(stream.reference(REFERENCE_MESSAGES), config.features),
                       strict=True))
    return build_baseline(
        config.features, columns, {s.name: config.bins_for(s) for s in config.features},
        config.baseline.max_categories, config.baseline.smoothing,
        source="synthetic reference")


def demo(args: argparse.Namespace) -> int:
    if args.kafka:
        from streamdrift.commands.kafka import demo_kafka

        return demo_kafka(args)
    config = demo_config()
    stream = SyntheticStream(config, seed=args.seed)
    total = max(args.messages, 2 * config.window.size if config.window.size else 0)
    drift_from = total // 2
    monitor = DriftMonitor(config, demo_baseline(config, stream), "built-in demo baseline")
    names = [spec.name for spec in config.features]
    print(f"streamdrift demo: {len(names)} features, window {config.window.describe()}, "
          f"KL threshold {config.divergence.threshold} nats")
    print(f"baseline: {REFERENCE_MESSAGES} synthetic reference messages; the stream drifts "
          f"from message {drift_from} in: {', '.join(DEMO_DRIFTED)}")
    print("KL(window || baseline) in nats; * = drifted (by the window's KL, or the scan of "
          "the newest panes), . = not enough values yet\n")
    width = max(len(name) for name in names) + 1
    print(f"{'messages':>9} " + " ".join(f"{name:>{width}}" for name in names))
    step = config.window.size // 2 if config.window.size else 2500
    batch = 500
    for start in range(0, total, batch):
        messages = stream.messages(batch, DEMO_DRIFTED, drift_from, offset=start)
        monitor.process_payloads([json.dumps(message).encode() for message in messages])
        if (start + batch) % step == 0:
            report = monitor.report()
            cells = []
            for name in names:
                feature = report.features[name]
                mark = "*" if feature.drift else " "
                cell = "." if feature.kl is None else f"{feature.kl:.4f}{mark}"
                cells.append(f"{cell:>{width}}")
            print(f"{start + batch:>9} " + " ".join(cells))
    report = monitor.report()
    drifted = report.drifted
    print(f"\ndrifted at the end: {', '.join(drifted) or 'none'}"
          f"   (expected: {', '.join(DEMO_DRIFTED)})")
    for name, feature in report.features.items():
        if feature.first_flag_messages is not None and feature.first_flag_detector:
            print(f"  {name}: first flagged after message {feature.first_flag_messages}, "
                  f"{feature.first_flag_messages - drift_from} after the drift began, by "
                  f"{name_detectors((feature.first_flag_detector,))}")
    print()
    print(render_report(report))
    return 0 if sorted(drifted) == sorted(DEMO_DRIFTED) else 1
