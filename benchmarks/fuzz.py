#!/usr/bin/env python3
"""The long fuzz run: every fuzz target for a million inputs, one after the other.

    python benchmarks/fuzz.py [--runs N] [--seed S] [--targets decoding,config,baseline]
                              [--no-write]

Each target (tests/fuzz/targets.py) runs under atheris in one process of its own, from its
seeds and the faulty inputs kept in tests/fuzz/corpus/<target>/. Faults do not stop a run:
the inputs of each kind of fault (three at most) are copied to tests/fuzz/corpus/<target>/,
where the tests replay them, and printed with their tracebacks. The results (inputs, time,
coverage, faults) go to benchmarks/RESULTS.md, between ``<!-- fuzz:start -->`` and
``<!-- fuzz:end -->``; the rest of that file is left as it is. Exit code 1 when a run met a
fault or did not finish.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fuzz.libfuzzer import FuzzRun, run_target  # noqa: E402
from tests.fuzz.targets import REGRESSION_CORPUS, TARGETS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FUZZ_START = "<!-- fuzz:start -->"
FUZZ_END = "<!-- fuzz:end -->"
DEFAULT_RUNS = 1_000_000


def say(text: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {text}", flush=True)


def keep_findings(run: FuzzRun) -> list[Path]:
    """Copy the run's faulty inputs to the target's corpus folder; returns the copies."""
    folder = REGRESSION_CORPUS / run.target
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for path in run.findings:
        if path.exists():
            copy = folder / path.name
            shutil.copyfile(path, copy)
            kept.append(copy)
    return kept


def results_block(command: str, runs: list[FuzzRun], seed: int, started: datetime) -> str:
    """The fuzz section of RESULTS.md, between its markers."""
    rows = []
    for run in runs:
        faults = sum(run.faults.values())
        measured = [f"{value:,}" if value is not None else "-"
                    for value in (run.coverage, run.features, run.corpus, run.slowest_s)]
        rows.append(
            f"| `{run.target}` | {run.runs:,} | {run.seconds / 60:.1f} min | "
            f"{run.runs / run.seconds:,.0f} | {' | '.join(measured)} | {faults:,} |")
    found = [f"- `{run.target}`: {count:,} x {kind}" for run in runs
             for kind, count in run.faults.items()]
    total_s = sum(run.seconds for run in runs)
    lines = [
        FUZZ_START,
        f"`{command}` on {started:%Y-%m-%d}, {total_s / 3600:.1f} hours: atheris "
        f"{metadata.version('atheris')} (libFuzzer) on Python {platform.python_version()}, "
        f"one process at a time, libFuzzer seed {seed}, {platform.machine()} with "
        f"{os.cpu_count() or 1} cores shared with other work.",
        "",
        "| target | inputs | time | inputs/s | coverage (edges) | features | corpus | "
        "slowest input (s) | faulty inputs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Coverage is libFuzzer's count of the code edges reached in the instrumented modules "
        "(streamdrift, PyYAML, the targets); features are its finer measure (edges with hit "
        "counts, comparisons); the corpus is the inputs it kept for reaching something new; "
        "the slowest input is in whole seconds, as libFuzzer counts them. "
        "What each target checks: [docs/testing.md](../docs/testing.md#fuzzing).",
        "",
        "Faults met in this run:" if found else "No fault in this run.",
        *found,
        FUZZ_END,
    ]
    return "\n".join(lines)


def write_block(path: Path, block: str) -> None:
    """Put ``block`` in place of the fuzz block of ``path``, or at its end under a heading."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if FUZZ_START in text and FUZZ_END in text:
        head, rest = text.split(FUZZ_START, 1)
        tail = rest.split(FUZZ_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + "## Fuzzing\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/fuzz.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"inputs per target, seeds included (default {DEFAULT_RUNS:,})")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's seed (default 1)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated targets (default {','.join(TARGETS)})")
    parser.add_argument("--no-write", action="store_true",
                        help="leave benchmarks/RESULTS.md and the kept findings as they are")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}: one of {', '.join(TARGETS)}")
    command = "python benchmarks/fuzz.py" + (
        f" --runs {args.runs}" if args.runs != DEFAULT_RUNS else "") + (
        f" --seed {args.seed}" if args.seed != 1 else "") + (
        f" --targets {','.join(names)}" if names != list(TARGETS) else "")
    started = datetime.now(UTC)
    runs: list[FuzzRun] = []
    with tempfile.TemporaryDirectory(prefix="streamdrift-fuzz-") as scratch:
        for name in names:
            say(f"{name}: {args.runs:,} inputs")
            began = time.monotonic()
            run = run_target(name, args.runs, args.seed, Path(scratch) / name)
            runs.append(run)
            say(f"{name}: {run.runs:,} inputs in {time.monotonic() - began:.0f} s, coverage "
                f"{run.coverage}, features {run.features}, corpus {run.corpus}, "
                f"{sum(run.faults.values())} faulty input(s), exit code {run.exit_code}")
            if not run.ok:
                print(run.reproducer(), flush=True)
                if not args.no_write:
                    for copy in keep_findings(run):
                        say(f"kept {copy.relative_to(REPO)}")
    if not args.no_write:
        write_block(RESULTS, results_block(command, runs, args.seed, started))
        say(f"wrote the fuzz block of {RESULTS.relative_to(REPO)}")
    finished = all(run.ok and run.runs >= args.runs for run in runs)
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
