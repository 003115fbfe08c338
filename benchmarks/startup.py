"""How long a command takes from ``exec`` to exit, beside a bare ``python -c pass``.

Each command runs in a fresh interpreter (``python -m streamdrift ...``, as the console
script does), the commands interleaved (A B C ... A B C ...), wall-clock time per run,
median of the repeats. ``check`` and ``baseline show`` read deploy/compose's config and
baseline (no broker is asked anything).

    python -m benchmarks.startup [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "deploy" / "compose"

# label -> arguments after the interpreter
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import numpy'": ["-c", "import numpy"],
    "streamdrift --help": ["-m", "streamdrift", "--help"],
    "streamdrift check": ["-m", "streamdrift", "check", "--config",
                          str(COMPOSE / "config.yaml")],
    "streamdrift baseline show": ["-m", "streamdrift", "baseline", "show",
                                  str(COMPOSE / "baseline.json")],
}
# The commands that must answer at once (the others are for scale).
STREAMDRIFT_COMMANDS = ("streamdrift --help", "streamdrift check", "streamdrift baseline show")
BARE = "python -c pass"


def _run_once(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=REPO, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(repeats: int) -> dict[str, list[float]]:
    """Seconds per run of every command, ``repeats`` runs each, interleaved, after one
    unmeasured run of each (the file cache warm, as for a user's second command)."""
    for arguments in COMMANDS.values():
        _run_once(arguments)
    samples: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(repeats):
        for label, arguments in COMMANDS.items():
            samples[label].append(_run_once(arguments))
    return samples


def table(samples: dict[str, list[float]]) -> list[str]:
    bare = statistics.median(samples[BARE])
    lines = ["| command | wall ms (median) | min - max ms | x `python -c pass` |",
             "|---|---:|---:|---:|"]
    for label, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| `{label}` | {median * 1000:.0f} | {min(values) * 1000:.0f} - "
                     f"{max(values) * 1000:.0f} | {median / bare:.1f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    for line in table(measure(args.repeats)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
