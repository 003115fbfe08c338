"""The frozen baseline: per-feature bins and smoothed probabilities of the reference data.

A baseline is built once from training data and then never changes while it is in use. Its
JSON file is the whole contract: with it anyone can bin a value and recompute a divergence.

- numeric bin of ``x``: ``numpy.searchsorted(edges, x, side="right")``; so
  ``len(probabilities) == len(edges) + 1`` and values below or above the reference range fall
  in the first or the last bin;
- categorical bin: the category's index in ``categories``, or ``len(categories)`` ("other")
  for anything else, including categories the reference never had.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamdrift.config import FeatureSpec, FeatureType
from streamdrift.errors import BaselineError, join_problems
from streamdrift.features import STATUS_OK, FeatureColumn

BASELINE_FORMAT = "streamdrift.baseline/v1"
# What a baseline file without "smoothing" gets: baseline.smoothing's default.
DEFAULT_SMOOTHING = 0.5
# Probabilities written by hand or by another tool may be rounded; beyond this they are wrong.
_PROBABILITY_SUM_TOLERANCE = 1e-6
# The most reference values a baseline can count (numpy's int64).
_MAX_COUNT = 2**63 - 1


@dataclass(frozen=True, eq=False)
class FeatureBaseline:
    """One feature of the reference: its bins, the reference counts and probabilities."""

    name: str
    type: FeatureType
    counts: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float64]
    missing: int = 0
    invalid: int = 0
    edges: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # Per numeric bin: the one value all its reference values share, or None (a range, or
    # unknown for a file written without it). Never used in a divergence nor in a label (a
    # window value may fall anywhere in the bin): ``produce`` sends it, ``baseline diff``
    # projects the bin as that point.
    single_values: tuple[float | None, ...] = ()
    # Whether every reference value is a whole number (a count, an age in years): what a
    # synthetic producer must send to look like the reference.
    integral: bool = False
    # The reference values' standard deviation (None for a file written without it): the
    # unit of a synthetic producer's numeric drift.
    std: float | None = None
    _category_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {category: position for position, category in enumerate(self.categories)}
        object.__setattr__(self, "_category_index", index)

    @property
    def n_bins(self) -> int:
        return len(self.probabilities)

    @property
    def count(self) -> int:
        """Usable reference values (missing and invalid ones are not in any bin)."""
        return int(self.counts.sum())

    @property
    def other_bin(self) -> int:
        """The categorical bin for every category not listed (``len(categories)``)."""
        return len(self.categories)

    @cached_property
    def missing_ratio(self) -> float:
        total = self.count + self.missing + self.invalid
        return self.missing / total if total else 0.0

    @cached_property
    def other_ratio(self) -> float:
        """Share of the reference's usable values in the other bin, i.e. of categories the
        baseline does not list (those beyond ``max_categories``): unsmoothed, from the counts;
        the other bin's probability for a file without counts; 0 for a numeric feature.

        >>> FeatureBaseline("plan", "categorical", np.array([6, 1, 3]),
        ...                 np.array([0.6, 0.1, 0.3]), categories=("pro", "free")).other_ratio
        0.3
        """
        if self.type != "categorical":
            return 0.0
        if self.count:
            return int(self.counts[self.other_bin]) / self.count
        return float(self.probabilities[self.other_bin])

    @cached_property
    def bin_labels(self) -> tuple[str, ...]:
        r"""A readable name for every bin, in bin order, true of any value that falls in it
        (a window's as well as the reference's), and unique within the feature.

        Numeric: ``< e0``, ``[e0, e1)``, ..., ``>= e_last`` from the edges. The first and
        last bins keep their open ends even where the reference held a single value there,
        since any smaller or larger value falls in them; a middle bin is a range even where
        the reference held one value in it, since other values between its edges fall in it
        too. The one exception: for a feature whose reference values are all whole numbers
        (``integral``), a middle bin whose range holds a single whole number, ``[n, m)`` with
        ``n`` whole and ``m <= n + 1``, is labelled ``n``. Edges are written with six
        significant digits, or more where six would make two of them look the same.
        Categorical: the category (control characters escaped), then ``other`` (``other
        (unlisted)`` when a category is itself called ``other``).

        >>> age = FeatureBaseline("age", "numeric", np.array([5, 5, 5]),
        ...                       np.array([0.3, 0.3, 0.4]), edges=np.array([18.0, 40.5]))
        >>> age.bin_labels
        ('< 18', '[18, 40.5)', '>= 40.5')
        >>> FeatureBaseline("kids", "numeric", np.ones(5, dtype=np.int64), np.full(5, 0.2),
        ...                 edges=np.array([1.0, 2.0, 3.0, 7.0]), integral=True).bin_labels
        ('< 1', '1', '2', '[3, 7)', '>= 7')
        >>> FeatureBaseline("plan", "categorical", np.array([5, 5, 0]),
        ...                 np.array([0.45, 0.45, 0.1]), categories=("pro", "a\tb")).bin_labels
        ('pro', 'a\\tb', 'other')
        """
        if self.type != "numeric":
            names = [_printable(category) for category in self.categories]
            other = "other (unlisted)" if "other" in self.categories else "other"
            return (*names, other)
        if not len(self.edges):
            return ("all values",)
        edges = self.edges.tolist()
        texts = format_edges(edges)
        labels = [f"< {texts[0]}",
                  *(f"[{low}, {high})" for low, high in itertools.pairwise(texts)),
                  f">= {texts[-1]}"]
        if self.integral:
            for index, (low, high) in enumerate(itertools.pairwise(edges), start=1):
                if low.is_integer() and high <= low + 1:
                    labels[index] = texts[index - 1]
        return tuple(labels)

    def same_bins(self, other: FeatureBaseline) -> bool:
        """Whether a value falls in the same bin under both (probabilities may differ)."""
        return (self.type == other.type and self.categories == other.categories
                and np.array_equal(self.edges, other.edges))

    def bin(self, column: FeatureColumn) -> npt.NDArray[np.int64]:
        """The bin of every value; unusable values get bin 0, which callers must mask.

        >>> import numpy as np
        >>> from streamdrift.features import numeric_column
        >>> age = FeatureBaseline("age", "numeric", np.array([5, 5, 5]),
        ...                       np.array([0.3, 0.3, 0.4]), edges=np.array([18.0, 40.0]))
        >>> age.bin(numeric_column([3, 18, 39.9, 40, 99])).tolist()
        [0, 1, 1, 2, 2]
        """
        if self.type == "numeric":
            return np.searchsorted(self.edges, column.values, side="right").astype(
                np.int64, copy=False)
        count = len(column)
        return np.fromiter(map(self._category_index.get, column.values,
                               repeat(self.other_bin, count)), dtype=np.int64, count=count)

    def out_of_range(self, column: FeatureColumn) -> int:
        """Usable numeric values outside the reference's [minimum, maximum]."""
        if self.type != "numeric" or self.minimum is None or self.maximum is None:
            return 0
        outside = (column.values < self.minimum) | (column.values > self.maximum)
        # Unusable values hold a placeholder 0.0, which must not count.
        return int(np.count_nonzero(outside & (column.status == STATUS_OK)))

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"type": self.type}
        if self.type == "numeric":
            document["edges"] = [float(edge) for edge in self.edges]
            document["min"] = self.minimum
            document["max"] = self.maximum
            if any(value is not None for value in self.single_values):
                document["single_values"] = list(self.single_values)
            if self.integral:
                document["integral"] = True
            if self.std is not None:
                document["std"] = self.std
        else:
            document["categories"] = list(self.categories)
        document["probabilities"] = [float(p) for p in self.probabilities]
        document["counts"] = [int(c) for c in self.counts]
        document["count"] = self.count
        document["missing"] = self.missing
        document["invalid"] = self.invalid
        return document


