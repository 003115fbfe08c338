from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import os
import re
import stat
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamdrift.baseline import (
    BASELINE_FORMAT,
    Baseline,
    FeatureBaseline,
    build_baseline,
    build_feature_baseline,
    check_baseline_fits,
    describe_baseline,
    diff_baselines,
    format_edges,
    format_number,
    load_baseline,
    parse_baseline,
    project_onto,
    quantile_edges,
    save_baseline,
)
from streamdrift.config import FeatureSpec
from streamdrift.errors import BaselineError, join_problems
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
    # One row per feature: name, type, bins, usable and missing reference values.
    table = describe_baseline(loaded).split("\n\n")[1].splitlines()[1:]
    rows = {line.split()[0]: line.split() for line in table}
    assert set(rows) == {"x", "c"}
    for name in ("x", "c"):
        feature = loaded[name]
        assert rows[name][1:5] == [feature.type, str(feature.n_bins), str(feature.count),
                                   str(feature.missing)]
    assert describe_baseline(loaded).splitlines()[4] == f"hash        {baseline.content_hash()}"


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
        # Found by fuzzing (tests/fuzz/corpus/baseline/integer-beyond-float-range and
        # count-beyond-int64): OverflowErrors, not BaselineErrors.
        (lambda d: d.update(smoothing=10**400), "smoothing must be a number > 0"),
        (lambda d: d["features"]["x"]["edges"].__setitem__(0, -(10**400)),
         "'x': edges must be a list of finite numbers"),
        (lambda d: d["features"]["x"].update(counts=[2**62] * len(d["features"]["x"]["counts"])),
         r"'x': counts must sum to at most 2\*\*63 - 1"),
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


def test_a_baseline_that_is_not_utf8_or_nested_too_deeply_fails_clearly(tmp_path: Path):
    # Found by fuzzing (tests/fuzz/corpus/baseline/not-utf8 and nested-too-deeply): a
    # UnicodeDecodeError and a RecursionError, not BaselineErrors.
    path = tmp_path / "latin1.json"
    path.write_bytes('{"source": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(BaselineError, match=re.escape(
            f"baseline {path} is not UTF-8 text (byte 16 is b'\\xe9')")):
        load_baseline(path)
    path.write_text('{"features": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BaselineError, match=re.escape(
            f"baseline {path} is nested too deeply to be a baseline (hundreds of levels)")):
        load_baseline(path)


def test_baseline_must_fit_the_configured_features():
    baseline = _two_feature_baseline()
    check_baseline_fits(baseline, [NUMERIC], "b.json")
    with pytest.raises(BaselineError, match="'y' is configured but not in the baseline"):
        check_baseline_fits(baseline, [FeatureSpec("y", ("y",), "numeric")], "b.json")
    with pytest.raises(BaselineError, match="'x' is categorical in the config but numeric"):
        check_baseline_fits(baseline, [FeatureSpec("x", ("x",), "categorical")], "b.json")


def _document() -> dict:
    """A valid baseline file, written by hand: every key the format has."""
    return {
        "format": BASELINE_FORMAT,
        "created_at": "2024-05-01T12:00:00Z",
        "source": "train.parquet",
        "smoothing": 0.5,
        "features": {
            "x": {"type": "numeric", "edges": [1.0, 2.0], "min": 0.0, "max": 3.0,
                  "probabilities": [0.25, 0.5, 0.25], "counts": [1, 2, 1], "count": 4,
                  "missing": 1, "invalid": 2},
            "c": {"type": "categorical", "categories": ["a", "b"],
                  "probabilities": [0.5, 0.25, 0.25], "counts": [2, 1, 1], "count": 4,
                  "missing": 3, "invalid": 0},
        },
    }


def test_parsing_reads_every_key_of_the_file():
    document = _document()
    document["features"]["x"].update(single_values=[None, 1, 2.5], integral=True, std=0.75)
    baseline = parse_baseline(copy.deepcopy(document), "b.json")
    assert baseline["x"].single_values == (None, 1.0, 2.5)
    assert (baseline["x"].integral, baseline["x"].std) == (True, 0.75)
    assert (baseline.format, baseline.created_at, baseline.source, baseline.smoothing) == (
        BASELINE_FORMAT, document["created_at"], document["source"], document["smoothing"])
    assert list(baseline.features) == ["x", "c"]
    for name, raw in document["features"].items():
        feature = baseline[name]
        assert (feature.name, feature.type, feature.missing, feature.invalid) == (
            name, raw["type"], raw["missing"], raw["invalid"])
        assert feature.counts.tolist() == raw["counts"]
        assert feature.counts.dtype == np.int64
        assert feature.probabilities.tolist() == raw["probabilities"]
        assert feature.edges.tolist() == raw.get("edges", [])
        assert feature.categories == tuple(raw.get("categories", ()))
        assert (feature.minimum, feature.maximum) == (raw.get("min"), raw.get("max"))
    # And written back, the file is the same document.
    assert baseline.to_json() == document


