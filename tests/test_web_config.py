"""metrics.web_config_file: the exporter-toolkit web-config file read at load, and the
metrics server's TLS, client certificates and basic authentication, over real HTTP requests
to the real server on a free port."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

from streamdrift import server as server_module
from streamdrift.config import (
    Config,
    WebConfig,
    WebTLSConfig,
    load_config,
    load_web_config,
)
from streamdrift.errors import ConfigError, StreamdriftError
from streamdrift.server import BasicAuth, MetricsServer
from tests.certificates import Certificates, bcrypt_hash, make_certificates

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return bcrypt_hash(PASSWORD)


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _load(tmp_path: Path, metrics: dict[str, Any], environ: dict[str, str] | None = None
          ) -> Config:
    return load_config(_write(tmp_path / "config.yaml",
                              {"features": [{"name": "x"}], "metrics": metrics}),
                       environ=environ or {})


def _problems(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    return str(raised.value)


# --------------------------------------------------------------------------------------------
# the file


def test_a_web_config_is_read_once_at_load_into_a_frozen_object(
        tmp_path: Path, certificates: Certificates, alice_hash: str):
    folder = tmp_path / "web"
    folder.mkdir()
    for name, source in (("cert.pem", certificates.server.cert),
                         ("key.pem", certificates.server.key),
                         ("clients.pem", certificates.client_ca)):
        (folder / name).write_bytes(source.read_bytes())
    _write(folder / "web.yml", {
        "tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem",
                              "client_ca_file": "clients.pem",
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "min_version": "TLS13"},
        "basic_auth_users": {"alice": alice_hash, "bob": bcrypt_hash("other")},
    })
    config = _load(tmp_path, {"web_config_file": "web/web.yml"})
    web = config.metrics.web_config
    assert config.metrics.web_config_file == tmp_path / "web" / "web.yml"
    assert web is not None
    assert web.path == tmp_path / "web" / "web.yml"
    # Paths in the file resolve against the file's folder, not the config's.
    assert web.tls == WebTLSConfig(cert_file=folder / "cert.pem", key_file=folder / "key.pem",
                                   client_ca_file=folder / "clients.pem",
                                   client_auth_type="RequireAndVerifyClientCert",
                                   min_version="TLS13", max_version="TLS13")
    assert dict(web.basic_auth_users) == {"alice": alice_hash, "bob": web.basic_auth_users["bob"]}
    assert alice_hash not in repr(config)
    with pytest.raises(AttributeError):
        web.tls = None  # type: ignore[misc]


def test_the_environment_names_the_file_like_the_other_keys(
        tmp_path: Path, alice_hash: str):
    _write(tmp_path / "web.yml", {"basic_auth_users": {"alice": alice_hash}})
    config = _load(tmp_path, {}, {"STREAMDRIFT_METRICS_WEB_CONFIG_FILE": "web.yml"})
    assert config.metrics.web_config == WebConfig(tmp_path / "web.yml", None,
                                                  {"alice": alice_hash})
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {}, {"STREAMDRIFT_METRICS_WEB_CONFIG_FILE": "absent.yml"})
    assert str(raised.value).endswith(
        f"metrics.web_config_file {tmp_path / 'absent.yml'}: cannot be read (No such file or "
        "directory) (from STREAMDRIFT_METRICS_WEB_CONFIG_FILE)")


def test_an_empty_file_locks_nothing(tmp_path: Path):
    (tmp_path / "web.yml").write_text("# nothing yet\n")
    assert load_web_config(tmp_path / "web.yml") == WebConfig(tmp_path / "web.yml")
    (tmp_path / "web.yml").write_text("tls_server_config: {}\nbasic_auth_users: {}\n")
    assert load_web_config(tmp_path / "web.yml") == WebConfig(tmp_path / "web.yml")


def test_web_config_file_and_tls_certfile_are_not_both_set(
        tmp_path: Path, certificates: Certificates):
    (tmp_path / "web.yml").write_text("")
    with pytest.raises(ConfigError, match=r"metrics\.tls_certfile cannot be set together with "
                                          r"metrics\.web_config_file"):
        _load(tmp_path, {"web_config_file": "web.yml",
                         "tls_certfile": str(certificates.server.cert),
                         "tls_keyfile": str(certificates.server.key)})


@pytest.mark.parametrize(("document", "problem"), [
    ({"basic_auth_user": {"alice": "x"}},
     "basic_auth_user is not a known key (known: tls_server_config, basic_auth_users)"),
    ({"rate_limit": {"interval": "1s", "burst": 5}},
     "rate_limit is not supported by streamdrift"),
    ({"http_server_config": {"http2": False}},
     "http_server_config is not supported by streamdrift"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}},
     "tls_server_config.cipher_suites is not supported by streamdrift"),
    ({"tls_server_config": {"cert": "-----BEGIN CERTIFICATE-----", "key_file": "server.key"}},
     "tls_server_config.cert is not supported by streamdrift (name a file in "
     "tls_server_config.cert_file)"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "client_auth_type": "RequireAnyClientCert",
                            "client_ca_file": "client-ca.pem"}},
     "tls_server_config.client_auth_type RequireAnyClientCert is not supported"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "client_auth_type": "Always"}},
     "tls_server_config.client_auth_type must be one of NoClientCert, "
     "VerifyClientCertIfGiven, RequireAndVerifyClientCert (got 'Always')"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "client_auth_type": "RequireAndVerifyClientCert"}},
     "tls_server_config.client_ca_file is required with client_auth_type "
     "RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "client_ca_file": "client-ca.pem"}},
     "tls_server_config.client_ca_file is set but client_auth_type is NoClientCert"),
    ({"tls_server_config": {"key_file": "server.key"}},
     "tls_server_config.cert_file is required"),
    ({"tls_server_config": {"cert_file": "absent.pem", "key_file": "server.key"}},
     "tls_server_config.cert_file {folder}/absent.pem is not a readable file"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "client.key"}},
     "tls_server_config: cannot load cert_file {folder}/server.pem, key_file "
     "{folder}/client.key (KEY_VALUES_MISMATCH)"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "min_version": "TLS13", "max_version": "TLS12"}},
     "tls_server_config.min_version TLS13 is above max_version TLS12"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.key",
                            "min_version": "TLS1.2"}},
     "tls_server_config.min_version must be one of TLS10, TLS11, TLS12, TLS13 "
     "(got 'TLS1.2')"),
    ({"tls_server_config": ["server.pem"]}, "tls_server_config must be a mapping"),
    ({"basic_auth_users": ["alice"]}, "basic_auth_users must be a mapping of user names"),
    ({"basic_auth_users": {"al:ice": "$2y$10$" + "." * 53}},
     "basic_auth_users.al:ice cannot log in: a user name with ':'"),
    # A bcrypt hash with a salt bcrypt refuses ("Invalid salt"): its 22nd character must
    # be one of . O e u.
    ({"basic_auth_users": {"alice": "$2y$10$" + "a" * 53}},
     "basic_auth_users.alice must be a bcrypt hash"),
    ({"basic_auth_users": {"alice": "$2y$03$" + "." * 53}},
     "basic_auth_users.alice must be a bcrypt hash"),
    (["tls_server_config"], "must be a mapping of tls_server_config and basic_auth_users"),
])
def test_every_problem_names_the_file_and_the_key(
        tmp_path: Path, certificates: Certificates, document: object, problem: str):
    folder = certificates.server.cert.parent
    path = _write(folder / f"web-{time.monotonic_ns()}.yml", document)
    message = _problems(path)
    assert message.startswith(f"invalid web config {path}:")
    assert problem.format(folder=folder) in message
    # And from the service's config, every line names the key and the file.
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"web_config_file": str(path)})
    assert f"metrics.web_config_file {path}: {problem.format(folder=folder)}" in str(
        raised.value)


def test_a_password_where_its_hash_belongs_is_never_echoed(tmp_path: Path):
    sentinel = "sentinel-Pa55word-8d1f"
    path = _write(tmp_path / "web.yml", {
        "basic_auth_users": {"alice": sentinel},
        "basic_auth_usres": {"bob": sentinel},  # a typo: an unknown key, value and all
        "tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem", "key": sentinel},
    })
    message = _problems(path)
    assert "basic_auth_users.alice must be a bcrypt hash" in message
    assert "basic_auth_usres is not a known key" in message
    assert "tls_server_config.key is not supported" in message
    assert sentinel not in message
    # Nor in the service's config, under a misspelt key or in a misspelt section.
    with pytest.raises(ConfigError) as raised:
        load_config(_write(tmp_path / "config.yaml", {
            "features": [{"name": "x"}], "kafka": {"sasl_pasword": sentinel},
            "kafak": {"sasl_password": sentinel}}), environ={})
    assert "kafka.sasl_pasword is not a known key (value hidden)" in str(raised.value)
    assert "kafak is not a known key" in str(raised.value)
    assert sentinel not in str(raised.value)


def test_yaml_mistakes_and_unreadable_files_name_the_file(tmp_path: Path):
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  alice: [\n")
    assert f"invalid web config {tmp_path / 'web.yml'}: is not valid YAML (3:1: " in _problems(
        tmp_path / "web.yml")
    assert "cannot be read (No such file or directory)" in _problems(tmp_path / "absent.yml")


# --------------------------------------------------------------------------------------------
# the server


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("things", "things counted", registry=registry).inc(3)
    return registry


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[Any]:
    """``serve(web_config) -> base URL``: a metrics server on a free port, closed after."""
    servers: list[MetricsServer] = []

    def start(web_config: WebConfig, ready: bool = True) -> str:
        server = MetricsServer(registry, lambda: (ready, "ready" if ready else "not yet"),
                               "127.0.0.1", 0, web_config=web_config)
        server.start()
        servers.append(server)
        scheme = "https" if web_config.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.close()


def _basic(user: str, password: str | bytes) -> str:
    raw = user.encode() + b":" + (password.encode() if isinstance(password, str) else password)
    return "Basic " + base64.b64encode(raw).decode()


def _get(url: str, authorization: str | None = None, context: ssl.SSLContext | None = None,
         timeout_s: float = 5.0) -> tuple[int, str, str | None]:
    """(status, body, WWW-Authenticate header) of a GET; ``timeout_s`` bounds the connection
    and each read."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, response.read().decode(), None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("WWW-Authenticate")


