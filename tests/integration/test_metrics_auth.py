"""A locked /metrics end to end: streamdrift run with a web-config file (TLS, a required
client certificate, basic auth), scraped by the real Prometheus with the matching
basic_auth and tls_config, and by jobs that get something wrong."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.certificates import bcrypt_hash, make_certificates
from tests.integration.conftest import (
    ServiceProcess,
    demo_messages,
    free_port,
    http_get,
    produce,
    setup_service,
    wait_until,
)
from tests.integration.test_alerting import Server, _binary, _query

USER, PASSWORD = "prometheus", "scrape-me-7c1e"


def _https_get(url: str, context: ssl.SSLContext, user: str | None = None,
               password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user is not None and password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def _targets(prometheus: str) -> dict[str, dict[str, Any]]:
    """The active targets by job."""
    status, body = http_get(f"{prometheus}/api/v1/targets")
    assert status == 200, body[:500]
    targets = json.loads(body)["data"]["activeTargets"]
    return {target["labels"]["job"]: target for target in targets}


def test_prometheus_scrapes_a_locked_service_with_the_right_credentials_only(
        tmp_path: Path, bootstrap: str, topic_factory: Callable[..., str],
        service_factory: Callable[..., ServiceProcess]) -> None:
    pki = make_certificates(tmp_path / "pki")
    # The web-config file beside its certificates, named relative to its own folder.
    (tmp_path / "pki" / "web-config.yml").write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                              "client_ca_file": "client-ca.pem",
                              "client_auth_type": "RequireAndVerifyClientCert"},
        "basic_auth_users": {USER: bcrypt_hash(PASSWORD, cost=10)},
    }))
    topic = topic_factory(partitions=1)
    config, port = setup_service(tmp_path, bootstrap, topic, window_size=1000, extra={
        "metrics": {"web_config_file": "pki/web-config.yml"}})
    service = service_factory(config, port)
    client = ssl.create_default_context(cafile=str(pki.server_ca))
    client.load_cert_chain(pki.client.cert, pki.client.key)
    base = f"https://127.0.0.1:{port}"
    service.wait_until(lambda: _https_get(f"{base}/healthz", client)[0] == 200, 30,
                       what="/healthz over TLS with a client certificate")
    produce(bootstrap, topic, demo_messages(config, 500))
    # Counted: a client with the password sees it.
    service.wait_until(lambda: "streamdrift_messages_total 500.0" in _https_get(
        f"{base}/metrics", client, USER, PASSWORD)[1], 60, what="500 messages on /metrics")
    assert _https_get(f"{base}/metrics", client)[0] == 401

    tls = {"ca_file": str(pki.server_ca), "server_name": "localhost",
           "cert_file": str(pki.client.cert), "key_file": str(pki.client.key)}
    jobs = {
        "streamdrift": {"basic_auth": {"username": USER, "password": PASSWORD},
                        "tls_config": tls},
        "wrong-password": {"basic_auth": {"username": USER, "password": "guess"},
                           "tls_config": tls},
        "no-client-certificate": {"basic_auth": {"username": USER, "password": PASSWORD},
                                  "tls_config": {"ca_file": str(pki.server_ca),
                                                 "server_name": "localhost"}},
    }
    prometheus_port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": job, "scheme": "https", **settings,
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                           for job, settings in jobs.items()],
    }))
    prometheus = Server([
        _binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ], tmp_path / "prometheus.log")
    url = f"http://127.0.0.1:{prometheus_port}"
    try:
        wait_until(lambda: all(_targets(url).get(job, {}).get("health") in ("up", "down")
                               for job in jobs), 60, interval_s=0.5,
                   what="a scrape of every job")
        assert _query(url, 'up{job="streamdrift"}')["data"]["result"][0]["value"][1] == "1"
        series = wait_until(
            lambda: _query(url, 'streamdrift_messages_total{job="streamdrift"}')["data"]
            ["result"], 30, what="streamdrift_messages_total in Prometheus")
        assert series[0]["value"][1] == "500"
        for job in ("wrong-password", "no-client-certificate"):
            assert _query(url, f'up{{job="{job}"}}')["data"]["result"][0]["value"][1] == "0"
            assert not _query(url, f'streamdrift_messages_total{{job="{job}"}}')["data"][
                "result"]
        targets = _targets(url)
        assert "401 Unauthorized" in targets["wrong-password"]["lastError"]
        assert targets["no-client-certificate"]["lastError"]
    except BaseException:
        print(prometheus.tail())
        raise
    finally:
        prometheus.stop()
