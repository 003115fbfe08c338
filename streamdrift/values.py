"""Values of typed formats (Avro, Protobuf) spelt as a JSON message would carry them.

Pure. A JSON message has numbers, text, booleans and null; Avro and Protobuf also carry
decimals, timestamps, dates and times of day. Spelling those as JSON would (``json_like``)
lets one stream give the same columns whatever its format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from streamdrift.config import FeatureSpec, TimeUnit
from streamdrift.features import each_path_values, extract_column, raw_values
from streamdrift.schema import DecodedColumns

_EPOCH_DATE = date(1970, 1, 1)
_PLAIN_TYPES = frozenset({int, float, str, type(None)})


def json_like(values: list[Any], numeric: bool) -> list[Any]:
    """Avro values spelt as a JSON message carries them, for a numeric or a categorical
    feature: booleans are 0 and 1 in a numeric feature (Avro types them: no text hides in
    one), decimals numbers, timestamps and dates seconds since the epoch (midnight UTC for
    a date), times of day seconds since midnight; in a categorical feature those are their
    ISO text and UUIDs their text. Anything else is left as it is.

    >>> json_like([True, Decimal("2.50"), datetime(1970, 1, 2, tzinfo=UTC), None], True)
    [1.0, 2.5, 86400.0, None]
    >>> json_like([date(2024, 2, 29), Decimal("2.50")], False)
    ['2024-02-29', '2.50']
    """
    if _PLAIN_TYPES.issuperset(map(type, values)):
        return values
    return [_json_value(value, numeric) for value in values]


def _json_value(value: Any, numeric: bool) -> Any:
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is bool:
        return float(value) if numeric else value
    if kind is Decimal:
        return float(value) if numeric else str(value)
    if kind is datetime:
        return _seconds(value) if numeric else value.isoformat()
    if kind is date:
        return (value - _EPOCH_DATE).days * 86_400.0 if numeric else value.isoformat()
    if kind is time:
        return (value.hour * 3600 + value.minute * 60 + value.second
                + value.microsecond / 1e6) if numeric else value.isoformat()
    if kind is UUID:
        return str(value)
    return value


def time_value(value: Any, unit: TimeUnit) -> Any:
    """An event time as ``window.time_unit`` expects it: a timestamp or a date (Avro's
    logical types) in that unit, anything else as it is.

    >>> moment = datetime(2024, 1, 1, tzinfo=UTC)
    >>> time_value(moment, "s"), time_value(moment, "ms"), time_value(moment, "iso")
    (1704067200.0, 1704067200000.0, '2024-01-01T00:00:00+00:00')
    """
    if type(value) is date:
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if type(value) is not datetime:
        return value
    if unit == "iso":
        return value.isoformat()
    seconds = _seconds(value)
    return seconds * 1000.0 if unit == "ms" else seconds


def _seconds(moment: datetime) -> float:
    """Seconds since the epoch; a local timestamp (no offset) is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def record_columns(records: Sequence[Mapping[str, Any]], positions: list[int],
                   rejections: list[tuple[int, str]], specs: tuple[FeatureSpec, ...],
                   time_field: tuple[str, ...] | None, time_unit: TimeUnit) -> DecodedColumns:
    """Decoded records (Avro records, Protobuf messages as mappings) as the columns of
    ``specs``, values spelt as JSON would carry them, and their event times. Each feature's
    values become its column before the next feature's are read (see ``each_path_values``:
    the garbage collector's work)."""
    columns = [extract_column(spec, json_like(values, spec.type == "numeric"))
               for spec, values in zip(specs, each_path_values(
                   records, [spec.path for spec in specs]), strict=True)]
    times = None
    if time_field is not None:
        times = [time_value(value, time_unit) for value in raw_values(records, time_field)]
    return DecodedColumns(None, columns, positions, rejections, times, specs)


class RecordDecoder:
    """What the decoders of typed records (Avro, Protobuf) share: a batch is decoded into
    records (``decode_records``, theirs), then into the features' columns."""

    specs: tuple[FeatureSpec, ...]
    time_field: tuple[str, ...] | None
    time_unit: TimeUnit

    def decode_records(self, payloads: Sequence[bytes | None]
                       ) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
        raise NotImplementedError

    def decode(self, payloads: Sequence[bytes | None]) -> DecodedColumns:
        records, positions, rejections = self.decode_records(payloads)
        return record_columns(records, positions, rejections, self.specs, self.time_field,
                              self.time_unit)