def _client_context(certificates: Certificates, client: str | None = None) -> ssl.SSLContext:
    """Trusts the server's CA and checks its name; presents a client certificate if asked."""
    context = ssl.create_default_context(cafile=str(certificates.server_ca))
    if client is not None:
        pair = getattr(certificates, client)
        context.load_cert_chain(pair.cert, pair.key)
    return context


def _refused(url: str, context: ssl.SSLContext) -> bool:
    try:
        _get(url, context=context)
    except (OSError, http.client.HTTPException):
        return True
    return False


def test_basic_auth_lets_in_the_right_password_only(serve: Any, tmp_path: Path,
                                                    alice_hash: str):
    base = serve(WebConfig(tmp_path / "web.yml", None, {"alice": alice_hash}))
    status, body, _ = _get(f"{base}/metrics", _basic("alice", PASSWORD))
    assert status == 200
    assert "things_total 3.0" in body
    for authorization in (None, _basic("alice", "wrong"), _basic("mallory", PASSWORD),
                          _basic("alice", "x" * 100), "Basic !!!", "Bearer abc",
                          "Basic " + base64.b64encode(b"alice").decode()):
        status, body, challenge = _get(f"{base}/metrics", authorization)
        assert (status, body) == (401, "unauthorized\n"), authorization
        assert challenge is not None
        assert challenge.startswith("Basic"), authorization
        assert "things_total" not in body
    # Any other path asks for credentials too, before saying it does not exist.
    assert _get(f"{base}/nothing")[0] == 401
    assert _get(f"{base}/nothing", _basic("alice", PASSWORD))[0] == 404