def test_optional_keys_take_their_defaults():
    document = _document()
    for key in ("created_at", "source", "smoothing"):
        del document[key]
    for raw in document["features"].values():
        for key in ("counts", "count", "missing", "invalid", "min", "max"):
            raw.pop(key, None)
    baseline = parse_baseline(document, "b.json")
    assert (baseline.created_at, baseline.source, baseline.smoothing) == ("", "", 0.5)
    for feature in baseline.features.values():
        assert feature.counts.tolist() == [0] * feature.n_bins
        assert (feature.missing, feature.invalid) == (0, 0)
        assert (feature.minimum, feature.maximum) == (None, None)


@pytest.mark.parametrize("change", [
    lambda d: d.update(smoothing=1e-9),
    lambda d: d["features"]["x"].update(min=2.5, max=2.5),  # a constant reference value
    lambda d: d["features"]["x"].update(counts=[0, 0, 0]),  # written without its counts
    lambda d: d["features"]["x"].update(counts=[2**63 - 5, 1, 3], count=2**63 - 1),
    lambda d: d["features"]["x"].update(std=0),  # a constant reference value
    lambda d: d["features"]["x"].update(std=0.5),
    lambda d: d["features"]["x"].update(single_values=[None, 1.5, None]),
])
def test_edge_cases_of_valid_files_are_accepted(change):
    document = _document()
    change(document)
    parse_baseline(document, "b.json")


def _x(**changes: object):
    return lambda d: d["features"]["x"].update(changes)


def _c(**changes: object):
    return lambda d: d["features"]["c"].update(changes)


@pytest.mark.parametrize(("change", "problems"), [
    (lambda d: d.update(format="other/v9"),
     [f"format must be {BASELINE_FORMAT!r} (got 'other/v9')"]),
    (lambda d: d.update(smoothing=-1), ["smoothing must be a number > 0 (got -1)"]),
    (lambda d: d.update(smoothing=0), ["smoothing must be a number > 0 (got 0)"]),
    (lambda d: d.update(smoothing=True), ["smoothing must be a number > 0 (got True)"]),
    (lambda d: d.update(smoothing="0.5"), ["smoothing must be a number > 0 (got '0.5')"]),
    (lambda d: d.update(smoothing=math.inf), ["smoothing must be a number > 0 (got inf)"]),
    (lambda d: d.update(features={}),
     ["features must be a non-empty object of feature name -> bins"]),
    (lambda d: d.update(features=[1]),
     ["features must be a non-empty object of feature name -> bins"]),
    (lambda d: d["features"].update(x=3), ["feature 'x': must be an object"]),
    (_x(probabilities=[0.5, "a", 0.5]),
     ["feature 'x': probabilities must be a list of finite numbers"]),
    (_x(probabilities=0.5), ["feature 'x': probabilities must be a list of finite numbers"]),
    (_x(probabilities=[0.5, 0.0, 0.5]), ["feature 'x': every probability must be > 0 (smoothed)"]),
    (_x(edges=None), ["feature 'x': edges must be a list of finite numbers"]),
    (_x(edges=[1.0, "2"]), ["feature 'x': edges must be a list of finite numbers"]),
    (_x(edges=[1.0, math.nan]), ["feature 'x': edges must be a list of finite numbers"]),
    (_x(edges=[1.0, 1.0]), ["feature 'x': edges must be strictly increasing"]),
    (_x(edges=[1.0]), ["feature 'x': needs len(edges) + 1 = 2 probabilities (got 3)"]),
    (_x(min=None), ["feature 'x': min and max must both be numbers with min <= max "
                    "(got None, 3.0)"]),
    (_x(max=None), ["feature 'x': min and max must both be numbers with min <= max "
                    "(got 0.0, None)"]),
    (_x(min=4.0), ["feature 'x': min and max must both be numbers with min <= max "
                   "(got 4.0, 3.0)"]),
    (_x(min="0"), ["feature 'x': min and max must both be numbers with min <= max "
                   "(got '0', 3.0)"]),
    (_c(categories=None), ["feature 'c': categories must be a list of strings"]),
    (_c(categories=["a", 1]), ["feature 'c': categories must be a list of strings"]),
    (_c(categories=["a", "a"]), ["feature 'c': categories must not repeat"]),
    (_c(categories=["a"]), ["feature 'c': needs len(categories) + 1 = 2 probabilities, the "
                            "last for other categories (got 3)"]),
    (_x(counts=[1, -1, 1]), ["feature 'x': counts must be a list of non-negative integers"]),
    (_x(counts=[1, True, 1]), ["feature 'x': counts must be a list of non-negative integers"]),
    (_x(counts="4"), ["feature 'x': counts must be a list of non-negative integers"]),
    (_x(counts=[2, 2]), ["feature 'x': counts must have one entry per probability (got 2)"]),
    (_x(missing=-1), ["feature 'x': missing must be a non-negative integer (got -1)"]),
    (_x(invalid=1.5), ["feature 'x': invalid must be a non-negative integer (got 1.5)"]),
    (_x(count=7), ["feature 'x': count 7 differs from the sum of counts 4"]),
    (_x(integral="yes"), ["feature 'x': integral must be true or false (got 'yes')"]),
    (_x(std=-1.0), ["feature 'x': std must be a number >= 0 (got -1.0)"]),
    (_x(std="2"), ["feature 'x': std must be a number >= 0 (got '2')"]),
    (_x(single_values=[0.5]),
     ["feature 'x': single_values must be a list of numbers or nulls, one per bin"]),
    (_x(single_values=[0.5, "1", None]),
     ["feature 'x': single_values must be a list of numbers or nulls, one per bin"]),
    (_x(single_values=7),
     ["feature 'x': single_values must be a list of numbers or nulls, one per bin"]),
    (_x(single_values={}),
     ["feature 'x': single_values must be a list of numbers or nulls, one per bin"]),
    # Every problem is reported, feature by feature.
    (lambda d: (d.update(smoothing=-1), d["features"]["c"].update(missing=None)),
     ["smoothing must be a number > 0 (got -1)",
      "feature 'c': missing must be a non-negative integer (got None)"]),
])
def test_every_problem_of_a_file_is_named(change, problems):
    document = _document()
    change(document)
    with pytest.raises(BaselineError) as raised:
        parse_baseline(document, "b.json")
    assert str(raised.value) == join_problems("invalid baseline b.json:", problems)
    assert raised.value.problems == tuple(problems)  # a log line each


