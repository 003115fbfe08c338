from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from streamdrift.config import FeatureSpec
from streamdrift.decoding import MessageDecoder
from streamdrift.features import (
    STATUS_MISSING,
    STATUS_NON_FINITE,
    STATUS_OK,
    STATUS_WRONG_TYPE,
    TypedRows,
    categorical_column,
    count_invalid_values,
    each_path_values,
    extract_features,
    lookup,
    mark_missing_values,
    numeric_column,
    parse_text_cell,
    table_columns,
    values_by_path,
)


def test_extraction_follows_dot_paths_and_classifies_every_value():
    specs = [FeatureSpec("len", ("usage", "len"), "numeric"),
             FeatureSpec("tier", ("tier",), "categorical")]
    messages: list[dict[str, Any]] = [
        {"usage": {"len": 3.5}, "tier": "gold"},
        {"usage": {}, "tier": None},
        {"usage": "flat", "tier": ["a"]},
        {"tier": 2},
        {"usage": {"len": "12"}, "tier": "gold"},
    ]
    length, tier = extract_features(messages, specs)
    assert length.status.tolist() == [STATUS_OK, STATUS_MISSING, STATUS_WRONG_TYPE,
                                      STATUS_MISSING, STATUS_WRONG_TYPE]
    assert length.values[0] == 3.5
    assert tier.status.tolist() == [STATUS_OK, STATUS_MISSING, STATUS_WRONG_TYPE,
                                    STATUS_OK, STATUS_OK]
    assert tier.values[3] == "2"


def test_nan_and_infinity_from_python_producers():
    # json.dumps writes NaN and Infinity literals; they are missing and non-finite values.
    decoded = MessageDecoder(1024).decode([b'{"x": NaN}', b'{"x": Infinity}', b'{"x": 1e999}',
                                           b'{"x": "NaN"}', b'{"x": "inf"}'])
    column = numeric_column([message["x"] for message in decoded.objects])
    assert column.status.tolist() == [STATUS_MISSING, STATUS_NON_FINITE, STATUS_NON_FINITE,
                                      STATUS_WRONG_TYPE, STATUS_WRONG_TYPE]
    assert count_invalid_values(column.status) == {"wrong_type": 2, "non_finite": 2}


def test_fast_and_careful_numeric_paths_agree():
    rng = np.random.default_rng(3)
    numbers = [*rng.normal(size=200).tolist(), None, 7, 10 ** 400]
    fast = numeric_column(numbers[:201])
    careful = numeric_column([*numbers[:201], "x"])
    np.testing.assert_array_equal(fast.values, careful.values[:201])
    np.testing.assert_array_equal(fast.status, careful.status[:201])
    assert numeric_column([10**400]).status.tolist() == [STATUS_NON_FINITE]


def test_paths_read_together_equal_each_path_looked_up_alone():
    # Levels of dicts only (read with dict.get in C) and levels with other values (lists,
    # text, None, a dict subclass, which is not an object here: lookup refuses it too).
    class Subclass(dict):
        pass

    messages: list[Any] = [
        {"u": {"a": 1, "b": {"c": "x"}}, "v": 2},
        {"u": {"a": None}, "v": [5]},
        {"u": [7, 8], "v": "flat"},
        {"u": None},
        {"u": Subclass(a=3)},
        {},
    ]
    paths = [("u", "a"), ("u", "b", "c"), ("u", "1"), ("v",), ("v", "0"), ("u", "a")]
    expected = [[lookup(message, path) for message in messages] for path in paths]
    assert list(each_path_values(messages, paths)) == expected
    assert values_by_path(messages, paths) == dict(zip(paths, expected, strict=False))
    plain = [{"s": {"a": i, "b": str(i)}} for i in range(5)] + [{"s": {}}]
    assert list(each_path_values(plain, [("s", "b"), ("s", "a")])) == [
        ["0", "1", "2", "3", "4", None], [0, 1, 2, 3, 4, None]]


def test_categories_spell_both_booleans_and_refuse_non_finite_numbers():
    column = categorical_column([True, False, float("nan"), float("inf"), -float("inf"), 2.0])
    assert column.status.tolist() == [STATUS_OK, STATUS_OK, STATUS_MISSING, STATUS_WRONG_TYPE,
                                      STATUS_WRONG_TYPE, STATUS_OK]
    # Unusable values hold the documented placeholder.
    assert column.values.tolist() == ["true", "false", "", "", "", "2"]


def test_a_column_without_unusable_values_has_no_invalid_reason():
    assert count_invalid_values(numeric_column([1.0, 2.0]).status) == {}
    assert count_invalid_values(numeric_column([1.0, None]).status) == {}
    assert count_invalid_values(numeric_column([1.0, "a"]).status) == {"wrong_type": 1}


def test_typed_rows_refuse_categories_that_do_not_match_their_features():
    rows = TypedRows(np.zeros((2, 0)), [("a", "b")], (), (0, 1))
    with pytest.raises(ValueError, match="zip"):
        rows.columns()


def test_a_category_is_missing_only_when_empty_null_absent_or_named_missing():
    country = FeatureSpec("country", ("country",), "categorical")
    messages: list[dict[str, Any]] = [
        {"country": "NA"}, {"country": "None"}, {"country": "null"}, {"country": "N/A"},
        {"country": None}, {}, {"country": ""}]
    (column,) = extract_features(messages, [country])
    assert column.values.tolist()[:5] == ["NA", "None", "null", "N/A", ""]
    # An empty string is a value like any other in a message; only the feature's own list
    # turns text into "missing".
    assert column.status.tolist() == [0, 0, 0, 0, 1, 1, 0]
    plan = FeatureSpec("plan", ("plan",), "categorical", missing_values=("", "unknown", 0))
    (column,) = extract_features([{"plan": "unknown"}, {"plan": ""}, {"plan": 0},
                                  {"plan": "free"}], [plan])
    assert column.status.tolist() == [1, 1, 1, 0]


