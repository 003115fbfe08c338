#!/usr/bin/env python3
"""How soon streamdrift's detectors flag a change, and how often they flag nothing.

    python -m benchmarks.detection [--quick] [--seeds 200] [--null-messages 50000000]
                                   [--seed 0] [--write | --no-write]

Two seeded simulations, through ``DriftMonitor.process_columns`` and the monitor's own
decisions (no detector is re-implemented here):

- **False alarms.** For each window (1,000, 5,000 and 20,000 messages in 10 panes), streams
  with no change: monitors of 20 independent features (five each of a normal, a lognormal,
  a Poisson(2) and a 5-category law), each feature with a reference of its own (50,000
  values, fresh for every seed, so that the finite baseline's error is in the count),
  with the scan at its default 1 false alarm per 10^6 messages and the sequential test
  (``mixture_cusum``, arl0 10^6). Counted per feature: the scan's alarms
  (``scan_alarms_total``), the sequential test's (``sequential_alarms_total``), and the
  window rule's, as the rising edges of its decision at each pane close (a pane observer):
  KL above the threshold and p at most alpha, the decision of a one-feature monitor (the
  report's ``p_value``), and as the report has it (``flagged_by``, Holm over the 20
  features). The rate per 10^6 feature-messages and its 95 % upper bound (Poisson).
- **Delays.** One feature, a window of 5,000 messages in 10 panes; a fresh reference of
  50,000 values per seed; then 25,000 values of the reference's law plus an offset drawn
  uniformly from one pane (0 to 499), the onset; then the changed law for a horizon of
  30,000 values. Cases: a normal feature (20 equal-frequency bins) shifted by 0.25, 0.5 and
  1 sd, and a 5-category feature whose change has a KL of 0.043. The same stream goes to
  three monitors: the window alone (``scan.enabled: false``, ``detector.method: none``),
  the default (window + scan; its ADWIN over the KL series counts change points and flags
  nothing), and window + scan + ``detector.method: mixture_cusum``. The
  delay is ``first_flag_messages`` minus the onset: the changed values read when the first
  flag was raised. A seed flagged before its onset is a false flag, counted and left out of
  the delays.

It reproduces, for streamdrift's detectors, this table of an earlier study (one feature,
20 equal-frequency bins of a 50,000-value reference, change after 25,000 values, detectors
calibrated to one false alarm per 10^6 values, medians over 200 seeds; values after the
change):

    | detector                                 | 0.25 sd | 0.5 sd | 1.0 sd | categorical |
    | window of 5,000, KL > 0.05 and p < 0.001 | never   | 3,500  | 1,500  | 56,250      |
    | multi-scale scan every 250               | 750     | 250    | 250    | 500         |
    | mixture CUSUM a=100,400                  | 835     | 222    | 64     | 411         |
    | lower limit ln(10^6)/KL                  | 450     | 112    | 29     | 325         |

A full run writes its section of benchmarks/RESULTS.md (between ``<!-- detection:start -->``
and ``<!-- detection:end -->``; the rest of the file is left as it is); ``--quick`` (a few
seeds and messages, for tests) writes nothing unless ``--write``. benchmarks/run.py runs
this too and keeps the section in the file it writes.
"""

from __future__ import annotations

import argparse
import importlib
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from scipy.stats import chi2, norm  # noqa: E402

from streamdrift.config import Config, parse_config  # noqa: E402
from streamdrift.features import FeatureColumn  # noqa: E402
from streamdrift.monitor import DriftMonitor, PaneSnapshot, reference_baseline  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DETECTION_START = "<!-- detection:start -->"
DETECTION_END = "<!-- detection:end -->"
SECTION_TITLE = "## Detection: delays and false alarms"
# A section added to a file that has none goes before the first of these that it has.
SECTION_BEFORE = ("## Throughput against the number of features", "## Soak", "## Fuzzing")