def test_probabilities_must_sum_to_one_within_rounding():
    document = _document()
    document["features"]["x"]["probabilities"] = [0.25, 0.5, 0.25 + 2e-6]
    with pytest.raises(BaselineError) as raised:
        parse_baseline(document, "b.json")
    total = math.fsum(document["features"]["x"]["probabilities"])
    assert str(raised.value) == (
        f"invalid baseline b.json: feature 'x': probabilities must sum to 1 (got {total!r})")
    document["features"]["x"]["probabilities"] = [0.25, 0.5, 0.25 + 1e-7]
    parse_baseline(document, "b.json")


def test_a_document_that_is_not_an_object_is_refused():
    with pytest.raises(BaselineError) as raised:
        parse_baseline([], "b.json")
    assert str(raised.value) == "baseline b.json: must be a JSON object"


def test_loading_names_the_file(tmp_path: Path):
    path = tmp_path / "b.json"
    document = _document()
    document["format"] = "other/v9"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(path)
    assert str(raised.value).startswith(f"invalid baseline {path}: format must be")


def test_a_baseline_read_back_has_the_same_bins(tmp_path: Path):
    baseline = _two_feature_baseline()
    save_baseline(baseline, tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")
    for name in ("x", "c"):
        assert loaded[name].same_bins(baseline[name])
    x, c = baseline["x"], baseline["c"]
    assert not x.same_bins(c)
    assert not x.same_bins(dataclasses.replace(x, edges=x.edges[1:]))
    assert not c.same_bins(dataclasses.replace(c, categories=c.categories[::-1]))
    assert not c.same_bins(dataclasses.replace(c, type="numeric"))
    # The probabilities may differ.
    assert c.same_bins(dataclasses.replace(c, probabilities=c.probabilities[::-1]))


def test_bins_are_integer_indices_for_both_types():
    baseline = _two_feature_baseline()
    assert baseline["x"].bin(numeric_column([1.0, 500.0])).dtype == np.int64
    assert baseline["c"].bin(categorical_column(["a", "z"])).dtype == np.int64


def test_out_of_range_needs_a_recorded_range():
    baseline = _two_feature_baseline()
    column = numeric_column([-5.0, 50.0, 5000.0])
    assert baseline["x"].out_of_range(column) == 2
    no_range = dataclasses.replace(baseline["x"], minimum=None, maximum=None)
    assert no_range.out_of_range(column) == 0
    assert baseline["c"].out_of_range(categorical_column(["a"])) == 0


def test_reference_values_are_counted_by_state():
    values = [3.0, None, "3", 1.0, math.inf, float("nan"), 2.0, {"a": 1}]
    feature = build_feature_baseline(NUMERIC, numeric_column(values), 20, 50, 0.5)
    assert (feature.name, feature.count, feature.missing, feature.invalid) == ("x", 3, 2, 3)
    assert feature.counts.dtype == np.int64
    assert feature.missing_ratio == 2 / 8
    labels = ["a", None, 3, ["a"], "b", None, "a"]
    feature = build_feature_baseline(CATEGORICAL, categorical_column(labels), 20, 50, 0.5)
    assert (feature.name, feature.count, feature.missing, feature.invalid) == ("c", 4, 2, 1)
    assert feature.counts.dtype == np.int64


@given(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=60), st.integers(1, 8))
def test_kept_categories_are_the_most_frequent_ties_broken_by_name(labels, max_categories):
    feature = build_feature_baseline(CATEGORICAL, categorical_column(labels), 20,
                                     max_categories, 0.5)
    frequency = Counter(labels)
    kept = feature.categories
    assert len(kept) == min(max_categories, len(frequency))
    assert feature.counts.tolist() == [frequency[c] for c in kept] + [
        len(labels) - sum(frequency[c] for c in kept)]
    # Listed from the most frequent; any category left out is rarer, or as frequent and later
    # in name order, than every one kept.
    assert [frequency[c] for c in kept] == sorted((frequency[c] for c in kept), reverse=True)
    for left_out in set(frequency) - set(kept):
        for category in kept:
            assert (frequency[left_out], category) < (frequency[category], left_out)
    for first, second in itertools.pairwise(kept):
        assert frequency[first] > frequency[second] or first < second


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8, unique=True), st.data())
def test_a_feature_with_at_most_bins_distinct_values_gets_one_bin_per_value(distinct, data):
    # As many bins as values, or a few more: the boundary between the two ways of binning.
    bins = data.draw(st.integers(max(2, len(distinct)), len(distinct) + 2))
    repeats = data.draw(st.lists(st.integers(1, 40), min_size=len(distinct),
                                 max_size=len(distinct)))
    values = np.repeat(np.array(distinct), repeats)
    values = data.draw(st.permutations(values.tolist()))
    assert quantile_edges(np.array(values), bins).tolist() == sorted(distinct)[1:]


