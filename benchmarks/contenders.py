"""The in-process contenders, all fed the same list of payload bytes.

Each contender has ``reset()`` (untimed: fresh state) and ``run(payloads)`` (timed: the whole
work for the list, in arrival order) returning an ``Outcome``: the KL of every feature's
final window (config order) when the contender computes one, and per-feature bin totals
over the whole input when it counts bins. Its ``format`` says which payloads it reads: the
JSON messages, or the same messages as framed Avro records (``Workload.avro_payloads``).

- ``Floor``: the fastest available JSON decode of each payload plus one vectorized binning
  of the values (one ``np.searchsorted`` per numeric feature, a dict lookup per categorical
  value, one ``np.bincount`` per batch). No windows, no divergences: the least any
  implementation must do.
- ``StreamdriftPipeline``: ``DriftMonitor.process_payloads`` in batches, plus one
  ``report()`` per closed pane (the service reports at each publish tick), through the real
  code path.
- ``StreamdriftSequentialPipeline``: the same with ``detector.method: mixture_cusum`` (the
  sequential test on every value, compiled by numba) in place of the config's detector: what
  the sequential test costs.
- The Avro pair: ``Floor`` with the ``fastavro`` decoder (``schemaless_reader`` per record,
  then the dict floor's columns and binning) and ``StreamdriftAvroPipeline`` (the same
  monitor with ``input.format: avro``), both on the framed Avro records.
- ``NaivePerEvent``: stdlib ``json``, ``bisect`` per value, dict counters per pane and for
  the window, KL recomputed from the window's counters at every pane.
- ``RiverPerEvent``: one river ``ADWIN`` per numeric feature, updated with every value.
- ``BatchRecompute``: keeps the raw values of the window and, at every pane, recomputes the
  histograms of the reference data and of the window from raw values, then the KL.
"""

from __future__ import annotations

import bisect
import dataclasses
import importlib
import importlib.util
import io
import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any, Protocol

import fastavro
import msgspec
import numpy as np
import numpy.typing as npt

from benchmarks.messages import AVRO_SCHEMA_ID, Workload
from streamdrift.baseline import Baseline, FeatureBaseline
from streamdrift.config import Config, DetectorConfig, FeatureSpec, SchemaRegistryConfig
from streamdrift.framing import HEADER_BYTES
from streamdrift.monitor import DriftMonitor

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Loads = Callable[[bytes], Any]

BATCH = 1000


@dataclass
class Outcome:
    kl: FloatArray | None = None
    # Per feature, usable values per baseline bin over the whole input.
    totals: list[IntArray] | None = None


class Contender(Protocol):
    name: str
    description: str
    format: str  # "json" or "avro": which payloads it reads

    def reset(self) -> None: ...

    def run(self, payloads: Sequence[bytes]) -> Outcome: ...


# ---- decoders ------------------------------------------------------------------------------

def decoders() -> dict[str, Loads]:
    """The JSON decoders to dicts available: the standard library's (the naive
    implementation's: it bounds how fast that can be), msgspec always (a streamdrift
    dependency), orjson when installed (benchmarks/requirements.txt)."""
    found: dict[str, Loads] = {"json": json.loads, "msgspec": msgspec.json.Decoder().decode}
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        pass
    else:
        found["orjson"] = orjson.loads
    return found


def fastest_decoder(payloads: Sequence[bytes], sample: int = 5000, rounds: int = 3
                    ) -> tuple[str, dict[str, float]]:
    """The decoder to dicts with the least CPU per message on (a sample of) these payloads,
    decoding in batches that are dropped as they would be in a pipeline. Returns its name
    and the microseconds per message of each (best of ``rounds``)."""
    chunk = list(payloads[:sample])
    best: dict[str, float] = {}
    available = decoders()
    for _ in range(rounds):
        for name, loads in available.items():
            started = time.process_time()
            for start in range(0, len(chunk), BATCH):
                _ = [loads(p) for p in chunk[start:start + BATCH]]
            spent = (time.process_time() - started) / max(1, len(chunk)) * 1e6
            best[name] = min(best.get(name, math.inf), spent)
    return min(best, key=best.__getitem__), best


