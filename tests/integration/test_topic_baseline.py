"""A baseline rebuilt from the topic itself: the workflow's last step. A topic holds an old
regime (timestamps in May) and a new one after a product launch (October) in which three
features moved; a baseline of the recent range accepts a fresh new-regime stream, one of
the old range flags it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamdrift.baseline import load_baseline
from streamdrift.cli import main as cli_main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream
from tests.integration.conftest import produce, setup_service

LAUNCHED = ("session_length", "age", "device")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _groups(admin: Any) -> set[str]:
    return {group["group_id"] for group in admin.list_groups()}


def _commits_on(admin: Any, topic: str, groups: set[str]) -> dict[str, list[Any]]:
    """The offsets of ``topic`` committed by each of ``groups`` (none for a group unknown to
    the broker), groups with none left out."""
    found = {}
    for group in sorted(groups):
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        on_topic = [partition for partition in offsets if partition.topic == topic]
        if on_topic:
            found[group] = on_topic
    return found


def _assert_no_group_touched(admin: Any, topic: str, group_id: str,
                             groups_before: set[str]) -> None:
    """``baseline build --from-kafka`` reads outside any group: the config's group does not
    exist, and no group (other tests' groups appear on the shared broker meanwhile) has
    committed an offset of ``topic``, the config's group included."""
    groups_after = _groups(admin)
    assert group_id not in groups_after
    assert _commits_on(admin, topic, (groups_after - groups_before) | {group_id}) == {}


def test_a_baseline_of_the_recent_range_accepts_the_new_regime(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str], kafka_admin: Any,
        capsys) -> None:
    # Old records must not be deleted for their age while the test reads them.
    topic = topic_factory(partitions=2, configs={"retention.ms": "-1"})
    config_path, _ = setup_service(tmp_path, bootstrap, topic, window_size=5000)
    config = load_config(config_path, environ={})
    old = SyntheticStream(config, seed=21).messages(6000)
    new = SyntheticStream(config, seed=22).messages(6000, LAUNCHED, 0)
    may, october = _ms("2026-05-01T00:00:00"), _ms("2026-10-01T00:00:00")
    produce(bootstrap, topic, [json.dumps(m).encode() for m in old + new],
            timestamps_ms=[may + 600 * i for i in range(len(old))]
            + [october + 600 * i for i in range(len(new))])

    groups_before = _groups(kafka_admin)
    built = {}
    for name, since, until in (("old", "2026-04-01", "2026-07-01"),
                               ("recent", "2026-09-01", None)):
        output = tmp_path / f"{name}.json"
        args = ["baseline", "build", "--config", str(config_path), "--from-kafka",
                "--since", since, "--output", str(output)]
        if until is not None:
            args += ["--until", until]
        assert cli_main(args) == 0
        built[name] = load_baseline(output)
        assert f"{len(old)} messages" in built[name].source
        assert topic in built[name].source
    _assert_no_group_touched(kafka_admin, topic, config.kafka.group_id, groups_before)
    assert "2026-09-01T00:00:00Z to now" in built["recent"].source
    assert "2026-04-01T00:00:00Z to 2026-07-01T00:00:00Z" in built["old"].source
    # Every feature's reference holds exactly its range's values.
    for baseline in built.values():
        assert {f.count + f.missing + f.invalid for f in baseline.features.values()} == {6000}

    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text("".join(json.dumps(m) + "\n" for m in SyntheticStream(
        config, seed=23).messages(5000, LAUNCHED, 0)))
    drifted = {}
    for name in built:
        report = tmp_path / f"report-{name}.json"
        cli_main(["replay", "--config", str(config_path), "--baseline",
                  str(tmp_path / f"{name}.json"), "--input", str(fresh), "--report",
                  str(report)])
        drifted[name] = set(json.loads(report.read_text())["drifted"])
    assert drifted == {"old": set(LAUNCHED), "recent": set()}

    capsys.readouterr()
    assert cli_main(["baseline", "diff", str(tmp_path / "old.json"),
                     str(tmp_path / "recent.json")]) == 0
    ranked = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line and not line.startswith((" ", "old ", "new ", "KL("))]
    assert set(ranked[:3]) == set(LAUNCHED)  # the launch's features moved most


def test_a_baseline_from_the_topic_joins_no_group_and_commits_nothing(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str], kafka_admin: Any,
        kafka_client: str) -> None:
    """With either client: librdkafka needs a group id even to read by assignment, and must
    still neither join the group nor commit."""
    topic = topic_factory(partitions=2)
    config_path, _ = setup_service(tmp_path, bootstrap, topic, window_size=1000,
                                   client=kafka_client)
    config = load_config(config_path, environ={})
    assert config.kafka.client == kafka_client
    messages = SyntheticStream(config, seed=24).messages(600)
    produce(bootstrap, topic, [json.dumps(m).encode() for m in messages])
    groups_before = _groups(kafka_admin)
    output = tmp_path / "from-topic.json"
    assert cli_main(["baseline", "build", "--config", str(config_path), "--from-kafka",
                     "--since", "1d", "--output", str(output)]) == 0
    assert "600 messages" in load_baseline(output).source
    _assert_no_group_touched(kafka_admin, topic, config.kafka.group_id, groups_before)
