#!/usr/bin/env python3
"""streamdrift's benchmarks, in one command.

    python benchmarks/run.py [--quick] [--features 34,200,1000] [--messages N]
                             [--repeats R] [--kafka BOOTSTRAP] [--registry URL] [--no-avro]
                             [--no-detection]
    python benchmarks/run.py --sequential-cost [--features ...] [--messages N] [--repeats R]

For every feature count: generate realistic messages (benchmarks/messages.py), and the
same messages as framed Avro records; check that the naive implementation, the batch
recomputation and streamdrift agree on the final KL of every feature (and streamdrift on
Avro with streamdrift on JSON, the floors on the bin counts), then time every in-process
contender on the same payload bytes, interleaved (A B C ... A B C ...), CPU time per
message, median of the repeats. With ``--kafka``, produce a topic per feature count, and an
Avro topic of the same messages (its schema registered in ``--registry``, or in a registry
started for the run with deploy/local/registry), and time each end-to-end contender
consuming all of it (benchmarks/e2e.py). Then the memory cases (benchmarks/memory.py),
each in a fresh process, and the detection simulation (benchmarks/detection.py: false
alarms without change, delays after one). Prints the tables and the targets; a full run (not
``--quick``) writes benchmarks/RESULTS.md and benchmarks/throughput.png.

The in-process contenders include streamdrift's pipeline with the sequential test
(``detector.method: mixture_cusum``) beside the default one: its cost. ``--sequential-cost``
times only those two and the floor, and writes only their section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import gc
import importlib
import io
import json
import os
import platform
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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

from benchmarks import detection, e2e, soak, startup  # noqa: E402
from benchmarks.contenders import (  # noqa: E402
    Agreement,
    Contender,
    Floor,
    StreamdriftAvroPipeline,
    StreamdriftPipeline,
    check_agreement,
    fastest_decoder,
    fastest_floor,
    in_process_contenders,
    inputs_of,
)
from benchmarks.messages import (  # noqa: E402
    AVRO_SCHEMA_ID,
    Workload,
    make_workload,
    stream_payloads,
    to_avro,
)
from streamdrift.baseline import save_baseline  # noqa: E402

HERE = Path(__file__).resolve().parent
KL_TOLERANCE = 1e-6
SAME_RSS_TOLERANCE_MIB = 2.0
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"
SEQUENTIAL_START = "<!-- sequential-cost:start -->"
SEQUENTIAL_END = "<!-- sequential-cost:end -->"
SEQUENTIAL_TITLE = "## The sequential test's cost in the pipeline"
# The contenders of --sequential-cost.
SEQUENTIAL_COST_CONTENDERS = ("floor", "streamdrift", "streamdrift_sequential")

# Targets of the issue.
PIPELINE_OVER_FLOOR_MAX = 1.5
# The Avro path: streamdrift on Avro records against the floor with the same decoder
# (fastavro), in process and end to end.
AVRO_PIPELINE_OVER_FLOOR_MAX = 1.3
NAIVE_OVER_PIPELINE_MIN = 8.0
E2E_OVER_RAW_MAX = 1.3
E2E_CONFLUENT_OVER_FLOOR_MAX = 1.3
WIDE_RSS_MAX_MIB = 50.0
# "A CLI that answers at once": wall seconds from exec to exit, on this machine.
STARTUP_MAX_S = 0.5

IN_PROCESS_LABELS = {
    "floor": "floor (decode + binning)",
    "streamdrift": "streamdrift pipeline",
    "streamdrift_sequential": "streamdrift pipeline, detector.method: mixture_cusum",
    "floor_avro": "Avro floor (fastavro decode + binning)",
    "streamdrift_avro": "streamdrift pipeline, Avro",
    "naive": "naive per-event",
    "river_adwin": "river ADWIN per value",
    "batch_recompute": "batch recomputation",
}
E2E_LABELS = {
    "raw-kafka-python": "raw kafka-python poll",
    "floor-kafka-python": "kafka-python + decode + binning",
    "streamdrift-kafka-python": "streamdrift run (kafka-python)",
    "raw-confluent": "raw confluent poll",
    "floor-confluent": "confluent + decode + binning (e2e floor)",
    "streamdrift-confluent": "streamdrift run (kafka.client: confluent)",
}
# Each in-process contender's floor: the floor that decodes the same format.
FLOOR_OF = {"streamdrift_avro": "floor_avro", "floor_avro": "floor_avro"}


@dataclass
class Plan:
    features: list[int]
    messages: dict[int, int]
    repeats: int
    kafka: str | None
    e2e_features: list[int]
    e2e_messages: dict[int, int]
    e2e_repeats: int
    write: bool
    profile: bool
    avro: bool = True
    registry: str | None = None  # None: one is started for the Avro topics (with --kafka)


@dataclass
class InProcess:
    n_features: int
    messages: int
    payload_bytes: float
    floor_decoder: str
    floor_variants: dict[str, float]
    decoder: str
    decoder_speeds: dict[str, float]
    agreement: Agreement
    descriptions: dict[str, str]
    samples: dict[str, list[float]] = field(default_factory=dict)  # µs per message
    avro_payload_bytes: float | None = None

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def floor_median(self, name: str) -> float:
        """The median of the floor that reads ``name``'s format."""
        return self.median(FLOOR_OF.get(name, "floor"))


@dataclass
class EndToEnd:
    n_features: int
    messages: int
    produced_with: str
    format: str = "json"  # of the topic: json or avro
    samples: dict[str, list[float]] = field(default_factory=dict)  # CPU µs per message
    wall: dict[str, list[float]] = field(default_factory=dict)  # messages per second
    unavailable: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float | None:
        values = self.samples.get(name)
        return statistics.median(values) if values else None


def say(text: str = "") -> None:
    print(text, flush=True)


# ---- plan ----------------------------------------------------------------------------------

