from __future__ import annotations

import csv
import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from streamdrift.cli import main
from streamdrift.config import load_config
from streamdrift.divergence import auto_min_samples
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


def _baselines_from_each_format(folder: Path) -> dict[str, dict]:
    """The baseline's features built from reference.{csv,parquet,jsonl} in ``folder``."""
    built = {}
    for suffix in ("csv", "parquet", "jsonl"):
        output = folder / f"baseline-{suffix}.json"
        assert main(["baseline", "build", "--config", str(folder / "config.yaml"),
                     "--input", str(folder / f"reference.{suffix}"),
                     "--output", str(output)]) == 0
        built[suffix] = json.loads(output.read_text())["features"]
    return built


def test_baselines_from_csv_parquet_and_jsonl_agree(workspace: Path, capsys):
    outputs = _baselines_from_each_format(workspace)
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
    # The refused lines by number (the blank line between them is no message).
    assert "refused: line 4001 (not_json), line 4002 (not_object)" in table
    header = next(line for line in table.splitlines()
                  if line.startswith("feature") and "status" in line)
    assert header.split()[-3:] == ["unseen", "outside", "changes"]
    age = [line for line in table.splitlines() if line.startswith("age ")][-1]
    assert int(age.split()[-2]) == session_outside(report, "age")


def session_outside(report: dict, name: str) -> int:
    total: int = report["features"][name]["out_of_range_total"]
    return total


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


def test_compare_shows_one_window_without_panes_or_change_points(workspace: Path, capsys):
    with (workspace / "production.jsonl").open("a") as out:
        out.write('{"oops"\n\n"text"\n')
    main(["compare", "--config", str(workspace / "config.yaml"),
          str(workspace / "reference.jsonl"), str(workspace / "production.jsonl")])
    printed = capsys.readouterr().out
    assert "one window of 4000 rows" in printed
    assert "panes" not in printed
    header = next(line for line in printed.splitlines()
                  if line.startswith("feature") and "status" in line)
    assert header.split()[-2:] == ["unseen", "outside"]
    assert "changes" not in header
    assert "refused: line 4001 (not_json), line 4003 (not_object)" in printed