SEED = 0
REFERENCE_VALUES = 50_000
PANES = 10
# Windows of the false-alarm count, in messages.
NULL_WINDOWS = (1_000, 5_000, 20_000)
FEATURES_PER_LAW = 5
NULL_MESSAGES = 200_000_000  # feature-messages per window
NULL_SEEDS = 20
DELAY_WINDOW = 5_000
ONSET = 25_000
HORIZON = 30_000
DELAY_SEEDS = 200
QUICK_SEEDS = 6
QUICK_NULL_MESSAGES = 400_000
# Generate and feed streams in chunks of this many messages.
CHUNK = 50_000
# The stated rates, per 10^6 messages of a feature: the scan's default and the sequential
# test's (10^6 / arl0, values = messages: no value is missing here).
SCAN_RATE = 1.0
ARL0 = 1_000_000.0
PRIOR_STRENGTHS = (100.0, 400.0)
CONFIDENCE = 0.95

CATEGORIES = np.array([f"c{index}" for index in range(5)], dtype=object)
BASE_WEIGHTS = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
# The changed categorical law: 0.51 of the way from the base to uniform, a KL of 0.043.
TILTED_WEIGHTS = 0.49 * BASE_WEIGHTS + 0.51 * np.full(5, 0.2)

Sampler = Callable[[np.random.Generator, int], npt.NDArray[Any]]

# Detector sets of the delays: (key, label, config sections).
DETECTOR_SETS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("window", "window alone (KL > 0.1 and p <= 0.001)",
     {"scan": {"enabled": False}, "detector": {"method": "none"}}),
    ("default", "default: window + scan", {}),
    ("sequential", "window + scan + mixture_cusum",
     {"detector": {"method": "mixture_cusum",
                   "params": {"arl0": ARL0, "prior_strengths": list(PRIOR_STRENGTHS)}}}),
)
# The earlier study's medians, for the table's last rows: (label, by case).
EARLIER_STUDY = (
    ("window of 5,000, KL > 0.05 and p < 0.001", ("never", "3,500", "1,500", "56,250")),
    ("multi-scale scan every 250", ("750", "250", "250", "500")),
    ("mixture CUSUM a=100,400", ("835", "222", "64", "411")),
    ("lower limit ln(10^6)/KL", ("450", "112", "29", "325")),
)


def say(text: str = "") -> None:
    print(text, flush=True)


# ---- laws ----------------------------------------------------------------------------------

def _normal(shift: float) -> Sampler:
    return lambda rng, size: rng.normal(shift, 1.0, size)


def _categorical(weights: npt.NDArray[np.float64]) -> Sampler:
    return lambda rng, size: CATEGORIES[rng.choice(len(CATEGORIES), size=size, p=weights)]