def _scaled(n_features: int, budget: int, low: int, high: int) -> int:
    return max(low, min(high, budget // n_features // 1000 * 1000))


def make_plan(args: argparse.Namespace) -> Plan:
    features = [int(part) for part in args.features.split(",") if part.strip()]
    if args.quick:
        messages = {n: _scaled(n, 1_000_000, 2_000, 12_000) for n in features}
        e2e_features = [n for n in features if n == min(features)]
        e2e_messages = dict.fromkeys(e2e_features, 30_000)
        repeats, e2e_repeats = 3, 1
    else:
        messages = {n: _scaled(n, 4_000_000, 10_000, 50_000) for n in features}
        e2e_features = features
        e2e_messages = {n: _scaled(n, 8_000_000, 10_000, 200_000) for n in features}
        repeats, e2e_repeats = 5, 3
    if args.messages is not None:
        messages = dict.fromkeys(features, args.messages)
    if args.e2e_messages is not None:
        e2e_messages = dict.fromkeys(e2e_features, args.e2e_messages)
    return Plan(features, messages, args.repeats or repeats, args.kafka, e2e_features,
                e2e_messages, args.e2e_repeats or e2e_repeats,
                write=args.write if args.write is not None else not args.quick,
                profile=not args.no_profile, avro=not args.no_avro, registry=args.registry)


# ---- machine -------------------------------------------------------------------------------

def _version(module: str) -> str:
    try:
        imported = importlib.import_module(module)
    except ImportError:
        return "not installed"
    if module == "confluent_kafka":
        version = imported.version()
        version = version[0] if isinstance(version, tuple) else version
        return f"{version} (librdkafka {imported.libversion()[0]})"
    return str(getattr(imported, "__version__", "?"))


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.rstrip("\n")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine(bootstrap: str | None, registry: str | None = None) -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    virtualization = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Hypervisor vendor:"):
                virtualization = f", virtual machine ({line.split(':', 1)[1].strip()})"
    except (OSError, subprocess.CalledProcessError):
        pass
    ours = ("benchmarks/", "tests/test_benchmark_contenders.py", "tests/test_detection.py",
            "README.md")
    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines()
             if len(line) > 3 and not line[3:].startswith(ours)]
    return {
        "cpu": f"{model}, {os.cpu_count()} cores{virtualization}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": _version("numpy"),
        "msgspec": _version("msgspec"),
        "orjson": _version("orjson"),
        "fastavro": _version("fastavro"),
        "river": _version("river"),
        "kafka-python": _version("kafka"),
        "confluent-kafka": _version("confluent_kafka"),
        "streamdrift": f"{_git('rev-parse', '--short', 'HEAD')}"
                       + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else ""),
        "broker": (f"{bootstrap} (single node on this machine, sharing its cores)"
                   if bootstrap else "none (end to end not run)"),
        "schema registry": registry or "none (no end-to-end Avro topic)",
        "environment": ", ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                                 if k.startswith(("OPENBLAS_", "OMP_", "MKL_")))
                       or "no OPENBLAS_/OMP_/MKL_ variables",
    }


# ---- in-process ----------------------------------------------------------------------------

def _totals_agreement(agreement: Agreement) -> str:
    text = f"floor bin totals max |Δ| {agreement.max_total_difference}"
    if agreement.max_avro_total_difference is not None:
        text += (", Avro floor's against streamdrift on Avro max |Δ| "
                 f"{agreement.max_avro_total_difference}")
    return text


def run_in_process(workload: Workload, repeats: int, avro: bool = True,
                   only: Sequence[str] | None = None) -> InProcess:
    """Time the in-process contenders (``only`` those named, when given)."""
    payloads = workload.payloads
    inputs = inputs_of(workload)
    floor_decoder, floor_variants = fastest_floor(workload.config, workload.baseline,
                                                  payloads)
    decoder, decoder_speeds = fastest_decoder(payloads)
    contenders = in_process_contenders(workload, floor_decoder, decoder, avro=avro)
    if only is not None:
        contenders = [contender for contender in contenders if contender.name in only]
    say(f"  floor decoder: {floor_decoder} ("
        + ", ".join(f"{k} {v:.2f}" for k, v in floor_variants.items())
        + " µs/msg decode+bin); dict decoder for river/batch: " + decoder)
    started = time.monotonic()
    agreement = check_agreement(contenders, inputs)
    verdict = "OK" if agreement.ok(KL_TOLERANCE) else "MISMATCH"
    say(f"  agreement on the final window KL of {agreement.features} features: {verdict} "
        + ", ".join(f"{k} max |ΔKL| {v:.1e}" for k, v in agreement.max_kl_difference.items())
        + f"; {_totals_agreement(agreement)}  ({time.monotonic() - started:.0f} s)")
    result = InProcess(workload.n_features, len(payloads),
                       float(np.mean([len(p) for p in payloads])), floor_decoder,
                       floor_variants, decoder, decoder_speeds, agreement,
                       {c.name: c.description for c in contenders},
                       {c.name: [] for c in contenders})
    if avro:
        result.avro_payload_bytes = float(np.mean([len(p) for p in workload.avro_payloads]))
    for repeat in range(repeats):
        line = []
        for contender in contenders:
            spent = _time(contender, inputs[contender.format])
            result.samples[contender.name].append(spent / len(payloads) * 1e6)
            line.append(f"{contender.name} {result.samples[contender.name][-1]:.1f}")
        say(f"  repeat {repeat + 1}/{repeats}: " + ", ".join(line) + " µs/msg")
    return result


def _time(contender: Contender, payloads: Sequence[bytes]) -> float:
    contender.reset()
    gc.collect()
    started = time.process_time()
    contender.run(payloads)
    return time.process_time() - started


def profile_pipeline(workload: Workload, floor_decoder: str, top: int = 14,
                     avro: bool = True) -> str:
    """cProfile of streamdrift's pipeline and of the floor on the same payloads (and with
    ``avro``, of both on the Avro records)."""
    config, baseline = workload.config, workload.baseline
    contenders: list[Contender] = [StreamdriftPipeline(config, baseline),
                                   Floor(config, baseline, floor_decoder)]
    if avro:
        contenders += [StreamdriftAvroPipeline(config, baseline, workload.avro_parsed,
                                               AVRO_SCHEMA_ID),
                       Floor(config, baseline, "fastavro", writer_schema=workload.avro_parsed)]
    inputs = inputs_of(workload)
    out = io.StringIO()
    for contender in contenders:
        payloads = inputs[contender.format]
        contender.reset()
        profiler = cProfile.Profile()
        profiler.enable()
        contender.run(payloads)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
        out.write(f"{contender.name}, {workload.n_features} features, "
                  f"{len(payloads)} messages: {total:.2f} s under cProfile "
                  f"({total / len(payloads) * 1e6:.1f} µs/msg with its overhead)\n")
        out.write(f"{'tottime s':>10} {'share':>6} {'calls':>8}  function\n")
        rows = sorted(stats.stats.items(),  # type: ignore[attr-defined]
                      key=lambda item: -item[1][2])[:top]
        for (filename, line, function), (_, calls, tottime, _cum, _) in rows:
            where = filename.replace(str(REPO) + "/", "")
            if "site-packages/" in where:
                where = where.split("site-packages/", 1)[1]
            name = f"{where}:{line}({function})" if line else function
            out.write(f"{tottime:>10.3f} {tottime / total:>6.1%} {calls:>8}  {name}\n")
        out.write("\n")
    return out.getvalue()