def avro_loads(writer_schema: Any) -> Loads:
    """The Avro floor's decode of one framed record: skip the frame's header (magic byte and
    schema id, taken as known), fastavro's ``schemaless_reader`` -> dict. No check of the
    frame, the schema id or leftover bytes: streamdrift does those, the floor does not."""
    reader = fastavro.schemaless_reader
    new_stream = io.BytesIO

    def loads(payload: bytes) -> Any:
        stream = new_stream(payload)
        stream.seek(HEADER_BYTES)
        return reader(stream, writer_schema)

    return loads


def floor_decoders() -> list[str]:
    """The floor's ways of decoding JSON: to dicts with each available decoder, and msgspec
    straight into a typed struct holding only the feature paths. (The Avro floor has one
    way, ``fastavro``, the decoder streamdrift uses.)"""
    return [*decoders(), "msgspec-struct"]


def fastest_floor(config: Config, baseline: Baseline, payloads: Sequence[bytes],
                  sample: int = 5000, rounds: int = 3) -> tuple[str, dict[str, float]]:
    """The floor variant (decoder) with the least CPU per message for decode + binning on
    (a sample of) these payloads, and each variant's microseconds per message."""
    chunk = list(payloads[:sample])
    best: dict[str, float] = {}
    floors = [Floor(config, baseline, name) for name in floor_decoders()]
    for _ in range(rounds):
        for floor in floors:
            floor.reset()
            started = time.process_time()
            floor.run(chunk)
            spent = (time.process_time() - started) / max(1, len(chunk)) * 1e6
            best[floor.decoder] = min(best.get(floor.decoder, math.inf), spent)
    return min(best, key=best.__getitem__), best


# ---- shared helpers ------------------------------------------------------------------------

