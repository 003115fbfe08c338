"""Reading reference datasets (CSV, Parquet, JSONL) and JSONL message files.

Tabular files carry one column per feature, by feature *name*; JSONL files carry messages
shaped like the topic, with features found by *path*, through the same decoder and
extraction as live messages.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamdrift.config import FeatureSpec
from streamdrift.decoding import MessageDecoder
from streamdrift.errors import InputError
from streamdrift.features import (
    STATUS_MISSING,
    FeatureColumn,
    extract_column,
    parse_text_cell,
    raw_values,
)
from streamdrift.values import json_like

TABULAR_SUFFIXES = (".csv", ".parquet")
MESSAGE_SUFFIXES = (".jsonl", ".ndjson")
# Avro container files: of data records (features by path, like JSONL messages), or of
# Kafka records whose values are framed (sources.framed_file).
AVRO_SUFFIXES = (".avro",)
# Framed payloads, with the (topic, partition) of each -> the messages as mappings and the
# refused payloads as (position, reason): formats.PayloadDecoder.decode_records, once the
# writer schemas are at hand.
FramedDecoder = Callable[[list[bytes | None], list[tuple[str, int]]],
                         tuple[list[dict[str, Any]], list[tuple[int, str]]]]


# How many unusable values of a feature a dataset keeps to show.
INVALID_EXAMPLES = 3
# How many refused lines of JSONL input are named by number.
REFUSED_LINES_SHOWN = 5
# The delimiters a CSV file is sniffed for when none is given.
CSV_DELIMITERS = ",;\t|"


@dataclass
class Dataset:
    """Feature columns read from one or more files, with the lines that could not be used
    and, per feature, the first few values that could not (``invalid_examples``)."""

    columns: dict[str, FeatureColumn]
    rows: int
    rejected: Counter[str] = field(default_factory=Counter)
    sources: list[str] = field(default_factory=list)
    invalid_examples: dict[str, list[Any]] = field(default_factory=dict)
    # The first refused lines of JSONL files: (file, line number from 1, reason).
    refused_lines: list[tuple[str, int, str]] = field(default_factory=list)

    def invalid_counts(self) -> dict[str, int]:
        """Unusable values (wrong type, non-finite) per feature, where there are any."""
        counts = {name: int(np.count_nonzero(column.status > STATUS_MISSING))
                  for name, column in self.columns.items()}
        return {name: count for name, count in counts.items() if count}


def read_dataset(paths: Sequence[Path], specs: Sequence[FeatureSpec],
                 max_message_bytes: int, delimiter: str | None = None,
                 decode_framed: FramedDecoder | None = None) -> Dataset:
    """Every feature's values across ``paths`` (rows in file order, files in given order).

    A CSV file is split on ``delimiter``, or on the one of ``CSV_DELIMITERS`` its first
    lines show. An Avro container of Kafka records is decoded by ``decode_framed``. A file
    without a single row is an error.
    """
    values: dict[str, list[Any]] = {spec.name: [] for spec in specs}
    rejected: Counter[str] = Counter()
    refused_lines: list[tuple[str, int, str]] = []
    rows = 0
    for path in paths:
        suffix = path.suffix.lower()
        file_rejected: Counter[str] = Counter()
        if suffix == ".csv":
            file_values = _read_csv(path, specs, delimiter)
        elif suffix == ".parquet":
            file_values = _read_parquet(path, specs)
        elif suffix in MESSAGE_SUFFIXES:
            file_values, file_rejected, refused = message_values(
                iter_jsonl_lines(path), specs, max_message_bytes)
            rejected.update(file_rejected)
            refused_lines += [(str(path), number, reason) for number, reason in refused]
        elif suffix in AVRO_SUFFIXES:
            file_values, file_rejected = _read_avro(path, specs, decode_framed)
            rejected.update(file_rejected)
        else:
            raise InputError(f"{path}: unknown input type {suffix!r}; use .csv, .parquet, "
                             ".jsonl or .avro")
        file_rows = len(file_values[specs[0].name]) if specs else 0
        if file_rows == 0 and not file_rejected:
            raise InputError(f"{path}: no rows")
        for spec in specs:
            values[spec.name].extend(file_values[spec.name])
        rows += file_rows
    dataset = _dataset(specs, values, rows, rejected, [str(path) for path in paths])
    dataset.refused_lines = refused_lines[:REFUSED_LINES_SHOWN]
    return dataset


def _read_avro(path: Path, specs: Sequence[FeatureSpec], decode_framed: FramedDecoder | None
               ) -> tuple[dict[str, list[Any]], Counter[str]]:
    from streamdrift.sources.framed_file import (
        is_framed_record_file,
        iter_data_records,
        iter_framed_records,
    )

    values: dict[str, list[Any]] = {spec.name: [] for spec in specs}
    rejected: Counter[str] = Counter()
    if is_framed_record_file(path):
        if decode_framed is None:
            raise InputError(f"{path}: a file of Kafka records needs the topic's format "
                             "(input.format) to be read")
        for batch in iter_framed_records(path):
            records, refused = decode_framed(batch.values, batch.partitions)
            rejected.update(reason for _, reason in refused)
            _extend_values(values, specs, records)
        return values, rejected
    for records in iter_data_records(path):
        _extend_values(values, specs, records)
    return values, rejected


def _extend_values(values: dict[str, list[Any]], specs: Sequence[FeatureSpec],
                   records: Sequence[Mapping[str, Any]]) -> None:
    """Each feature's values in ``records``, spelt as JSON would carry them."""
    for spec in specs:
        values[spec.name].extend(json_like(raw_values(records, spec.path),
                                           spec.type == "numeric"))