@dataclass(frozen=True, eq=False)
class Baseline:
    """The reference distribution of every feature, in config order."""

    features: Mapping[str, FeatureBaseline]
    created_at: str
    source: str
    smoothing: float
    format: str = BASELINE_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created_at": self.created_at,
            "source": self.source,
            "smoothing": self.smoothing,
            "features": {name: feature.to_json() for name, feature in self.features.items()},
        }

    @cached_property
    def _hash(self) -> str:
        canonical = json.dumps(self.to_json()["features"], sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def content_hash(self) -> str:
        """A short hash of what determines the divergences (bins and probabilities); computed
        once, since the baseline never changes."""
        return self._hash

    def __getitem__(self, name: str) -> FeatureBaseline:
        return self.features[name]


def smooth(counts: npt.NDArray[np.int64], alpha: float) -> npt.NDArray[np.float64]:
    """Additive smoothing: ``p_i = (c_i + alpha) / (n + alpha * bins)``, so every ``p_i > 0``.

    >>> smooth(np.array([3, 0, 1]), 0.5).tolist()
    [0.6363636363636364, 0.09090909090909091, 0.2727272727272727]
    """
    total = float(counts.sum()) + alpha * len(counts)
    return (counts.astype(np.float64) + alpha) / total


def quantile_edges(values: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    """Equal-frequency edges: the ``k/bins`` quantiles, duplicates and the minimum removed.

    Each edge is a value of the data (``inverted_cdf``), so every bin ``[e_k, e_k+1)`` holds
    at least that value and no bin is empty. A feature with at most ``bins`` distinct values
    (a count, a 0-10 rating) gets exactly one bin per value, rare values included.

    >>> quantile_edges(np.array([0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0]), 4).tolist()
    [1.0, 3.0]
    >>> quantile_edges(np.array([0.0, 0.0, 0.0, 1.0, 2.0, 2.0]), 20).tolist()
    [1.0, 2.0]
    >>> quantile_edges(np.array([7.0, 7.0, 7.0]), 20).tolist()
    []
    """
    if bins <= 1 or len(values) == 0:
        return np.empty(0)
    distinct: npt.NDArray[np.float64] = np.unique(values)
    if len(distinct) <= bins:
        return distinct[1:]
    levels = np.arange(1, bins) / bins
    edges: npt.NDArray[np.float64] = np.unique(np.quantile(values, levels,
                                                           method="inverted_cdf"))
    kept: npt.NDArray[np.float64] = edges[edges > distinct[0]]
    return kept


def build_feature_baseline(
    spec: FeatureSpec, column: FeatureColumn, bins: int, max_categories: int, alpha: float
) -> FeatureBaseline:
    """One feature's baseline from its reference column."""
    usable = column.status == STATUS_OK
    missing = int(np.count_nonzero(column.status == 1))
    invalid = len(column) - int(np.count_nonzero(usable)) - missing
    values = column.values[usable]
    if len(values) == 0:
        raise BaselineError(
            f"feature {spec.name!r} has no usable value in the reference data "
            f"({missing} missing, {invalid} invalid): check its name/path and type"
        )
    if spec.type == "numeric":
        edges = quantile_edges(values, bins)
        slots = np.searchsorted(edges, values, side="right")
        counts = np.bincount(slots, minlength=len(edges) + 1).astype(np.int64)
        return FeatureBaseline(
            spec.name, "numeric", counts, smooth(counts, alpha), missing, invalid,
            edges=edges, minimum=float(values.min()), maximum=float(values.max()),
            single_values=_single_values(values, slots, len(edges) + 1),
            integral=bool(np.all(values == np.round(values))),
            std=float(values.std()),
        )
    frequencies = Counter(values.tolist())
    # Most frequent first; ties broken by name so that a rebuild gives the same file.
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:max_categories]
    other = sum(count for _, count in ranked[max_categories:])
    counts = np.array([count for _, count in kept] + [other], dtype=np.int64)
    return FeatureBaseline(
        spec.name, "categorical", counts, smooth(counts, alpha), missing, invalid,
        categories=tuple(category for category, _ in kept),
    )


def _single_values(values: npt.NDArray[np.float64], slots: npt.NDArray[np.int64],
                   n_bins: int) -> tuple[float | None, ...]:
    """Per bin, the one value all of its reference values share, else None.

    >>> _single_values(np.array([0.0, 0.0, 2.0, 3.0]), np.array([0, 0, 1, 1]), 3)
    (0.0, None, None)
    """
    low = np.full(n_bins, np.inf)
    high = np.full(n_bins, -np.inf)
    np.minimum.at(low, slots, values)
    np.maximum.at(high, slots, values)
    return tuple(float(a) if a == b else None
                 for a, b in zip(low.tolist(), high.tolist(), strict=True))


def format_number(value: float, digits: int = 6) -> str:
    """A number as a person reads it: an integer without decimals; else ``digits``
    significant digits, in plain notation (its whole part in full) from 0.0001 to 10**15,
    in scientific notation beyond.

    >>> format_number(88.0), format_number(12.5), format_number(0.1 + 0.2), format_number(-1e-7)
    ('88', '12.5', '0.3', '-1e-07')
    >>> format_number(1700000123.25), format_number(1700000123.25, 12), format_number(-0.25)
    ('1700000123', '1700000123.25', '-0.25')
    """
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if not 1e-4 <= abs(value) < 1e15:
        return f"{value:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_edges(edges: Sequence[float]) -> list[str]:
    """Strictly increasing edges written with the fewest significant digits, six at least,
    that keep them all apart: six for most features, more for values spread narrowly around
    a large number (epoch seconds). Failing that, the shortest text that reads back as the
    same float, which tells any two floats apart.

    >>> format_edges([12.5, 88.0])
    ['12.5', '88']
    >>> format_edges([1700000000.5, 1700000060.25, 1700000120.0])
    ['1700000000', '1700000060', '1700000120']
    >>> format_edges([1700000000.25, 1700000000.5, 1700000001.0])
    ['1700000000.2', '1700000000.5', '1700000001']
    """
    for digits in range(6, 18):
        texts = [format_number(edge, digits) for edge in edges]
        if len(set(texts)) == len(texts):
            return texts
    return [repr(float(edge)) for edge in edges]


def _printable(text: str) -> str:
    r"""Text with its control characters escaped, so that a label stays on one line.

    >>> _printable("a\nb"), _printable("café")
    ('a\\nb', 'café')
    """
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else
                   character.encode("unicode_escape").decode("ascii") for character in text)