def _kl(counts: npt.ArrayLike, q: FloatArray) -> float:
    """KL(P || Q) in nats of window counts against baseline probabilities; NaN if empty."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum()
    if n <= 0:
        return math.nan
    p = c / n
    positive = p > 0
    return float(max(0.0, np.sum(p[positive] * np.log(p[positive] / q[positive]))))


def _smooth(counts: IntArray, alpha: float) -> FloatArray:
    total = float(counts.sum()) + alpha * len(counts)
    return (counts.astype(np.float64) + alpha) / total


def _features(config: Config, baseline: Baseline) -> list[FeatureBaseline]:
    return [baseline[spec.name] for spec in config.features]


# ---- the floor -----------------------------------------------------------------------------

def _feature_struct(specs: Sequence[FeatureSpec]) -> tuple[Any, list[str]]:
    """A msgspec struct type with only the feature paths (numbers ``float | None``,
    categories ``str | None``; every other key skipped while parsing), and the attribute
    path of each feature."""
    names: dict[tuple[str, ...], str] = {}

    def build(prefix: tuple[str, ...]) -> Any:
        children: dict[str, Any] = {}
        for spec in specs:
            path = spec.path
            if path[:len(prefix)] != prefix or len(path) == len(prefix):
                continue
            key = path[len(prefix)]
            if len(path) == len(prefix) + 1:
                children[key] = (float | None) if spec.type == "numeric" else (str | None)
            else:
                children.setdefault(key, None)
        fields: list[tuple[str, Any, Any]] = []
        for index, (key, leaf) in enumerate(children.items()):
            attribute = f"f{index}"
            parent = names.get(prefix, "")
            names[(*prefix, key)] = f"{parent}.{attribute}" if parent else attribute
            if leaf is None:
                nested = build((*prefix, key))
                fields.append((attribute, nested,
                               msgspec.field(default_factory=nested, name=key)))
            else:
                fields.append((attribute, leaf, msgspec.field(default=None, name=key)))
        # Untracked by the garbage collector, like streamdrift's (see streamdrift.schema).
        return msgspec.defstruct(f"Floor{len(names)}", fields, gc=False)

    root = build(())
    return root, [names[spec.path] for spec in specs]


class Floor:
    """Decode + bin, nothing else: totals per bin over the whole input, no window. With the
    ``fastavro`` decoder (and the ``writer_schema``, parsed) it reads framed Avro records
    and is the Avro floor."""

    name = "floor"
    format = "json"

    def __init__(self, config: Config, baseline: Baseline, decoder: str,
                 batch: int = BATCH, writer_schema: Any = None) -> None:
        self.decoder = decoder
        if decoder == "fastavro":
            if writer_schema is None:
                raise ValueError("the fastavro floor needs the writer schema")
            self.name, self.format = "floor_avro", "avro"
        self.description = (f"{decoder} decode + one vectorized binning (searchsorted per "
                            "numeric feature, dict lookup per category, one bincount)")
        self.batch = batch
        features = _features(config, baseline)
        self.n_bins = [f.n_bins for f in features]
        # Each feature owns n_bins + 1 slots: its bins, then one for missing values.
        widths = np.array(self.n_bins) + 1
        self.offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        self.n_slots = int(widths.sum())
        self.n_features = len(features)
        self.totals = np.zeros(self.n_slots, dtype=np.int64)
        self.numeric: list[tuple[int, FloatArray, int, int]] = []
        self.categorical: list[tuple[int, dict[Any, int], int]] = []
        for index, feature in enumerate(features):
            offset = int(self.offsets[index])
            if feature.type == "numeric":
                self.numeric.append((index, feature.edges, offset, offset + feature.n_bins))
            else:
                lookup: dict[Any, int] = {c: offset + i for i, c in enumerate(feature.categories)}
                lookup[None] = offset + feature.n_bins
                self.categorical.append((index, lookup, offset + feature.other_bin))
        if decoder == "msgspec-struct":
            struct, attributes = _feature_struct(config.features)
            self.loads: Loads = msgspec.json.Decoder(struct).decode
            numeric_attributes = [attributes[i] for i, *_ in self.numeric]
            self.numeric_row: Callable[[Any], Any] | None = (
                attrgetter(*numeric_attributes) if numeric_attributes else None)
            categorical_attributes = [attributes[i] for i, *_ in self.categorical]
            # One getter for all categorical features too: rows of values, transposed.
            self.category_row: Callable[[Any], Any] | None = (
                attrgetter(*categorical_attributes, categorical_attributes[0])
                if categorical_attributes else None)
            return
        # A record of feature_record_schema is a dict with every field (null when unset),
        # like the JSON messages: the same columns.
        self.loads = (avro_loads(writer_schema) if decoder == "fastavro"
                      else decoders()[decoder])
        self.numeric_row = None
        # Dicts: features grouped by the section that holds them, so that each message's
        # section is looked up once per batch, not once per feature.
        plan: dict[str | None, list[tuple[int, str]]] = {}
        for index, spec in enumerate(config.features):
            if len(spec.path) > 2:
                raise ValueError("the floor handles paths of one or two keys")
            section = spec.path[0] if len(spec.path) == 2 else None
            plan.setdefault(section, []).append((index, spec.path[-1]))
        self.plan = list(plan.items())

    def reset(self) -> None:
        self.totals = np.zeros(self.n_slots, dtype=np.int64)

    def _columns(self, objects: list[Any]) -> tuple[list[Any], list[list[Any]]]:
        """The numeric columns (float arrays, NaN for missing) and the categorical ones
        (lists of values), in the order of ``self.numeric`` and ``self.categorical``."""
        count = len(objects)
        if self.decoder == "msgspec-struct":
            numeric: list[Any] = []
            if self.numeric_row is not None:
                matrix = np.array(list(map(self.numeric_row, objects)),
                                  dtype=np.float64).reshape(count, len(self.numeric))
                numeric = [matrix[:, j] for j in range(len(self.numeric))]
            categorical: list[Any] = []
            if self.category_row is not None:
                # (the getter repeats the first path, so that a single feature is a tuple too)
                categorical = list(zip(*map(self.category_row, objects), strict=True))
                categorical.pop()
            return numeric, categorical
        values: dict[int, list[Any]] = {}
        for section, members in self.plan:
            holders = objects if section is None else [o[section] for o in objects]
            for index, key in members:
                values[index] = [h[key] for h in holders]
        return ([np.asarray(values[i], dtype=np.float64) for i, *_ in self.numeric],
                [values[i] for i, *_ in self.categorical])

    def add(self, payloads: Sequence[bytes]) -> None:
        """Decode and bin one batch."""
        loads = self.loads
        objects = [loads(p) for p in payloads]
        numeric, categorical = self._columns(objects)
        slots = np.empty((self.n_features, len(objects)), dtype=np.int64)
        searchsorted, isnan = np.searchsorted, np.isnan
        for (index, edges, offset, missing), column in zip(self.numeric, numeric, strict=True):
            bins = searchsorted(edges, column, side="right")
            bins += offset
            bins[isnan(column)] = missing
            slots[index] = bins
        count = len(objects)
        for (index, lookup, other), values in zip(self.categorical, categorical, strict=True):
            slots[index] = np.fromiter(map(lookup.get, values, repeat(other, count)),
                                       np.int64, count)
        self.totals += np.bincount(slots.ravel(), minlength=self.n_slots)

    def run(self, payloads: Sequence[bytes]) -> Outcome:
        for start in range(0, len(payloads), self.batch):
            self.add(payloads[start:start + self.batch])
        totals = self.totals
        return Outcome(totals=[totals[o:o + n] for o, n in zip(self.offsets.tolist(),
                                                              self.n_bins, strict=True)])


# ---- streamdrift ---------------------------------------------------------------------------

class StreamdriftPipeline:
    name = "streamdrift"
    format = "json"

    def __init__(self, config: Config, baseline: Baseline, batch: int = BATCH,
                 writer_schemas: dict[int, Any] | None = None) -> None:
        self.description = (f"DriftMonitor.process_payloads in batches of {batch} + one "
                            "report() per pane")
        self.config = config
        self.baseline = baseline
        self.batch = batch
        self.writer_schemas = writer_schemas
        self.monitor = self._monitor()

    def _monitor(self) -> DriftMonitor:
        return DriftMonitor(self.config, self.baseline, "benchmark",
                            writer_schemas=self.writer_schemas)

    def reset(self) -> None:
        self.monitor = self._monitor()

    def run(self, payloads: Sequence[bytes]) -> Outcome:
        monitor = self.monitor
        reported = 0
        for start in range(0, len(payloads), self.batch):
            monitor.process_payloads(payloads[start:start + self.batch])
            while reported < monitor.panes_closed:  # the publish tick after each pane
                report = monitor.report()
                reported += 1
        report = monitor.report()
        totals = [np.array(f.bin_totals, dtype=np.int64) for f in report.features.values()]
        return Outcome(kl=monitor.kl.values(), totals=totals)


def sequential_config(config: Config) -> Config:
    """``config`` with the sequential test, ``detector.method: mixture_cusum`` at its
    defaults, in place of its detector."""
    return dataclasses.replace(config, detector=DetectorConfig(method="mixture_cusum"))


class StreamdriftSequentialPipeline(StreamdriftPipeline):
    """streamdrift's pipeline with the sequential test on every value
    (``detector.method: mixture_cusum``, its kernel compiled by numba when numba is
    installed) in place of the config's detector (ADWIN over each feature's KL series, once
    a pane): the same monitor, batches and reports."""

    name = "streamdrift_sequential"

    def __init__(self, config: Config, baseline: Baseline, batch: int = BATCH) -> None:
        super().__init__(sequential_config(config), baseline, batch)
        kernel = "numba" if importlib.util.find_spec("numba") else "numpy, numba not installed"
        self.description = (f"DriftMonitor.process_payloads in batches of {batch} + one "
                            "report() per pane, with detector.method: mixture_cusum "
                            f"(arl0 {self.config.detector.arl0:,.0f}, prior strengths "
                            + ", ".join(f"{a:g}" for a in self.config.detector.prior_strengths)
                            + f"; {kernel}) in place of ADWIN")


# A registry URL that is never asked: the writer schema is handed to the monitor, as the
# service's cache would hold it once fetched.
PLACEHOLDER_REGISTRY = "http://schema-registry.invalid:8081"


def avro_config(config: Config) -> Config:
    """``config`` reading Avro records (``input.format: avro``)."""
    return dataclasses.replace(config, input=dataclasses.replace(
        config.input, format="avro",
        schema_registry=SchemaRegistryConfig(PLACEHOLDER_REGISTRY)))


class StreamdriftAvroPipeline(StreamdriftPipeline):
    """streamdrift's pipeline on the framed Avro records: the same monitor, batches and
    reports, with ``input.format: avro`` and the writer schema by its id."""

    name = "streamdrift_avro"
    format = "avro"

    def __init__(self, config: Config, baseline: Baseline, writer_schema: Any,
                 schema_id: int, batch: int = BATCH) -> None:
        super().__init__(avro_config(config), baseline, batch, {schema_id: writer_schema})
        self.description = (f"DriftMonitor.process_payloads (input.format: avro) in batches "
                            f"of {batch} + one report() per pane")


# ---- naive per event -----------------------------------------------------------------------

class NaivePerEvent:
    name = "naive"
    format = "json"
    description = ("stdlib json + bisect per value + dict counters; KL recomputed from the "
                   "window counters at every pane")

    def __init__(self, config: Config, baseline: Baseline) -> None:
        size, panes = config.window.size, config.window.panes
        assert size is not None
        self.pane_length = size // panes
        self.panes = panes
        self.specs: list[tuple[tuple[str, ...], bool, list[float], dict[str, int], int]] = []
        self.log_q: list[list[float]] = []
        for spec, feature in zip(config.features, _features(config, baseline), strict=True):
            self.specs.append((spec.path, feature.type == "numeric",
                               [float(e) for e in feature.edges],
                               {c: i for i, c in enumerate(feature.categories)},
                               feature.other_bin))
            self.log_q.append([math.log(p) for p in feature.probabilities.tolist()])
        self.kl_history: list[list[float]] = []

    def reset(self) -> None:
        self.kl_history = []

    def _window_kl(self, window: list[dict[int, int]]) -> list[float]:
        result = []
        log = math.log
        for counts, log_q in zip(window, self.log_q, strict=True):
            n = sum(counts.values())
            if n == 0:
                result.append(math.nan)
                continue
            kl = 0.0
            for b, c in counts.items():
                if c:
                    p = c / n
                    kl += p * (log(p) - log_q[b])
            result.append(max(0.0, kl))
        return result

    def run(self, payloads: Sequence[bytes]) -> Outcome:
        loads = json.loads
        bisect_right = bisect.bisect_right
        specs = self.specs
        n_features = len(specs)
        window: list[dict[int, int]] = [{} for _ in range(n_features)]
        pane: list[dict[int, int]] = [{} for _ in range(n_features)]
        older: deque[list[dict[int, int]]] = deque()
        pane_length = self.pane_length
        for ordinal, payload in enumerate(payloads):
            if ordinal and ordinal % pane_length == 0:
                # The pane closes: KL of the window, then the oldest pane leaves it.
                self.kl_history.append(self._window_kl(window))
                older.append(pane)
                if len(older) > self.panes - 1:
                    for counts, leaving in zip(window, older.popleft(), strict=True):
                        for b, c in leaving.items():
                            counts[b] -= c
                pane = [{} for _ in range(n_features)]
            message = loads(payload)
            for index, (path, numeric, edges, categories, other) in enumerate(specs):
                value: Any = message
                for key in path:
                    value = value.get(key) if type(value) is dict else None
                if value is None:
                    continue
                if numeric:
                    if value != value:  # NaN: missing
                        continue
                    b = bisect_right(edges, value)
                else:
                    b = categories.get(value, other)
                counts = pane[index]
                counts[b] = counts.get(b, 0) + 1
                counts = window[index]
                counts[b] = counts.get(b, 0) + 1
        final = self._window_kl(window)
        self.kl_history.append(final)
        return Outcome(kl=np.array(final))


# ---- river ---------------------------------------------------------------------------------

class RiverPerEvent:
    name = "river_adwin"
    format = "json"

    def __init__(self, config: Config, decoder: str) -> None:
        self.description = f"{decoder} decode + river ADWIN.update per numeric value"
        self.loads = decoders()[decoder]
        self.paths = [spec.path for spec in config.features if spec.type == "numeric"]
        self.detectors: list[Any] = []
        self.changes: list[int] = []

    def reset(self) -> None:
        from river.drift import ADWIN

        self.detectors = [ADWIN() for _ in self.paths]
        self.changes = [0] * len(self.paths)

    def run(self, payloads: Sequence[bytes]) -> Outcome:
        loads = self.loads
        watched = list(zip(self.paths, self.detectors, strict=True))
        changes = self.changes
        for payload in payloads:
            message = loads(payload)
            for index, (path, detector) in enumerate(watched):
                value: Any = message
                for key in path:
                    value = value.get(key) if type(value) is dict else None
                if value is None:
                    continue
                detector.update(value)
                if detector.drift_detected:
                    changes[index] += 1
        return Outcome()


# ---- batch recomputation -------------------------------------------------------------------

class BatchRecompute:
    name = "batch_recompute"
    format = "json"

    def __init__(self, workload: Workload, decoder: str) -> None:
        self.description = (f"{decoder} decode; at every pane, histograms of the reference and "
                            "of the window's raw values recomputed, then KL")
        config, baseline = workload.config, workload.baseline
        self.loads = decoders()[decoder]
        self.pane_length = workload.pane_length
        self.panes = config.window.panes
        self.alpha = baseline.smoothing
        self.specs = []
        for spec, feature in zip(config.features, _features(config, baseline), strict=True):
            self.specs.append((spec.path, feature.type == "numeric", feature.edges,
                               {c: i for i, c in enumerate(feature.categories)},
                               feature.other_bin, feature.n_bins))
        # The reference as a batch tool holds it: a column of raw values per feature.
        self.reference: list[npt.NDArray[Any]] = [
            _raw_column(values, numeric)
            for values, (_, numeric, *_rest) in zip(workload.reference, self.specs,
                                                     strict=True)]
        self.kl_history: list[FloatArray] = []

    def reset(self) -> None:
        self.kl_history = []

    def _histogram(self, values: npt.NDArray[Any], numeric: bool, edges: FloatArray,
                   categories: dict[str, int], other: int, n_bins: int) -> IntArray:
        if numeric:
            usable = values[~np.isnan(values)]
            return np.bincount(np.searchsorted(edges, usable, side="right"),
                               minlength=n_bins)
        present = values[values != ""]
        names, counts = np.unique(present, return_counts=True)
        bins = np.array([categories.get(str(n), other) for n in names.tolist()],
                        dtype=np.int64)
        return np.bincount(bins, weights=counts, minlength=n_bins).astype(np.int64)

    def _evaluate(self, window: deque[list[npt.NDArray[Any]]]) -> FloatArray:
        kls = np.empty(len(self.specs))
        for index, (_, numeric, edges, categories, other, n_bins) in enumerate(self.specs):
            reference = self._histogram(self.reference[index], numeric, edges, categories,
                                        other, n_bins)
            current = self._histogram(np.concatenate([block[index] for block in window]),
                                      numeric, edges, categories, other, n_bins)
            kls[index] = _kl(current, _smooth(reference, self.alpha))
        return kls

    def _columns(self, messages: list[Any]) -> list[npt.NDArray[Any]]:
        columns = []
        for path, numeric, *_ in self.specs:
            values = []
            for message in messages:
                value: Any = message
                for key in path:
                    value = value.get(key) if type(value) is dict else None
                values.append(value)
            columns.append(_raw_column(values, numeric))
        return columns

    def run(self, payloads: Sequence[bytes]) -> Outcome:
        loads = self.loads
        window: deque[list[npt.NDArray[Any]]] = deque(maxlen=self.panes)
        pending: list[Any] = []
        for payload in payloads:
            pending.append(loads(payload))
            if len(pending) == self.pane_length:  # the pane is complete: evaluate
                window.append(self._columns(pending))
                pending = []
                self.kl_history.append(self._evaluate(window))
        if pending:
            window.append(self._columns(pending))
            self.kl_history.append(self._evaluate(window))
        return Outcome(kl=self.kl_history[-1] if self.kl_history else None)


def _raw_column(values: Sequence[Any], numeric: bool) -> npt.NDArray[Any]:
    """Raw values as a batch tool stores them: float64 with NaN for missing numbers, fixed
    width text with "" for missing categories."""
    if numeric:
        return np.array(values, dtype=np.float64)
    return np.array(["" if v is None else v for v in values], dtype=np.str_)


# ---- all of them, and the agreement check --------------------------------------------------

def in_process_contenders(workload: Workload, floor_decoder: str, decoder: str,
                          avro: bool = True, sequential: bool = True) -> list[Contender]:
    """The floor (with ``floor_decoder``), streamdrift, with ``sequential`` streamdrift with
    the sequential test, with ``avro`` the Avro floor and streamdrift on Avro, and the others
    (``decoder`` to dicts where they are not told to use the stdlib)."""
    config, baseline = workload.config, workload.baseline
    pair: list[Contender] = [Floor(config, baseline, floor_decoder),
                             StreamdriftPipeline(config, baseline)]
    if sequential:
        pair.append(StreamdriftSequentialPipeline(config, baseline))
    if avro:
        pair += [Floor(config, baseline, "fastavro", writer_schema=workload.avro_parsed),
                 StreamdriftAvroPipeline(config, baseline, workload.avro_parsed,
                                         AVRO_SCHEMA_ID)]
    return [
        *pair,
        NaivePerEvent(config, baseline),
        RiverPerEvent(config, decoder),
        BatchRecompute(workload, decoder),
    ]


def inputs_of(workload: Workload) -> dict[str, Sequence[bytes]]:
    """The payloads of each format, by ``Contender.format``."""
    return {"json": workload.payloads, "avro": workload.avro_payloads}


@dataclass
class Agreement:
    # contender -> max |KL - streamdrift's KL| (streamdrift_avro: on the same messages in
    # Avro, against streamdrift on JSON)
    max_kl_difference: dict[str, float]
    max_total_difference: int  # floor's bin totals against streamdrift's
    features: int
    # The Avro floor's bin totals against streamdrift's on Avro (None: no Avro pair).
    max_avro_total_difference: int | None = None

    def ok(self, tolerance: float = 1e-6) -> bool:
        return (all(d <= tolerance for d in self.max_kl_difference.values())
                and self.max_total_difference == 0
                and not self.max_avro_total_difference)


def _max_total_gap(got: Outcome | None, want: Outcome) -> int | None:
    if got is None or got.totals is None or want.totals is None:
        return None
    return max(int(np.abs(a - b).max()) for a, b in zip(got.totals, want.totals, strict=True))


def check_agreement(contenders: Sequence[Contender],
                    payloads: Sequence[bytes] | dict[str, Sequence[bytes]]) -> Agreement:
    """Run every contender once on its payloads (``payloads`` by format, or the JSON ones
    alone) and compare the final window KL of those that compute one with streamdrift's,
    the floor's bin totals with streamdrift's, and the Avro floor's with streamdrift's on
    Avro."""
    inputs = payloads if isinstance(payloads, dict) else {"json": payloads}
    outcomes: dict[str, Outcome] = {}
    for contender in contenders:
        contender.reset()
        outcomes[contender.name] = contender.run(inputs[contender.format])
    reference = outcomes["streamdrift"]
    assert reference.kl is not None
    assert reference.totals is not None
    differences = {}
    for name, outcome in outcomes.items():
        if name == "streamdrift" or outcome.kl is None:
            continue
        both_nan = np.isnan(outcome.kl) & np.isnan(reference.kl)
        gap = np.where(both_nan, 0.0, np.abs(outcome.kl - reference.kl))
        differences[name] = float(np.nan_to_num(gap, nan=np.inf).max())
    total_gap = _max_total_gap(outcomes.get("floor"), reference) or 0
    avro_gap = None
    if "streamdrift_avro" in outcomes:
        avro_gap = _max_total_gap(outcomes.get("floor_avro"), outcomes["streamdrift_avro"])
    return Agreement(differences, total_gap, len(reference.kl), avro_gap)
