"""``streamdrift produce`` on a user's own data, and ``run`` on a topic that is not there,
against the real broker."""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from streamdrift.baseline import load_baseline
from streamdrift.cli import main as cli_main
from streamdrift.features import categorical_column, numeric_column
from tests.conftest import REPO
from tests.integration.conftest import (
    ServiceFactory,
    consume_all,
    free_port,
    wait_counted,
)

# A churn model's input: a categorical feature named like one of the demo's, with the user's
# own values; an integer feature; a price.
COUNTRIES = {"NL": 0.5, "BE": 0.3, "LU": 0.2}


def _churn_reference(path: Path, count: int = 5000) -> None:
    rng = np.random.default_rng(17)
    countries = rng.choice(list(COUNTRIES), count, p=list(COUNTRIES.values()))
    tenure = rng.integers(0, 73, count)
    charges = np.round(rng.normal(65.0, 20.0, count).clip(18.25, 118.75), 2)
    with path.open("w") as out:
        for country, months, charge in zip(countries.tolist(), tenure.tolist(),
                                           charges.tolist(), strict=True):
            out.write(json.dumps({"customer": {"country": country}, "tenure": months,
                                  "monthly_charges": charge}) + "\n")


def _churn_config(tmp_path: Path, bootstrap: str, topic: str, port: int = 0,
                  client: str = "kafka-python") -> Path:
    document: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": f"g-{topic}",
                  "client": client, "auto_offset_reset": "earliest",
                  "session_timeout_s": 6},
        "features": [
            {"name": "country", "path": "customer.country", "type": "categorical"},
            {"name": "tenure", "type": "numeric"},
            {"name": "monthly_charges", "type": "numeric"},
        ],
        "window": {"size": 2000, "panes": 4},
        "baseline": {"path": str(tmp_path / "churn-baseline.json"), "bins": 12},
        "metrics": {"port": port, "bind_address": "127.0.0.1"},
        "service": {"publish_interval_s": 0.5, "lag_interval_s": 1.0},
    }
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _build_baseline(tmp_path: Path, config: Path) -> None:
    reference = tmp_path / "churn.jsonl"
    _churn_reference(reference)
    assert cli_main(["baseline", "build", "--config", str(config),
                     "--input", str(reference)]) == 0


def _p_value_of_bins(feature: Any, values: list[Any]) -> float:
    column = (numeric_column(values) if feature.type == "numeric"
              else categorical_column(values))
    counts = np.bincount(feature.bin(column)[column.status == 0], minlength=feature.n_bins)
    occupied = feature.counts > 0
    assert not counts[~occupied].any(), "values in a bin the reference never filled"
    expected = feature.counts[occupied] / feature.counts.sum() * counts.sum()
    return float(stats.chisquare(counts[occupied], expected).pvalue)


