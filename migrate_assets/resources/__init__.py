"""Adapters from the evolution engine's layer protocols (`migrate_assets.evolution.layers`) to the real systems.

Plain classes, usable without running Dagster (the Dagster resources wrap them):

* `PostgresSource` — the source database on psycopg 3 (`SourceLayer`);
* `KafkaConnectClient` — Kafka Connect REST on httpx (`ConnectorLayer`, plus create/delete/list);
* `SchemaRegistryAdapter` — a Confluent-compatible registry via confluent-kafka (`RegistryLayer`);
* `IcebergLakehouse` — any pyiceberg catalog via `load_catalog` (`LakehouseLayer`).

Each raises the typed errors of `migrate_assets.errors`: `LayerUnreachableError` / `TransientError` for what a
retry may fix, semantic errors (`IncompatibleSchemaError`, `InvalidLakehouseUpdateError`, `*NotFoundError`,
`LayerRequestError`) for what it cannot.
"""

from migrate_assets.resources.iceberg import IcebergLakehouse
from migrate_assets.resources.kafka_connect import KafkaConnectClient
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.resources.registry import SchemaRegistryAdapter

__all__ = ["IcebergLakehouse", "KafkaConnectClient", "PostgresSource", "SchemaRegistryAdapter"]
