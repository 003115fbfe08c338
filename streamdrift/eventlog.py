"""One line per notable event, as ``key=value`` pairs (logfmt) or JSON.

    ts=2026-11-28T19:00:00.123Z level=info event=drift_started feature=age kl=0.31

Values are quoted when they contain spaces or quotes. Secrets never reach this module:
the config holds them in ``Secret``, whose text is ``***``.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

_lock = threading.Lock()


class EventLog:
    def __init__(self, log_format: str = "logfmt", stream: TextIO | None = None) -> None:
        self.log_format = log_format
        self.stream = stream if stream is not None else sys.stderr

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record: dict[str, object] = {"ts": timestamp, "level": level, "event": event, **fields}
        if self.log_format == "json":
            line = json.dumps(record, default=str)
        else:
            line = " ".join(f"{key}={_logfmt(value)}" for key, value in record.items())
        with _lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def _logfmt(value: object) -> str:
    """A logfmt value: bare when it can be, quoted JSON-style otherwise.

    >>> _logfmt("age"), _logfmt("two words"), _logfmt(0.25), _logfmt(None)
    ('age', '"two words"', '0.25', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if not text or any(character in text for character in ' "=\n\t'):
        return json.dumps(text)
    return text
