"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for probes.

- ``/healthz``: 200 while the process serves requests (a liveness probe: restart me if not).
- ``/readyz``: 200 when connected to Kafka, holding partitions and done refilling the
  window; 503 with the reason otherwise (a readiness probe: don't trust my gauges yet).

With a web-config file (``metrics.web_config_file``) the server speaks TLS, may require a
client certificate, and asks for basic authentication on every path but the two probes:
a kubelet cannot send credentials without writing them into the pod spec, and a probe
answers nothing but "up" or "not ready, and why".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamdrift.config import WebConfig
from streamdrift.errors import StreamdriftError

ReadinessCheck = Callable[[], tuple[bool, str]]

# Paths answered without credentials: the probes of a kubelet or a container runtime.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# A client gets this long to finish the TLS handshake and then to send each part of its
# request; the server thread that waits on it is its own, so a slow client holds up no one.
CLIENT_TIMEOUT_S = 10.0
# bcrypt reads this many bytes of a password: a longer one is refused rather than cut.
MAX_PASSWORD_BYTES = 72


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes.

    bcrypt is slow on purpose (about 60 ms at cost 10), and Prometheus sends the same
    credentials at every scrape: a successful check is remembered as an HMAC of the user,
    the hash and the password under a key drawn at start, so that the password itself is
    kept nowhere. Checks run one at a time (they are CPU-bound by design). An unknown user
    is checked against a real user's hash all the same, so that the time taken does not
    tell which user names exist.
    """

    MAX_REMEMBERED = 1024

    def __init__(self, users: Mapping[str, str]) -> None:
        if not users:
            raise ValueError("basic authentication needs at least one user")
        self._hashes = {name: hashed.encode("ascii") for name, hashed in users.items()}
        self._decoy = max(self._hashes.values(), key=lambda hashed: int(hashed[4:6]))
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._verified_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self.bcrypt_checks = 0  # how many times bcrypt ran: the cache's tests read it

    def __repr__(self) -> str:
        return f"BasicAuth({len(self._hashes)} users)"

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value names a user and their password."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > MAX_PASSWORD_BYTES:
            return False
        known = self._hashes.get(user)
        hashed = self._decoy if known is None else known
        token = self._token(user, hashed, password)
        with self._verified_lock:
            if known is not None and token in self._verified:
                self._verified.move_to_end(token)
                return True
        with self._bcrypt_lock:
            self.bcrypt_checks += 1
            matches = bcrypt.checkpw(password, hashed)
        if not matches or known is None:
            return False
        with self._verified_lock:
            self._verified[token] = None
            if len(self._verified) > self.MAX_REMEMBERED:
                self._verified.popitem(last=False)
        return True

    def _token(self, user: str, hashed: bytes, password: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a ``Basic`` header value, None if it is not one.

    >>> _basic_credentials("Basic YWxpY2U6czNjcjN0OngK")
    ('alice', b's3cr3t:x\\n')
    >>> _basic_credentials("Bearer abc") is None, _basic_credentials("Basic !!") is None
    (True, True)
    """
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server whose TLS handshakes run on each connection's own thread:
    a client that connects and says nothing never holds up the next scrape."""

    daemon_threads = True
    tls_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(CLIENT_TIMEOUT_S)
        try:
            connection = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            # A failed handshake (no or a wrong client certificate, plain HTTP on the TLS
            # port, a port scan) is the client's problem; the client is told by TLS.
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            with contextlib.suppress(OSError):  # the client may be gone already
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class MetricsServer:
    """A threaded HTTP server on its own daemon thread; ``close`` stops it."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: ReadinessCheck,
        bind_address: str,
        port: int,
        tls_certfile: Path | None = None,
        tls_keyfile: Path | None = None,
        web_config: WebConfig | None = None,
    ) -> None:
        tls_context: ssl.SSLContext | None = None
        auth: BasicAuth | None = None
        if web_config is not None:
            if web_config.tls is not None:
                try:
                    tls_context = web_config.tls.server_context()
                except (OSError, ssl.SSLError) as error:
                    raise StreamdriftError(
                        f"metrics.web_config_file {web_config.path}: tls_server_config: "
                        f"cannot load its files ({error.strerror or error})") from None
            if web_config.basic_auth_users:
                auth = BasicAuth(web_config.basic_auth_users)
        elif tls_certfile is not None and tls_keyfile is not None:
            tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                tls_context.load_cert_chain(tls_certfile, tls_keyfile)
            except (OSError, ssl.SSLError) as error:
                raise StreamdriftError(
                    f"metrics.tls_certfile {tls_certfile} and metrics.tls_keyfile "
                    f"{tls_keyfile}: cannot load them ({error.strerror or error})") from None
        handler = _make_handler(registry, readiness, auth)
        self._server = _Server((bind_address, port), handler)
        self._server.tls_context = tls_context
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(registry: CollectorRegistry, readiness: ReadinessCheck,
                  auth: BasicAuth | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if (auth is not None and path not in OPEN_PATHS
                    and not auth.allows(self.headers.get("Authorization"))):
                self._reply(401, b"unauthorized\n",
                            headers={"WWW-Authenticate": 'Basic realm="streamdrift"'})
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                ready, reason = readiness()
                self._reply(200 if ready else 503, f"{reason}\n".encode())
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _reply(self, status: int, body: bytes,
                   content_type: str = "text/plain; charset=utf-8",
                   headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Scrapes every few seconds would drown the service's own log lines.
            return

    return Handler
