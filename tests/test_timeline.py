"""The replay's timeline and first flags: the time of a count window's panes, taken from the
messages' time field."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamdrift.cli import main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream
from streamdrift.timeline import CLOCK_LOOKBACK, MessageClock
from tests.conftest import EXAMPLE_CONFIG

START_S = 1_767_225_600  # 2026-01-01T00:00:00Z
STEP_S = 60


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def timed_workspace(tmp_path: Path) -> Path:
    """The example config with a count window of 2000 messages whose messages carry their
    time in ``meta.sent_at`` (milliseconds); a reference and a stream where age drifts."""
    text = EXAMPLE_CONFIG.read_text().replace("size: 10000", "size: 2000")
    text = text.replace("  # time_field: event_time", "  time_field: meta.sent_at")
    text = text.replace("time_unit: s  ", "time_unit: ms")
    (tmp_path / "config.yaml").write_text(text)
    config = load_config(tmp_path / "config.yaml", environ={})
    assert config.window.time_field == ("meta", "sent_at")
    assert not config.window.is_event_time
    stream = SyntheticStream(config, seed=3)
    with (tmp_path / "reference.jsonl").open("w") as out:
        out.writelines(json.dumps(message) + "\n" for message in stream.reference(6000))
    production = stream.messages(4000, drifted=("age",), drift_from=1000)
    with (tmp_path / "production.jsonl").open("w") as out:
        for index, message in enumerate(production):
            message["meta"] = {"sent_at": (START_S + index * STEP_S) * 1000}
            out.write(json.dumps(message) + "\n")
    return tmp_path


@pytest.mark.parametrize("batch_size", [1000, 300])
def test_replay_of_a_count_window_gives_the_time_of_the_first_flag(
        timed_workspace: Path, capsys, batch_size):
    """Message N (counted from 1) was sent at START + (N - 1) steps: the first flag "after
    message N" and every pane of the timeline carry that time. Batches of 300 put some pane
    closes on the last message of a batch."""
    config = str(timed_workspace / "config.yaml")
    assert main(["baseline", "build", "--config", config, "--input",
                 str(timed_workspace / "reference.jsonl")]) == 0
    capsys.readouterr()
    timeline = timed_workspace / "timeline.csv"
    assert main(["replay", "--config", config, "--input",
                 str(timed_workspace / "production.jsonl"), "--timeline", str(timeline),
                 "--batch-size", str(batch_size)]) == 0
    out = capsys.readouterr().out
    flag = re.search(r"^  age: after message (\d+), event time (\S+), by the \w+$", out,
                     re.MULTILINE)
    assert flag, out
    messages = int(flag[1])
    assert flag[2] == _iso(START_S + (messages - 1) * STEP_S)
    rows = list(csv.DictReader(timeline.open()))
    assert [int(row["messages"]) for row in rows] == [200 * (i + 1) for i in range(19)] + [4000]
    assert [row["event_time"] for row in rows] == [
        _iso(START_S + (int(row["messages"]) - 1) * STEP_S) for row in rows]
    first = next(row for row in rows if row["age.status"] == "drift")
    assert (int(first["messages"]), first["event_time"]) == (messages, flag[2])


def test_a_count_window_without_a_time_field_prints_no_time(timed_workspace: Path, capsys):
    path = timed_workspace / "config.yaml"
    path.write_text(re.sub(r"(?m)^  time_field: .*\n", "", path.read_text()))
    assert load_config(path, environ={}).window.time_field is None
    config = str(path)
    main(["baseline", "build", "--config", config, "--input",
          str(timed_workspace / "reference.jsonl")])
    capsys.readouterr()
    main(["replay", "--config", config, "--input", str(timed_workspace / "production.jsonl")])
    out = capsys.readouterr().out
    assert re.search(r"^  age: after message \d+, by the \w+$", out, re.MULTILINE), out


def test_the_clock_looks_back_to_the_nearest_message_with_a_time():
    clock = MessageClock(("t",), "iso")
    stamped = b'{"t": "2026-01-01T00:00:00Z"}'
    clock.batch(0, [stamped, *([b'{"t": "soon"}', b"[1]", None] * 10)])
    assert clock.time_of(31) == clock.time_of(1) == START_S
    # Across batches: the previous batch's tail is kept, within the lookback.
    clock.batch(31, [b"{}"] * 5)
    assert clock.time_of(36) == START_S
    clock.batch(36, [b"{}"] * CLOCK_LOOKBACK)
    assert clock.time_of(36 + CLOCK_LOOKBACK) is None


def test_without_a_time_field_the_clock_takes_the_record_timestamps():
    """A file of Kafka records: the record timestamps, as a duration window would."""
    clock = MessageClock(None, "ms")  # time_unit is the field's, not the records' (seconds)
    clock.batch(0, [b"a", b"b"], [START_S, START_S + 60.0])
    clock.batch(2, [b"c", b"d"], [float("nan"), START_S + 180.0])
    assert [clock.time_of(n) for n in (1, 2, 3, 4)] == [
        START_S, START_S + 60, START_S + 60, START_S + 180]
    clock.batch(4, [b"{}"])  # no record timestamps handed: none known
    assert clock.time_of(5) == START_S + 180