def build_baseline(
    specs: Sequence[FeatureSpec],
    columns: Mapping[str, FeatureColumn],
    bins_for: Mapping[str, int],
    max_categories: int,
    smoothing: float,
    source: str,
) -> Baseline:
    """A frozen baseline from reference columns (one per spec, by feature name)."""
    features = {
        spec.name: build_feature_baseline(spec, columns[spec.name], bins_for[spec.name],
                                          max_categories, smoothing)
        for spec in specs
    }
    created_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Baseline(features, created_at, source, smoothing)


def save_baseline(baseline: Baseline, path: Path) -> None:
    """Write the baseline as indented JSON, atomically (a reader never sees half a file),
    readable by all like any file the umask allows (0644 usually): a service running under
    another user, in a container say, must read it."""
    text = json.dumps(baseline.to_json(), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp makes the file 0600; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline file; every problem is reported with the feature at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BaselineError(f"cannot read baseline {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise BaselineError(f"baseline {path} is not UTF-8 text (byte {error.start + 1} is "
                            f"{error.object[error.start:error.start + 1]!r})") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise BaselineError(f"baseline {path} is not valid JSON: {error}") from None
    except RecursionError:
        raise BaselineError(f"baseline {path} is nested too deeply to be a baseline (hundreds "
                            "of levels)") from None
    return parse_baseline(document, str(path))


def parse_baseline(document: object, where: str) -> Baseline:
    """Check a baseline document (already parsed JSON) and freeze it."""
    if not isinstance(document, dict):
        raise BaselineError(f"baseline {where}: must be a JSON object")
    problems: list[str] = []
    if document.get("format") != BASELINE_FORMAT:
        problems.append(f"format must be {BASELINE_FORMAT!r} (got {document.get('format')!r})")
    # > 0: PSI smooths the window with it, and an empty window bin would make it infinite.
    smoothing = document.get("smoothing", DEFAULT_SMOOTHING)
    if not _is_number(smoothing) or not smoothing > 0:
        problems.append(f"smoothing must be a number > 0 (got {smoothing!r})")
        smoothing = 0.0  # pragma: no mutate: never read: a problem was recorded
    raw_features = document.get("features")
    features: dict[str, FeatureBaseline] = {}
    if not isinstance(raw_features, dict) or not raw_features:
        problems.append("features must be a non-empty object of feature name -> bins")
    else:
        for name, raw in raw_features.items():
            feature = _parse_feature(name, raw, problems)
            if feature is not None:
                features[name] = feature
    if problems:
        raise BaselineError(join_problems(f"invalid baseline {where}:", problems),
                            tuple(problems))
    return Baseline(
        features=features,
        created_at=str(document.get("created_at", "")),
        source=str(document.get("source", "")),
        smoothing=float(smoothing),
        format=BASELINE_FORMAT,  # pragma: no mutate: the default is the same
    )


def _is_number(value: object) -> bool:
    """A finite int or float (an integer too large for a float is not one).

    >>> _is_number(0.5), _is_number(True), _is_number(float("inf")), _is_number(10**400)
    (True, False, False, False)
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond a float's range
        return False


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_feature(name: str, raw: object, problems: list[str]) -> FeatureBaseline | None:
    before = len(problems)

    def fault(message: str) -> None:
        problems.append(f"feature {name!r}: {message}")

    if not isinstance(raw, dict):
        fault("must be an object")
        return None
    feature_type = raw.get("type")
    if feature_type not in ("numeric", "categorical"):
        fault(f"type must be numeric or categorical (got {feature_type!r})")
        return None
    probabilities = raw.get("probabilities")
    if not isinstance(probabilities, list) or not all(map(_is_number, probabilities)):
        fault("probabilities must be a list of finite numbers")
        return None
    if any(p <= 0 for p in probabilities):
        fault("every probability must be > 0 (smoothed)")
    elif abs(math.fsum(probabilities) - 1.0) > _PROBABILITY_SUM_TOLERANCE:
        fault(f"probabilities must sum to 1 (got {math.fsum(probabilities)!r})")
    edges: list[float] = []
    categories: list[str] = []
    minimum = maximum = None
    if feature_type == "numeric":
        raw_edges = raw.get("edges", None)  # pragma: no mutate: None is get's default
        if not isinstance(raw_edges, list) or not all(map(_is_number, raw_edges)):
            fault("edges must be a list of finite numbers")
            return None
        edges = raw_edges
        if any(b <= a for a, b in itertools.pairwise(edges)):
            fault("edges must be strictly increasing")
        if len(probabilities) != len(edges) + 1:
            fault(f"needs len(edges) + 1 = {len(edges) + 1} probabilities "
                  f"(got {len(probabilities)})")
        minimum, maximum = raw.get("min"), raw.get("max")
        if (minimum is None) != (maximum is None) or (
            minimum is not None and not (_is_number(minimum) and _is_number(maximum)
                                         and minimum <= maximum)):
            fault(f"min and max must both be numbers with min <= max (got {minimum!r}, "
                  f"{maximum!r})")
    else:
        raw_categories = raw.get("categories", None)  # pragma: no mutate: None is get's default
        if not isinstance(raw_categories, list) or not all(
                isinstance(c, str) for c in raw_categories):
            fault("categories must be a list of strings")
            return None
        categories = raw_categories
        if len(set(categories)) != len(categories):
            fault("categories must not repeat")
        if len(probabilities) != len(categories) + 1:
            fault(f"needs len(categories) + 1 = {len(categories) + 1} probabilities, the last "
                  f"for other categories (got {len(probabilities)})")
    counts = raw.get("counts", [0] * len(probabilities))
    if not isinstance(counts, list) or not all(map(_is_count, counts)):
        fault("counts must be a list of non-negative integers")
    elif len(counts) != len(probabilities):
        fault(f"counts must have one entry per probability (got {len(counts)})")
    elif sum(counts) > _MAX_COUNT:  # they are summed as int64
        fault("counts must sum to at most 2**63 - 1")
    for key in ("missing", "invalid"):
        if not _is_count(raw.get(key, 0)):
            fault(f"{key} must be a non-negative integer (got {raw.get(key)!r})")
    if "count" in raw and _is_count(raw["count"]) and isinstance(counts, list) \
            and all(map(_is_count, counts)) and sum(counts) not in (0, raw["count"]):
        fault(f"count {raw['count']} differs from the sum of counts {sum(counts)}")
    single_values = raw.get("single_values", [])
    if not isinstance(single_values, list) or not all(
            value is None or _is_number(value) for value in single_values) or (
            single_values and len(single_values) != len(probabilities)):
        fault("single_values must be a list of numbers or nulls, one per bin")
    integral = raw.get("integral", False)
    if not isinstance(integral, bool):
        fault(f"integral must be true or false (got {integral!r})")
    std = raw.get("std")
    if std is not None and not (_is_number(std) and std >= 0):
        fault(f"std must be a number >= 0 (got {std!r})")
    if len(problems) > before:
        return None
    return FeatureBaseline(
        name=name,
        type=feature_type,
        counts=np.array(counts, dtype=np.int64),  # pragma: no mutate: JSON integers are int64
        probabilities=np.array(probabilities, dtype=np.float64),  # pragma: no mutate: same values
        missing=int(raw.get("missing", 0)),
        invalid=int(raw.get("invalid", 0)),
        edges=np.array(edges, dtype=np.float64),  # pragma: no mutate: same values
        categories=tuple(categories),
        minimum=None if minimum is None else float(minimum),
        maximum=None if maximum is None else float(maximum),
        single_values=tuple(None if value is None else float(value)
                            for value in single_values),
        integral=integral,
        std=None if std is None else float(std),
    )


def check_baseline_fits(baseline: Baseline, specs: Iterable[FeatureSpec], where: str) -> None:
    """Every configured feature must be in the baseline, with the same type."""
    problems = []
    for spec in specs:
        feature = baseline.features.get(spec.name)
        if feature is None:
            problems.append(f"feature {spec.name!r} is configured but not in the baseline; "
                            "rebuild it with `streamdrift baseline build`")
        elif feature.type != spec.type:
            problems.append(f"feature {spec.name!r} is {spec.type} in the config but "
                            f"{feature.type} in the baseline")
    if problems:
        raise BaselineError(join_problems(f"baseline {where} does not fit the config:",
                                          problems), tuple(problems))


@dataclass(frozen=True)
class FeatureDiff:
    """How a feature moved from one baseline to another: ``kl`` is KL(new || old) of their
    (smoothed) probabilities on the old baseline's bins; ``moved`` holds ``(label, old
    share, new share)`` of the bins whose share changed most; ``projected`` says the new
    baseline had other bins and was mapped onto the old ones (an approximation: values
    spread evenly within each new bin)."""

    name: str
    kl: float
    moved: tuple[tuple[str, float, float], ...]
    projected: bool


def project_onto(source: FeatureBaseline, target: FeatureBaseline) -> npt.NDArray[np.float64]:
    """``source``'s probabilities over ``target``'s bins.

    Categorical: by category name; a category ``target`` does not list goes to its other
    bin, and ``source``'s own other bin too. Numeric: each ``source`` bin's probability is
    spread evenly over its range (between the reference's min and max at the open ends; a
    one-value bin is a point), then summed over ``target``'s bins.

    >>> old = FeatureBaseline("x", "numeric", np.array([1, 1]), np.array([0.5, 0.5]),
    ...                       edges=np.array([10.0]), minimum=0.0, maximum=20.0)
    >>> new = FeatureBaseline("x", "numeric", np.array([1, 1, 1]), np.array([0.25, 0.5, 0.25]),
    ...                       edges=np.array([5.0, 15.0]), minimum=0.0, maximum=20.0)
    >>> project_onto(new, old).tolist()
    [0.5, 0.5]
    """
    if source.same_bins(target):
        return source.probabilities.copy()
    result = np.zeros(target.n_bins)
    if target.type != "numeric":
        for category, share in zip((*source.categories, None), source.probabilities.tolist(),
                                   strict=True):
            position = target.other_bin if category is None else \
                target._category_index.get(category, target.other_bin)
            result[position] += share
        return result
    low = source.minimum if source.minimum is not None else (
        float(source.edges[0]) if len(source.edges) else 0.0)
    high = source.maximum if source.maximum is not None else (
        float(source.edges[-1]) if len(source.edges) else 0.0)
    bounds = [min(low, *source.edges.tolist()) if len(source.edges) else low,
              *source.edges.tolist(),
              max(high, *source.edges.tolist()) if len(source.edges) else high]
    cuts = target.edges
    for index, share in enumerate(source.probabilities.tolist()):
        single = source.single_values[index] if index < len(source.single_values) else None
        start, end = bounds[index], bounds[index + 1]
        if single is not None or end <= start:
            point = single if single is not None else start
            result[int(np.searchsorted(cuts, point, side="right"))] += share
            continue
        # The share of [start, end) that falls in each target bin.
        pieces = np.clip(np.concatenate([[start], cuts, [end]]), start, end)
        result += share * np.diff(pieces) / (end - start)
    return result


def diff_baselines(old: Baseline, new: Baseline, top: int = 3) -> list[FeatureDiff]:
    """Every feature of both, in the old one's order: how far the new baseline is from the
    old (a smoothed KL on the old bins) and the bins that moved most."""
    diffs = []
    for name, before in old.features.items():
        after = new.features.get(name)
        if after is None or after.type != before.type:
            continue
        moved_to = project_onto(after, before)
        positive = moved_to > 0
        kl = float(np.sum(np.where(positive, moved_to * np.log(
            np.where(positive, moved_to, 1.0) / before.probabilities), 0.0)))
        change = np.abs(moved_to - before.probabilities)
        order = np.argsort(-change, kind="stable")[:top]
        moved = tuple((before.bin_labels[i], float(before.probabilities[i]),
                       float(moved_to[i])) for i in order.tolist() if change[i] > 0)
        diffs.append(FeatureDiff(name, max(kl, 0.0), moved, not after.same_bins(before)))
    return diffs


def describe_baseline(baseline: Baseline) -> str:
    """A readable summary: one line per feature with its bins and reference shape."""
    lines = [
        f"format      {baseline.format}",
        f"created_at  {baseline.created_at}",
        f"source      {baseline.source}",
        f"smoothing   {baseline.smoothing}",
        f"hash        {baseline.content_hash()}",
        "",
        f"{'feature':<24} {'type':<12} {'bins':>5} {'count':>10} {'missing':>8} "
        f"{'invalid':>8}  shape",
    ]
    for name, feature in baseline.features.items():
        if feature.type == "numeric":
            shape = (f"range [{feature.minimum:.6g}, {feature.maximum:.6g}]"
                     if feature.minimum is not None and feature.maximum is not None
                     else f"{len(feature.edges)} edges")
        else:
            top = sorted(zip(feature.probabilities[:-1], feature.categories, strict=True),
                         reverse=True)[:3]
            shape = ", ".join(f"{category} {p:.0%}" for p, category in top)
            shape += f" ... other {feature.probabilities[-1]:.1%}"
        lines.append(f"{name:<24} {feature.type:<12} {feature.n_bins:>5} {feature.count:>10} "
                     f"{feature.missing:>8} {feature.invalid:>8}  {shape}")
    lines += ["", "bins (label: reference share):"]
    for name, feature in baseline.features.items():
        shares = ", ".join(f"{label} {p:.1%}" for label, p in
                           zip(feature.bin_labels, feature.probabilities.tolist(), strict=True))
        lines.append(f"  {name}: {shares}")
    return "\n".join(lines)
