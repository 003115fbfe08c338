"""Realistic benchmark messages: the input of a customer-lifetime-value model.

34 features, 22 numeric and 12 categorical, nested the way such events usually are
(``customer.*``, ``usage.*``, ``offer.*``, ``context.*`` plus top-level ``device`` and
``plan``), with missing values (``null``) where a real producer has them, categories beyond
``max_categories`` (``offer.campaign_id`` has 80), counts sent as JSON integers and amounts
rounded like money. Wider feature sets (200, 1,000) repeat the 34 laws under new names
(``usage.session_length_3``...), drawn independently, so the mix of types stays the same.

Two laws (``session_length`` and ``device``, and their copies) drift from the middle of the
stream, so that the divergences are not all near zero. Messages are encoded with
``json.dumps`` like ``streamdrift produce`` does, and the same messages also as Avro
records framed for a Schema Registry (``to_avro``: the schema of ``produce --format avro``,
the features only). Everything is seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import numpy.typing as npt

from streamdrift.avro import encode_framed, feature_record_schema
from streamdrift.baseline import Baseline, build_baseline
from streamdrift.config import Config, parse_config
from streamdrift.features import FeatureColumn, categorical_column, numeric_column

Sampler = Callable[[np.random.Generator, int, bool], list[Any]]

WINDOW_SIZE = 10_000
WINDOW_PANES = 10
BINS = 20
MAX_CATEGORIES = 50
REFERENCE_ROWS = 10_000
DRIFTING = ("session_length", "device")
# The writer schema id of the in-process Avro payloads (end to end: the registry's id).
AVRO_SCHEMA_ID = 1


@dataclass(frozen=True)
class Law:
    """One feature's law: where it sits in the message, its type and how to draw it."""

    name: str
    section: str | None  # None: a top-level key
    type: str  # "numeric" | "categorical"
    sample: Sampler


def _with_nulls(values: list[Any], rng: np.random.Generator, share: float) -> list[Any]:
    if share <= 0:
        return values
    gone = (rng.random(len(values)) < share).tolist()
    return [None if g else v for v, g in zip(values, gone, strict=True)]


def _lognormal(mean: float, sigma: float, digits: int, drift_mean: float = 0.0,
               nulls: float = 0.0) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        values = np.round(rng.lognormal(mean + (drift_mean if drift else 0.0), sigma, count),
                          digits)
        return _with_nulls(values.tolist(), rng, nulls)
    return sample


def _lognormal_int(mean: float, sigma: float) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        values: list[Any] = np.floor(rng.lognormal(mean, sigma, count)).astype(int).tolist()
        return values
    return sample


def _poisson(lam: float, plus: int = 0) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        values: list[Any] = (rng.poisson(lam, count) + plus).tolist()
        return values
    return sample


def _exponential_int(scale: float) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        values: list[Any] = np.floor(rng.exponential(scale, count)).astype(int).tolist()
        return values
    return sample


def _normal_int(mean: float, sd: float, low: float, high: float) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        values: list[Any] = np.round(np.clip(rng.normal(mean, sd, count), low, high)
                                     ).astype(int).tolist()
        return values
    return sample


def _beta(a: float, b: float, digits: int, nulls: float = 0.0) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        return _with_nulls(np.round(rng.beta(a, b, count), digits).tolist(), rng, nulls)
    return sample


def _discrete(values: Sequence[float], weights: Sequence[float]) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        p = np.asarray(weights, dtype=np.float64)
        picked: list[Any] = np.asarray(values)[rng.choice(len(values), count,
                                                          p=p / p.sum())].tolist()
        return picked
    return sample


def _zipf_weights(count: int, exponent: float = 1.1) -> list[float]:
    return [1.0 / (rank ** exponent) for rank in range(1, count + 1)]


def _choice(categories: Sequence[str], weights: Sequence[float], nulls: float = 0.0,
            drifted: Sequence[float] | None = None) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        chosen = drifted if (drift and drifted is not None) else weights
        p = np.asarray(chosen, dtype=np.float64)
        picked = rng.choice(len(categories), count, p=p / p.sum())
        return _with_nulls([categories[i] for i in picked.tolist()], rng, nulls)
    return sample


_REGIONS = [f"r{n:02d}" for n in range(1, 21)]
_CATEGORIES = [f"cat_{n:02d}" for n in range(1, 31)]
_CAMPAIGNS = [f"cmp-{n:04d}" for n in range(1, 81)]

