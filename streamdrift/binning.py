"""Binning a batch: feature values -> slot indices of the shared count vector (see sketch).

``SlotBinner`` turns a batch into one integer matrix, a row per feature and a column per
message, plus what the counters need: values per state (usable, missing, invalid) and usable
numbers outside the reference's range, per feature. Two inputs, one result:

- ``bin_typed`` takes the typed decoder's ``TypedRows`` (the common case) and bins every
  numeric feature from one matrix: one NaN test and one range comparison for all of them,
  one ``searchsorted`` per feature, the offsets added to the whole block at once;
- ``bin_columns`` takes one ``FeatureColumn`` per feature, whatever its states (the general
  path: invalid values, tabular input).

The tests hold the first to the second on the same values. The rows of the matrix are in no
particular feature order: the histogram only counts slot indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from streamdrift.baseline import FeatureBaseline
from streamdrift.config import FeatureSpec
from streamdrift.features import (
    STATUS_MISSING,
    STATUS_NON_FINITE,
    STATUS_OK,
    FeatureColumn,
    TypedRows,
    missing_categories,
    missing_numbers,
)
from streamdrift.sketch import SlotLayout

N_STATES = STATUS_NON_FINITE + 1


@dataclass(frozen=True)
class BinnedBatch:
    """``slots``: features x messages slot indices; ``states[f, s]``: values of feature ``f``
    (configured order) in state ``s`` (``STATUS_*``); ``out_of_range[f]``: usable values of
    feature ``f`` outside the reference's [minimum, maximum]."""

    slots: npt.NDArray[np.int64]
    states: npt.NDArray[np.int64]
    out_of_range: npt.NDArray[np.int64]


class SlotBinner:
    """Bins batches of the features whose baselines are ``features`` (configured order),
    with the missing values their ``specs`` name (none when no specs are given)."""

    def __init__(self, features: Sequence[FeatureBaseline], layout: SlotLayout,
                 specs: Sequence[FeatureSpec] | None = None) -> None:
        self.features = list(features)
        self.layout = layout  # pragma: no mutate: nothing here reads it
        offsets = layout.offsets
        self._offsets = offsets.tolist()
        self._numeric = [i for i, f in enumerate(self.features) if f.type == "numeric"]
        self._categorical = [i for i, f in enumerate(self.features) if f.type != "numeric"]
        numeric = np.array(self._numeric, dtype=np.int64)
        self._numeric_index = numeric
        self._numeric_edges = [self.features[i].edges for i in self._numeric]
        self._numeric_offsets = offsets[numeric][:, np.newaxis]
        self._numeric_missing = (offsets[numeric] + layout.n_bins[numeric])[:, np.newaxis]
        # A feature without a recorded range has nothing out of it.
        self._numeric_low = np.array(
            [-np.inf if self.features[i].minimum is None else self.features[i].minimum
             for i in self._numeric], dtype=np.float64)[:, np.newaxis]
        self._numeric_high = np.array(
            [np.inf if self.features[i].maximum is None else self.features[i].maximum
             for i in self._numeric], dtype=np.float64)[:, np.newaxis]
        # Numbers that stand for "missing" (sentinels), per numeric feature that has some.
        self._sentinels = [] if specs is None else [
            (row, numbers) for row, index in enumerate(self._numeric)
            if (numbers := missing_numbers(specs[index]))]
        # Category -> absolute slot; None (missing), and the categories the feature counts
        # as missing, -> the feature's missing slot.
        self._category_slots: list[tuple[int, dict[str | None, int], int]] = []
        self._missing_categories: list[tuple[str, ...]] = []
        for index in self._categorical:
            feature = self.features[index]
            offset = self._offsets[index]
            lookup: dict[str | None, int] = {
                category: offset + position
                for position, category in enumerate(feature.categories)}
            missing = () if specs is None else tuple(sorted(missing_categories(specs[index])))
            for category in (None, *missing):
                lookup[category] = offset + feature.n_bins
            self._category_slots.append((index, lookup, offset + feature.other_bin))
            self._missing_categories.append(missing)

    def bin_typed(self, rows: TypedRows) -> BinnedBatch:
        count = len(rows)
        n_numeric = len(self._numeric)
        if (list(rows.numeric_features) != self._numeric
                or list(rows.categorical_features) != self._categorical):
            raise ValueError("the rows do not hold this binner's features")
        slots = np.empty((len(self.features), count), dtype=np.int64)
        states = np.zeros((len(self.features), N_STATES), dtype=np.int64)
        out_of_range = np.zeros(len(self.features), dtype=np.int64)
        if n_numeric:
            values = rows.numeric.T  # features x messages (a view)
            if self._sentinels:
                values = values.copy()
                for row, numbers in self._sentinels:
                    values[row][np.isin(values[row], numbers)] = np.nan
            numeric_slots = slots[:n_numeric]
            for row, edges, column in zip(numeric_slots, self._numeric_edges, values,
                                          strict=True):
                row[:] = np.searchsorted(edges, column, side="right")
            numeric_slots += self._numeric_offsets
            missing = np.isnan(values)
            missing_counts = np.count_nonzero(missing, axis=1)
            if missing_counts.any():
                np.copyto(numeric_slots, self._numeric_missing, where=missing)
            states[self._numeric_index, STATUS_MISSING] = missing_counts
            states[self._numeric_index, STATUS_OK] = count - missing_counts
            # NaN compares False: missing values are never out of range.
            outside = (values < self._numeric_low) | (values > self._numeric_high)
            out_of_range[self._numeric_index] = np.count_nonzero(outside, axis=1)
        for row_index, ((index, lookup, other), named_missing, categories) in enumerate(
                zip(self._category_slots, self._missing_categories, rows.categories,
                    strict=True), start=n_numeric):
            slots[row_index] = np.fromiter(map(lookup.get, categories, repeat(other, count)),
                                           dtype=np.int64, count=count)
            missing_count = categories.count(None)
            for category in named_missing:
                missing_count += categories.count(category)
            states[index, STATUS_MISSING] = missing_count
            states[index, STATUS_OK] = count - missing_count
        return BinnedBatch(slots, states, out_of_range)

    def bin_columns(self, columns: Sequence[FeatureColumn]) -> BinnedBatch:
        count = len(columns[0]) if columns else 0  # pragma: no mutate: [] fails the zip below
        slots = np.empty((len(self.features), count), dtype=np.int64)
        states = np.zeros((len(self.features), N_STATES), dtype=np.int64)
        out_of_range = np.zeros(len(self.features), dtype=np.int64)
        for index, (feature, column) in enumerate(zip(self.features, columns, strict=True)):
            row = slots[index]
            offset = self._offsets[index]
            row[:] = feature.bin(column)
            row += offset
            status = column.status
            states[index] = np.bincount(status, minlength=N_STATES)
            if states[index, STATUS_OK] < count:  # pragma: no mutate: masking nothing is a no-op
                # Unusable values go to the feature's missing or invalid slot, never to a bin.
                row[status == STATUS_MISSING] = offset + feature.n_bins
                row[status > STATUS_MISSING] = offset + feature.n_bins + 1
            if feature.type == "numeric":
                out_of_range[index] = feature.out_of_range(column)
        return BinnedBatch(slots, states, out_of_range)
