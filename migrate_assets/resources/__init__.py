"""Adapters from the evolution engine's layer protocols (`migrate_assets.evolution.layers`) to the real systems.

Plain classes, usable without running Dagster (the Dagster resources wrap them):

* `PostgresSource` — the source database on psycopg 3 (`SourceLayer`);
* `KafkaConnectClient` — Kafka Connect REST on httpx (`ConnectorLayer`, plus create/delete/list);
* `SchemaRegistryAdapter` — a Confluent-compatible registry via confluent-kafka (`RegistryLayer`);
* `IcebergLakehouse` — any pyiceberg catalog via `load_catalog` (`LakehouseLayer`).

Each raises the typed errors of `migrate_assets.errors`: `LayerUnreachableError` / `TransientError` for what a
retry may fix, semantic errors (`IncompatibleSchemaError`, `InvalidLakehouseUpdateError`, `*NotFoundError`,
`LayerRequestError`) for what it cannot.

The adapters load on first use: `migrate_assets.resources.database`, all the database-only commands need, must not
pull in pyiceberg, confluent-kafka and httpx (about a second) on the way.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrate_assets.resources.iceberg import IcebergLakehouse
    from migrate_assets.resources.kafka_connect import KafkaConnectClient
    from migrate_assets.resources.postgres import PostgresSource
    from migrate_assets.resources.registry import SchemaRegistryAdapter

_MODULES = {"IcebergLakehouse": "iceberg", "KafkaConnectClient": "kafka_connect", "PostgresSource": "postgres",
            "SchemaRegistryAdapter": "registry"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)


__all__ = ["IcebergLakehouse", "KafkaConnectClient", "PostgresSource", "SchemaRegistryAdapter"]
