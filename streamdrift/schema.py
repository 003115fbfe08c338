"""Decoding straight into feature columns: the fast path of the pipeline.

msgspec decodes a message into a struct that has only the configured feature paths, typed
(numbers as ``float | None``, categories as ``str | None``), skipping
every other key in C. Then one ``attrgetter`` per message reads all numeric features into a
row, and numpy turns the rows into a matrix. A message the typed decoder refuses (a wrong
type, ``NaN``, a string where a number belongs, not an object, not JSON) takes the general
path (``MessageDecoder`` and ``extract_features``), which classifies every value: the result
is the same as if the whole batch had taken the general path, only faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from streamdrift.config import FeatureSpec
from streamdrift.decoding import REJECT_EMPTY, REJECT_OVERSIZED, MessageDecoder
from streamdrift.features import (
    FeatureColumn,
    TypedRows,
    extract_features,
    raw_values,
)

NumericValue = float | None
# Categories sent as numbers or booleans are valid too; they take the general path, which
# spells them as text. Typing them str here keeps the common case's type check in C.
CategoryValue = str | None
TimeValue = float | str | None


@dataclass
class DecodedColumns:
    """A decoded batch (accepted messages, in arrival order): ``typed`` when the typed
    decoder took every message, else ``general``, one column per feature.

    ``positions[i]`` is the payload index of row ``i``; ``rejections`` pairs refused
    payloads with their reason; ``event_times`` holds the raw time field per row when the
    schema has one; ``specs`` are the features, whose missing values ``columns`` marks.
    """

    typed: TypedRows | None
    general: list[FeatureColumn] | None
    positions: list[int]
    rejections: list[tuple[int, str]] = field(default_factory=list)
    event_times: list[Any] | None = None
    specs: tuple[FeatureSpec, ...] = ()

    @property
    def columns(self) -> list[FeatureColumn]:
        """One column per feature, in configured order, whichever path decoded them: the
        columns the general path would have given."""
        if self.general is not None:
            return self.general
        assert self.typed is not None
        return self.typed.columns(self.specs)


def is_utf8(payload: bytes) -> bool:
    r"""Whether ``payload`` is UTF-8 text. The typed decoder skips the keys it does not need
    without reading them, invalid UTF-8 included; what is not text must take the general
    path, which refuses it as JSON (or reads it as UTF-16 or 32, as the stdlib does).

    >>> is_utf8(b'{"city": "K\xc3\xb6ln"}'), is_utf8(b'{"c\xf6ln": 1}')
    (True, False)
    """
    if payload.isascii():
        return True
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class MessageSchema:
    """The typed decoder of the configured features (and the event-time field, if any)."""

    def __init__(self, specs: Sequence[FeatureSpec], max_bytes: int,
                 time_field: tuple[str, ...] | None = None) -> None:
        self.specs = tuple(specs)
        self.max_bytes = max_bytes
        self.time_field = time_field
        leaves: dict[tuple[str, ...], Any] = {
            spec.path: NumericValue if spec.type == "numeric" else CategoryValue
            for spec in self.specs}
        if time_field is not None:
            leaves.setdefault(time_field, TimeValue)
        self._names: dict[tuple[str, ...], str] = {}
        root = self._struct(leaves, ())
        self._decoder = msgspec.json.Decoder(root)
        self._fallback = MessageDecoder(max_bytes)
        self._numeric = [i for i, spec in enumerate(self.specs) if spec.type == "numeric"]
        self._categorical = [i for i, spec in enumerate(self.specs)
                             if spec.type == "categorical"]
        numeric_paths = [self._names[self.specs[i].path] for i in self._numeric]
        self._numeric_row = attrgetter(*numeric_paths) if numeric_paths else None
        category_paths = [self._names[self.specs[i].path] for i in self._categorical]
        # The first path twice, so that one feature still gives a tuple per message.
        self._category_row = (attrgetter(*category_paths, category_paths[0])
                              if category_paths else None)
        self._time_getter = (attrgetter(self._names[time_field])
                             if time_field is not None else None)

    def _struct(self, leaves: dict[tuple[str, ...], Any], prefix: tuple[str, ...]) -> Any:
        """A struct type for the keys under ``prefix``; nested objects are structs whose
        default is an all-None instance, so a dotted ``attrgetter`` never meets a None."""
        children: dict[str, Any] = {}
        for path, leaf in leaves.items():
            if path[:len(prefix)] != prefix or len(path) == len(prefix):
                continue
            key = path[len(prefix)]
            if len(path) == len(prefix) + 1:
                children[key] = leaf
            else:
                children.setdefault(key, None)  # pragma: no mutate: None is setdefault's default
        fields: list[tuple[str, Any, Any]] = []
        for index, (key, leaf) in enumerate(children.items()):
            # Attribute names are generated (a JSON key need not be an identifier); the
            # field's ``name`` is the key in the message.
            attribute = f"f{index}"
            self._register((*prefix, key), attribute)
            if leaf is None:
                nested = self._struct(leaves, (*prefix, key))
                fields.append((attribute, nested,
                               msgspec.field(default_factory=nested, name=key)))
            else:
                fields.append((attribute, leaf, msgspec.field(default=None, name=key)))
        # gc=False: instances hold only numbers, text, None and structs like themselves, so
        # they cannot be part of a cycle; untracked, a batch of them costs the garbage
        # collector nothing (it was 10-20% of the pipeline's time at 34 features).
        return msgspec.defstruct(f"Schema{len(self._names)}", fields, gc=False)

    def _register(self, path: tuple[str, ...], attribute: str) -> None:
        parent = self._names.get(path[:-1], "")  # pragma: no mutate: None and "" read alike below
        self._names[path] = f"{parent}.{attribute}" if parent else attribute

    def decode(self, payloads: Sequence[bytes | None]) -> DecodedColumns:
        typed: list[Any] = []
        typed_positions: list[int] = []
        fallback_positions: list[int] = []
        rejections: list[tuple[int, str]] = []
        decode = self._decoder.decode
        max_bytes = self.max_bytes
        if (payloads and all(payloads) and max(map(len, payloads)) <= max_bytes  # type: ignore[arg-type]
                and all(map(is_utf8, payloads))):  # type: ignore[arg-type]
            # The common case, a clean batch: one comprehension, no bookkeeping per message.
            try:
                typed = [decode(payload) for payload in payloads]  # type: ignore[arg-type]
            except (msgspec.MsgspecError, RecursionError):
                typed = []
            else:
                return DecodedColumns(
                    self._typed_rows(typed), None, list(range(len(payloads))), [],
                    [self._time_getter(m) for m in typed]
                    if self._time_getter is not None else None, self.specs)
        for position, payload in enumerate(payloads):
            if not payload:
                rejections.append((position, REJECT_EMPTY))
            elif len(payload) > max_bytes:
                rejections.append((position, REJECT_OVERSIZED))
            elif not is_utf8(payload):
                fallback_positions.append(position)
            else:
                try:
                    typed.append(decode(payload))
                except (msgspec.MsgspecError, RecursionError):
                    fallback_positions.append(position)
                    continue
                typed_positions.append(position)
        rows = self._typed_rows(typed)
        times = ([self._time_getter(message) for message in typed]
                 if self._time_getter is not None else None)
        if not fallback_positions:
            return DecodedColumns(rows, None, typed_positions, rejections, times, self.specs)
        return self._merge_fallback(payloads, fallback_positions, rows.columns(self.specs),
                                    typed_positions, rejections, times)

    def _typed_rows(self, messages: list[Any]) -> TypedRows:
        count = len(messages)
        matrix = np.empty((count, len(self._numeric)), dtype=np.float64)
        if self._numeric_row is not None and count:
            # numpy turns None into NaN: missing values need no pass of their own.
            matrix = np.array(list(map(self._numeric_row, messages)),
                              dtype=np.float64).reshape(count, len(self._numeric))
        categories: list[tuple[str | None, ...]] = [()] * len(self._categorical)
        if self._category_row is not None and count:
            # (the getter repeats the first path: drop that extra column)
            categories = list(zip(*map(self._category_row, messages), strict=True))
            categories.pop()
        return TypedRows(matrix, categories, tuple(self._numeric), tuple(self._categorical))

    def _merge_fallback(
        self,
        payloads: Sequence[bytes | None],
        fallback_positions: list[int],
        typed_columns: list[FeatureColumn],
        typed_positions: list[int],
        rejections: list[tuple[int, str]],
        typed_times: list[Any] | None,
    ) -> DecodedColumns:
        """Decode the refused payloads the general way and interleave them by position."""
        decoded = self._fallback.decode([payloads[p] for p in fallback_positions])
        rejections = sorted(rejections + [(fallback_positions[index], reason)
                                          for index, reason in decoded.rejections])
        general_positions = [fallback_positions[index] for index in decoded.positions]
        general_columns = extract_features(decoded.objects, self.specs)
        positions = typed_positions + general_positions
        order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
        columns = [
            FeatureColumn(np.concatenate([typed.values, general.values])[order],
                          np.concatenate([typed.status, general.status])[order])
            for typed, general in zip(typed_columns, general_columns, strict=True)]
        times = None
        if typed_times is not None and self.time_field is not None:
            merged = typed_times + raw_values(decoded.objects, self.time_field)
            times = [merged[i] for i in order.tolist()]
        return DecodedColumns(None, columns, [positions[i] for i in order.tolist()],
                              rejections, times)