@pytest.mark.parametrize(("values", "bins"), [
    ([0.0, 5.0], 2),
    ([0.0, 1.0] + [2.0] * 40, 3),  # equal-frequency edges would merge 0 and 1
])
def test_as_many_bins_as_values_give_one_bin_per_value(values, bins):
    assert quantile_edges(np.array(values), bins).tolist() == sorted(set(values))[1:]


def test_build_baseline_keeps_the_configured_number_of_categories_and_stamps_the_time():
    before = datetime.now(UTC).replace(microsecond=0)
    columns = {"x": numeric_column([1.0, 2.0, 3.0]),
               "c": categorical_column(["a", "b", "b", "c", "c", "c"])}
    baseline = build_baseline([NUMERIC, CATEGORICAL], columns, {"x": 8, "c": 8}, 2, 0.25,
                              "train.csv")
    after = datetime.now(UTC)
    assert baseline["c"].categories == ("c", "b")
    assert (baseline.source, baseline.smoothing) == ("train.csv", 0.25)
    # UTC to the second, written with a Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", baseline.created_at)
    created = datetime.fromisoformat(baseline.created_at)
    assert created.tzinfo is not None
    assert before <= created <= after


def test_saving_creates_the_folder_and_writes_indented_json(tmp_path: Path):
    path = tmp_path / "new" / "folder" / "b.json"
    baseline = _two_feature_baseline()
    save_baseline(baseline, path)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == baseline.to_json()
    # Indented by two, ending with a newline: a diff of two baselines reads line by line.
    assert text.splitlines()[1] == f'  "format": "{BASELINE_FORMAT}",'
    assert text.endswith("}\n")
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_saving_writes_a_hidden_file_beside_the_target_and_renames_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "b.json"
    renames: list[tuple[Path, Path]] = []
    replace = os.replace

    def recording_replace(source: str, target: Path) -> None:
        renames.append((Path(source), Path(target)))
        replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    save_baseline(_two_feature_baseline(), path)
    [(temporary, target)] = renames
    assert target == path
    assert temporary.parent == path.parent  # the same file system: the rename is atomic
    assert temporary.name.startswith(".b.json.")


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def failing_replace(source: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        save_baseline(_two_feature_baseline(), tmp_path / "b.json")
    assert list(tmp_path.iterdir()) == []


def test_a_baseline_that_does_not_fit_names_every_problem():
    baseline = _two_feature_baseline()
    with pytest.raises(BaselineError) as raised:
        check_baseline_fits(baseline, [FeatureSpec("y", ("y",), "numeric"),
                                       FeatureSpec("x", ("x",), "categorical")], "b.json")
    problems = ("feature 'y' is configured but not in the baseline; rebuild it with "
                "`streamdrift baseline build`",
                "feature 'x' is categorical in the config but numeric in the baseline")
    assert str(raised.value) == join_problems("baseline b.json does not fit the config:",
                                              list(problems))
    assert raised.value.problems == problems


def test_the_summary_shows_each_feature_s_shape():
    ranged = FeatureBaseline("amount", "numeric", np.array([1, 2, 1]),
                             np.array([0.25, 0.5, 0.25]), missing=4, invalid=7,
                             edges=np.array([1.0, 2.0]), minimum=0.5, maximum=1234567.0)
    bare = FeatureBaseline("score", "numeric", np.array([1, 1]), np.array([0.5, 0.5]),
                           edges=np.array([0.0]))
    tier = FeatureBaseline("tier", "categorical", np.array([1, 4, 2, 3, 0]),
                           np.array([0.1, 0.4, 0.2, 0.25, 0.05]),
                           categories=("a", "b", "c", "d"))
    baseline = Baseline({"amount": ranged, "score": bare, "tier": tier},
                        "2024-05-01T12:00:00Z", "train.csv", 0.5)
    assert describe_baseline(baseline).splitlines() == [
        f"format      {BASELINE_FORMAT}",
        "created_at  2024-05-01T12:00:00Z",
        "source      train.csv",
        "smoothing   0.5",
        f"hash        {baseline.content_hash()}",
        "",
        "feature                  type          bins      count  missing  invalid  shape",
        "amount                   numeric          3          4        4        7  "
        "range [0.5, 1.23457e+06]",
        "score                    numeric          2          2        0        0  1 edges",
        "tier                     categorical      5         10        0        0  "
        "b 40%, d 25%, c 20% ... other 5.0%",
        "",
        "bins (label: reference share):",
        "  amount: < 1 25.0%, [1, 2) 50.0%, >= 2 25.0%",
        "  score: < 0 50.0%, >= 0 50.0%",
        "  tier: a 10.0%, b 40.0%, c 20.0%, d 25.0%, other 5.0%",
    ]


def test_a_baseline_file_is_read_as_utf_8_whatever_the_locale(tmp_path: Path):
    """A file written by hand or by another tool may hold any text unescaped: it is read as
    UTF-8 even where the locale's encoding is ASCII (C locale, without Python's UTF-8 mode).
    (Files streamdrift writes are ASCII: json.dumps escapes the rest.)"""
    document = _document()
    document["features"]["c"]["categories"] = ["São Paulo", "Zürich"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert load_baseline(path)["c"].categories == ("São Paulo", "Zürich")
    script = (
        "import sys\n"
        "from streamdrift.baseline import load_baseline\n"
        "assert not sys.flags.utf8_mode\n"
        "print(ascii(load_baseline(__import__('pathlib').Path(sys.argv[1]))['c'].categories))\n"
    )
    environment = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                   "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run([sys.executable, "-c", script, str(path)], env=environment,
                            cwd=Path.cwd(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ascii(("São Paulo", "Zürich"))


def test_a_saved_baseline_is_readable_by_other_users(tmp_path: Path):
    """mkstemp's 0600 would keep a container running under another user out."""
    previous = os.umask(0o022)
    try:
        save_baseline(_two_feature_baseline(), tmp_path / "baseline.json")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "baseline.json").stat().st_mode) == 0o644


# ---- bin labels -------------------------------------------------------------------------------

def _range_labels(edges: list[float]) -> tuple[str, ...]:
    texts = format_edges(edges)
    return (f"< {texts[0]}", *(f"[{a}, {b})" for a, b in itertools.pairwise(texts)),
            f">= {texts[-1]}")


def test_numeric_labels_are_ranges_with_open_ends_even_where_the_reference_held_one_value():
    spec = FeatureSpec("x", ("x",), "numeric")
    # 0 and 1 (one bin each, holding one value) then a long tail, not whole numbers.
    values = [0.0] * 50 + [1.0] * 30 + [2.5, 3.5, 7.25, 12.0, 99.0] * 10
    feature = build_feature_baseline(spec, numeric_column(values), 4, 50, 0.5)
    assert not feature.integral
    assert feature.single_values[0] == 0.0  # the reference's first bin held 0 only
    assert feature.bin_labels == _range_labels(feature.edges.tolist())
    assert feature.bin_labels[0] == "< 1"
    # An oracle for the single values: the bins' distinct reference values.
    slots = np.searchsorted(feature.edges, values, side="right")
    for index in range(feature.n_bins):
        distinct = set(np.asarray(values)[slots == index].tolist())
        assert feature.single_values[index] == (distinct.pop() if len(distinct) == 1
                                                else None)


def test_a_bin_that_held_one_value_is_labelled_for_the_window_values_it_takes():
    """kids 0, 1, 2, 3, 4, 7.5, 12: one value per bin in the reference, but a window's 20
    falls in the last bin, -1 in the first and 9 in [7.5, 12): every label must hold."""
    spec = FeatureSpec("kids", ("kids",), "numeric")
    feature = build_feature_baseline(spec, numeric_column([0, 1, 2, 3, 4, 7.5, 12] * 5),
                                     20, 50, 0.5)
    assert all(value is not None for value in feature.single_values)
    labels = feature.bin_labels
    assert labels == ("< 1", "[1, 2)", "[2, 3)", "[3, 4)", "[4, 7.5)", "[7.5, 12)", ">= 12")
    window = feature.bin(numeric_column([-1, 0, 9, 12, 20]))
    assert [labels[i] for i in window.tolist()] == [
        "< 1", "< 1", "[7.5, 12)", ">= 12", ">= 12"]


def test_a_whole_number_feature_names_the_one_whole_number_of_a_middle_bin():
    spec = FeatureSpec("kids", ("kids",), "numeric")
    feature = build_feature_baseline(spec, numeric_column([0, 1, 2, 3, 4, 7, 12] * 5),
                                     20, 50, 0.5)
    assert feature.integral
    # [1, 2) holds the one whole number 1; [4, 7) holds 4, 5 and 6; the ends stay open.
    assert feature.bin_labels == ("< 1", "1", "2", "3", "[4, 7)", "[7, 12)", ">= 12")
    # Edges written by hand need not be whole: [1.5, 2.5) holds the one whole number 2,
    # but only a whole-number edge is named, so it stays a range.
    by_hand = FeatureBaseline("k", "numeric", np.ones(4, dtype=np.int64), np.full(4, 0.25),
                              edges=np.array([1.0, 1.5, 2.5]), integral=True)
    assert by_hand.bin_labels == ("< 1", "1", "[1.5, 2.5)", ">= 2.5")
    # Without integral (a file written before it, or fractional values) a bin is a range.
    ranges = dataclasses.replace(feature, integral=False)
    assert ranges.bin_labels == _range_labels(feature.edges.tolist())


def test_labels_of_a_file_without_single_values_are_ranges(tmp_path: Path):
    document = _document()
    document["features"]["x"].pop("single_values", None)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(document))
    labels = load_baseline(path)["x"].bin_labels
    assert labels == _range_labels(document["features"]["x"]["edges"])


