"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for probes.

- ``/healthz``: 200 while the process serves requests (a liveness probe: restart me if not).
- ``/readyz``: 200 when connected to Kafka, holding partitions and done refilling the
  window; 503 with the reason otherwise (a readiness probe: don't trust my gauges yet).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamdrift.errors import StreamdriftError

ReadinessCheck = Callable[[], tuple[bool, str]]


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
    ) -> None:
        handler = _make_handler(registry, readiness)
        self._server = ThreadingHTTPServer((bind_address, port), handler)
        self._server.daemon_threads = True
        if tls_certfile is not None and tls_keyfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(tls_certfile, tls_keyfile)
            except (OSError, ssl.SSLError) as error:
                self._server.server_close()
                raise StreamdriftError(
                    f"metrics.tls_certfile {tls_certfile} and metrics.tls_keyfile "
                    f"{tls_keyfile}: cannot load them ({error.strerror or error})") from None
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
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


def _make_handler(registry: CollectorRegistry, readiness: ReadinessCheck
                  ) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
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
                   content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Scrapes every few seconds would drown the service's own log lines.
            return

    return Handler
