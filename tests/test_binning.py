"""The typed fast path of binning against the general one, and both against a per-value
oracle (bisect and a dict, one value at a time)."""

from __future__ import annotations

import bisect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.baseline import FeatureBaseline
from streamdrift.binning import SlotBinner
from streamdrift.config import FeatureSpec
from streamdrift.features import STATUS_MISSING, STATUS_OK, TypedRows, extract_column
from streamdrift.sketch import SlotLayout

CATEGORIES = ("gold", "silver", "", "bronze")


@st.composite
def features_and_rows(draw: st.DrawFn) -> tuple[list[FeatureBaseline], TypedRows]:
    kinds = draw(st.lists(st.sampled_from(["numeric", "categorical"]), min_size=1,
                          max_size=6))
    count = draw(st.integers(0, 40))
    features: list[FeatureBaseline] = []
    numeric_columns: list[list[float]] = []
    categories: list[tuple[str | None, ...]] = []
    for index, kind in enumerate(kinds):
        if kind == "numeric":
            edges = sorted(set(draw(st.lists(st.integers(-5, 5), max_size=4))))
            n_bins = len(edges) + 1
            ranged = draw(st.booleans())
            features.append(FeatureBaseline(
                f"n{index}", "numeric", np.ones(n_bins, dtype=np.int64),
                np.full(n_bins, 1 / n_bins), edges=np.array(edges, dtype=np.float64),
                minimum=-4.0 if ranged else None, maximum=4.5 if ranged else None))
            # Values on the edges, between them, on the range's ends, outside it, missing.
            numeric_columns.append(draw(st.lists(
                st.one_of(st.integers(-7, 7).map(float), st.floats(-7, 7),
                          st.sampled_from([-4.0, 4.5]), st.just(float("nan"))),
                min_size=count, max_size=count)))
        else:
            known = tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=3,
                                        unique=True)))
            n_bins = len(known) + 1
            features.append(FeatureBaseline(
                f"c{index}", "categorical", np.ones(n_bins, dtype=np.int64),
                np.full(n_bins, 1 / n_bins), categories=known))
            categories.append(tuple(draw(st.lists(
                st.one_of(st.sampled_from((*CATEGORIES, "unseen")), st.none()),
                min_size=count, max_size=count))))
    numeric = np.array(numeric_columns, dtype=np.float64).T.reshape(count, len(numeric_columns))
    rows = TypedRows(
        np.ascontiguousarray(numeric), categories,
        tuple(i for i, kind in enumerate(kinds) if kind == "numeric"),
        tuple(i for i, kind in enumerate(kinds) if kind == "categorical"))
    return features, rows


def _in_feature_order(slots: np.ndarray, rows: TypedRows) -> np.ndarray:
    order = list(rows.numeric_features) + list(rows.categorical_features)
    return slots[np.argsort(order)]


@given(features_and_rows())
def test_typed_binning_equals_the_general_path(case):
    features, rows = case
    layout = SlotLayout.from_bins([f.n_bins for f in features])
    binner = SlotBinner(features, layout)
    fast = binner.bin_typed(rows)
    general = binner.bin_columns(rows.columns())
    np.testing.assert_array_equal(_in_feature_order(fast.slots, rows), general.slots)
    np.testing.assert_array_equal(fast.states, general.states)
    np.testing.assert_array_equal(fast.out_of_range, general.out_of_range)


@given(features_and_rows())
def test_binning_equals_a_per_value_oracle(case):
    features, rows = case
    layout = SlotLayout.from_bins([f.n_bins for f in features])
    binned = SlotBinner(features, layout).bin_typed(rows)
    slots = _in_feature_order(binned.slots, rows)
    columns = {feature: rows.numeric[:, j].tolist()
               for j, feature in enumerate(rows.numeric_features)}
    columns.update({feature: list(values)
                    for feature, values in zip(rows.categorical_features, rows.categories,
                                               strict=True)})
    for index, feature in enumerate(features):
        offset = int(layout.offsets[index])
        missing = outside = 0
        for position, value in enumerate(columns[index]):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                expected = offset + feature.n_bins
                missing += 1
            elif feature.type == "numeric":
                expected = offset + bisect.bisect_right(feature.edges.tolist(), value)
                if feature.minimum is not None and not (
                        feature.minimum <= value <= feature.maximum):
                    outside += 1
            elif value in feature.categories:
                expected = offset + feature.categories.index(value)
            else:
                expected = offset + feature.other_bin
            assert slots[index, position] == expected, (feature.name, value)
        assert binned.states[index, STATUS_MISSING] == missing
        assert binned.states[index, STATUS_OK] == len(rows) - missing
        assert binned.out_of_range[index] == outside


