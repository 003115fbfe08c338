"""The Schema Registry client: basic auth, and which answers mean "wait" and which "no such
id". A small HTTP server of the test's own plays the registry's two endpoints; the real
registry (Apicurio) is in tests/integration/test_avro.py."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from streamdrift.config import SchemaRegistryConfig, Secret
from streamdrift.registry import RegistryUnavailableError, SchemaRegistry

SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]})


class Registry(BaseHTTPRequestHandler):
    """Knows id 1; asks for user svc / hunter2; id 500 is a server error."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        Registry.seen.append(dict(self.headers))
        expected = "Basic " + base64.b64encode(b"svc:hunter2").decode()
        if self.headers.get("Authorization") != expected:
            self._answer(401, {"error_code": 40101, "message": "Unauthorized"})
        elif self.path == "/schemas/ids/1":
            self._answer(200, {"schema": SCHEMA})
        elif self.path == "/schemas/ids/500":
            self._answer(500, {"error_code": 50001, "message": "store unavailable"})
        else:
            self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, password: str | None = "hunter2") -> SchemaRegistry:
    return SchemaRegistry(SchemaRegistryConfig(
        url, "svc", None if password is None else Secret(password), timeout_s=2.0))


def test_schemas_are_fetched_with_basic_auth_and_an_unknown_id_is_none(registry_url):
    client = _client(registry_url)
    answer = client.schema(1)
    assert answer is not None
    assert answer["schema"] == SCHEMA
    assert client.schema(7) is None
    assert Registry.seen[-1]["Accept"] == "application/vnd.schemaregistry.v1+json"


def test_refused_credentials_and_server_errors_mean_wait_and_never_show_the_password(
        registry_url):
    with pytest.raises(RegistryUnavailableError, match="HTTP 401") as refused:
        _client(registry_url, "wrong").schema(1)
    with pytest.raises(RegistryUnavailableError, match=r"HTTP 500.*store unavailable"):
        _client(registry_url).schema(500)
    assert "wrong" not in str(refused.value)
    assert "hunter2" not in repr(SchemaRegistryConfig(registry_url, "svc", Secret("hunter2")))


def test_a_registry_that_is_not_there_means_wait():
    with pytest.raises(RegistryUnavailableError):
        _client("http://127.0.0.1:9").schema(1)  # the discard port: refused
