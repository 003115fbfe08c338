"""Fixtures and helpers for the integration tests: a real Kafka broker, a real schema
registry and the service.

``tests/run`` starts a dedicated broker and exports ``STREAMDRIFT_TEST_BOOTSTRAP``; every
test under this folder is marked ``integration`` and *fails* (never skips) when no broker
answers, so that a green run always means the tests ran. Beside the broker it starts a
Confluent-compatible schema registry (Apicurio Registry, ``deploy/local/registry``) and
exports ``STREAMDRIFT_TEST_REGISTRY``; the ``registry_url`` fixture fails the same way when
none answers, and ``registry_factory`` starts registries of a test's own, to stop or pause.

Helpers for test modules (``from tests.integration.conftest import ...``):
``produce``, ``consume_all``, ``free_port``, ``wait_until``, ``write_service_config``,
``build_demo_baseline``, ``ServiceProcess``, ``RegistryProcess`` and ``Record``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streamdrift.baseline import load_baseline
from streamdrift.cli import main as cli_main
from streamdrift.config import load_config
from streamdrift.monitor import DriftMonitor
from streamdrift.sources.records import partition_runs
from streamdrift.synthetic import DEMO_CONFIG_YAML, SyntheticStream

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BOOTSTRAP_ENV = "STREAMDRIFT_TEST_BOOTSTRAP"
BROKER_WAIT_S = 30.0
HOW_TO_START = (
    "start one with tests/run (it starts a test broker and sets "
    f"{BOOTSTRAP_ENV}), or with `deploy/local/kafka start` and "
    f"{BOOTSTRAP_ENV}=127.0.0.1:9092"
)

REGISTRY_ENV = "STREAMDRIFT_TEST_REGISTRY"
REGISTRY_WAIT_S = 30.0
REGISTRY_SCRIPT = REPO / "deploy" / "local" / "registry"
HOW_TO_START_REGISTRY = (
    "start one with tests/run (it starts a test registry and sets "
    f"{REGISTRY_ENV}), or with `deploy/local/registry start` and "
    f"{REGISTRY_ENV}=http://127.0.0.1:8081"
)

# A metric sample: (sample name, frozenset of its (label, value) pairs).
SampleKey = tuple[str, frozenset[tuple[str, str]]]


# --------------------------------------------------------------------------------------------
# markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration ``integration`` (this hook sees all items)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Kept so that fixtures can tell, at teardown, whether the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _test_failed(node: pytest.Item) -> bool:
    return any(report.failed for report in node.stash.get(_REPORTS, {}).values())


# --------------------------------------------------------------------------------------------
# waiting


def wait_until(
    predicate: Callable[[], T | None],
    timeout_s: float,
    interval_s: float = 0.2,
    what: str = "the condition",
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``predicate`` every ``interval_s`` until it returns a truthy value, and return it.

    An exception raised by the predicate counts as "not yet" (a server still starting).
    After ``timeout_s``, or as soon as ``abort`` returns a reason, raise ``AssertionError``
    naming ``what`` and the last value or error.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        reason = None if abort is None else abort()
        if reason is not None:
            raise AssertionError(f"gave up waiting for {what}: {reason} "
                                 f"(last result: {last!r})")
        try:
            value = predicate()
        except Exception as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} "
                                 f"(last result: {last!r})")
        time.sleep(interval_s)


# --------------------------------------------------------------------------------------------
# Kafka


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """``host:port`` of the test broker; fails the test when none answers within 30 s."""
    servers = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not servers:
        pytest.fail(f"{BOOTSTRAP_ENV} is not set: these tests need a Kafka broker; "
                    f"{HOW_TO_START}", pytrace=False)
    started = time.monotonic()
    problem = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, client_id="streamdrift-tests",
                                 bootstrap_timeout_ms=int(BROKER_WAIT_S * 1000),
                                 request_timeout_ms=10_000)
        try:
            admin.list_topics()  # a Metadata round trip
        finally:
            admin.close()
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
    if problem is not None:  # failed out of the except block: no chained traceback
        pytest.fail(f"no Kafka broker answers at {BOOTSTRAP_ENV}={servers} (waited "
                    f"{time.monotonic() - started:.0f}s; {problem}); {HOW_TO_START}",
                    pytrace=False)
    return servers


@pytest.fixture(scope="session")
def kafka_admin(bootstrap: str) -> Iterator[Any]:
    """A ``KafkaAdminClient`` on the test broker, shared by the session."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamdrift-tests-admin",
                             request_timeout_ms=30_000)
    yield admin
    admin.close()