def _two_feature_binner() -> SlotBinner:
    features = [
        FeatureBaseline("n", "numeric", np.ones(2, dtype=np.int64), np.full(2, 0.5),
                        edges=np.array([0.0])),
        FeatureBaseline("c", "categorical", np.ones(2, dtype=np.int64), np.full(2, 0.5),
                        categories=("gold",)),
    ]
    return SlotBinner(features, SlotLayout.from_bins([2, 2]))


@pytest.mark.parametrize("rows", [
    TypedRows(np.zeros((1, 1)), [("gold",)], (2,), (1,)),  # the numeric one is not n
    TypedRows(np.zeros((1, 1)), [("gold",)], (0,), (2,)),  # the categorical one is not c
    TypedRows(np.zeros((1, 0)), [("gold",), ("gold",)], (), (0, 1)),  # n is not categorical
])
def test_rows_of_other_features_are_refused(rows):
    with pytest.raises(ValueError, match=r"^the rows do not hold this binner's features$"):
        _two_feature_binner().bin_typed(rows)


def test_rows_missing_a_category_column_are_refused():
    rows = TypedRows(np.zeros((1, 1)), [], (0,), (1,))
    with pytest.raises(ValueError, match="zip"):
        _two_feature_binner().bin_typed(rows)


def test_columns_must_be_one_per_feature():
    binner = _two_feature_binner()
    columns = TypedRows(np.zeros((3, 1)), [("gold", None, "x")], (0,), (1,)).columns()
    assert binner.bin_columns(columns).slots.shape == (2, 3)
    with pytest.raises(ValueError, match="zip"):
        binner.bin_columns(columns[:1])


@given(features_and_rows(), st.data())
def test_values_a_feature_names_missing_are_missing_on_both_paths(case, data):
    """Sentinel numbers and categories listed in ``missing_values`` go to the missing slot,
    in the typed path as in the general one (which reads them with ``extract_column``)."""
    features, rows = case
    specs = []
    for feature in features:
        if feature.type == "numeric":
            tokens = tuple(data.draw(st.lists(st.sampled_from([-4.0, 2.0, 7.0]), max_size=2)))
        else:
            tokens = tuple(data.draw(st.lists(st.sampled_from(CATEGORIES), max_size=2)))
        specs.append(FeatureSpec(feature.name, (feature.name,), feature.type,
                                 missing_values=tokens))
    layout = SlotLayout.from_bins([f.n_bins for f in features])
    binner = SlotBinner(features, layout, specs)
    raw = {feature: rows.numeric[:, j].tolist()
           for j, feature in enumerate(rows.numeric_features)}
    raw.update({feature: list(values) for feature, values in
                zip(rows.categorical_features, rows.categories, strict=True)})
    fast = binner.bin_typed(rows)
    general = binner.bin_columns([extract_column(spec, raw[index])
                                  for index, spec in enumerate(specs)])
    np.testing.assert_array_equal(_in_feature_order(fast.slots, rows), general.slots)
    np.testing.assert_array_equal(fast.states, general.states)
    np.testing.assert_array_equal(fast.out_of_range, general.out_of_range)
    for index, spec in enumerate(specs):
        named = sum(value in spec.missing_tokens for value in raw[index]
                    if value is not None and value == value)
        unset = sum(value is None or value != value for value in raw[index])
        assert fast.states[index, STATUS_MISSING] == named + unset
