#!/usr/bin/env python3
"""The long fuzz run: every fuzz target for a million inputs.

    python benchmarks/fuzz.py [--runs N] [--seed S] [--targets decoding,config,baseline]
                              [--jobs J] [--no-write]

Each target (tests/fuzz/targets.py) runs under atheris in processes of its own (a new one
every 25,000 inputs, on the same corpus), from its seeds and the faulty inputs kept in
tests/fuzz/corpus/<target>/; ``--jobs`` targets at a time (default 1: one after the
other). Faults do not stop a run: the inputs of each kind of fault (three at most) are
copied to tests/fuzz/corpus/<target>/, where the tests replay them, and printed with their
tracebacks. The results (inputs, time, coverage, faults) go to benchmarks/RESULTS.md,
between ``<!-- fuzz:start -->`` and ``<!-- fuzz:end -->``; the rest of that file is left as
it is. Exit code 1 when a run met a fault or did not finish.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def results_block(command: str, runs: list[FuzzRun], seed: int, started: datetime,
                  jobs: int) -> str:
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
    at_a_time = "one target at a time" if jobs == 1 else f"{jobs} targets at a time"
    lines = [
        FUZZ_START,
        f"`{command}` on {started:%Y-%m-%d}, {total_s / 3600:.1f} hours of fuzzing: atheris "
        f"{metadata.version('atheris')} (libFuzzer) on Python {platform.python_version()}, "
        f"{at_a_time}, libFuzzer seed {seed}, {platform.machine()} with "
        f"{os.cpu_count() or 1} cores shared with other work.",
        "",
        "| target | inputs | time | inputs/s | coverage (edges) | features | corpus | "
        "slowest input (s) | faulty inputs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Coverage is libFuzzer's count of the code edges reached in the instrumented modules "
        "(streamdrift and the targets; PyYAML is not instrumented, see "
        "[docs/testing.md](../docs/testing.md#fuzzing)); features are its finer measure "
        "(edges with hit counts, comparisons); the corpus is the inputs it kept for "
        "reaching something new; the slowest input is in whole seconds, as libFuzzer counts them. "
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
    parser.add_argument("--jobs", type=int, default=1,
                        help="targets fuzzed at the same time (default 1)")
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
        f" --targets {','.join(names)}" if names != list(TARGETS) else "") + (
        f" --jobs {args.jobs}" if args.jobs != 1 else "")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    started = datetime.now(UTC)
    said = threading.Lock()  # one target's report is not cut by another's

    with tempfile.TemporaryDirectory(prefix="streamdrift-fuzz-") as scratch:
        def fuzz(name: str) -> FuzzRun:
            say(f"{name}: {args.runs:,} inputs")
            began = time.monotonic()
            run = run_target(name, args.runs, args.seed, Path(scratch) / name)
            with said:
                say(f"{name}: {run.runs:,} inputs in {time.monotonic() - began:.0f} s, "
                    f"coverage {run.coverage}, features {run.features}, corpus {run.corpus}, "
                    f"{sum(run.faults.values())} faulty input(s), exit code {run.exit_code}")
                if not run.ok:
                    print(run.reproducer(), flush=True)
                    if not args.no_write:
                        for copy in keep_findings(run):
                            say(f"kept {copy.relative_to(REPO)}")
            return run

        # Each target runs in processes of its own: a thread per target only waits on them.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(fuzz, names))
    if not args.no_write:
        write_block(RESULTS, results_block(command, runs, args.seed, started, args.jobs))
        say(f"wrote the fuzz block of {RESULTS.relative_to(REPO)}")
    finished = all(run.ok and run.runs >= args.runs for run in runs)
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
