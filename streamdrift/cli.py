"""The ``streamdrift`` command line.

    streamdrift baseline build --config C --input F [--input F ...] [--output B]
    streamdrift baseline show B
    streamdrift replay --config C [--baseline B] --input F.jsonl [--report R]
    streamdrift compare --config C REFERENCE CURRENT [--json]
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
from collections.abc import Mapping, Sequence
from pathlib import Path

from streamdrift import __version__
from streamdrift.baseline import (
    Baseline,
    build_baseline,
    check_baseline_fits,
    describe_baseline,
    load_baseline,
    save_baseline,
)
from streamdrift.config import Config, DetectorConfig, WindowConfig, load_config
from streamdrift.errors import ConfigError, StreamdriftError
from streamdrift.features import extract_features
from streamdrift.monitor import DriftMonitor, DriftReport
from streamdrift.sources.file import Dataset, iter_jsonl_payloads, read_dataset
from streamdrift.synthetic import DEMO_DRIFTED, SyntheticStream, demo_config

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
    build.add_argument("--input", required=True, action="append", type=Path,
                       help="reference data: .csv or .parquet (columns by feature name) or "
                            ".jsonl (messages, features by path); repeatable")
    build.add_argument("--output", type=Path,
                       help="where to write the baseline (default: baseline.path of the config)")
    build.set_defaults(handler=_baseline_build)
    show = baseline_commands.add_parser("show", help="print a readable summary of a baseline")
    show.add_argument("baseline", type=Path)
    show.set_defaults(handler=_baseline_show)

    replay = commands.add_parser(
        "replay", help="run a JSONL file of messages through the windows, as the service does")
    replay.add_argument("--config", required=True, type=Path)
    replay.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    replay.add_argument("--input", required=True, type=Path, help="messages, one JSON per line")
    replay.add_argument("--report", type=Path, help="write the final window's report as JSON")
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
    compare.add_argument("--fail-on-drift", action="store_true",
                         help="exit 1 when a feature differs beyond its threshold")
    compare.set_defaults(handler=_compare)

    check = commands.add_parser("check", help="validate a config (and its baseline)")
    check.add_argument("--config", required=True, type=Path)
    check.add_argument("--baseline", type=Path, help="default: baseline.path of the config")
    check.set_defaults(handler=_check)

    demo = commands.add_parser(
        "demo", help="the engine on a built-in synthetic stream where some features drift")
    demo.add_argument("--messages", type=int, default=40_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=_demo)
    return parser


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
    dataset = read_dataset(args.input, config.features, config.input.max_message_bytes)
    baseline = _build_from(config, dataset)
    output: Path = args.output or config.baseline.path
    save_baseline(baseline, output)
    skipped = sum(dataset.rejected.values())
    print(f"wrote {output}: {len(baseline.features)} features from {dataset.rows} rows"
          + (f" ({skipped} unusable lines skipped: {_reasons(dataset.rejected)})"
             if skipped else ""))
    print(describe_baseline(baseline))
    return 0


def _baseline_show(args: argparse.Namespace) -> int:
    print(describe_baseline(load_baseline(args.baseline)))
    return 0


# ---- replay, compare, check ----------------------------------------------------------------

def _replay(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.window.is_event_time and config.window.time_field is None:
        raise ConfigError("window.time_field is required to replay an event-time window from "
                          "a file (the service falls back to the Kafka record timestamp)")
    baseline_path: Path = args.baseline or config.baseline.path
    monitor = DriftMonitor(config, load_baseline(baseline_path), str(baseline_path))
    for payloads in iter_jsonl_payloads(args.input, max(1, args.batch_size)):
        monitor.process_payloads(payloads)
    report = monitor.report()
    print(render_report(report))
    if args.report:
        _write_json(args.report, report.to_json())
    return EXIT_DRIFT if args.fail_on_drift and report.drifted else 0


def _compare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    reference = read_dataset([args.reference], config.features, config.input.max_message_bytes)
    current = read_dataset([args.current], config.features, config.input.max_message_bytes)
    baseline = _build_from(config, reference)
    # The whole of CURRENT is one window of one pane; no change detection on a single value.
    whole = dataclasses.replace(
        config,
        window=WindowConfig(size=max(current.rows, 1), panes=1),
        detector=DetectorConfig(method="none"),
    )
    monitor = DriftMonitor(whole, baseline, str(args.reference))
    for reason, count in current.rejected.items():
        monitor.reject(reason, count)
    monitor.process_columns([current.columns[spec.name] for spec in config.features])
    report = monitor.report()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(f"reference {args.reference} ({reference.rows} rows) vs current {args.current} "
              f"({current.rows} rows)")
        print(render_report(report))
    return EXIT_DRIFT if args.fail_on_drift and report.drifted else 0


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"config {args.config}: OK, {len(config.features)} features, window "
          f"{config.window.describe()}, KL threshold {config.divergence.threshold} nats")
    baseline_path: Path = args.baseline or config.baseline.path
    baseline = load_baseline(baseline_path)
    check_baseline_fits(baseline, config.features, str(baseline_path))
    print(f"baseline {baseline_path}: OK, {len(baseline.features)} features, created "
          f"{baseline.created_at}, hash {baseline.content_hash()}")
    return 0


def _write_json(path: Path, document: object) -> None:
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise StreamdriftError(f"cannot write {path}: {error.strerror}") from None


# ---- demo ----------------------------------------------------------------------------------

def _demo(args: argparse.Namespace) -> int:
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
    return "\n".join(lines)