def _topic_ready(admin: Any, name: str, partitions: int) -> bool:
    described = admin.describe_topics([name])
    if len(described) != 1 or described[0].get("error_code", 0) != 0:
        return False
    parts = described[0].get("partitions") or []
    return len(parts) == partitions and all(
        p.get("error_code", 0) == 0 and p.get("leader_id", -1) >= 0 for p in parts
    )


@pytest.fixture
def topic_factory(kafka_admin: Any) -> Iterator[Callable[..., str]]:
    """``create(partitions=1, prefix="sd-test", configs=None) -> name``: a new topic with a
    unique name, replication factor 1, returned once every partition has a leader.
    The topics created are deleted at teardown (best effort)."""
    created: list[str] = []

    def create(partitions: int = 1, prefix: str = "sd-test",
               configs: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        # The dict form of create_topics: kafka-python 3 deprecates NewTopic.
        kafka_admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1,
                    "configs": dict(configs or {})}},
            timeout_ms=int(timeout_s * 1000),
        )
        created.append(name)
        wait_until(lambda: _topic_ready(kafka_admin, name, partitions), timeout_s,
                   what=f"topic {name} with {partitions} partitions, each with a leader")
        return name

    yield create
    if created:
        try:
            kafka_admin.delete_topics(created, timeout_ms=10_000, raise_errors=False)
        except Exception as error:  # best effort: the broker is wiped at every tests/run
            print(f"warning: could not delete test topics {created}: {error!r}")


def produce(
    bootstrap: str,
    topic: str,
    payloads: Sequence[bytes],
    keys: Sequence[bytes | None] | None = None,
    partition: int | Sequence[int | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
    timeout_s: float = 30.0,
    headers: Sequence[Sequence[tuple[str, bytes]] | None] | None = None,
) -> int:
    """Send ``payloads`` (acks=all), wait until all are acknowledged, return how many.

    ``keys``, ``timestamps_ms`` and ``headers`` are per message; ``partition`` is one
    partition for all messages or one per message (None: the partitioner chooses).
    """
    count = len(payloads)
    for name, values in (("keys", keys), ("timestamps_ms", timestamps_ms),
                         ("headers", headers),
                         ("partition", None if isinstance(partition, int) else partition)):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} has {len(values)} items for {count} payloads")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             client_id="streamdrift-tests-producer")
    try:
        futures = []
        for index, payload in enumerate(payloads):
            if partition is None or isinstance(partition, int):
                target = partition
            else:
                target = partition[index]
            futures.append(producer.send(
                topic, value=payload,
                key=None if keys is None else keys[index],
                partition=target,
                timestamp_ms=None if timestamps_ms is None else timestamps_ms[index],
                headers=None if headers is None else list(headers[index] or []),
            ))
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)  # raises the send's error, if any
    finally:
        producer.close(timeout=10)
    return count


