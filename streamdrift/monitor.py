"""The drift monitor: feature specs + baseline + windows + divergences -> a frozen report.

One ``DriftMonitor`` owns all mutable state and is driven by one thread: ``process_payloads``
for raw message bytes (Kafka, JSONL replay), ``process_columns`` for tabular data.
``report()`` builds an immutable ``DriftReport`` that readers (the exporter, the CLI) can hold
without locks.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from streamdrift.baseline import Baseline, FeatureBaseline, build_baseline, check_baseline_fits
from streamdrift.binning import SlotBinner
from streamdrift.config import (
    Config,
    DetectorConfig,
    FeatureSpec,
    ScanConfig,
    TimeUnit,
    WindowConfig,
    format_duration,
)
from streamdrift.decoding import REJECT_BAD_TIMESTAMP
from streamdrift.detectors import ChangeDetector, make_detector
from streamdrift.divergence import (
    Divergences,
    IncrementalKL,
    auto_min_samples,
    divergences,
    expected_null_kl,
    g_critical_values,
    holm_adjusted,
    kl_contributions,
)
from streamdrift.features import (
    INVALID_VALUE_REASONS,
    STATUS_NON_FINITE,
    STATUS_OK,
    FeatureColumn,
    numeric_column,
    table_columns,
)
from streamdrift.formats import PayloadDecoder
from streamdrift.scan import PaneScan
from streamdrift.schema import DecodedColumns
from streamdrift.sequential import MixtureCusum, cusum_threshold
from streamdrift.sketch import PartitionedWindow, SlotLayout

FeatureStatus = Literal["ok", "drift", "insufficient_data"]
# The three ways a feature is flagged (docs/statistics.md): the window's effect size, the
# multi-scale scan over panes, the sequential test on every value.
Detector = Literal["window", "scan", "sequential"]
DETECTORS: tuple[Detector, ...] = ("window", "scan", "sequential")
# Where each message of a batch came from: (partition, index of its first message) per run
# of consecutive messages of one partition, in order. A partition is any hashable key, the
# service's (topic, partition); None for a stream that has no partitions.
PartitionRuns = Sequence[tuple[Hashable, int]]


@dataclass(frozen=True)
class FeatureReport:
    """One feature's state for the current window.

    The divergences are None while the window holds fewer than ``min_samples`` values
    ("insufficient data"): a KL from a handful of values is mostly noise. ``status`` is
    "drift" while any detector flags the feature (``flagged_by``): the window ("window":
    ``kl`` above ``threshold`` and ``p_value_adjusted``, the two-sample test's p-value
    Holm-adjusted over the features of the report, at most ``alpha``), the multi-scale scan
    ("scan": from the pane close at which a scale rejects to the first at which none does)
    or the sequential test ("sequential": from its alarm until the pane of the alarm has
    left the window). ``kl_noise_floor`` is the KL expected without drift at this window
    size. Scores are fractions of the detector's threshold (1: at it; None: not tested).
    """

    name: str
    type: str
    status: FeatureStatus
    kl: float | None
    js: float | None
    psi: float | None
    p_value: float | None
    p_value_adjusted: float | None
    kl_noise_floor: float | None
    samples: int
    missing: int
    invalid: int
    missing_ratio: float | None
    baseline_missing_ratio: float
    threshold: float
    alpha: float
    min_samples: int
    reference_samples: int
    g_critical: float
    change_points: int
    window_counts: tuple[int, ...]
    # Per bin, in bin order: its label, the baseline's and the window's probability, and its
    # term of the KL (they sum to ``kl``). Window and terms are None without a divergence.
    bin_labels: tuple[str, ...]
    reference_probabilities: tuple[float, ...]
    window_probabilities: tuple[float, ...] | None
    contributions: tuple[float, ...] | None
    bin_totals: tuple[int, ...]
    unseen_total: int
    out_of_range_total: int
    missing_total: int
    invalid_values_total: Mapping[str, int]
    flagged_by: tuple[Detector, ...] = ()
    scan_score: float | None = None
    scan_alarm: bool = False
    scan_alarms_total: int = 0
    # The fewest of the newest values that show the change while the scan's alarm holds.
    scan_alarm_values: int = 0
    sequential_score: float | None = None  # None also when the sequential test is off
    sequential_alarm: bool = False
    sequential_alarms_total: int = 0
    # The first flag since start: after how many messages, by which detector.
    first_flag_messages: int | None = None
    first_flag_detector: Detector | None = None

    @property
    def drift(self) -> bool:
        return self.status == "drift"

    def bins(self) -> list[dict[str, Any]]:
        """Every bin as ``{label, reference, window, contribution}``, in bin order."""
        window = self.window_probabilities or (None,) * len(self.bin_labels)
        terms = self.contributions or (None,) * len(self.bin_labels)
        return [{"label": label, "reference": reference, "window": share,
                 "contribution": term}
                for label, reference, share, term in zip(
                    self.bin_labels, self.reference_probabilities, window, terms, strict=True)]

    def top_contributions(self, count: int = 3) -> list[dict[str, Any]]:
        """The ``count`` bins that add most to the KL, largest first: positive terms of at
        least 1 % of the KL (smaller ones are noise, not an explanation)."""
        floor = 0.01 * (self.kl or 0.0)
        ranked = sorted((entry for entry in self.bins()
                         if entry["contribution"] is not None and entry["contribution"] > 0
                         and entry["contribution"] >= floor),
                        key=lambda entry: -entry["contribution"])
        return ranked[:count]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "drift": self.drift,
            "kl": self.kl,
            "js": self.js,
            "psi": self.psi,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "kl_noise_floor": self.kl_noise_floor,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "samples": self.samples,
            "min_samples": self.min_samples,
            "reference_samples": self.reference_samples,
            "missing": self.missing,
            "invalid": self.invalid,
            "missing_ratio": self.missing_ratio,
            "baseline_missing_ratio": self.baseline_missing_ratio,
            "change_points": self.change_points,
            "flagged_by": list(self.flagged_by),
            "scan": {"score": self.scan_score, "alarm": self.scan_alarm,
                     "alarms_total": self.scan_alarms_total,
                     "alarm_values": self.scan_alarm_values},
            "sequential": {"score": self.sequential_score, "alarm": self.sequential_alarm,
                           "alarms_total": self.sequential_alarms_total},
            "first_flag": None if self.first_flag_messages is None else {
                "messages": self.first_flag_messages, "detector": self.first_flag_detector},
            "unseen_total": self.unseen_total,
            "out_of_range_total": self.out_of_range_total,
            "invalid_values_total": dict(self.invalid_values_total),
            "window_counts": list(self.window_counts),
            "bins": self.bins(),
        }


@dataclass(frozen=True)
class DriftReport:
    """Everything the monitor knows at one moment; immutable, safe to share across threads."""

    messages: int
    invalid: int
    invalid_reasons: Mapping[str, int]
    late: int
    window_messages: int
    window: str
    panes_closed: int
    baseline_hash: str
    baseline_created_at: str
    features: Mapping[str, FeatureReport]
    # Messages in the window per partition held (empty for a stream without partitions).
    partition_messages: Mapping[Hashable, int] = field(default_factory=dict)
    created_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def drifted(self) -> list[str]:
        return [name for name, feature in self.features.items() if feature.drift]

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "invalid": self.invalid,
            "invalid_reasons": dict(sorted(self.invalid_reasons.items())),
            "late": self.late,
            "window": {"description": self.window, "messages": self.window_messages,
                       "panes_closed": self.panes_closed},
            "baseline": {"hash": self.baseline_hash, "created_at": self.baseline_created_at},
            "drifted": self.drifted,
            "features": {name: feature.to_json() for name, feature in self.features.items()},
        }


def occupied_bins(feature: FeatureBaseline) -> int:
    """The bins the reference has values in (all of them for a file without counts)."""
    return int(np.count_nonzero(feature.counts)) or feature.n_bins


def resolve_min_samples(config: Config, features: Sequence[FeatureBaseline]) -> list[int]:
    """Every feature's min_samples (config order): its own, the config's, or ``auto`` from
    its threshold, occupied bins and reference size."""
    return [configured if (configured := config.min_samples_for(spec)) is not None
            else auto_min_samples(config.threshold_for(spec), occupied_bins(feature),
                                  feature.count)
            for spec, feature in zip(config.features, features, strict=True)]


@dataclass(frozen=True)
class PaneSnapshot:
    """The monitor as a pane closes: the window then holds that pane and the ones before
    it. ``messages``: messages read before the one that opened the next pane (its position
    in the input, rejected ones included); ``event_time_s``: the end of the pane for an
    event-time window, else None. The report's running counters are those of the batch."""

    pane: int
    messages: int
    event_time_s: float | None
    report: DriftReport


