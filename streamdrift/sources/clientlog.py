"""A Kafka client's own warnings and errors, turned into streamdrift's events.

Both clients talk a lot about things that are not problems, or that streamdrift already
says in one line of its own:

- while ``connect`` retries, every refused connection is several client lines; the
  source's ``kafka_unavailable`` (one per retry, with the next delay) says it, so they are
  dropped;
- while a group forms (from joining until partitions are assigned) the coordinator moves,
  metadata is not there yet, a missing topic is unknown: these lines are counted, and the
  count goes with the next ``partitions_assigned`` as ``client_notices``. A missing topic is
  the service's ``topic_missing`` event;
- anything else is a ``kafka_client`` event, and a line seen again within
  ``REPEAT_WINDOW_S`` is counted instead of written: the count goes with its next
  appearance as ``repeated``.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from streamdrift.eventlog import EventLog

REPEAT_WINDOW_S = 30.0


class ClientLogHandler(logging.Handler):
    """Routes one client's logger into ``log``, with the client's own patterns for the lines
    of a failing connection (``connection``), for the harmless lines of a forming group
    (``forming``), and for the parts of a line that change between repetitions
    (``varying``)."""

    def __init__(self, log: EventLog, connection: re.Pattern[str], forming: re.Pattern[str],
                 varying: re.Pattern[str]) -> None:
        super().__init__(logging.WARNING)
        self._log = log
        self._connection = connection
        self._forming = forming
        self._varying = varying
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, str], list[float]] = {}
        self._notices = 0
        # Set by the source: connect() is retrying; the group has no partitions yet.
        self.connecting = False
        self.group_forming = True

    def take_notices(self) -> int:
        """Harmless lines counted while the group formed, since the last call."""
        with self._lock:
            notices, self._notices = self._notices, 0
        return notices

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.connecting and self._connection.search(message):
            return
        if self.group_forming and self._forming.search(message):
            with self._lock:
                self._notices += 1
            return
        key = (record.levelno, self._varying.sub("", message))
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < REPEAT_WINDOW_S:
                seen[1] += 1
                return
            repeated = 0 if seen is None else int(seen[1])
            if len(self._seen) >= 1000:
                self._seen = {k: v for k, v in self._seen.items()
                              if now - v[0] < REPEAT_WINDOW_S}
            self._seen[key] = [now, 0]
        fields: dict[str, object] = {"repeated": repeated} if repeated else {}
        self._log("kafka_client", level=record.levelname.lower(), logger=record.name,
                  message=message, **fields)


def route_client_logs(logger_name: str, handler: ClientLogHandler) -> logging.Logger:
    """Send the client's logger (and its children) to ``handler`` alone, warnings up."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    logger.handlers = [handler]
    return logger
