"""What the fuzzing process adds around a target: faults recorded instead of ending the run,
and a mutation libFuzzer lacks."""

from __future__ import annotations

import hashlib
import json
import random
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

# Inputs written per kind of fault; the rest are counted only.
KEPT_PER_KIND = 3
# The share of mutations that repeat a piece of the input (``amplify``), and how often.
AMPLIFY_SHARE = 0.05
AMPLIFY_TIMES = (50, 200, 400, 1200, 4000)


def amplify(data: bytes, max_size: int, seed: int) -> bytes:
    """A mutation libFuzzer lacks: one to three bytes of the input repeated where they stand,
    hundreds or thousands of times (a number of 400 digits, 1,200 opening brackets). No
    smaller step towards such an input reaches new code, so coverage cannot lead there. Half
    the time the piece starts at a digit, a bracket or a dash, if the input has any.

    >>> amplify(b"[1]", 100, seed=7) == b"[" * 51 + b"1]"
    True
    """
    rng = random.Random(seed)
    starts = [index for index, byte in enumerate(data) if byte in _GROWING]
    if starts and rng.random() < 0.5:
        start = rng.choice(starts)
    else:
        start = rng.randrange(len(data)) if data else 0
    length = 1 if rng.random() < 0.6 else rng.randint(2, 3)
    piece = data[start:start + length] or b"["
    times = rng.choice(AMPLIFY_TIMES)
    return (data[:start] + piece * times + data[start:])[:max_size]


# Where a repeated piece makes a large number or a deep nesting.
_GROWING = frozenset(b"0123456789[{-")


def fault_kind(error: BaseException) -> str:
    """The exception's type and where it was raised: in streamdrift when the traceback
    passes there, else where the target checked the property that failed."""
    frames = traceback.extract_tb(error.__traceback__)
    inside = [frame for frame in frames if "/streamdrift/" in frame.filename] or [
        frame for frame in frames if frame.name != "expect"] or frames
    if not inside:
        return type(error).__name__
    frame = inside[-1]
    return f"{type(error).__name__} at {Path(frame.filename).name}:{frame.lineno} ({frame.name})"


def recorded(target: Callable[[bytes], None], folder: Path) -> Callable[[bytes], None]:
    """``target``, with the faults it raises written to ``folder`` instead of ending the
    run, counted with those of earlier processes of the same run."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = folder / "summary.json"
    counts: Counter[str] = Counter(
        json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else {})

    def run(data: bytes) -> None:
        try:
            target(data)
        except Exception as error:
            kind = fault_kind(error)
            counts[kind] += 1
            if counts[kind] <= KEPT_PER_KIND:
                name = f"finding-{hashlib.sha1(data).hexdigest()}"
                (folder / name).write_bytes(data)
                (folder / f"{name}.txt").write_text(
                    f"{kind}\n\n{traceback.format_exc()}", encoding="utf-8")
                print(f"FINDING {kind}: {folder / name}", flush=True)
            # libFuzzer ends the process without Python's exit handlers: keep it current.
            summary.write_text(json.dumps(counts, indent=1), encoding="utf-8")

    return run


def mutator(mutate: Callable[[bytes, int], bytes]) -> Callable[[bytes, int, int], bytes]:
    """libFuzzer's mutations (``mutate``, atheris.Mutate) and, for ``AMPLIFY_SHARE`` of them,
    ``amplify``."""

    def custom(data: bytes, max_size: int, seed: int) -> bytes:
        if random.Random(seed).random() < AMPLIFY_SHARE:
            return amplify(data, max_size, seed)
        return mutate(data, max_size)

    return custom
