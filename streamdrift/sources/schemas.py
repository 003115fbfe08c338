"""What the configured formats need at hand to decode: the Avro writer schemas (from the
Schema Registry, cached) and the Protobuf message class (from the descriptor set)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streamdrift.config import Config
from streamdrift.errors import StreamdriftError
from streamdrift.registry import (
    RegistryUnavailableError,
    SchemaRegistry,
    WriterSchemas,
    avro_writer_schema,
)


def format_decoding(config: Config, on_unknown: Callable[[int, str], None] | None = None
                    ) -> tuple[WriterSchemas | None, Any]:
    """The writer-schema cache for Avro topics (None without one) and the message class
    of a Protobuf topic (None without one); ``on_unknown`` hears of schema ids the registry
    does not know."""
    formats = config.input.formats()
    writer_schemas = None
    registry_config = config.input.schema_registry
    if "avro" in formats and registry_config is not None:
        writer_schemas = WriterSchemas(SchemaRegistry(registry_config), avro_writer_schema,
                                       registry_config.cache_size, on_unknown)
    message_class = None
    if "protobuf" in formats and config.input.protobuf is not None:
        from streamdrift.protobuf import load_message_class

        message_class = load_message_class(config.input.protobuf.descriptor_set,
                                           config.input.protobuf.message)
    return writer_schemas, message_class


def fetch_writer_schemas(writer_schemas: WriterSchemas | None,
                         payloads: Sequence[bytes | None]) -> None:
    """For the commands on files: the writer schemas of ``payloads``, or an error that says
    the registry does not answer (a file can be read again later; nothing waits)."""
    if writer_schemas is None:
        return
    try:
        writer_schemas.resolve(payloads)
    except RegistryUnavailableError as error:
        url = writer_schemas.registry.config.url if writer_schemas.registry else "(none)"
        raise StreamdriftError(f"the Schema Registry at {url} does not answer: {error}"
                               ) from None
