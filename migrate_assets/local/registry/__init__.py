"""The bundled Confluent-API-compatible schema registry (SPEC §9): Avro, JSON Schema and Protobuf subjects,
schema contexts, SQLite-backed.

It answers confluent-kafka's `SchemaRegistryClient` and Kafka Connect's Java AvroConverter as a real
Confluent registry would, so the local stack needs no JVM registry; a real one replaces it by URL.
"""

from __future__ import annotations

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
