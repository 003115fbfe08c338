"""RSS growth of a DriftMonitor, each case in a fresh process (``python -m benchmarks.memory``).

- ``wide``: 1,000 numeric features of exactly 20 bins, a window of 60 panes (6,000 messages
  in panes of 100). RSS is read after the inputs exist (baseline, a pool of payloads), then
  after constructing the monitor, then after feeding it 61 panes (so that every row of the
  ring of panes has been written, not only allocated) and taking one report, which is held
  as the service holds its snapshot.
- ``window --size N``: the 34-feature CLV set with a window of N messages in 10 panes, fed
  the same number of messages whatever N: the RSS growth must not depend on N.

Prints one JSON object: the RSS (MiB) at each step and the growth.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.messages import config_document, feature_set, make_baseline, stream_payloads
from streamdrift.baseline import build_baseline
from streamdrift.config import parse_config
from streamdrift.features import numeric_column
from streamdrift.monitor import DriftMonitor

MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process (``VmRSS`` in ``/proc/self/status``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _malloc_trim() -> None:
    """Give the C heap's free pages back to the system (glibc), so that memory freed while
    the inputs were built is not counted in "before" and then silently reused."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def load_lazy_modules() -> None:
    """Import what the monitor imports on first use (scipy's special functions, river's
    detectors), so that "before" holds the code every process loads once: a monitor's
    growth is its own data, not the libraries' code."""
    import river.drift  # noqa: F401
    import scipy.special  # noqa: F401


def settled_rss(trim: bool = False) -> int:
    gc.collect()
    if trim:
        _malloc_trim()
    return rss_bytes()


def _feed(monitor: DriftMonitor, pool: Sequence[bytes], messages: int, batch: int) -> None:
    fed = 0
    while fed < messages:
        size = min(batch, messages - fed)
        start = fed % len(pool)
        chunk = list(pool[start:start + size])
        if len(chunk) < size:
            chunk += pool[:size - len(chunk)]
        monitor.process_payloads(chunk)
        fed += size


def wide(features: int = 1000, bins: int = 20, panes: int = 60, pane_length: int = 100
         ) -> dict[str, Any]:
    names = [f"x{i:04d}" for i in range(features)]
    document = {
        "features": [{"name": name, "type": "numeric"} for name in names],
        "window": {"size": panes * pane_length, "panes": panes},
        "baseline": {"bins": bins},
        "detector": {"method": "adwin"},
    }
    config = parse_config(document, Path.cwd(), environ={})
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2000, features))
    baseline = build_baseline(config.features,
                              {name: numeric_column(reference[:, i].tolist())
                               for i, name in enumerate(names)},
                              dict.fromkeys(names, bins), 50, 0.5, "memory benchmark")
    assert all(baseline[name].n_bins == bins for name in names)
    pool = [json.dumps(dict(zip(names, row, strict=True))).encode()
            for row in np.round(rng.normal(size=(200, features)), 4).tolist()]
    del reference
    load_lazy_modules()
    before = settled_rss(trim=True)
    monitor = DriftMonitor(config, baseline, "memory benchmark")
    constructed = settled_rss()
    fed_messages = (panes + 1) * pane_length
    started = time.process_time()
    _feed(monitor, pool, fed_messages, pane_length)
    report = monitor.report()
    fed_cpu_s = time.process_time() - started
    after = settled_rss()
    trimmed = settled_rss(trim=True)
    assert report.window_messages == panes * pane_length
    return {"case": "wide", "features": features, "bins": bins, "panes": panes,
            "slots": monitor.layout.n_slots, "messages_fed": fed_messages,
            "panes_closed": monitor.panes_closed,
            "rss_before_mib": before / MIB, "rss_constructed_mib": constructed / MIB,
            "rss_after_mib": after / MIB,
            "growth_constructed_mib": (constructed - before) / MIB,
            "growth_mib": (after - before) / MIB, "growth_trimmed_mib": (trimmed - before) / MIB,
            "ring_mib": panes * monitor.layout.n_slots * 8 / MIB, "feed_cpu_s": fed_cpu_s}


def window(size: int, messages: int, panes: int = 10) -> dict[str, Any]:
    features = feature_set(34)
    config = parse_config(config_document(features, size, panes), Path.cwd(), environ={})
    from benchmarks.messages import generate_columns

    baseline = make_baseline(features, config, generate_columns(features, 5000, 0, stream=1))
    pool = stream_payloads(features, 10_000, 0, drift_from=None)
    load_lazy_modules()
    before = settled_rss(trim=True)
    monitor = DriftMonitor(config, baseline, "memory benchmark")
    _feed(monitor, pool, messages, 1000)
    report = monitor.report()
    after = settled_rss()
    trimmed = settled_rss(trim=True)
    return {"case": "window", "window_size": size, "panes": panes, "messages_fed": messages,
            "window_messages": report.window_messages,
            "rss_before_mib": before / MIB, "rss_after_mib": after / MIB,
            "growth_mib": (after - before) / MIB, "growth_trimmed_mib": (trimmed - before) / MIB}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("case", choices=("wide", "window"))
    parser.add_argument("--size", type=int, default=10_000, help="window: messages")
    parser.add_argument("--messages", type=int, default=200_000, help="window: messages fed")
    args = parser.parse_args(argv)
    result = wide() if args.case == "wide" else window(args.size, args.messages)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
