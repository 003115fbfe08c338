"""The producer's laws drawn from a baseline: the user's bins and categories, never the
demo's, integers kept integral, drift moving mass between existing bins unless unseen values
are asked for."""

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from streamdrift.baseline import Baseline, FeatureBaseline, build_feature_baseline
from streamdrift.config import Config, FeatureSpec, parse_config
from streamdrift.features import categorical_column, numeric_column
from streamdrift.monitor import compare_to_baseline, reference_baseline
from streamdrift.synthetic import SyntheticStream, baseline_sampler, demo_config

DRAWS = 20_000


def _baseline(features: dict[str, FeatureBaseline]) -> Baseline:
    return Baseline(features, created_at="2026-01-01T00:00:00Z", source="t", smoothing=0.5)


def _numeric(values: Sequence[object], bins: int = 10) -> FeatureBaseline:
    spec = FeatureSpec("x", ("x",), "numeric")
    return build_feature_baseline(spec, numeric_column(values), bins, 50, 0.5)


def _categorical(values: Sequence[object]) -> FeatureBaseline:
    spec = FeatureSpec("c", ("c",), "categorical")
    return build_feature_baseline(spec, categorical_column(values), 10, 50, 0.5)


def _reference_counts_fit(feature: FeatureBaseline, drawn: list[object]) -> float:
    """The p-value of a chi-square test of the drawn values' bin counts against the
    reference's bin proportions (bins the reference never filled must stay empty)."""
    column = (numeric_column(drawn) if feature.type == "numeric"
              else categorical_column(drawn))
    counts = np.bincount(feature.bin(column)[column.status == 0], minlength=feature.n_bins)
    occupied = feature.counts > 0
    assert not counts[~occupied].any(), "a value fell in a bin the reference never filled"
    expected = feature.counts[occupied] / feature.counts.sum() * counts.sum()
    return float(stats.chisquare(counts[occupied], expected).pvalue)


def test_numeric_values_follow_the_reference_bins() -> None:
    rng = np.random.default_rng(1)
    feature = _numeric(np.round(rng.gamma(2.0, 30.0, 5000), 2).tolist())
    drawn = baseline_sampler(feature)(np.random.default_rng(2), DRAWS, False)
    assert _reference_counts_fit(feature, drawn) > 1e-3
    assert feature.minimum <= min(drawn)
    assert max(drawn) <= feature.maximum


def test_integer_features_stay_integers_in_their_bins() -> None:
    rng = np.random.default_rng(3)
    tenure = rng.integers(0, 73, 5000).tolist()
    feature = _numeric(tenure, bins=12)
    assert feature.integral
    assert _baseline({"x": feature}).to_json()["features"]["x"]["integral"] is True
    sampler = baseline_sampler(feature)
    for drift in (False, True):
        drawn = sampler(np.random.default_rng(4), DRAWS, drift)
        assert all(type(value) is int for value in drawn)
    drawn = sampler(np.random.default_rng(4), DRAWS, False)
    assert _reference_counts_fit(feature, drawn) > 1e-3
    assert set(drawn) <= set(range(0, 73))


def test_single_value_bins_send_that_value() -> None:
    # A few distinct prices: each bin holds one value, and exactly those values are sent.
    rng = np.random.default_rng(5)
    prices = [9.99, 19.99, 29.5, 49.0]
    feature = _numeric(rng.choice(prices, 5000, p=[0.4, 0.3, 0.2, 0.1]).tolist())
    assert not feature.integral
    assert None not in feature.single_values
    drawn = baseline_sampler(feature)(np.random.default_rng(6), DRAWS, False)
    assert set(drawn) == set(prices)
    assert _reference_counts_fit(feature, drawn) > 1e-3


def test_numeric_drift_shifts_the_values_by_the_drift_size() -> None:
    rng = np.random.default_rng(7)
    feature = _numeric(rng.normal(50.0, 10.0, 20_000).round(3).tolist(), bins=20)
    for size in (0.5, 1.0):
        sampler = baseline_sampler(feature, drift_size=size)
        before = np.array(sampler(np.random.default_rng(8), DRAWS, False))
        after = np.array(sampler(np.random.default_rng(8), DRAWS, True))
        # The bins' spread stands in for the standard deviation: within a few percent.
        assert (after.mean() - before.mean()) == pytest.approx(size * 10.0, rel=0.05)
    # A file written without ``std``: the unit is the standard deviation of the law drawn.
    older = baseline_sampler(dataclasses.replace(feature, std=None), drift_size=1.0)
    before = np.array(older(np.random.default_rng(8), DRAWS, False))
    after = np.array(older(np.random.default_rng(8), DRAWS, True))
    assert (after.mean() - before.mean()) == pytest.approx(before.std(), rel=0.03)


def test_categories_are_the_users_own_even_with_a_demo_name() -> None:
    # A user's "country" feature has the user's countries, not the demo's.
    values = ["NL"] * 500 + ["BE"] * 300 + ["LU"] * 200
    config = demo_config()
    feature = _categorical(values)
    demo_country = _baseline({**{spec.name: _categorical(["x"]) for spec in config.features},
                              "country": feature})
    stream = SyntheticStream(config, seed=1, baseline=demo_country)
    drawn = [message["customer"]["country"] for message in stream.messages(DRAWS)]
    assert set(drawn) == {"NL", "BE", "LU"}
    assert _reference_counts_fit(feature, drawn) > 1e-3


