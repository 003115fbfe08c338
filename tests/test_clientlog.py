"""The Kafka clients' own log lines as streamdrift's events: dropped while connect retries
(its kafka_unavailable says it), counted while a group forms, repeats counted."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import pytest

from streamdrift.eventlog import EventLog
from streamdrift.sources import clientlog
from streamdrift.sources.clientlog import ClientLogHandler, route_client_logs

CONNECTION = re.compile(r"ECONNREFUSED")
FORMING = re.compile(r"NotCoordinator")
VARYING = re.compile(r"\d+ secs")


@pytest.fixture
def routed() -> tuple[logging.Logger, ClientLogHandler, io.StringIO]:
    stream = io.StringIO()
    handler = ClientLogHandler(EventLog(stream=stream), CONNECTION, FORMING, VARYING)
    logger = route_client_logs("streamdrift-test-client", handler)
    return logger, handler, stream


def test_connection_lines_are_dropped_only_while_connecting(routed) -> None:
    logger, handler, stream = routed
    handler.connecting = True
    logger.error("Connection failed: 111 ECONNREFUSED")
    assert stream.getvalue() == ""
    handler.connecting = False  # connected: a refused connection now is news
    logger.error("Connection failed: 111 ECONNREFUSED")
    assert "event=kafka_client" in stream.getvalue()
    assert "ECONNREFUSED" in stream.getvalue()


def test_forming_lines_are_counted_while_the_group_forms(routed) -> None:
    logger, handler, stream = routed
    for _ in range(8):
        logger.warning("Marking the coordinator dead: NotCoordinatorError")
    assert stream.getvalue() == ""
    assert handler.take_notices() == 8
    assert handler.take_notices() == 0
    handler.group_forming = False
    logger.warning("Marking the coordinator dead: NotCoordinatorError")
    assert "NotCoordinatorError" in stream.getvalue()
    assert handler.take_notices() == 0


def test_a_repeated_line_is_counted_and_the_count_goes_with_its_next_appearance(
        routed, monkeypatch: pytest.MonkeyPatch) -> None:
    logger, handler, stream = routed
    handler.group_forming = False
    now = [1000.0]
    monkeypatch.setattr(clientlog, "time", SimpleNamespace(monotonic=lambda: now[0]))
    logger.warning("broker down, waiting 1 secs")
    for seconds in range(2, 6):  # the same line but for the delay
        now[0] += 1
        logger.warning(f"broker down, waiting {seconds} secs")
    assert len(stream.getvalue().splitlines()) == 1
    now[0] += clientlog.REPEAT_WINDOW_S
    logger.warning("broker down, waiting 9 secs")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "repeated=4" in lines[1]
    assert "repeated" not in lines[0]


def test_levels_below_warning_are_not_routed(routed) -> None:
    logger, _, stream = routed
    logger.info("joined the group")
    assert stream.getvalue() == ""