PaneObserver = Callable[[PaneSnapshot], None]


class DriftMonitor:
    """Sliding windows over every configured feature, compared with a frozen baseline."""

    def __init__(self, config: Config, baseline: Baseline, baseline_name: str = "baseline",
                 writer_schemas: Mapping[int, Any] | None = None, message_class: Any = None
                 ) -> None:
        """``writer_schemas`` are the Avro writer schemas by id (filled by the caller from
        the registry before each batch that needs one); ``message_class`` is a Protobuf
        topic's generated message class."""
        check_baseline_fits(baseline, config.features, baseline_name)
        self.config = config
        self.specs: tuple[FeatureSpec, ...] = config.features
        self.baseline = baseline
        self._feature_baselines = [baseline[spec.name] for spec in self.specs]
        self.layout = SlotLayout.from_bins([f.n_bins for f in self._feature_baselines])

        window = config.window
        # Count windows: every pane of the window is ``_pane_length`` messages of one
        # partition, and the change detectors see the window every ``_sample_every``
        # messages of the consumer (set_partition_count divides the window between the
        # topic's partitions).
        self._pane_length = None if window.size is None else window.size // window.panes
        self._sample_every = self._pane_length
        self.partition_count = 1
        self._pane_duration_s = (None if window.duration_s is None
                                 else window.duration_s / window.panes)
        self.histogram = PartitionedWindow(self.layout.n_slots, window.panes,
                                           shared_clock=window.is_event_time)
        self._accepted_by_partition: dict[Hashable, int] = {}
        self._binner = SlotBinner(self._feature_baselines, self.layout, self.specs)
        self._q, self.kl = self._comparison(self._feature_baselines)
        self.histogram.window_listeners.append(self.kl.on_change)
        self.histogram.pane_listeners.append(self._on_pane_closed)

        self.writer_schemas = writer_schemas
        self.message_class = message_class
        self.schema = PayloadDecoder(config, writer_schemas, message_class)
        self._detectors: list[ChangeDetector | None] = [
            None if config.detector.sequential else make_detector(config.detector)
            for _ in self.specs]
        n_features = len(self.specs)
        self._thresholds = np.array([config.threshold_for(s) for s in self.specs])
        self._scan: PaneScan | None = None
        self._set_reference(self._feature_baselines)
        if config.scan.enabled and n_features:
            self._scan = PaneScan(
                self._reference_counts, self.layout.bin_starts,
                np.array(self._occupied_bins, dtype=np.int64), config.window.panes,
                config.scan.false_alarms_per_million, self.layout.bin_slots,
                slice(0, int(self.layout.n_bins[0]) + 2))
            # The scan sees arrivals before the window's other listeners; it ignores the rest.
            self.histogram.window_listeners.insert(0, self._scan.on_change)
        self._scan_alarms = np.zeros(n_features, dtype=np.int64)
        self._sequential: MixtureCusum | None = None
        self._sequential_alarms = np.zeros(n_features, dtype=np.int64)
        # A sequential alarm holds while fewer panes than this have closed.
        self._sequential_until = np.zeros(n_features, dtype=np.int64)
        # Alarms of the batch being counted not yet applied: (row, feature), in order.
        self._pending_alarms: list[tuple[int, int]] = []
        if config.detector.sequential and n_features:
            self._sequential = MixtureCusum(
                [feature.probabilities for feature in self._feature_baselines],
                config.detector.prior_strengths,
                cusum_threshold(config.detector.arl0, len(config.detector.prior_strengths)))
        self._first_flag_messages = np.full(n_features, -1, dtype=np.int64)
        self._first_flag_detector: list[Detector | None] = [None] * n_features
        self._change_points = np.zeros(n_features, dtype=np.int64)
        self._slot_totals = np.zeros(self.layout.n_slots, dtype=np.int64)
        self._out_of_range = np.zeros(n_features, dtype=np.int64)
        self._invalid_values = np.zeros((n_features, STATUS_NON_FINITE + 1), dtype=np.int64)
        self.messages = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.panes_closed = 0
        # False while refilling the window with messages an earlier run already counted.
        self._counting = True
        # Called with a snapshot at every pane close (replay's timeline); none in the service.
        self.pane_observers: list[PaneObserver] = []
        # Where the rows of the batch being counted came from: messages read before the batch,
        # and each row's index among its messages.
        self._batch_start = 0
        self._batch_positions: npt.NDArray[np.int64] | None = None

    # ---- input -------------------------------------------------------------------------

    def process_payloads(
        self,
        payloads: Sequence[bytes | None],
        record_timestamps_s: Sequence[float] | npt.NDArray[np.float64] | None = None,
        partitions: PartitionRuns = ((None, 0),),
    ) -> list[tuple[int, str]]:
        """Decode and count a batch of raw messages, in arrival order.

        ``record_timestamps_s`` (one per payload, e.g. Kafka record timestamps) place the
        messages of an event-time window when no ``window.time_field`` is configured;
        ``partitions`` says which partition each run of payloads came from.
        Returns the rejected payloads as (index in ``payloads``, reason), e.g. for a
        dead-letter topic; they are already counted.
        """
        decoded = self.schema.decode(payloads, partitions)
        rejections = decoded.rejections
        rows = len(decoded.positions)
        self._batch_start = self.messages
        self._batch_positions = np.asarray(decoded.positions, dtype=np.int64)
        if self._counting:
            self.messages += len(rejections) + rows
            self.rejected.update(reason for _, reason in rejections)
        if rows == 0:
            return rejections
        row_runs = _row_runs(partitions, decoded.positions)
        if self._pane_duration_s is None:
            self._count(decoded, row_runs, None)
            return rejections
        if decoded.event_times is not None:
            timestamps, usable = event_times_s(decoded.event_times,
                                               self.config.window.time_unit)
        elif record_timestamps_s is not None:
            timestamps = np.asarray(record_timestamps_s, dtype=np.float64)[decoded.positions]
            usable = np.isfinite(timestamps)
        else:
            raise ValueError("an event-time window needs window.time_field or record "
                             "timestamps")
        # A time whose pane number is beyond 2**53 (where floats stop counting whole numbers,
        # far from the ends of int64) is no time a clock gives: a bad timestamp.
        usable &= np.abs(timestamps / self._pane_duration_s) < 2.0**53
        batch: DecodedColumns | list[FeatureColumn] = decoded
        if not usable.all():
            late = [(decoded.positions[int(i)], REJECT_BAD_TIMESTAMP)
                    for i in np.flatnonzero(~usable)]
            if self._counting:
                self.rejected[REJECT_BAD_TIMESTAMP] += len(late)
            rejections = sorted(rejections + late)
            kept = np.flatnonzero(usable)
            timestamps = timestamps[kept]
            if len(kept) == 0:
                return rejections
            self._batch_positions = self._batch_positions[kept]
            batch = [FeatureColumn(column.values[kept], column.status[kept])
                     for column in decoded.columns]
            row_runs = _row_runs(partitions, [decoded.positions[int(i)] for i in kept])
        self._count(batch, row_runs,
                    np.floor(timestamps / self._pane_duration_s).astype(np.int64))
        return rejections

    def refill(self, payloads: Sequence[bytes | None],
               record_timestamps_s: Sequence[float] | None = None,
               partitions: PartitionRuns = ((None, 0),)) -> None:
        """Put already-counted messages back into the window (after a restart or a new
        baseline) without counting them again: the totals, the rejection counts and the
        change-point counts stay as they are; the change detectors see the panes."""
        self._counting = False
        try:
            self.process_payloads(payloads, record_timestamps_s, partitions)
        finally:
            self._counting = True

    # ---- partitions --------------------------------------------------------------------

    def set_partition_count(self, partitions: int) -> bool:
        """Divide a count window between the topic's ``partitions``: each partition's window
        is the last ``window.size / partitions`` of its messages (rounded down to whole
        panes, one message a pane at least), so that the windows of a consumer group's
        members add up to one consumer's window of the whole topic, however the partitions
        are spread. Returns True when that changed the share: then every partition has left
        the window, to be refilled. Event-time windows need no division."""
        if partitions < 1:
            raise ValueError(f"a topic has at least one partition (got {partitions})")
        window = self.config.window
        if window.size is None or partitions == self.partition_count:
            self.partition_count = partitions
            return False
        share = max(window.panes, window.size // partitions // window.panes * window.panes)
        self.partition_count = partitions
        if share // window.panes == self._pane_length:
            return False
        self._pane_length = share // window.panes
        for partition in self.histogram.partitions:
            self.drop_partition(partition)
        return True

    @property
    def partition_window_size(self) -> int | None:
        """How many messages of each partition a count window holds (None: a time window)."""
        return None if self._pane_length is None else self._pane_length * \
            self.config.window.panes

    def drop_partition(self, partition: Hashable) -> int:
        """Take a partition's messages out of the window (it went to another consumer);
        returns how many there were."""
        removed = self.histogram.drop(partition)
        self._accepted_by_partition.pop(partition, None)
        first = self.layout.offsets[0] if self.layout.n_features else 0
        return int(removed[first:first + self.layout.n_bins[0] + 2].sum()) \
            if self.layout.n_features else 0

    def process_columns(self, columns: Sequence[FeatureColumn]) -> None:
        """Count rows of already-extracted columns (one per feature, in config order) as
        messages arriving in row order. Only for a count window: rows carry no event time."""
        if self._pane_length is None:
            raise ValueError("process_columns needs a count window (window.size in messages)")
        rows = len(columns[0]) if columns else 0
        self._batch_start = self.messages
        self._batch_positions = None  # rows are messages, in order
        self.messages += rows
        if rows:
            self._count(columns, [(None, 0, rows)], None)

    def process_table(self, table: Any) -> None:
        """Count the rows of a pandas DataFrame or a pyarrow Table (a column per feature
        name) as messages arriving in row order; a count window only, as
        ``process_columns``. Feed a large table in slices to see the windows move."""
        columns = table_columns(table, self.specs)
        self.process_columns([columns[spec.name] for spec in self.specs])

    def _count(self, batch: DecodedColumns | Sequence[FeatureColumn],
               row_runs: list[tuple[Hashable, int, int]],
               event_panes: npt.NDArray[np.int64] | None) -> None:
        """Bin every feature and add the batch to the window and the running totals.

        ``row_runs``: (partition, first row, end row) of the rows in order. Event-time
        windows place rows by ``event_panes``; count windows by each partition's own
        message ordinals, and close a pane for the change detectors every
        ``_sample_every`` messages of the batch stream (before the message that starts the
        next one, as the window turns)."""
        if isinstance(batch, DecodedColumns):
            binned = (self._binner.bin_typed(batch.typed) if batch.typed is not None
                      else self._binner.bin_columns(batch.columns))
        else:
            binned = self._binner.bin_columns(batch)
        slots = binned.slots.T
        if self._sequential is not None and len(slots):
            # Each row of binned.slots is one feature's, not always in config order (the
            # typed JSON path bins numeric features first): its first slot says whose.
            by_feature = np.empty_like(slots)
            by_feature[:, self.layout.slot_feature[binned.slots[:, 0]]] = slots
            local = by_feature - self.layout.offsets
            local[local >= self.layout.n_bins] = -1  # missing and invalid: not values
            alarm_rows, alarm_features = self._sequential.update(local)
            self._pending_alarms = list(zip(alarm_rows.tolist(), alarm_features.tolist(),
                                            strict=True))
        added = np.zeros(self.layout.n_slots, dtype=np.int64)
        window = self.histogram
        if event_panes is not None:
            for partition, start, end in row_runs:
                added += window.update(partition, event_panes[start:end], slots[start:end],
                                       start)
            self.accepted += len(slots)
        else:
            assert self._pane_length is not None
            assert self._sample_every is not None
            every = self._sample_every
            first = self.accepted
            # Rows that start a new sampling pane (never the very first message).
            start_row = (-first) % every or (every if first == 0 else 0)
            closing = range(start_row, len(slots), every)
            cuts = sorted({*closing, *(start for _, start, _ in row_runs)})
            run_index = 0
            for index, start in enumerate(cuts):
                end = cuts[index + 1] if index + 1 < len(cuts) else len(slots)
                while row_runs[run_index][2] <= start:
                    run_index += 1
                partition = row_runs[run_index][0]
                if (first + start) % every == 0 and first + start > 0:
                    window.close_pane((first + start) // every - 1, start)
                ordinal = self._accepted_by_partition.get(partition, 0)
                self._accepted_by_partition[partition] = ordinal + end - start
                panes = (ordinal + np.arange(end - start, dtype=np.int64)) // self._pane_length
                added += window.update(partition, panes, slots[start:end])
            self.accepted += len(slots)
        self._apply_sequential_alarms(len(slots))
        if self._counting:
            self._slot_totals += added
            self._invalid_values += binned.states
            self._out_of_range += binned.out_of_range

    def reject(self, reason: str, count: int = 1) -> None:
        """Count messages refused before decoding (e.g. by the source)."""
        self.messages += count
        self.rejected[reason] += count

    def _set_reference(self, features: Sequence[FeatureBaseline]) -> None:
        """What the decisions need of the reference: its counts per bin (for the two-sample
        test), its size and the bins it occupies per feature, and each feature's
        min_samples (``auto`` derives it from those and the threshold)."""
        self._reference_counts = np.concatenate([feature.counts for feature in features])
        self._bin_labels = [feature.bin_labels for feature in features]
        self._reference_probabilities = [tuple(feature.probabilities.tolist())
                                         for feature in features]
        self._reference_samples = [feature.count for feature in features]
        self._occupied_bins = [occupied_bins(feature) for feature in features]
        self._min_samples = np.array(resolve_min_samples(self.config, features),
                                     dtype=np.int64)
        # For the fleet-wide rule, which can neither pool bins nor run Holm's steps: the G
        # that is significant at alpha with Bonferroni over the features.
        self._g_critical = g_critical_values(self.config.divergence.alpha / len(self.specs),
                                             np.array(self._occupied_bins) - 1).tolist()
        if self._scan is not None:  # same bins, new reference: the panes stay
            self._scan.set_reference(self._reference_counts,
                                     np.array(self._occupied_bins, dtype=np.int64))

    def _comparison(self, features: Sequence[FeatureBaseline]
                    ) -> tuple[npt.NDArray[np.float64], IncrementalKL]:
        """The baseline probabilities of every bin, laid end to end, and empty KL sums
        against them."""
        q = np.concatenate([feature.probabilities for feature in features])
        log_q_by_slot = np.zeros(self.layout.n_slots)
        log_q_by_slot[self.layout.bin_slots] = np.log(q)
        return q, IncrementalKL(self.layout, log_q_by_slot)

    def swap_baseline(self, baseline: Baseline, baseline_name: str = "baseline") -> bool:
        """Compare the windows with a new baseline that has the same bins, keeping them.

        Returns False, changing nothing, when any feature's bins differ (then the window
        counts cannot be carried over: build a new monitor and refill it).
        """
        check_baseline_fits(baseline, self.specs, baseline_name)
        new_features = [baseline[spec.name] for spec in self.specs]
        if not all(old.same_bins(new) for old, new in
                   zip(self._feature_baselines, new_features, strict=True)):
            return False
        self.baseline = baseline
        self._feature_baselines = new_features
        self._binner = SlotBinner(new_features, self.layout, self.specs)  # ranges may differ
        self._q, kl = self._comparison(new_features)
        self._set_reference(new_features)
        counts = self.histogram.counts
        kl.on_change(counts, counts)  # the whole window enters the new sums at once
        self.histogram.window_listeners[self.histogram.window_listeners.index(
            self.kl.on_change)] = kl.on_change
        self.kl = kl
        return True

    # ---- evaluation --------------------------------------------------------------------

    def _apply_sequential_alarms(self, before_row: int) -> None:
        """Count the sequential alarms of the batch's rows before ``before_row``: each holds
        until the pane it was raised in has left the window."""
        pending = self._pending_alarms
        applied = 0
        panes = self.config.window.panes
        for row, feature in pending:
            if row >= before_row:
                break
            applied += 1
            self._sequential_until[feature] = self.panes_closed + panes
            if self._counting:
                self._sequential_alarms[feature] += 1
                self._flag(feature, self._position(row) + 1, "sequential")
        if applied:
            del pending[:applied]

    def _position(self, row: int) -> int:
        """How many messages were read before row ``row`` of the batch being counted."""
        positions = self._batch_positions
        return self._batch_start + (row if positions is None else int(positions[row]))

    def _flag(self, feature: int, messages: int, detector: Detector) -> None:
        if self._first_flag_messages[feature] < 0:
            self._first_flag_messages[feature] = messages
            self._first_flag_detector[feature] = detector

    def _on_pane_closed(self, pane_id: int) -> None:
        """Close the pane for the scan and the change detectors, and note first flags.

        The river detectors' series is KL divided by the feature's threshold: a unit of it
        is one threshold, whatever the threshold is. ADWIN's bound assumes values of order
        one; raw KL near its noise floor (about 0.002 nats) would hide a jump to 0.3 for
        dozens of panes.
        """
        closing_row = self.histogram.closing_row
        self._apply_sequential_alarms(closing_row)
        self.panes_closed += 1
        scaled = self.kl.values() / self._thresholds
        enough = self.kl.samples >= self._min_samples
        for index, detector in enumerate(self._detectors):
            if detector is None or not enough[index]:
                continue
            detector.update(float(scaled[index]))
            if detector.drift_detected and self._counting:
                self._change_points[index] += 1
        if self._scan is not None:
            raised = self._scan.close()
            if self._counting and raised.any():
                self._scan_alarms += raised
                read = self._position(closing_row)
                for feature in np.flatnonzero(raised).tolist():
                    self._flag(feature, read, "scan")
        if self._counting and (self._first_flag_messages < 0).any():
            window_flags = self._new_window_flags()
            if window_flags.any():
                read = self._position(closing_row)
                for feature in np.flatnonzero(window_flags).tolist():
                    self._flag(feature, read, "window")
        if self.pane_observers and self._counting:
            self._observe_pane(pane_id)

    def _new_window_flags(self) -> npt.NDArray[np.bool_]:
        """Which features never flagged before the window flags now: KL above the threshold
        and significant (Holm over the features with enough values). The p-values are
        computed only when such a feature's KL is above its threshold."""
        samples = self.kl.samples
        enough = samples >= self._min_samples
        above = enough & (self.kl.values() > self._thresholds) & (self._first_flag_messages < 0)
        if not above.any():
            return above
        _, flags = self._window_decision(self.divergences().p_value)
        return above & flags

    def _window_decision(self, p_value: npt.NDArray[np.float64]
                         ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The window's rule, from every feature's two-sample p-value: the p-values
        Holm-adjusted over the features with enough values (the features evaluated together
        are one family of tests; NaN for the others), and which features it flags: enough
        values, KL above the threshold and the adjusted p-value at most alpha."""
        enough = self.kl.samples >= self._min_samples
        adjusted = holm_adjusted(np.where(enough, p_value, np.nan))
        alpha = self.config.divergence.alpha
        flags = enough & (self.kl.values() > self._thresholds) & (adjusted <= alpha)
        return adjusted, flags

    def _observe_pane(self, pane_id: int) -> None:
        read = self._position(self.histogram.closing_row)
        end_s = (None if self._pane_duration_s is None
                 else (pane_id + 1) * self._pane_duration_s)
        snapshot = PaneSnapshot(pane_id, read, end_s, self.report())
        for observer in self.pane_observers:
            observer(snapshot)

    def divergences(self) -> Divergences:
        """Every divergence of the current window, computed from its counts."""
        counts = self.histogram.counts[self.layout.bin_slots]
        return divergences(counts, self._q, self.layout.bin_starts, self.baseline.smoothing,
                           self._reference_counts)

    def report(self) -> DriftReport:
        """A frozen picture of the current window and the totals since start."""
        current = self.divergences()
        samples_all = self.kl.samples
        adjusted_all, window_flags_all = self._window_decision(current.p_value)
        adjusted, window_flags = adjusted_all.tolist(), window_flags_all.tolist()
        noise_floor = expected_null_kl(samples_all, self._reference_samples,
                                       self._occupied_bins).tolist()
        alpha = self.config.divergence.alpha
        window_p, terms = kl_contributions(self.histogram.counts[self.layout.bin_slots],
                                           self._q, self.layout.bin_starts)
        window_p_all, terms_all = window_p.tolist(), terms.tolist()
        bin_starts = self.layout.bin_starts.tolist()
        # Plain Python lists once, then slices: cheaper than a numpy call per feature.
        kl = self.kl.values().tolist()
        js, psi, p_value = current.js.tolist(), current.psi.tolist(), current.p_value.tolist()
        counts = self.histogram.counts.tolist()
        totals = self._slot_totals.tolist()
        offsets = self.layout.offsets.tolist()
        thresholds = self._thresholds.tolist()
        min_samples_all = self._min_samples.tolist()
        change_points = self._change_points.tolist()
        scan = self._scan
        scan_scores = [None] * len(self.specs) if scan is None else \
            [_number(value) for value in scan.scores.tolist()]
        scan_holding = [False] * len(self.specs) if scan is None else scan.holding.tolist()
        scan_values = [0] * len(self.specs) if scan is None else scan.scale_messages.tolist()
        scan_alarms = self._scan_alarms.tolist()
        sequential_scores: list[float | None] = [None] * len(self.specs)
        if self._sequential is not None:
            sequential_scores = (self._sequential.scores / self._sequential.threshold).tolist()
        sequential_holding = (self._sequential_until > self.panes_closed).tolist()
        sequential_alarms = self._sequential_alarms.tolist()
        first_flags = self._first_flag_messages.tolist()
        out_of_range = self._out_of_range.tolist()
        invalid_values = self._invalid_values.tolist()
        features: dict[str, FeatureReport] = {}
        window_messages = 0
        partition_messages = {} if self.histogram.partitions == [None] else \
            self.histogram.messages_by_partition(
                slice(offsets[0], offsets[0] + self.layout.n_bins[0] + 2)
                if self.specs else slice(0, 0))
        for index, spec in enumerate(self.specs):
            feature = self._feature_baselines[index]
            start = offsets[index]
            n_bins = feature.n_bins
            window_counts = counts[start:start + n_bins]
            samples = sum(window_counts)
            missing = counts[start + n_bins]
            invalid = counts[start + n_bins + 1]
            in_window = samples + missing + invalid
            window_messages = max(window_messages, in_window)
            min_samples = min_samples_all[index]
            enough = samples >= min_samples
            threshold = thresholds[index]
            flagged_by = tuple(detector for detector, flagged in zip(DETECTORS, (
                window_flags[index], scan_holding[index], sequential_holding[index]),
                strict=True) if flagged)
            status: FeatureStatus = ("drift" if flagged_by else
                                     "ok" if enough else "insufficient_data")
            feature_totals = totals[start:start + n_bins + 2]
            features[spec.name] = FeatureReport(
                name=spec.name,
                type=spec.type,
                status=status,
                kl=_number(kl[index]) if enough else None,
                js=_number(js[index]) if enough else None,
                psi=_number(psi[index]) if enough else None,
                p_value=_number(p_value[index]) if enough else None,
                p_value_adjusted=_number(adjusted[index]) if enough else None,
                kl_noise_floor=_number(noise_floor[index]),
                samples=samples,
                missing=missing,
                invalid=invalid,
                missing_ratio=missing / in_window if in_window else None,
                baseline_missing_ratio=feature.missing_ratio,
                threshold=threshold,
                alpha=alpha,
                min_samples=min_samples,
                reference_samples=self._reference_samples[index],
                g_critical=self._g_critical[index],
                change_points=change_points[index],
                window_counts=tuple(window_counts),
                bin_labels=self._bin_labels[index],
                reference_probabilities=self._reference_probabilities[index],
                window_probabilities=tuple(window_p_all[bin_starts[index]:
                                                        bin_starts[index] + n_bins])
                if samples else None,
                contributions=tuple(terms_all[bin_starts[index]:bin_starts[index] + n_bins])
                if enough else None,
                bin_totals=tuple(feature_totals[:n_bins]),
                unseen_total=feature_totals[feature.other_bin] if spec.type == "categorical"
                else 0,
                out_of_range_total=out_of_range[index],
                missing_total=feature_totals[n_bins],
                invalid_values_total={reason: invalid_values[index][code]
                                      for code, reason in INVALID_VALUE_REASONS.items()},
                flagged_by=flagged_by,
                scan_score=scan_scores[index],
                scan_alarm=scan_holding[index],
                scan_alarms_total=scan_alarms[index],
                scan_alarm_values=scan_values[index],
                sequential_score=sequential_scores[index],
                sequential_alarm=sequential_holding[index],
                sequential_alarms_total=sequential_alarms[index],
                first_flag_messages=None if first_flags[index] < 0 else first_flags[index],
                first_flag_detector=self._first_flag_detector[index],
            )
        window = self.config.window
        description = (f"{window.size} messages" if window.duration_s is None
                       else format_duration(window.duration_s))
        if window.size is not None and self.partition_count > 1:
            description = (f"{self.partition_window_size} messages of each of "
                           f"{self.partition_count} partitions")
        return DriftReport(
            messages=self.messages,
            invalid=sum(self.rejected.values()),
            invalid_reasons=dict(self.rejected),
            late=self.histogram.late,
            window_messages=window_messages,
            window=f"{description}, {window.panes} panes",
            panes_closed=self.panes_closed,
            baseline_hash=self.baseline.content_hash(),
            baseline_created_at=self.baseline.created_at,
            features=features,
            partition_messages=partition_messages,
        )


def reference_baseline(config: Config, reference: Mapping[str, FeatureColumn],
                       source: str = "reference") -> Baseline:
    """A baseline of reference columns (by feature name), with the config's binning."""
    return build_baseline(
        config.features, reference, {spec.name: config.bins_for(spec) for spec in config.features},
        config.baseline.max_categories, config.baseline.smoothing, source)


def compare_to_baseline(config: Config, baseline: Baseline,
                        current: Mapping[str, FeatureColumn],
                        rejected: Mapping[str, int] | None = None) -> DriftReport:
    """All of ``current`` (columns by feature name, in rows' order) as one window of one pane,
    against ``baseline``. No change detection and no scan: a single window has no series."""
    rows = len(current[config.features[0].name]) if config.features else 0
    whole = dataclasses.replace(
        config, window=WindowConfig(size=max(rows, 1), panes=1),
        detector=DetectorConfig(method="none"), scan=ScanConfig(enabled=False))
    monitor = DriftMonitor(whole, baseline, baseline.source)
    for reason, count in (rejected or {}).items():
        monitor.reject(reason, count)
    monitor.process_columns([current[spec.name] for spec in config.features])
    return dataclasses.replace(monitor.report(), window=f"one window of {rows} rows")


def compare_columns(
    config: Config,
    reference: Mapping[str, FeatureColumn],
    current: Mapping[str, FeatureColumn],
    source: str = "reference",
    rejected: Mapping[str, int] | None = None,
) -> DriftReport:
    """Two datasets compared: a baseline built from ``reference`` (the config's binning),
    and all of ``current`` as one window."""
    return compare_to_baseline(config, reference_baseline(config, reference, source), current,
                               rejected)


def _row_runs(partitions: PartitionRuns, positions: Sequence[int]
              ) -> list[tuple[Hashable, int, int]]:
    """The decoded rows' runs by partition, (partition, first row, end row), from the
    payloads' runs and each row's payload index (rejected payloads have no row)."""
    rows = len(positions)
    if len(partitions) == 1:
        return [(partitions[0][0], 0, rows)]
    starts = np.searchsorted(np.asarray(positions, dtype=np.int64),
                             [start for _, start in partitions])
    ends = [*starts[1:].tolist(), rows]
    return [(key, int(start), end) for (key, _), start, end
            in zip(partitions, starts.tolist(), ends, strict=True) if end > start]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def event_times_s(
    values: Sequence[Any], unit: TimeUnit
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Event times in seconds since the epoch, and which of them are usable.

    Numbers are seconds (``unit="s"``) or milliseconds (``"ms"``); with ``"iso"``, ISO-8601
    text, taken as UTC when it names no offset.

    >>> times, usable = event_times_s(["2024-01-01T00:00:00Z", "soon", None], "iso")
    >>> times[0], usable.tolist()
    (np.float64(1704067200.0), [True, False, False])
    """
    if unit == "iso":
        times = np.zeros(len(values))
        usable = np.zeros(len(values), dtype=bool)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                continue
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            times[index] = moment.timestamp()
            usable[index] = True
        return times, usable
    column = numeric_column(values)
    scale = 0.001 if unit == "ms" else 1.0
    return column.values * scale, column.status == STATUS_OK
