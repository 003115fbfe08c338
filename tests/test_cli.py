from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streamdrift.cli import main
from streamdrift.config import load_config
from streamdrift.synthetic import SyntheticStream, demo_config
from tests.conftest import EXAMPLE_CONFIG, REPO


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The example config with reference data in three formats and a production stream."""
    config_text = EXAMPLE_CONFIG.read_text().replace("size: 10000", "size: 2000")
    (tmp_path / "config.yaml").write_text(config_text)
    config = load_config(tmp_path / "config.yaml", environ={})
    stream = SyntheticStream(config, seed=3)
    reference = stream.reference(6000)
    with (tmp_path / "reference.jsonl").open("w") as out:
        out.writelines(json.dumps(message) + "\n" for message in reference)
    rows = [{spec.name: _get(message, spec.path) for spec in config.features}
            for message in reference]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "reference.parquet")
    with (tmp_path / "reference.csv").open("w") as out:
        names = [spec.name for spec in config.features]
        out.write(",".join(names) + "\n")
        for row in rows:
            out.write(",".join("" if row[n] is None else str(row[n]) for n in names) + "\n")
    production = stream.messages(4000, drifted=("age",), drift_from=1000)
    with (tmp_path / "production.jsonl").open("w") as out:
        out.writelines(json.dumps(message) + "\n" for message in production)
    return tmp_path


def _get(message: dict, path: tuple[str, ...]) -> object:
    for key in path:
        message = message.get(key) if isinstance(message, dict) else None  # type: ignore[assignment]
    return message


def test_baselines_from_csv_parquet_and_jsonl_agree(workspace: Path, capsys):
    outputs = {}
    for suffix in ("csv", "parquet", "jsonl"):
        output = workspace / f"baseline-{suffix}.json"
        assert main(["baseline", "build", "--config", str(workspace / "config.yaml"),
                     "--input", str(workspace / f"reference.{suffix}"),
                     "--output", str(output)]) == 0
        outputs[suffix] = json.loads(output.read_text())["features"]
    assert outputs["csv"] == outputs["parquet"] == outputs["jsonl"]
    assert outputs["csv"]["discount_rate"]["missing"] > 0
    printed = capsys.readouterr().out
    for suffix in ("csv", "parquet", "jsonl"):
        assert f"wrote {workspace / f'baseline-{suffix}.json'}: 7 features from 6000 rows" \
            in printed


def test_replay_counts_bad_lines_and_writes_the_report(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.jsonl")])
    with (workspace / "production.jsonl").open("a") as out:
        out.write('not json\n[1,2]\n\n{"usage": {"session_length": "long"}}\n'
                  '{"usage": {"session_length": NaN}}\n')
    report_path = workspace / "report.json"
    code = main(["replay", "--config", str(workspace / "config.yaml"),
                 "--input", str(workspace / "production.jsonl"), "--report", str(report_path),
                 "--fail-on-drift"])
    assert code == 1  # age drifted
    report = json.loads(report_path.read_text())
    assert report["messages"] == 4004
    assert report["invalid"] == 2
    assert report["invalid_reasons"] == {"not_json": 1, "not_object": 1}
    session = report["features"]["session_length"]
    assert session["invalid_values_total"] == {"wrong_type": 1, "non_finite": 0}
    assert set(session) >= {"kl", "js", "psi", "p_value", "samples", "missing_ratio", "drift"}
    assert report["drifted"] == ["age"]
    table = capsys.readouterr().out
    assert "invalid 2 (not_json 1, not_object 1)" in table
    assert "DRIFT" in table


def test_compare_two_datasets(workspace: Path, capsys):
    code = main(["compare", "--config", str(workspace / "config.yaml"),
                 str(workspace / "reference.csv"), str(workspace / "reference.parquet"),
                 "--json", "--fail-on-drift"])
    assert code == 0
    same = json.loads(capsys.readouterr().out)
    # Identical data: only the baseline's smoothing separates them.
    assert all(f["kl"] < 1e-3 and not f["drift"] for f in same["features"].values())
    code = main(["compare", "--config", str(workspace / "config.yaml"),
                 str(workspace / "reference.csv"), str(workspace / "production.jsonl"),
                 "--fail-on-drift"])
    assert code == 1
    statuses = {line.split()[0]: line.split()[1] for line in
                capsys.readouterr().out.splitlines()
                if line.split() and line.split()[0] in ("age", "device", "plan", "country",
                                                        "session_length", "purchases_30d",
                                                        "discount_rate")}
    assert statuses == {"age": "DRIFT", "device": "ok", "plan": "ok", "country": "ok",
                        "session_length": "ok", "purchases_30d": "ok", "discount_rate": "ok"}


def test_check_and_show(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.csv")])
    assert main(["check", "--config", str(workspace / "config.yaml")]) == 0
    assert main(["baseline", "show", str(workspace / "baseline.json")]) == 0
    out = capsys.readouterr().out
    assert "OK, 7 features" in out
    assert "format      streamdrift.baseline/v1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--config", "{ws}/absent.yaml"], "cannot read config file"),
        (["check", "--config", "{ws}/config.yaml"], "cannot read baseline"),
        (["baseline", "build", "--config", "{ws}/config.yaml", "--input", "{ws}/x.txt"],
         "unknown input type"),
        (["baseline", "build", "--config", "{ws}/bad.yaml", "--input", "{ws}/reference.csv"],
         "window.panes must be an integer"),
        (["replay", "--config", "{ws}/timed.yaml", "--input", "{ws}/production.jsonl"],
         "window.time_field is required"),
    ],
)
def test_bad_input_is_one_clear_error_and_exit_2(workspace: Path, capsys, args, message):
    (workspace / "bad.yaml").write_text(yaml.safe_dump(
        {"features": [{"name": "age"}], "window": {"panes": "ten"}}))
    (workspace / "timed.yaml").write_text(yaml.safe_dump(
        {"features": [{"name": "age"}], "window": {"size": "10m"}}))
    code = main([arg.format(ws=workspace) for arg in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("streamdrift: error:")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_demo_runs_as_the_readme_says_and_sees_the_drift():
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "streamdrift", "demo"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=environment,
                            check=False)
    assert result.returncode == 0, result.stderr
    expected = ", ".join(sorted(("session_length", "device"), key=[
        spec.name for spec in demo_config().features].index))
    assert f"drifted at the end: {expected}" in result.stdout
