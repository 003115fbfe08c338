"""One fuzz run in its own process (``python -m tests.fuzz``), and what libFuzzer reports.

libFuzzer ends the process that runs it: each run gets a fresh interpreter (a long run,
several one after the other). It writes the inputs that reach new code to the first corpus
folder (a scratch folder here, shared by the processes of a run) and reads the others: the
seeds and the target's kept findings. Faults are recorded and the run goes on
(``--findings``), so that one run reports every kind of fault it meets.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.targets import (
    MAX_LEN,
    REGRESSION_CORPUS,
    REPO,
    seed_inputs,
    write_dictionary,
)

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.MULTILINE)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass(frozen=True)
class FuzzRun:
    """What one run did: inputs executed, coverage reached (libFuzzer's ``cov``: code edges
    of the instrumented modules, ``ft``: its finer features), the corpus it grew to, its
    wall time and its slowest input's (whole seconds); the faults met, by kind, with the
    inputs kept for them; the process's exit code and output."""

    target: str
    runs: int
    seconds: float
    coverage: int | None
    features: int | None
    corpus: int | None
    slowest_s: int | None
    faults: dict[str, int]
    findings: tuple[Path, ...]
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.findings and not self.faults

    def reproducer(self) -> str:
        """Each finding's bytes and traceback, how to replay it and keep it, and the end
        of the output."""
        lines = [f"fuzz target {self.target}: {sum(self.faults.values())} faulty input(s) "
                 f"of {len(self.faults)} kind(s), exit code {self.exit_code}"]
        lines += [f"  {count} x {kind}" for kind, count in self.faults.items()]
        for path in self.findings:
            data = path.read_bytes() if path.exists() else b""
            trace = path.with_name(path.name + ".txt")
            lines += ["", f"input {path} ({len(data)} bytes): {data[:2000]!r}"]
            if trace.exists():
                lines.append(trace.read_text(encoding="utf-8"))
            lines += [f"replay: python -c 'from pathlib import Path; "
                      f"from tests.fuzz.targets import TARGETS; "
                      f"TARGETS[\"{self.target}\"](Path(\"{path}\").read_bytes())'",
                      f"keep it: cp {path} {REGRESSION_CORPUS / self.target}/<what-it-is>"]
        lines += ["", "end of the output:", self.output[-4000:]]
        return "\n".join(lines)


# Inputs per process. atheris's comparison tracing keeps a reference to every result of a
# comparison that is not a bool or an int (numpy's element-wise masks, ~20 kB per decoding
# input), so a process grows until libFuzzer's memory limit stops it; a long run is a
# sequence of processes that share one corpus.
CHUNK_RUNS = 25_000


def run_target(target: str, runs: int, seed: int, work_dir: Path,
               timeout_s: float | None = None, input_timeout_s: int = 120,
               chunk_runs: int = CHUNK_RUNS) -> FuzzRun:
    """Fuzz ``target`` for ``runs`` inputs (the seeds and kept findings included) with
    libFuzzer's random seed ``seed`` (``seed + k`` for the k-th process of a long run), in
    ``work_dir`` (scratch corpus, findings). ``timeout_s`` bounds each process."""
    corpus = work_dir / "corpus"
    seeds = work_dir / "seeds"
    findings = work_dir / "findings"
    for folder in (corpus, seeds, findings):
        folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(seed_inputs(target)):
        (seeds / f"seed-{index:03d}").write_bytes(data)
    dictionary = write_dictionary(target, work_dir / f"{target}.dict")
    kept = REGRESSION_CORPUS / target
    # The same hash seed in every run: set and dict orders, hence the paths taken, repeat.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = 0
    seconds = 0.0
    outputs: list[str] = []
    artifacts: list[Path] = []
    exit_code = 0
    output = ""
    last: tuple[str, ...] | None = None
    slowest: int | None = None
    for process in itertools.count():
        if done >= runs:
            break
        command = [
            sys.executable, "-m", "tests.fuzz", target, f"--findings={findings}",
            f"-runs={min(chunk_runs, runs - done)}", f"-seed={seed + process}",
            f"-max_len={MAX_LEN[target]}", f"-dict={dictionary}",
            f"-artifact_prefix={findings}/", f"-timeout={input_timeout_s}",
            "-rss_limit_mb=2048", "-print_final_stats=1",
            str(corpus), str(seeds), *([str(kept)] if kept.is_dir() else []),
        ]
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=environment,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                timeout=timeout_s, check=False)
        seconds += time.monotonic() - started
        output = result.stdout
        stats = {name: int(value) for name, value in _STAT.findall(output)}
        statuses = _STATUS.findall(output)
        executed = stats.get("number_of_executed_units",
                             int(statuses[-1][0]) if statuses else 0)
        done += executed
        last = statuses[-1] if statuses else last
        if "slowest_unit_time_sec" in stats:
            slowest = max(slowest or 0, stats["slowest_unit_time_sec"])
        # libFuzzer's own: a crash outside the target's recording, a timeout, running out
        # of memory; not the slow inputs it reports (PyYAML takes long on some).
        found = [Path(path) for path in _ARTIFACT.findall(output)
                 if not Path(path).name.startswith("slow-unit-")]
        artifacts += found
        if result.returncode or found:
            exit_code = exit_code or result.returncode
            outputs.append(output)
        if executed == 0:  # it did not start: going on would not either
            outputs.append(output)
            exit_code = exit_code or result.returncode or 1
            break
    if not outputs or outputs[-1] is not output:
        outputs.append(output)
    summary = findings / "summary.json"
    faults: dict[str, int] = (json.loads(summary.read_text(encoding="utf-8"))
                              if summary.exists() else {})
    for path in artifacts:
        kind = f"libFuzzer {path.name.split('-')[0]}"
        faults[kind] = faults.get(kind, 0) + 1
    kept_inputs = sorted(path for path in findings.glob("finding-*")
                         if path.suffix != ".txt")
    return FuzzRun(
        target=target,
        runs=done,
        seconds=seconds,
        coverage=int(last[1]) if last else None,
        features=int(last[2]) if last else None,
        corpus=int(last[3]) if last else None,
        slowest_s=slowest,
        faults=faults,
        findings=tuple(kept_inputs + artifacts),
        exit_code=exit_code,
        output="\n".join(outputs),
    )
