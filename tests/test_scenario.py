"""Many features, a known subset drifts: replay flags exactly that subset, and a baseline
rebuilt on the recent data clears it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from streamdrift.cli import main

N_NUMERIC = 20
N_CATEGORICAL = 10
DRIFTED = {"n03", "n08", "n15", "c02", "c07"}
WINDOW = 5000


def _draw(rng: np.random.Generator, name: str, count: int, drift: bool) -> list[object]:
    index = int(name[1:])
    if name.startswith("n"):
        shift = 1.0 if drift else 0.0
        law = index % 4
        if law == 0:
            return rng.normal(index + shift, 1.0, count).round(4).tolist()
        if law == 1:
            return rng.lognormal(1.0 + shift * 0.6, 0.5, count).round(4).tolist()
        if law == 2:
            return rng.poisson(3.0 + 3 * shift, count).tolist()
        return rng.uniform(0.0 + shift * 0.5, 1.0 + shift * 0.5, count).round(5).tolist()
    categories = [f"k{j}" for j in range(3 + index % 5)]
    weights = np.linspace(1.0, 3.0, len(categories))
    if drift:
        weights = weights[::-1] ** 2
    return rng.choice(categories, count, p=weights / weights.sum()).tolist()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenario")
    names = [f"n{i:02d}" for i in range(N_NUMERIC)] + [f"c{i:02d}" for i in range(N_CATEGORICAL)]
    features = [{"name": name, "path": f"f.{name}",
                 "type": "numeric" if name.startswith("n") else "categorical"}
                for name in names]
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "features": features,
        "window": {"size": WINDOW, "panes": 10},
        "baseline": {"path": "baseline.json", "bins": 20},
        "divergence": {"threshold": 0.1},
    }))
    rng = np.random.default_rng(11)
    reference = {name: _draw(rng, name, 30_000, False) for name in names}
    with (folder / "reference.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(names)
        writer.writerows(zip(*(reference[name] for name in names), strict=True))
    # Production: 5,000 messages as trained, then 15,000 where the subset has drifted.
    with (folder / "production.jsonl").open("w") as stream:
        for drift, count in ((False, 5000), (True, 15_000)):
            columns = {name: _draw(rng, name, count, drift and name in DRIFTED)
                       for name in names}
            for row in range(count):
                stream.write(json.dumps({"f": {name: columns[name][row] for name in names}})
                             + "\n")
    with (folder / "production.jsonl").open() as stream:
        lines = stream.readlines()
    (folder / "recent.jsonl").write_text("".join(lines[-10_000:]))
    return folder


def _replay(folder: Path, baseline: str, report: str) -> dict:
    code = main(["replay", "--config", str(folder / "config.yaml"), "--baseline",
                 str(folder / baseline), "--input", str(folder / "production.jsonl"),
                 "--report", str(folder / report)])
    assert code == 0
    return json.loads((folder / report).read_text())


def test_replay_flags_exactly_the_drifted_features(scenario: Path):
    assert main(["baseline", "build", "--config", str(scenario / "config.yaml"),
                 "--input", str(scenario / "reference.csv")]) == 0
    report = _replay(scenario, "baseline.json", "report.json")
    assert report["messages"] == 20_000
    assert report["invalid"] == 0
    flagged = {name for name, feature in report["features"].items() if feature["drift"]}
    assert flagged == DRIFTED
    for name, feature in report["features"].items():
        assert feature["samples"] == WINDOW
        if name in DRIFTED:
            assert feature["kl"] > 0.1
            assert feature["p_value"] < 1e-6
        else:
            assert feature["kl"] < 0.02


def test_a_baseline_rebuilt_on_recent_data_clears_the_drift(scenario: Path):
    assert main(["baseline", "build", "--config", str(scenario / "config.yaml"),
                 "--input", str(scenario / "recent.jsonl"),
                 "--output", str(scenario / "recent-baseline.json")]) == 0
    report = _replay(scenario, "recent-baseline.json", "report-recent.json")
    assert [name for name, f in report["features"].items() if f["drift"]] == []
    assert max(f["kl"] for f in report["features"].values()) < 0.02
