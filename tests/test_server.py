from __future__ import annotations

import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from streamdrift.errors import StreamdriftError
from streamdrift.server import MetricsServer


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("things", "things counted", registry=registry).inc(3)
    return registry


def test_metrics_health_and_readiness(registry: CollectorRegistry):
    readiness = {"value": (False, "not connected to Kafka")}
    server = MetricsServer(registry, lambda: readiness["value"], "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert "things_total 3.0" in body
        assert _get(f"{base}/healthz") == (200, "ok\n")
        assert _get(f"{base}/readyz") == (503, "not connected to Kafka\n")
        readiness["value"] = (True, "ready")
        assert _get(f"{base}/readyz") == (200, "ready\n")
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        server.close()


def test_tls(tmp_path: Path, registry: CollectorRegistry):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = MetricsServer(registry, lambda: (True, "ready"), "127.0.0.1", 0, cert, key)
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        status, body = _get(f"https://127.0.0.1:{server.port}/metrics", context)
        assert status == 200
        assert "things_total" in body
    finally:
        server.close()


def test_a_certificate_that_cannot_be_loaded_is_named(tmp_path: Path,
                                                     registry: CollectorRegistry):
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    for certificate in (tmp_path / "absent.pem", tmp_path / "cert.pem"):
        with pytest.raises(StreamdriftError, match=r"metrics.tls_certfile .* cannot load"):
            MetricsServer(registry, lambda: (True, "ready"), "127.0.0.1", 0, certificate,
                          tmp_path / "key.pem")
