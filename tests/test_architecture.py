"""The core is pure: importing it loads no Kafka client, no Prometheus client, no server."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

CORE = ["streamdrift.config", "streamdrift.decoding", "streamdrift.features",
        "streamdrift.baseline", "streamdrift.sketch", "streamdrift.divergence",
        "streamdrift.monitor", "streamdrift.detectors", "streamdrift.binning",
        "streamdrift.schema", "streamdrift.framing", "streamdrift.formats",
        "streamdrift.values", "streamdrift.avro", "streamdrift.protobuf", "streamdrift.scan",
        "streamdrift.sequential", "streamdrift.cusum_kernel"]
FORBIDDEN = ["kafka", "prometheus_client", "http.server", "socketserver", "confluent_kafka"]


def test_core_modules_import_no_io_adapters():
    script = (
        "import importlib, json, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, check=True)
    loaded = set(json.loads(result.stdout))
    assert "streamdrift.monitor" in loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