def kl(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """``KL(p || q) = sum p_i ln(p_i / q_i)``.

    >>> round(kl(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 4)
    0.1438
    """
    return float(np.sum(p * np.log(p / q)))


def binned_normal_kl(shift: float, bins: int = 20) -> float:
    """The KL of a unit normal shifted by ``shift`` sd against the unit normal, both counted in
    ``bins`` equal-frequency bins of the unit normal (what the baseline's bins estimate).

    >>> round(binned_normal_kl(1.0), 4)  # below the unbinned 0.5
    0.4719
    """
    edges = norm.ppf(np.arange(1, bins) / bins)
    shifted = np.diff(np.concatenate(([0.0], norm.cdf(edges - shift), [1.0])))
    return kl(shifted, np.full(bins, 1.0 / bins))


@dataclass(frozen=True)
class Case:
    label: str
    type: str  # the feature's type: numeric or categorical
    reference: Sampler
    changed: Sampler
    binned_kl: float

    @property
    def lower_limit(self) -> float:
        """``ln(10^6) / KL``: the fewest changed values a test at one false alarm per 10^6
        values needs, on average, to see the change."""
        return math.log(1e6) / self.binned_kl


CASES: tuple[Case, ...] = (
    *(Case(f"normal, +{shift:g} sd", "numeric", _normal(0.0), _normal(shift),
           binned_normal_kl(shift)) for shift in (0.25, 0.5, 1.0)),
    Case(f"5 categories, KL {kl(TILTED_WEIGHTS, BASE_WEIGHTS):.3f}", "categorical",
         _categorical(BASE_WEIGHTS), _categorical(TILTED_WEIGHTS),
         kl(TILTED_WEIGHTS, BASE_WEIGHTS)),
)
# The laws of the false-alarm streams: (name, type, sampler).
NULL_LAWS: tuple[tuple[str, str, Sampler], ...] = (
    ("normal", "numeric", _normal(0.0)),
    ("lognormal", "numeric", lambda rng, size: rng.lognormal(0.0, 1.0, size)),
    ("poisson(2)", "numeric", lambda rng, size: rng.poisson(2.0, size).astype(np.float64)),
    ("5 categories", "categorical", _categorical(BASE_WEIGHTS)),
)


def column(values: npt.NDArray[Any]) -> FeatureColumn:
    return FeatureColumn(values, np.zeros(len(values), dtype=np.int8))


def config(features: Sequence[tuple[str, str]], window: int,
           sections: dict[str, Any] | None = None) -> Config:
    """The defaults with ``features`` ((name, type) pairs), a window of ``window`` messages in
    ``PANES`` panes, and ``sections`` on top."""
    document: dict[str, Any] = {
        "features": [{"name": name, "type": kind} for name, kind in features],
        "window": {"size": window, "panes": PANES},
        **(sections or {}),
    }
    return parse_config(document, Path.cwd(), environ={})


# ---- false alarms --------------------------------------------------------------------------

# The counts: the window rule as a one-feature monitor decides it, as the report has it (Holm
# over the monitor's features), the scan, the sequential test.
NULL_DETECTORS = ("window", "window_holm", "scan", "sequential")


@dataclass
class NullCount:
    window: int
    feature_messages: int = 0
    seeds: int = 0
    # detector -> law -> alarms
    alarms: dict[str, dict[str, int]] = field(default_factory=lambda: {
        detector: dict.fromkeys((name for name, _, _ in NULL_LAWS), 0)
        for detector in NULL_DETECTORS})
    seconds: float = 0.0

    def total(self, detector: str) -> int:
        return sum(self.alarms[detector].values())


class WindowEdges:
    """A pane observer that counts, per feature, the pane closes at which the window rule
    starts to flag (rising edges): unadjusted (a one-feature monitor's decision) and as the
    report's ``flagged_by`` has it."""

    def __init__(self, n_features: int) -> None:
        self.flagged = np.zeros(n_features, dtype=bool)
        self.flagged_holm = np.zeros(n_features, dtype=bool)
        self.edges = np.zeros(n_features, dtype=np.int64)
        self.edges_holm = np.zeros(n_features, dtype=np.int64)

    def __call__(self, snapshot: PaneSnapshot) -> None:
        features = list(snapshot.report.features.values())
        now = np.array([f.kl is not None and f.p_value is not None and f.kl > f.threshold
                        and f.p_value <= f.alpha for f in features])
        holm = np.array(["window" in f.flagged_by for f in features])
        self.edges += now & ~self.flagged
        self.edges_holm += holm & ~self.flagged_holm
        self.flagged, self.flagged_holm = now, holm


def count_null(window: int, seeds: int, messages: int, seed: int = SEED,
               progress: bool = True) -> NullCount:
    """False alarms on ``seeds`` streams of ``messages`` messages without change, each through
    a monitor of ``FEATURES_PER_LAW`` features of every law of ``NULL_LAWS`` (module
    docstring)."""
    names = [(f"law{law}_{copy}", kind, sample)
             for law, (_, kind, sample) in enumerate(NULL_LAWS)
             for copy in range(FEATURES_PER_LAW)]
    law_of = [name for name, _, _ in NULL_LAWS for _ in range(FEATURES_PER_LAW)]
    monitor_config = config([(name, kind) for name, kind, _ in names], window, {
        "scan": {"enabled": True, "false_alarms_per_million": SCAN_RATE},
        "detector": {"method": "mixture_cusum",
                     "params": {"arl0": ARL0, "prior_strengths": list(PRIOR_STRENGTHS)}}})
    result = NullCount(window)
    started = time.monotonic()
    for index in range(seeds):
        rng = np.random.default_rng([seed, 1, window, index])
        baseline = reference_baseline(monitor_config, {
            name: column(sample(rng, REFERENCE_VALUES)) for name, _, sample in names})
        monitor = DriftMonitor(monitor_config, baseline)
        edges = WindowEdges(len(names))
        monitor.pane_observers.append(edges)
        for start in range(0, messages, CHUNK):
            size = min(CHUNK, messages - start)
            monitor.process_columns([column(sample(rng, size)) for _, _, sample in names])
        report = monitor.report()
        counts = {
            "window": edges.edges.tolist(),
            "window_holm": edges.edges_holm.tolist(),
            "scan": [f.scan_alarms_total for f in report.features.values()],
            "sequential": [f.sequential_alarms_total for f in report.features.values()],
        }
        for detector, per_feature in counts.items():
            for law, count in zip(law_of, per_feature, strict=True):
                result.alarms[detector][law] += count
        result.feature_messages += messages * len(names)
        result.seeds += 1
        if progress:
            say(f"  window {window:,}, seed {index + 1}/{seeds}: "
                + ", ".join(f"{d} {result.total(d)}" for d in NULL_DETECTORS)
                + f" alarms in {result.feature_messages:,} feature-messages "
                f"({time.monotonic() - started:.0f} s)")
    result.seconds = time.monotonic() - started
    return result


def poisson_upper(count: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided upper confidence bound of a Poisson mean from one ``count`` (exact,
    Garwood).

    >>> round(poisson_upper(0), 3), round(poisson_upper(10), 2)
    (2.996, 16.96)
    """
    return float(chi2.ppf(confidence, 2 * (count + 1)) / 2)


# ---- delays --------------------------------------------------------------------------------

@dataclass
class Delays:
    """One case and detector set over the seeds: the delays of the seeds flagged within the
    horizon, how many were not, how many were flagged before the onset (left out), and by
    which detector the first flag came."""

    delays: list[int] = field(default_factory=list)
    missed: int = 0
    early: int = 0
    first_by: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return len(self.delays) + self.missed

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the delays, a missed seed counting as an endless delay
        (linear between the two nearest; endless when either is).

        >>> Delays([10, 20, 30], missed=1).quantile(0.5), Delays([10], 1).quantile(0.9)
        (25.0, inf)
        """
        values = np.array(sorted(self.delays) + [math.inf] * self.missed)
        if len(values) == 0:
            return math.nan
        position = q * (len(values) - 1)
        low, high = values[math.floor(position)], values[math.ceil(position)]
        if math.isinf(high):
            return math.inf
        return float(low + (high - low) * (position - math.floor(position)))

    @property
    def detected(self) -> float:
        return len(self.delays) / self.valid if self.valid else math.nan


def first_flag(monitor: DriftMonitor, name: str) -> tuple[int | None, str | None]:
    feature = monitor.report().features[name]
    return feature.first_flag_messages, feature.first_flag_detector


def run_delays(case: Case, case_index: int, seeds: int, seed: int = SEED,
               window: int = DELAY_WINDOW, onset: int = ONSET, horizon: int = HORIZON,
               sets: Sequence[str] | None = None) -> dict[str, Delays]:
    """The detector sets of ``DETECTOR_SETS`` (``sets`` of them, by key, when given) on the
    same ``seeds`` streams of ``case`` (module docstring): the onset at ``onset`` plus an
    offset drawn uniformly within a pane. ``case_index`` picks the streams' generators: the
    first d seeds are the same whatever ``seeds`` is."""
    configs = {key: config([("x", case.type)], window, sections)
               for key, _, sections in DETECTOR_SETS if sets is None or key in sets}
    found = {key: Delays() for key in configs}
    pane = window // PANES
    for draw in range(seeds):
        rng = np.random.default_rng([seed, 2, case_index, draw])
        # The detectors do not change the bins: one baseline serves every set.
        baseline = reference_baseline(next(iter(configs.values())), {
            "x": column(case.reference(rng, REFERENCE_VALUES))})
        start = onset + int(rng.integers(0, pane))
        before = column(case.reference(rng, start))
        after = case.changed(rng, horizon)
        for key, monitor_config in configs.items():
            monitor = DriftMonitor(monitor_config, baseline)
            monitor.process_columns([before])
            messages, detector = first_flag(monitor, "x")
            if messages is not None:
                found[key].early += 1
                continue
            for chunk in range(0, horizon, pane):
                monitor.process_columns([column(after[chunk:chunk + pane])])
                messages, detector = first_flag(monitor, "x")
                if messages is not None:
                    break
            result = found[key]
            if messages is None:
                result.missed += 1
            else:
                result.delays.append(messages - start)
                assert detector is not None
                result.first_by[detector] = result.first_by.get(detector, 0) + 1
    return found


# ---- the report ----------------------------------------------------------------------------

def _count(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "never" if math.isinf(value) else f"{value:,.0f}"


def _rate(alarms: float, feature_messages: int) -> float:
    return alarms / feature_messages * 1e6


def _per_million(rate: float) -> str:
    """A rate per 10^6, with three decimals under 0.1.

    >>> _per_million(1.4999), _per_million(0.015), _per_million(0.0)
    ('1.50', '0.015', '0')
    """
    if rate == 0:
        return "0"
    return f"{rate:.2f}" if rate >= 0.1 else f"{rate:.3f}"


STATED = {"window": "none", "window_holm": "none", "scan": f"{SCAN_RATE:g}",
          "sequential": f"{1e6 / ARL0:g} (at most)"}
NULL_LABELS = {
    "window": "window rule, one feature (KL > 0.1 and p <= 0.001)",
    "window_holm": "window rule as reported (Holm over the 20 features)",
    "scan": "scan (`scan_alarms_total`)",
    "sequential": "mixture_cusum (`sequential_alarms_total`)",
}


def null_table(counts: Sequence[NullCount]) -> list[str]:
    lines = ["| window | detector | alarms | feature-messages | per 10^6 | "
             f"{CONFIDENCE:.0%} upper bound | stated per 10^6 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for count in counts:
        for detector in NULL_DETECTORS:
            alarms = count.total(detector)
            lines.append(
                f"| {count.window:,} / {PANES} | {NULL_LABELS[detector]} | {alarms:,} | "
                f"{count.feature_messages:,} | "
                f"{_per_million(_rate(alarms, count.feature_messages))} | "
                f"{_per_million(_rate(poisson_upper(alarms), count.feature_messages))} | "
                f"{STATED[detector]} |")
    return lines


def scan_by_law_table(counts: Sequence[NullCount]) -> list[str]:
    laws = [name for name, _, _ in NULL_LAWS]
    lines = ["| window | " + " | ".join(laws) + " |", "|---|" + "---:|" * len(laws)]
    for count in counts:
        per_law = count.feature_messages // len(laws)
        cells = [f"{count.alarms['scan'][law]} "
                 f"({_per_million(_rate(count.alarms['scan'][law], per_law))})"
                 for law in laws]
        lines.append(f"| {count.window:,} / {PANES} | " + " | ".join(cells) + " |")
    return lines


def delay_table(delays: Sequence[dict[str, Delays]]) -> list[str]:
    lines = ["| detectors | " + " | ".join(case.label for case in CASES) + " |",
             "|---|" + "---:|" * len(CASES)]
    for key, label, _ in DETECTOR_SETS:
        cells = []
        for by_case in delays:
            found = by_case[key]
            cells.append(f"{_count(found.quantile(0.5))} / {_count(found.quantile(0.9))} / "
                         f"{found.detected:.0%}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| lower limit ln(10^6)/KL | " + " | ".join(
        f"{case.lower_limit:,.0f} (KL {case.binned_kl:.3f})" for case in CASES) + " |")
    return lines


def first_by_lines(delays: Sequence[dict[str, Delays]]) -> list[str]:
    lines = []
    for key, label, _ in DETECTOR_SETS:
        parts = []
        for case, by_case in zip(CASES, delays, strict=True):
            found = by_case[key]
            shares = ", ".join(f"{detector} {count}" for detector, count in
                               sorted(found.first_by.items(), key=lambda item: -item[1]))
            parts.append(f"{case.label}: {shares or 'none'}"
                         + (f", {found.early} flagged before the onset" if found.early else ""))
        lines.append(f"- {label}: " + "; ".join(parts) + ".")
    return lines


def earlier_table() -> list[str]:
    lines = ["| detector (earlier study) | " + " | ".join(case.label for case in CASES) + " |",
             "|---|" + "---:|" * len(CASES)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in EARLIER_STUDY]
    return lines


def findings(counts: Sequence[NullCount]) -> list[str]:
    """Sentences on what the false-alarm counts say against the stated rates."""
    lines = []
    for count in counts:
        for detector, stated in (("scan", SCAN_RATE), ("sequential", 1e6 / ARL0)):
            alarms = count.total(detector)
            rate = _rate(alarms, count.feature_messages)
            if rate > stated:
                low = _rate(float(chi2.ppf(1 - CONFIDENCE, 2 * alarms) / 2),
                            count.feature_messages)
                lines.append(
                    f"- **Above the stated rate**: {NULL_LABELS[detector]} at a window of "
                    f"{count.window:,} / {PANES}, {rate:.2f} per 10^6 against {stated:g} "
                    f"(one-sided {CONFIDENCE:.0%} lower bound {low:.2f}); by law: "
                    + ", ".join(f"{law} {_rate(n, count.feature_messages // len(NULL_LAWS)):.2f}"
                                for law, n in count.alarms[detector].items()) + ".")
    return lines or ["- Every measured rate is at or under its stated figure."]


def block(command: str, counts: Sequence[NullCount], delays: Sequence[dict[str, Delays]],
          seeds: int, seconds: float, info: dict[str, str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        DETECTION_START,
        f"Generated by `{command}` on {now}, in {seconds / 60:.1f} minutes "
        "(`benchmarks/detection.py` writes this block; `benchmarks/run.py` runs it too and "
        "keeps it). Seeded: the same command gives the same numbers.",
        "",
        "Machine: " + "; ".join(f"{key} {info[key]}" for key in ("cpu", "python", "numpy",
                                                                  "streamdrift") if key in info)
        + ".",
        "",
        "### False alarms without change",
        "",
        f"Streams with no change through monitors of {len(NULL_LAWS) * FEATURES_PER_LAW} "
        f"independent features ({FEATURES_PER_LAW} each of a normal, a lognormal, a Poisson(2) "
        f"and a 5-category law; each feature with its own reference of "
        f"{REFERENCE_VALUES:,} values, drawn again for each of {counts[0].seeds if counts else 0} "
        f"seeds per window), scan at {SCAN_RATE:g} false alarm per 10^6 messages (the default), "
        f"`detector.method: mixture_cusum` with arl0 {ARL0:,.0f} and prior strengths "
        f"{', '.join(f'{a:g}' for a in PRIOR_STRENGTHS)}. An alarm: the scan's and the "
        "sequential test's counters; for the window rule, a pane close at which it starts to "
        "flag. The upper bound is the exact Poisson one; alarms of one feature can come in "
        "clusters (a scan alarm that clears and starts again as an odd pane moves through the "
        "scales), which makes the real uncertainty somewhat larger.",
        "",
        *null_table(counts),
        "",
        "The scan's alarms by law (alarms, and per 10^6 feature-messages of that law):",
        "",
        *scan_by_law_table(counts),
        "",
        *findings(counts),
        "",
        "### Detection delays",
        "",
        f"One feature, window {DELAY_WINDOW:,} messages in {PANES} panes, a fresh reference "
        f"of {REFERENCE_VALUES:,} values per seed, {seeds} seeds; the change starts after "
        f"{ONSET:,} values plus an offset drawn uniformly from one pane (0 to "
        f"{DELAY_WINDOW // PANES - 1}), so that onsets fall anywhere within a pane. The same "
        "stream goes through each set of detectors. A cell: the median / the 90th percentile "
        "of the changed values read when the first flag was raised (`first_flag_messages` "
        f"minus the onset) / the share of seeds flagged within {HORIZON:,} values of the onset; "
        "a seed not flagged by then counts as an endless delay (\"never\" where the median or "
        "the 90th percentile falls on one). The numeric feature has 20 equal-frequency "
        "bins; the KL of the lower limit is that of the bins of the true laws.",
        "",
        *delay_table(delays),
        "",
        "First flag by detector (seeds), and seeds flagged before the onset (false flags, "
        "left out of the delays):",
        "",
        *first_by_lines(delays),
        "",
        "The earlier study's medians, for comparison (its window rule had a KL threshold of "
        "0.05, streamdrift's default is 0.1, above the KL of the 0.25 sd and the "
        "categorical changes):",
        "",
        *earlier_table(),
        DETECTION_END,
    ]
    return "\n".join(lines)


# ---- RESULTS.md ----------------------------------------------------------------------------

def extract_block(text: str, start: str = DETECTION_START, end: str = DETECTION_END
                  ) -> str | None:
    """The block of ``text`` between ``start`` and ``end``, markers included, or None.

    >>> extract_block("a <!-- detection:start -->x<!-- detection:end --> b")
    '<!-- detection:start -->x<!-- detection:end -->'
    """
    if start not in text or end not in text:
        return None
    return start + text.split(start, 1)[1].split(end, 1)[0] + end


def replace_block(text: str, block_text: str, start: str = DETECTION_START,
                  end: str = DETECTION_END, title: str = SECTION_TITLE,
                  before: Sequence[str] = SECTION_BEFORE) -> str:
    r"""``text`` with its block between ``start`` and ``end`` replaced by ``block_text``; when
    it has none, a ``title`` section holding it goes before the first heading of ``before``
    that ``text`` has, or at its end. Nothing else changes.

    >>> print(replace_block("# R\n\n## Soak\n\ns\n", f"{DETECTION_START}d{DETECTION_END}"))
    # R
    <BLANKLINE>
    ## Detection: delays and false alarms
    <BLANKLINE>
    <!-- detection:start -->d<!-- detection:end -->
    <BLANKLINE>
    ## Soak
    <BLANKLINE>
    s
    <BLANKLINE>
    """
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + block_text + rest.split(end, 1)[1]
    section = f"{title}\n\n{block_text}\n"
    for heading in before:
        marker = f"\n{heading}\n"
        if marker in text:
            head, tail = text.split(marker, 1)
            return f"{head}\n{section}{marker}{tail}"
    separator = "" if not text or text.endswith("\n\n") else (
        "\n" if text.endswith("\n") else "\n\n")
    return f"{text}{separator}{section}"


def keep_block(previous: str, regenerated: str) -> str:
    r"""``regenerated`` with the detection block of ``previous`` carried over, when
    ``regenerated`` has none of its own (benchmarks/run.py without the detection run).

    >>> print(keep_block(f"x {DETECTION_START}old{DETECTION_END}", "# new\n"), end="")
    # new
    <BLANKLINE>
    ## Detection: delays and false alarms
    <BLANKLINE>
    <!-- detection:start -->old<!-- detection:end -->
    >>> keep_block(f"{DETECTION_START}old{DETECTION_END}", f"{DETECTION_START}new{DETECTION_END}")
    '<!-- detection:start -->new<!-- detection:end -->'
    """
    found = extract_block(previous)
    if found is None or DETECTION_START in regenerated:
        return regenerated
    return replace_block(regenerated, found)


# ---- main ----------------------------------------------------------------------------------

@dataclass
class Measured:
    counts: list[NullCount]
    delays: list[dict[str, Delays]]
    seeds: int
    seconds: float


def measure(seeds: int, null_messages: int, null_seeds: int, seed: int = SEED,
            windows: Sequence[int] = NULL_WINDOWS) -> Measured:
    """Both simulations, with progress on stdout."""
    started = time.monotonic()
    features = len(NULL_LAWS) * FEATURES_PER_LAW
    per_stream = max(1, null_messages // features // null_seeds)
    say(f"== false alarms: {null_seeds} seeds x {features} features x {per_stream:,} "
        f"messages per window")
    counts = [count_null(window, null_seeds, per_stream, seed) for window in windows]
    say(f"== delays: {seeds} seeds per case, window {DELAY_WINDOW:,}")
    delays = []
    for index, case in enumerate(CASES):
        case_started = time.monotonic()
        found = run_delays(case, index, seeds, seed)
        delays.append(found)
        say(f"  {case.label}: " + "; ".join(
            f"{key} median {_count(d.quantile(0.5))}, p90 {_count(d.quantile(0.9))}, "
            f"{d.detected:.0%} detected" + (f", {d.early} early" if d.early else "")
            for key, d in found.items())
            + f" ({time.monotonic() - case_started:.0f} s)")
    return Measured(counts, delays, seeds, time.monotonic() - started)


def machine() -> dict[str, str]:
    # By name, as benchmarks/soak.py: run.py's imports are not this script's.
    info: dict[str, str] = importlib.import_module("benchmarks.run").machine(None)
    return info


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SEEDS} seeds per case and {QUICK_NULL_MESSAGES:,} null "
                             "feature-messages per window, a few seconds; writes nothing "
                             "unless --write")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds per delay case (default {DELAY_SEEDS})")
    parser.add_argument("--null-messages", type=int, default=None,
                        help="feature-messages per window of the false-alarm count "
                             f"(default {NULL_MESSAGES:,})")
    parser.add_argument("--null-seeds", type=int, default=None,
                        help=f"streams per window of the false-alarm count (default "
                             f"{NULL_SEEDS}, quick 2)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write the detection block of benchmarks/RESULTS.md (default: "
                             "yes, except with --quick)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> str:
    """Measure as ``args`` say, print the tables, and return the block for RESULTS.md."""
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DELAY_SEEDS)
    null_messages = args.null_messages or (QUICK_NULL_MESSAGES if args.quick
                                           else NULL_MESSAGES)
    null_seeds = args.null_seeds or (2 if args.quick else NULL_SEEDS)
    info = machine()  # before: the code measured is the code loaded now
    measured = measure(seeds, null_messages, null_seeds, args.seed)
    say("")
    for line in [*null_table(measured.counts), "", *scan_by_law_table(measured.counts), "",
                 *findings(measured.counts), "", *delay_table(measured.delays), "",
                 *first_by_lines(measured.delays)]:
        say(line)
    say(f"done in {measured.seconds / 60:.1f} minutes")
    return block(command, measured.counts, measured.delays, seeds, measured.seconds, info)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(arguments)
    command = "python -m benchmarks.detection" + (" " + shlex.join(arguments)
                                                  if arguments else "")
    text = run(args, command)
    if args.write if args.write is not None else not args.quick:
        previous = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        RESULTS.write_text(replace_block(previous, text), encoding="utf-8")
        say(f"wrote the detection block of {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
