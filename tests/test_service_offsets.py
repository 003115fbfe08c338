"""The service's offset bookkeeping, without a broker: what it counts, commits and skips
when a rebalance makes the client deliver records again (the integration tests run the
same service against a real broker)."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamdrift.baseline import build_baseline, save_baseline
from streamdrift.config import parse_config
from streamdrift.eventlog import EventLog
from streamdrift.features import numeric_column
from streamdrift.service import DriftService
from streamdrift.sources.records import Partition, Record, RecordBatch

TOPIC = "events"


def _service(tmp_path: Path) -> tuple[DriftService, io.StringIO]:
    config = parse_config({"features": [{"name": "x"}], "window": {"size": 1000, "panes": 4},
                           "kafka": {"topic": TOPIC}}, tmp_path, environ={})
    config = replace(config, service=replace(config.service, refill=False))
    rng = np.random.default_rng(0)
    baseline = build_baseline(config.features,
                              {"x": numeric_column(rng.normal(size=500).tolist())},
                              {"x": 5}, 10, 0.5, "test")
    path = tmp_path / "baseline.json"
    save_baseline(baseline, path)
    log = io.StringIO()
    return DriftService(config, path, EventLog(stream=log)), log


def _batch(partition: int, offsets: range) -> RecordBatch:
    records = [Record(TOPIC, partition, offset, 1_000 + offset,
                      json.dumps({"x": offset / 10}).encode()) for offset in offsets]
    key: Partition = (TOPIC, partition)
    return RecordBatch([r.value for r in records], [r.timestamp_ms for r in records],
                       {key: offsets[0]}, {key: offsets[-1] + 1}, records.__getitem__,
                       [(key, 0)])


def test_records_delivered_again_after_a_rebalance_are_not_counted_twice(tmp_path: Path):
    service, log = _service(tmp_path)
    service._process(_batch(0, range(0, 100)))
    service._process(_batch(1, range(0, 40)))
    assert service.monitor.messages == 140
    assert service._pending == {(TOPIC, 0): 100, (TOPIC, 1): 40}

    # Revoked off the service's thread (kafka-python): the offsets go to the source to
    # commit, which could not (say, the member had lost them); then partition 0 comes back
    # and the client resumes from its committed offset.
    uncommitted = service._on_revoked([(TOPIC, 0), (TOPIC, 1)], False)
    assert uncommitted == {(TOPIC, 0): 100, (TOPIC, 1): 40}
    service._on_revoked_commit(uncommitted, False)
    service._on_assigned([(TOPIC, 0)])
    service._take_assignments()
    assert service._pending == {}
    # Partition 1 went to another member, which counts its 40 messages again; partition 0
    # came back here, where the 100 delivered again are skipped: not handed over.
    assert "event=revoked_offsets_not_committed partitions=events-1 messages=40" in \
        log.getvalue()
    assert service.status.handed_over_uncommitted == 40

    service._process(_batch(0, range(50, 150)))  # 50..99 again, then 50 new ones
    assert service.monitor.messages == 190
    assert service._pending == {(TOPIC, 0): 150}
    assert "event=records_delivered_again skipped=50" in log.getvalue()

    service._process(_batch(0, range(150, 160)))  # past it: counted as usual
    assert service.monitor.messages == 200
    assert service._delivered_again_below == {(TOPIC, 1): 40}

    service._on_assigned([(TOPIC, 1)])  # later, partition 1 comes back, all of it counted
    service._take_assignments()
    service._process(_batch(1, range(0, 40)))
    assert service.monitor.messages == 200
    assert service._pending == {(TOPIC, 0): 160, (TOPIC, 1): 40}  # committed next time
    assert service._delivered_again_below == {}
    # Partition 0 went to another member: its messages left the window. Partition 1's
    # records, counted before and delivered again, are back in the window (not counted).
    report = service.monitor.report()
    assert report.partition_messages == {(TOPIC, 1): 40}
    assert report.window_messages == 40
    assert "event=window_partitions_left partitions=events-0 messages=160" in log.getvalue()


def test_without_a_rebalance_nothing_is_skipped(tmp_path: Path):
    service, log = _service(tmp_path)
    service._process(_batch(0, range(0, 100)))
    # Offsets below the last counted one, with no revocation in between (e.g. a topic
    # deleted and created again): counted, not taken for deliveries again.
    service._process(_batch(0, range(0, 10)))
    assert service.monitor.messages == 110
    assert "records_delivered_again" not in log.getvalue()


class _CommitRecorder:
    """The part of a source that a revocation on the service's thread uses."""

    def __init__(self) -> None:
        self.commits: list[dict[Partition, int]] = []

    def commit(self, offsets: dict[Partition, int]) -> bool:
        self.commits.append(dict(offsets))
        return True



def test_lost_partitions_are_not_committed_and_their_messages_are_handed_over(tmp_path: Path):
    """On the service's thread (confluent-kafka's callbacks) a revocation commits at once;
    partitions lost with an expired session are not committed (refused, and fatal to a static
    member with librdkafka): their next owner counts those messages again, said and
    counted apart."""
    service, log = _service(tmp_path)
    source = _CommitRecorder()
    service.source = source  # type: ignore[assignment]
    service._worker = threading.current_thread()
    service._process(_batch(0, range(0, 100)))
    service._process(_batch(1, range(0, 40)))

    assert service._on_revoked([(TOPIC, 0)], False) == {}
    assert source.commits == [{(TOPIC, 0): 100}]
    assert service._on_revoked([(TOPIC, 1)], True) == {}
    assert source.commits == [{(TOPIC, 0): 100}]  # none for the lost one
    assert "event=partitions_revoked partitions=events-0" in log.getvalue()
    assert "event=partitions_lost partitions=events-1" in log.getvalue()

    service.source = None  # the assignment below, as without a broker
    service._on_assigned([(TOPIC, 0)])  # partition 1 went elsewhere
    service._take_assignments()
    assert "event=revoked_offsets_not_committed partitions=events-1 messages=40" in \
        log.getvalue()
    assert service.status.handed_over_uncommitted == 40


def test_signal_handlers_only_note_the_signal_and_take_no_lock(tmp_path: Path) -> None:
    """A handler may run on top of another one (SIGTERM during the handler of SIGINT); one
    that set an Event would wait for the lock that the one beneath holds inside set(), for
    ever. The handlers take no lock: the main thread acts on what they noted."""
    import signal
    import threading

    service, log = _service(tmp_path)
    previous = {number: signal.getsignal(number)
                for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        service._install_signal_handlers()
        handlers = [(signal.getsignal(number), number)
                    for number in (signal.SIGTERM, signal.SIGHUP)]
        # (Event._cond: the lock its set() holds; private, but what the deadlock was about)
        with service.stop._cond, service.reload_requested._cond:  # type: ignore[attr-defined]
            callers = [threading.Thread(target=handler, args=(number, None))  # type: ignore[arg-type]
                       for handler, number in handlers]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(10)
            assert not any(caller.is_alive() for caller in callers)
        assert not service.stop.is_set()  # not yet: the main thread sets it
        service._take_signals()
        assert service.stop.is_set()
        assert service.reload_requested.is_set()
        assert "event=stopping signal=SIGTERM" in log.getvalue()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
