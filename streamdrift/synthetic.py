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


def baseline_sampler(feature: FeatureBaseline) -> Sampler:
    """A law for any feature, drawn from its baseline: a bin by its probability, then a
    value in it (uniform between the bin's edges; a fresh category for "other"). The
    drifted law reverses the bin probabilities."""
    probabilities = feature.probabilities / feature.probabilities.sum()

    def sample(rng: np.random.Generator, count: int, drift: bool) -> list[Any]:
        weights = probabilities[::-1] if drift else probabilities
        bins = rng.choice(len(weights), size=count, p=weights)
        if feature.type == "categorical":
            names = [*feature.categories, "other"]
            return [names[b] if b < len(feature.categories) else f"unseen-{b}"
                    for b in bins.tolist()]
        low = feature.minimum if feature.minimum is not None else float(feature.edges[0]) - 1
        high = feature.maximum if feature.maximum is not None else float(feature.edges[-1]) + 1
        bounds = np.concatenate([[low], feature.edges, [high]])
        values: list[Any] = rng.uniform(bounds[bins], np.maximum(bounds[bins + 1],
                                                                  bounds[bins])).tolist()
        return values

    return sample


@dataclass(frozen=True)
class SyntheticStream:
    """Messages for the configured features, with some features drifted from a message on.

    A feature named like one of the demo's follows the demo's law; any other feature needs
    a baseline to draw from.
    """

    config: Config
    seed: int = 0
    baseline: Baseline | None = None

    def sampler(self, name: str) -> Sampler:
        if name in SAMPLERS:
            return SAMPLERS[name]
        if self.baseline is not None and name in self.baseline.features:
            return baseline_sampler(self.baseline[name])
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