# ---- end to end ----------------------------------------------------------------------------

def run_end_to_end(workload: Workload, bootstrap: str, messages: int, repeats: int,
                   floor_decoder: str, folder: Path, registry: str | None = None
                   ) -> EndToEnd:
    """The end-to-end contenders on a topic of ``messages`` messages: JSON, or with a
    ``registry`` (the URL of its Confluent-compatible API) Avro records of the same
    messages, their schema registered there, read by the Avro floor and by
    ``streamdrift run`` with ``input.format: avro``."""
    features = workload.features
    fmt = "json" if registry is None else "avro"
    started = time.monotonic()
    payloads = stream_payloads(features, messages, seed=1, drift_from=messages // 2,
                               stream=2)
    suffix = "" if fmt == "json" else "-avro"
    topic = f"streamdrift-bench-{workload.n_features}f{suffix}-{uuid.uuid4().hex[:8]}"
    writer_schema_path = None
    if registry is not None:
        schema_id = e2e.register_schema(registry, f"{topic}-value", workload.avro_schema)
        payloads = to_avro(payloads, schema_id, workload.avro_parsed)
        writer_schema_path = folder / f"writer-schema-{workload.n_features}.json"
        writer_schema_path.write_text(json.dumps(workload.avro_schema), encoding="utf-8")
        floor_decoder = "fastavro"
    e2e.create_topic(bootstrap, topic, 3)
    produced_with = e2e.produce(bootstrap, topic, payloads)
    del payloads
    say(f"  produced {messages} {'Avro records' if registry else 'messages'} to {topic} "
        f"with {produced_with} ({time.monotonic() - started:.0f} s)")
    baseline_path = folder / f"baseline-{workload.n_features}.json"
    save_baseline(workload.baseline, baseline_path)
    floor_config = folder / f"floor-{workload.n_features}.yaml"
    floor_config.write_text(yaml.safe_dump(workload.document), encoding="utf-8")

    def service_config(client: str | None) -> tuple[Path, dict[str, Any]]:
        document = copy.deepcopy(workload.document)
        document["kafka"] = {"bootstrap_servers": bootstrap, "topic": topic,
                             "group_id": f"{topic}-{uuid.uuid4().hex[:8]}",
                             "auto_offset_reset": "earliest"}
        if client is not None:
            document["kafka"]["client"] = client
        if registry is not None:
            document["input"] = {"format": "avro", "schema_registry": {"url": registry}}
        document["baseline"]["path"] = str(baseline_path)
        document["metrics"] = {"port": e2e.free_port(), "bind_address": "127.0.0.1"}
        path = folder / f"run-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path, document

    result = EndToEnd(workload.n_features, messages, produced_with, fmt)
    names = ["raw-kafka-python", "floor-kafka-python", "streamdrift-kafka-python",
             "raw-confluent", "floor-confluent", "streamdrift-confluent"]
    if not e2e.confluent_client_available():
        for name in names[3:]:
            result.unavailable[name] = "not available (confluent-kafka not installed)"
    else:
        _, probe = service_config("confluent")
        status = e2e.streamdrift_confluent_status(probe)
        if status is not None:
            result.unavailable["streamdrift-confluent"] = status
    for name, why in result.unavailable.items():
        say(f"  {name}: {why}")
    active = [name for name in names if name not in result.unavailable]
    for repeat in range(repeats):
        line = []
        for name in active:
            group = f"{topic}-{name}-{repeat}"
            try:
                if name.startswith("streamdrift-"):
                    client = "confluent" if name.endswith("confluent") else None
                    path, document = service_config(client)
                    measured = e2e.run_service(name, path, document["metrics"]["port"],
                                               bootstrap, topic, document["kafka"]["group_id"],
                                               messages)
                else:
                    mode, client_name = name.split("-", 1)
                    measured = e2e.run_consumer(name, client_name, mode, bootstrap, topic,
                                                group, messages, floor_config, baseline_path,
                                                floor_decoder, writer_schema_path)
            except RuntimeError as error:
                say(f"  {name}: FAILED: {error}")
                result.unavailable[name] = f"failed: {str(error)[:300]}"
                continue
            result.samples.setdefault(name, []).append(measured.cpu_per_message_us)
            result.wall.setdefault(name, []).append(measured.messages / max(measured.wall_s,
                                                                            1e-9))
            line.append(f"{name} {measured.cpu_per_message_us:.1f}")
        active = [name for name in active if not result.unavailable.get(name, "").startswith(
            "failed")]
        say(f"  repeat {repeat + 1}/{repeats}: " + ", ".join(line) + " CPU µs/msg")
    e2e.delete_topic(bootstrap, topic)
    return result


# ---- memory --------------------------------------------------------------------------------

