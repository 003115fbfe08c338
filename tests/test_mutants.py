"""Hand-written mutants of the bugs we fear most: each must fail the test named for it.

Each mutant is applied to a copy of the package (the checkout is never touched), and the
named test runs against the copy in a fresh interpreter. The test here passes only when
that test *fails* on the mutant. The full mutation run (mutmut, docs/testing.md) is wider
but takes about ten minutes; these four run in seconds, in every CI run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str  # path relative to the repository
    original: str  # must occur exactly once in the module
    mutated: str
    killed_by: str  # a pytest node id


MUTANTS = [
    Mutant(
        "a same-bin baseline swap keeps the old baseline's KL sums",
        "streamdrift/monitor.py",
        "        self.histogram.window_listeners[self.histogram.window_listeners.index(\n"
        "            self.kl.on_change)] = kl.on_change\n"
        "        self.kl = kl\n",
        "",
        "tests/test_monitor.py::test_a_new_baseline_with_the_same_bins_equals_a_fresh_monitor"
        "_on_it",
    ),
    Mutant(
        "refilled messages are counted again",
        "streamdrift/monitor.py",
        "        self._counting = False\n        try:\n",
        "        self._counting = True\n        try:\n",
        "tests/test_monitor.py::test_refilled_messages_fill_the_window_without_being_counted",
    ),
    Mutant(
        "streamdrift_bin_total exports the window's counts, not the counts since start",
        "streamdrift/exporter.py",
        "enumerate(feature.bin_totals)",
        "enumerate(feature.window_counts)",
        "tests/test_exporter.py::test_bin_totals_count_every_value_since_start_not_the_window",
    ),
    Mutant(
        "drift decided with >= at the threshold",
        "streamdrift/monitor.py",
        "flags = enough & (self.kl.values() > self._thresholds) & (adjusted <= alpha)",
        "flags = enough & (self.kl.values() >= self._thresholds) & (adjusted <= alpha)",
        "tests/test_monitor.py::test_the_threshold_itself_is_not_drift",
    ),
]


def _copy_project(destination: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for folder in ("streamdrift", "tests"):
        shutil.copytree(REPO / folder, destination / folder, ignore=ignore)
    for name in ("pyproject.toml", "config.yaml", "README.md"):
        shutil.copy2(REPO / name, destination / name)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.killed_by.split("::")[1] for m in MUTANTS])
def test_the_named_test_kills_the_mutant(mutant: Mutant, tmp_path: Path) -> None:
    _copy_project(tmp_path)
    module = tmp_path / mutant.module
    source = module.read_text(encoding="utf-8")
    assert source.count(mutant.original) == 1, (
        f"{mutant.module} no longer holds the code of the mutant {mutant.name!r} exactly "
        "once: update the mutant to the new code")
    module.write_text(source.replace(mutant.original, mutant.mutated), encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), mutant.killed_by],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600,
        check=False)
    output = result.stdout + result.stderr
    # Exit code 1: tests ran and failed. 2-5 would mean the mutant broke collection or the
    # node id is gone, which proves nothing.
    assert result.returncode == 1, (
        f"the mutant {mutant.name!r} was not caught by {mutant.killed_by} "
        f"(pytest exit code {result.returncode}):\n{output[-3000:]}")
    assert "1 failed" in output, output[-3000:]
