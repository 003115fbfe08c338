"""A synthetic stream shaped like the input of a customer-lifetime-value model.

Used by ``streamdrift demo`` (the built-in default: no files, no Kafka), by the tests and by
the benchmarks. Every feature has a reference law and a drifted one; a generator draws
messages from the reference law except for the features it is told have drifted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streamdrift.baseline import Baseline, FeatureBaseline
from streamdrift.config import Config, parse_config
from streamdrift.features import missing_categories

Sampler = Callable[[np.random.Generator, int, bool], list[Any]]

DEMO_CONFIG_YAML = """
features:
  - {name: session_length, path: usage.session_length, type: numeric}
  - {name: purchases_30d, path: usage.purchases_30d, type: numeric}
  - {name: age, path: customer.age, type: numeric}
  - {name: discount_rate, path: offer.discount_rate, type: numeric}
  - {name: country, path: customer.country, type: categorical}
  - {name: device, type: categorical}
  - {name: plan, type: categorical}
window: {size: 5000, panes: 10}
baseline: {bins: 20, max_categories: 50}
divergence: {threshold: 0.1, min_samples: 500}
detector: {method: adwin}
"""

# The features the demo drifts halfway through its stream.
DEMO_DRIFTED = ("session_length", "device")


def demo_config() -> Config:
    """The demo's configuration, parsed and checked like a user's config file."""
    return parse_config(yaml.safe_load(DEMO_CONFIG_YAML), base_dir=Path.cwd())


def _choice(categories: list[str], reference: list[float], drifted: list[float]) -> Sampler:
    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        weights = np.array(drifted if drift else reference)
        picked = rng.choice(len(categories), size=count, p=weights / weights.sum())
        return [categories[i] for i in picked.tolist()]
    return sample


def _session_length(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
    # Minutes per session; the drifted law is a longer, wider session (a new app version).
    mean, sigma = (3.4, 0.6) if drift else (3.0, 0.5)
    values: list[Any] = np.round(rng.lognormal(mean, sigma, count), 2).tolist()
    return values


def _purchases(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
    values: list[Any] = rng.poisson(3.5 if drift else 2.0, count).tolist()
    return values


def _age(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
    ages = np.clip(rng.normal(30 if drift else 41, 12, count), 18, 90)
    values: list[Any] = np.round(ages).astype(int).tolist()
    return values


def _discount_rate(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
    # One customer in twenty has no offer: the value is null, a missing value.
    rates = rng.beta(2, 5 if not drift else 2, count).round(3)
    missing = rng.random(count) < (0.3 if drift else 0.05)
    return [None if gone else rate for rate, gone in zip(rates.tolist(), missing.tolist(),
                                                         strict=True)]


SAMPLERS: dict[str, Sampler] = {
    "session_length": _session_length,
    "purchases_30d": _purchases,
    "age": _age,
    "discount_rate": _discount_rate,
    "country": _choice(["us", "de", "fr", "gb", "in", "br", "jp"],
                       [30, 15, 10, 10, 15, 12, 8], [10, 15, 10, 10, 35, 12, 8]),
    "device": _choice(["ios", "android", "web", "tv"],
                      [45, 40, 15, 0], [30, 30, 10, 30]),
    "plan": _choice(["free", "basic", "premium"], [60, 30, 10], [40, 30, 30]),
}


# A drifted law moves this much: standard deviations for a numeric feature, the share of a
# categorical feature's mass moved to other categories (``streamdrift produce --drift-size``).
DRIFT_SIZE = 0.5
# Categories an ``unseen`` drift sends values to.
UNSEEN_CATEGORIES = 5
# Names the values of a categorical baseline's other bin are sent as (a baseline keeps only
# the names of its ``max_categories`` most frequent categories).
OTHER_CATEGORIES = 5


def baseline_sampler(feature: FeatureBaseline, drift_size: float = DRIFT_SIZE,
                     unseen: bool = False, avoid: Collection[str] = ()) -> Sampler:
    """A law drawn from a feature's baseline, and its drifted law.

    A value is missing as often as in the reference; otherwise a bin is drawn by its
    reference count, then a value in it: the bin's one value where it has one, else uniform
    between its edges (the reference's min and max at the open ends), a whole number when
    every reference value was one. A category is drawn by its reference count, the other
    bin included: a baseline does not keep the names of the categories beyond
    ``baseline.max_categories``, so the other bin's share is sent as ``other-N`` names
    (``OTHER_CATEGORIES`` of them, skipping any the file lists or ``avoid`` holds: the
    categories the feature counts as missing). Drifted, a numeric value moves up by
    ``drift_size`` standard deviations of the reference (of the law drawn here for a file
    without ``std``); for a categorical feature that share of the mass moves to its rarest
    listed category or, with ``unseen``, to categories the reference never had
    (``unseen-N``; they too fall in the other bin).
    """
    counts = feature.counts.astype(np.float64)
    if not counts.any():  # a file without counts: its smoothed probabilities
        counts = feature.probabilities.copy()
    total = feature.count + feature.missing + feature.invalid
    missing_share = feature.missing / total if total else 0.0
    if feature.type == "categorical":
        # The listed categories' counts, then the other bin's (the last one).
        weights = counts / counts.sum()
        names = list(feature.categories)
        listed = len(names)
        others = _other_names(feature.categories, avoid)

        def sample_category(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
            law = weights
            if drift and not unseen and listed:
                # That share of the mass moves to the rarest listed category.
                target = np.zeros(len(weights))
                target[listed - 1 - int(np.argmin(weights[listed - 1::-1]))] = 1.0
                law = (1 - drift_size) * weights + drift_size * target
            chosen = rng.choice(len(law), size=count, p=law / law.sum())
            values: list[Any] = [names[i] if i < listed else "" for i in chosen.tolist()]
            other = np.flatnonzero(chosen == listed)
            if len(other):
                picked = rng.integers(0, len(others), size=len(other))
                for index, pick in zip(other.tolist(), picked.tolist(), strict=True):
                    values[index] = others[pick]
            if drift and unseen:
                fresh = rng.random(count) < drift_size
                for index in np.flatnonzero(fresh).tolist():
                    values[index] = f"unseen-{rng.integers(1, UNSEEN_CATEGORIES + 1)}"
            return _with_missing(rng, values, missing_share)

        return sample_category

    weights = counts / counts.sum()
    edges = feature.edges.tolist()
    spacing = (edges[-1] - edges[0]) / max(len(edges) - 1, 1) if len(edges) > 1 else 1.0
    low = feature.minimum if feature.minimum is not None else \
        (edges[0] - spacing if edges else 0.0)
    high = feature.maximum if feature.maximum is not None else \
        (edges[-1] + spacing if edges else 1.0)
    bounds = np.array([min(low, *edges) if edges else low, *edges,
                       max(high, *edges) if edges else high])
    singles = [None] * feature.n_bins if not feature.single_values else \
        list(feature.single_values)
    middles = np.array([single if single is not None else (bounds[i] + bounds[i + 1]) / 2
                        for i, single in enumerate(singles)])
    if feature.std is not None:
        spread = feature.std
    else:  # an older file: the standard deviation of the law drawn here
        widths = np.array([0.0 if single is not None else bounds[i + 1] - bounds[i]
                           for i, single in enumerate(singles)])
        mean = np.sum(weights * middles)
        spread = float(np.sqrt(np.sum(weights * ((middles - mean) ** 2 + widths ** 2 / 12))))

    def sample_number(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        bins = rng.choice(len(weights), size=count, p=weights)
        starts, ends = bounds[bins], bounds[bins + 1]
        if feature.integral:
            # Whole numbers in [start, end), and the maximum itself in the last bin.
            first = np.ceil(starts)
            last = np.where(bins == len(weights) - 1, np.floor(ends), np.ceil(ends) - 1)
            values = np.floor(rng.uniform(first, np.maximum(last, first) + 1))
        else:
            values = rng.uniform(starts, np.maximum(ends, starts))
        fixed = np.array([singles[b] is not None for b in bins.tolist()], dtype=bool)
        if fixed.any():
            values[fixed] = [singles[b] for b in bins[fixed].tolist()]
        if drift:
            values = values + drift_size * spread
            if feature.integral:
                values = np.round(values)
        result: list[Any] = (values.astype(np.int64).tolist() if feature.integral
                             else values.tolist())
        return _with_missing(rng, result, missing_share)

    return sample_number


def _other_names(listed: Collection[str], avoid: Collection[str]) -> list[str]:
    """``OTHER_CATEGORIES`` names for the other bin: none a listed or an avoided one."""
    taken = set(listed) | set(avoid)
    names: list[str] = []
    number = 1
    while len(names) < OTHER_CATEGORIES:
        name = f"other-{number}"
        if name not in taken:
            names.append(name)
        number += 1
    return names


def _with_missing(rng: np.random.Generator, values: list[Any], share: float) -> list[Any]:
    if share <= 0:
        return values
    for index in np.flatnonzero(rng.random(len(values)) < share).tolist():
        values[index] = None
    return values


@dataclass(frozen=True)
class SyntheticStream:
    """Messages for the configured features, with some features drifted from a message on.

    With a baseline, every feature follows its baseline (``baseline_sampler``); without
    one, a feature named like one of the demo's follows the demo's law, and any other cannot
    be drawn.
    """

    config: Config
    seed: int = 0
    baseline: Baseline | None = None
    drift_size: float = DRIFT_SIZE
    unseen: bool = False

    def sampler(self, name: str) -> Sampler:
        if self.baseline is not None:
            if name not in self.baseline.features:
                raise ValueError(f"feature {name!r} is not in the baseline: rebuild it")
            specs = [spec for spec in self.config.features if spec.name == name]
            avoid = missing_categories(specs[0]) if specs else frozenset()
            return baseline_sampler(self.baseline[name], self.drift_size, self.unseen, avoid)
        if name in SAMPLERS:
            return SAMPLERS[name]
        raise ValueError(f"no synthetic law for feature {name!r}: give a baseline, or use one "
                         f"of the demo's features ({', '.join(SAMPLERS)})")

    def reference(self, count: int) -> list[dict[str, Any]]:
        """Training data: every feature from its reference law, drawn apart from the stream."""
        return self.messages(count, offset=0, _stream=1)

    def messages(self, count: int, drifted: Collection[str] | Mapping[str, int] = (),
                 drift_from: int = 0, offset: int = 0, _stream: int = 0
                 ) -> list[dict[str, Any]]:
        """``count`` messages; features in ``drifted`` follow their drifted law from message
        number ``drift_from`` on, or from their own start when ``drifted`` maps features to
        starts (messages are numbered from ``offset``). The same arguments give the same
        messages."""
        rng = np.random.default_rng([self.seed, _stream, offset])
        starts = (dict(drifted) if isinstance(drifted, Mapping)
                  else dict.fromkeys(drifted, drift_from))
        columns: dict[str, list[Any]] = {}
        for spec in self.config.features:
            sampler = self.sampler(spec.name)
            if spec.name in starts:
                split = min(max(starts[spec.name] - offset, 0), count)
                columns[spec.name] = (sampler(rng, split, False)
                                      + sampler(rng, count - split, True))
            else:
                columns[spec.name] = sampler(rng, count, False)
        messages: list[dict[str, Any]] = []
        for row in range(count):
            message: dict[str, Any] = {"id": offset + row}
            for spec in self.config.features:
                _place(message, spec.path, columns[spec.name][row])
            messages.append(message)
        return messages


def _place(message: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = message
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
