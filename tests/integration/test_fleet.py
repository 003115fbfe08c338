"""A fleet on a normal day of a Kubernetes deployment: three replicas on a topic of twelve
partitions fed at a fixed rate, through a rolling restart, a kill -9, a broker restart, and
scaling from three replicas to two and back. Afterwards every message is counted once
across the fleet (its counters and its committed offsets both say so), and after each
disturbance settles the fleet-wide KL recording rule, on a real Prometheus, equals the KL
that the same rule gives for one consumer of the whole topic, on a second Prometheus.

The test runs its own broker (deploy/local/kafka on free ports): it restarts it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streamdrift.rules import RuleParameters, render_rules
from streamdrift.service import EXIT_CLIENT_FATAL
from tests.integration.conftest import (
    REPO,
    ServiceProcess,
    build_demo_baseline,
    demo_messages,
    free_port,
    http_get,
    wait_until,
    write_service_config,
)
from tests.integration.test_alerting import Server, _binary

PARTITIONS = 12
RATE_PER_S = 600
# Long against the replicas' and the single consumer's difference in read time (a few
# tenths of a second at 0.2 s publish ticks): the two windows hold the same messages but
# for their edges.
FLEET_WINDOW_S = 40
# The fleet's KL within 1 % of one consumer's; for a feature whose KL is at its noise level
# (no drift) 1 % of the threshold instead: a relative error of a number near zero is noise.
RELATIVE_TOLERANCE = 0.01
THRESHOLD = 0.1
DRIFTED = ("session_length", "device")


@dataclass
class Broker:
    """A broker of this test's own, started and stopped by the project's script."""

    port: int
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, command: str) -> None:
        result = subprocess.run([str(REPO / "deploy" / "local" / "kafka"), command],
                                env=self.env, capture_output=True, text=True, timeout=180,
                                check=False)
        if result.returncode != 0:
            pytest.fail(f"deploy/local/kafka {command} failed ({result.returncode}):\n"
                        f"{result.stdout}\n{result.stderr}", pytrace=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    port, controller = free_port(), free_port()
    data_dir = tmp_path / "kafka"
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller),
           "KAFKA_DATA_DIR": str(data_dir),
           "KAFKA_EXTRA_PROPERTIES": "group.initial.rebalance.delay.ms=0"}
    own = Broker(port, data_dir, env)
    own.run("start")
    try:
        yield own
    finally:
        own.run("stop")


class Feeder:
    """Produces the demo stream, drifted, at a fixed rate on a thread, keyed at random so
    that every partition gets its share; rides out a broker restart (the producer retries).
    """

    def __init__(self, bootstrap: str, topic: str, payloads: list[bytes]) -> None:
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                       retries=1_000_000, delivery_timeout_ms=300_000,
                                       request_timeout_ms=10_000, max_block_ms=120_000)
        self._topic, self._payloads = topic, payloads
        self._stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, name="feeder", daemon=True)

    def _send(self) -> None:
        tick_s, started = 0.05, time.monotonic()
        per_tick = max(1, int(RATE_PER_S * tick_s))
        try:
            while not self._stop.is_set():
                for _ in range(per_tick):
                    payload = self._payloads[self.sent % len(self._payloads)]
                    self._producer.send(self._topic, payload,
                                        key=f"k{self.sent}".encode())
                    self.sent += 1
                # A fixed rate: sleep to the next tick of the clock, not a tick after this one.
                ticks = self.sent // per_tick
                self._stop.wait(max(0.0, started + ticks * tick_s - time.monotonic()))
            self._producer.flush(timeout=120)
        except BaseException as error:  # reported by stop()
            self.error = error

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(180)
        self._producer.close(timeout=30)
        assert not self._thread.is_alive(), "the feeder did not stop"
        assert self.error is None, f"producing failed: {self.error!r}"


class Replica:
    """One replica slot of the fleet: its config and metrics port stay, its processes come
    and go. What each process counted in all is kept: the ``stopped`` event after SIGTERM,
    the last published counter before kill -9."""

    def __init__(self, name: str, config: Path, port: int, log_dir: Path) -> None:
        self.name = name
        self.process = ServiceProcess(config, port, log_dir, name=name)
        self.counted: list[int] = []
        self.fatal_restarts = 0

    def start(self) -> None:
        self.process.start()
        self.process.wait_healthy(60)

    def supervise(self) -> None:
        """What Kubernetes does for a pod whose service exited on a fatal client error
        (code 75): start it again. Its count is what it last published."""
        if self.process.process is None or self.process.returncode != EXIT_CLIENT_FATAL:
            return
        found = re.findall(r"event=kafka_fatal .*published_messages=(\d+)",
                           self.process.log_text().split("---- start #")[-1])
        assert found, self.process.log_tail()
        self.counted.append(int(found[-1]))
        self.fatal_restarts += 1
        self.start()

    def stop(self) -> None:
        self.supervise()
        assert self.process.terminate(60) == 0, self.process.log_tail()
        found = re.findall(r"event=stopped messages=(\d+)",
                           self.process.log_text().split("---- start #")[-1])
        assert found, self.process.log_tail()
        self.counted.append(int(found[-1]))

    def kill_after_a_publish(self) -> None:
        """kill -9 right after its counters were published: the counters follow the
        commits, so the value seen is what it counted and committed (the next publish,
        with its commit, is a publish interval away)."""
        self.supervise()
        process = self.process
        seen = process.value("streamdrift_messages_total")

        def changed() -> float | None:
            value = process.value("streamdrift_messages_total")
            return value if value is not None and value != seen else None

        last = wait_until(changed, 30, interval_s=0.01, what=f"{self.name} publishing")
        process.kill()
        self.counted.append(int(last))

    def wait_counting(self, after: str) -> None:
        """Its counter moves within a minute (the feed never stops), once it has been
        started again if it exits on a fatal client error meanwhile; if not, the stacks of
        its threads go to its log (SIGUSR1) before the test fails. (After a broker restart
        a static member whose session expired meanwhile rejoins in a new rebalance, which
        waits for the others; its revocation commit first waits for a coordinator: tens of
        seconds in all.)"""

        def counter() -> float | None:
            try:
                return self.process.value("streamdrift_messages_total")
            except OSError:  # exiting
                return None

        for _ in range(3):
            self.supervise()
            seen = counter()

            def moved_or_exited(seen: float | None = seen) -> str | None:
                if not self.process.running:
                    return "exited"
                return "moved" if counter() not in (seen, None) else None

            try:
                outcome = wait_until(moved_or_exited, 60, interval_s=0.2,
                                     what=f"{self.name} counting after {after}")
            except AssertionError:
                self.process.send_signal(signal.SIGUSR1)
                # The stacks end with the thread that handled the signal ("Current thread").
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: "Current thread" in self.process.log_text(), 10,
                               interval_s=0.1, what=f"{self.name}'s thread stacks")
                raise AssertionError(f"{self.name} stopped counting after {after}:\n"
                                     f"{self.process.log_tail(200)}") from None
            if outcome == "moved":
                return
            if self.process.returncode != EXIT_CLIENT_FATAL:
                raise AssertionError(
                    f"{self.name} exited with code {self.process.returncode} after {after}:\n"
                    f"{self.process.log_tail(200)}")
        raise AssertionError(f"{self.name} kept exiting after {after}:\n"
                             f"{self.process.log_tail(200)}")

    @property
    def assigned(self) -> int:
        self.supervise()
        if not self.process.running:
            return 0
        try:
            return int(self.process.value("streamdrift_assigned_partitions") or 0)
        except OSError:
            return 0


class Prometheus:
    def __init__(self, tmp_path: Path, name: str, ports: list[int], rules: Path) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(rules)],
                  "scrape_configs": [{"job_name": "streamdrift", "static_configs": [
                      {"targets": [f"127.0.0.1:{port}" for port in ports]}]}]}
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.server = Server([
            _binary("prometheus"), f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / (name + '-data')}",
            f"--web.listen-address=127.0.0.1:{self.port}"], tmp_path / f"{name}.log")

    def kl(self, at: float) -> dict[str, float]:
        query = urllib.parse.urlencode({"query": f"streamdrift:kl_divergence:fleet"
                                                 f"{FLEET_WINDOW_S}s", "time": f"{at:.3f}"})
        status, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{query}")
        assert status == 200, body[:300]
        return {sample["metric"]["feature"]: float(sample["value"][1])
                for sample in json.loads(body)["data"]["result"]}


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0
                for p in range(PARTITIONS)}
    finally:
        consumer.close(autocommit=False)


@pytest.mark.timeout(900)
def test_a_fleet_counts_every_message_once_and_agrees_with_one_consumer(
        tmp_path: Path, broker: Broker, kafka_client: str) -> None:
    topic = "fleet"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    baseline = tmp_path / "baseline.json"
    service = {"publish_interval_s": 0.2, "commit_interval_s": 0.2, "lag_interval_s": 1.0}
    kafka = {"auto_offset_reset": "earliest", "connect_timeout_s": 2, "client": kafka_client}

    def config(name: str, group: str, port: int, static: bool) -> Path:
        # The replicas are static members, as the Helm chart's StatefulSet makes them: a
        # restart within the session timeout, or a broker restart, gives each its own
        # partitions back (no offsets handed over uncommitted).
        member = {"group_instance_id": name} if static else {}
        return write_service_config(tmp_path, broker.bootstrap, topic, group, baseline, port,
                                    window_size=1200, panes=10,
                                    extra={"service": service, "kafka": {**kafka, **member}},
                                    filename=f"{name}.yaml")

    ports = [free_port() for _ in range(3)]
    replicas = [Replica(f"replica{i}", config(f"replica{i}", "fleet", port, static=True),
                        port, tmp_path)
                for i, port in enumerate(ports)]
    solo_port = free_port()
    solo = Replica("solo", config("solo", "solo", solo_port, static=False), solo_port,
                   tmp_path)
    build_demo_baseline(replicas[0].process.config_path, baseline)
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(RuleParameters(fleet_window=f"{FLEET_WINDOW_S}s")))
    fleet_prometheus = Prometheus(tmp_path, "prometheus-fleet", ports, rules)
    solo_prometheus = Prometheus(tmp_path, "prometheus-solo", [solo_port], rules)
    payloads = demo_messages(replicas[0].process.config_path, 20_000, drifted=DRIFTED)
    feeder = Feeder(broker.bootstrap, topic, payloads)
    live = list(replicas)
    checks: list[str] = []

    def settled() -> bool:
        return sum(replica.assigned for replica in live) == PARTITIONS and solo.assigned == \
            PARTITIONS

    def agree_at(at: float, after: str) -> None:
        """Every feature's fleet KL at evaluation time ``at`` within tolerance of one
        consumer's, which sees the drift; else an AssertionError saying what differs."""
        fleet, one = fleet_prometheus.kl(at), solo_prometheus.kl(at)
        assert one, f"after {after}, at {at:.1f}: no KL from one consumer (fleet: {fleet})"
        assert set(fleet) == set(one), (
            f"after {after}, at {at:.1f}: features {sorted(fleet)} in the fleet, "
            f"{sorted(one)} for one consumer")
        for feature, expected in one.items():
            tolerance = RELATIVE_TOLERANCE * max(expected, THRESHOLD)
            assert abs(fleet[feature] - expected) <= tolerance, (
                f"after {after}, at {at:.1f}: {feature} fleet KL {fleet[feature]:.5f}, "
                f"one consumer's {expected:.5f}")
        assert all(one[name] > THRESHOLD for name in DRIFTED), (
            f"after {after}, at {at:.1f}: one consumer's KL {one}, no drift in {DRIFTED}")

    def fleet_agrees(after: str) -> None:
        """Once the disturbance has left the fleet window: at five evaluation times two
        seconds apart, every feature's fleet KL within tolerance of one consumer's, with
        either client. Polled over the latest five such times until they all agree; after a
        generous deadline the test fails with the last difference seen."""
        wait_until(settled, 120, interval_s=0.5, what=f"every partition held after {after}")
        for replica in [*live, solo]:
            replica.wait_counting(after)
        # Once all of them count and commit again their gauges are current: the partitions
        # seen held above can be those of before a rebalance that was still going on.
        wait_until(settled, 120, interval_s=0.5, what=f"every partition held after {after}")
        # The first evaluation time whose fleet window holds nothing from before this point
        # (with two seconds for the last scrape and rule evaluation).
        clear_from = time.time() + FLEET_WINDOW_S + 2

        def five_agree() -> bool:
            times = [time.time() - 2 * k for k in range(5, 0, -1)]
            if times[0] < clear_from:
                return False  # the disturbance is still in the fleet window
            for at in times:
                agree_at(at, after)
            return True

        wait_until(five_agree, FLEET_WINDOW_S + 120, interval_s=1.0,
                   what=f"the fleet KL to agree with one consumer's after {after}")
        checks.append(after)

    try:
        feeder.start()
        solo.start()
        for replica in replicas:
            replica.start()
        fleet_agrees("the start")

        for replica in replicas:  # a rolling restart
            replica.stop()
            replica.start()
            wait_until(lambda back=replica: back.assigned > 0, 120,  # type: ignore[misc]
                       interval_s=0.5, what=f"{replica.name} back with partitions")
        fleet_agrees("a rolling restart")

        replicas[1].kill_after_a_publish()
        replicas[1].start()
        fleet_agrees("a kill -9")

        broker.run("stop")
        time.sleep(3)
        broker.run("start")
        fleet_agrees("a broker restart")

        replicas[2].stop()  # three replicas to two
        live.remove(replicas[2])
        fleet_agrees("scaling to two replicas")

        replicas[2].start()  # and back to three
        live.append(replicas[2])
        fleet_agrees("scaling back to three replicas")

        feeder.stop()
        ends = _end_offsets(broker.bootstrap, topic)
        produced = sum(ends.values())
        assert produced == feeder.sent

        def caught_up() -> bool:
            return _committed(broker.bootstrap, topic, "fleet") == ends

        wait_until(caught_up, 120, interval_s=1, what="the fleet committing every offset")
        for replica in live:
            replica.stop()
        solo.stop()
    except BaseException:
        for process in [*(r.process for r in replicas), solo.process]:
            print(process.log_tail(30))
        print(fleet_prometheus.server.tail())
        raise
    finally:
        feeder._stop.set()
        for process in [*(r.process for r in replicas), solo.process]:
            if process.running:
                process.kill()
        fleet_prometheus.server.stop()
        solo_prometheus.server.stop()

    logs = "".join(replica.process.log_text() for replica in replicas)
    handed_over = sum(int(n) for n in re.findall(
        r"event=revoked_offsets_not_committed .*messages=(\d+)", logs))
    counted = sum(sum(replica.counted) for replica in replicas)
    print(f"{kafka_client}: produced {produced}, the fleet counted {counted} over "
          f"{sum(len(r.counted) for r in replicas)} processes "
          f"({sum(r.fatal_restarts for r in replicas)} started again after a fatal client "
          f"error), handed over uncommitted {handed_over}, one consumer counted "
          f"{sum(solo.counted)}; checks: {checks}")
    assert _committed(broker.bootstrap, topic, "fleet") == ends
    assert counted - handed_over == produced
    if kafka_client == "confluent":
        assert handed_over == 0
    assert sum(solo.counted) == produced