class Record(NamedTuple):
    value: bytes | None
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0,
                quiet_s: float = 2.0) -> list[Record]:
    """Every record of ``topic`` from the beginning, in (partition, offset) order.

    A consumer without a group (nothing committed) reads until it has reached the end of
    every partition and no new record came for ``quiet_s``; at ``timeout_s`` it returns
    what it has.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="streamdrift-tests-consumer")
    records: list[Record] = []
    try:
        deadline = time.monotonic() + timeout_s
        numbers = wait_until(lambda: consumer.partitions_for_topic(topic), timeout_s,
                             what=f"metadata of topic {topic}")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200)
            for batch in batches.values():
                records.extend(Record(r.value, r.partition, r.offset, r.timestamp, r.key,
                                      tuple(r.headers or ()))
                               for r in batch)
                if batch:
                    last_new = time.monotonic()
            if time.monotonic() - last_new >= quiet_s:
                ends = consumer.end_offsets(partitions)
                if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    break
    finally:
        consumer.close(autocommit=False)
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------------------------
# schema registry


def _registry_ready(url: str) -> bool:
    return http_get(f"{url}/health/ready", 2.0)[0] == 200


def _process_gone(pid: int) -> bool:
    """No process ``pid``, or only its zombie (the registry is no child of ours: init reaps
    it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.fixture(scope="session")
def registry_url() -> str:
    """Base URL of the test schema registry, ``http://127.0.0.1:18081`` under tests/run (no
    trailing slash; the Confluent-compatible API is under ``/apis/ccompat/v7``); fails the
    test when ``STREAMDRIFT_TEST_REGISTRY`` is unset or ``/health/ready`` does not answer 200
    within 30 s.

    This registry is shared by the whole session and by every pytest worker, and keeps what
    was registered in it until the next tests/run: register under subjects of unique names
    (the topic's, say), never expect an id to be 1, and never stop or pause it - a test that
    needs the registry gone takes ``registry_factory`` instead.
    """
    url = os.environ.get(REGISTRY_ENV, "").strip().rstrip("/")
    if not url:
        pytest.fail(f"{REGISTRY_ENV} is not set: these tests need a schema registry; "
                    f"{HOW_TO_START_REGISTRY}", pytrace=False)
    started = time.monotonic()
    problem = None
    try:
        wait_until(lambda: _registry_ready(url), REGISTRY_WAIT_S, interval_s=0.5,
                   what=f"{url}/health/ready to answer 200")
    except AssertionError as error:
        problem = str(error)
    if problem is not None:  # failed out of the except block: no chained traceback
        pytest.fail(f"no schema registry answers at {REGISTRY_ENV}={url} (waited "
                    f"{time.monotonic() - started:.0f}s; {problem}); {HOW_TO_START_REGISTRY}",
                    pytrace=False)
    return url


class RegistryProcess:
    """A schema registry of a test's own (Apicurio Registry on 127.0.0.1:``port``), run by
    ``deploy/local/registry`` with its pid file, log and H2 database in ``data_dir``.

    With ``storage="file"`` (the default) what is registered, ids included, survives
    ``stop()`` + ``start()`` and even ``kill()``; with ``"mem"`` a restart forgets it all.
    Two kinds of outage:

    - ``stop()`` / ``start()`` (or ``with registry.stopped():``): the port is closed, a
      client's connection is refused at once;
    - ``pause()`` / ``resume()`` (or ``with registry.paused():``), SIGSTOP / SIGCONT: the
      process keeps its port and the kernel accepts connections, but nothing answers - a
      client waits for its own timeout.

    ``pid`` and ``pid_file`` are there for anything else (another signal, say).
    """

    def __init__(self, port: int, data_dir: Path, storage: str = "file") -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "REGISTRY_PORT": str(port),
                    "REGISTRY_DATA_DIR": str(self.data_dir), "REGISTRY_STORAGE": storage}

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "registry.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "registry.log"

    @property
    def pid(self) -> int:
        """The pid of the running registry (fails when it does not run)."""
        return int(self.run("pid").strip())

    def run(self, *args: str, timeout_s: float = 300.0) -> str:
        """``deploy/local/registry ARGS`` for this registry; its output. Fails the test when
        the script fails (a start that times out prints the log tail)."""
        result = subprocess.run([str(REGISTRY_SCRIPT), *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout_s,
                                check=False)
        if result.returncode != 0:
            pytest.fail(f"deploy/local/registry {' '.join(args)} failed "
                        f"({result.returncode}):\n{result.stdout}\n{result.stderr}",
                        pytrace=False)
        return result.stdout

    def start(self) -> RegistryProcess:
        """Start it (a no-op when it runs; resumes it when paused) and wait until it is
        ready; returns self."""
        self.run("start")
        return self

    def stop(self) -> None:
        """SIGTERM and wait until it has exited (a no-op when it does not run)."""
        self.run("stop")

    def kill(self) -> None:
        """SIGKILL, and wait until it has gone: a crash."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _process_gone(pid), 10, what=f"registry pid {pid} gone after SIGKILL")

    def pause(self) -> None:
        """SIGSTOP: it keeps its port but answers nothing until ``resume()``."""
        self.run("pause")

    def resume(self) -> None:
        """SIGCONT."""
        self.run("resume")

    @property
    def ready(self) -> bool:
        """``/health/ready`` answers 200 now."""
        try:
            return _registry_ready(self.url)
        except OSError:
            return False

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Stopped for the block, started again (and ready) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Paused for the block, resumed after it."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        tail = text.splitlines()[-lines:]
        return "\n".join([f"----- last {len(tail)} lines of {self.log_path} -----", *tail])

    def __str__(self) -> str:
        return f"schema registry {self.url} (data {self.data_dir})"


@pytest.fixture
def registry_factory(request: pytest.FixtureRequest,
                     tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    """``start(storage="file") -> RegistryProcess``: a schema registry of the test's own, on
    a free port, data in ``tmp_path``, started and ready (5 to 15 s; about 280 MB of memory
    while it runs). For a test that stops, pauses or kills the registry, which it must not
    do to the shared ``registry_url`` one.

    At teardown every registry started is stopped (resumed first if paused), and the log
    tails are printed if the test failed.
    """
    registries: list[RegistryProcess] = []

    def start(storage: str = "file") -> RegistryProcess:
        registry = RegistryProcess(free_port(), tmp_path / f"registry-{len(registries)}",
                                   storage)
        registries.append(registry)
        return registry.start()

    yield start
    failed = isinstance(request.node, pytest.Item) and _test_failed(request.node)
    for registry in registries:
        if failed:
            print(registry.log_tail())
        registry.stop()


# --------------------------------------------------------------------------------------------
# the service


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET, through no proxy; an HTTP error status is returned, not raised."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace") if error.fp is not None else ""
        return int(error.code), body


class ServiceProcess:
    """``python -m streamdrift run --config C [extra args]`` as a child process.

    Output (stdout and stderr) goes to ``log_path``; the environment is this process's, with
    ``PYTHONUNBUFFERED=1``, without the ``STREAMDRIFT_*`` config overrides (the config file
    is the truth; pass ``env`` to set some on purpose) and with the repository on
    ``PYTHONPATH``. Used as a context manager it starts the process, and at exit kills it if
    it still runs, printing the log tail when the block raised. Every wait is bounded.
    """

    def __init__(self, config_path: Path, metrics_port: int, log_dir: Path,
                 extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 name: str = "streamdrift") -> None:
        self.config_path = Path(config_path)
        self.port = metrics_port
        self.args = [sys.executable, "-m", "streamdrift", "run", "--config",
                     str(self.config_path), *extra_args]
        self.log_path = Path(log_dir) / f"{name}-{uuid.uuid4().hex[:8]}.log"
        self.base_url = f"http://127.0.0.1:{metrics_port}"
        self.env = {key: value for key, value in os.environ.items()
                    if not (key.startswith("STREAMDRIFT_")
                            and not key.startswith("STREAMDRIFT_TEST_"))}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # lifecycle

    def start(self) -> ServiceProcess:
        """Start the process (again, once a previous run has exited); returns self."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"---- start #{self.starts}: {' '.join(self.args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.log_path.parent,
            )
        return self

    @property
    def pid(self) -> int:
        return self._process().pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, return the exit code. A process still there
        then is killed and the call fails."""
        process = self._process()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the threads' stacks, into the log
            time.sleep(1)
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"{self} did not exit within {timeout_s:g}s of SIGTERM "
                                 f"(killed)\n{self.log_tail()}") from None

    def kill(self) -> int:
        """SIGKILL (if still running); returns the exit code (-9 when killed)."""
        process = self._process()
        if process.poll() is None:
            process.kill()
        return process.wait(timeout=10)

    def send_signal(self, signum: int) -> None:
        self._process().send_signal(signum)

    def __enter__(self) -> ServiceProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and str(self.log_path) not in str(exc):  # else the tail is in it
            print(self.log_tail())
        if self.running:
            self.kill()

    # HTTP

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, str]:
        """(status, body) of ``GET path`` on the service's port."""
        return http_get(self.url(path), timeout_s)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until ``/healthz`` answers 200."""
        self.wait_until(lambda: self.get("/healthz", 2.0)[0] == 200, timeout_s,
                        what="/healthz 200")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/readyz`` answers 200."""
        self.wait_until(lambda: self.get("/readyz", 2.0)[0] == 200, timeout_s,
                        what="/readyz 200")

    def scrape_text(self) -> str:
        """The raw text of ``/metrics`` (which must answer 200)."""
        status, body = self.get("/metrics")
        if status != 200:
            raise AssertionError(f"GET /metrics answered {status}: {body[:500]}")
        return body

    def scrape(self) -> dict[SampleKey, float]:
        """``/metrics`` as {(sample name, frozenset of label pairs): value}."""
        return parse_metrics(self.scrape_text())

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample ``name`` with exactly these labels, None if absent."""
        return self.scrape().get((name, frozenset(labels.items())))

    # waiting and logs

    def wait_until(self, predicate: Callable[[], T | None], timeout_s: float,
                   interval_s: float = 0.2, what: str = "the condition") -> T:
        """Like ``wait_until``, but gives up as soon as the process exits; a failure carries
        the log tail."""
        def exited() -> str | None:
            code = self.returncode
            return None if code is None else f"the process exited with code {code}"

        try:
            return wait_until(predicate, timeout_s, interval_s, what, abort=exited)
        except AssertionError as error:
            raise AssertionError(f"{self}: {error}\n{self.log_tail()}") from None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join([f"----- last {len(tail)} lines of {self.log_path} -----", *tail])

    def __str__(self) -> str:
        state = ("not started" if self.process is None
                 else f"pid {self.process.pid}" + ("" if self.running
                                                   else f", exited {self.returncode}"))
        return f"streamdrift service on :{self.port} ({state})"

    def _process(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("the service was not started")
        return self.process


def parse_metrics(text: str) -> dict[SampleKey, float]:
    """Prometheus text exposition as {(sample name, frozenset of label pairs): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def service_factory(request: pytest.FixtureRequest,
                    tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """``start(config_path, metrics_port, *extra_args, env=None) -> ServiceProcess``, started.

    At teardown every service still running is killed, and the log tails are printed if
    the test failed.
    """
    services: list[ServiceProcess] = []

    def start(config_path: Path, metrics_port: int, *extra_args: str,
              env: Mapping[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(config_path, metrics_port, tmp_path, extra_args, env)
        services.append(service)
        return service.start()

    yield start
    failed = isinstance(request.node, pytest.Item) and _test_failed(request.node)
    for service in services:
        if failed:
            print(service.log_tail())
        if service.running:
            service.kill()


# --------------------------------------------------------------------------------------------
# config and baseline


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``: mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def demo_features() -> list[dict[str, Any]]:
    """The seven features of the synthetic stream (``DEMO_CONFIG_YAML``)."""
    features: list[dict[str, Any]] = yaml.safe_load(DEMO_CONFIG_YAML)["features"]
    return features


def write_service_config(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    group_id: str,
    baseline_path: Path,
    metrics_port: int,
    window_size: int | str = 1000,
    panes: int = 10,
    extra: Mapping[str, Any] | None = None,
    filename: str = "streamdrift.yaml",
) -> Path:
    """Write a service config for the demo features to ``tmp_path/filename``; return its path.

    ``extra`` is deep-merged into the document (new sections are added as given).
    """
    document: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": group_id},
        "features": demo_features(),
        "window": {"size": window_size, "panes": panes},
        "baseline": {"path": str(Path(baseline_path).resolve()), "bins": 20,
                     "max_categories": 50, "smoothing": 0.5},
        "divergence": {"threshold": 0.1,
                       "min_samples": min(100, window_size) if isinstance(window_size, int)
                       else 100},
        "detector": {"method": "adwin"},
        "input": {"max_message_bytes": 1_048_576},
        "metrics": {"port": metrics_port, "bind_address": "127.0.0.1"},
    }
    if extra:
        document = deep_merge(document, extra)
    path = Path(tmp_path) / filename
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def build_demo_baseline(config_path: Path, out_path: Path, n: int = 20_000,
                        seed: int = 1) -> Path:
    """A baseline of ``n`` reference messages of the synthetic stream, built by the CLI;
    the messages are kept next to it (``<out>.reference.jsonl``). Returns ``out_path``."""
    config = load_config(config_path, environ={})
    messages = SyntheticStream(config, seed).reference(n)
    out_path = Path(out_path)
    jsonl = out_path.with_name(out_path.name + ".reference.jsonl")
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    code = cli_main(["baseline", "build", "--config", str(config_path), "--input", str(jsonl),
                     "--output", str(out_path)])
    assert code == 0, f"streamdrift baseline build exited {code}"
    return out_path


# --------------------------------------------------------------------------------------------
# a service on the demo features


FEATURES = ["session_length", "purchases_30d", "age", "discount_rate", "country", "device",
            "plan"]
# Fast ticks so that tests wait for seconds, not minutes.
FAST: dict[str, dict[str, Any]] = {
    "service": {"publish_interval_s": 0.2, "lag_interval_s": 0.5,
                "baseline_watch_interval_s": 0.5},
    "kafka": {"auto_offset_reset": "earliest", "connect_timeout_s": 2},
}
ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture(params=["kafka-python", "confluent"])
def kafka_client(request: pytest.FixtureRequest) -> str:
    """``kafka.client`` of the service under test: a test taking it runs with each client."""
    client: str = request.param
    return client


def setup_service(tmp_path: Path, bootstrap: str, topic: str, window_size: int | str = 20_000,
                  panes: int = 10, extra: Mapping[str, Any] | None = None,
                  group: str = "streamdrift", client: str = "kafka-python"
                  ) -> tuple[Path, int]:
    """A config for the demo features on ``topic`` (group ``{group}-{topic}``), with the
    fast ticks, in ``tmp_path/{group}.yaml``, and the demo baseline beside it (built once
    per test folder). Returns the config's path and its metrics port."""
    port = free_port()
    baseline = tmp_path / "baseline.json"
    document = deep_merge(FAST, extra or {})
    document = deep_merge(document, {"kafka": {"client": client}})
    config = write_service_config(tmp_path, bootstrap, topic, f"{group}-{topic}", baseline,
                                  port, window_size, panes, document,
                                  filename=f"{group}.yaml")
    if not baseline.exists():
        build_demo_baseline(config, baseline)
    return config, port


def demo_messages(config: Path, count: int, offset: int = 0, drifted: tuple[str, ...] = (),
                  drift_from: int = 0) -> list[bytes]:
    """Messages ``offset`` to ``offset + count`` of the demo stream (seed 5), JSON-encoded."""
    stream = SyntheticStream(load_config(config, environ={}), seed=5)
    return [json.dumps(message).encode()
            for message in stream.messages(count, drifted, drift_from, offset=offset)]


def messages_total(service: ServiceProcess) -> float:
    return service.value("streamdrift_messages_total") or 0.0


def wait_counted(service: ServiceProcess, count: int, timeout_s: float = 60.0) -> None:
    service.wait_until(lambda: messages_total(service) >= count, timeout_s,
                       what=f"{count} messages counted")


def counted_at_stop(service: ServiceProcess, run: int | None = None) -> int:
    """``messages`` of the ``stopped`` event of run ``run`` (the last one by default): what
    that run counted in all, read once it can count nothing more."""
    runs = service.log_text().split("---- start #")
    text = runs[-1] if run is None else runs[run]
    found = re.findall(r"event=stopped messages=(\d+)", text)
    assert found, f"no stopped event in run {run or 'last'} of {service}"
    return int(found[-1])


class Trickle:
    """Produces ``payloads`` in chunks of ``chunk`` on a thread, pausing ``pause_s`` between
    them: a stream still running while the test acts on the service. ``stop()`` ends it
    after the chunk in flight and returns how many messages were produced."""

    def __init__(self, bootstrap: str, topic: str, payloads: Sequence[bytes], chunk: int,
                 pause_s: float) -> None:
        self._stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

        def send() -> None:
            try:
                for start in range(0, len(payloads), chunk):
                    if self._stop.is_set():
                        return
                    self.sent += produce(bootstrap, topic, payloads[start:start + chunk])
                    self._stop.wait(pause_s)
            except BaseException as error:  # reported by stop() and join()
                self.error = error

        self._thread = threading.Thread(target=send, name="trickle", daemon=True)

    def start(self) -> Trickle:
        self._thread.start()
        return self

    def join(self, timeout_s: float = 180.0) -> int:
        """Wait until every payload is produced; returns how many were."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the producer thread still runs after {timeout_s:g}s")
        if self.error is not None:
            raise AssertionError(f"producing failed: {self.error!r}") from self.error
        return self.sent

    def stop(self, timeout_s: float = 60.0) -> int:
        self._stop.set()
        return self.join(timeout_s)


def feature_gauges(service: ServiceProcess) -> dict[str, dict[str, float]]:
    """{feature: {metric: value}} of the samples labelled with a feature alone."""
    return gauges_by_feature(service.scrape())


def gauges_by_feature(samples: Mapping[SampleKey, float]) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        feature = dict(labels).get("feature")
        if feature is not None and len(labels) == 1:
            result.setdefault(feature, {})[name] = value
    return result


def shown_baseline_hash(service: ServiceProcess) -> str:
    """The hash of the baseline the published gauges were computed against."""
    for name, labels in service.scrape():
        if name == "streamdrift_baseline_info":
            return dict(labels)["hash"]
    raise AssertionError("no streamdrift_baseline_info")


# The gauges of one feature that a replay of the same window must reproduce.
WINDOW_GAUGES = ("streamdrift_kl_divergence", "streamdrift_js_divergence", "streamdrift_psi",
                 "streamdrift_drift_p_value", "streamdrift_window_samples",
                 "streamdrift_feature_missing_ratio", "streamdrift_feature_drifted")


def replayed_gauges(config: Path, counted: Sequence[Record],
                    refilled: Sequence[Record] = (), baseline: Path | None = None,
                    partitions: int = 1) -> dict[str, dict[str, float]]:
    """The window gauges of an in-process monitor (the config's, on ``baseline`` or the
    config's baseline file) with its window divided between ``partitions``, given
    ``refilled`` back, then ``counted`` as new messages, each in the order given (each
    partition's window is its own: only the order within a partition matters)."""
    loaded = load_config(config, environ={})
    monitor = DriftMonitor(loaded, load_baseline(baseline or loaded.baseline.path))
    monitor.set_partition_count(partitions)
    for records, feed in ((refilled, monitor.refill), (counted, monitor.process_payloads)):
        if records:
            feed([r.value for r in records], [r.timestamp / 1000 for r in records],
                 partition_runs([r.partition for r in records]))

    def number(value: float | None) -> float:
        return math.nan if value is None else float(value)

    return {name: {"streamdrift_kl_divergence": number(f.kl),
                   "streamdrift_js_divergence": number(f.js),
                   "streamdrift_psi": number(f.psi),
                   "streamdrift_drift_p_value": number(f.p_value),
                   "streamdrift_window_samples": float(f.samples),
                   "streamdrift_feature_missing_ratio": number(f.missing_ratio),
                   "streamdrift_feature_drifted": 1.0 if f.drift else 0.0}
            for name, f in monitor.report().features.items()}


def assert_gauges_match_report(scraped: Mapping[str, Mapping[str, float]],
                               report_features: Mapping[str, Mapping[str, Any]]) -> None:
    """A service's window gauges equal a replay report's numbers, feature by feature, to
    1e-9, its drift flags too."""
    for feature in FEATURES:
        gauges, replayed = scraped[feature], report_features[feature]
        assert gauges["streamdrift_window_samples"] == replayed["samples"]
        for metric, key in [("streamdrift_kl_divergence", "kl"),
                            ("streamdrift_js_divergence", "js"),
                            ("streamdrift_psi", "psi"),
                            ("streamdrift_drift_p_value", "p_value")]:
            assert math.isclose(gauges[metric], replayed[key], rel_tol=1e-9, abs_tol=1e-9), \
                (feature, metric, gauges[metric], replayed[key])
        assert gauges["streamdrift_feature_drifted"] == (1.0 if replayed["drift"] else 0.0)


def assert_gauges_equal(actual: Mapping[str, Mapping[str, float]],
                        expected: Mapping[str, Mapping[str, float]]) -> None:
    """Every window gauge of every feature equal, to 1e-9 (NaN equals NaN)."""
    assert set(actual) == set(expected) == set(FEATURES)
    for feature in FEATURES:
        for metric in WINDOW_GAUGES:
            got, want = actual[feature][metric], expected[feature][metric]
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) or (
                math.isnan(got) and math.isnan(want)), (feature, metric, got, want)


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int
                      ) -> dict[int, int]:
    """The group's committed offset of each partition (0 where none is)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, client_id="streamdrift-tests-offsets")
    try:
        return {number: consumer.committed(TopicPartition(topic, number)) or 0
                for number in range(partitions)}
    finally:
        consumer.close(autocommit=False)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             client_id="streamdrift-tests-offsets")
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close(autocommit=False)