def test_single_values_and_labels_survive_the_file(tmp_path: Path):
    spec = FeatureSpec("kids", ("kids",), "numeric")
    feature = build_feature_baseline(spec, numeric_column([0, 0, 1, 2, 2, 2, 3]), 20, 50, 0.5)
    baseline = Baseline({"kids": feature}, "t", "s", 0.5)
    save_baseline(baseline, tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")["kids"]
    assert loaded.bin_labels == ("< 1", "1", "2", ">= 3") == feature.bin_labels
    assert json.loads((tmp_path / "b.json").read_text())["features"]["kids"][
        "single_values"] == [0.0, 1.0, 2.0, 3.0]


def test_labels_of_large_narrowly_spread_numbers_tell_the_edges_apart():
    """Epoch seconds around 1.7e9 with 20 bins: six significant digits would write every
    edge 1.7e+09, and the dashboard joins bins by label."""
    rng = np.random.default_rng(5)
    spec = FeatureSpec("t", ("t",), "numeric")
    for spread in (86_400.0, 30.0, 0.5):
        values = (1.7e9 + rng.uniform(0, spread, 4000)).tolist()
        feature = build_feature_baseline(spec, numeric_column(values), 20, 50, 0.5)
        labels = feature.bin_labels
        assert feature.n_bins == 20
        assert len(set(labels)) == len(labels)
        assert not any("e+" in label for label in labels)
        assert labels[0].startswith("< 17")
        assert labels[-1].startswith(">= 17")
    assert format_edges([1700000000.25, 1700000000.5, 1700000001.0]) == [
        "1700000000.2", "1700000000.5", "1700000001"]
    assert format_edges([0.1, 0.10000001, 12.5]) == ["0.1", "0.10000001", "12.5"]


_EDGES = st.lists(st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
                  min_size=1, max_size=30, unique=True).map(sorted)


@given(_EDGES, st.booleans())
def test_labels_are_unique_for_any_edges(edges, integral):
    edges = sorted(set(edges))  # -0.0 and 0.0 are one edge
    feature = FeatureBaseline("x", "numeric", np.ones(len(edges) + 1, dtype=np.int64),
                              np.full(len(edges) + 1, 1 / (len(edges) + 1)),
                              edges=np.array(edges), integral=integral)
    labels = feature.bin_labels
    assert len(labels) == feature.n_bins
    assert len(set(labels)) == len(labels)
    texts = format_edges(edges)
    assert len(set(texts)) == len(texts)
    assert all(float(text) == pytest.approx(edge, rel=1e-5, abs=1e-300)
               for text, edge in zip(texts, edges, strict=True))


@given(st.floats(-1e6, 1e6), st.floats(1e-9, 1e3), st.integers(2, 40))
def test_labels_are_unique_for_narrow_edges_around_any_number(center, step, count):
    edges = sorted({center + step * index for index in range(count)})
    assert len(set(format_edges(edges))) == len(edges)


def test_integral_and_std_survive_the_file(tmp_path: Path):
    spec = FeatureSpec("tenure", ("tenure",), "numeric")
    values = [0, 3, 3, 12, 24, 71, 72]
    feature = build_feature_baseline(spec, numeric_column(values), 4, 50, 0.5)
    assert feature.integral
    assert feature.std == pytest.approx(float(np.std(values)))
    save_baseline(Baseline({"tenure": feature}, "t", "s", 0.5), tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")["tenure"]
    assert (loaded.integral, loaded.std) == (True, feature.std)
    charges = build_feature_baseline(spec, numeric_column([19.5, 20.0, 70.25]), 4, 50, 0.5)
    assert not charges.integral
    assert "integral" not in charges.to_json()


@pytest.mark.parametrize(("categories", "expected"), [
    (("web", "app"), ("web", "app", "other")),
    (("a\nb", "tab\there", "quote\"s", "café ☕"),
     ("a\\nb", "tab\\there", "quote\"s", "café ☕", "other")),
    (("other", "web"), ("other", "web", "other (unlisted)")),
    ((), ("other",)),
])
def test_categorical_labels_are_the_categories_then_other(categories, expected):
    feature = FeatureBaseline("c", "categorical", np.ones(len(categories) + 1, dtype=np.int64),
                              np.full(len(categories) + 1, 1 / (len(categories) + 1)),
                              categories=categories)
    assert feature.bin_labels == expected
    assert all("\n" not in label for label in feature.bin_labels)


def test_a_numeric_feature_without_edges_has_one_bin_of_all_values():
    feature = FeatureBaseline("k", "numeric", np.array([9]), np.array([1.0]))
    assert feature.bin_labels == ("all values",)


# ---- baseline diff ------------------------------------------------------------------------------

def test_projection_onto_other_bins_keeps_the_mass_and_spreads_it_evenly():
    rng = np.random.default_rng(2)
    spec = FeatureSpec("x", ("x",), "numeric")
    old = build_feature_baseline(spec, numeric_column(rng.uniform(0, 100, 20_000).tolist()),
                                 10, 50, 0.5)
    new = build_feature_baseline(spec, numeric_column(rng.uniform(0, 100, 20_000).tolist()),
                                 7, 50, 0.5)
    projected = project_onto(new, old)
    assert projected.sum() == pytest.approx(1.0)
    # Uniform data: evenly spread mass is the truth, so each old bin gets its width's share.
    widths = np.diff([0.0, *old.edges.tolist(), 100.0]) / 100.0
    assert projected == pytest.approx(widths, abs=0.01)
    assert project_onto(old, old).tolist() == old.probabilities.tolist()


def test_projection_of_categories_goes_by_name_and_the_rest_to_other():
    old = FeatureBaseline("c", "categorical", np.array([5, 3, 2]), np.array([0.5, 0.3, 0.2]),
                          categories=("a", "b"))
    new = FeatureBaseline("c", "categorical", np.array([1, 2, 3, 4]),
                          np.array([0.1, 0.2, 0.3, 0.4]), categories=("b", "z", "a"))
    # a <- 0.3, b <- 0.1, other <- z 0.2 + new's other 0.4.
    assert project_onto(new, old).tolist() == pytest.approx([0.3, 0.1, 0.6])


def test_diff_names_the_feature_and_bins_that_moved():
    old = Baseline({"c": FeatureBaseline("c", "categorical", np.array([5, 3, 2]),
                                         np.array([0.5, 0.3, 0.2]), categories=("a", "b")),
                    "gone": FeatureBaseline("gone", "numeric", np.array([1]), np.array([1.0]))},
                   "t", "s", 0.5)
    new = Baseline({"c": FeatureBaseline("c", "categorical", np.array([2, 3, 5]),
                                         np.array([0.2, 0.3, 0.5]), categories=("a", "b"))},
                   "t", "s", 0.5)
    (diff,) = diff_baselines(old, new)
    assert diff.name == "c"
    assert not diff.projected
    expected = sum(p * math.log(p / q) for p, q in zip([0.2, 0.3, 0.5], [0.5, 0.3, 0.2],
                                                        strict=True))
    assert diff.kl == pytest.approx(expected)
    assert diff.moved[:2] == (("a", 0.5, 0.2), ("other", 0.2, 0.5))


def _numeric(edges: list[float], minimum: float | None = None, maximum: float | None = None,
             single_values: tuple[float | None, ...] = ()) -> FeatureBaseline:
    n = len(edges) + 1
    probabilities = np.arange(1, n + 1) / (n * (n + 1) / 2)  # 1, 2, ... shares: all differ
    return FeatureBaseline("x", "numeric", np.arange(1, n + 1), probabilities,
                           edges=np.array(edges, dtype=np.float64), minimum=minimum,
                           maximum=maximum, single_values=single_values)


def _projection_oracle(source: FeatureBaseline, target: FeatureBaseline) -> list[float]:
    """The documented projection, by interval overlap: a bin spreads its share evenly over
    [its lower edge, its upper edge), the open ends closed by the reference's min and max
    (or the nearest edge, or 0 without one, never inside the outer edges); a bin that holds
    one value, or has no width, is a point at that value (its lower end)."""
    cuts = target.edges.tolist()
    lows, highs = [-math.inf, *cuts], [*cuts, math.inf]
    edges = source.edges.tolist()
    first = (source.minimum if source.minimum is not None else edges[0] if edges else 0.0)
    last = (source.maximum if source.maximum is not None else edges[-1] if edges else 0.0)
    bounds = [min([first, *edges]), *edges, max([last, *edges])]
    result = [0.0] * target.n_bins
    for index, share in enumerate(source.probabilities.tolist()):
        single = source.single_values[index] if index < len(source.single_values) else None
        start, end = bounds[index], bounds[index + 1]
        if single is not None or end <= start:
            point = start if single is None else single
            result[sum(1 for cut in cuts if cut <= point)] += share
            continue
        for bin_index, (low, high) in enumerate(zip(lows, highs, strict=True)):
            result[bin_index] += share * max(0.0, min(end, high) - max(start, low)) / (
                end - start)
    return result


@pytest.mark.parametrize(("source", "target"), [
    # single values: one on a target edge (it belongs above it), two in one target bin
    (_numeric([2.0, 5.0, 9.0], 0.0, 12.0, (None, 3.0, 6.5, None)), _numeric([3.0, 7.0])),
    # the first bin has no width (min on the first edge): a point at it, bins after it
    (_numeric([1.0, 4.0], 1.0, 8.0), _numeric([0.5, 1.0, 3.0])),
    # no recorded range: the outer bins are points at the outer edges
    (_numeric([10.0, 20.0]), _numeric([5.0, 15.0, 20.0])),
    (_numeric([-20.0, -10.0], -30.0, None), _numeric([-15.0, -5.0])),
    # no edges: one bin, a point at 0 without a range, spread over it with one
    (_numeric([]), _numeric([0.5])),
    (_numeric([], 2.0, 6.0), _numeric([3.0, 5.0])),
    # a range narrower than the edges (a file written by hand) stops at the edges
    (_numeric([3.0, 10.0], 5.0, 20.0), _numeric([4.0])),
    (_numeric([3.0, 10.0], 0.0, 8.0), _numeric([9.0])),
])
def test_projection_spreads_ranges_and_puts_points_where_they_fall(source, target):
    projected = project_onto(source, target)
    assert projected.tolist() == pytest.approx(_projection_oracle(source, target), abs=1e-12)
    assert projected.sum() == pytest.approx(1.0)


def _categorical(name: str, shares: dict[str, float]) -> FeatureBaseline:
    *categories, _ = shares
    probabilities = np.array(list(shares.values()))
    return FeatureBaseline(name, "categorical", np.round(probabilities * 100).astype(np.int64),
                           probabilities, categories=tuple(categories))


def test_diff_of_every_feature_both_have_the_most_moved_bins_first():
    old = Baseline({
        "gone": FeatureBaseline("gone", "numeric", np.array([1]), np.array([1.0])),
        "retyped": _categorical("retyped", {"a": 0.5, "other": 0.5}),
        "c": _categorical("c", {"a": 0.3, "b": 0.2, "d": 0.2, "e": 0.1, "f": 0.1,
                                "other": 0.1}),
        "x": _numeric([10.0, 20.0, 30.0], 0.0, 40.0),
    }, "t", "s", 0.5)
    new = Baseline({
        "retyped": FeatureBaseline("retyped", "numeric", np.array([1]), np.array([1.0])),
        "c": _categorical("c", {"a": 0.15, "b": 0.2, "d": 0.3, "e": 0.1, "f": 0.17,
                                "other": 0.08}),
        "x": _numeric([12.0], 10.0, 14.0),  # all of it within [10, 20)
    }, "t", "s", 0.5)
    diffs = diff_baselines(old, new)
    assert [diff.name for diff in diffs] == ["c", "x"]
    c, x = diffs
    assert c.projected is False
    assert c.moved == (("a", 0.3, 0.15), ("d", 0.2, 0.3), ("f", 0.1, 0.17))
    q, p = old["c"].probabilities, new["c"].probabilities
    assert c.kl == pytest.approx(float(np.sum(p * np.log(p / q))))
    assert [label for label, _, _ in diff_baselines(old, new, top=10)[0].moved] == [
        "a", "d", "f", "other"]  # the bins that did not move are not listed
    # x: the new baseline's bins all fall in the old [10, 20): the other old bins are empty.
    assert x.projected is True
    assert x.kl == pytest.approx(math.log(1.0 / old["x"].probabilities[1]))
    label, before, after = x.moved[0]
    assert (label, before) == ("[10, 20)", old["x"].probabilities[1])
    assert after == pytest.approx(1.0)


def test_bins_that_moved_alike_are_listed_in_bin_order():
    categories = [f"k{index:02}" for index in range(31)]
    before = _categorical("c", dict.fromkeys([*categories, "other"], 1 / 32))
    shares = [1 / 32] * 32
    for index in (3, 7, 11):
        shares[index] += 1 / 64
    for index in (15, 19, 23):
        shares[index] -= 1 / 64
    after = _categorical("c", dict(zip([*categories, "other"], shares, strict=True)))
    (diff,) = diff_baselines(Baseline({"c": before}, "t", "s", 0.5),
                             Baseline({"c": after}, "t", "s", 0.5))
    assert [label for label, _, _ in diff.moved] == ["k03", "k07", "k11"]


def test_numbers_are_written_with_six_significant_digits_and_plain_up_to_1e15():
    assert format_number(1 / 3) == "0.333333"
    assert format_number(12.3456789) == "12.3457"
    assert format_number(12.0000001) == "12"  # rounds to a whole number: no point
    assert format_number(999999999999999.0) == "999999999999999"
    assert format_number(1e15) == "1e+15"
    assert format_edges([1.2345678, 2.0]) == ["1.23457", "2"]


def test_a_category_label_escapes_control_characters_only():
    feature = FeatureBaseline("c", "categorical", np.array([1, 1, 1]),
                              np.array([0.4, 0.3, 0.3]), categories=("café\t", "Köln"))
    assert feature.bin_labels == ("café\\t", "Köln", "other")
