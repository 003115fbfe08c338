"""``streamdrift run``: the composition root of the service.

One thread (the main one) owns all mutable state: it polls Kafka, updates the monitor,
commits offsets once a batch is counted, and at each publish tick swaps one immutable
snapshot into the collector. The HTTP thread only reads that snapshot.

Restarts do not blind the service: when partitions are assigned that the window does not
hold yet, the last window of each is re-read from Kafka (outside the group) and put back in
the window without being counted again; see docs/decisions.md.
"""

from __future__ import annotations

import faulthandler
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from itertools import groupby
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from streamdrift.baseline import Baseline, load_baseline
from streamdrift.config import Config
from streamdrift.errors import BaselineError, StreamdriftError
from streamdrift.eventlog import EventLog
from streamdrift.exporter import DriftCollector, ServiceStatus, Snapshot, make_registry
from streamdrift.monitor import DriftMonitor, DriftReport
from streamdrift.registry import RegistryUnavailableError
from streamdrift.server import MetricsServer
from streamdrift.sources import Source, make_source
from streamdrift.sources.records import (
    EMPTY_BATCH,
    Partition,
    Record,
    RecordBatch,
    partition_runs,
)
from streamdrift.sources.schemas import format_decoding

POLL_TIMEOUT_S = 0.5
# The exit code when the Kafka client is unusable for good (EX_TEMPFAIL): start it again.
EXIT_CLIENT_FATAL = 75
# How long the worker has to notice a fatal client error itself before the main thread exits.
FATAL_GRACE_S = 5.0
_HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
# How often the main thread, which only waits, acts on the signals noted by the handlers.
SIGNAL_CHECK_S = 0.1
# The first wait after the Schema Registry stops answering (then doubling, up to
# input.schema_registry.retry_backoff_max_s).
REGISTRY_FIRST_RETRY_S = 0.5