# The 34 features of the customer-lifetime-value model: 22 numeric, 12 categorical.
CLV_LAWS: tuple[Law, ...] = (
    Law("age", "customer", "numeric", _normal_int(41, 12, 18, 90)),
    Law("tenure_days", "customer", "numeric", _exponential_int(400)),
    Law("income_k", "customer", "numeric", _lognormal(4.0, 0.5, 1, nulls=0.15)),
    Law("household_size", "customer", "numeric", _poisson(1.5, plus=1)),
    Law("credit_score", "customer", "numeric", _normal_int(680, 60, 300, 850)),
    Law("country", "customer", "categorical",
        _choice(["us", "de", "fr", "gb", "in", "br", "jp"], [30, 15, 10, 10, 15, 12, 8])),
    Law("gender", "customer", "categorical",
        _choice(["f", "m", "x", "unknown"], [48, 46, 2, 4])),
    Law("region", "customer", "categorical", _choice(_REGIONS, _zipf_weights(20, 0.8))),
    Law("language", "customer", "categorical",
        _choice(["en", "de", "fr", "es", "pt", "ja", "hi"], [40, 14, 10, 12, 10, 7, 7])),
    Law("acquisition_channel", "customer", "categorical",
        _choice(["organic", "paid_search", "social", "referral", "email", "affiliate"],
                [35, 25, 15, 10, 10, 5])),
    Law("session_length", "usage", "numeric", _lognormal(3.0, 0.5, 2, drift_mean=0.4)),
    Law("purchases_30d", "usage", "numeric", _poisson(2.0)),
    Law("sessions_7d", "usage", "numeric", _poisson(5.0)),
    Law("avg_basket_value", "usage", "numeric", _lognormal(3.5, 0.8, 2, nulls=0.1)),
    Law("days_since_last_purchase", "usage", "numeric", _exponential_int(20)),
    Law("pages_per_session", "usage", "numeric", _lognormal(1.5, 0.6, 1)),
    Law("cart_abandon_rate", "usage", "numeric", _beta(2, 5, 3)),
    Law("support_tickets_90d", "usage", "numeric", _poisson(0.3)),
    Law("returns_90d", "usage", "numeric", _poisson(0.2)),
    Law("total_spend_365d", "usage", "numeric", _lognormal(6.0, 1.0, 2)),
    Law("app_opens_30d", "usage", "numeric", _poisson(12.0)),
    Law("preferred_category", "usage", "categorical", _choice(_CATEGORIES, _zipf_weights(30))),
    Law("payment_method", "usage", "categorical",
        _choice(["card", "paypal", "apple_pay", "google_pay", "bank", "cod"],
                [50, 20, 12, 10, 5, 3])),
    Law("discount_rate", "offer", "numeric", _beta(2, 5, 3, nulls=0.05)),
    Law("coupon_value", "offer", "numeric", _discrete([0, 5, 10, 20], [60, 20, 15, 5])),
    Law("email_open_rate", "offer", "numeric", _beta(3, 7, 3, nulls=0.1)),
    Law("push_ctr", "offer", "numeric", _beta(1, 20, 4, nulls=0.2)),
    Law("loyalty_points", "offer", "numeric", _lognormal_int(5.0, 1.2)),
    Law("referral_count", "offer", "numeric", _poisson(0.5)),
    Law("campaign_id", "offer", "categorical", _choice(_CAMPAIGNS, _zipf_weights(80, 0.7))),
    Law("segment", "offer", "categorical",
        _choice(["new", "active", "at_risk", "churned", "vip"], [20, 50, 15, 10, 5])),
    Law("browser", "context", "categorical",
        _choice(["chrome", "safari", "firefox", "edge", "other"], [55, 25, 8, 8, 4],
                nulls=0.4)),
    Law("device", None, "categorical",
        _choice(["ios", "android", "web", "tv"], [45, 40, 15, 0.5],
                drifted=[30, 30, 10, 30])),
    Law("plan", None, "categorical",
        _choice(["free", "basic", "premium"], [60, 30, 10])),
)
assert len(CLV_LAWS) == 34


@dataclass(frozen=True)
class Feature:
    """One feature of a benchmark feature set: its config name, path and law."""

    name: str
    path: tuple[str, ...]
    type: str
    law: Law
    drifts: bool


def feature_set(n_features: int) -> list[Feature]:
    """``n_features`` features: the 34 CLV laws, then copies of them under new names."""
    features = []
    for index in range(n_features):
        law = CLV_LAWS[index % len(CLV_LAWS)]
        copy = index // len(CLV_LAWS)
        name = law.name if copy == 0 else f"{law.name}_{copy}"
        path = (name,) if law.section is None else (law.section, name)
        features.append(Feature(name, path, law.type, law, law.name in DRIFTING))
    return features


def config_document(features: Sequence[Feature], window_size: int = WINDOW_SIZE,
                    panes: int = WINDOW_PANES) -> dict[str, Any]:
    """The streamdrift config (as parsed YAML) for a feature set."""
    return {
        "features": [{"name": f.name, "path": ".".join(f.path), "type": f.type}
                     for f in features],
        "window": {"size": window_size, "panes": panes},
        "baseline": {"bins": BINS, "max_categories": MAX_CATEGORIES, "smoothing": 0.5},
        "divergence": {"threshold": 0.1, "min_samples": 100},
        "detector": {"method": "adwin"},
    }