def test_check_and_show(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.csv")])
    assert main(["check", "--config", str(workspace / "config.yaml")]) == 0
    assert main(["baseline", "show", str(workspace / "baseline.json")]) == 0
    out = capsys.readouterr().out
    assert "OK, 7 features" in out
    assert "\nmessages: JSON\n" in out
    assert "format      streamdrift.baseline/v1" in out


def test_check_says_how_framed_topics_are_read(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.csv")])
    document = yaml.safe_load((workspace / "config.yaml").read_text())
    document["input"] = {"format": "avro", "formats_by_topic": {"legacy": "json"},
                         "schema_registry": {"url": "http://registry:8081"}}
    document["baseline"]["path"] = str(workspace / "baseline.json")
    (workspace / "avro.yaml").write_text(yaml.safe_dump(document))
    assert main(["check", "--config", str(workspace / "avro.yaml")]) == 0
    assert ("messages: Avro, writer schemas from http://registry:8081; topic legacy: JSON"
            in capsys.readouterr().out)


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
        # produce checks its arguments before it reaches a broker (the config's is on
        # 127.0.0.1:9092, where no test runs one): no topic is created for a typo.
        (["produce", "--config", "{ws}/config.yaml", "--duration", "60"],
         "--duration: not a duration like '15m' or '1h': '60'"),
        (["produce", "--config", "{ws}/config.yaml", "--drift", "agee@10"],
         "--drift names unknown feature(s): agee"),
        (["produce", "--config", "{ws}/config.yaml", "--key-field", "id"],
         "--key-field goes with --input"),
        (["produce", "--config", "{ws}/config.yaml", "--input", "{ws}/production.jsonl",
          "--drift", "age"], "--input sends a file as it is"),
        (["produce", "--config", "{ws}/config.yaml", "--input", "{ws}/absent.jsonl"],
         "cannot read"),
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


def test_produce_with_no_broker_is_one_clear_error_within_the_connect_timeout(
        tmp_path: Path):
    """No traceback after kafka-python's 30 s: one line, exit 2, within
    kafka.connect_timeout_s (a port bound but not listening refuses every connection)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{closed.getsockname()[1]}"
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({
            "kafka": {"bootstrap_servers": bootstrap, "topic": "nowhere",
                      "connect_timeout_s": 1},
            "features": [{"name": "age"}],
            "baseline": {"path": str(tmp_path / "absent-baseline.json")}}))
        # The command is given less than kafka-python's own 30 s: it ends on the 1 s of
        # kafka.connect_timeout_s (and the interpreter's start), or the run times out.
        try:
            result = subprocess.run(
                [sys.executable, "-m", "streamdrift", "produce", "--config",
                 str(tmp_path / "config.yaml"), "--count", "10"],
                cwd=tmp_path, capture_output=True, text=True, timeout=25, check=False,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"produce was still waiting for a broker after 25 s, not 1 s: "
                        f"{expired.stderr!r}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"streamdrift: error: no Kafka broker answered at {bootstrap} within 1 s "
        "(kafka.connect_timeout_s; KafkaTimeoutError)"]


FAITHFUL_CONFIG = {
    "features": [{"name": "country", "type": "categorical"},
                 {"name": "plan", "type": "categorical"},
                 {"name": "spend", "type": "numeric", "bins": 5}],
    "window": {"size": 500, "panes": 5},
}
# Real categories that look like missing-value markers, and real missing values.
COUNTRIES = ["NA", "DE", "None", "null", "N/A", "FR"]
PLANS = ["None", "free", "pro"]


def _faithful_rows(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"country": None if index % 50 == 0 else str(rng.choice(COUNTRIES)),
             "plan": str(rng.choice(PLANS)),
             "spend": None if index % 40 == 0 else round(float(rng.gamma(2.0, 30.0)), 2)}
            for index in range(count)]


def test_categories_that_look_missing_read_the_same_from_every_source(tmp_path: Path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(FAITHFUL_CONFIG))
    rows = _faithful_rows(3000, seed=1)
    with (tmp_path / "reference.csv").open("w") as out:
        out.write("country,plan,spend\n")
        for row in rows:  # None is an empty cell, the only missing value CSV has
            out.write(",".join("" if row[k] is None else str(row[k])
                               for k in ("country", "plan", "spend")) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "reference.parquet")
    with (tmp_path / "reference.jsonl").open("w") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    built = _baselines_from_each_format(tmp_path)
    assert built["csv"] == built["parquet"] == built["jsonl"]
    assert set(built["csv"]["country"]["categories"]) == set(COUNTRIES)
    assert set(built["csv"]["plan"]["categories"]) == set(PLANS)
    assert built["csv"]["country"]["missing"] == 60  # the 60 empty cells, nothing else

    # A stream of JSON messages carrying those strings is not flagged against it.
    with (tmp_path / "stream.jsonl").open("w") as out:
        out.writelines(json.dumps(row) + "\n" for row in _faithful_rows(2000, seed=2))
    report_path = tmp_path / "report.json"
    assert main(["replay", "--config", str(tmp_path / "config.yaml"), "--baseline",
                 str(tmp_path / "baseline-csv.json"), "--input", str(tmp_path / "stream.jsonl"),
                 "--report", str(report_path), "--fail-on-drift"]) == 0
    report = json.loads(report_path.read_text())
    assert report["drifted"] == []
    assert report["features"]["country"]["unseen_total"] == 0
    capsys.readouterr()


def test_invalid_reference_cells_are_reported_at_build_and_shown(tmp_path: Path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(FAITHFUL_CONFIG))
    lines = ["country;plan;spend"]  # a semicolon-separated file, found as such
    for index in range(400):
        spend = {7: "$1,200.00", 9: "abc", 11: "12 EUR", 13: "NA"}.get(index, str(index % 90))
        lines.append(f"DE;free;{spend}")
    (tmp_path / "reference.csv").write_text("\n".join(lines) + "\n")
    assert main(["baseline", "build", "--config", str(tmp_path / "config.yaml"),
                 "--input", str(tmp_path / "reference.csv")]) == 0
    out = capsys.readouterr().out
    assert "spend: 3 invalid values left out (e.g. '$1,200.00', 'abc', '12 EUR')" in out
    assert main(["baseline", "show", str(tmp_path / "baseline.json")]) == 0
    shown = capsys.readouterr().out.splitlines()
    header = next(line for line in shown if line.startswith("feature"))
    assert header.split()[:7] == ["feature", "type", "bins", "count", "missing", "invalid",
                                  "shape"]
    spend = next(line.split() for line in shown if line.startswith("spend"))
    assert spend[3:6] == ["396", "1", "3"]  # usable, missing ("NA"), invalid


@pytest.mark.parametrize(("text", "delimiter"), [
    ("country\tplan\tspend\nDE\tfree\t3\n", None),  # sniffed
    ("country|plan|spend\nDE|free|3\n", "|"),
    ("country\tplan\tspend\nDE\tfree\t3\n", "\\t"),
])
def test_a_csv_file_with_another_delimiter_is_read(tmp_path: Path, capsys, text, delimiter):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(FAITHFUL_CONFIG))
    (tmp_path / "reference.csv").write_text(text)
    args = ["baseline", "build", "--config", str(tmp_path / "config.yaml"),
            "--input", str(tmp_path / "reference.csv")]
    if delimiter is not None:
        args += ["--delimiter", delimiter]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    document = json.loads((tmp_path / "baseline.json").read_text())["features"]
    assert document["country"]["categories"] == ["DE"]
    assert document["spend"]["count"] == 1


@pytest.mark.parametrize("content", ["", "country,plan,spend\n"])
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_an_empty_file_says_no_rows(tmp_path: Path, capsys, content, suffix):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(FAITHFUL_CONFIG))
    path = tmp_path / f"reference.{suffix}"
    path.write_text(content if suffix == "csv" else "\n" * len(content))
    assert main(["baseline", "build", "--config", str(tmp_path / "config.yaml"),
                 "--input", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"streamdrift: error: {path}: no rows"


def test_check_shows_each_feature_s_min_samples_and_its_noise(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.csv")])
    capsys.readouterr()
    assert main(["check", "--config", str(workspace / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "significant at alpha 0.001 (Holm over the 7 features)" in out
    baseline = json.loads((workspace / "baseline.json").read_text())["features"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in baseline}
    for name, row in rows.items():
        occupied = sum(1 for count in baseline[name]["counts"] if count)
        threshold = 0.2 if name == "device" else 0.1
        expected = auto_min_samples(threshold, occupied, baseline[name]["count"])
        assert row[4:6] == [str(expected), "(auto)"], name
        assert float(row[6]) <= threshold / 2


def test_replay_explains_what_moved_and_when_and_writes_the_timeline(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.jsonl")])
    capsys.readouterr()
    for suffix in ("csv", "jsonl"):
        timeline = workspace / f"timeline.{suffix}"
        report_path = workspace / "report.json"
        assert main(["replay", "--config", str(workspace / "config.yaml"), "--input",
                     str(workspace / "production.jsonl"), "--report", str(report_path),
                     "--timeline", str(timeline)]) == 0
        out = capsys.readouterr().out
        report = json.loads(report_path.read_text())
        # Under each drifted feature, its three largest terms, as the report's bins say.
        age = report["features"]["age"]
        top = sorted((b for b in age["bins"] if (b["contribution"] or 0) > 0),
                     key=lambda b: -b["contribution"])[:3]
        for entry in top:
            assert (f"  age: {entry['label']} {entry['reference']:.1%} -> "
                    f"{entry['window']:.1%} ({entry['contribution']:+.2f} nats)") in out
        # The timeline: a row per closed pane (2000 messages in panes of 200 in a stream of
        # 4000), then the end of the input.
        if suffix == "csv":
            table = list(csv.DictReader(timeline.open()))
            panes = [row["pane"] for row in table]
            statuses = [row["age.status"] for row in table]
            messages = [int(row["messages"]) for row in table]
        else:
            lines = [json.loads(line) for line in timeline.read_text().splitlines()]
            panes = [str(row["pane"]) if row["pane"] is not None else "" for row in lines]
            statuses = [row["features"]["age"]["status"] for row in lines]
            messages = [int(row["messages"]) for row in lines]
        assert panes == [str(i) for i in range(19)] + [""]
        assert messages == [200 * (i + 1) for i in range(19)] + [4000]
        first = statuses.index("drift")
        assert set(statuses[:first]) <= {"ok", "insufficient_data"}
        assert f"  age: after message {messages[first]}" in out
        assert "first flagged:" in out


def test_the_html_report_is_one_self_contained_page(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.jsonl")])
    page = workspace / "report.html"
    assert main(["report", "--config", str(workspace / "config.yaml"), "--input",
                 str(workspace / "production.jsonl"), "--output", str(page)]) == 0
    html_text = page.read_text()
    assert f"wrote {page}" in capsys.readouterr().out
    # Nothing to fetch: no script, no external stylesheet, image or font.
    assert "<script" not in html_text
    assert not re.search(r"""(src|href)=["'](?!#)""", html_text)
    assert "url(" not in html_text
    assert html_text.count("<section") == 1 + 7  # the summary table, then each feature
    assert 'id="feature-age"' in html_text
    assert "first flagged: message" in html_text  # age's KL timeline marks its flag
    compare_page = workspace / "compare.html"
    assert main(["compare", "--config", str(workspace / "config.yaml"),
                 str(workspace / "reference.csv"), str(workspace / "production.jsonl"),
                 "--html", str(compare_page)]) == 0
    compared = compare_page.read_text()
    assert "as one window" in compared
    assert "KL over time" not in compared  # one window: no timeline


def test_baseline_diff_prints_each_feature_and_what_moved(workspace: Path, capsys):
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "reference.jsonl"), "--output",
          str(workspace / "old.json")])
    main(["baseline", "build", "--config", str(workspace / "config.yaml"),
          "--input", str(workspace / "production.jsonl"), "--output",
          str(workspace / "new.json")])
    capsys.readouterr()
    assert main(["baseline", "diff", str(workspace / "old.json"),
                 str(workspace / "new.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    ranked = [line.split()[0] for line in lines if re.match(r"^\w+\s+\d+\.\d{4} nats", line)]
    assert len(ranked) == 7
    assert ranked[0] == "age"  # the one drifted feature moved most


@pytest.mark.parametrize(("args", "message"), [
    (["--from-kafka"], "--from-kafka needs --since"),
    (["--input", "x.csv", "--from-kafka", "--since", "1d"], "not both"),
    (["--input", "x.csv", "--since", "1d"], "--since and --until go with --from-kafka"),
    ([], "needs --input FILE or --from-kafka"),
    (["--from-kafka", "--since", "tomorrow"], "not a time like"),
    (["--from-kafka", "--since", "1d", "--until", "2d"], "must come after --since"),
])
def test_baseline_build_sources_are_checked(workspace: Path, capsys, args, message):
    code = main(["baseline", "build", "--config", str(workspace / "config.yaml"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_files_written_are_readable_by_other_users(workspace: Path, capsys):
    """A container running under another user reads what these commands write."""
    previous = os.umask(0o022)
    try:
        config = str(workspace / "config.yaml")
        main(["baseline", "build", "--config", config,
              "--input", str(workspace / "reference.jsonl")])
        main(["replay", "--config", config, "--input", str(workspace / "production.jsonl"),
              "--report", str(workspace / "report.json"),
              "--timeline", str(workspace / "timeline.csv")])
        main(["report", "--config", config, "--input", str(workspace / "production.jsonl"),
              "--output", str(workspace / "report.html")])
        main(["rules", "--output", str(workspace / "rules.yaml")])
    finally:
        os.umask(previous)
    for name in ("baseline.json", "report.json", "timeline.csv", "report.html", "rules.yaml"):
        assert stat.S_IMODE((workspace / name).stat().st_mode) == 0o644, name
