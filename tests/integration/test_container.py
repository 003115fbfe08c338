"""The image and the chart, run for real with podman against the test broker.

``tests/run`` builds the image from deploy/Dockerfile on a local Debian base and exports
``STREAMDRIFT_TEST_IMAGE``; podman reads deploy/local/containers.conf. The containers share
the host's network, so that they reach the broker on 127.0.0.1 as the other tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from streamdrift.cli import main as cli_main
from tests.integration.conftest import (
    FEATURES,
    committed_offsets,
    consume_all,
    demo_messages,
    end_offsets,
    free_port,
    http_get,
    parse_metrics,
    produce,
    setup_service,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "streamdrift"
PARTITIONS = 3


@pytest.fixture(scope="module")
def image() -> str:
    """The image under test; fails (never skips) when there is none."""
    name = os.environ.get("STREAMDRIFT_TEST_IMAGE")
    if not name:
        pytest.fail("STREAMDRIFT_TEST_IMAGE is not set: tests/run builds the image "
                    "(deploy/Dockerfile) and sets it", pytrace=False)
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: tests/run installs it", pytrace=False)
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "deploy" / "local" / "containers.conf"))
    if podman("image", "exists", name, check=False).returncode != 0:
        pytest.fail(f"no image {name}: tests/run builds it", pytrace=False)
    return name


def podman(*args: str, check: bool = True, timeout_s: float = 120
           ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True,
                            timeout=timeout_s, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body[:300]
    return parse_metrics(body)


def _value(port: int, name: str, **labels: str) -> float | None:
    return _metrics(port).get((name, frozenset(labels.items())))


def _container_config(tmp_path: Path, bootstrap: str, topic: str, port: int) -> Path:
    """A folder to mount at /etc/streamdrift: config.yaml (demo features, the test broker,
    the metrics port) and baseline.json (the demo baseline), readable by the image's user."""
    host_config, _ = setup_service(tmp_path, bootstrap, topic, window_size=30_000)
    folder = tmp_path / "etc"
    folder.mkdir()
    document = yaml.safe_load(host_config.read_text())
    document["baseline"]["path"] = "baseline.json"  # resolved against /etc/streamdrift
    document["metrics"] = {"port": port, "bind_address": "127.0.0.1"}
    document["kafka"]["client"] = "confluent"
    (folder / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    shutil.copy(tmp_path / "baseline.json", folder / "baseline.json")
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"streamdrift-test-{uuid.uuid4().hex[:8]}"
    yield name
    podman("rm", "--force", "--time", "0", name, check=False)


def test_the_image_counts_a_stream_like_replay_and_stops_cleanly(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str], image: str,
        container_name: str) -> None:
    topic = topic_factory(partitions=PARTITIONS)
    port = free_port()
    etc = _container_config(tmp_path, bootstrap, topic, port)
    payloads = demo_messages(etc / "config.yaml", 8000, drifted=("age", "device"),
                             drift_from=4000)
    produce(bootstrap, topic, payloads)
    # The image's own command, its config and baseline mounted, a read-only root.
    podman("run", "--detach", "--name", container_name, "--network", "host", "--read-only",
           "--env", f"STREAMDRIFT_METRICS_PORT={port}",
           "--volume", f"{etc / 'config.yaml'}:/etc/streamdrift/config.yaml:ro",
           "--volume", f"{etc / 'baseline.json'}:/etc/streamdrift/baseline.json:ro",
           image)

    def logs() -> str:
        result = podman("logs", container_name, check=False)
        return result.stdout + result.stderr

    try:
        wait_until(lambda: _value(port, "streamdrift_window_messages") == 8000, 90,
                   what="the 8000 messages in the container's window")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{logs()[-3000:]}") from None

    # The gauges equal `streamdrift replay` of the same messages (the window holds them all).
    records = consume_all(bootstrap, topic)
    jsonl = tmp_path / "topic.jsonl"
    jsonl.write_bytes(b"".join((record.value or b"") + b"\n" for record in records))
    report_path = tmp_path / "report.json"
    assert cli_main(["replay", "--config", str(etc / "config.yaml"), "--input", str(jsonl),
                     "--report", str(report_path)]) in (0, 1)
    replayed = json.loads(report_path.read_text())["features"]
    samples = _metrics(port)
    for feature in FEATURES:
        for metric, key in [("streamdrift_kl_divergence", "kl"),
                            ("streamdrift_drift_p_value", "p_value"),
                            ("streamdrift_window_samples", "samples")]:
            got = samples[(metric, frozenset({("feature", feature)}))]
            assert got == pytest.approx(replayed[feature][key], rel=1e-9, abs=1e-12), \
                (feature, metric)
    assert {f for f in FEATURES if replayed[f]["drift"]} == {"age", "device"}

    # Not root: the image's numeric user.
    assert podman("exec", container_name, "id", "-u").stdout.strip() == "10001"
    assert podman("inspect", "--format", "{{.Config.User}}", container_name
                  ).stdout.strip() == "10001:10001"
    # The image's HEALTHCHECK, run the way podman runs it without systemd.
    assert podman("healthcheck", "run", container_name, check=False).returncode == 0

    # podman stop: SIGTERM, then SIGKILL after the grace period (exit code 137). Exit code 0
    # means it stopped by itself, in time, having committed.
    podman("stop", "--time", "30", container_name, timeout_s=60)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", container_name
                  ).stdout.strip() == "0", logs()[-3000:]
    assert "event=stopped messages=8000 committed=True" in logs()
    assert committed_offsets(bootstrap, f"streamdrift-{topic}", topic, PARTITIONS) == \
        end_offsets(bootstrap, topic, PARTITIONS)


