"""The story of a replay: one point per closed pane (the window's KL, p-value and status of
every feature), and when each feature was first flagged.

``Timeline`` is a pane observer of a ``DriftMonitor`` (``monitor.pane_observers``);
``write_timeline`` writes its points as CSV or JSON lines, by the file's suffix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from streamdrift.errors import InputError
from streamdrift.monitor import DriftReport, PaneSnapshot

TIMELINE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class FeaturePoint:
    kl: float | None
    p_value: float | None
    status: str


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
        if self.event_time_s is None:
            return None
        moment = datetime.fromtimestamp(self.event_time_s, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class FirstFlag:
    """When a feature was first flagged: after ``messages`` messages, at ``event_time``."""

    messages: int
    event_time: str | None


@dataclass
class Timeline:
    """Collects a point at every pane close; ``finish`` adds the end of the input."""

    points: list[TimelinePoint] = field(default_factory=list)

    def __call__(self, snapshot: PaneSnapshot) -> None:
        self.points.append(_point(snapshot.pane, snapshot.messages, snapshot.event_time_s,
                                  snapshot.report))

    def finish(self, report: DriftReport) -> None:
        """The window as the input ends, whose last pane may never have closed."""
        self.points.append(_point(None, report.messages, None, report))

    def first_flags(self) -> dict[str, FirstFlag]:
        """Every feature flagged at some point, with the first point that flagged it.

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
                    flags[name] = FirstFlag(point.messages, point.event_time)
        return flags


def _point(pane: int | None, messages: int, event_time_s: float | None,
           report: DriftReport) -> TimelinePoint:
    return TimelinePoint(pane, messages, event_time_s, {
        name: FeaturePoint(feature.kl, feature.p_value, feature.status)
        for name, feature in report.features.items()})


def write_timeline(path: Path, points: Sequence[TimelinePoint],
                   feature_names: Sequence[str]) -> None:
    """One row per point: ``pane`` (empty for the end of the input), ``messages``,
    ``event_time``, then per feature ``<name>.kl``, ``<name>.p_value`` and ``<name>.status``
    (CSV), or ``{"pane", "messages", "event_time", "features": {name: {kl, p_value,
    status}}}`` per line (JSONL)."""
    suffix = path.suffix.lower()
    if suffix not in TIMELINE_SUFFIXES:
        raise InputError(f"--timeline {path}: use a .csv or .jsonl file")
    try:
        with path.open("w", newline="", encoding="utf-8") as stream:
            if suffix == ".csv":
                writer = csv.writer(stream)
                writer.writerow(["pane", "messages", "event_time", *(
                    f"{name}.{key}" for name in feature_names
                    for key in ("kl", "p_value", "status"))])
                for point in points:
                    row: list[object] = ["" if point.pane is None else point.pane,
                                         point.messages, point.event_time or ""]
                    for name in feature_names:
                        feature = point.features[name]
                        row += ["" if feature.kl is None else feature.kl,
                                "" if feature.p_value is None else feature.p_value,
                                feature.status]
                    writer.writerow(row)
            else:
                for point in points:
                    stream.write(json.dumps({
                        "pane": point.pane, "messages": point.messages,
                        "event_time": point.event_time,
                        "features": {name: {"kl": point.features[name].kl,
                                            "p_value": point.features[name].p_value,
                                            "status": point.features[name].status}
                                     for name in feature_names}}) + "\n")
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None
