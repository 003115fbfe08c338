"""``tests/run --check-tools`` on a machine that lacks a tool: the checks of tests/run run
alone with a PATH of stub programs (and a few real ones the script uses), so that nothing is
installed whatever the machine has; without root, sudo or apt-get, a missing tool is one
clear message and exit code 1."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "tests" / "run"
# Real programs the checks call (the step headings' clock, `java -version`'s parsing).
REAL = ("dirname", "date", "head", "sed", "grep")
# Every tool tests/run checks for, answering like the real one.
STUBS = {
    "promtool": "echo 'promtool, version 2.45.3'",
    "prometheus": "echo 'prometheus, version 2.45.3'",
    "prometheus-alertmanager": "echo 'alertmanager, version 0.26.0'",
    "chromium": "echo 'Chromium 140.0'",
    "java": "echo 'openjdk version \"17.0.16\" 2025-07-15' >&2",
    "mvn": "echo 'Apache Maven 3.8.7'",
    "podman": "true",
    "runc": "true",
    "catatonit": "true",
    "debootstrap": "true",
}


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _check_tools(tmp_path: Path, without: tuple[str, ...] = (), uid: int = 1000,
                 stubs: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``tests/run --check-tools`` with only the stubs (minus ``without``) on PATH, as user
    ``uid`` (a stub ``id``), with no sudo and no apt-get."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in REAL:
        found = shutil.which(name)
        assert found is not None, f"{name} is needed to run tests/run"
        (folder / name).symlink_to(found)
    for name, body in {**STUBS, **(stubs or {})}.items():
        if name not in without:
            _stub(folder, name, body)
    _stub(folder, "id", f'[ "$1" = -u ] && echo {uid} || echo "uid={uid}"')
    for forbidden in ("sudo", "apt-get"):
        assert not (folder / forbidden).exists()
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, str(SCRIPT), "--check-tools"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": str(folder), "HOME": str(tmp_path),
                               "LANG": os.environ.get("LANG", "C.UTF-8")})


def test_every_tool_present_is_a_pass_with_nothing_installed(tmp_path: Path) -> None:
    result = _check_tools(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "promtool, version 2.45.3" in result.stdout
    assert "java 17; Apache Maven 3.8.7" in result.stdout
    assert result.stdout.rstrip().endswith("tests/run --check-tools: every tool is here")
    assert "apt-get install" not in result.stdout
    # No virtualenv, no pip: the checks alone.
    assert "== python" not in result.stdout


@pytest.mark.parametrize(("without", "stubs", "what", "packages"), [
    (("prometheus-alertmanager",), None, "prometheus-alertmanager",
     "prometheus prometheus-alertmanager"),
    (("promtool", "prometheus"), None, "promtool prometheus",
     "prometheus prometheus-alertmanager"),
    (("chromium",), None, "chromium", "chromium"),
    (("mvn",), None, "maven", "maven"),
    ((), {"java": "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2"}, "Java 17+",
     "default-jre-headless"),
    (("debootstrap",), None, "debootstrap", "podman runc catatonit debootstrap"),
])
def test_a_missing_tool_without_root_or_sudo_is_one_clear_error(
        tmp_path: Path, without: tuple[str, ...], stubs: dict[str, str] | None, what: str,
        packages: str) -> None:
    result = _check_tools(tmp_path, without, stubs=stubs)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"tests/run: {what} missing and cannot be installed: not root and no sudo.",
        f"tests/run: install the Debian packages {packages}, then run tests/run again."]
    assert "every tool is here" not in result.stdout


def test_a_missing_tool_as_root_without_apt_get_names_the_packages(tmp_path: Path) -> None:
    result = _check_tools(tmp_path, ("prometheus-alertmanager",), uid=0)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "tests/run: prometheus-alertmanager missing and there is no apt-get to install it: "
        "install prometheus prometheus-alertmanager."]


def test_quick_installs_the_project_only_when_the_venv_is_older_than_pyproject(
        tmp_path: Path) -> None:
    """``tests/run --quick`` runs pip into a virtualenv it has not installed into since
    pyproject.toml last changed, and not again after (a stub python records its calls)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    _stub(venv / "bin", "python", f'echo "$*" >> {calls}')
    bash = shutil.which("bash")
    assert bash is not None

    def quick() -> list[str]:
        calls.write_text("")
        result = subprocess.run([bash, str(SCRIPT), "--quick", "-k", "nothing"],
                                capture_output=True, text=True, timeout=60, check=False,
                                env={**os.environ, "STREAMDRIFT_VENV": str(venv),
                                     "STREAMDRIFT_TEST_WORKERS": "0"})
        assert result.returncode == 0, result.stdout + result.stderr
        return calls.read_text().splitlines()

    first = quick()
    assert [call for call in first if call.startswith("-m pip")] == [
        "-m pip install --quiet --upgrade pip", "-m pip install --quiet -e .[dev]"]
    assert first[-1].startswith("-m pytest")
    second = quick()
    assert [call for call in second if call.startswith("-m pip")] == []
    assert second[-1].startswith("-m pytest")
    # pyproject.toml newer than the last install: pip again.
    stamp = venv / ".tests-run-installed"
    old = (REPO / "pyproject.toml").stat().st_mtime - 60
    os.utime(stamp, (old, old))
    assert any(call.startswith("-m pip") for call in quick())