def run_memory(window_messages: int) -> dict[str, Any]:
    def case(*args: str) -> dict[str, Any]:
        answer = subprocess.run([sys.executable, "-m", "benchmarks.memory", *args], cwd=REPO,
                                capture_output=True, text=True, check=False)
        if answer.returncode != 0:
            raise RuntimeError(f"benchmarks.memory {' '.join(args)} failed: "
                               f"{answer.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
        return result

    wide = case("wide")
    say(f"  1,000 features x 20 bins x 60 panes: RSS +{wide['growth_mib']:.1f} MiB "
        f"(+{wide['growth_constructed_mib']:.1f} MiB constructed, ring of panes "
        f"{wide['ring_mib']:.1f} MiB)")
    small = case("window", "--size", "10000", "--messages", str(window_messages))
    large = case("window", "--size", "10000000", "--messages", str(window_messages))
    say(f"  window 10^4 vs 10^7 messages, {window_messages} fed: RSS "
        f"+{small['growth_mib']:.1f} MiB vs +{large['growth_mib']:.1f} MiB")
    return {"wide": wide, "window_small": small, "window_large": large}


# ---- targets, tables -----------------------------------------------------------------------

@dataclass
class Target:
    name: str
    scope: str
    measured: str
    limit: str
    passed: bool | None  # None: not measured


def targets(in_process: list[InProcess], end_to_end: list[EndToEnd],
            memory: dict[str, Any] | None,
            startup_samples: dict[str, list[float]] | None = None) -> list[Target]:
    found = []
    if startup_samples is not None:
        bare = statistics.median(startup_samples[startup.BARE])
        for label in startup.STREAMDRIFT_COMMANDS:
            median = statistics.median(startup_samples[label])
            found.append(Target("command start-up, wall", f"`{label}`",
                                f"{median * 1000:.0f} ms ({median / bare:.1f}x "
                                "`python -c pass`)", f"<= {STARTUP_MAX_S * 1000:.0f} ms",
                                median <= STARTUP_MAX_S))
    for result in in_process:
        scope = f"{result.n_features} features"
        ratio = result.median("streamdrift") / result.median("floor")
        found.append(Target("pipeline time per message / floor's", scope, f"{ratio:.2f}x",
                            f"<= {PIPELINE_OVER_FLOOR_MAX}x",
                            ratio <= PIPELINE_OVER_FLOOR_MAX))
        if "streamdrift_avro" in result.samples:
            ratio = result.median("streamdrift_avro") / result.median("floor_avro")
            found.append(Target("Avro pipeline time per message / Avro floor's", scope,
                                f"{ratio:.2f}x", f"<= {AVRO_PIPELINE_OVER_FLOOR_MAX}x",
                                ratio <= AVRO_PIPELINE_OVER_FLOOR_MAX))
        speedup = result.median("naive") / result.median("streamdrift")
        # What the floor itself reaches: no pipeline can beat it by much.
        floor_speedup = result.median("naive") / result.median("floor")
        found.append(Target("pipeline speed-up over the naive per-event implementation", scope,
                            f"{speedup:.2f}x (the floor's: {floor_speedup:.2f}x)",
                            f">= {NAIVE_OVER_PIPELINE_MIN}x",
                            speedup >= NAIVE_OVER_PIPELINE_MIN))
    for run in end_to_end:
        scope = f"{run.n_features} features, {run.messages} messages"
        if run.format == "avro":
            found += _avro_e2e_targets(run, scope)
            continue
        service, raw = run.median("streamdrift-kafka-python"), run.median(
            "raw-kafka-python")
        if service is not None and raw is not None:
            floor = run.median("floor-kafka-python")
            measured = f"{service / raw:.2f}x"
            if floor is not None:  # the client + decode + binning, nothing else
                measured += f" (the e2e floor's: {floor / raw:.2f}x)"
            found.append(Target("e2e kafka-python: CPU/msg of streamdrift run / raw poll",
                                scope, measured, f"<= {E2E_OVER_RAW_MAX}x",
                                service / raw <= E2E_OVER_RAW_MAX))
        else:
            found.append(Target("e2e kafka-python: CPU/msg of streamdrift run / raw poll",
                                scope, "not measured", f"<= {E2E_OVER_RAW_MAX}x", None))
        service, floor = run.median("streamdrift-confluent"), run.median(
            "floor-confluent")
        if service is not None and floor is not None:
            found.append(Target("e2e confluent: CPU/msg of streamdrift run / e2e floor", scope,
                                f"{service / floor:.2f}x",
                                f"<= {E2E_CONFLUENT_OVER_FLOOR_MAX}x",
                                service / floor <= E2E_CONFLUENT_OVER_FLOOR_MAX))
        else:
            why = run.unavailable.get("streamdrift-confluent") or run.unavailable.get(
                "floor-confluent", "not measured")
            found.append(Target("e2e confluent: CPU/msg of streamdrift run / e2e floor", scope,
                                why, f"<= {E2E_CONFLUENT_OVER_FLOOR_MAX}x", None))
    if memory is not None:
        wide = memory["wide"]["growth_mib"]
        found.append(Target("RSS growth, 1,000 features x 20 bins x 60 panes", "memory",
                            f"{wide:.1f} MiB", f"<= {WIDE_RSS_MAX_MIB:.0f} MiB",
                            wide <= WIDE_RSS_MAX_MIB))
        small = memory["window_small"]["growth_mib"]
        large = memory["window_large"]["growth_mib"]
        found.append(Target("same RSS for a window of 10^4 and of 10^7 messages", "memory",
                            f"+{small:.1f} vs +{large:.1f} MiB (Δ {large - small:+.1f})",
                            f"|Δ| <= {SAME_RSS_TOLERANCE_MIB:.0f} MiB",
                            abs(large - small) <= SAME_RSS_TOLERANCE_MIB))
    return found


def _avro_e2e_targets(run: EndToEnd, scope: str) -> list[Target]:
    """streamdrift run on the Avro topic against the client + Avro floor, per client."""
    found = []
    for client, label in (("confluent", "confluent"), ("kafka-python", "kafka-python")):
        name = f"e2e {label}, Avro: CPU/msg of streamdrift run / e2e Avro floor"
        limit = f"<= {AVRO_PIPELINE_OVER_FLOOR_MAX}x"
        service, floor = run.median(f"streamdrift-{client}"), run.median(f"floor-{client}")
        if service is not None and floor is not None:
            found.append(Target(name, scope, f"{service / floor:.2f}x", limit,
                                service / floor <= AVRO_PIPELINE_OVER_FLOOR_MAX))
        else:
            why = run.unavailable.get(f"streamdrift-{client}") or run.unavailable.get(
                f"floor-{client}", "not measured")
            found.append(Target(name, scope, why, limit, None))
    return found


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def in_process_table(results: list[InProcess]) -> list[str]:
    lines = ["| features | contender | CPU µs/msg (median) | messages/s | min - max µs "
             "| x floor (of its format) | streamdrift faster by |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for result in results:
        pipeline = result.median("streamdrift")
        for name in result.samples:
            median = result.median(name)
            floor = result.floor_median(name)
            samples = result.samples[name]
            faster = ("" if name in ("streamdrift", "streamdrift_sequential", "floor",
                                     *FLOOR_OF)
                      else f"{median / pipeline:.2f}x")
            lines.append(f"| {result.n_features} | {IN_PROCESS_LABELS.get(name, name)} | "
                         f"{median:.2f} | {1e6 / median:,.0f} | {min(samples):.2f} - "
                         f"{max(samples):.2f} | {median / floor:.2f} | {faster} |")
    return lines


def e2e_table(results: list[EndToEnd]) -> list[str]:
    lines = ["| features | topic | messages | contender | CPU µs/msg (median) "
             "| messages per CPU-s | wall messages/s | runs |",
             "|---:|---|---:|---|---:|---:|---:|---:|"]
    for result in results:
        topic = "Avro" if result.format == "avro" else "JSON"
        for name, label in E2E_LABELS.items():
            median = result.median(name)
            if result.format == "avro":
                label = label.replace("decode + binning", "Avro decode + binning")
            if median is None:
                lines.append(f"| {result.n_features} | {topic} | {result.messages} | {label} | "
                             f"{result.unavailable.get(name, 'not measured')} | | | |")
                continue
            wall = statistics.median(result.wall[name])
            lines.append(f"| {result.n_features} | {topic} | {result.messages} | {label} | "
                         f"{median:.2f} | {1e6 / median:,.0f} | {wall:,.0f} | "
                         f"{len(result.samples[name])} |")
    return lines


def targets_table(found: list[Target]) -> list[str]:
    lines = ["| target | scope | measured | limit | result |", "|---|---|---:|---|---|"]
    lines += [f"| {t.name} | {t.scope} | {t.measured} | {t.limit} | {_verdict(t.passed)} |"
              for t in found]
    return lines


# ---- plot ----------------------------------------------------------------------------------

def plot(in_process: list[InProcess], end_to_end: list[EndToEnd], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        say("  matplotlib is not installed: no plot (pip install -r benchmarks/requirements.txt)")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 6))
    palette = plt.get_cmap("tab20")
    colors = [palette(i) for i in range(20)]
    features = [r.n_features for r in in_process]
    for color, (name, label) in zip(colors[::2], IN_PROCESS_LABELS.items(), strict=False):
        values = [1e6 / r.median(name) for r in in_process if name in r.samples]
        if len(values) == len(features):
            axes.plot(features, values, marker="o", color=color,
                      linewidth=2.8 if name == "streamdrift" else 1.5,
                      label=f"in process: {label}")
    # End to end: every JSON contender; on the Avro topic, the floor and the service.
    lines = [("json", name, label) for name, label in E2E_LABELS.items()]
    lines += [("avro", name, f"Avro topic, {label}") for name, label in E2E_LABELS.items()
              if name.startswith(("floor-", "streamdrift-"))]
    for color, (fmt, name, label) in zip(colors[1::2] + colors[::2], lines, strict=False):
        points = [(r.n_features, 1e6 / m) for r in end_to_end
                  if r.format == fmt and (m := r.median(name)) is not None]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points],
                      marker="s" if fmt == "json" else "^", color=color,
                      linestyle=":" if "raw" in name else "--",
                      linewidth=2.2 if name.startswith("streamdrift") else 1.2,
                      label=f"end to end: {label}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(features)
    axes.set_xticklabels([str(n) for n in features])
    axes.set_xlabel("features per message")
    axes.set_ylabel("messages per CPU-second (log)")
    axes.set_title("streamdrift benchmarks: throughput against the number of features")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


