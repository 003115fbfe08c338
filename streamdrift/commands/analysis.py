"""``streamdrift replay | report | compare | check``: the engine on files."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from streamdrift.baseline import check_baseline_fits, load_baseline
from streamdrift.commands import write_json, write_text
from streamdrift.commands.baselines import delimiter
from streamdrift.config import Config, load_config
from streamdrift.errors import ConfigError
from streamdrift.monitor import (
    DriftMonitor,
    DriftReport,
    compare_to_baseline,
    occupied_bins,
    reference_baseline,
    resolve_min_samples,
)
from streamdrift.sources.file import iter_jsonl_lines, read_dataset
from streamdrift.sources.framed_file import iter_framed_records
from streamdrift.sources.records import partition_runs
from streamdrift.sources.schemas import fetch_writer_schemas, format_decoding
from streamdrift.textreport import render_refused, render_report
from streamdrift.timeline import MessageClock, Timeline, write_timeline

# How many refused lines a replay names.
REFUSED_SHOWN = 5


@dataclass
class Replay:
    """What a replay of a JSONL file found: the last window's report, every pane's point,
    and the first refused lines as (line number, reason)."""

    report: DriftReport
    timeline: Timeline
    refused: list[tuple[int, str]] = field(default_factory=list)


def replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    found = replay_file(config, args.baseline or config.baseline.path, args.input,
                        max(1, args.batch_size))
    print(render_report(found.report))
    refused = _refused(found, args.input)
    if refused:
        print(refused)
    print(render_first_flags(found.timeline, found.report))
    if args.report:
        write_json(args.report, found.report.to_json())
    if args.timeline:
        write_timeline(args.timeline, found.timeline.points, list(found.report.features))
    return 1 if args.fail_on_drift and found.report.drifted else 0


def replay_file(config: Config, baseline_path: Path, input_path: Path,
                batch_size: int = 1000) -> Replay:
    """A file of messages through the windows, as the service would count them: JSONL
    (JSON messages), or an Avro container of Kafka records (``.avro``, any format, with
    their record timestamps; see streamdrift.sources.framed_file)."""
    framed = input_path.suffix.lower() == ".avro"
    if not framed and config.window.is_event_time and config.window.time_field is None:
        raise ConfigError("window.time_field is required to replay an event-time window from "
                          "a file (the service falls back to the Kafka record timestamp)")
    if not framed and config.input.format != "json":
        raise ConfigError(f"input.format is {config.input.format}: replay a file of Kafka "
                          f"records (.avro, an Avro container of streamdrift.KafkaRecord), "
                          f"not {input_path.name}")
    writer_schemas, message_class = format_decoding(config)
    monitor = DriftMonitor(config, load_baseline(baseline_path), str(baseline_path),
                           writer_schemas, message_class)
    # A count window whose messages carry a time: the timeline and the first flags say when
    # (a file of Kafka records carries its record timestamps; a time field is read from JSON).
    time_field = config.window.time_field if config.input.format == "json" else None
    clock = (MessageClock(time_field, config.window.time_unit)
             if (time_field is not None or framed) and not config.window.is_event_time
             else None)
    timeline = Timeline(clock=clock)
    monitor.pane_observers.append(timeline)
    refused: list[tuple[int, str]] = []
    if framed:
        for batch in iter_framed_records(input_path, batch_size):
            fetch_writer_schemas(writer_schemas, batch.values)
            timestamps_s = [ms / 1000.0 for ms in batch.timestamps_ms]
            if clock is not None:
                clock.batch(monitor.messages, batch.values, timestamps_s)
            rejections = monitor.process_payloads(batch.values, timestamps_s,
                                                  partition_runs(batch.partitions))
            if len(refused) < REFUSED_SHOWN:
                refused += [(batch.numbers[index], reason) for index, reason in rejections]
    for numbers, payloads in () if framed else iter_jsonl_lines(input_path, batch_size):
        if clock is not None:
            clock.batch(monitor.messages, payloads)
        rejections = monitor.process_payloads(payloads)
        if len(refused) < REFUSED_SHOWN:
            refused += [(numbers[index], reason) for index, reason in rejections]
    report = monitor.report()
    timeline.finish(report)
    return Replay(report, timeline, refused[:REFUSED_SHOWN])


def _refused(found: Replay, path: Path) -> str:
    text = render_refused([(str(path), number, reason) for number, reason in found.refused],
                          found.report.invalid)
    return f"\n{text}" if text else ""


def render_first_flags(timeline: Timeline, report: DriftReport) -> str:
    """When each feature was first flagged, in order, or that none was."""
    flags = timeline.first_flags(report)
    if not flags:
        return "\nno feature was flagged at any pane"
    lines = ["", "first flagged:"]
    for name, flag in sorted(flags.items(), key=lambda item: item[1].messages):
        when = f", event time {flag.event_time}" if flag.event_time else ""
        lines.append(f"  {name}: after message {flag.messages}{when}{flag.by()}")
    return "\n".join(lines)


def report(args: argparse.Namespace) -> int:
    from streamdrift.htmlreport import render_html

    config = load_config(args.config)
    baseline_path: Path = args.baseline or config.baseline.path
    found = replay_file(config, baseline_path, args.input)
    write_text(args.output, render_html(found.report, load_baseline(baseline_path),
                                        title="streamdrift: drift report",
                                        source=f"{args.input} replayed",
                                        timeline=found.timeline))
    print(render_report(found.report))
    refused = _refused(found, args.input)
    if refused:
        print(refused)
    print(render_first_flags(found.timeline, found.report))
    print(f"\nwrote {args.output}")
    return 0


def compare(args: argparse.Namespace) -> int:
    import json

    config = load_config(args.config)
    separator = delimiter(args)
    reference = read_dataset([args.reference], config.features, config.input.max_message_bytes,
                             separator)
    current = read_dataset([args.current], config.features, config.input.max_message_bytes,
                           separator)
    baseline = reference_baseline(config, reference.columns, Path(args.reference).name)
    found = compare_to_baseline(config, baseline, current.columns, current.rejected)
    if args.json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        print(f"reference {args.reference} ({reference.rows} rows) vs current {args.current} "
              f"({current.rows} rows)")
        print(render_report(found, one_window=True))
        refused = render_refused(current.refused_lines, sum(current.rejected.values()))
        if refused:
            print(f"\n{refused}")
    if args.html:
        from streamdrift.htmlreport import render_html

        write_text(args.html, render_html(
            found, baseline, title="streamdrift: compare",
            source=f"{args.current} ({current.rows:,} rows), as one window,"))
    return 1 if args.fail_on_drift and found.drifted else 0


def describe_detectors(config: Config) -> str:
    """What decides drift, with each detector's false-alarm rate (docs/statistics.md).

    >>> from pathlib import Path
    >>> from streamdrift.config import parse_config
    >>> config = parse_config({"features": [{"name": "x"}]}, Path("."), {})
    >>> for part in describe_detectors(config).split("; "):
    ...     print(part)
    window (KL > threshold, significant at alpha 0.001)
    scan of the newest panes (at most 1 false alarm per feature per million messages)
    river adwin change points (counted, not flags)
    """
    parts = [f"window (KL > threshold, significant at alpha {config.divergence.alpha:g})"]
    if config.scan.enabled:
        parts.append(f"scan of the newest panes (at most "
                     f"{config.scan.false_alarms_per_million:g} false alarm per feature per "
                     f"million messages)")
    detector = config.detector
    if detector.sequential:
        parts.append(f"sequential mixture CUSUM (at most 1 false alarm per feature per "
                     f"{detector.arl0:,.0f} values, prior strengths "
                     f"{', '.join(f'{a:g}' for a in detector.prior_strengths)})")
    elif detector.method != "none":
        parts.append(f"river {detector.method} change points (counted, not flags)")
    return "; ".join(parts)


def check(args: argparse.Namespace) -> int:
    from streamdrift.divergence import expected_null_kl

    config = load_config(args.config)
    print(f"config {args.config}: OK, {len(config.features)} features, window "
          f"{config.window.describe()}, KL threshold {config.divergence.threshold} nats")
    print(f"messages: {describe_formats(config)}")
    print(f"detectors: {describe_detectors(config)}")
    baseline_path: Path = args.baseline or config.baseline.path
    baseline = load_baseline(baseline_path)
    check_baseline_fits(baseline, config.features, str(baseline_path))
    print(f"baseline {baseline_path}: OK, {len(baseline.features)} features, created "
          f"{baseline.created_at}, hash {baseline.content_hash()}")
    features = [baseline[spec.name] for spec in config.features]
    print(f"drift: KL above the threshold and significant at alpha "
          f"{config.divergence.alpha:g} (Holm over the {len(features)} features)\n")
    print(f"{'feature':<22} {'bins':>5} {'reference':>10} {'threshold':>9} "
          f"{'min_samples':>11}  KL without drift at min_samples")
    for spec, feature, min_samples in zip(config.features, features,
                                          resolve_min_samples(config, features), strict=True):
        source = " (auto)" if config.min_samples_for(spec) is None else ""
        floor = expected_null_kl([min_samples], [feature.count], [occupied_bins(feature)])[0]
        print(f"{spec.name:<22} {feature.n_bins:>5} {feature.count:>10} "
              f"{config.threshold_for(spec):>9.3g} {min_samples:>11}{source:<7} {floor:.4f}")
    return 0


def describe_formats(config: Config) -> str:
    """How the topics' messages are read, in a line (the registry is not asked: ``check``
    connects nowhere)."""
    def one(name: str) -> str:
        if name == "avro" and config.input.schema_registry is not None:
            return f"Avro, writer schemas from {config.input.schema_registry.url}"
        if name == "protobuf" and config.input.protobuf is not None:
            return (f"Protobuf {config.input.protobuf.message} from "
                    f"{config.input.protobuf.descriptor_set}")
        return "JSON"

    text = one(config.input.format)
    for topic, name in config.input.formats_by_topic:
        text += f"; topic {topic}: {one(name)}"
    return text
