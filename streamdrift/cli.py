"""The ``streamdrift`` command line.

    streamdrift baseline build --config C --input F [--input F ...] [--output B]
    streamdrift baseline build --config C --from-kafka --since T1 [--until T2] [--output B]
    streamdrift baseline show B
    streamdrift baseline diff OLD NEW
    streamdrift replay --config C [--baseline B] --input F.jsonl [--report R] [--timeline T]
    streamdrift report --config C [--baseline B] --input F.jsonl --output report.html
    streamdrift compare --config C REFERENCE CURRENT [--json] [--html FILE]
    streamdrift check --config C [--baseline B]
    streamdrift demo

Exit codes: 0 success, 1 drift found where ``--fail-on-drift`` asks for it (or the demo did
not see what it should), 2 bad usage, config, baseline or input (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamdrift import __version__
from streamdrift.baseline import (
    Baseline,
    build_baseline,
    check_baseline_fits,
    describe_baseline,
    diff_baselines,
    load_baseline,
    save_baseline,
)
from streamdrift.config import (
    Config,
    KafkaConfig,
    MetricsConfig,
    ServiceConfig,
    load_config,
    parse_duration_s,
    parse_time_ms,
)
from streamdrift.divergence import expected_null_kl
from streamdrift.errors import ConfigError, StreamdriftError
from streamdrift.features import extract_features
from streamdrift.monitor import (
    DriftMonitor,
    DriftReport,
    compare_to_baseline,
    reference_baseline,
)
from streamdrift.rules import RuleParameters, render_prometheus_rule, render_rules
from streamdrift.sources.file import (
    Dataset,
    dataset_from_messages,
    iter_jsonl_payloads,
    read_dataset,
)
from streamdrift.synthetic import DEMO_DRIFTED, SyntheticStream, demo_config
from streamdrift.timeline import Timeline, write_timeline

EXIT_DRIFT = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except StreamdriftError as error:
        print(f"streamdrift: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `streamdrift ... | head` closed the pipe: not an error
        return 0
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdrift",
        description="Per-feature drift detection for message queues.",
    )
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    baseline = commands.add_parser("baseline", help="build or show a frozen baseline")
    baseline_commands = baseline.add_subparsers(metavar="ACTION", required=True)
    build = baseline_commands.add_parser("build", help="build a baseline from reference data")
    build.add_argument("--config", required=True, type=Path)
    build.add_argument("--input", action="append", type=Path,
                       help="reference data: .csv or .parquet (columns by feature name) or "
                            ".jsonl (messages, features by path); repeatable")
    build.add_argument("--from-kafka", action="store_true",
                       help="read the reference from the configured topic (or pattern) "
                            "instead, between --since and --until, outside any group")
    build.add_argument("--since", help="with --from-kafka: from this time (2026-05-01, "
                                       "2026-05-01T12:00:00Z, or 90d ago)")
    build.add_argument("--until", help="with --from-kafka: up to this time, excluded "
                                       "(default: now)")
    build.add_argument("--output", type=Path,
                       help="where to write the baseline (default: baseline.path of the config)")
    _add_delimiter(build)
    build.set_defaults(handler=_baseline_build)
    show = baseline_commands.add_parser("show", help="print a readable summary of a baseline")
    show.add_argument("baseline", type=Path)
    show.set_defaults(handler=_baseline_show)
    diff = baseline_commands.add_parser(
        "diff", help="how far a new baseline is from an old one, feature by feature")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    diff.set_defaults(handler=_baseline_diff)

    replay = commands.add_parser(
        "replay", help="run a JSONL file of messages through the windows, as the service does")
    replay.add_argument("--config", required=True, type=Path)
    replay.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    replay.add_argument("--input", required=True, type=Path, help="messages, one JSON per line")
    replay.add_argument("--report", type=Path, help="write the final window's report as JSON")
    replay.add_argument("--timeline", type=Path,
                        help="write one row per closed pane (KL, p-value and status of every "
                             "feature) to this .csv or .jsonl file")
    replay.add_argument("--batch-size", type=int, default=1000, help=argparse.SUPPRESS)
    replay.add_argument("--fail-on-drift", action="store_true",
                        help="exit 1 when a feature has drifted at the end")
    replay.set_defaults(handler=_replay)

    compare = commands.add_parser(
        "compare", help="divergences between two datasets (REFERENCE is the baseline)")
    compare.add_argument("--config", required=True, type=Path)
    compare.add_argument("reference", type=Path)
    compare.add_argument("current", type=Path)
    compare.add_argument("--json", action="store_true", help="print the report as JSON")
    compare.add_argument("--html", type=Path, metavar="FILE",
                         help="also write the report as one self-contained HTML page")
    compare.add_argument("--fail-on-drift", action="store_true",
                         help="exit 1 when a feature has drifted (KL above its threshold and "
                              "significant)")
    _add_delimiter(compare)
    compare.set_defaults(handler=_compare)

    page = commands.add_parser(
        "report", help="replay a JSONL file of messages and write an HTML report: summary, "
                       "bins, what moved and when")
    page.add_argument("--config", required=True, type=Path)
    page.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    page.add_argument("--input", required=True, type=Path, help="messages, one JSON per line")
    page.add_argument("--output", required=True, type=Path, help="the .html file to write")
    page.set_defaults(handler=_report)

    run = commands.add_parser(
        "run", help="the service: consume Kafka, keep the windows, serve Prometheus metrics")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    run.set_defaults(handler=_run)

    produce = commands.add_parser(
        "produce", help="write synthetic messages shaped like the configured features")
    produce.add_argument("--config", required=True, type=Path)
    produce.add_argument("--baseline", type=Path,
                         help="draw features the demo has no law for from this baseline "
                              "(default: baseline.path of the config, if it exists)")
    produce.add_argument("--topic", help="default: kafka.topic of the config")
    produce.add_argument("--rate", type=float, default=1000.0,
                         help="messages per second; 0 for as fast as possible")
    produce.add_argument("--count", type=int, default=None, help="stop after N messages")
    produce.add_argument("--duration", default=None, help="stop after a duration like 60s")
    produce.add_argument("--drift", action="append", default=[], metavar="FEATURE[@START]",
                         help="drift FEATURE from message START (a count, or a duration "
                              "like 30s at --rate); repeatable")
    produce.add_argument("--partitions", type=int, default=3,
                         help="partitions of the topic if it has to be created")
    produce.add_argument("--seed", type=int, default=0)
    produce.set_defaults(handler=_produce)

    rules = commands.add_parser(
        "rules", help="print the Prometheus recording and alerting rules for streamdrift")
    defaults = RuleParameters()
    rules.add_argument("--drift-for", default=defaults.drift_for,
                       help="how long a feature must stay drifted before it alerts")
    rules.add_argument("--severe-multiple", type=float, default=defaults.severe_multiple,
                       help="KL above this many thresholds is critical")
    rules.add_argument("--p-value-alpha", type=float, default=defaults.p_value_alpha,
                       help="G-test p-value under which the p-value alert fires")
    rules.add_argument("--fleet-window", default=defaults.fleet_window,
                       help="window of the fleet-wide KL recording rules")
    rules.add_argument("--service-for", default=defaults.service_for,
                       help="hold time of the service alerts (stalled, lagging, ...)")
    rules.add_argument("--lag-messages", type=int, default=defaults.lag_messages)
    rules.add_argument("--runbook-base", default=defaults.runbook_base,
                       help="URL of this README, for the runbook links")
    rules.add_argument("--job", default=defaults.job, help="the scrape job's name")
    rules.add_argument("--format", choices=("rules", "prometheusrule"), default="rules",
                       help="a Prometheus rule file, or a Prometheus Operator PrometheusRule "
                            "manifest (for clusters without Helm)")
    rules.add_argument("--name", default="streamdrift",
                       help="with --format prometheusrule: the object's name")
    rules.add_argument("--namespace", default=None,
                       help="with --format prometheusrule: the object's namespace")
    rules.add_argument("--output", type=Path, help="write here instead of stdout")
    rules.set_defaults(handler=_rules)

    check = commands.add_parser("check", help="validate a config (and its baseline)")
    check.add_argument("--config", required=True, type=Path)
    check.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    check.set_defaults(handler=_check)

    demo = commands.add_parser(
        "demo", help="the engine on a built-in synthetic stream where some features drift")
    demo.add_argument("--messages", type=int, default=40_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--kafka", action="store_true",
                      help="the whole loop on a broker: produce, run the service, scrape it")
    demo.add_argument("--bootstrap", default="127.0.0.1:9092",
                      help="with --kafka: the broker (start one with deploy/local/kafka start)")
    demo.add_argument("--seconds", type=float, default=40.0, help="with --kafka: how long")
    demo.add_argument("--rate", type=float, default=2000.0, help="with --kafka: messages/s")
    demo.add_argument("--metrics-port", type=int, default=9108)
    demo.set_defaults(handler=_demo)
    return parser


def _add_delimiter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delimiter", default=None,
                        help="the field delimiter of CSV input (default: found from the file "
                             "among , ; tab |)")


def _delimiter(args: argparse.Namespace) -> str | None:
    delimiter: str | None = args.delimiter
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise StreamdriftError(f"--delimiter must be one character (got {args.delimiter!r})")
    return delimiter


# ---- baseline ------------------------------------------------------------------------------

def _build_from(config: Config, dataset: Dataset) -> Baseline:
    return build_baseline(
        config.features,
        dataset.columns,
        {spec.name: config.bins_for(spec) for spec in config.features},
        config.baseline.max_categories,
        config.baseline.smoothing,
        source=", ".join(Path(source).name for source in dataset.sources),
    )


def _baseline_build(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.from_kafka == bool(args.input):
        raise StreamdriftError("baseline build needs --input FILE or --from-kafka, not both")
    if args.from_kafka:
        dataset = _dataset_from_kafka(config, args.since, args.until)
    else:
        if args.since or args.until:
            raise StreamdriftError("--since and --until go with --from-kafka")
        dataset = read_dataset(args.input, config.features, config.input.max_message_bytes,
                               _delimiter(args))
    baseline = _build_from(config, dataset)
    output: Path = args.output or config.baseline.path
    save_baseline(baseline, output)
    skipped = sum(dataset.rejected.values())
    print(f"wrote {output}: {len(baseline.features)} features from {dataset.rows} rows"
          + (f" ({skipped} unusable lines skipped: {_reasons(dataset.rejected)})"
             if skipped else ""))
    for name, count in dataset.invalid_counts().items():
        examples = ", ".join(repr(value) for value in dataset.invalid_examples.get(name, []))
        print(f"{name}: {count} invalid value{'s' if count != 1 else ''} left out "
              f"(e.g. {examples})")
    print(describe_baseline(baseline))
    return 0


def _dataset_from_kafka(config: Config, since: str | None, until: str | None) -> Dataset:
    """The messages of the configured topic between two times, as a reference dataset whose
    source names the topic, the range and the count."""
    from streamdrift.sources.kafka import read_time_range

    if since is None:
        raise StreamdriftError("--from-kafka needs --since (e.g. 2026-05-01 or 90d)")
    now = time.time()
    try:
        since_ms = parse_time_ms(since, now)
        until_ms = None if until is None else parse_time_ms(until, now)
    except ValueError as error:
        raise StreamdriftError(f"--since/--until: {error}") from None
    if until_ms is not None and until_ms <= since_ms:
        raise StreamdriftError(f"--until ({until}) must come after --since ({since})")
    records, topics = read_time_range(config.kafka, since_ms, until_ms)
    until_text = "now" if until_ms is None else _iso(until_ms)
    source = (f"kafka topic {','.join(topics)} from {_iso(since_ms)} to {until_text}: "
              f"{len(records)} messages")
    print(f"read {len(records)} messages of {', '.join(topics)} from {_iso(since_ms)} to "
          f"{until_text}")
    return dataset_from_messages([[record.value for record in records]], config.features,
                                 config.input.max_message_bytes, source)


def _iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def _baseline_show(args: argparse.Namespace) -> int:
    print(describe_baseline(load_baseline(args.baseline)))
    return 0


def _baseline_diff(args: argparse.Namespace) -> int:
    old, new = load_baseline(args.old), load_baseline(args.new)
    print(f"old {args.old} ({old.source or 'unknown source'}, {old.created_at})")
    print(f"new {args.new} ({new.source or 'unknown source'}, {new.created_at})")
    print("KL(new || old) per feature, on the old baseline's bins; then the bins whose share "
          "moved most (old -> new)\n")
    diffs = diff_baselines(old, new)
    for diff in sorted(diffs, key=lambda d: -d.kl):
        note = "  (new bins mapped onto the old)" if diff.projected else ""
        print(f"{diff.name:<24} {diff.kl:8.4f} nats{note}")
        for label, before, after in diff.moved:
            print(f"    {label}: {before:.1%} -> {after:.1%}")
    only = sorted(set(old.features) ^ set(new.features))
    if only:
        print(f"\nin one baseline only: {', '.join(only)}")
    return 0


# ---- replay, compare, check ----------------------------------------------------------------

def _replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    report, timeline = replay_file(config, args.baseline or config.baseline.path, args.input,
                                   max(1, args.batch_size))
    print(render_report(report))
    print(render_first_flags(timeline))
    if args.report:
        _write_json(args.report, report.to_json())
    if args.timeline:
        write_timeline(args.timeline, timeline.points, list(report.features))
    return EXIT_DRIFT if args.fail_on_drift and report.drifted else 0


def replay_file(config: Config, baseline_path: Path, input_path: Path, batch_size: int = 1000
                ) -> tuple[DriftReport, Timeline]:
    """A JSONL file of messages through the windows, as the service would count them: the
    final report and the timeline of every pane."""
    if config.window.is_event_time and config.window.time_field is None:
        raise ConfigError("window.time_field is required to replay an event-time window from "
                          "a file (the service falls back to the Kafka record timestamp)")
    monitor = DriftMonitor(config, load_baseline(baseline_path), str(baseline_path))
    timeline = Timeline()
    monitor.pane_observers.append(timeline)
    for payloads in iter_jsonl_payloads(input_path, batch_size):
        monitor.process_payloads(payloads)
    report = monitor.report()
    timeline.finish(report)
    return report, timeline


def render_first_flags(timeline: Timeline) -> str:
    """When each feature was first flagged, in order, or that none was."""
    flags = timeline.first_flags()
    if not flags:
        return "\nno feature was flagged at any pane"
    lines = ["", "first flagged:"]
    for name, flag in sorted(flags.items(), key=lambda item: item[1].messages):
        when = f" (event time {flag.event_time})" if flag.event_time else ""
        lines.append(f"  {name}: after message {flag.messages}{when}")
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    delimiter = _delimiter(args)
    reference = read_dataset([args.reference], config.features, config.input.max_message_bytes,
                             delimiter)
    current = read_dataset([args.current], config.features, config.input.max_message_bytes,
                           delimiter)
    baseline = reference_baseline(config, reference.columns, Path(args.reference).name)
    report = compare_to_baseline(config, baseline, current.columns, current.rejected)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(f"reference {args.reference} ({reference.rows} rows) vs current {args.current} "
              f"({current.rows} rows)")
        print(render_report(report))
    if args.html:
        from streamdrift.htmlreport import render_html

        _write_text(args.html, render_html(
            report, baseline, title="streamdrift: compare",
            source=f"{args.current} ({current.rows:,} rows), as one window,"))
    return EXIT_DRIFT if args.fail_on_drift and report.drifted else 0


def _report(args: argparse.Namespace) -> int:
    from streamdrift.htmlreport import render_html

    config = load_config(args.config)
    baseline_path: Path = args.baseline or config.baseline.path
    report, timeline = replay_file(config, baseline_path, args.input)
    _write_text(args.output, render_html(report, load_baseline(baseline_path),
                                         title="streamdrift: drift report",
                                         source=f"{args.input} replayed", timeline=timeline))
    print(render_report(report))
    print(render_first_flags(timeline))
    print(f"\nwrote {args.output}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from streamdrift.eventlog import EventLog
    from streamdrift.service import DriftService

    config = load_config(args.config)
    log = EventLog(config.service.log_format)
    service = DriftService(config, args.baseline or config.baseline.path, log)
    return service.run()


def parse_drift(spec: str, rate: float) -> tuple[str, int]:
    """``FEATURE[@START]`` -> (feature, index of the first drifted message).

    >>> parse_drift("age@5000", 100.0), parse_drift("age@30s", 100.0), parse_drift("age", 1.0)
    (('age', 5000), ('age', 3000), ('age', 0))
    """
    feature, _, start = spec.partition("@")
    if not start:
        return feature, 0
    if start.isdigit():
        return feature, int(start)
    try:
        seconds = parse_duration_s(start)
    except ValueError:
        raise ConfigError(f"--drift {spec}: START must be a message count or a duration "
                          "like 30s") from None
    if rate <= 0:
        raise ConfigError(f"--drift {spec}: a duration needs a --rate above 0")
    return feature, int(seconds * rate)


def _produce(args: argparse.Namespace) -> int:
    from streamdrift.sources.kafka import KafkaSink, ensure_topic

    config = load_config(args.config)
    topic = args.topic or config.kafka.topic
    if topic is None:
        raise ConfigError("--topic is required when the config subscribes to a topic_pattern")
    baseline_path: Path = args.baseline or config.baseline.path
    baseline = load_baseline(baseline_path) if (args.baseline or baseline_path.exists()) \
        else None
    stream = SyntheticStream(config, seed=args.seed, baseline=baseline)
    drifts = dict(parse_drift(spec, args.rate) for spec in args.drift)
    names = {spec.name for spec in config.features}
    unknown = sorted(set(drifts) - names)
    if unknown:
        raise ConfigError(f"--drift names unknown feature(s): {', '.join(unknown)}")
    try:
        for name in names:
            stream.sampler(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    limit = args.count if args.count is not None else None
    deadline = None if args.duration is None else time.monotonic() + parse_duration_s(
        args.duration)
    try:
        if ensure_topic(config.kafka, topic, args.partitions):
            print(f"created topic {topic} with {args.partitions} partitions")
        sink = KafkaSink(config.kafka)
    except ConnectionError as error:
        raise StreamdriftError(str(error)) from None
    chunk = 1000 if args.rate <= 0 else max(1, min(1000, int(args.rate / 10)))
    started = time.monotonic()
    sent = 0
    try:
        while (limit is None or sent < limit) and (deadline is None
                                                   or time.monotonic() < deadline):
            size = chunk if limit is None else min(chunk, limit - sent)
            payloads = []
            now = time.time()
            for message in stream.messages(size, drifts, offset=sent):
                _stamp(message, config, now)
                payloads.append(json.dumps(message).encode())
            sink.send(topic, payloads)
            sent += size
            if args.rate > 0:
                ahead_s = sent / args.rate - (time.monotonic() - started)
                if ahead_s > 0:
                    time.sleep(ahead_s)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
    print(f"produced {sent} messages to {topic} in {time.monotonic() - started:.1f}s")
    return 0


def _stamp(message: dict[str, Any], config: Config, now_s: float) -> None:
    """Put the event time where an event-time window looks for it."""
    window = config.window
    if window.time_field is None:
        return
    value: Any = now_s
    if window.time_unit == "ms":
        value = int(now_s * 1000)
    elif window.time_unit == "iso":
        value = datetime.fromtimestamp(now_s, UTC).isoformat()
    target = message
    for key in window.time_field[:-1]:
        target = target.setdefault(key, {})
    target[window.time_field[-1]] = value


def _rules(args: argparse.Namespace) -> int:
    for name in ("drift_for", "fleet_window", "service_for"):
        value = getattr(args, name)
        try:
            parse_duration_s(value)
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be a duration like 5m "
                              f"(got {value!r})") from None
    params = RuleParameters(
        drift_for=args.drift_for, severe_multiple=args.severe_multiple,
        p_value_alpha=args.p_value_alpha, fleet_window=args.fleet_window,
        service_for=args.service_for, lag_messages=args.lag_messages,
        runbook_base=args.runbook_base, job=args.job)
    if args.format == "prometheusrule":
        text = render_prometheus_rule(params, args.name, args.namespace)
    else:
        text = render_rules(params)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"config {args.config}: OK, {len(config.features)} features, window "
          f"{config.window.describe()}, KL threshold {config.divergence.threshold} nats")
    baseline_path: Path = args.baseline or config.baseline.path
    baseline = load_baseline(baseline_path)
    check_baseline_fits(baseline, config.features, str(baseline_path))
    print(f"baseline {baseline_path}: OK, {len(baseline.features)} features, created "
          f"{baseline.created_at}, hash {baseline.content_hash()}")
    # What each feature's decision rests on, "auto" min_samples resolved.
    report = DriftMonitor(config, baseline, str(baseline_path)).report()
    print(f"drift: KL above the threshold and significant at alpha "
          f"{config.divergence.alpha:g} (Holm over the {len(report.features)} features)\n")
    auto = config.divergence.min_samples == "auto"
    print(f"{'feature':<22} {'bins':>5} {'reference':>10} {'threshold':>9} "
          f"{'min_samples':>11}  KL without drift at min_samples")
    for name, feature in report.features.items():
        configured = next(spec for spec in config.features if spec.name == name).min_samples
        source = " (auto)" if auto and configured is None else ""
        occupied = int(np.count_nonzero(baseline[name].counts)) or len(feature.window_counts)
        floor = expected_null_kl([feature.min_samples], [feature.reference_samples],
                                 [occupied])[0]
        print(f"{name:<22} {len(feature.window_counts):>5} {feature.reference_samples:>10} "
              f"{feature.threshold:>9.3g} {feature.min_samples:>11}{source:<7} {floor:.4f}")
    return 0


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise StreamdriftError(f"cannot write {path}: {error.strerror}") from None


def _write_json(path: Path, document: object) -> None:
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise StreamdriftError(f"cannot write {path}: {error.strerror}") from None


# ---- demo ----------------------------------------------------------------------------------

def _demo(args: argparse.Namespace) -> int:
    if args.kafka:
        return _demo_kafka(args)
    config = demo_config()
    stream = SyntheticStream(config, seed=args.seed)
    total = max(args.messages, 2 * config.window.size if config.window.size else 0)
    drift_from = total // 2
    reference = stream.reference(50_000)
    columns = dict(zip([spec.name for spec in config.features],
                       extract_features(reference, config.features), strict=True))
    baseline = build_baseline(
        config.features, columns, {s.name: config.bins_for(s) for s in config.features},
        config.baseline.max_categories, config.baseline.smoothing, source="synthetic reference")
    monitor = DriftMonitor(config, baseline, "built-in demo baseline")
    names = [spec.name for spec in config.features]
    print(f"streamdrift demo: {len(names)} features, window {config.window.describe()}, "
          f"KL threshold {config.divergence.threshold} nats")
    print(f"baseline: 50000 synthetic reference messages; the stream drifts from message "
          f"{drift_from} in: {', '.join(DEMO_DRIFTED)}")
    print("KL(window || baseline) in nats; * = drifted, . = not enough values yet\n")
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
    print(render_report(report))
    return 0 if sorted(drifted) == sorted(DEMO_DRIFTED) else EXIT_DRIFT


def _demo_kafka(args: argparse.Namespace) -> int:
    """Producer thread -> topic -> the real service (main thread) -> its published report,
    printed every few seconds."""
    import tempfile
    import threading

    from streamdrift.eventlog import EventLog
    from streamdrift.service import DriftService
    from streamdrift.sources.kafka import KafkaSink, ensure_topic

    base = demo_config()
    topic = f"streamdrift-demo-{int(time.time())}"
    config = dataclasses.replace(
        base,
        kafka=KafkaConfig(bootstrap_servers=args.bootstrap, topic=topic,
                          group_id=f"{topic}-group", auto_offset_reset="earliest",
                          connect_timeout_s=5.0),
        metrics=MetricsConfig(port=args.metrics_port, bind_address="127.0.0.1"),
        service=ServiceConfig(publish_interval_s=1.0, lag_interval_s=2.0),
    )
    stream = SyntheticStream(config, seed=args.seed)
    folder = Path(tempfile.mkdtemp(prefix="streamdrift-demo-"))
    columns = dict(zip([spec.name for spec in config.features],
                       extract_features(stream.reference(50_000), config.features),
                       strict=True))
    baseline_path = folder / "baseline.json"
    save_baseline(build_baseline(
        config.features, columns, {s.name: config.bins_for(s) for s in config.features},
        config.baseline.max_categories, config.baseline.smoothing,
        source="synthetic reference"), baseline_path)
    try:
        ensure_topic(config.kafka, topic, 3)
        sink = KafkaSink(config.kafka)
    except (ConnectionError, OSError) as error:
        raise StreamdriftError(f"{error}; start a broker with: deploy/local/kafka start") \
            from None
    except Exception as error:  # kafka-python's errors stay behind the adapter's types
        raise StreamdriftError(f"cannot reach Kafka at {args.bootstrap} ({error}); start a "
                               "broker with: deploy/local/kafka start") from None
    total = int(args.seconds * args.rate)
    drift_from = total // 2
    service = DriftService(config, baseline_path, EventLog(stream=sys.stderr))
    names = [spec.name for spec in config.features]

    def produce() -> None:
        started = time.monotonic()
        sent = 0
        chunk = max(1, int(args.rate / 10))
        while sent < total and not service.stop.is_set():
            messages = stream.messages(min(chunk, total - sent), DEMO_DRIFTED, drift_from,
                                       offset=sent)
            sink.send(topic, [json.dumps(message).encode() for message in messages])
            sent += len(messages)
            time.sleep(max(0.0, sent / args.rate - (time.monotonic() - started)))
        sink.close()

    def show() -> None:
        print(f"topic {topic}: {total} messages at {args.rate:g}/s, drift from message "
              f"{drift_from} in {', '.join(DEMO_DRIFTED)}; metrics on "
              f"http://127.0.0.1:{args.metrics_port}/metrics")
        print(f"{'consumed':>9} " + " ".join(f"{name:>15}" for name in names), flush=True)
        while not service.stop.wait(3.0):
            report = service.collector.snapshot.report
            cells = ["." if report.features[n].kl is None else
                     f"{report.features[n].kl:.4f}{'*' if report.features[n].drift else ' '}"
                     for n in names]
            print(f"{report.messages:>9} " + " ".join(f"{cell:>15}" for cell in cells),
                  flush=True)

    threading.Thread(target=produce, daemon=True).start()
    threading.Thread(target=show, daemon=True).start()
    threading.Timer(args.seconds + 5.0, service.stop.set).start()
    service.run()
    report = service.collector.snapshot.report
    print(f"\ndrifted at the end: {', '.join(report.drifted) or 'none'}"
          f"   (expected: {', '.join(DEMO_DRIFTED)})")
    print(render_report(report))
    return 0 if sorted(report.drifted) == sorted(DEMO_DRIFTED) else EXIT_DRIFT


# ---- rendering -----------------------------------------------------------------------------

def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_report(report: DriftReport) -> str:
    """The per-feature table printed by ``replay``, ``compare`` and ``demo``."""
    lines = [
        f"messages {report.messages}, invalid {report.invalid}"
        + (f" ({_reasons(report.invalid_reasons)})" if report.invalid else "")
        + (f", late {report.late}" if report.late else "")
        + f"; window {report.window}, {report.window_messages} messages in it",
        "",
        f"{'feature':<22} {'status':<17} {'KL':>8} {'thresh':>7} {'JS':>7} {'PSI':>7} "
        f"{'p-value':>9} {'samples':>8} {'missing':>8} {'invalid':>8} {'changes':>7}",
    ]
    for name, feature in report.features.items():
        missing = "-" if feature.missing_ratio is None else f"{feature.missing_ratio:.1%}"
        p_value = "-" if feature.p_value is None else f"{feature.p_value:.3g}"
        status = "DRIFT" if feature.drift else feature.status.replace("_", " ")
        invalid = sum(feature.invalid_values_total.values())
        lines.append(
            f"{name:<22} {status:<17} {_fmt(feature.kl):>8} {feature.threshold:>7.3g} "
            f"{_fmt(feature.js):>7} {_fmt(feature.psi):>7} {p_value:>9} {feature.samples:>8} "
            f"{missing:>8} {invalid:>8} {feature.change_points:>7}"
        )
    explained = [line for name, feature in report.features.items() if feature.drift
                 for line in explain_feature(name, feature.top_contributions())]
    if explained:
        lines += ["", "what moved (the bins adding most to the KL: baseline -> window):",
                  *explained]
    return "\n".join(lines)


def explain_feature(name: str, top: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per bin: ``device: tablet 2.1% -> 41.0% (+1.20 nats)``."""
    return [f"  {name}: {entry['label']} {entry['reference']:.1%} -> {entry['window']:.1%} "
            f"({entry['contribution']:+.2f} nats)" for entry in top]
