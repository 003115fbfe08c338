"""``streamdrift baseline build | show | diff``."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamdrift.baseline import (
    Baseline,
    build_baseline,
    describe_baseline,
    diff_baselines,
    load_baseline,
    save_baseline,
)
from streamdrift.config import Config, load_config, parse_time_ms
from streamdrift.errors import StreamdriftError
from streamdrift.sources.file import (
    Dataset,
    FramedDecoder,
    dataset_from_messages,
    dataset_from_records,
    read_dataset,
)
from streamdrift.textreport import reasons, render_refused


def delimiter(args: argparse.Namespace) -> str | None:
    """``--delimiter``, with ``tab`` and ``\\t`` spelled out."""
    value: str | None = args.delimiter
    if value is not None:
        value = {"\\t": "\t", "tab": "\t"}.get(value, value)
        if len(value) != 1:
            raise StreamdriftError(f"--delimiter must be one character (got {args.delimiter!r})")
    return value


def build_from(config: Config, dataset: Dataset) -> Baseline:
    """A baseline of ``dataset`` with the config's binning; its source names the files."""
    return build_baseline(
        config.features,
        dataset.columns,
        {spec.name: config.bins_for(spec) for spec in config.features},
        config.baseline.max_categories,
        config.baseline.smoothing,
        source=", ".join(Path(source).name if not source.startswith("kafka ") else source
                         for source in dataset.sources),
    )


def build(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.from_kafka == bool(args.input):
        raise StreamdriftError("baseline build needs --input FILE or --from-kafka, not both")
    if args.from_kafka:
        dataset = _dataset_from_kafka(config, args.since, args.until)
    else:
        if args.since or args.until:
            raise StreamdriftError("--since and --until go with --from-kafka")
        dataset = read_dataset(args.input, config.features, config.input.max_message_bytes,
                               delimiter(args), framed_decoder(config))
    baseline = build_from(config, dataset)
    output: Path = args.output or config.baseline.path
    save_baseline(baseline, output)
    skipped = sum(dataset.rejected.values())
    print(f"wrote {output}: {len(baseline.features)} features from {dataset.rows} rows"
          + (f" ({skipped} unusable lines skipped: {reasons(dataset.rejected)})"
             if skipped else ""))
    refused = render_refused(dataset.refused_lines, skipped)
    if refused:
        print(refused)
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
    if config.input.formats() == {"json"}:
        return dataset_from_messages([[record.value for record in records]], config.features,
                                     config.input.max_message_bytes, source)
    decode = framed_decoder(config)
    found, refused = decode([record.value for record in records],
                            [(record.topic, record.partition) for record in records])
    return dataset_from_records(found, Counter(reason for _, reason in refused),
                                config.features, source)


def framed_decoder(config: Config) -> FramedDecoder:
    """Decodes payloads of the config's formats into mappings, fetching the writer schemas
    they name from the registry first (Avro)."""
    from streamdrift.formats import PayloadDecoder
    from streamdrift.sources.records import partition_runs
    from streamdrift.sources.schemas import fetch_writer_schemas, format_decoding

    writer_schemas, message_class = format_decoding(config)
    decoder = PayloadDecoder(config, writer_schemas, message_class)

    def decode(payloads: list[bytes | None], partitions: list[tuple[str, int]]
               ) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        fetch_writer_schemas(writer_schemas, payloads)
        return decoder.decode_records(payloads, partition_runs(partitions) or ((None, 0),))

    return decode


def _iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def show(args: argparse.Namespace) -> int:
    print(describe_baseline(load_baseline(args.baseline)))
    return 0


def diff(args: argparse.Namespace) -> int:
    old, new = load_baseline(args.old), load_baseline(args.new)
    print(f"old {args.old} ({old.source or 'unknown source'}, {old.created_at})")
    print(f"new {args.new} ({new.source or 'unknown source'}, {new.created_at})")
    print("KL(new || old) per feature, on the old baseline's bins; then the bins whose share "
          "moved most (old -> new)\n")
    for found in sorted(diff_baselines(old, new), key=lambda d: -d.kl):
        note = "  (new bins mapped onto the old)" if found.projected else ""
        print(f"{found.name:<24} {found.kl:8.4f} nats{note}")
        for label, before, after in found.moved:
            print(f"    {label}: {before:.1%} -> {after:.1%}")
    only = sorted(set(old.features) ^ set(new.features))
    if only:
        print(f"\nin one baseline only: {', '.join(only)}")
    return 0