def _kube_manifests(values: dict[str, Any], release: str) -> list[dict[str, Any]]:
    """The chart's Deployment and its ConfigMaps: what podman kube play runs."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=release, namespace="default")
    documents = [document for path, text in sorted(rendered.items()) if path.endswith(".yaml")
                 for document in yaml.safe_load_all(text) if document]
    return [d for d in documents if d["kind"] in ("ConfigMap", "Deployment")]


def test_the_chart_runs_under_podman_kube_play(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str], image: str) -> None:
    topic = topic_factory(partitions=PARTITIONS)
    port = free_port()
    etc = _container_config(tmp_path, bootstrap, topic, port)
    config = yaml.safe_load((etc / "config.yaml").read_text())
    release = f"sd{uuid.uuid4().hex[:6]}"
    repository, tag = image.rsplit(":", 1)
    values: dict[str, Any] = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        # The pod shares the host's network to reach the test broker on 127.0.0.1.
        "hostNetwork": True,
        "metricsPort": port,
        "config": {key: config[key] for key in ("kafka", "features", "window", "divergence")},
        "baseline": {"json": (etc / "baseline.json").read_text()},
    }
    manifests = _kube_manifests(values, release)
    (deployment,) = [d for d in manifests if d["kind"] == "Deployment"]
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    path = _write_manifests(manifests, tmp_path / "kube.yaml")
    produce(bootstrap, topic, demo_messages(etc / "config.yaml", 3000, drifted=("age",),
                                            drift_from=1500))
    # podman kube play makes a volume of each ConfigMap, named after it; podman 4.3's kube
    # down leaves them behind.
    volumes = [d["metadata"]["name"] for d in manifests if d["kind"] == "ConfigMap"]
    podman("kube", "play", str(path), timeout_s=180)
    pod = f"{deployment['metadata']['name']}-pod-0"
    container = f"{pod}-streamdrift"
    try:
        # Ready through its own readiness probe's path and port.
        wait_until(lambda: http_get(f"http://127.0.0.1:{probe['port']}{probe['path']}")[0]
                   == 200, 90, what=f"the pod's {probe['path']} to answer 200")
        wait_until(lambda: _value(port, "streamdrift_messages_total") == 3000, 60,
                   what="the pod to count the 3000 messages")
        assert _value(port, "streamdrift_feature_drifted", feature="age") == 1
        podman("pod", "stop", "--time", "30", pod, timeout_s=60)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", container
                      ).stdout.strip() == "0"
        logs = podman("logs", container, check=False)
        assert "committed=True" in logs.stdout + logs.stderr
    except BaseException:
        podman("kube", "down", str(path), check=False)
        podman("volume", "rm", "--force", *volumes, check=False)
        raise
    # podman kube down removes the pod and its containers, and says so by its exit code.
    # (Without systemd it also logs errors about healthcheck timers it cannot remove; they
    # do not change the exit code.)
    pod_id = podman("pod", "inspect", "--format", "{{.Id}}", pod).stdout.strip()
    down = podman("kube", "down", str(path), check=False)
    podman("volume", "rm", "--force", *volumes, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert pod_id in down.stdout.partition("Pods removed:")[2].split(), down.stdout
    assert podman("pod", "exists", pod, check=False).returncode != 0
    assert podman("container", "exists", container, check=False).returncode != 0
    assert committed_offsets(bootstrap, f"streamdrift-{topic}", topic, PARTITIONS) == \
        end_offsets(bootstrap, topic, PARTITIONS)


def _write_manifests(documents: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path
