"""The documentation says what the code does: the README's commands and expected output, the
worked example's data, the log events, and a site that builds with no broken link."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from streamdrift.cli import main as cli_main
from tests.conftest import REPO

README = REPO / "README.md"
EXAMPLE = REPO / "docs" / "examples" / "churn"
EVENTS_PAGE = REPO / "docs" / "reference" / "events.md"


def _fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def test_the_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("# streamdrift\n\n```sh\n"), "the commands come first"
    first = _fenced_blocks(text)[0].strip().splitlines()
    assert len(first) == 2, first
    demo, tests = first
    # A fresh Debian refuses pip outside a virtualenv: the command makes one.
    assert demo.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install .")
    assert demo.endswith("streamdrift demo")
    assert tests == "tests/run"
    assert "exec tests/run" in (REPO / ".ci" / "run").read_text()


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move detail to docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Prerequisites", "## Use it on your data", "## Deploy",
                        "## Learn more"]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("churn_generate", EXAMPLE / "generate_data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_data_is_what_its_generator_writes(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.write_train(tmp_path / "train.csv")
    generator.write_recent(tmp_path / "recent.jsonl")
    for name in ("train.csv", "recent.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), \
            f"docs/examples/churn/{name} is stale: run python docs/examples/churn/generate_data.py"


def test_the_worked_example_prints_what_the_readme_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("churn.yaml", "train.csv", "recent.jsonl"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for variable in ("STREAMDRIFT_BASELINE_PATH", "STREAMDRIFT_KAFKA_TOPIC"):
        monkeypatch.delenv(variable, raising=False)
    assert cli_main(["baseline", "build", "--config", "churn.yaml", "--input",
                     "train.csv"]) == 0
    assert (tmp_path / "churn-baseline.json").exists()
    capsys.readouterr()
    assert cli_main(["replay", "--config", "churn.yaml", "--input", "recent.jsonl"]) == 0
    printed = capsys.readouterr().out
    expected = (EXAMPLE / "replay-output.txt").read_text(encoding="utf-8")
    assert printed == expected, "update docs/examples/churn/replay-output.txt and README.md"
    readme_blocks = _fenced_blocks(README.read_text(encoding="utf-8"))
    assert expected in readme_blocks, "README.md's replay output is not the real one"
    # The docs page includes the same file.
    assert '--8<-- "docs/examples/churn/replay-output.txt"' in (
        REPO / "docs" / "getting-started.md").read_text()


def _logged_events() -> set[str]:
    """Every event name the package logs: the first argument of a call to a log."""
    found: set[str] = set()
    for path in (REPO / "streamdrift").rglob("*.py"):
        found.update(re.findall(r"(?<![A-Za-z])_?log\(\s*\"([a-z_]+)\"",
                                path.read_text(encoding="utf-8")))
    return found


def test_every_event_is_documented_and_every_documented_event_exists() -> None:
    logged = _logged_events()
    assert {"started", "topic_missing", "kafka_unavailable", "baseline_refused"} <= logged
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", EVENTS_PAGE.read_text(), re.M))
    assert logged - documented == set(), "events missing from docs/reference/events.md"
    assert documented - logged == set(), "docs/reference/events.md lists events never logged"


def test_the_site_builds_with_no_broken_link_or_anchor(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists(), "mkdocs is not installed: pip install -e '.[dev]'"
    result = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {path.relative_to(tmp_path / "site").as_posix()
             for path in (tmp_path / "site").rglob("index.html")}
    assert {"index.html", "getting-started/index.html", "reference/metrics/index.html",
            "operations/runbooks/index.html"} <= pages


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    page = docs / "index.md"
    page.write_text(page.read_text() + "\n[gone](no-such-page.md#nowhere)\n")
    config = (REPO / "mkdocs.yml").read_text().replace("docs_dir: docs",
                                                       f"docs_dir: {docs}")
    config = config.replace('base_path: ["."]', f'base_path: ["{REPO}"]')
    (tmp_path / "mkdocs.yml").write_text(config)
    result = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build",
                             "--strict", "-f", str(tmp_path / "mkdocs.yml"), "--site-dir",
                             str(tmp_path / "site")], capture_output=True, text=True,
                            timeout=300, check=False,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr
