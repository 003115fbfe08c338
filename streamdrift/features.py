"""Feature extraction: a batch of decoded messages -> one numpy column per feature.

Every value ends in one of four states (``STATUS_*``): a usable value, missing (absent, null
or NaN: its own signal, never in the histogram), or invalid for a reason (wrong type,
non-finite number). Only usable values are binned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from streamdrift.config import FeatureSpec

STATUS_OK = 0
STATUS_MISSING = 1
STATUS_WRONG_TYPE = 2
STATUS_NON_FINITE = 3
# Reasons a single value is unusable; label values of streamdrift_invalid_values_total{reason}.
INVALID_VALUE_REASONS = {STATUS_WRONG_TYPE: "wrong_type", STATUS_NON_FINITE: "non_finite"}

# Stands for "a key on the path led into something that is not an object".
_NOT_AN_OBJECT = object()
_DICT_ONLY = frozenset({dict})
_NUMBER_OR_NONE = frozenset({int, float, type(None)})


@dataclass(frozen=True)
class FeatureColumn:
    """One feature's values in a batch.

    ``values`` is float64 for a numeric feature and an object array of ``str`` for a
    categorical one; where ``status`` is not ``STATUS_OK`` the value is a placeholder
    (0.0 or "") and must not be used.
    """

    values: npt.NDArray[Any]
    status: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.status)

    @property
    def usable(self) -> npt.NDArray[np.bool_]:
        mask: npt.NDArray[np.bool_] = self.status == STATUS_OK
        return mask


@dataclass(frozen=True)
class TypedRows:
    """A batch as the typed decoder gives it, grouped by feature type: every numeric feature
    in one matrix (a row per message, NaN where the value is missing) and every categorical
    feature as one tuple (``None`` where missing). No value in it is invalid: the typed
    decoder refuses those messages, which take the general path.

    ``numeric_features`` and ``categorical_features`` are the positions of the columns among
    the configured features.
    """

    numeric: npt.NDArray[np.float64]
    categories: list[tuple[str | None, ...]]
    numeric_features: tuple[int, ...]
    categorical_features: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.numeric)

    def columns(self, specs: Sequence[FeatureSpec] = ()) -> list[FeatureColumn]:
        """The same values as one ``FeatureColumn`` per feature, in configured order, made
        by the general path's own column builders. Given the features' ``specs``, the values
        they name as missing (``missing_values``) are marked missing too, as
        ``extract_column`` marks them: the rows themselves hold them as ordinary values."""
        columns: dict[int, FeatureColumn] = {}
        for column_index, feature in enumerate(self.numeric_features):
            columns[feature] = numeric_column(self.numeric[:, column_index].tolist())
        for categories, feature in zip(self.categories, self.categorical_features,
                                       strict=True):
            columns[feature] = categorical_column(categories)
        ordered = [columns[feature] for feature in sorted(columns)]
        if not specs:
            return ordered
        # A typed value is a number, a text or None: the column's own values are the raw ones
        # as far as missing values go (no text in a numeric column to compare with tokens).
        return [mark_missing_values(spec, column, column.values) if spec.missing_tokens
                else column for spec, column in zip(specs, ordered, strict=True)]


def lookup(message: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dot path, ``None`` when a key is absent. A key of digits indexes an
    array (``scores.0``), and an index past its end is absent too.

    >>> lookup({"usage": {"session_length": 3.5}}, ("usage", "session_length"))
    3.5
    >>> lookup({"usage": {}}, ("usage", "session_length")) is None
    True
    >>> lookup({"scores": [0.5, 2.5]}, ("scores", "1")), lookup({"scores": []}, ("scores", "0"))
    (2.5, None)
    """
    value: Any = message
    for key in path:
        if type(value) is dict:
            value = value.get(key)
        else:
            value = _step(value, key)
            if value is _NOT_AN_OBJECT:
                return value
    return value


def _step(value: Any, key: str) -> Any:
    """One key of ``lookup`` from a value that is not a dict."""
    if type(value) is list and key.isascii() and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else None
    return None if value is None else _NOT_AN_OBJECT


def values_by_path(messages: Sequence[Mapping[str, Any]], paths: Sequence[tuple[str, ...]]
                   ) -> dict[tuple[str, ...], list[Any]]:
    """``raw_values`` of each path, walking each shared prefix once (``usage`` for both
    ``usage.sessions`` and ``usage.purchases``): what decoders of records use, where every
    message is a mapping to walk.

    >>> found = values_by_path([{"u": {"a": 1}}, {"u": None}, {"u": [7]}],
    ...                        [("u", "a"), ("u", "0")])
    >>> found[("u", "a")][:2], found[("u", "0")]
    ([1, None], [None, None, 7])
    """
    return dict(zip(paths, each_path_values(messages, paths), strict=True))


def each_path_values(messages: Sequence[Mapping[str, Any]], paths: Sequence[tuple[str, ...]]
                     ) -> Iterator[list[Any]]:
    """``values_by_path`` one path at a time, in order: only the shared prefixes are kept
    between paths. A decoder that turns each list into its column before taking the next
    holds one list of values at a time, not one per feature: the garbage collector, which
    runs many times while a batch is decoded, then has a few lists to walk instead of
    every value of the batch (at 1,000 features, most of the cost beyond the decode).

    >>> list(each_path_values([{"u": {"a": 1, "b": "x"}}, {}], [("u", "a"), ("u", "b")]))
    [[1, None], ['x', None]]
    """
    prefixes = {path[:end] for path in paths for end in range(len(path))}
    levels: dict[tuple[str, ...], list[Any]] = {(): list(messages)}
    # Per level: whether all its values are plain dicts (checked once, for all its keys).
    all_dicts: dict[tuple[str, ...], bool] = {}

    def level(prefix: tuple[str, ...]) -> list[Any]:
        found = levels.get(prefix)
        if found is None:
            parent_prefix, key = prefix[:-1], prefix[-1]
            parent = level(parent_prefix)
            dicts = all_dicts.get(parent_prefix)
            if dicts is None:
                dicts = all_dicts[parent_prefix] = _DICT_ONLY.issuperset(map(type, parent))
            if dicts:
                # The common case (records and their nested records are dicts): the same
                # ``get`` mapped in C, without a type test and a method lookup per value.
                found = list(map(dict.get, parent, repeat(key)))
            else:
                found = [value.get(key) if type(value) is dict else _step(value, key)
                         for value in parent]
            if prefix in prefixes:
                levels[prefix] = found
        return found

    for path in paths:
        yield level(path)


def raw_values(messages: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> list[Any]:
    """The value at ``path`` in each message, in order."""
    if len(path) == 1:
        key = path[0]
        return [message.get(key) for message in messages]
    return [lookup(message, path) for message in messages]


def numeric_column(values: Sequence[Any]) -> FeatureColumn:
    """Numbers as float64; null and NaN are missing; text, booleans and objects are wrong.

    Text is refused rather than parsed: a producer that sends ``"3.5"`` for a number has a
    schema problem the user should see counted, not hidden.

    >>> column = numeric_column([1, 2.5, None, float("nan"), "3", True, float("inf")])
    >>> column.values[:2].tolist(), column.status.tolist()
    ([1.0, 2.5], [0, 0, 1, 1, 2, 2, 3])
    """
    count = len(values)
    value_types = set(map(type, values))
    if value_types <= _NUMBER_OR_NONE:  # pragma: no mutate: `<` takes the careful path
        # Fast path: numpy converts None to NaN itself.
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float range: take the careful path
            pass
        else:
            status = np.zeros(count, dtype=np.int8)
            status[np.isnan(array)] = STATUS_MISSING
            status[np.isinf(array)] = STATUS_NON_FINITE
            array[status != STATUS_OK] = 0.0
            return FeatureColumn(array, status)
    array = np.zeros(count, dtype=np.float64)  # pragma: no mutate: float64 is the default
    status = np.zeros(count, dtype=np.int8)
    for index, value in enumerate(values):
        value_type = type(value)
        if value_type is float or value_type is int:
            try:
                number = float(value)
            except OverflowError:
                status[index] = STATUS_NON_FINITE
                continue
            if math.isnan(number):
                status[index] = STATUS_MISSING
            elif math.isinf(number):
                status[index] = STATUS_NON_FINITE
            else:
                array[index] = number
        elif value is None:
            status[index] = STATUS_MISSING
        else:
            status[index] = STATUS_WRONG_TYPE
    return FeatureColumn(array, status)


def categorical_column(values: Sequence[Any]) -> FeatureColumn:
    """Categories as text: strings as they are, numbers in decimal, booleans as true/false.

    An integral float is spelled as the integer (``3.0`` -> ``"3"``), so that a category sent
    as ``3`` by one producer and ``3.0`` by another (pandas, once a column holds a NaN) stays
    one category. null and NaN are missing; objects, arrays and infinities are wrong.

    >>> column = categorical_column(["gold", 3, 3.0, 2.5, True, None, {"a": 1}])
    >>> column.values.tolist(), column.status.tolist()
    (['gold', '3', '3', '2.5', 'true', '', ''], [0, 0, 0, 0, 0, 1, 2])
    """
    count = len(values)
    array = np.empty(count, dtype=object)
    status = np.zeros(count, dtype=np.int8)
    for index, value in enumerate(values):
        value_type = type(value)
        if value_type is str:
            array[index] = value
        elif value is None:
            array[index] = ""
            status[index] = STATUS_MISSING
        elif value_type is bool:
            array[index] = "true" if value else "false"
        elif value_type is int:
            array[index] = str(value)
        elif value_type is float and math.isfinite(value):
            array[index] = str(int(value)) if value.is_integer() else repr(value)
        elif value_type is float and math.isnan(value):
            array[index] = ""
            status[index] = STATUS_MISSING
        else:
            array[index] = ""
            status[index] = STATUS_WRONG_TYPE
    return FeatureColumn(array, status)


def extract_column(spec: FeatureSpec, values: Sequence[Any]) -> FeatureColumn:
    """Raw values of one feature as a typed column, the feature's missing values marked."""
    if spec.type == "numeric":
        column = numeric_column(values)
    else:
        column = categorical_column(values)
    if spec.missing_tokens:
        column = mark_missing_values(spec, column, values)
    return column


def missing_categories(spec: FeatureSpec) -> frozenset[str]:
    """The categories a categorical feature counts as missing, spelled as categories are
    (numbers in decimal, an integral float as the integer)."""
    spelled = categorical_column(list(spec.missing_tokens))
    return frozenset(spelled.values[spelled.status == STATUS_OK].tolist())


def missing_numbers(spec: FeatureSpec) -> tuple[float, ...]:
    """The numbers (sentinels) a numeric feature counts as missing."""
    return tuple(float(token) for token in spec.missing_tokens if not isinstance(token, str))


def mark_missing_values(spec: FeatureSpec, column: FeatureColumn,
                        values: Sequence[Any] | npt.NDArray[Any]) -> FeatureColumn:
    """``column`` with the values ``spec.missing_tokens`` names marked missing: for a
    categorical feature those categories; for a numeric one, text equal to one of its text
    tokens (case and surrounding spaces ignored) and numbers equal to one of its numbers.

    >>> plan = FeatureSpec("plan", ("plan",), "categorical", missing_values=("unknown",))
    >>> mark_missing_values(plan, categorical_column(["NA", "unknown"]),
    ...                     ["NA", "unknown"]).status.tolist()
    [0, 1]
    >>> age = FeatureSpec("age", ("age",), "numeric", missing_values=("n/a", -1))
    >>> raw = [" N/A ", -1, 7, "old"]
    >>> mark_missing_values(age, numeric_column(raw), raw).status.tolist()
    [1, 1, 0, 2]
    """
    status = column.status.copy()
    array = column.values.copy()
    if spec.type == "numeric":
        texts = {token.strip().casefold() for token in spec.missing_tokens
                 if isinstance(token, str)}
        for index in np.flatnonzero(status == STATUS_WRONG_TYPE).tolist():
            value = values[index]
            if isinstance(value, str) and value.strip().casefold() in texts:
                status[index] = STATUS_MISSING
        numbers = missing_numbers(spec)
        if numbers:
            sentinel = (status == STATUS_OK) & np.isin(array, numbers)
            status[sentinel] = STATUS_MISSING
            array[sentinel] = 0.0
    else:
        categories = missing_categories(spec)
        if categories:
            named = (status == STATUS_OK) & np.isin(array, list(categories))
            status[named] = STATUS_MISSING
            array[named] = ""
    return FeatureColumn(array, status)


def extract_features(
    messages: Sequence[Mapping[str, Any]], specs: Iterable[FeatureSpec]
) -> list[FeatureColumn]:
    """One column per feature spec, from decoded JSON messages (features found by path)."""
    return [extract_column(spec, raw_values(messages, spec.path)) for spec in specs]


def table_columns(table: Any, specs: Iterable[FeatureSpec]) -> dict[str, FeatureColumn]:
    """One column per feature from a table with a column per feature *name*: a pandas
    DataFrame or a pyarrow Table (recognised by their methods; neither is imported here).
    Missing cells (None, NaN, pandas' NA and NaT) are missing values; the rest is read as
    a JSON message's value would be.

    >>> import pyarrow as pa
    >>> spec = FeatureSpec("plan", ("plan",), "categorical")
    >>> table_columns(pa.table({"plan": ["free", None, "NA"]}), [spec])["plan"].status.tolist()
    [0, 1, 0]
    """
    if hasattr(table, "column_names") and hasattr(table, "column"):  # pyarrow
        names = set(table.column_names)

        def values_of(name: str) -> list[Any]:
            return list(table.column(name).to_pylist())
    elif hasattr(table, "columns") and hasattr(table, "isna"):  # pandas
        names = {str(column) for column in table.columns}

        def values_of(name: str) -> list[Any]:
            column = table[name]
            return [None if missing else value for value, missing in
                    zip(column.astype(object).tolist(), column.isna().tolist(), strict=True)]
    else:
        raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got "
                        f"{type(table).__name__}")
    specs = list(specs)
    absent = [spec.name for spec in specs if spec.name not in names]
    if absent:
        raise ValueError(f"the table has no column for feature(s) {', '.join(absent)}; its "
                         f"columns are: {', '.join(sorted(names)) or '(none)'}")
    return {spec.name: extract_column(spec, values_of(spec.name)) for spec in specs}


def parse_text_cell(text: str | None, spec: FeatureSpec) -> Any:
    """A tabular (CSV) cell as JSON would carry it, so that one value reads the same from
    every source: an empty cell is null; for a numeric feature a number if it reads as one
    (else the text, which is missing if the feature says so and a wrong type otherwise); for
    a categorical one the text as it is (``"NA"`` is a category unless the feature's
    ``missing_values`` say otherwise).

    >>> numeric = FeatureSpec("x", ("x",), "numeric")
    >>> [parse_text_cell(cell, numeric) for cell in ["3", " 2.5 ", "", "NA", "gold", "1e400"]]
    [3, 2.5, None, 'NA', 'gold', inf]
    >>> country = FeatureSpec("country", ("country",), "categorical")
    >>> [parse_text_cell(cell, country) for cell in ["NA", "None", "  ", "de"]]
    ['NA', 'None', None, 'de']
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    if spec.type == "categorical":
        return text
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        return stripped


def count_invalid_values(status: npt.NDArray[np.int8]) -> dict[str, int]:
    """How many values of a column are unusable, by reason (reasons with no value left out)."""
    counts = np.bincount(status, minlength=STATUS_NON_FINITE + 1)
    return {reason: int(counts[code]) for code, reason in INVALID_VALUE_REASONS.items()
            if counts[code]}