class DriftService:
    def __init__(self, config: Config, baseline_path: Path, log: EventLog) -> None:
        self.config = config
        self.baseline_path = baseline_path
        self.log = log
        baseline = load_baseline(baseline_path)
        self.writer_schemas, self.message_class = format_decoding(
            config, lambda schema_id, problem: log("schema_unknown", level="warning",
                                                   schema_id=schema_id, problem=problem))
        self._registry_retry_s = REGISTRY_FIRST_RETRY_S
        self._registry_down_since: float | None = None
        self.monitor = self._new_monitor(baseline)
        self.log("baseline_loaded", path=baseline_path, hash=baseline.content_hash(),
                 created_at=baseline.created_at, features=len(baseline.features))
        self._baseline_stamp = _file_stamp(baseline_path)
        self.status = ServiceStatus()
        self.collector = DriftCollector(Snapshot(self.monitor.report(), baseline, self.status))
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        # What the signal handlers noted, for the main thread to act on (_take_signals).
        self._stop_signal: int | None = None
        self._reload_signalled = False
        self.source: Source | None = None
        # Offsets (of the next message) counted but not yet committed, per partition.
        self._pending: dict[Partition, int] = {}
        # The offset after the last record counted, per partition; and for partitions
        # revoked since, that offset at revocation: a rebalance puts a partition's position
        # back at its committed offset, and its records below this one, delivered again,
        # are not counted twice.
        self._counted: dict[Partition, int] = {}
        # Per partition held, the first offset not known to be committed (what a handover
        # without a commit leaves the next owner to count again starts there); kept for
        # the partitions just revoked until the source says whether it could commit.
        self._committed_from: dict[Partition, int] = {}
        self._handover_from: dict[Partition, int] = {}
        # Messages counted on revoked partitions whose offsets could not be committed, until
        # the next assignment says whether the partition came back or went to another member.
        self._uncommitted_at_revocation: dict[Partition, int] = {}
        self._delivered_again_below: dict[Partition, int] = {}
        # Partitions whose recent messages the window holds (refilled or consumed), and
        # those whose messages left it at a rebalance.
        self._held: set[Partition] = set()
        self._left_window: set[Partition] = set()
        # Assignments and revocations noted by the rebalance listener, taken by the main loop.
        self._assignments: list[list[Partition]] = []
        self._revocations: list[list[Partition]] = []
        self._worker: threading.Thread | None = None
        self._dirty = False
        self._last_report: DriftReport | None = None
        self._reloads = {"loaded": 0, "refused": 0}

    # ---- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM or Ctrl+C. The work runs on a thread of its own with the stop
        signals blocked, and so do the threads it starts (the Kafka client's IO threads, the
        HTTP server's): a signal then always reaches the main thread, which does nothing but
        wait, and acts on it within SIGNAL_CHECK_S even while the work is blocked in a
        call."""
        self._install_signal_handlers()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["code"] = self._serve()
            except BaseException as error:  # handed to the main thread, raised there
                outcome["error"] = error

        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
        try:
            worker = threading.Thread(target=work, name="streamdrift-service")
            self._worker = worker
            worker.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        fatal_since: float | None = None
        while worker.is_alive():
            worker.join(SIGNAL_CHECK_S)
            self._take_signals()
            # librdkafka can keep the worker inside consume() for good once it has said a
            # fatal error: the main thread, which only waits, leaves for it.
            fatal = self.source.fatal_error() if self.source is not None else None
            if fatal is not None:
                fatal_since = fatal_since if fatal_since is not None else time.monotonic()
                if time.monotonic() - fatal_since >= FATAL_GRACE_S:
                    self._exit_on_fatal(fatal)
        if "error" in outcome:
            raise outcome["error"]
        code: int = outcome["code"]
        return code

    def _serve(self) -> int:
        service = self.config.service
        with ExitStack() as stack:
            try:
                server = MetricsServer(
                    make_registry(self.collector), self.readiness,
                    self.config.metrics.bind_address, self.config.metrics.port,
                    self.config.metrics.tls_certfile, self.config.metrics.tls_keyfile,
                    self.config.metrics.web_config)
            except OSError as error:
                raise StreamdriftError(
                    f"cannot serve metrics on {self.config.metrics.bind_address}:"
                    f"{self.config.metrics.port}: {error.strerror}") from None
            server.start()
            stack.callback(server.close)
            self.log("started", metrics_port=server.port, window=self.config.window.describe(),
                     features=len(self.config.features), pid=os.getpid())
            source = make_source(self.config.kafka, self.log, self._on_assigned,
                                 self._on_revoked, self._on_revoked_commit)
            self.source = source
            stack.callback(self._shutdown, source)
            if not source.connect(self.stop):
                return 0
            self._set_status(connected=True)
            last_publish = last_probe = last_watch = 0.0
            last_commit = time.monotonic()
            while not self.stop.is_set():
                batch = source.poll(POLL_TIMEOUT_S)
                fatal = source.fatal_error()
                if fatal is not None:
                    self._exit_on_fatal(fatal)
                self._take_assignments()
                if batch:
                    self._process(batch)
                now = time.monotonic()
                due = now - last_publish >= service.publish_interval_s or (
                    self._dirty and not batch)
                # A commit is a round trip to the group coordinator: once per interval
                # rather than once per batch (what a crash re-reads is that much longer).
                # The counters shown are those of committed offsets: a publish commits
                # first, and a commit is published at once (see _commit_pending).
                if self._pending and (due or now - last_commit >= service.commit_interval_s):
                    # Refused: nothing is published until a commit goes through (with no
                    # broker there is little to consume anyway).
                    self._commit_pending()
                    last_commit = now
                    last_publish = now
                elif due:  # nothing to commit
                    self.publish()
                    last_publish = now
                if self.reload_requested.is_set() or (
                        service.baseline_watch_interval_s > 0
                        and now - last_watch >= service.baseline_watch_interval_s
                        and self._baseline_changed()):
                    self.reload_requested.clear()
                    self._reload()
                    last_watch = now
                if now - last_probe >= service.lag_interval_s:
                    self._probe(source)
                    last_probe = now
        return 0

    def _install_signal_handlers(self) -> None:
        # The handlers only note the signal; the main thread's loop in run() acts on it
        # within SIGNAL_CHECK_S. A handler that set an Event (or logged) itself could
        # interrupt another handler inside the same Event's set(), which holds its lock,
        # and wait for that lock for ever: SIGINT then SIGTERM did exactly that.
        def on_stop(signum: int, frame: FrameType | None) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                os._exit(130)  # a second Ctrl+C: leave now, uncommitted work is re-read
            if self._stop_signal is None:
                self._stop_signal = signum

        def on_hangup(signum: int, frame: FrameType | None) -> None:
            self._reload_signalled = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hangup)
        # Written from the signal handler itself, whatever the threads are blocked in.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _take_signals(self) -> None:
        """Act on the signals the handlers noted (on the main thread, outside any handler)."""
        if self._stop_signal is not None and not self.stop.is_set():
            self.log("stopping", signal=signal.Signals(self._stop_signal).name)
            self.stop.set()
        if self._reload_signalled:
            self._reload_signalled = False
            self.reload_requested.set()

    def _commit_pending(self) -> bool:
        """Commit the offsets counted so far and publish at once: the counters on /metrics
        never run ahead of the committed offsets (but for the moment between the two), so
        that what a replica killed with -9 last showed is what its partitions' next owners
        do not count again. The offsets stay pending if the brokers refuse."""
        assert self.source is not None
        if not self._pending:
            return True
        if not self.source.commit(self._pending):
            return False
        self._committed_from.update(self._pending)
        self._pending.clear()
        self.publish()
        return True

    def _exit_on_fatal(self, error: str) -> None:
        """The client will neither consume nor commit again: leave at once, without a
        commit (refused) or a publish (the counters shown stay those of the last commit,
        so the partitions' next owner, this process started again included, counts the
        rest once), and without closing the client, which can block when it is in this
        state. The supervisor (Kubernetes, systemd) starts the service again."""
        self.log("kafka_fatal", level="critical", error=error,
                 published_messages=self.collector.snapshot.report.messages,
                 exit_code=EXIT_CLIENT_FATAL)
        sys.stderr.flush()
        os._exit(EXIT_CLIENT_FATAL)

    def _shutdown(self, source: Source) -> None:
        committed = self._commit_pending()
        self.publish()
        source.close()
        self.log("stopped", messages=self.monitor.messages, committed=committed)

    # ---- the hot path ------------------------------------------------------------------

    def _process(self, polled: RecordBatch) -> None:
        if not self._writer_schemas_ready(polled.values):
            # Not decoded, not counted, not committed: read again once the registry answers.
            assert self.source is not None
            self.source.rewind(polled.first_offsets)
            self.stop.wait(self._registry_retry_s)
            return
        batch = polled
        if self._delivered_again_below:
            batch, again = self._not_yet_counted(polled)
            if again:  # counted before, but no longer in the window: back in, uncounted
                self.monitor.refill(again.values, [ms / 1000.0 for ms in again.timestamps_ms],
                                    again.runs or ((None, 0),))
        if batch:
            timestamps_ms = np.asarray(batch.timestamps_ms, dtype=np.float64)
            rejections = self.monitor.process_payloads(batch.values, timestamps_ms / 1000.0,
                                                       batch.runs or ((None, 0),))
            dead_letter_topic = self.config.kafka.dead_letter_topic
            if rejections and dead_letter_topic is not None and not self._send_dead_letters(
                    dead_letter_topic,
                    [(batch.record(index), reason) for index, reason in rejections]):
                return  # stopping before the dead letters were written: do not commit them
            newest = float(timestamps_ms.max()) / 1000.0
            previous = self.status.last_message_timestamp_s
            self._set_status(connected=True, last_message_timestamp_s=newest
                             if previous is None else max(previous, newest))
            self._dirty = True
        counted = self._counted
        for key, offset in polled.first_offsets.items():
            self._committed_from.setdefault(key, offset)
        for key, offset in polled.next_offsets.items():
            self._pending[key] = max(self._pending.get(key, 0), offset)
            counted[key] = max(counted.get(key, 0), offset)
            self._held.add(key)

    def _not_yet_counted(self, batch: RecordBatch) -> tuple[RecordBatch, RecordBatch]:
        """The records of ``batch`` not counted before a rebalance (the rare path), and
        those counted before whose partition has left the window since (to put back in
        the window without counting them)."""
        below = self._delivered_again_below
        again = {key for key, first in batch.first_offsets.items()
                 if first < below.get(key, 0)}
        for key, offset in batch.next_offsets.items():
            if key in below and offset >= below[key]:
                del below[key]  # past what was counted: nothing more to skip
        if not again:
            return batch, EMPTY_BATCH
        keep, rewindow = [], []
        for index in range(len(batch)):
            record = batch.record(index)
            key = (record.topic, record.partition)
            if key not in again or record.offset >= self._counted[key]:
                keep.append(index)
            elif key in self._left_window:
                rewindow.append(index)
        self.log("records_delivered_again", skipped=len(batch) - len(keep),
                 partitions=_names(sorted(again)))
        return batch.only(keep), batch.only(rewindow) if rewindow else EMPTY_BATCH

    def _send_dead_letters(self, topic: str, letters: list[tuple[Record, str]]) -> bool:
        """Produce the rejected messages, retrying until the brokers take them or the
        service stops (then False: the batch stays uncommitted and is read again)."""
        assert self.source is not None
        delay_s = 0.5
        while not self.source.send_dead_letters(topic, letters):
            if self.stop.wait(delay_s):
                return False
            delay_s = min(delay_s * 2, 10.0)
        self._set_status(dead_letters=self.status.dead_letters + len(letters))
        return True

    # ---- partitions and refill ---------------------------------------------------------

    # Both clients call these while the service's thread waits in poll(): confluent-kafka
    # on that very thread, kafka-python 3 on its IO thread (where no blocking call is
    # allowed). They note what happened; the counted offsets of revoked partitions are
    # committed before the group moves on, by the service on its own thread, else by the
    # source (returned to it).

    def _on_revoked(self, partitions: list[Partition], lost: bool = False,
                    ) -> dict[Partition, int]:
        # (a group forming revokes nothing, often: not worth a line)
        if partitions and lost:
            self.log("partitions_lost", partitions=_names(partitions))
        elif partitions:
            self.log("partitions_revoked", partitions=_names(partitions))
        revoked = {key: self._pending.pop(key) for key in partitions if key in self._pending}
        for key in partitions:
            start = self._committed_from.pop(key, None)
            if key in revoked and start is not None:
                self._handover_from[key] = start
        self._revocations.append(list(partitions))
        if revoked and lost:  # no longer this member's to commit: see the sources
            self._on_revoked_commit(revoked, False)
            return {}
        if revoked and threading.current_thread() is self._worker and self.source is not None:
            self._on_revoked_commit(revoked, self.source.commit(revoked))
            return {}
        return revoked

    def _on_revoked_commit(self, offsets: dict[Partition, int], committed: bool) -> None:
        """The counted offsets of revoked partitions were committed, or could not be: then
        whoever gets those partitions reads the messages again from the committed offset.
        This process skips the ones it counted; another counts them again, which the next
        assignment tells (``_take_assignments``). Published at once when committed (the
        counters follow the commits)."""
        if not committed:
            for key, offset in offsets.items():
                self._uncommitted_at_revocation[key] = max(
                    0, offset - self._handover_from.get(key, offset))
            return  # shown with the next commit that goes through
        self.publish()

    def _on_assigned(self, partitions: list[Partition]) -> None:
        if partitions:
            notices = self.source.take_client_notices() if self.source is not None else 0
            fields: dict[str, object] = {"client_notices": notices} if notices else {}
            self.log("partitions_assigned", "info", partitions=_names(partitions), **fields)
        self._assignments.append(sorted(partitions))

    def _take_assignments(self) -> None:
        """Forget the uncommitted offsets of revoked partitions (no longer this member's to
        commit: whoever gets them reads those records again, and this process skips the
        ones it counted), then refill the window for partitions it does not hold yet,
        before any of their records is counted: the history is older than anything the
        poll returned."""
        while self._revocations:
            for key in self._revocations.pop(0):
                if key in self._counted:
                    self._delivered_again_below[key] = self._counted[key]
        self._handover_from.clear()
        while self._assignments:
            partitions = self._assignments.pop(0)
            handed_over = {key: count for key, count in self._uncommitted_at_revocation.items()
                           if key not in partitions}
            self._uncommitted_at_revocation.clear()
            if handed_over:
                again = sum(handed_over.values())
                self.log("revoked_offsets_not_committed", level="warning",
                         partitions=_names(list(handed_over)), messages=again)
                self.status = replace(self.status, handed_over_uncommitted=(
                    self.status.handed_over_uncommitted + again))
            self._set_status(assigned=tuple(partitions))
            gone = sorted(self._held - set(partitions))
            if gone:  # now another member's: its messages leave this window
                removed = sum(self.monitor.drop_partition(key) for key in gone)
                self._held.difference_update(gone)
                self._left_window.update(gone)
                self._dirty = True
                self.log("window_partitions_left", partitions=_names(gone), messages=removed)
            if partitions and self._divide_window(self.monitor, partitions):
                self._left_window.update(self._held)
                self._held.clear()
            new = [partition for partition in partitions if partition not in self._held]
            if new and self.config.service.refill:
                self._refill(self.monitor, new)
            self._held.update(partitions)

    def _divide_window(self, monitor: DriftMonitor, partitions: list[Partition]) -> bool:
        """Give each partition of the topic its share of a count window (the topic's
        partition count, from the brokers). True when the share changed and the window
        was emptied to be refilled."""
        if self.source is None:
            return False
        counts = [self.source.partition_count(topic)
                  for topic in sorted({topic for topic, _ in partitions})]
        if self.config.window.size is None or any(count is None for count in counts):
            return False
        total = sum(count for count in counts if count is not None)
        if total == monitor.partition_count:
            return False
        emptied = monitor.set_partition_count(total)
        self.log("window_divided", partitions=total,
                 messages_per_partition=monitor.partition_window_size)
        return emptied

    def _refill(self, monitor: DriftMonitor, partitions: list[Partition]) -> None:
        """Put the last window of ``partitions`` back into ``monitor``'s window."""
        assert self.source is not None
        window = self.config.window
        started = time.monotonic()
        self._set_status(refilling=True)
        try:
            # Offset 0 everywhere: the group starts at the very beginning, nothing precedes
            # it, so no reader needs to be set up.
            ends = {partition: end for partition, end in
                    self.source.committed_offsets(partitions).items() if end > 0}
            since_ms = None
            if window.duration_s is not None and ends:
                since_ms = self._time_window_start_ms(ends)
            records, complete = self.source.read_history(
                ends, monitor.partition_window_size, since_ms,
                self.config.service.refill_timeout_s)
        except Exception as error:  # a failed refill must not stop the service: log it
            self.log("refill_failed", level="error", error=type(error).__name__,
                     detail=str(error))
            self._set_status(refilling=False)
            return
        # Each partition's window is its own: partition by partition, in offset order.
        records.sort(key=lambda record: (record.topic, record.partition, record.offset))
        share = monitor.partition_window_size
        if share is not None:
            records = [record for key, group in groupby(
                records, key=lambda record: (record.topic, record.partition))
                for record in list(group)[-share:]]
        values = [record.value for record in records]
        while not self._writer_schemas_ready(values) and not self.stop.is_set():
            self.stop.wait(self._registry_retry_s)
        monitor.refill(values,
                       [record.timestamp_ms / 1000.0 for record in records],
                       partition_runs([(record.topic, record.partition) for record in records])
                       or ((None, 0),))
        self._set_status(refilling=False)
        self._dirty = True
        self.log("window_refilled", partitions=_names(partitions), messages=len(records),
                 offsets=_offset_ranges(records), complete=complete,
                 seconds=round(time.monotonic() - started, 3))

    def _time_window_start_ms(self, ends: dict[Partition, int]) -> int | None:
        """Where a time window ending at the newest record before ``ends`` starts: the
        first millisecond of its oldest pane. The window is as old as its newest message,
        not as the clock: on a topic that has gone quiet it still holds its last panes."""
        assert self.source is not None
        window = self.config.window
        assert window.duration_s is not None
        newest, _ = self.source.read_history(ends, 1, None,
                                             self.config.service.refill_timeout_s)
        if not newest:
            return None
        newest_s = max(record.timestamp_ms for record in newest) / 1000.0
        pane_s = window.duration_s / window.panes
        oldest_pane = math.floor(newest_s / pane_s) - window.panes + 1
        return math.floor(oldest_pane * pane_s * 1000.0)

    # ---- baseline reload ---------------------------------------------------------------

    def _baseline_changed(self) -> bool:
        return _file_stamp(self.baseline_path) != self._baseline_stamp

    def _reload(self) -> None:
        self._baseline_stamp = _file_stamp(self.baseline_path)
        try:
            baseline = load_baseline(self.baseline_path)
            if not self.monitor.swap_baseline(baseline, str(self.baseline_path)):
                self._replace_monitor(baseline)
        except BaselineError as error:
            self._reloads["refused"] += 1
            self._set_status(baseline_reloads=dict(self._reloads))
            kept = self.monitor.baseline.content_hash()
            for problem in error.problems:  # one line each: a reader sees every problem
                self.log("baseline_refused", level="error", path=self.baseline_path,
                         problem=problem.replace("\n", " "), kept=kept)
            return
        self._reloads["loaded"] += 1
        self._set_status(baseline_reloads=dict(self._reloads))
        self._dirty = True
        self.log("baseline_loaded", path=self.baseline_path, hash=baseline.content_hash(),
                 created_at=baseline.created_at, features=len(baseline.features))

    def _replace_monitor(self, baseline: Baseline) -> None:
        """New bins: the window counts cannot be carried over, so the window is read again
        from Kafka under the new bins (and the running totals start again)."""
        monitor = self._new_monitor(baseline)
        monitor.set_partition_count(self.monitor.partition_count)
        if self.source is not None and self._held:
            self._commit_pending()
            self._refill(monitor, sorted(self._held))
        # The last report stays: a feature drifting under both baselines goes on drifting
        # (no second drift_started), one that stopped says drift_ended.
        self.monitor = monitor

    def _new_monitor(self, baseline: Baseline) -> DriftMonitor:
        return DriftMonitor(self.config, baseline, str(self.baseline_path),
                            self.writer_schemas, self.message_class)

    # ---- the Schema Registry -------------------------------------------------------------

    def _writer_schemas_ready(self, payloads: Sequence[bytes | None]) -> bool:
        """Whether the writer schemas of ``payloads`` are at hand, fetching those that are
        not. While the registry does not answer: False, logged once per attempt with the
        wait before the next; ``streamdrift_schema_registry_up`` is 0."""
        if self.writer_schemas is None:
            return True
        try:
            self.writer_schemas.resolve(payloads)
        except RegistryUnavailableError as error:
            now = time.monotonic()
            if self._registry_down_since is None:
                self._registry_down_since = now
                self._registry_retry_s = REGISTRY_FIRST_RETRY_S
            else:
                assert self.config.input.schema_registry is not None
                self._registry_retry_s = min(
                    self._registry_retry_s * 2,
                    self.config.input.schema_registry.retry_backoff_max_s)
            self._set_status(schema_registry_up=False)
            self.log("schema_registry_unreachable", level="warning", error=str(error),
                     retry_in_s=round(self._registry_retry_s, 3),
                     paused_s=round(now - self._registry_down_since, 3))
            return False
        if self._registry_down_since is not None:
            self.log("schema_registry_reachable",
                     paused_s=round(time.monotonic() - self._registry_down_since, 3))
            self._registry_down_since = None
            self._set_status(schema_registry_up=True)
        return True

    # ---- status and publishing ---------------------------------------------------------

    def _probe(self, source: Source) -> None:
        lag = source.probe_lag()
        if lag is None:
            if self.status.connected:
                self.log("kafka_disconnected", level="warning")
            self._set_status(connected=False)
            return
        if not self.status.connected:
            self.log("kafka_reconnected")
        assigned = tuple(source.assignment())
        missing = self.status.missing_topic
        topic = self.config.kafka.topic
        if topic is not None and not assigned:
            exists = source.topic_exists(topic)
            if exists is False and missing is None:
                self.log("topic_missing", level="warning", topic=topic,
                         hint="create it (streamdrift produce --partitions N creates it); "
                              "streamdrift does not let the broker create it with its "
                              "defaults")
            if exists is not None:
                missing = None if exists else topic
        elif assigned:
            missing = None
        self._set_status(connected=True, lag=lag, assigned=assigned, missing_topic=missing)

    def _set_status(self, **changes: object) -> None:
        self.status = replace(self.status, **changes)  # type: ignore[arg-type]
        # The report and its baseline change together, only in publish().
        shown = self.collector.snapshot
        self.collector.publish(Snapshot(shown.report, shown.baseline, self.status))

    def publish(self) -> None:
        report = self.monitor.report()
        self._log_drift_changes(report)
        self.collector.publish(Snapshot(report, self.monitor.baseline, self.status))
        self._dirty = False

    def _log_drift_changes(self, report: DriftReport) -> None:
        previous = self._last_report
        self._last_report = report
        for name, feature in report.features.items():
            was = previous is not None and previous.features[name].drift
            if feature.drift and not was:
                self.log("drift_started", feature=name, flagged_by="+".join(feature.flagged_by),
                         kl=feature.kl, threshold=feature.threshold, p_value=feature.p_value,
                         samples=feature.samples)
            elif was and not feature.drift:
                self.log("drift_ended", feature=name, kl=feature.kl,
                         threshold=feature.threshold, status=feature.status)

    def readiness(self) -> tuple[bool, str]:
        status = self.status
        if not status.connected:
            return False, "not connected to Kafka"
        if status.missing_topic is not None:
            return False, f"topic {status.missing_topic} does not exist"
        if not status.assigned:
            return False, "no partitions assigned"
        if status.refilling:
            return False, "refilling the window"
        return True, "ready"


def _names(partitions: Sequence[Partition]) -> str:
    return ",".join(f"{topic}-{partition}" for topic, partition in sorted(partitions))


def _offset_ranges(records: Sequence[Record]) -> str:
    """``topic-partition:first-last`` for each partition of ``records``, e.g. what a refill
    put back.

    >>> _offset_ranges([Record("t", 0, 5, 0, None), Record("t", 1, 2, 0, None),
    ...                 Record("t", 0, 9, 0, None)])
    't-0:5-9,t-1:2-2'
    """
    ranges: dict[Partition, tuple[int, int]] = {}
    for record in records:
        key = (record.topic, record.partition)
        first, last = ranges.get(key, (record.offset, record.offset))
        ranges[key] = (min(first, record.offset), max(last, record.offset))
    return ",".join(f"{topic}-{partition}:{first}-{last}"
                    for (topic, partition), (first, last) in sorted(ranges.items()))


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