def dataset_from_records(records: Sequence[Mapping[str, Any]], rejected: Counter[str],
                         specs: Sequence[FeatureSpec], source: str) -> Dataset:
    """A dataset of decoded messages (a topic of any format read back)."""
    values: dict[str, list[Any]] = {spec.name: [] for spec in specs}
    _extend_values(values, specs, records)
    if not records and not rejected:
        raise InputError(f"{source}: no messages")
    return _dataset(specs, values, len(records), rejected, [source])


def _dataset(specs: Sequence[FeatureSpec], values: dict[str, list[Any]], rows: int,
             rejected: Counter[str], sources: list[str]) -> Dataset:
    columns = {spec.name: extract_column(spec, values[spec.name]) for spec in specs}
    examples = {name: [values[name][index] for index in
                       np.flatnonzero(column.status > STATUS_MISSING)[:INVALID_EXAMPLES].tolist()]
                for name, column in columns.items()}
    return Dataset(columns, rows, rejected, sources,
                   {name: found for name, found in examples.items() if found})


def _read_csv(path: Path, specs: Sequence[FeatureSpec], delimiter: str | None
              ) -> dict[str, list[Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            if delimiter is None:
                delimiter = _sniff_delimiter(stream.read(65536))
                stream.seek(0)
            reader = csv.DictReader(stream, delimiter=delimiter)
            header = reader.fieldnames or []
            if not header:
                raise InputError(f"{path}: no rows")
            _require_columns(path, header, specs)
            values: dict[str, list[Any]] = {spec.name: [] for spec in specs}
            for row in reader:
                for spec in specs:
                    values[spec.name].append(parse_text_cell(row.get(spec.name), spec))
            return values
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path} is not a readable UTF-8 CSV file: {error}") from None


def _sniff_delimiter(sample: str) -> str:
    r"""The delimiter of a CSV sample among ``CSV_DELIMITERS``; a comma when it tells none.

    >>> _sniff_delimiter("a;b;c\n1;2,5;x\n"), _sniff_delimiter("a\n1\n")
    (';', ',')
    """
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _read_parquet(path: Path, specs: Sequence[FeatureSpec]) -> dict[str, list[Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow; install it with "
                         "pip install 'streamdrift[parquet]'") from None
    try:
        schema_names = parquet.read_schema(path).names
        _require_columns(path, schema_names, specs)
        table = parquet.read_table(path, columns=[spec.name for spec in specs])
    except OSError as error:
        raise InputError(f"cannot read Parquet file {path}: {error}") from None
    return {spec.name: table.column(spec.name).to_pylist() for spec in specs}


def _require_columns(path: Path, header: Sequence[str], specs: Sequence[FeatureSpec]) -> None:
    absent = [spec.name for spec in specs if spec.name not in header]
    if absent:
        raise InputError(f"{path} has no column for feature(s) {', '.join(absent)}; "
                         f"its columns are: {', '.join(header) or '(none)'}")


def message_values(batches: Iterable[tuple[Sequence[int], Sequence[bytes | None]]],
                   specs: Sequence[FeatureSpec], max_message_bytes: int
                   ) -> tuple[dict[str, list[Any]], Counter[str], list[tuple[int, str]]]:
    """Every feature's raw values across batches of (numbers, message payloads), found by
    path through the decoder live messages take; the refused messages by reason; and the
    first ``REFUSED_LINES_SHOWN`` refused ones as (number, reason)."""
    decoder = MessageDecoder(max_message_bytes)
    values: dict[str, list[Any]] = {spec.name: [] for spec in specs}
    rejected: Counter[str] = Counter()
    refused: list[tuple[int, str]] = []
    for numbers, payloads in batches:
        batch = decoder.decode(list(payloads))
        rejected.update(batch.rejected)
        if len(refused) < REFUSED_LINES_SHOWN:
            refused += [(numbers[index], reason) for index, reason in batch.rejections]
        for spec in specs:
            values[spec.name].extend(raw_values(batch.objects, spec.path))
    return values, rejected, refused[:REFUSED_LINES_SHOWN]


def dataset_from_messages(batches: Iterable[Sequence[bytes | None]],
                          specs: Sequence[FeatureSpec], max_message_bytes: int,
                          source: str) -> Dataset:
    """A dataset of message payloads (a topic read back, say), like a JSONL file's."""
    numbered = ((range(len(payloads)), payloads) for payloads in batches)
    values, rejected, _ = message_values(numbered, specs, max_message_bytes)
    rows = len(values[specs[0].name]) if specs else 0
    if rows == 0 and not rejected:
        raise InputError(f"{source}: no messages")
    return _dataset(specs, values, rows, rejected, [source])


def iter_jsonl_lines(path: Path, batch_size: int = 1000
                     ) -> Iterator[tuple[list[int], list[bytes]]]:
    """Batches of (line numbers from 1, payloads) of a JSONL file, blank lines skipped."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    with stream:
        numbers: list[int] = []
        batch: list[bytes] = []
        for number, line in enumerate(stream, start=1):
            payload = line.rstrip(b"\r\n")
            if not payload.strip():
                continue
            numbers.append(number)
            batch.append(payload)
            if len(batch) >= batch_size:
                yield numbers, batch
                numbers, batch = [], []
        if batch:
            yield numbers, batch