def generate_columns(features: Sequence[Feature], count: int, seed: int, stream: int,
                     offset: int = 0, drift_from: int | None = None) -> list[list[Any]]:
    """One list of JSON values per feature for messages ``offset .. offset + count``;
    drifting features follow their drifted law from message ``drift_from`` on."""
    columns = []
    for index, feature in enumerate(features):
        rng = np.random.default_rng([seed, stream, index, offset])
        split = count
        if feature.drifts and drift_from is not None:
            split = min(max(drift_from - offset, 0), count)
        values = feature.law.sample(rng, split, False)
        if split < count:
            values += feature.law.sample(rng, count - split, True)
        columns.append(values)
    return columns


def encode_messages(features: Sequence[Feature], columns: Sequence[Sequence[Any]],
                    offset: int = 0, seed: int = 0) -> list[bytes]:
    """Rows of ``columns`` as JSON messages (nested by section), like a producer sends."""
    count = len(columns[0]) if columns else 0
    rng = np.random.default_rng([seed, 99, offset])
    event_times = (1_790_000_000.0 + np.cumsum(rng.exponential(0.001, count))).round(3)
    times = event_times.tolist()
    sections = sorted({f.path[0] for f in features if len(f.path) == 2})
    dumps = json.dumps
    payloads = []
    for row in range(count):
        message: dict[str, Any] = {"event_id": f"evt-{offset + row:09d}",
                                   "event_time": times[row]}
        nested: dict[str, dict[str, Any]] = {section: {} for section in sections}
        message.update(nested)
        for feature, column in zip(features, columns, strict=True):
            if len(feature.path) == 1:
                message[feature.path[0]] = column[row]
            else:
                nested[feature.path[0]][feature.path[1]] = column[row]
        payloads.append(dumps(message).encode())
    return payloads


@dataclass
class Workload:
    """Everything every contender shares for one feature count: the config, the baseline,
    the raw reference values the baseline was built from, and the stream's payloads."""

    n_features: int
    features: list[Feature]
    document: dict[str, Any]
    config: Config
    baseline: Baseline
    reference: list[list[Any]]  # raw reference values, one list per feature
    payloads: list[bytes]
    # The same messages as framed Avro records (AVRO_SCHEMA_ID) of ``avro_schema``.
    avro_schema: dict[str, Any]
    avro_parsed: Any  # fastavro's parsed form of avro_schema
    avro_payloads: list[bytes]

    @property
    def pane_length(self) -> int:
        size = self.config.window.size
        assert size is not None
        return size // self.config.window.panes


def reference_columns(features: Sequence[Feature], reference: Sequence[Sequence[Any]]
                      ) -> dict[str, FeatureColumn]:
    return {f.name: (numeric_column(values) if f.type == "numeric"
                     else categorical_column(values))
            for f, values in zip(features, reference, strict=True)}


def make_baseline(features: Sequence[Feature], config: Config,
                  reference: Sequence[Sequence[Any]]) -> Baseline:
    columns = reference_columns(features, reference)
    return build_baseline(config.features, columns,
                          {spec.name: config.bins_for(spec) for spec in config.features},
                          config.baseline.max_categories, config.baseline.smoothing,
                          source=f"benchmark reference ({len(reference[0])} rows)")


def make_workload(n_features: int, messages: int, seed: int = 0,
                  reference_rows: int = REFERENCE_ROWS, window_size: int = WINDOW_SIZE,
                  panes: int = WINDOW_PANES) -> Workload:
    """The shared inputs for ``n_features`` features and ``messages`` stream messages,
    drifting from the middle of the stream."""
    features = feature_set(n_features)
    document = config_document(features, window_size, panes)
    config = parse_config(document, Path.cwd(), environ={})
    reference = generate_columns(features, reference_rows, seed, stream=1)
    baseline = make_baseline(features, config, reference)
    payloads = stream_payloads(features, messages, seed, drift_from=messages // 2)
    avro_schema = feature_record_schema(config.features)
    avro_parsed = fastavro.parse_schema(avro_schema)
    return Workload(n_features, features, document, config, baseline, reference, payloads,
                    avro_schema, avro_parsed, to_avro(payloads, AVRO_SCHEMA_ID, avro_parsed))


def stream_payloads(features: Sequence[Feature], count: int, seed: int,
                    drift_from: int | None, chunk: int = 5_000, stream: int = 0
                    ) -> list[bytes]:
    """``count`` encoded stream messages, generated in chunks to bound memory."""
    payloads: list[bytes] = []
    for offset in range(0, count, chunk):
        size = min(chunk, count - offset)
        columns = generate_columns(features, size, seed, stream, offset, drift_from)
        payloads += encode_messages(features, columns, offset, seed)
    return payloads


def to_avro(payloads: Sequence[bytes], schema_id: int, parsed_schema: Any) -> list[bytes]:
    """JSON messages as framed Avro records of ``parsed_schema`` (a ``feature_record_schema``
    of their features): the same values, numbers as doubles; the keys that are no feature
    (``event_id``, ``event_time``) are not in the schema and are left out."""
    loads = json.loads
    return [encode_framed(schema_id, parsed_schema, loads(payload)) for payload in payloads]


def as_float_array(values: Sequence[Any]) -> npt.NDArray[np.float64]:
    """Numbers with None as NaN."""
    return np.array(values, dtype=np.float64)
