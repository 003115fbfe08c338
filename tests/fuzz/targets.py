"""The fuzz targets: functions of the fuzzer's bytes that raise only on a finding.

- ``decoding``: a batch of messages through ``DriftMonitor.process_payloads``. The first byte
  picks one of ``variants()`` (features, window, size limit); the rest is the batch, one
  message per line (a line ``\\x00`` is a tombstone, a record without a value). No exception
  may escape; every message is counted once, accepted or rejected for a reason, and every
  accepted one once per feature, in a bin or as missing or invalid; and the typed decoder
  gives what the general one gives (``MessageDecoder`` and ``extract_features``): the same
  rejections, the same values, the same slots in the window.
- ``config``: the bytes as a config file through ``load_config``: a ``Config``, or a
  ``ConfigError`` with a message, never another exception.
- ``baseline``: the bytes as a baseline file through ``load_baseline``: a ``Baseline`` (which
  ``baseline show`` can describe and which saves to a file that loads the same), or a
  ``BaselineError`` with a message.

``seed_inputs(target)`` are the inputs a run starts from: real messages (the demo's
synthetic stream, the churn example's ``recent.jsonl``), the example configs and baselines
built from those messages, some already edited the way producers and users get them wrong.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streamdrift.baseline import (
    Baseline,
    describe_baseline,
    load_baseline,
    parse_baseline,
)
from streamdrift.binning import SlotBinner
from streamdrift.config import (
    Config,
    DetectorConfig,
    FeatureSpec,
    InputConfig,
    WindowConfig,
    load_config,
)
from streamdrift.decoding import REJECT_REASONS, MessageDecoder
from streamdrift.errors import BaselineError, ConfigError, StreamdriftError
from streamdrift.features import extract_features, raw_values
from streamdrift.monitor import DriftMonitor, DriftReport, event_times_s, reference_baseline
from streamdrift.schema import MessageSchema
from streamdrift.sketch import SlotLayout
from streamdrift.synthetic import DEMO_CONFIG_YAML, SyntheticStream

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE_CONFIG = REPO / "config.yaml"
CHURN = REPO / "docs" / "examples" / "churn"
# Found inputs kept as regression seeds, a folder per target: replayed first by the tests.
REGRESSION_CORPUS = Path(__file__).resolve().parent / "corpus"
# A line of the decoding target's batch that stands for a tombstone (no value).
TOMBSTONE = b"\x00"


class PropertyError(AssertionError):
    """A property of a target does not hold for an input."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyError(message)