def test_the_probes_answer_without_credentials(serve: Any, tmp_path: Path, alice_hash: str):
    base = serve(WebConfig(tmp_path / "web.yml", None, {"alice": alice_hash}), ready=False)
    assert _get(f"{base}/healthz")[:2] == (200, "ok\n")
    assert _get(f"{base}/readyz")[:2] == (503, "not yet\n")
    assert _get(f"{base}/healthz?verbose=1")[0] == 200


def test_a_successful_check_is_remembered_without_the_password(alice_hash: str):
    auth = BasicAuth({"alice": alice_hash})
    assert auth.allows(_basic("alice", PASSWORD))
    assert auth.allows(_basic("alice", PASSWORD))
    assert auth.bcrypt_checks == 1
    # Failures are checked every time: nothing an attacker sends fills the memory.
    assert not auth.allows(_basic("alice", "wrong"))
    assert not auth.allows(_basic("alice", "wrong"))
    assert not auth.allows(_basic("mallory", PASSWORD))
    assert auth.bcrypt_checks == 4
    assert len(auth._verified) == 1
    secret = PASSWORD.encode()
    kept = [bytes(value) if isinstance(value, bytes | bytearray) else repr(value).encode()
            for value in (*vars(auth).values(), *auth._verified)]
    assert not [value for value in kept if secret in value]
    assert PASSWORD not in repr(auth)


