"""The story of a replay: one point per closed pane (the window's KL, p-value and status of
every feature), and when each feature was first flagged.

``Timeline`` is a pane observer of a ``DriftMonitor`` (``monitor.pane_observers``);
``write_timeline`` writes its points as CSV or JSON lines, by the file's suffix. The time of
a point is the end of the pane for a duration window; for a count window whose messages
carry a time (``window.time_field``), a ``MessageClock`` gives the time of the last message
read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamdrift.config import TimeUnit
from streamdrift.errors import InputError
from streamdrift.monitor import DriftReport, PaneSnapshot, event_times_s

TIMELINE_SUFFIXES = (".csv", ".jsonl", ".ndjson")
# How reports name the detectors (docs/statistics.md).
DETECTOR_NAMES = {"window": "the window", "scan": "the scan",
                  "sequential": "the sequential test"}


def name_detectors(detectors: Sequence[str]) -> str:
    """The detectors as the reports name them.

    >>> name_detectors(("window", "scan"))
    'the window and the scan'
    """
    return " and ".join(DETECTOR_NAMES.get(detector, detector) for detector in detectors)


def iso_time(seconds: float) -> str:
    """Seconds since the epoch in ISO-8601, UTC, to the millisecond.

    >>> iso_time(1704067200.5)
    '2024-01-01T00:00:00.500Z'
    """
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class FeaturePoint:
    kl: float | None
    p_value: float | None
    status: str
    flagged_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimelinePoint:
    """The window at one moment: a pane's close (``pane``), or the end of the input (None)."""

    pane: int | None
    messages: int
    event_time_s: float | None
    features: Mapping[str, FeaturePoint]

    @property
    def event_time(self) -> str | None:
        """The event time in ISO-8601 (UTC), when the window has one."""
        return None if self.event_time_s is None else iso_time(self.event_time_s)


@dataclass(frozen=True)
class FirstFlag:
    """When a feature was first flagged: after ``messages`` messages, at ``event_time``, by
    the ``detectors`` that flagged it then."""

    messages: int
    event_time: str | None
    detectors: tuple[str, ...] = ()

    def by(self) -> str:
        """", by the scan": the detectors that flagged it first, as the reports say it."""
        return f", by {name_detectors(self.detectors)}" if self.detectors else ""


# How far back from a pane's close a MessageClock looks for a message with a readable time.
CLOCK_LOOKBACK = 100


class MessageClock:
    """The times of the messages of a count window: from ``time_field`` in the message when
    it is set, else from the record timestamps handed with the messages (a file of Kafka
    records has them), as a duration window would take them.

    A count window does not read times, so the replay hands each batch of messages to the
    clock before the monitor counts it (``batch``), and a timeline asks it the time after
    ``messages`` messages (``time_of``): the time of that message, or of the nearest one
    before it that has a usable time (up to ``CLOCK_LOOKBACK`` back), else None. Only the
    messages asked about are decoded.

    >>> clock = MessageClock(("meta", "ts"), "s")
    >>> clock.batch(0, [b'{"meta": {"ts": 1704067200}}', b'{"meta": {}}', b'not json'])
    >>> clock.batch(3, [b'{"meta": {"ts": 1704067260.5}}'])
    >>> clock.time_of(3), clock.time_of(4), clock.time_of(0)
    (1704067200.0, 1704067260.5, None)
    >>> records = MessageClock(None, "s")
    >>> records.batch(0, [b"...", b"..."], [1704067200.0, float("nan")])
    >>> records.time_of(2)
    1704067200.0
    """

    def __init__(self, time_field: tuple[str, ...] | None, time_unit: TimeUnit) -> None:
        self.time_field = time_field
        self.time_unit = time_unit
        self._start = 0
        self._payloads: list[bytes | None] = []
        self._record_times_s: list[float | None] = []

    def batch(self, start: int, payloads: Sequence[bytes | None],
              record_times_s: Sequence[float] | None = None) -> None:
        """The next batch of messages, the first of them message ``start + 1``, with their
        record timestamps if any; the tail of the previous batch is kept, since a pane may
        close on its last message."""
        kept = len(self._payloads[-CLOCK_LOOKBACK:])
        self._payloads = [*self._payloads[len(self._payloads) - kept:], *payloads]
        times = [None] * len(payloads) if record_times_s is None else list(record_times_s)
        self._record_times_s = [*self._record_times_s[len(self._record_times_s) - kept:],
                                *times]
        self._start = start - kept

    def time_of(self, messages: int) -> float | None:
        """The time (seconds since the epoch) after ``messages`` messages."""
        last = messages - 1 - self._start
        for index in range(min(last, len(self._payloads) - 1),
                           max(last - CLOCK_LOOKBACK, -1), -1):
            moment = self._read(index)
            if moment is not None:
                return moment
        return None

    def _read(self, index: int) -> float | None:
        if self.time_field is None:
            value: Any = self._record_times_s[index]
        else:
            try:
                payload = self._payloads[index]
                value = json.loads(payload) if payload is not None else None
            except ValueError:
                return None
            for key in self.time_field:
                value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
        times, usable = event_times_s([value], "s" if self.time_field is None
                                      else self.time_unit)
        return float(times[0]) if usable[0] else None


