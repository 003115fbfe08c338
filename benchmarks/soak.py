#!/usr/bin/env python3
"""Soak: ten million messages through ``streamdrift run``, watching the process for leaks.

    python benchmarks/soak.py --kafka 127.0.0.1:9092 [--messages 10000000] [--rate 20000]
                              [--features 34] [--block 250000] [--reload-every-s 5]
                              [--reload-bins same|mixed]

A topic of 3 partitions is fed in the background by a producer of its own process
(confluent-kafka, lz4, payloads encoded once: a pool drawn from the baseline's law and one
from a shifted law, benchmarks/messages.py). The warm-up's messages are produced as fast
as possible: the service starts behind, as after an outage, and its Kafka client's
prefetch queue fills up during the warm-up (librdkafka keeps up to 64 MiB of fetched
batches, and the allocator keeps that memory once the queue has drained: the first time
a service falls behind, its RSS rises by 100 MB or more and stays there). The rest comes
at ``--rate`` messages a second: 20,000 by default, which the service keeps up with on 2
cores shared with the broker, as a service in production does most of the time (``--rate
0``: all as fast as possible). The stream alternates blocks of ``--block`` messages from
each: drift switches on and off.
``streamdrift run`` (``kafka.client: confluent``, the benchmark's 34 features: numeric,
integer and categorical) consumes it from the beginning, with a baseline built for it.
Every ``--reload-every-s`` seconds the baseline file's content is replaced by the other
baseline file's and the service gets a SIGHUP; ``--reload-bins same`` alternates two
baselines with the same bins (the windows are kept), ``mixed`` rotates through a third with
other bins (the window is read again from Kafka, the counters start again). /metrics is
scraped every second, and every second the service's RSS (``VmRSS``), threads and open
file descriptors are read from /proc.

Warm-up: the first 10 % of the messages (``--warmup``), counted on /metrics. After it, the
RSS must grow by less than 5 MB (the last sample, idle after the last message, against the
median of the first tenth of the samples after warm-up), and the threads and file
descriptors must stay flat: the lowest count of the last tenth of the samples after
warm-up is not above the lowest of the first tenth (a short-lived thread or socket, e.g.
the one serving a scrape, is not a leak; a count that climbs is). Also checked: every
message counted, every reload applied, drift started in every drifting feature by every
shifted block read once the service has caught up with the producer (those it reads
from behind can run together: the partitions are read at different points of the stream
then), no scrape failed, and the service stops with exit code 0. Prints a table, writes it into
benchmarks/RESULTS.md between ``<!-- soak:start -->`` and ``<!-- soak:end -->`` (at the
default message count, or with ``--write``), and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import importlib
import itertools
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SOAK_START = "<!-- soak:start -->"
SOAK_END = "<!-- soak:end -->"
SECTION_TITLE = "## Soak"

DEFAULT_MESSAGES = 10_000_000
DEFAULT_WARMUP = 0.1
DEFAULT_RATE = 20_000.0
RSS_GROWTH_MAX_MB = 5.0
PARTITIONS = 3
SCRAPE_TIMEOUT_S = 5.0
# After the last message: the samples go on this long, the process being idle.
SETTLE_S = 5.0


# ---- the stream ----------------------------------------------------------------------------

def shifted(index: int, block: int) -> bool:
    """Whether message ``index`` comes from the shifted law: odd blocks of ``block`` do.

    >>> [shifted(i, 2) for i in range(6)]
    [False, False, True, True, False, False]
    """
    return (index // block) % 2 == 1


def expected_drift_events(messages: int, block: int) -> tuple[int, int]:
    """Shifted blocks in the stream, and those followed by a block of the baseline's law:
    each drifting feature should start drifting once in every one of the first and stop
    once after every one of the second.

    >>> expected_drift_events(10, 2), expected_drift_events(8, 2), expected_drift_events(3, 5)
    ((2, 2), (2, 1), (0, 0))
    """
    blocks = math.ceil(messages / block)
    starts = blocks // 2
    ends = (blocks - 1) // 2
    return starts, ends


def caught_up_at(samples: Sequence[Sample], flood: int, rate: float) -> int | None:
    """The count at which the service had caught up with a producer that sent ``flood``
    messages at once and then ``rate`` a second: the first second after the flood in which
    it counted no more than a quarter above the rate; None if it never did (and with
    ``rate`` 0, everything at once, it is behind until the end).

    >>> samples = [Sample(float(t), 0, 1, 1, 0.0, m) for t, m in
    ...            enumerate([0, 400, 800, 1000, 1100, 1200])]
    >>> caught_up_at(samples, 1000, 100), caught_up_at(samples, 1000, 0)
    (1100, None)
    """
    if rate <= 0:
        return None
    for before, sample in itertools.pairwise(samples):
        if sample.messages >= flood and sample.messages - before.messages <= 1.25 * rate * (
                sample.t_s - before.t_s):
            return sample.messages
    return None


def shifted_blocks_flagged(starts: Sequence[tuple[float, str]], samples: Sequence[Sample],
                           block: int, messages: int, first_block: int,
                           features: Sequence[str], lag_s: float = 2.0,
                           ) -> list[tuple[int, str]]:
    """The (block, feature) pairs, for the shifted blocks from ``first_block`` on and each
    of ``features``, in which no ``drift_started`` came: ``starts`` are (seconds since the
    service started, feature). A start belongs to the block of the count at the first sample
    ``lag_s`` or more after it: the counter on /metrics is published after a commit, once a
    second, so a sample right after the start can show a count from before the message
    that set it off (which comes a few thousand messages into a shifted block); two seconds
    later the count is past it by some 40,000 messages at most, well inside a block.

    >>> samples = [Sample(float(t), 0, 1, 1, 0.0, 10 * t) for t in range(9)]
    >>> shifted_blocks_flagged([(1.5, "a"), (5.2, "a"), (5.3, "b")], samples, 10, 80, 1,
    ...                        ["a", "b"], lag_s=0)
    [(1, 'b'), (3, 'a'), (3, 'b'), (7, 'a'), (7, 'b')]
    """
    times = [sample.t_s for sample in samples]
    flagged = set()
    for at_s, feature in starts:
        index = bisect.bisect_left(times, at_s + lag_s)
        if index < len(samples):
            flagged.add((max(0, samples[index].messages - 1) // block, feature))
    blocks = math.ceil(messages / block)
    return [(index, feature) for index in range(first_block, blocks) if index % 2 == 1
            for feature in features if (index, feature) not in flagged]


# ---- reading the service -------------------------------------------------------------------

def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` with these labels in a Prometheus exposition text,
    or None when it is not there.

    >>> text = 'a_total 3.0\\nb_total{result="loaded"} 2.0\\nb_total{result="refused"} 0.0\\n'
    >>> metric_value(text, "a_total"), metric_value(text, "b_total", result="loaded")
    (3.0, 2.0)
    >>> metric_value(text, "c_total") is None
    True
    """
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{", 1)[0] != name:
            continue
        if all(label in series for label in wanted):
            return float(value)
    return None


def counted(values: Sequence[float | None]) -> list[int]:
    """Running total of a counter read at each sample, across its resets (as Prometheus'
    ``increase`` does); a missing reading counts nothing new.

    >>> counted([0, 5, None, 9, 2, 4])
    [0, 5, 5, 9, 11, 13]
    """
    total = 0
    previous = 0.0
    out = []
    for value in values:
        if value is not None:
            total += int(value - previous) if value >= previous else int(value)
            previous = value
        out.append(total)
    return out


def proc_status(pid: int) -> tuple[int, int]:
    """VmRSS in KiB and the thread count of a process (``/proc/<pid>/status``)."""
    rss_kib = threads = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kib, threads


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- analysis ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One reading of the service, every second."""

    t_s: float  # since the service started
    rss_kib: int
    threads: int
    fds: int
    cpu_s: float
    messages: int  # counted so far (across counter resets)


@dataclass(frozen=True)
class Analysis:
    """What a series of samples says about the process after warm-up."""

    warmup_messages: int
    warmup_end_s: float
    post_samples: int
    rss_warm_mb: float
    rss_max_mb: float
    rss_final_mb: float
    rss_growth_mb: float
    rss_slope_mb_per_million: float
    threads_min: int
    threads_max: int
    threads_floor: tuple[int, int]  # lowest of the first and of the last tenth
    fds_min: int
    fds_max: int
    fds_floor: tuple[int, int]

    @property
    def rss_ok(self) -> bool:
        return self.rss_growth_mb < RSS_GROWTH_MAX_MB

    @property
    def threads_flat(self) -> bool:
        return self.threads_floor[1] <= self.threads_floor[0]

    @property
    def fds_flat(self) -> bool:
        return self.fds_floor[1] <= self.fds_floor[0]


def mb(kib: float) -> float:
    """KiB (what /proc says) in MB of 10^6 bytes."""
    return kib * 1024 / 1e6


def floors(values: Sequence[int]) -> tuple[int, int]:
    """The lowest value of the first tenth and of the last tenth (at least 3 values each).

    >>> floors([5, 6, 5, 9, 5, 5, 7, 5, 5, 6])
    (5, 5)
    >>> floors([5, 5, 5, 6, 6, 7, 7, 8, 8, 8])
    (5, 8)
    """
    tenth = max(3, len(values) // 10)
    return min(values[:tenth]), min(values[-tenth:])


def analyse(samples: Sequence[Sample], total_messages: int,
            warmup_share: float = DEFAULT_WARMUP) -> Analysis:
    """Split the samples at the end of warm-up (the first sample at which the first
    ``warmup_share`` of the messages have been counted) and measure what follows."""
    warmup_messages = math.ceil(total_messages * warmup_share)
    start = next((index for index, sample in enumerate(samples)
                  if sample.messages >= warmup_messages), None)
    if start is None:
        raise ValueError(f"the warm-up ({warmup_messages} messages) never ended: "
                         f"{samples[-1].messages if samples else 0} counted")
    post = samples[start:]
    if len(post) < 2:
        raise ValueError("fewer than 2 samples after the warm-up: run longer")
    rss = [sample.rss_kib for sample in post]
    threads = [sample.threads for sample in post]
    fds = [sample.fds for sample in post]
    # The RSS of a busy process moves by a few MB from one second to the next: the level
    # at the end of warm-up is the median of the first tenth of what follows it.
    warm = float(np.median(rss[:max(3, len(rss) // 10)]))
    x = np.array([sample.messages for sample in post], dtype=np.float64) / 1e6
    y = np.array([mb(value) for value in rss])
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    return Analysis(
        warmup_messages=warmup_messages, warmup_end_s=post[0].t_s, post_samples=len(post),
        rss_warm_mb=mb(warm), rss_max_mb=mb(max(rss)), rss_final_mb=mb(rss[-1]),
        rss_growth_mb=mb(rss[-1] - warm), rss_slope_mb_per_million=slope,
        threads_min=min(threads), threads_max=max(threads), threads_floor=floors(threads),
        fds_min=min(fds), fds_max=max(fds), fds_floor=floors(fds))


# ---- RESULTS.md ----------------------------------------------------------------------------

def extract_block(text: str) -> str | None:
    """The soak block of a RESULTS.md text, markers included, or None."""
    if SOAK_START not in text or SOAK_END not in text:
        return None
    inside = text.split(SOAK_START, 1)[1].split(SOAK_END, 1)[0]
    return f"{SOAK_START}{inside}{SOAK_END}"


def replace_block(text: str, block: str) -> str:
    """``text`` with its soak block replaced by ``block``, or with a ``## Soak`` section
    holding ``block`` appended when it has none; nothing else changes."""
    if SOAK_START in text and SOAK_END in text:
        head, rest = text.split(SOAK_START, 1)
        tail = rest.split(SOAK_END, 1)[1]
        return f"{head}{block}{tail}"
    separator = "" if not text or text.endswith("\n\n") else (
        "\n" if text.endswith("\n") else "\n\n")
    return f"{text}{separator}{SECTION_TITLE}\n\n{block}\n"


def keep_block(previous: str, regenerated: str) -> str:
    """``regenerated`` with the soak block of ``previous`` carried over, if it had one."""
    block = extract_block(previous)
    return regenerated if block is None else replace_block(regenerated, block)


# ---- the run -------------------------------------------------------------------------------

@dataclass
class Events:
    """The service's log lines, read on a thread: counts by event, and its last lines."""

    counts: Counter[str] = field(default_factory=Counter)
    by_feature: Counter[tuple[str, str]] = field(default_factory=Counter)
    tail: list[str] = field(default_factory=list)
    assigned_at: float | None = None
    # (time.monotonic() when read, feature) of every drift_started
    drift_starts: list[tuple[float, str]] = field(default_factory=list)

    def read(self, stream: Any, copy: Any) -> None:
        for line in stream:
            copy.write(line)
            self.tail = [*self.tail[-30:], line.rstrip()]
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            event = fields.get("event")
            if event is None:
                continue
            self.counts[event] += 1
            if "feature" in fields:
                self.by_feature[(event, fields["feature"])] += 1
                if event == "drift_started":
                    self.drift_starts.append((time.monotonic(), fields["feature"]))
            if event == "partitions_assigned" and self.assigned_at is None:
                self.assigned_at = time.monotonic()


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    scrapes: int = 0
    scrapes_failed: int = 0
    reloads_sent: int = 0
    reloads_metric: float | None = None
    refused_metric: float | None = None
    final_counter: float | None = None
    committed: int | None = None
    produced: int = 0
    produce_s: float | None = None
    busy_s: float = 0.0  # from the assignment to the last message counted
    busy_cpu_s: float = 0.0
    exit_code: int | None = None
    wall_s: float = 0.0
    service_started: float = 0.0  # time.monotonic()


def build_baselines(n_features: int, folder: Path, mixed: bool) -> tuple[dict[str, Any],
                                                                          list[Path]]:
    """The config document and the baseline files to rotate through: ``a`` (the law of the
    stream's unshifted blocks, built from 10,000 reference rows), ``b`` (another 10,000
    rows of the same law counted in ``a``'s bins) and, when ``mixed``, ``c`` (that sample
    with bins of its own)."""
    from benchmarks.messages import (
        config_document,
        feature_set,
        generate_columns,
        make_baseline,
        reference_columns,
    )
    from streamdrift.baseline import Baseline, save_baseline, smooth
    from streamdrift.config import parse_config
    from streamdrift.features import STATUS_MISSING, STATUS_OK

    features = feature_set(n_features)
    document = config_document(features)
    config = parse_config(document, folder, environ={})
    first = generate_columns(features, 10_000, seed=0, stream=1)
    second = generate_columns(features, 10_000, seed=0, stream=3)
    a = make_baseline(features, config, first)
    same_bins = {}
    for name, column in reference_columns(features, second).items():
        old = a[name]
        usable = column.status == STATUS_OK
        counts = np.bincount(old.bin(column)[usable], minlength=old.n_bins).astype(np.int64)
        same_bins[name] = dataclasses.replace(
            old, counts=counts, probabilities=smooth(counts, a.smoothing),
            missing=int(np.count_nonzero(column.status == STATUS_MISSING)),
            invalid=int(np.count_nonzero((column.status != STATUS_OK)
                                         & (column.status != STATUS_MISSING))))
    b = Baseline(same_bins, a.created_at, "soak: a second reference sample in a's bins",
                 a.smoothing)
    files = [folder / "baseline-a.json", folder / "baseline-b.json"]
    save_baseline(a, files[0])
    save_baseline(b, files[1])
    if mixed:
        files.append(folder / "baseline-c.json")
        save_baseline(make_baseline(features, config, second), files[2])
    return document, files


def write_samples(samples: Sequence[Sample], path: Path) -> None:
    names = [item.name for item in dataclasses.fields(Sample)]
    rows = [",".join(names)] + [",".join(str(getattr(sample, name)) for name in names)
                                for sample in samples]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def install(source: Path, target: Path) -> None:
    """Replace ``target``'s content with ``source``'s, atomically."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=SCRAPE_TIMEOUT_S) as answer:
            text: str = answer.read().decode()
            return text
    except OSError:
        return None


class CommittedOffsets:
    """What the service's group has committed on the topic, asked outside the group."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                   "enable.auto.commit": False, "log_level": 3})
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def total(self) -> int | None:
        from confluent_kafka import KafkaException

        try:
            committed = self._consumer.committed(self._partitions, timeout=5.0)
        except KafkaException:
            return None
        return sum(max(0, tp.offset) for tp in committed)

    def close(self) -> None:
        self._consumer.close()


def soak(args: argparse.Namespace, folder: Path) -> tuple[Run, Events]:
    from benchmarks import e2e

    run = Run()
    events = Events()
    mixed = args.reload_bins == "mixed"
    document, baselines = build_baselines(args.features, folder, mixed)
    live = folder / "baseline.json"
    install(baselines[0], live)
    topic = f"streamdrift-soak-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-service"
    port = e2e.free_port()
    document["kafka"] = {"bootstrap_servers": args.kafka, "topic": topic, "group_id": group,
                         "client": "confluent", "auto_offset_reset": "earliest"}
    document["baseline"]["path"] = str(live)
    document["metrics"] = {"port": port, "bind_address": "127.0.0.1"}
    # Reloads come from SIGHUP only: a file watch could reload the same change again.
    document["service"] = {"baseline_watch_interval_s": 0}
    config_path = folder / "soak.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    e2e.create_topic(args.kafka, topic, PARTITIONS)
    say(f"topic {topic}, {PARTITIONS} partitions; config and baselines in {folder}")
    producer: subprocess.Popen[str] | None = None
    service: subprocess.Popen[str] | None = None
    offsets: CommittedOffsets | None = None
    log_copy = (folder / "service.log").open("w", encoding="utf-8")
    started = time.monotonic()
    try:
        producer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak", "produce", "--kafka", args.kafka,
             "--topic", topic, "--messages", str(args.messages), "--features",
             str(args.features), "--block", str(args.block), "--pool", str(args.pool),
             "--rate", str(args.rate),
             "--flood", str(math.ceil(args.messages * args.warmup))],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        producer_lines: list[str] = []

        def read_producer() -> None:
            assert producer is not None
            assert producer.stdout is not None
            for line in producer.stdout:
                producer_lines.append(line.rstrip())
                say(f"  producer: {line.rstrip()}")

        threading.Thread(target=read_producer, daemon=True).start()
        service = subprocess.Popen(
            [sys.executable, "-m", "streamdrift", "run", "--config", str(config_path)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        service_started = time.monotonic()
        run.service_started = service_started
        reader = threading.Thread(target=events.read, args=(service.stderr, log_copy),
                                  daemon=True)
        reader.start()
        offsets = CommittedOffsets(args.kafka, group, topic, PARTITIONS)
        readings: list[float | None] = []
        raw: list[tuple[float, int, int, int, float]] = []
        last_reload = time.monotonic()
        done_at: float | None = None
        done_cpu = 0.0
        next_tick = time.monotonic()
        last_report = 0.0
        while True:
            next_tick += 1.0
            time.sleep(max(0.0, next_tick - time.monotonic()))
            now = time.monotonic()
            if service.poll() is not None:
                raise RuntimeError(f"the service exited with code {service.returncode}")
            if now - started > args.timeout_s:
                raise TimeoutError(f"not done within {args.timeout_s} s")
            # Read /proc before the scrape: the thread serving the previous one is gone.
            rss_kib, threads = proc_status(service.pid)
            fds = open_fds(service.pid)
            cpu_s = e2e.process_cpu_s(service.pid)
            # Scraped from the moment the service says it serves /metrics.
            text = scrape(port) if events.counts["started"] else None
            run.scrapes += 1 if events.counts["started"] else 0
            value = None
            if text is None:
                run.scrapes_failed += 1 if events.counts["started"] else 0
            else:
                value = metric_value(text, "streamdrift_messages_total")
                run.reloads_metric = metric_value(text, "streamdrift_baseline_reloads_total",
                                                  result="loaded")
                run.refused_metric = metric_value(text, "streamdrift_baseline_reloads_total",
                                                  result="refused")
                run.final_counter = value
            readings.append(value)
            raw.append((now - service_started, rss_kib, threads, fds, cpu_s))
            total = counted(readings)[-1]
            if done_at is None:
                if mixed:
                    finished = (producer.poll() is not None
                                and (offsets.total() or 0) >= args.messages)
                else:
                    finished = total >= args.messages
                if finished:
                    done_at, done_cpu = now, cpu_s
                    say(f"  all {args.messages} messages counted at {now - started:.0f} s")
                elif (events.assigned_at is not None
                      and now - last_reload >= args.reload_every_s):
                    run.reloads_sent += 1
                    install(baselines[run.reloads_sent % len(baselines)], live)
                    service.send_signal(signal.SIGHUP)
                    last_reload = now
            if now - last_report >= 30.0:
                last_report = now
                say(f"  {now - started:5.0f} s: counted {total:,}, RSS {mb(rss_kib):.1f} MB, "
                    f"threads {threads}, fds {fds}, reloads {run.reloads_sent}, "
                    f"drift_started {events.counts['drift_started']}, "
                    f"drift_ended {events.counts['drift_ended']}")
            reloads_seen = events.counts["baseline_loaded"] - 1
            if (done_at is not None and now - done_at >= SETTLE_S
                    and reloads_seen >= run.reloads_sent) or (
                    done_at is not None and now - done_at >= 60.0):
                break
        if producer.wait(60) != 0:
            raise RuntimeError(f"the producer exited with code {producer.returncode}")
        for line in producer_lines:
            if line.startswith("done"):
                run.produced, run.produce_s = int(line.split()[1]), float(line.split()[2])
        run.committed = offsets.total()
        assert done_at is not None
        totals = counted(readings)
        run.samples = [Sample(t, rss, threads, fds, cpu, messages)
                       for (t, rss, threads, fds, cpu), messages in zip(raw, totals, strict=True)]
        # Busy: from the last sample before the first message counted to the last one.
        first = max(0, next(index for index, sample in enumerate(run.samples)
                            if sample.messages > 0) - 1)
        run.busy_s = done_at - service_started - run.samples[first].t_s
        run.busy_cpu_s = done_cpu - run.samples[first].cpu_s
        if args.samples is not None:
            write_samples(run.samples, args.samples)
        service.send_signal(signal.SIGTERM)
        try:
            run.exit_code = service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            run.exit_code = service.wait()
        reader.join(5)
    finally:
        log_copy.close()
        for process in (service, producer):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if offsets is not None:
            offsets.close()
        e2e.delete_topic(args.kafka, topic)
        run.wall_s = time.monotonic() - started
    return run, events


# ---- the producer (a process of its own) ---------------------------------------------------

def produce(args: argparse.Namespace) -> int:
    """Write ``--messages`` messages to the topic, blocks of ``--block`` alternating between a
    pool from the baseline's law and a pool from the shifted law: the first ``--flood`` as
    fast as possible, the others at ``--rate`` a second."""
    from confluent_kafka import Producer

    from benchmarks.messages import feature_set, stream_payloads

    features = feature_set(args.features)
    pools = (stream_payloads(features, args.pool, seed=0, drift_from=None, stream=2),
             stream_payloads(features, args.pool, seed=0, drift_from=0, stream=4))
    size = sum(len(p) for pool in pools for p in pool) / (2 * args.pool)
    print(f"ready: pools of {args.pool:,} messages per law, {size:,.0f} bytes on average",
          flush=True)
    failures: list[str] = []

    def failed(error: Any, message: Any) -> None:
        failures.append(str(error))

    producer = Producer({"bootstrap.servers": args.kafka, "compression.type": "lz4",
                         "linger.ms": 50, "batch.size": 1_000_000, "acks": "all",
                         "queue.buffering.max.messages": 500_000,
                         "delivery.report.only.error": True, "on_delivery": failed})
    started = time.monotonic()
    paced: tuple[float, int] | None = None  # when and at which message pacing began
    sent = 0
    next_note = 1_000_000
    while sent < args.messages:
        pool = pools[shifted(sent, args.block)]
        end = min(args.messages, (sent // args.block + 1) * args.block)
        for index in range(sent, end):
            payload = pool[index % args.pool]
            while True:
                try:
                    producer.produce(args.topic, payload)
                    break
                except BufferError:
                    producer.poll(0.05)
            if index % 1000 == 0:
                producer.poll(0)
                if args.rate > 0 and index >= args.flood:
                    if paced is None:
                        paced = (time.monotonic(), index)
                    ahead_s = (index - paced[1]) / args.rate - (time.monotonic() - paced[0])
                    if ahead_s > 0:
                        time.sleep(ahead_s)
        sent = end
        if sent >= next_note:
            print(f"produced {sent} {time.monotonic() - started:.1f}", flush=True)
            next_note += 1_000_000
    unsent = producer.flush(300)
    if unsent or failures:
        print(f"failed: {unsent} unsent, {len(failures)} refused: {failures[:3]}", flush=True)
        return 1
    print(f"done {sent} {time.monotonic() - started:.1f}", flush=True)
    return 0


# ---- report --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    name: str
    value: str
    target: str
    ok: bool | None  # None: a figure, no target


def checks(args: argparse.Namespace, run: Run, events: Events, found: Analysis) -> list[Check]:
    expected_starts, expected_ends = expected_drift_events(args.messages, args.block)
    drifting = sorted({feature for (event, feature) in events.by_feature
                       if event == "drift_started"})
    starts, ends = events.counts["drift_started"], events.counts["drift_ended"]
    mixed = args.reload_bins == "mixed"
    # With features that drift, each shifted block starts drift in each of them.
    from benchmarks.messages import DRIFTING, feature_set

    drifting_features = [f.name for f in feature_set(args.features) if f.law.name in DRIFTING]
    n_drifting = len(drifting_features)
    # The warm-up's blocks come as fast as possible and the service reads them from behind:
    # its partitions are then read at different points of the stream (the client fetches
    # each in large batches), each partition's window covers its own stretch, and shifted
    # blocks can run together into one episode. Once it has caught up with the producer,
    # blocks are read as they come: each shifted one must set drift off.
    flood = math.ceil(args.messages * args.warmup)
    caught_up = caught_up_at(run.samples, flood, args.rate)
    first_block = (math.ceil(caught_up / args.block) if caught_up is not None
                   else math.ceil(args.messages / args.block))
    starts_s = [(at - run.service_started, feature) for at, feature in events.drift_starts]
    missed = shifted_blocks_flagged(starts_s, run.samples, args.block, args.messages,
                                    first_block, drifting_features)
    after_warmup = n_drifting * sum(1 for index in range(
        first_block, math.ceil(args.messages / args.block)) if index % 2 == 1)
    loaded = events.counts["baseline_loaded"] - 1
    counted_total = run.samples[-1].messages if run.samples else 0
    if mixed:
        counted_check = Check(
            "messages counted (group's committed offsets)",
            f"{run.committed or 0:,} of {args.messages:,}", "all",
            run.committed == args.messages)
    else:
        counted_check = Check(
            "messages counted (streamdrift_messages_total)",
            f"{counted_total:,} of {args.messages:,} (committed {run.committed or 0:,})",
            "all, once",
            counted_total == args.messages and run.final_counter == args.messages)
    cpu_us = run.busy_cpu_s / args.messages * 1e6
    return [
        counted_check,
        Check("throughput, from the first message counted to the last",
              f"{args.messages / run.busy_s:,.0f} msg/s over {run.busy_s:.0f} s; "
              f"{cpu_us:.1f} µs CPU/msg", "", None),
        Check("messages produced", f"{run.produced:,} in {run.produce_s or 0:.0f} s "
              "(in the background)", "", None),
        Check("warm-up (first share of the messages)",
              f"{found.warmup_messages:,} messages, until {found.warmup_end_s:.0f} s; "
              f"{found.post_samples} samples after", "", None),
        Check("RSS at end of warm-up (median of the next tenth) / max / final",
              f"{found.rss_warm_mb:.1f} / {found.rss_max_mb:.1f} / {found.rss_final_mb:.1f} MB",
              "", None),
        Check("RSS growth after warm-up (final - end of warm-up)",
              f"{found.rss_growth_mb:+.1f} MB ({found.rss_slope_mb_per_million:+.2f} MB per "
              "10^6 messages, least squares)", f"< {RSS_GROWTH_MAX_MB:g} MB", found.rss_ok),
        Check("threads after warm-up min / max (lowest, first -> last tenth)",
              f"{found.threads_min} / {found.threads_max} ({found.threads_floor[0]} -> "
              f"{found.threads_floor[1]})", "flat", found.threads_flat),
        Check("open fds after warm-up min / max (lowest, first -> last tenth)",
              f"{found.fds_min} / {found.fds_max} ({found.fds_floor[0]} -> "
              f"{found.fds_floor[1]})", "flat", found.fds_flat),
        Check("SIGHUP reloads sent / applied (baseline_loaded, reloads_total) / refused",
              f"{run.reloads_sent} / {loaded}, {run.reloads_metric or 0:.0f} / "
              f"{run.refused_metric or 0:.0f}", "all applied",
              run.reloads_sent > 0 and loaded == run.reloads_sent
              and run.reloads_metric == run.reloads_sent and not run.refused_metric),
        Check("drift_started / drift_ended (features)",
              f"{starts} / {ends} ({', '.join(drifting) or 'none'}); for "
              f"{expected_starts} shifted blocks, {expected_ends} followed by one that is not",
              "", None),
        Check("shifted blocks read once the service had caught up with the producer "
              f"(at {caught_up or 0:,} messages; blocks {first_block} on) that started drift "
              "in each drifting feature",
              (f"{after_warmup - len(missed)} of {after_warmup}"
               + (f"; missed: {', '.join(f'{f} in block {b}' for b, f in missed)}"
                  if missed else "")) if caught_up is not None else
              "it never caught up", "all",
              None if args.rate <= 0 else caught_up is not None and not missed),
        Check("/metrics scrapes done / failed", f"{run.scrapes} / {run.scrapes_failed}",
              "none failed", run.scrapes > 0 and run.scrapes_failed == 0),
        Check("exit code on SIGTERM", str(run.exit_code), "0", run.exit_code == 0),
    ]


def table(found: Sequence[Check]) -> list[str]:
    lines = ["| figure | value | target | |", "|---|---|---|---|"]
    for check in found:
        verdict = "" if check.ok is None else ("ok" if check.ok else "**MISSED**")
        lines.append(f"| {check.name} | {check.value} | {check.target} | {verdict} |")
    return lines


def reading(args: argparse.Namespace, run: Run, found: Analysis,
            results: Sequence[Check]) -> str:
    missed = [check.name for check in results if check.ok is False]
    after = args.messages - found.warmup_messages
    lines = [
        f"The warm-up, its messages produced as fast as possible, took the service's RSS to "
        f"{found.rss_warm_mb:.1f} MB (the Kafka client's prefetch queue full, the service "
        "behind). "
        f"After the warm-up the service counted {after:,} more messages in "
        f"{run.samples[-1].t_s - found.warmup_end_s:.0f} s; its RSS went from "
        f"{found.rss_warm_mb:.1f} to {found.rss_final_mb:.1f} MB "
        f"({found.rss_growth_mb:+.1f} MB, peak {found.rss_max_mb:.1f} MB), threads stayed "
        f"between {found.threads_min} and {found.threads_max} and file descriptors between "
        f"{found.fds_min} and {found.fds_max}, across {run.reloads_sent} baseline reloads "
        f"and {run.scrapes} scrapes.",
    ]
    if missed:
        lines.append("Missed: " + "; ".join(missed) + ".")
    else:
        lines.append("Every check passes: no sign of a leak of memory, threads or file "
                     "descriptors over the run.")
    return " ".join(lines)


def block(command: str, args: argparse.Namespace, info: dict[str, str], run: Run,
          found: Analysis, results: Sequence[Check]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    reloads = ("two baselines with the same bins (the windows are kept)"
               if args.reload_bins == "same" else
               "three baselines, one with other bins (window read again from Kafka)")
    lines = [
        SOAK_START,
        f"Generated by `{command}` on {now}, in {run.wall_s / 60:.1f} minutes "
        "(`benchmarks/soak.py` writes this block; `benchmarks/run.py` keeps it).",
        "",
        f"{args.messages:,} messages of {args.features} features through `streamdrift run` "
        f"(`kafka.client: confluent`, window 10,000 messages in 10 panes), produced in the "
        f"background to {PARTITIONS} partitions, the warm-up's as fast as possible (the "
        "service starts behind), the rest "
        + (f"at {args.rate:,.0f} messages a second" if args.rate > 0 else "too")
        + f"; blocks of {args.block:,} messages alternate "
        f"between the baseline's law and a shifted one; a SIGHUP reload every "
        f"{args.reload_every_s:g} s, alternating {reloads}; /metrics scraped and VmRSS, "
        "threads and open file descriptors read from /proc every second. Warm-up: the first "
        f"{args.warmup:.0%} of the messages.",
        "",
        "Machine: " + "; ".join(f"{key} {info[key]}" for key in
                                 ("cpu", "memory", "os", "python", "confluent-kafka",
                                  "streamdrift", "broker") if key in info) + ".",
        "",
        *table(results),
        "",
        reading(args, run, found, results),
        SOAK_END,
    ]
    return "\n".join(lines)


def say(text: str = "") -> None:
    print(text, flush=True)


# ---- main ----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/soak.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", metavar="BOOTSTRAP", default="127.0.0.1:9092",
                        help="the broker (default 127.0.0.1:9092)")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES,
                        help="messages to put through the service (default 10^7)")
    parser.add_argument("--features", type=int, default=34,
                        help="features of benchmarks/messages.py (default 34)")
    parser.add_argument("--block", type=int, default=250_000,
                        help="messages per block of one law (default 250,000)")
    parser.add_argument("--pool", type=int, default=100_000,
                        help="distinct payloads per law, encoded once (default 100,000)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help="messages per second to produce (default 20,000, which the "
                             "service keeps up with on 2 cores; 0: as fast as it can)")
    parser.add_argument("--reload-every-s", type=float, default=5.0,
                        help="seconds between SIGHUP reloads (default 5)")
    parser.add_argument("--reload-bins", choices=("same", "mixed"), default="same",
                        help="same: two baselines with the same bins (default); mixed: and a "
                             "third with other bins")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP,
                        help="share of the messages that is warm-up (default 0.1)")
    parser.add_argument("--timeout-s", type=float, default=7200.0,
                        help="give up after this long (default 2 hours)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="also write the samples to this CSV file")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write the block into benchmarks/RESULTS.md (default: only at "
                             "the default message count)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["produce"]:
        producer = argparse.ArgumentParser(prog="python -m benchmarks.soak produce")
        for name in ("--kafka", "--topic"):
            producer.add_argument(name, required=True)
        for name in ("--messages", "--features", "--block", "--pool", "--flood"):
            producer.add_argument(name, type=int, required=True)
        producer.add_argument("--rate", type=float, default=0.0)
        return produce(producer.parse_args(arguments[1:]))
    args = parse_args(arguments)
    # By name: the type checks cover this script, not run.py's plotting dependencies.
    machine = importlib.import_module("benchmarks.run").machine
    command = "python benchmarks/soak.py " + shlex.join(arguments)
    info = machine(args.kafka)
    say("streamdrift soak")
    for key, value in info.items():
        say(f"  {key}: {value}")
    folder = Path(tempfile.mkdtemp(prefix="streamdrift-soak-"))
    try:
        run, events = soak(args, folder)
    except Exception:
        say(f"failed; the service's log and the files are in {folder}")
        raise
    try:
        found = analyse(run.samples, args.messages, args.warmup)
    except ValueError as error:
        say(f"cannot judge the run: {error}; files in {folder}")
        return 1
    results = checks(args, run, events, found)
    say("")
    for line in table(results):
        say(line)
    say("")
    say(reading(args, run, found, results))
    write = args.write if args.write is not None else args.messages == DEFAULT_MESSAGES
    if write:
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        RESULTS.write_text(replace_block(text, block(command, args, info, run, found,
                                                     results)), encoding="utf-8")
        say(f"wrote the soak block of {RESULTS.relative_to(REPO)}")
    ok = all(check.ok is not False for check in results)
    if ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        say(f"the service's log and the files are in {folder}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
