"""The ``streamdrift`` command line.

    streamdrift baseline build --config C --input F [--input F ...] [--output B]
    streamdrift baseline build --config C --from-kafka --since T1 [--until T2] [--output B]
    streamdrift baseline show B
    streamdrift baseline diff OLD NEW
    streamdrift replay --config C [--baseline B] --input F.jsonl [--report R] [--timeline T]
    streamdrift report --config C [--baseline B] --input F.jsonl --output report.html
    streamdrift compare --config C REFERENCE CURRENT [--json] [--html FILE]
    streamdrift check --config C [--baseline B]
    streamdrift run | produce | rules | demo

Exit codes: 0 success, 1 drift found where ``--fail-on-drift`` asks for it (or the demo did
not see what it should), 2 bad usage, config, baseline or input (one line on stderr).

This module only parses the arguments: each command lives in ``streamdrift.commands`` and is
imported when it runs, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from streamdrift import __version__
from streamdrift.errors import StreamdriftError
from streamdrift.rules import RuleParameters

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    module, _, name = args.handler.partition(":")
    try:
        handler = getattr(importlib.import_module(f"streamdrift.commands.{module}"), name)
        code: int = handler(args)
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

    baseline = commands.add_parser("baseline", help="build, show or diff a frozen baseline")
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
    build.set_defaults(handler="baselines:build")
    show = baseline_commands.add_parser("show", help="print a readable summary of a baseline")
    show.add_argument("baseline", type=Path)
    show.set_defaults(handler="baselines:show")
    diff = baseline_commands.add_parser(
        "diff", help="how far a new baseline is from an old one, feature by feature")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    diff.set_defaults(handler="baselines:diff")

    replay = commands.add_parser(
        "replay", help="run a JSONL file of messages through the windows, as the service does")
    replay.add_argument("--config", required=True, type=Path)
    replay.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    replay.add_argument("--input", required=True, type=Path, help="messages, one JSON per line")
    replay.add_argument("--report", type=Path, help="write the final window's report as JSON")
    replay.add_argument("--timeline", type=Path,
                        help="write one row per closed pane (KL, p-value and status of every "
                             "feature) to this .csv or .jsonl file")
    replay.add_argument("--batch-size", type=int, default=1000,
                        help="messages per batch, as the service polls them (default 1000)")
    replay.add_argument("--fail-on-drift", action="store_true",
                        help="exit 1 when a feature has drifted at the end")
    replay.set_defaults(handler="analysis:replay")

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
    compare.set_defaults(handler="analysis:compare")

    page = commands.add_parser(
        "report", help="replay a JSONL file of messages and write an HTML report: summary, "
                       "bins, what moved and when")
    page.add_argument("--config", required=True, type=Path)
    page.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    page.add_argument("--input", required=True, type=Path, help="messages, one JSON per line")
    page.add_argument("--output", required=True, type=Path, help="the .html file to write")
    page.set_defaults(handler="analysis:report")

    run = commands.add_parser(
        "run", help="the service: consume Kafka, keep the windows, serve Prometheus metrics")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    run.set_defaults(handler="kafka:run")

    produce = commands.add_parser(
        "produce", help="write messages to the topic: drawn from the baseline (with drifts "
                        "you choose), or a recorded JSONL file")
    produce.add_argument("--config", required=True, type=Path)
    produce.add_argument("--baseline", type=Path,
                         help="draw every feature from this baseline's bins and categories "
                              "(default: baseline.path of the config; without a baseline, "
                              "the demo's features follow the demo's laws)")
    produce.add_argument("--input", type=Path, metavar="FILE.jsonl",
                         help="send this file's lines instead, as they are")
    produce.add_argument("--key-field", metavar="PATH",
                         help="with --input: each message's key from this field")
    produce.add_argument("--timestamp-field", metavar="PATH",
                         help="with --input: each message's Kafka timestamp from this field")
    produce.add_argument("--timestamp-unit", choices=("s", "ms", "iso"),
                         help="with --timestamp-field (default: window.time_unit)")
    produce.add_argument("--topic", help="default: kafka.topic of the config")
    produce.add_argument("--rate", type=float, default=1000.0,
                         help="messages per second; 0 for as fast as possible")
    produce.add_argument("--count", type=int, default=None, help="stop after N messages")
    produce.add_argument("--duration", default=None, help="stop after a duration like 60s")
    produce.add_argument("--drift", action="append", default=[], metavar="FEATURE[@START]",
                         help="drift FEATURE from message START (a count, or a duration "
                              "like 30s at --rate); repeatable")
    produce.add_argument("--drift-size", type=float, default=0.5,
                         help="how far a drift moves: standard deviations of a numeric "
                              "feature, the share of a categorical one's mass (0.5)")
    produce.add_argument("--unseen", action="store_true",
                         help="drifted categorical features send that share to categories "
                              "the baseline never had")
    produce.add_argument("--partitions", type=int, default=3,
                         help="partitions of the topic when it has to be created")
    produce.add_argument("--seed", type=int, default=0,
                         help="seed of the synthetic messages: the same seed, the same "
                              "messages")
    produce.add_argument("--format", choices=("json", "avro", "protobuf"), default=None,
                         help="how to encode the messages: default the topic's input.format; "
                              "avro registers the schema of the config's features under "
                              "TOPIC-value in input.schema_registry and frames each record "
                              "with its id; protobuf frames input.protobuf.message")
    produce.set_defaults(handler="kafka:produce")

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
    rules.add_argument("--lag-messages", type=int, default=defaults.lag_messages,
                       help="StreamdriftConsumerLagging fires above this many messages "
                            "waiting")
    rules.add_argument("--runbook-base", default=defaults.runbook_base,
                       help="the URL of the runbooks page (docs/operations/runbooks.md) "
                            "for the alerts' runbook_url; default: the published "
                            "documentation's, give your own for a self-hosted copy")
    rules.add_argument("--job", default=defaults.job, help="the scrape job's name")
    rules.add_argument("--format", choices=("rules", "prometheusrule"), default="rules",
                       help="a Prometheus rule file, or a Prometheus Operator PrometheusRule "
                            "manifest (for clusters without Helm)")
    rules.add_argument("--name", default="streamdrift",
                       help="with --format prometheusrule: the object's name")
    rules.add_argument("--namespace", default=None,
                       help="with --format prometheusrule: the object's namespace")
    rules.add_argument("--output", type=Path, help="write here instead of stdout")
    rules.set_defaults(handler="rules:rules")

    check = commands.add_parser("check", help="validate a config (and its baseline)")
    check.add_argument("--config", required=True, type=Path)
    check.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    check.set_defaults(handler="analysis:check")

    demo = commands.add_parser(
        "demo", help="the engine on a built-in synthetic stream where some features drift")
    demo.add_argument("--messages", type=int, default=40_000,
                      help="without --kafka: the stream's length (it drifts halfway)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the synthetic stream")
    demo.add_argument("--kafka", action="store_true",
                      help="the whole loop on a broker: produce, run the service, scrape it")
    demo.add_argument("--bootstrap", default="127.0.0.1:9092",
                      help="with --kafka: the broker (start one with deploy/local/kafka start)")
    demo.add_argument("--seconds", type=float, default=40.0, help="with --kafka: how long")
    demo.add_argument("--rate", type=float, default=2000.0, help="with --kafka: messages/s")
    demo.add_argument("--format", choices=("json", "avro"), default="json",
                      help="with --kafka: avro registers the demo's schema in --registry and "
                           "sends framed Avro records")
    demo.add_argument("--registry", default="http://127.0.0.1:8081/apis/ccompat/v7",
                      help="with --format avro: the Schema Registry's URL")
    demo.add_argument("--metrics-port", type=int, default=9108,
                      help="with --kafka: the service's /metrics port")
    demo.set_defaults(handler="demo:demo")
    return parser


def _add_delimiter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delimiter", default=None,
                        help="the field delimiter of CSV input (default: found from the file "
                             "among , ; tab |)")