# ---- RESULTS.md ----------------------------------------------------------------------------

FUZZ_START, FUZZ_END = "<!-- fuzz:start -->", "<!-- fuzz:end -->"


def keep_fuzz_block(previous: str, regenerated: str) -> str:
    """``regenerated`` with the fuzz block of ``previous`` (benchmarks/fuzz.py) carried
    over at its end, if it had one.

    >>> keep_fuzz_block("x <!-- fuzz:start -->1M<!-- fuzz:end --> y", "# new\n")
    '# new\n\n## Fuzzing\n\n<!-- fuzz:start -->1M<!-- fuzz:end -->\n'
    """
    if FUZZ_START not in previous or FUZZ_END not in previous or FUZZ_START in regenerated:
        return regenerated
    block = FUZZ_START + previous.split(FUZZ_START, 1)[1].split(FUZZ_END, 1)[0] + FUZZ_END
    return regenerated.rstrip("\n") + "\n\n## Fuzzing\n\n" + block + "\n"


def sequential_cost_table(results: list[InProcess]) -> list[str]:
    """Per feature count: the pipeline's CPU per message with the default detector and with
    the sequential test, their ratio and what the test adds per feature value."""
    lines = ["| features | messages | floor µs/msg | pipeline, default µs/msg "
             "| pipeline, mixture_cusum µs/msg | mixture_cusum / default "
             "| added ns per feature value | messages/s default / mixture_cusum |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        if "streamdrift_sequential" not in result.samples:
            continue
        floor = result.median("floor")
        default = result.median("streamdrift")
        sequential = result.median("streamdrift_sequential")
        added = (sequential - default) / result.n_features * 1000
        lines.append(f"| {result.n_features} | {result.messages} | {floor:.2f} | {default:.2f} "
                     f"({default / floor:.2f}x floor) | {sequential:.2f} "
                     f"({sequential / floor:.2f}x floor) | {sequential / default:.2f}x | "
                     f"{added:.0f} | {1e6 / default:,.0f} / {1e6 / sequential:,.0f} |")
    return lines


def sequential_cost_block(command: str, now: str, repeats: int, info: dict[str, str],
                          results: list[InProcess]) -> str:
    """The section on the sequential test's cost, between its markers."""
    lines = [
        SEQUENTIAL_START,
        f"Measured by `{command}` on {now} (a full run writes this block, and "
        "`python benchmarks/run.py --sequential-cost`, which times only the floor and the two "
        "pipelines below, interleaved, and writes only this block).",
        "",
        "Machine: " + "; ".join(f"{key} {info[key]}" for key in
                                 ("cpu", "python", "numpy", "streamdrift") if key in info)
        + f"; numba {_version('numba')}.",
        "",
        "The in-process pipeline (the messages, batches and reports of the table above), "
        "with the benchmark's config (`detector.method: adwin`, the default: ADWIN over each "
        "feature's KL series, once a pane; the scan on, the default) against the same with "
        "`detector.method: mixture_cusum` (arl0 10^6, prior strengths 100 and 400: the "
        "sequential test on every value, compiled by numba). CPU per message, median of "
        f"{repeats} repeats interleaved with the floor; the ratio is within one process.",
        "",
        *sequential_cost_table(results),
        SEQUENTIAL_END,
    ]
    return "\n".join(lines)


def results_markdown(command: str, plan: Plan, info: dict[str, str], seconds: float,
                     in_process: list[InProcess], end_to_end: list[EndToEnd],
                     memory: dict[str, Any] | None, found: list[Target], profiles: str,
                     analysis: str,
                     startup_samples: dict[str, list[float]] | None = None,
                     detection_block: str | None = None) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# streamdrift benchmark results",
        "",
        f"Generated by `{command}` on {now}, in {seconds / 60:.1f} minutes "
        "(`benchmarks/run.py` writes this file; only the section \"Reading of this run\" is "
        "written by hand and kept when the file is generated again: check it against the "
        "new numbers; the section \"Soak\" is written by `benchmarks/soak.py` and kept too, "
        "as is \"Detection\" when this run did not measure it).",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        "## Targets",
        "",
        *targets_table(found),
        "",
        "## In process: the same payload bytes through each contender",
        "",
        f"CPU time (`time.process_time`) per message, median of {plan.repeats} repeats run "
        "interleaved (A B C ... A B C ...); every repeat starts from fresh state. Window "
        "10,000 messages in 10 panes, 20 bins per numeric feature, up to 50 categories + "
        "other per categorical one, baseline from 10,000 reference messages.",
        "",
        *in_process_table(in_process),
        "",
    ]
    for measured in in_process:
        lines.append(
            f"- {measured.n_features} features: {measured.messages} messages of "
            f"{measured.payload_bytes:,.0f} bytes on average; floor decoder "
            f"`{measured.floor_decoder}` (decode + binning, µs/msg: "
            + ", ".join(f"{k} {v:.2f}" for k, v in measured.floor_variants.items())
            + "); decoding alone to dicts, µs/msg: "
            + ", ".join(f"{k} {v:.2f}" for k, v in measured.decoder_speeds.items())
            + f"; river and batch decode with `{measured.decoder}`"
            + ("" if measured.avro_payload_bytes is None else
               f"; the same messages as framed Avro records: "
               f"{measured.avro_payload_bytes:,.0f} bytes on average")
            + "; agreement before timing: "
            + ", ".join(f"{k} max |ΔKL| {v:.1e}"
                        for k, v in measured.agreement.max_kl_difference.items())
            + f", {_totals_agreement(measured.agreement)} "
            + ("(OK)" if measured.agreement.ok(KL_TOLERANCE) else "(MISMATCH)"))
    lines += ["", "What each contender does:", ""]
    if in_process:
        for name, description in in_process[0].descriptions.items():
            lines.append(f"- **{IN_PROCESS_LABELS.get(name, name)}**: {description}")
    if any("streamdrift_sequential" in result.samples for result in in_process):
        lines += ["", SEQUENTIAL_TITLE, "",
                  sequential_cost_block(command, now, plan.repeats, info, in_process)]
    lines += ["", "## End to end on the broker", ""]
    if end_to_end:
        lines += [
            f"A topic of 3 partitions per feature count, produced once; every contender reads "
            f"all of it from the beginning in a new consumer group, in its own process, "
            f"{plan.e2e_repeats} run(s) each, interleaved. CPU of the consuming process "
            "(user + system, all threads, `/proc/<pid>/stat`, 10 ms ticks) from its partition "
            "assignment to its last message counted (for `streamdrift run`: its group's "
            "committed offsets reach the end of the topic; /metrics "
            "`streamdrift_messages_total` is then checked to equal the count), divided by "
            "the messages. The broker runs on the same machine. The Avro topic holds the "
            "same messages as framed Avro records, their schema registered in the schema "
            "registry (the machine list says which), which `streamdrift run` "
            "(`input.format: avro`) asks for it once; its floor is the client + the Avro "
            "floor (fastavro decode + binning).",
            "",
            *e2e_table(end_to_end),
            "",
        ]
    else:
        lines += ["Not run (no `--kafka BOOTSTRAP`).", ""]
    if memory is not None:
        wide, small, large = memory["wide"], memory["window_small"], memory["window_large"]
        lines += [
            "## Memory",
            "",
            "Each case in a fresh process; RSS (`VmRSS`) read after the inputs exist (and the "
            "C heap trimmed, so that memory freed while building them is not reused unseen), "
            "then after the work, with nothing trimmed.",
            "",
            "| case | RSS before | RSS after | growth | growth after a trim |",
            "|---|---:|---:|---:|---:|",
            f"| 1,000 numeric features x 20 bins x 60 panes ({wide['slots']} slots), "
            f"constructed | {wide['rss_before_mib']:.1f} MiB | "
            f"{wide['rss_constructed_mib']:.1f} MiB | +{wide['growth_constructed_mib']:.1f} "
            f"MiB | |",
            f"| the same, fed {wide['messages_fed']} messages ({wide['panes_closed']} panes) "
            f"+ one report held | {wide['rss_before_mib']:.1f} MiB | "
            f"{wide['rss_after_mib']:.1f} MiB | +{wide['growth_mib']:.1f} MiB | "
            f"+{wide['growth_trimmed_mib']:.1f} MiB |",
            f"| 34 features, window 10^4 messages, fed {small['messages_fed']} | "
            f"{small['rss_before_mib']:.1f} MiB | {small['rss_after_mib']:.1f} MiB | "
            f"+{small['growth_mib']:.1f} MiB | +{small['growth_trimmed_mib']:.1f} MiB |",
            f"| 34 features, window 10^7 messages, fed {large['messages_fed']} | "
            f"{large['rss_before_mib']:.1f} MiB | {large['rss_after_mib']:.1f} MiB | "
            f"+{large['growth_mib']:.1f} MiB | +{large['growth_trimmed_mib']:.1f} MiB |",
            "",
            f"The ring of panes alone for the wide case is {wide['ring_mib']:.1f} MiB "
            "(60 x slots x 8 bytes).",
            "",
        ]
    if startup_samples is not None:
        repeats = len(startup_samples[startup.BARE])
        lines += [
            "## Command start-up",
            "",
            f"Wall time from exec to exit of a fresh interpreter, median of {repeats} runs "
            "interleaved with a bare `python -c pass` (benchmarks/startup.py). `check` and "
            "`baseline show` read deploy/compose's config and baseline; numpy, scipy, river "
            "and the Kafka clients are imported only by the commands that use them.",
            "",
            *startup.table(startup_samples),
            "",
        ]
    if detection_block is not None:
        lines += [detection.SECTION_TITLE, "", detection_block, ""]
    lines += ["## Throughput against the number of features", "",
              "![messages per CPU-second against features](throughput.png)", ""]
    if profiles:
        lines += ["## Where the time goes (cProfile, one run each, top functions by own time)",
                  "", "```", profiles.rstrip(), "```", ""]
    lines += [
        "## Method notes",
        "",
        "- All in-process contenders consume the same list of payload bytes in the same "
        "process run; before timing, the naive implementation, the batch recomputation and "
        f"streamdrift must agree on the final window KL of every feature within "
        f"{KL_TOLERANCE:g}, and the floor's bin counts must equal streamdrift's.",
        "- The floor is the least work any implementation must do: the fastest decode "
        "measured among orjson and msgspec to dicts and msgspec straight into a typed "
        "struct of the feature paths (whichever is fastest on these payloads), building the "
        "columns, one `np.searchsorted` per numeric feature, a dict lookup per category, one "
        "`np.bincount` per batch of 1,000. No windows, no divergences, no validation of "
        "types.",
        "- The Avro rows read the same messages as framed Avro records (magic byte, schema "
        "id, then the record of `streamdrift.avro.feature_record_schema(config.features)`: "
        "the features only, every field nullable, nested records for the sections; "
        "`event_id` and `event_time` are not in it, so the records are about a third of "
        "the JSON bytes). The Avro floor decodes each with the decoder streamdrift uses, "
        "fastavro's `schemaless_reader` from a `BytesIO` past the 5-byte header (no check "
        "of the frame, the schema id or leftover bytes), then builds the columns and bins "
        "them as the floor's dict decoders do. streamdrift on Avro is the same monitor with "
        "`input.format: avro` and the writer schema by its id (as the service holds it once "
        "fetched from the registry); before timing, its final window KL must equal "
        "streamdrift's on the JSON messages and its bin totals the Avro floor's. Avro rows "
        "are compared with the Avro floor, JSON rows with the JSON floor: fastavro decodes "
        "a record several times slower than msgspec a JSON message, and that decode is "
        "shared by the Avro pair.",
        "- streamdrift in process: `DriftMonitor.process_payloads` in batches of 1,000 and "
        "one `report()` per closed pane. The service reports once per publish tick (1 s), "
        "so one report per pane of 1,000 messages is more reporting than the service does "
        "at these rates.",
        "- river watches numeric features only (ADWIN on raw values; categorical features "
        "are not watched) and computes no KL: it does less work than the others.",
        "- The batch recomputation keeps the bins fixed (the baseline's edges and "
        "categories) and recomputes both histograms from raw values at every pane; a tool "
        "that also re-derives the bins from the reference each time would be slower.",
        "- CPU time, not wall time, is what is compared: the machine has 2 cores shared with "
        "the broker, and the process's CPU is what a consumer pays for. Absolute figures move "
        "by 10-30 % from one process to the next on this virtual machine; the ratios that the "
        "targets use are taken within one run (in process: one process, interleaved).",
        "- End to end, the interval measured for `streamdrift run` includes what the service "
        "does besides counting: its window-refill check at assignment (a second consumer "
        "created and closed), a synchronous commit once a second "
        "(`service.commit_interval_s`), a report at every publish tick (1 s) and a lag probe "
        "every 5 s. kafka-python hands over batches of at "
        "most `max_partition_fetch_bytes` (1 MiB) per partition, about 100 messages per poll "
        "at 1,000 features (25 kB each), while confluent-kafka's `consume` returns the full "
        "1,000.",
        "- There are no timed assertions in the test suite: "
        "`tests/test_benchmark_contenders.py` checks only that the contenders compute the "
        "same numbers.",
        "",
        "## Reading of this run",
        "",
        ANALYSIS_START,
        analysis.strip() or "(to be written by hand after a run)",
        ANALYSIS_END,
        "",
    ]
    return "\n".join(lines)


