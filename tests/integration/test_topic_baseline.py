"""A baseline rebuilt from the topic itself: the workflow's last step. A topic holds an old
regime (timestamps in May) and a new one after a product launch (October) in which three
features moved; a baseline of the recent range accepts a fresh new-regime stream, one of
the old range flags it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from streamdrift.baseline import load_baseline
from streamdrift.cli import main as cli_main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream
from tests.integration.conftest import produce, setup_service

LAUNCHED = ("session_length", "age", "device")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_baseline_of_the_recent_range_accepts_the_new_regime(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str], capsys) -> None:
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
