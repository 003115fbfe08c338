"""After kill -9 the window comes back exactly: the refilled messages are, message for
message, the last window before the group's committed offsets in the documented order
(docs/decisions.md), and the gauges equal what an uninterrupted consumer shows."""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.integration.conftest import (
    Record,
    ServiceFactory,
    ServiceProcess,
    Trickle,
    assert_gauges_equal,
    committed_offsets,
    consume_all,
    counted_at_stop,
    demo_messages,
    feature_gauges,
    messages_total,
    replayed_gauges,
    setup_service,
    wait_counted,
)

PARTITIONS = 3
# Short commit interval and session: what the restart re-reads stays small, and the group
# lets the dead member's partitions go a few seconds after the kill.
RESTART_SETTINGS = {"service": {"commit_interval_s": 0.2},
                    "kafka": {"max_poll_records": 200, "session_timeout_s": 6}}


def _ranges(topic: str, records: Sequence[Record]) -> str:
    """``topic-partition:first-last`` per partition, as the ``window_refilled`` event says."""
    spans: dict[int, tuple[int, int]] = {}
    for record in records:
        first, last = spans.get(record.partition, (record.offset, record.offset))
        spans[record.partition] = (min(first, record.offset), max(last, record.offset))
    return ",".join(f"{topic}-{partition}:{first}-{last}"
                    for partition, (first, last) in sorted(spans.items()))


def _refill_event(service: ServiceProcess, run: int) -> tuple[int, str]:
    """(messages, offsets) of the ``window_refilled`` event of run ``run``."""
    def found() -> re.Match[str] | None:
        text = service.log_text().split(f"---- start #{run}")[-1]
        return re.search(r"event=window_refilled .*messages=(\d+) offsets=(\S*)", text)

    match = service.wait_until(found, 60, what=f"the refill of run #{run}")
    return int(match[1]), match[2]


def _in_time_order(records: Sequence[Record]) -> list[Record]:
    """The order the refill puts partitions in: Kafka timestamp, then partition, offset."""
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))


def _kill_mid_stream(service: ServiceProcess, sender: Trickle, counted: int) -> None:
    """Once ``service`` has counted ``counted`` messages, kill it with -9 and end the
    stream right after (the messages it had not committed are read again)."""
    wait_counted(service, counted, timeout_s=120)
    assert service.kill() == -signal.SIGKILL
    sender.stop()


def test_kill_9_refills_the_last_window_before_the_committed_offsets(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    window = 2000
    topic = topic_factory(partitions=PARTITIONS)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=window, panes=10,
                                 extra=RESTART_SETTINGS, client=kafka_client)
    sender = Trickle(bootstrap, topic, demo_messages(config, 40_000, drifted=("plan",),
                                                     drift_from=3000),
                     chunk=300, pause_s=0.1)
    service = service_factory(config, port)
    service.wait_ready(60)
    sender.start()
    _kill_mid_stream(service, sender, counted=3 * window)

    records = consume_all(bootstrap, topic)
    assert len(records) == sender.sent
    committed = committed_offsets(bootstrap, f"streamdrift-{topic}", topic, PARTITIONS)
    before = _in_time_order([r for r in records if r.offset < committed[r.partition]])
    after = [r for r in records if r.offset >= committed[r.partition]]
    assert len(before) > window, "the window had not slid before the kill: nothing tested"

    service.start()
    refilled, offsets = _refill_event(service, run=2)
    # Each partition's share of the window: its last 2000 / 3 messages, in whole panes.
    share = window // PARTITIONS // 10 * 10
    expected_refill = [record for partition in range(PARTITIONS)
                       for record in sorted((r for r in before if r.partition == partition),
                                            key=lambda r: r.offset)[-share:]]
    assert (refilled, offsets) == (len(expected_refill), _ranges(topic, expected_refill))
    service.wait_until(lambda: messages_total(service) == len(after), 60,
                       what=f"the {len(after)} messages after the committed offsets counted")
    assert_gauges_equal(feature_gauges(service),
                        replayed_gauges(config, after, refilled=expected_refill,
                                        partitions=PARTITIONS))
    assert service.terminate() == 0
    assert counted_at_stop(service, run=2) == len(after)


def test_kill_9_with_an_event_time_window_matches_an_uninterrupted_consumer(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: ServiceFactory, kafka_client: str) -> None:
    """A window of Kafka record timestamps, 2 s in 4 panes, over a stream of several
    seconds: after the restart it holds what a consumer that never stopped holds."""
    topic = topic_factory(partitions=PARTITIONS)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size="2s", panes=4,
                                 extra=RESTART_SETTINGS, client=kafka_client)
    reference_config, reference_port = setup_service(
        tmp_path, bootstrap, topic, window_size="2s", panes=4, extra=RESTART_SETTINGS,
        group="uninterrupted", client=kafka_client)
    sender = Trickle(bootstrap, topic, demo_messages(config, 60_000, drifted=("age",),
                                                     drift_from=2000),
                     chunk=300, pause_s=0.1)
    service = service_factory(config, port)
    reference = service_factory(reference_config, reference_port)
    service.wait_ready(60)
    reference.wait_ready(60)
    sender.start()
    _kill_mid_stream(service, sender, counted=12_000)

    records = consume_all(bootstrap, topic)
    assert len(records) == sender.sent
    reference.wait_until(lambda: messages_total(reference) == len(records), 60,
                         what="the uninterrupted consumer to count the whole stream")
    committed = committed_offsets(bootstrap, f"streamdrift-{topic}", topic, PARTITIONS)
    before = [r for r in records if r.offset < committed[r.partition]]
    after = [r for r in records if r.offset >= committed[r.partition]]

    # The documented refill of a time window: from the start of the oldest pane of a window
    # ending at the newest record before the committed offsets.
    newest_ms = max(r.timestamp for r in before
                    if r.offset == committed[r.partition] - 1)
    pane_s = 2.0 / 4
    since_ms = math.floor((math.floor(newest_ms / 1000 / pane_s) - 4 + 1) * pane_s * 1000)
    starts = {partition: min((r.offset for r in before
                              if r.partition == partition and r.timestamp >= since_ms),
                             default=committed[partition])
              for partition in range(PARTITIONS)}
    expected_refill = _in_time_order([r for r in before if r.offset >= starts[r.partition]])
    assert len(before) > len(expected_refill) > 0, "the window had not slid: nothing tested"

    service.start()
    refilled, offsets = _refill_event(service, run=2)
    assert (refilled, offsets) == (len(expected_refill), _ranges(topic, expected_refill))
    service.wait_until(lambda: messages_total(service) == len(after), 60,
                       what=f"the {len(after)} messages after the committed offsets counted")
    restarted, uninterrupted = feature_gauges(service), feature_gauges(reference)
    assert_gauges_equal(restarted, uninterrupted)
    assert service.value("streamdrift_window_messages") == \
        reference.value("streamdrift_window_messages")
    assert service.terminate() == 0
    assert counted_at_stop(service, run=2) == len(after)
