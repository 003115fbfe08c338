"""Bounded coverage-guided fuzzing of the inputs: messages, config files, baseline files.

First the inputs a fuzz run starts from and the faulty inputs found so far
(tests/fuzz/corpus/<target>/), in this process; then each target under atheris for a fixed
number of inputs with a fixed seed, in a process of its own (libFuzzer ends the process
that runs it). benchmarks/fuzz.py runs the same targets for a million inputs each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.libfuzzer import run_target
from tests.fuzz.targets import REGRESSION_CORPUS, TARGETS, regression_inputs, seed_inputs

# Inputs per target, the seeds and kept inputs included: 5 to 10 s each on 2 busy cores.
BOUNDED_RUNS = {"decoding": 1000, "config": 500, "baseline": 2000}
SEED = 1

KEPT = [pytest.param(target, path, id=f"{target}/{path.name}")
        for target in TARGETS for path in regression_inputs(target)]


def test_every_target_has_a_folder_of_kept_findings() -> None:
    assert sorted(path.name for path in REGRESSION_CORPUS.iterdir() if path.is_dir()) \
        == sorted(TARGETS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_seeds_hold_every_property(target: str) -> None:
    for data in seed_inputs(target):
        TARGETS[target](data)


@pytest.mark.parametrize(("target", "path"), KEPT)
def test_a_kept_finding_holds_every_property(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_bounded_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    run = run_target(target, BOUNDED_RUNS[target], SEED, tmp_path, timeout_s=120)
    assert run.ok, run.reproducer()
    assert run.runs >= BOUNDED_RUNS[target], run.output[-3000:]