def test_categorical_drift_moves_mass_to_the_rarest_category_not_to_new_ones() -> None:
    feature = _categorical(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    drawn = Counter(baseline_sampler(feature, drift_size=0.5)(
        np.random.default_rng(9), DRAWS, True))
    assert set(drawn) == {"a", "b", "c"}
    # Half the mass moves to "c": 0.5 * 0.1 + 0.5 = 0.55.
    assert drawn["c"] / DRAWS == pytest.approx(0.55, abs=0.015)
    assert drawn["a"] / DRAWS == pytest.approx(0.30, abs=0.015)


def test_unseen_categories_only_when_asked_for() -> None:
    feature = _categorical(["a"] * 600 + ["b"] * 400)
    drawn = baseline_sampler(feature, drift_size=0.3, unseen=True)(
        np.random.default_rng(10), DRAWS, True)
    unseen = [value for value in drawn if value not in ("a", "b")]
    assert len(unseen) / DRAWS == pytest.approx(0.3, abs=0.015)
    assert all(value.startswith("unseen-") for value in unseen)
    undrifted = baseline_sampler(feature, unseen=True)(np.random.default_rng(10), DRAWS, False)
    assert set(undrifted) == {"a", "b"}


def test_missing_values_as_often_as_in_the_reference() -> None:
    rng = np.random.default_rng(11)
    values: list[object] = rng.normal(0, 1, 4000).tolist() + [None] * 1000
    feature = _numeric(values)
    drawn = baseline_sampler(feature)(np.random.default_rng(12), DRAWS, False)
    assert sum(value is None for value in drawn) / DRAWS == pytest.approx(0.2, abs=0.012)


def test_a_feature_missing_from_the_baseline_is_named() -> None:
    config = demo_config()
    stream = SyntheticStream(config, baseline=_baseline({}))
    with pytest.raises(ValueError, match="'session_length' is not in the baseline"):
        stream.sampler("session_length")


# Ten categories, three kept (baseline.max_categories): 69.5 % of the reference falls in the
# other bin, whose categories the baseline does not name.
MANY_CATEGORIES = {"k0": 2100, "k1": 2000, "k2": 2000, "k3": 1986, "k4": 1986, "k5": 1986,
                   "k6": 1986, "k7": 1986, "k8": 1986, "k9": 1984}


def _many_categories_config(missing_values: Sequence[str] | None = None) -> Config:
    feature: dict[str, object] = {"name": "city", "type": "categorical"}
    if missing_values is not None:
        feature["missing_values"] = list(missing_values)
    return parse_config({"features": [feature], "baseline": {"max_categories": 3}},
                        base_dir=Path.cwd())


def test_the_other_bin_is_drawn_and_a_replay_against_its_baseline_is_not_flagged() -> None:
    config = _many_categories_config()
    reference = [name for name, count in MANY_CATEGORIES.items() for _ in range(count)]
    baseline = reference_baseline(config, {"city": categorical_column(reference)})
    feature = baseline["city"]
    assert feature.categories == ("k0", "k1", "k2")
    assert feature.counts[feature.other_bin] / feature.count == pytest.approx(0.695)
    seeds, draws = 100, 5000
    p_values, other_shares = [], []
    for seed in range(seeds):
        messages = SyntheticStream(config, seed=seed, baseline=baseline).messages(draws)
        drawn = [message["city"] for message in messages]
        # The other share goes to names the baseline does not list: never unseen-N ones.
        assert not any(str(value).startswith("unseen-") for value in drawn)
        other_shares.append(sum(value not in feature.categories for value in drawn) / draws)
        report = compare_to_baseline(config, baseline, {"city": categorical_column(drawn)})
        city = report.features["city"]
        assert report.drifted == [], (seed, city.kl)
        assert city.kl is not None
        assert city.kl < city.threshold / 10, (seed, city.kl)
        assert city.p_value is not None
        p_values.append(city.p_value)
    assert np.mean(other_shares) == pytest.approx(0.695, abs=0.005)
    # Without drift the G-test's p-values are about uniform: about 5 in 100 below 0.05
    # (more than 15 has a chance of about 1e-4), and no sign of a shifted law.
    assert sum(p < 0.05 for p in p_values) <= 15
    assert stats.kstest(p_values, "uniform").pvalue > 1e-3


def test_other_names_are_no_listed_category_and_none_counted_as_missing() -> None:
    # "other-1" is a listed category and "other-2" a missing value: neither is sent for
    # the other bin, which must land there (not in a listed bin, nor among the missing).
    config = _many_categories_config(missing_values=["other-2"])
    counts = {**MANY_CATEGORIES, "other-1": 2500}
    reference = [name for name, count in counts.items() for _ in range(count)]
    baseline = reference_baseline(config, {"city": categorical_column(reference)})
    assert "other-1" in baseline["city"].categories
    drawn = [message["city"] for message in
             SyntheticStream(config, seed=3, baseline=baseline).messages(DRAWS)]
    others = {value for value in drawn if value not in baseline["city"].categories}
    assert others
    assert not others & {"other-1", "other-2", None}
    assert all(value.startswith("other-") for value in others)
    assert _reference_counts_fit(baseline["city"], drawn) > 1e-3
