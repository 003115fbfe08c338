"""The Schema Registry adapter: writer schemas by id over HTTP, cached.

Speaks the Confluent-compatible REST API (Confluent Schema Registry, Apicurio Registry's
``/apis/ccompat/v7``, Redpanda, Karapace) with the standard library's HTTP client: two
endpoints do not justify a dependency. The decoders never call it: the service asks it
for the ids of a batch before decoding (``WriterSchemas.resolve``), and when the registry
cannot answer, the batch is not decoded at all (``RegistryUnavailableError``) rather than
refused message by message.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from streamdrift.config import SchemaRegistryConfig
from streamdrift.framing import schema_id_of

# How long an id the registry said it does not know is refused without asking again.
UNKNOWN_ID_RETRY_S = 60.0
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryUnavailableError(Exception):
    """The registry did not answer, or answered with an error that is not about the id
    (a server error, refused credentials): whatever needed it must wait and try again."""


class SchemaRegistry:
    def __init__(self, config: SchemaRegistryConfig) -> None:
        self.config = config
        self._headers = {"Accept": CONTENT_TYPE}
        if config.username is not None:
            secret = "" if config.password is None else config.password.reveal()
            token = base64.b64encode(f"{config.username}:{secret}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._context = None
        if config.url.startswith("https://"):
            import ssl

            self._context = ssl.create_default_context(
                cafile=None if config.ca_file is None else str(config.ca_file))

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        """``{"schema": text, "schemaType": ...}`` for ``schema_id``; None when the registry
        says it has no such id."""
        return self._call("GET", f"/schemas/ids/{schema_id}", allow_missing=True)

    def register(self, subject: str, schema_text: str, schema_type: str = "AVRO") -> int:
        """Register ``schema_text`` under ``subject`` (or find it there) and return its id."""
        body: dict[str, Any] = {"schema": schema_text}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        answer = self._call("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}"
                            "/versions", body)
        assert answer is not None
        return int(answer["id"])

    def _call(self, method: str, path: str, body: Any = None,
              allow_missing: bool = False) -> dict[str, Any] | None:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        request = urllib.request.Request(self.config.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s,
                                        context=self._context) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            if error.code == 404 and allow_missing:
                return None
            detail = error.read(500).decode("utf-8", "replace").strip()
            raise RegistryUnavailableError(f"HTTP {error.code} from {method} {path}: "
                                      f"{detail or error.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryUnavailableError(f"{method} {path}: {reason}") from None


class WriterSchemas(Mapping[int, Any]):
    """Parsed writer schemas by id, as many as ``cache_size`` (least recently fetched
    first out), filled from the registry; an id the registry does not know maps to None
    and is asked again after ``UNKNOWN_ID_RETRY_S``.

    ``parse`` turns the registry's answer into what the decoder needs, or raises
    ``ValueError`` for a schema it cannot use (another format): that id then maps to None.
    """

    def __init__(self, registry: SchemaRegistry | None, parse: Callable[[dict[str, Any]], Any],
                 cache_size: int = 1000, on_unknown: Callable[[int, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.parse = parse
        self.cache_size = cache_size
        self.on_unknown = on_unknown
        self.clock = clock
        self._schemas: OrderedDict[int, Any] = OrderedDict()
        self._unknown_until: dict[int, float] = {}

    def __getitem__(self, schema_id: int) -> Any:
        if schema_id in self._schemas:
            return self._schemas[schema_id]
        if schema_id in self._unknown_until:
            return None
        raise KeyError(schema_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self._schemas)

    def __len__(self) -> int:
        return len(self._schemas)

    def add(self, schema_id: int, schema: Any) -> None:
        """A schema known without asking the registry (produce, tests)."""
        self._schemas[schema_id] = schema
        self._schemas.move_to_end(schema_id)
        while len(self._schemas) > self.cache_size:
            self._schemas.popitem(last=False)

    def missing(self, payloads: Iterable[bytes | None]) -> list[int]:
        """The ids framed payloads name that are neither cached nor known to be unknown."""
        now = self.clock()
        wanted: dict[int, None] = {}
        for payload in payloads:
            schema_id = schema_id_of(payload)
            if schema_id is None or schema_id in self._schemas or schema_id in wanted:
                continue
            until = self._unknown_until.get(schema_id)
            if until is not None and until > now:
                continue
            wanted[schema_id] = None
        return list(wanted)

    def resolve(self, payloads: Sequence[bytes | None]) -> list[int]:
        """Fetch what ``payloads`` need; the ids fetched. Raises ``RegistryUnavailableError``
        (what was fetched before stays cached)."""
        wanted = self.missing(payloads)
        for schema_id in wanted:
            answer = None if self.registry is None else self.registry.schema(schema_id)
            problem = "the registry does not know it"
            if answer is not None:
                try:
                    self.add(schema_id, self.parse(answer))
                except ValueError as error:
                    problem = str(error)
                else:
                    self._unknown_until.pop(schema_id, None)
                    continue
            self._unknown_until[schema_id] = self.clock() + UNKNOWN_ID_RETRY_S
            if len(self._unknown_until) > self.cache_size:
                oldest = min(self._unknown_until, key=self._unknown_until.__getitem__)
                del self._unknown_until[oldest]
            if self.on_unknown is not None:
                self.on_unknown(schema_id, problem)
        return wanted


def avro_writer_schema(answer: dict[str, Any]) -> Any:
    """A registry answer as a parsed Avro schema; ``ValueError`` for another format."""
    from streamdrift.avro import parse_writer_schema

    schema_type = answer.get("schemaType", "AVRO")
    if schema_type != "AVRO":
        raise ValueError(f"a {schema_type} schema where Avro was expected")
    text = answer.get("schema")
    if not isinstance(text, str):
        raise ValueError("the registry's answer has no schema text")
    return parse_writer_schema(text)