# ---- decoding -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One monitor setup of the decoding target: a config, its baseline, its seed batches,
    and whether a batch comes with record timestamps (as Kafka's records do)."""

    name: str
    config: Config
    baseline: Baseline
    seeds: tuple[tuple[bytes | None, ...], ...]
    record_time: bool = False

    @property
    def time_field(self) -> tuple[str, ...] | None:
        window = self.config.window
        return window.time_field if window.is_event_time else None

    @property
    def max_bytes(self) -> int:
        return self.config.input.max_message_bytes

    @property
    def schema(self) -> MessageSchema:
        return _decoders(self.name)[0]

    @property
    def binner(self) -> SlotBinner:
        return _decoders(self.name)[1]


def _with_missing_values(specs: Sequence[FeatureSpec], default: tuple[str | float, ...],
                         own: dict[str, tuple[str | float, ...]]) -> tuple[FeatureSpec, ...]:
    return tuple(dataclasses.replace(spec, missing_values=own.get(spec.name, default))
                 for spec in specs)


def _edited(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``message`` with ``value`` at ``path``."""
    copy = json.loads(json.dumps(message))
    target = copy
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return copy


def _lines(messages: Sequence[dict[str, Any]]) -> tuple[bytes, ...]:
    # json.dumps writes NaN and Infinity literals, as Python producers do.
    return tuple(json.dumps(message).encode() for message in messages)


@cache
def variants() -> tuple[Variant, ...]:
    """The setups of the decoding target, chosen by the input's first byte."""
    example = load_config(EXAMPLE_CONFIG, environ={})
    demo = dataclasses.replace(example, window=WindowConfig(size=16, panes=4))
    stream = SyntheticStream(demo, seed=7)
    demo_messages = stream.messages(12, drifted=("session_length", "device"), drift_from=6)
    churn = load_config(CHURN / "churn.yaml", environ={})
    with (CHURN / "recent.jsonl").open(encoding="utf-8") as lines:
        recent = [json.loads(line) for line, _ in zip(lines, range(1200), strict=False)]
    churn_messages = recent[:6] + recent[1100:1106]

    demo_missing = dataclasses.replace(
        demo, window=WindowConfig(size=6, panes=2),
        detector=DetectorConfig(method="page_hinkley"),
        features=_with_missing_values(demo.features, ("unknown", "n/a", -1.0),
                                      {"device": ("tv", 0.0), "age": (-999.0, "old")}))
    churn_event = dataclasses.replace(
        churn, window=WindowConfig(size=None, duration_s=40.0, panes=4, time_field=("ts",),
                                   time_unit="ms"),
        input=InputConfig(max_message_bytes=200))
    churn_record = dataclasses.replace(
        churn, window=WindowConfig(size=None, duration_s=180.0, panes=3),
        detector=DetectorConfig(method="none"))
    demo_iso = dataclasses.replace(
        demo, window=WindowConfig(size=None, duration_s=3600.0, panes=4,
                                  time_field=("meta", "time"), time_unit="iso"),
        detector=DetectorConfig(method="kswin", params={"seed": 1}),
        features=_with_missing_values(demo.features, ("unknown", -1.0), {}))
    iso_messages = [_edited(message, ("meta", "time"), f"2026-05-01T{index:02d}:30:00Z")
                    for index, message in enumerate(demo_messages)]

    edited_demo = [
        _edited(demo_messages[0], ("offer", "discount_rate"), math.nan),
        _edited(demo_messages[1], ("customer", "age"), "42"),
        _edited(demo_messages[2], ("device",), 3),
        _edited(demo_messages[3], ("usage", "session_length"), math.inf),
        _edited(demo_messages[4], ("usage",), [1, 2]),
    ]
    missing_demo = [
        _edited(demo_messages[0], ("device",), "unknown"),
        _edited(demo_messages[1], ("customer", "age"), -999),
        _edited(demo_messages[2], ("plan",), "n/a"),
        _edited(demo_messages[3], ("customer", "age"), "OLD"),
        _edited(demo_messages[4], ("device",), 0),
        _edited(demo_messages[5], ("usage", "purchases_30d"), -1),
    ]
    edited_churn = [
        _edited(churn_messages[0], ("ts",), "1788220800000"),
        _edited(churn_messages[1], ("monthly_charges",), None),
        _edited(churn_messages[2], ("ts",), 1.7882208e12),
        _edited(churn_messages[3], ("contract",), True),
        _edited(churn_messages[4], ("customer",), "NL"),
    ]
    faults: tuple[bytes | None, ...] = (b"", None, b"[1, 2]", b"{not json", b'"text"')

    def monitor_baseline(config: Config, messages: list[dict[str, Any]]) -> Baseline:
        columns = extract_features(messages, config.features)
        return reference_baseline(config, {spec.name: column for spec, column
                                           in zip(config.features, columns, strict=True)},
                                  "fuzz reference")

    demo_reference = stream.reference(2000)
    return (
        Variant("demo", demo, monitor_baseline(demo, demo_reference), (
            _lines(demo_messages), _lines(demo_messages[:3] + edited_demo) + faults)),
        Variant("demo-missing-values", demo_missing,
                monitor_baseline(demo_missing, demo_reference), (
                    _lines(demo_messages[:6]), _lines(missing_demo + edited_demo[:2]))),
        Variant("churn-event-time", churn_event, monitor_baseline(churn_event, recent), (
            _lines(churn_messages), _lines(churn_messages[:2] + edited_churn) + faults)),
        Variant("churn-record-time", churn_record, monitor_baseline(churn_record, recent), (
            _lines(churn_messages), _lines(edited_churn)), record_time=True),
        Variant("demo-iso-time", demo_iso, monitor_baseline(demo_iso, demo_reference), (
            _lines(iso_messages),
            _lines([*iso_messages[:2], _edited(iso_messages[2], ("meta", "time"), "soon"),
                    _edited(iso_messages[3], ("meta", "time"), 1.5e9), *missing_demo[:3]]))),
    )


@cache
def _decoders(name: str) -> tuple[MessageSchema, SlotBinner]:
    """The typed decoder and the binner of a variant, as its monitors have them."""
    variant = next(variant for variant in variants() if variant.name == name)
    specs = variant.config.features
    features = [variant.baseline[spec.name] for spec in specs]
    return (MessageSchema(specs, variant.max_bytes, variant.time_field),
            SlotBinner(features, SlotLayout.from_bins([f.n_bins for f in features]), specs))


def split_batch(data: bytes) -> list[bytes | None]:
    """The decoding target's batch: one payload per line, ``TOMBSTONE`` for None."""
    return [None if line == TOMBSTONE else line for line in data.split(b"\n")]


def join_batch(variant: int, payloads: Sequence[bytes | None]) -> bytes:
    """The input that ``decoding`` reads as ``payloads`` for variant number ``variant``."""
    return bytes([variant]) + b"\n".join(TOMBSTONE if payload is None else payload
                                         for payload in payloads)


def record_timestamps(count: int) -> list[float]:
    """Kafka-like record timestamps, 20 s apart, every fifth one unusable (NaN)."""
    return [math.nan if index % 5 == 4 else 1.7e9 + 20.0 * index for index in range(count)]


def decoding(data: bytes) -> None:
    if not data:
        return
    all_variants = variants()
    variant = all_variants[data[0] % len(all_variants)]
    payloads = split_batch(data[1:])
    _check_decoders_agree(variant, payloads)
    timestamps = record_timestamps(len(payloads)) if variant.record_time else None
    monitor = DriftMonitor(variant.config, variant.baseline)
    # Two batches, so that the window and the totals carry over from one to the next.
    half = len(payloads) // 2
    for start, end in ((0, half), (half, len(payloads))):
        batch = payloads[start:end]
        rejections = monitor.process_payloads(
            batch, None if timestamps is None else timestamps[start:end])
        positions = [position for position, _ in rejections]
        expect(positions == sorted(set(positions))
               and all(0 <= position < len(batch) for position in positions),
               f"rejections are not one per refused payload, in order: {rejections}")
        expect(all(reason in REJECT_REASONS for _, reason in rejections),
               f"a rejection has an unknown reason: {rejections}")
    _check_counts(monitor, monitor.report(), len(payloads))


def _check_decoders_agree(variant: Variant, payloads: Sequence[bytes | None]) -> None:
    """The typed decoder's columns are the general path's, message for message."""
    fast = variant.schema.decode(payloads)
    general = MessageDecoder(variant.max_bytes).decode(payloads)
    expect(fast.rejections == general.rejections,
           f"rejections differ: typed {fast.rejections}, general {general.rejections}")
    expect(fast.positions == general.positions,
           f"accepted messages differ: typed {fast.positions}, general {general.positions}")
    specs = variant.config.features
    columns = extract_features(general.objects, specs)
    for spec, got, want in zip(specs, fast.columns, columns, strict=True):
        expect(got.status.tolist() == want.status.tolist(),
               f"feature {spec.name}: states differ: typed {got.status.tolist()}, "
               f"general {want.status.tolist()}")
        usable = want.status == 0
        expect(got.values[usable].tolist() == want.values[usable].tolist(),
               f"feature {spec.name}: values differ: typed {got.values[usable].tolist()}, "
               f"general {want.values[usable].tolist()}")
    if fast.typed is not None:
        # The monitor bins a typed batch by type, and any other batch column by column.
        by_type = variant.binner.bin_typed(fast.typed)
        by_column = variant.binner.bin_columns(columns)
        # Rows of the slot matrix come in no particular order: each message's set of slots.
        expect(np.sort(by_type.slots, axis=0).tolist()
               == np.sort(by_column.slots, axis=0).tolist(),
               "binned by type and column by column, messages land in different slots")
        expect(by_type.states.tolist() == by_column.states.tolist()
               and by_type.out_of_range.tolist() == by_column.out_of_range.tolist(),
               "binned by type and column by column, the counts by state or out of range "
               "differ")
    if variant.time_field is None:
        expect(fast.event_times is None, "event times decoded without a time field")
        return
    want_times = raw_values(general.objects, variant.time_field)
    got_times = fast.event_times or []
    expect(len(got_times) == len(want_times),
           f"event times of {len(got_times)} messages, {len(want_times)} accepted")
    unit = variant.config.window.time_unit
    got_seconds, got_usable = event_times_s(got_times, unit)
    want_seconds, want_usable = event_times_s(want_times, unit)
    expect(got_usable.tolist() == want_usable.tolist()
           and got_seconds[want_usable].tolist() == want_seconds[want_usable].tolist(),
           f"event times differ: typed {got_times}, general {want_times}")


def _check_counts(monitor: DriftMonitor, report: DriftReport, messages: int) -> None:
    """Every message counted once, accepted or rejected for a reason; every accepted one
    counted once per feature: in a bin, missing or invalid."""
    invalid = sum(monitor.rejected.values())
    expect(report.messages == messages,
           f"{messages} messages in, {report.messages} counted")
    expect(report.invalid == invalid == sum(report.invalid_reasons.values()),
           f"rejections by reason {dict(report.invalid_reasons)} do not sum to "
           f"{report.invalid}")
    expect(monitor.accepted == messages - invalid,
           f"{monitor.accepted} accepted + {invalid} rejected != {messages} messages")
    for name, feature in report.features.items():
        counted = (sum(feature.bin_totals) + feature.missing_total
                   + sum(feature.invalid_values_total.values()))
        expect(counted == monitor.accepted,
               f"feature {name}: {counted} values counted for {monitor.accepted} messages")
        in_window = feature.samples + feature.missing + feature.invalid
        expect(0 <= in_window <= monitor.accepted,
               f"feature {name}: {in_window} values in the window, {monitor.accepted} "
               f"accepted")
        expect(min(feature.bin_totals, default=0) >= 0
               and min(feature.window_counts, default=0) >= 0,
               f"feature {name}: a negative count")
        expect(feature.out_of_range_total <= sum(feature.bin_totals)
               and feature.unseen_total <= sum(feature.bin_totals),
               f"feature {name}: more values out of range or unseen than usable")


# ---- config and baseline files ------------------------------------------------------------

@cache
def _scratch() -> Path:
    """A folder for the file each input is written to, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="streamdrift-fuzz-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _check_error(error: StreamdriftError) -> None:
    text = str(error)
    expect(bool(text.strip()), f"{type(error).__name__} without a message")
    expect(bool(error.problems) and all(problem.strip() for problem in error.problems),
           f"{type(error).__name__} with an empty problem: {error.problems!r}")


def config(data: bytes) -> None:
    path = _scratch() / "config.yaml"
    path.write_bytes(data)
    try:
        loaded = load_config(path, environ={})
    except ConfigError as error:
        _check_error(error)
        return
    # What `streamdrift check` shows of every feature.
    loaded.window.describe()
    for spec in loaded.features:
        loaded.bins_for(spec)
        loaded.threshold_for(spec)
        loaded.min_samples_for(spec)


def baseline(data: bytes) -> None:
    path = _scratch() / "baseline.json"
    path.write_bytes(data)
    try:
        loaded = load_baseline(path)
    except BaselineError as error:
        _check_error(error)
        return
    describe_baseline(loaded)  # `streamdrift baseline show`
    saved = json.loads(json.dumps(loaded.to_json()))
    again = parse_baseline(saved, "its own saved copy")
    expect(again.content_hash() == loaded.content_hash(),
           "a baseline saved and loaded again is another baseline")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoding": decoding,
    "config": config,
    "baseline": baseline,
}
# The longest input the fuzzer makes per target: a batch of messages, a config file (PyYAML
# takes a second on some of 4 KiB: nested flow collections), a baseline.
MAX_LEN = {"decoding": 8192, "config": 2048, "baseline": 8192}


# ---- seeds and dictionaries ---------------------------------------------------------------

def seed_inputs(target: str) -> list[bytes]:
    """The inputs a fuzz run of ``target`` starts from."""
    if target == "decoding":
        return [join_batch(index, seed) for index, variant in enumerate(variants())
                for seed in variant.seeds]
    if target == "config":
        return list(_config_seeds())
    if target == "baseline":
        return list(_baseline_seeds())
    raise ValueError(f"no fuzz target {target!r}: one of {', '.join(TARGETS)}")


def _config_seeds() -> Iterator[bytes]:
    example = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    # The example without its comments: the same document in a fifth of the bytes.
    yield "\n".join(re.sub(r"\s+#.*$", "", line) for line in example.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")).encode()
    yield (CHURN / "churn.yaml").read_bytes()
    yield DEMO_CONFIG_YAML.encode()
    yield b"""\
kafka:
  topic_pattern: "features\\\\..*"
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: reader
  dead_letter_topic: features.rejected
features:
  - {name: amount, path: order.amount, bins: 10, threshold: 0.05, min_samples: 200,
     missing_values: [-1, n/a]}
  - {name: tier, type: categorical, missing_values: [unknown]}
window: {size: 15m, panes: 15, time_field: meta.ts, time_unit: iso}
detector: {method: kswin, params: {alpha: 0.005, window_size: 100, stat_size: 30}}
input: {max_message_bytes: 4096, missing_values: [NA, -999]}
divergence: {min_samples: 500, alpha: 0.01}
metrics: {tls_certfile: metrics.pem, tls_keyfile: metrics.key}
service: {refill: false, log_format: json}
"""
    # Whole numbers where the settings are read as floats, as people write them.
    yield b"""\
features:
  - {name: a, threshold: 1, missing_values: [0, -1]}
window: {size: 1h, panes: 60}
baseline: {smoothing: 1}
divergence: {threshold: 2, alpha: 0}
kafka: {connect_timeout_s: 5, session_timeout_s: 10}
service: {publish_interval_s: 1, lag_interval_s: 5, commit_interval_s: 0}
"""
    yield b"""\
defaults: &defaults {type: numeric, bins: 5}
features:
  - {<<: *defaults, name: a}
  - name: b
    <<: *defaults
window: {size: 100, panes: 10}
detector: {method: page_hinkley, params: {threshold: 50, min_instances: 30}}
"""


def _baseline_seeds() -> Iterator[bytes]:
    by_name = {variant.name: variant for variant in variants()}
    for name in ("demo", "churn-event-time"):
        document = by_name[name].baseline.to_json()
        yield (json.dumps(document, indent=2) + "\n").encode()  # as save_baseline writes it
    small = {
        "format": "streamdrift.baseline/v1", "created_at": "2026-01-01T00:00:00Z",
        "source": "by hand", "smoothing": 0.5,
        "features": {
            "x": {"type": "numeric", "edges": [1.0, 2.5], "min": 0.0, "max": 4.0,
                  "single_values": [0.0, None, None], "integral": False, "std": 1.2,
                  "probabilities": [0.25, 0.5, 0.25], "counts": [1, 2, 1], "count": 4,
                  "missing": 0, "invalid": 0},
            "plan": {"type": "categorical", "categories": ["free", "pro"],
                     "probabilities": [0.6, 0.3, 0.1]},
        },
    }
    yield json.dumps(small).encode()


def dictionary(target: str) -> list[bytes]:
    """Tokens the fuzzer may insert: the keys and words of each format."""
    json_words = [b"null", b"true", b"false", b"NaN", b"Infinity", b"-Infinity", b"1e400",
                  b"-0", b"1e-400", b"18446744073709551616", b'"\\u0000"', b'"\\ud800"',
                  b"{}", b"[]", b'":', b"\xef\xbb\xbf"]
    if target == "decoding":
        paths = {key for variant in variants() for spec in variant.config.features
                 for key in spec.path} | {"ts", "meta", "time"}
        return json_words + [f'"{key}"'.encode() for key in sorted(paths)]
    if target == "config":
        keys: set[str] = set()
        _collect_keys(yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8")), keys)
        words = ["numeric", "categorical", "adwin", "page_hinkley", "kswin", "none", "15m",
                 "500ms", "iso", "SASL_SSL", "SCRAM-SHA-512", "OAUTHBEARER", "earliest",
                 "confluent", "json", "auto", "~", ".inf", ".nan", "&a", "*a", "<<: ",
                 "!!binary", "!!str", "!!int", "!!float", "!!set", "!!omap", "? ", "---",
                 "...", "- ", ": ", "{", "}", "[", "]", "|", ">", "%YAML 1.1", "2001-12-14",
                 "0x1F", "0o17", "1_000", "sasl_password", "sasl_password_file", "params",
                 "delta", "clock", "grace_period", "window_size", "stat_size", "seed",
                 "min_instances", "threshold", "alpha", "missing_values", "topic_pattern"]
        return [word.encode() for word in sorted(keys | set(words))]
    if target == "baseline":
        words = ["format", "streamdrift.baseline/v1", "created_at", "source", "smoothing",
                 "features", "type", "numeric", "categorical", "edges", "categories",
                 "probabilities", "counts", "count", "missing", "invalid", "min", "max",
                 "single_values", "integral", "std", "other"]
        return json_words + [f'"{word}"'.encode() for word in words]
    raise ValueError(f"no fuzz target {target!r}: one of {', '.join(TARGETS)}")


def _collect_keys(node: object, keys: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(str(key))
            _collect_keys(value, keys)
    elif isinstance(node, list):
        for item in node:
            _collect_keys(item, keys)


def write_dictionary(target: str, path: Path) -> Path:
    """``dictionary(target)`` in libFuzzer's format: one quoted, escaped token a line."""
    lines = []
    for token in dictionary(target):
        escaped = "".join(chr(byte) if 32 <= byte < 127 and byte not in b'"\\'
                          else f"\\x{byte:02x}" for byte in token)
        lines.append(f'"{escaped}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def regression_inputs(target: str) -> list[Path]:
    """The found inputs kept for ``target``, in name order."""
    folder = REGRESSION_CORPUS / target
    return sorted(path for path in folder.iterdir() if path.is_file()) \
        if folder.is_dir() else []
