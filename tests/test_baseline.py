from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamdrift.baseline import (
    BASELINE_FORMAT,
    build_baseline,
    build_feature_baseline,
    check_baseline_fits,
    describe_baseline,
    load_baseline,
    quantile_edges,
    save_baseline,
)
from streamdrift.config import FeatureSpec
from streamdrift.errors import BaselineError
from streamdrift.features import categorical_column, numeric_column

NUMERIC = FeatureSpec("x", ("x",), "numeric")
CATEGORICAL = FeatureSpec("c", ("c",), "categorical")


@given(hnp.arrays(np.float64, st.integers(1, 500),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)),
       st.integers(1, 50))
def test_quantile_bins_are_never_empty_and_edges_increase(values, bins):
    edges = quantile_edges(values, bins)
    assert len(edges) <= bins - 1 or bins == 1
    assert np.all(np.diff(edges) > 0)
    counts = np.bincount(np.searchsorted(edges, values, side="right"),
                         minlength=len(edges) + 1)
    assert np.all(counts > 0)


def test_a_discrete_feature_gets_one_bin_per_value():
    rating = np.repeat(np.arange(11.0), [5, 8, 10, 12, 15, 20, 15, 12, 10, 8, 5])
    feature = build_feature_baseline(NUMERIC, numeric_column(rating.tolist()), 20, 50, 0.5)
    assert feature.edges.tolist() == [float(v) for v in range(1, 11)]
    assert feature.counts.tolist() == [5, 8, 10, 12, 15, 20, 15, 12, 10, 8, 5]


def test_continuous_feature_gets_equal_frequency_bins():
    values = np.random.default_rng(1).normal(size=100_000)
    feature = build_feature_baseline(NUMERIC, numeric_column(values.tolist()), 20, 50, 0.5)
    assert feature.n_bins == 20
    np.testing.assert_allclose(feature.counts / 100_000, 0.05, atol=1e-3)


def test_values_outside_the_reference_range_fall_in_the_end_bins():
    feature = build_feature_baseline(NUMERIC, numeric_column(list(range(100))), 10, 50, 0.5)
    bins = feature.bin(numeric_column([-1e9, 1e9, 50]))
    assert bins.tolist()[:2] == [0, feature.n_bins - 1]
    assert feature.out_of_range(numeric_column([-1, 0, 99, 100, None])) == 2


def test_categorical_keeps_the_most_frequent_and_an_other_bin():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + [None] * 2
    feature = build_feature_baseline(CATEGORICAL, categorical_column(values), 20, 2, 0.5)
    # b and c tie: the name breaks the tie so that rebuilding gives the same file.
    assert feature.categories == ("a", "b")
    assert feature.counts.tolist() == [5, 3, 4]
    assert feature.missing == 2
    bins = feature.bin(categorical_column(["a", "b", "c", "never-seen"]))
    assert bins.tolist() == [0, 1, 2, 2]


def test_probabilities_are_smoothed_positive_and_sum_to_one():
    feature = build_feature_baseline(CATEGORICAL, categorical_column(["a"] * 10), 20, 50, 0.5)
    assert feature.counts.tolist() == [10, 0]
    assert np.all(feature.probabilities > 0)
    assert feature.probabilities.sum() == pytest.approx(1.0)
    assert feature.probabilities[1] == pytest.approx(0.5 / 11)


def test_a_feature_without_usable_values_is_refused_by_name():
    with pytest.raises(BaselineError, match="'x' has no usable value"):
        build_feature_baseline(NUMERIC, numeric_column([None, "a"]), 20, 50, 0.5)


def _two_feature_baseline():
    columns = {"x": numeric_column(list(range(1000))),
               "c": categorical_column(["a", "b", "b", None])}
    return build_baseline([NUMERIC, CATEGORICAL], columns, {"x": 8, "c": 8}, 50, 0.5, "test")


def test_baseline_file_round_trips_and_is_readable_json(tmp_path: Path):
    baseline = _two_feature_baseline()
    path = tmp_path / "b.json"
    save_baseline(baseline, path)
    document = json.loads(path.read_text())
    assert document["format"] == BASELINE_FORMAT
    x = document["features"]["x"]
    assert len(x["probabilities"]) == len(x["edges"]) + 1
    c = document["features"]["c"]
    assert len(c["probabilities"]) == len(c["categories"]) + 1
    assert c["missing"] == 1
    loaded = load_baseline(path)
    assert loaded.content_hash() == baseline.content_hash()
    for name in ("x", "c"):
        np.testing.assert_array_equal(loaded[name].probabilities, baseline[name].probabilities)
        np.testing.assert_array_equal(loaded[name].edges, baseline[name].edges)
    # Anyone holding the file can bin a value the documented way.
    assert int(np.searchsorted(x["edges"], 500.0, side="right")) == int(
        baseline["x"].bin(numeric_column([500.0]))[0])
    assert "x" in describe_baseline(loaded)
    assert "numeric" in describe_baseline(loaded)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other/v9"), "format must be"),
        (lambda d: d["features"]["x"]["edges"].reverse(), "'x': edges must be strictly"),
        (lambda d: d["features"]["x"]["probabilities"].append(0.1), "'x': needs len"),
        (lambda d: d["features"]["c"]["probabilities"].__setitem__(0, 0.0),
         "'c': every probability must be > 0"),
        (lambda d: d["features"]["c"]["probabilities"].__setitem__(0, 0.9),
         "'c': probabilities must sum to 1"),
        (lambda d: d["features"]["c"].update(type="text"), "'c': type must be"),
        (lambda d: d["features"]["c"].update(categories=["a", "a"]), "'c': categories must not"),
        (lambda d: d["features"]["x"].update(missing=-1), "'x': missing must be"),
    ],
)
def test_loading_names_the_feature_at_fault(tmp_path: Path, mutate, message):
    path = tmp_path / "b.json"
    save_baseline(_two_feature_baseline(), path)
    document = json.loads(path.read_text())
    mutate(document)
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


def test_unreadable_baselines_fail_clearly(tmp_path: Path):
    with pytest.raises(BaselineError, match="cannot read baseline"):
        load_baseline(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_baseline(tmp_path / "bad.json")


def test_baseline_must_fit_the_configured_features():
    baseline = _two_feature_baseline()
    check_baseline_fits(baseline, [NUMERIC], "b.json")
    with pytest.raises(BaselineError, match="'y' is configured but not in the baseline"):
        check_baseline_fits(baseline, [FeatureSpec("y", ("y",), "numeric")], "b.json")
    with pytest.raises(BaselineError, match="'x' is categorical in the config but numeric"):
        check_baseline_fits(baseline, [FeatureSpec("x", ("x",), "categorical")], "b.json")