def previous_analysis(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    if ANALYSIS_START in text and ANALYSIS_END in text:
        return text.split(ANALYSIS_START, 1)[1].split(ANALYSIS_END, 1)[0]
    return ""


# ---- main ----------------------------------------------------------------------------------

def sequential_cost(plan: Plan, command: str) -> int:
    """``--sequential-cost``: the floor, the pipeline and the pipeline with the sequential
    test, timed interleaved for every feature count; their block of RESULTS.md rewritten
    (nothing else in it)."""
    info = machine(None)
    say("streamdrift benchmarks: the sequential test's cost in the pipeline")
    for key, value in info.items():
        say(f"  {key}: {value}")
    results = []
    for n_features in plan.features:
        say(f"\n== {n_features} features: generating {plan.messages[n_features]} messages")
        workload = make_workload(n_features, plan.messages[n_features])
        results.append(run_in_process(workload, plan.repeats, avro=False,
                                      only=SEQUENTIAL_COST_CONTENDERS))
        del workload
        gc.collect()
    say("")
    for line in sequential_cost_table(results):
        say(line)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if plan.write:
        path = HERE / "RESULTS.md"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        block = sequential_cost_block(command, now, plan.repeats, info, results)
        path.write_text(detection.replace_block(
            text, block, SEQUENTIAL_START, SEQUENTIAL_END, SEQUENTIAL_TITLE,
            before=("## End to end on the broker",)), encoding="utf-8")
        say(f"wrote the sequential-cost block of {path.relative_to(REPO)}")
    return 0 if all(r.agreement.ok(KL_TOLERANCE) for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer messages and repeats, end to end on the smallest feature "
                             "count only (under 2 minutes); writes nothing unless --write")
    parser.add_argument("--features", default="34,200,1000",
                        help="comma-separated feature counts (default 34,200,1000)")
    parser.add_argument("--messages", type=int, default=None,
                        help="in-process messages per feature count (default: 50,000 for 34 "
                             "features down to 10,000 for 1,000)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="in-process repeats (default 5, quick 3)")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", default=None,
                        help="a broker for the end-to-end contenders (e.g. 127.0.0.1:9092); "
                             "without it they are skipped")
    parser.add_argument("--e2e-messages", type=int, default=None,
                        help="messages in each end-to-end topic (default: 200,000 for 34 "
                             "features down to 10,000 for 1,000)")
    parser.add_argument("--e2e-repeats", type=int, default=None,
                        help="end-to-end runs per contender (default 3, quick 1)")
    parser.add_argument("--registry", metavar="URL", default=None,
                        help="a Confluent-compatible Schema Registry for the end-to-end Avro "
                             "topics (e.g. http://127.0.0.1:8081/apis/ccompat/v7); without "
                             "it, --kafka starts one with deploy/local/registry and stops it "
                             "at the end")
    parser.add_argument("--no-avro", action="store_true",
                        help="skip the Avro contenders (in process and end to end)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory cases")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile step")
    parser.add_argument("--no-detection", action="store_true",
                        help="skip the detection simulation (benchmarks/detection.py; about "
                             "3 minutes, a few seconds with --quick); a written RESULTS.md "
                             "keeps its previous detection section")
    parser.add_argument("--sequential-cost", action="store_true",
                        help="only time the floor, the pipeline and the pipeline with "
                             "detector.method: mixture_cusum in process, and write only their "
                             "section of benchmarks/RESULTS.md (unless --no-write)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write benchmarks/RESULTS.md and benchmarks/throughput.png "
                             "(default: yes, except with --quick)")
    args = parser.parse_args(argv)
    plan = make_plan(args)
    command = "python benchmarks/run.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    if args.sequential_cost:
        return sequential_cost(plan, command)
    started = time.monotonic()
    in_process: list[InProcess] = []
    end_to_end: list[EndToEnd] = []
    profiles = ""
    folder = Path(tempfile.mkdtemp(prefix="streamdrift-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        registry, registry_note = plan.registry, None
        # A registry started here runs until the end-to-end topics are read.
        registry_stack = stack.enter_context(contextlib.ExitStack())
        if plan.kafka is not None and plan.avro and registry is None:
            try:
                registry = registry_stack.enter_context(
                    e2e.local_registry(folder / "registry"))
                registry_note = f"{registry} (deploy/local/registry, started for this run)"
            except RuntimeError as error:
                registry_note = f"none: {error}"
                say(f"  no schema registry, the end-to-end Avro topics are skipped: {error}")
        info = machine(plan.kafka, (registry_note or registry) if plan.avro else None)
        say("streamdrift benchmarks")
        for key, value in info.items():
            say(f"  {key}: {value}")
        for n_features in plan.features:
            say(f"\n== {n_features} features: generating {plan.messages[n_features]} messages")
            workload = make_workload(n_features, plan.messages[n_features])
            result = run_in_process(workload, plan.repeats, plan.avro)
            in_process.append(result)
            if plan.profile and n_features in (min(plan.features), max(plan.features)):
                profiles += profile_pipeline(workload, result.floor_decoder, avro=plan.avro)
            if plan.kafka is not None and n_features in plan.e2e_features:
                registries: list[str | None] = [None]
                if plan.avro and registry is not None:
                    registries.append(registry)
                for topic_registry in registries:
                    say(f"  end to end on {plan.kafka}: {plan.e2e_messages[n_features]} "
                        + ("JSON messages" if topic_registry is None else "Avro records"))
                    end_to_end.append(run_end_to_end(workload, plan.kafka,
                                                     plan.e2e_messages[n_features],
                                                     plan.e2e_repeats, result.floor_decoder,
                                                     folder, topic_registry))
            del workload
            gc.collect()
        registry_stack.close()
        say("\n== command start-up (fresh interpreters, wall time)")
        startup_samples = startup.measure(5 if args.quick else 15)
        for line in startup.table(startup_samples):
            say(f"  {line}")
        memory = None
        if not args.no_memory:
            say("\n== memory (fresh processes)")
            memory = run_memory(50_000 if args.quick else 200_000)
        detection_block = None
        if not args.no_detection:
            say("\n== detection (benchmarks/detection.py)")
            detection_block = detection.run(
                detection.parse_args(["--quick"] if args.quick else []), command)
    seconds = time.monotonic() - started
    found = targets(in_process, end_to_end, memory, startup_samples)

    say("\n== in process (CPU µs per message, median)")
    for line in in_process_table(in_process):
        say(line)
    if end_to_end:
        say("\n== end to end (CPU µs per message of the consuming process, median)")
        for line in e2e_table(end_to_end):
            say(line)
    elif plan.kafka is None:
        say("\n== end to end: skipped (no --kafka BOOTSTRAP)")
    say("\n== targets")
    for line in targets_table(found):
        say(line)
    if profiles:
        say("\n== where the time goes (cProfile)\n" + profiles)
    say(f"done in {seconds / 60:.1f} minutes")

    if plan.write:
        results = HERE / "RESULTS.md"
        plot(in_process, end_to_end, HERE / "throughput.png")
        previous = results.read_text(encoding="utf-8") if results.exists() else ""
        generated = results_markdown(command, plan, info, seconds, in_process, end_to_end,
                                     memory, found, profiles, previous_analysis(results),
                                     startup_samples, detection_block)
        # The soak's and the fuzzer's blocks (benchmarks/soak.py, benchmarks/fuzz.py) are
        # kept as they were, and the detection block when this run did not measure it.
        generated = detection.keep_block(previous, generated)
        results.write_text(keep_fuzz_block(previous, soak.keep_block(previous, generated)),
                           encoding="utf-8")
        say(f"wrote {results.relative_to(REPO)} and benchmarks/throughput.png")
    agreed = all(r.agreement.ok(KL_TOLERANCE) for r in in_process)
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main())