def test_produce_draws_the_users_features_from_their_baseline_and_drifts_one(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    topic = topic_factory(partitions=3)
    config = _churn_config(tmp_path, bootstrap, topic)
    _build_baseline(tmp_path, config)
    baseline = load_baseline(tmp_path / "churn-baseline.json")
    capsys.readouterr()
    assert cli_main(["produce", "--config", str(config), "--count", "6000", "--rate", "0",
                     "--drift", "monthly_charges@3000", "--drift-size", "1"]) == 0
    said = capsys.readouterr().out
    assert f"drawing every feature from baseline {tmp_path / 'churn-baseline.json'}" in said
    assert "drifting monthly_charges" in said
    messages = sorted((json.loads(record.value or b"")
                       for record in consume_all(bootstrap, topic)),
                      key=lambda message: message["id"])
    assert [message["id"] for message in messages] == list(range(6000))
    before, after = messages[:3000], messages[3000:]

    # The user's countries, in the reference's proportions, before and after: never the
    # demo's, never unseen ones.
    countries = [message["customer"]["country"] for message in messages]
    assert set(countries) == set(COUNTRIES)
    assert _p_value_of_bins(baseline["country"], countries) > 1e-4
    # Whole months stay whole, within the reference's range, in its proportions.
    tenure = [message["tenure"] for message in messages]
    assert all(type(months) is int for months in tenure)
    assert min(tenure) >= 0
    assert max(tenure) <= 72
    assert _p_value_of_bins(baseline["tenure"], tenure) > 1e-4
    # The price follows its bins until message 3000, then moves up by one standard deviation.
    charges = baseline["monthly_charges"]
    before_charges = [message["monthly_charges"] for message in before]
    after_charges = [message["monthly_charges"] for message in after]
    assert _p_value_of_bins(charges, before_charges) > 1e-4
    assert charges.std is not None
    shift = np.mean(after_charges) - np.mean(before_charges)
    assert shift == pytest.approx(charges.std, rel=0.1)


def test_produce_sends_a_recorded_file_with_its_keys_and_timestamps(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    config = _churn_config(tmp_path, bootstrap, topic)
    recorded = tmp_path / "recorded.jsonl"
    base_ms = 1_767_225_600_000  # 2026-01-01
    lines = [json.dumps({"user": f"u{index % 7}", "ts": base_ms + index * 1000,
                         "tenure": index}) for index in range(50)]
    recorded.write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    assert cli_main(["produce", "--config", str(config), "--input", str(recorded),
                     "--key-field", "user", "--timestamp-field", "ts",
                     "--timestamp-unit", "ms", "--rate", "0"]) == 0
    records = consume_all(bootstrap, topic)
    assert sorted(record.value or b"" for record in records) == sorted(
        line.encode() for line in lines)
    for record in records:
        message = json.loads(record.value or b"")
        assert record.key == message["user"].encode()
        assert record.timestamp == message["ts"]
    # One key, one partition: a user's messages stay in order.
    by_key: dict[bytes | None, set[int]] = {}
    for record in records:
        by_key.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())


def test_produce_creates_the_topic_or_says_it_has_another_partition_count(
        tmp_path: Path, bootstrap: str, kafka_admin: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"sd-created-{uuid.uuid4().hex[:12]}"
    config = _churn_config(tmp_path, bootstrap, topic)
    _build_baseline(tmp_path, config)
    try:
        capsys.readouterr()
        assert cli_main(["produce", "--config", str(config), "--count", "10", "--rate", "0",
                         "--partitions", "4"]) == 0
        assert f"created topic {topic} with 4 partitions" in capsys.readouterr().out
        described = kafka_admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 4
        assert cli_main(["produce", "--config", str(config), "--count", "10", "--rate", "0",
                         "--partitions", "2"]) == 0
        assert (f"topic {topic} exists with 4 partitions: --partitions 2 applies only to a "
                "topic it creates") in capsys.readouterr().out
        assert len(consume_all(bootstrap, topic)) == 20
    finally:
        kafka_admin.delete_topics([topic])


def test_run_says_the_topic_is_missing_and_does_not_create_it(
        tmp_path: Path, bootstrap: str, kafka_admin: Any, kafka_client: str,
        service_factory: ServiceFactory) -> None:
    topic = f"sd-missing-{uuid.uuid4().hex[:12]}"
    port = free_port()
    config = _churn_config(tmp_path, bootstrap, topic, port, kafka_client)
    _build_baseline(tmp_path, config)
    try:
        service = service_factory(config, port)
        service.wait_until(lambda: "event=topic_missing" in service.log_text(), 60,
                           what="topic_missing")
        status, body = service.get("/readyz")
        assert status == 503
        assert f"topic {topic} does not exist" in body
        # Several metadata rounds later, the broker still has no such topic.
        service.wait_until(lambda: service.value("streamdrift_kafka_connected") == 1, 30,
                           what="connected")
        assert topic not in kafka_admin.list_topics()
        # Created with its partitions, it is picked up without a restart.
        assert cli_main(["produce", "--config", str(config), "--count", "300", "--rate", "0",
                         "--partitions", "3"]) == 0
        service.wait_ready(60)
        wait_counted(service, 300)
        assigned = [line for line in service.log_text().splitlines()
                    if "event=partitions_assigned" in line]
        assert f"{topic}-0,{topic}-1,{topic}-2" in assigned[-1]
        log = service.log_text()
        assert log.count("event=topic_missing") == 1
        assert 'partitions=""' not in log
        assert "event=kafka_client" not in log, log
        assert "new_group_starts_at=earliest" in log
    finally:
        kafka_admin.delete_topics([topic])


def test_unseen_categories_only_when_asked(tmp_path: Path, bootstrap: str,
                                           topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1)
    config = _churn_config(tmp_path, bootstrap, topic)
    _build_baseline(tmp_path, config)
    assert cli_main(["produce", "--config", str(config), "--count", "2000", "--rate", "0",
                     "--drift", "country@1000", "--unseen", "--drift-size", "0.4"]) == 0
    messages = sorted((json.loads(record.value or b"")
                       for record in consume_all(bootstrap, topic)),
                      key=lambda message: message["id"])
    before = Counter(message["customer"]["country"] for message in messages[:1000])
    after = Counter(message["customer"]["country"] for message in messages[1000:])
    assert set(before) == set(COUNTRIES)
    unseen = sum(count for country, count in after.items() if country not in COUNTRIES)
    assert 300 <= unseen <= 500  # 40 % of 1000


def test_the_readme_worked_example_on_a_live_topic(
        tmp_path: Path, bootstrap: str, kafka_admin: Any, service_factory: ServiceFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's second half as a user runs it: the service started first on a topic
    that does not exist yet, then the recorded messages sent at 100 a second; the two
    drifted features show on /metrics."""
    example = REPO / "docs" / "examples" / "churn"
    for name in ("churn.yaml", "train.csv", "recent.jsonl"):
        shutil.copy(example / name, tmp_path / name)
    topic = f"churn-features-{uuid.uuid4().hex[:12]}"
    port = free_port()
    # Only what the README's broker and ports would differ by here.
    settings = {"STREAMDRIFT_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "STREAMDRIFT_KAFKA_TOPIC": topic, "STREAMDRIFT_KAFKA_GROUP_ID": topic,
                "STREAMDRIFT_METRICS_PORT": str(port)}
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)
    try:
        assert cli_main(["baseline", "build", "--config", "churn.yaml", "--input",
                         "train.csv"]) == 0
        service = service_factory(tmp_path / "churn.yaml", port, env=settings)
        service.wait_until(lambda: "event=topic_missing" in service.log_text(), 60,
                           what="topic_missing")
        assert cli_main(["produce", "--config", "churn.yaml", "--input", "recent.jsonl",
                         "--rate", "100", "--key-field", "customer.id", "--timestamp-field",
                         "ts", "--timestamp-unit", "ms"]) == 0
        wait_counted(service, 3000)

        def flags() -> dict[str, float | None]:
            return {name: service.value("streamdrift_feature_drifted", feature=name)
                    for name in ("country", "contract", "tenure_months", "monthly_charges",
                                 "support_calls")}

        service.wait_until(lambda: flags() == {"country": 0, "contract": 1,
                                               "tenure_months": 0, "monthly_charges": 1,
                                               "support_calls": 0}, 30,
                           what="contract and monthly_charges drifted, nothing else")
        log = service.log_text()
        assert "event=drift_started feature=monthly_charges" in log
        assert "event=drift_started feature=contract" in log
    finally:
        kafka_admin.delete_topics([topic])


# Ten cities, three kept (baseline.max_categories): 69.5 % of the reference is in the other
# bin, whose categories the baseline does not name.
CITIES = {"c0": 2100, "c1": 2000, "c2": 2000, **{f"c{index}": 1986 for index in range(3, 9)},
          "c9": 1984}


def test_produce_sends_the_other_bin_and_a_replay_of_its_stream_finds_no_drift(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1)
    config = tmp_path / "cities.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": f"g-{topic}"},
        "features": [{"name": "city", "type": "categorical"}],
        "window": {"size": 2000, "panes": 4},
        "baseline": {"path": str(tmp_path / "cities-baseline.json"), "max_categories": 3},
    }, sort_keys=False))
    reference = tmp_path / "cities.jsonl"
    reference.write_text("".join(json.dumps({"city": city}) + "\n"
                                 for city, count in CITIES.items() for _ in range(count)))
    assert cli_main(["baseline", "build", "--config", str(config),
                     "--input", str(reference)]) == 0
    city = load_baseline(tmp_path / "cities-baseline.json")["city"]
    assert city.categories == ("c0", "c1", "c2")
    assert cli_main(["produce", "--config", str(config), "--count", "6000",
                     "--rate", "0"]) == 0
    produced = tmp_path / "produced.jsonl"
    records = consume_all(bootstrap, topic)
    assert len(records) == 6000
    produced.write_bytes(b"".join((record.value or b"") + b"\n" for record in records))
    cities = [json.loads(record.value or b"")["city"] for record in records]
    others = [name for name in cities if name not in city.categories]
    assert len(others) / len(cities) == pytest.approx(0.695, abs=0.03)
    assert all(name.startswith("other-") for name in others)
    assert _p_value_of_bins(city, cities) > 1e-4
    assert cli_main(["replay", "--config", str(config), "--input", str(produced),
                     "--fail-on-drift"]) == 0