def test_an_unknown_user_costs_a_bcrypt_check_too():
    # The same work whether or not the user exists: a timing does not tell user names.
    auth = BasicAuth({"alice": bcrypt_hash(PASSWORD, cost=4), "bob": bcrypt_hash("b", cost=6)})
    assert not auth.allows(_basic("mallory", PASSWORD))
    assert auth.bcrypt_checks == 1
    assert auth._decoy == auth._hashes["bob"]  # the costliest hash


def test_concurrent_scrapes_with_the_right_password_all_pass(alice_hash: str):
    auth = BasicAuth({"alice": alice_hash})
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(
        auth.allows(_basic("alice", PASSWORD)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8


def test_tls_with_the_web_config_s_certificate(serve: Any, tmp_path: Path,
                                               certificates: Certificates, alice_hash: str):
    tls = WebTLSConfig(certificates.server.cert, certificates.server.key)
    base = serve(WebConfig(tmp_path / "web.yml", tls, {"alice": alice_hash}))
    context = _client_context(certificates)
    status, body, _ = _get(f"{base}/metrics", _basic("alice", PASSWORD), context)
    assert status == 200
    assert "things_total" in body
    assert _get(f"{base}/metrics", _basic("alice", "wrong"), context)[0] == 401
    assert _get(f"{base}/healthz", context=context)[0] == 200
    # Plain HTTP on the TLS port gets no metrics.
    assert _refused(base.replace("https:", "http:") + "/healthz", context)


def test_a_client_that_never_finishes_its_handshake_holds_up_no_one(
        serve: Any, tmp_path: Path, certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch):
    # The silent client would hold a server that shakes hands on its accepting thread for
    # an hour: the scrape below, which gives up after 30 s, is answered only if the
    # handshakes run on threads of their own.
    monkeypatch.setattr(server_module, "CLIENT_TIMEOUT_S", 3600.0)
    tls = WebTLSConfig(certificates.server.cert, certificates.server.key)
    base = serve(WebConfig(tmp_path / "web.yml", tls))
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):  # connects, says nothing
        status, body, _ = _get(f"{base}/healthz", context=_client_context(certificates),
                               timeout_s=30.0)
    assert (status, body) == (200, "ok\n")


def test_a_client_certificate_is_required_when_configured(
        serve: Any, tmp_path: Path, certificates: Certificates):
    tls = WebTLSConfig(certificates.server.cert, certificates.server.key,
                       client_ca_file=certificates.client_ca,
                       client_auth_type="RequireAndVerifyClientCert")
    base = serve(WebConfig(tmp_path / "web.yml", tls))
    status, body, _ = _get(f"{base}/metrics", context=_client_context(certificates, "client"))
    assert status == 200
    assert "things_total" in body
    assert _refused(f"{base}/metrics", _client_context(certificates))
    assert _refused(f"{base}/metrics", _client_context(certificates, "stranger"))
    # The server goes on serving after the refusals.
    assert _get(f"{base}/healthz", context=_client_context(certificates, "client"))[0] == 200


def test_a_client_certificate_if_given_must_verify(
        serve: Any, tmp_path: Path, certificates: Certificates):
    tls = WebTLSConfig(certificates.server.cert, certificates.server.key,
                       client_ca_file=certificates.client_ca,
                       client_auth_type="VerifyClientCertIfGiven")
    base = serve(WebConfig(tmp_path / "web.yml", tls))
    assert _get(f"{base}/metrics", context=_client_context(certificates))[0] == 200
    assert _get(f"{base}/metrics", context=_client_context(certificates, "client"))[0] == 200
    assert _refused(f"{base}/metrics", _client_context(certificates, "stranger"))


def test_files_that_changed_since_load_are_named_at_start(
        tmp_path: Path, registry: CollectorRegistry, certificates: Certificates):
    tls = WebTLSConfig(tmp_path / "gone.pem", certificates.server.key)
    with pytest.raises(StreamdriftError, match=r"metrics\.web_config_file .*web\.yml: "
                                               r"tls_server_config: cannot load its files"):
        MetricsServer(registry, lambda: (True, "ready"), "127.0.0.1", 0,
                      web_config=WebConfig(tmp_path / "web.yml", tls))