def test_numeric_missing_text_and_sentinels():
    age = FeatureSpec("age", ("age",), "numeric")
    (column,) = extract_features([{"age": "NA"}, {"age": " n/a "}, {"age": "old"},
                                  {"age": 30}, {"age": -999}], [age])
    assert column.status.tolist() == [1, 1, 2, 0, 0]
    score = FeatureSpec("score", ("score",), "numeric", missing_values=(-999,))
    (column,) = extract_features([{"score": -999}, {"score": -999.0}, {"score": "NA"},
                                  {"score": 3}], [score])
    assert column.status.tolist() == [1, 1, 2, 0]  # its own list: "NA" is no longer missing
    assert column.values.tolist()[3] == 3.0


def test_a_path_walks_on_through_the_object_an_array_index_gives():
    message = {"items": [{"price": 5.0}, {"price": 7.5}], "tags": ["a"]}
    assert lookup(message, ("items", "1", "price")) == 7.5
    assert lookup(message, ("items", "5", "price")) is None


def test_a_value_named_missing_is_exactly_a_missing_value():
    """Sentinels and named categories leave the column as a missing cell would."""
    age = FeatureSpec("age", ("age",), "numeric", missing_values=(-1, "n/a"))
    raw = [31.0, -1, "n/a", None, 40.5]
    marked = mark_missing_values(age, numeric_column(raw), raw)
    plain = numeric_column([31.0, None, None, None, 40.5])
    assert marked.values.tolist() == plain.values.tolist()
    assert marked.status.tolist() == plain.status.tolist()
    plan = FeatureSpec("plan", ("plan",), "categorical", missing_values=("unknown",))
    raw = ["pro", "unknown", None]
    marked = mark_missing_values(plan, categorical_column(raw), raw)
    plain = categorical_column(["pro", None, None])
    assert marked.values.tolist() == plain.values.tolist()
    assert marked.status.tolist() == plain.status.tolist()


SPECS = [FeatureSpec("age", ("age",), "numeric"), FeatureSpec("plan", ("plan",), "categorical")]


def test_a_dataframe_s_missing_cells_are_missing_values():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"age": [31.0, np.nan, 40.0, None],
                              "plan": ["pro", None, pandas.NA, "free"],
                              "column": [1, 2, 3, 4]})  # a column named like pyarrow's method
    columns = table_columns(frame, SPECS)
    assert columns["age"].status.tolist() == [STATUS_OK, STATUS_MISSING, STATUS_OK,
                                              STATUS_MISSING]
    assert columns["age"].values.tolist()[::2] == [31.0, 40.0]
    assert columns["plan"].status.tolist() == [STATUS_OK, STATUS_MISSING, STATUS_MISSING,
                                               STATUS_OK]
    assert columns["plan"].values.tolist()[::3] == ["pro", "free"]
    numbered = pandas.DataFrame({0: [1.5, 2.5]}).rename(columns={0: "age"})
    assert table_columns(numbered, SPECS[:1])["age"].values.tolist() == [1.5, 2.5]
    # Nullable columns hold pandas' NA, not None or NaN: missing too.
    nullable = pandas.DataFrame({"age": pandas.array([1.5, None], dtype="Float64"),
                                 "plan": pandas.array([None, "pro"], dtype="string")})
    columns = table_columns(nullable, SPECS)
    assert columns["age"].status.tolist() == [STATUS_OK, STATUS_MISSING]
    assert columns["plan"].status.tolist() == [STATUS_MISSING, STATUS_OK]


def test_a_pyarrow_table_s_nulls_are_missing_values():
    pyarrow = pytest.importorskip("pyarrow")
    table = pyarrow.table({"age": [31.0, None], "plan": [None, "pro"]})
    columns = table_columns(table, SPECS)
    assert columns["age"].status.tolist() == [STATUS_OK, STATUS_MISSING]
    assert columns["plan"].status.tolist() == [STATUS_MISSING, STATUS_OK]


def test_a_table_must_be_a_table_with_a_column_per_feature():
    pandas = pytest.importorskip("pandas")
    pyarrow = pytest.importorskip("pyarrow")

    class Columns:
        def __init__(self) -> None:
            self.columns = ["age", "plan"]  # a table's attribute, not a table

    for not_a_table in ({"age": [1.0]}, Columns()):
        with pytest.raises(TypeError, match=re.escape(
                "expected a pandas DataFrame or a pyarrow Table, got "
                f"{type(not_a_table).__name__}")):
            table_columns(not_a_table, SPECS)
    with pytest.raises(ValueError, match=re.escape(
            "the table has no column for feature(s) age; its columns are: b, plan")):
        table_columns(pandas.DataFrame({"plan": ["a"], "b": [1]}), SPECS)
    with pytest.raises(ValueError, match=re.escape(
            "the table has no column for feature(s) age, plan; its columns are: (none)")):
        table_columns(pyarrow.table({}), SPECS)


def test_a_categorical_cell_is_its_text_as_it_is():
    plan = FeatureSpec("plan", ("plan",), "categorical")
    assert [parse_text_cell(cell, plan) for cell in [" 3 ", "1e5", "007"]] == [
        " 3 ", "1e5", "007"]
    assert parse_text_cell(" 3 ", FeatureSpec("n", ("n",), "numeric")) == 3