@dataclass
class Timeline:
    """Collects a point at every pane close; ``finish`` adds the end of the input. With a
    ``clock``, a point without a time (a count window's) gets the clock's time."""

    points: list[TimelinePoint] = field(default_factory=list)
    clock: MessageClock | None = None

    def __call__(self, snapshot: PaneSnapshot) -> None:
        self.points.append(_point(snapshot.pane, snapshot.messages,
                                  self._time(snapshot.messages, snapshot.event_time_s),
                                  snapshot.report))

    def finish(self, report: DriftReport) -> None:
        """The window as the input ends, whose last pane may never have closed."""
        self.points.append(_point(None, report.messages, self._time(report.messages, None),
                                  report))

    def _time(self, messages: int, pane_end_s: float | None) -> float | None:
        if pane_end_s is not None or self.clock is None:
            return pane_end_s
        return self.clock.time_of(messages)

    def first_flags(self, report: DriftReport | None = None) -> dict[str, FirstFlag]:
        """Every feature flagged at some point, with the first point that flagged it; with
        the ``report`` of the end of the input, the monitor's own first flags where it has
        them (the very message of a sequential alarm, not the pane close after it), at the
        time of that message (a duration window: the end of its pane).

        >>> from streamdrift.timeline import FeaturePoint, TimelinePoint
        >>> ok, drift = FeaturePoint(0.01, 0.5, "ok"), FeaturePoint(0.3, 1e-9, "drift")
        >>> timeline = Timeline([TimelinePoint(0, 100, None, {"a": ok, "b": ok}),
        ...                      TimelinePoint(1, 200, None, {"a": drift, "b": ok}),
        ...                      TimelinePoint(2, 300, None, {"a": drift, "b": drift})])
        >>> {name: flag.messages for name, flag in timeline.first_flags().items()}
        {'a': 200, 'b': 300}
        """
        flags: dict[str, FirstFlag] = {}
        for point in self.points:
            for name, feature in point.features.items():
                if feature.status == "drift" and name not in flags:
                    flags[name] = FirstFlag(point.messages, point.event_time,
                                            feature.flagged_by)
        if report is None:
            return flags
        for name, reported in report.features.items():
            if reported.first_flag_messages is not None and reported.first_flag_detector:
                messages = reported.first_flag_messages
                flags[name] = FirstFlag(messages, self._event_time_after(messages),
                                        (reported.first_flag_detector,))
        return flags

    def _event_time_after(self, messages: int) -> str | None:
        """The event time after ``messages`` messages: a point's, at a pane close; else the
        clock's, while it still holds that message; else the end of the pane they fell in."""
        later = [point for point in self.points if point.messages >= messages]
        if later and later[0].messages == messages:
            return later[0].event_time
        moment = None if self.clock is None else self.clock.time_of(messages)
        if moment is not None:
            return iso_time(moment)
        return later[0].event_time if later else None


def _point(pane: int | None, messages: int, event_time_s: float | None,
           report: DriftReport) -> TimelinePoint:
    return TimelinePoint(pane, messages, event_time_s, {
        name: FeaturePoint(feature.kl, feature.p_value, feature.status, feature.flagged_by)
        for name, feature in report.features.items()})


def write_timeline(path: Path, points: Sequence[TimelinePoint],
                   feature_names: Sequence[str]) -> None:
    """One row per point: ``pane`` (empty for the end of the input), ``messages``,
    ``event_time``, then per feature ``<name>.kl``, ``<name>.p_value``, ``<name>.status``
    and ``<name>.flagged_by`` (the detectors flagging it, joined by "+") (CSV), or
    ``{"pane", "messages", "event_time", "features": {name: {kl, p_value, status,
    flagged_by}}}`` per line (JSONL)."""
    suffix = path.suffix.lower()
    if suffix not in TIMELINE_SUFFIXES:
        raise InputError(f"--timeline {path}: use a .csv or .jsonl file")
    try:
        with path.open("w", newline="", encoding="utf-8") as stream:
            if suffix == ".csv":
                writer = csv.writer(stream)
                writer.writerow(["pane", "messages", "event_time", *(
                    f"{name}.{key}" for name in feature_names
                    for key in ("kl", "p_value", "status", "flagged_by"))])
                for point in points:
                    row: list[object] = ["" if point.pane is None else point.pane,
                                         point.messages, point.event_time or ""]
                    for name in feature_names:
                        feature = point.features[name]
                        row += ["" if feature.kl is None else feature.kl,
                                "" if feature.p_value is None else feature.p_value,
                                feature.status, "+".join(feature.flagged_by)]
                    writer.writerow(row)
            else:
                for point in points:
                    stream.write(json.dumps({
                        "pane": point.pane, "messages": point.messages,
                        "event_time": point.event_time,
                        "features": {name: {"kl": point.features[name].kl,
                                            "p_value": point.features[name].p_value,
                                            "status": point.features[name].status,
                                            "flagged_by": list(
                                                point.features[name].flagged_by)}
                                     for name in feature_names}}) + "\n")
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None
