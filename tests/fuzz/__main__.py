"""Runs one fuzz target under atheris (libFuzzer), in this process until it ends.

    python -m tests.fuzz TARGET [--findings=DIR] [LIBFUZZER FLAGS] [CORPUS DIR...]

from the repository's root, e.g. ``python -m tests.fuzz decoding -runs=100000 -seed=1
corpus/``. streamdrift is instrumented for coverage, PyYAML is not (its pure-Python
parser, instrumented, runs some 30 times slower, and it is not the code under test); the
mutations are
libFuzzer's and, now and then, ``harness.amplify``'s. libFuzzer ends the process at the end
of ``-runs``, or at the first finding, which it writes to a file (``-artifact_prefix``) and
prints with its traceback. With ``--findings=DIR`` the run goes on instead: each finding is
written to DIR (``finding-<sha1>``, its traceback in ``finding-<sha1>.txt``, three inputs
at most per kind of fault) and counted in ``DIR/summary.json``. ``tests.fuzz.libfuzzer``
runs this with seeds and a dictionary; benchmarks/fuzz.py and tests/test_fuzz.py use that.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from tests.fuzz.harness import mutator, recorded

TARGET_NAMES = ("decoding", "config", "baseline")


def main(argv: list[str]) -> None:
    import atheris
    from atheris.import_hook import instrument_imports

    if len(argv) < 2 or argv[1] not in TARGET_NAMES:
        sys.exit(f"usage: python -m tests.fuzz {{{','.join(TARGET_NAMES)}}} "
                 "[--findings=DIR] [libFuzzer flags] [corpus dirs]")
    findings = [arg.split("=", 1)[1] for arg in argv[2:] if arg.startswith("--findings=")]
    flags = [arg for arg in argv[2:] if not arg.startswith("--findings=")]
    # As in the test suite (pyproject.toml's filterwarnings): a RuntimeWarning is an error.
    warnings.simplefilter("error", RuntimeWarning)
    with instrument_imports(include=["streamdrift", "tests.fuzz.targets"]):
        from tests.fuzz import targets
    target = targets.TARGETS[argv[1]]
    if findings:
        target = recorded(target, Path(findings[-1]))
    # Built before the first input, so that no input pays for it.
    targets.seed_inputs(argv[1])
    # atheris.Mutate is looked up at each call: Fuzz() puts libFuzzer's in its place.
    atheris.Setup([argv[0], *flags], target, custom_mutator=mutator(
        lambda data, max_size: atheris.Mutate(data, max_size)))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
