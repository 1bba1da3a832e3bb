"""Each adapter offers every method of its layer protocol, with the protocol's parameter names."""

from __future__ import annotations

import inspect

import pytest

from migrate_assets.evolution import layers
from migrate_assets.resources import (
    IcebergLakehouse,
    KafkaConnectClient,
    PostgresSource,
    SchemaRegistryAdapter,
)

# typed assignments: mypy checks structural conformance of the constructors' results
_source: layers.SourceLayer = PostgresSource("postgresql://unused/db")
_connector: layers.ConnectorLayer = KafkaConnectClient("http://unused")
_registry: layers.RegistryLayer = SchemaRegistryAdapter("http://unused")
_lake: layers.LakehouseLayer = IcebergLakehouse("unused", {})


@pytest.mark.parametrize(
    ("protocol", "impl"),
    [
        (layers.SourceLayer, PostgresSource),
        (layers.ConnectorLayer, KafkaConnectClient),
        (layers.RegistryLayer, SchemaRegistryAdapter),
        (layers.LakehouseLayer, IcebergLakehouse),
    ],
)
def test_adapter_implements_protocol(protocol: type, impl: type) -> None:
    wanted = {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    assert wanted
    for name in wanted:
        ours = getattr(impl, name, None)
        assert ours is not None, f"{impl.__name__} lacks {name}"
        want_params = list(inspect.signature(getattr(protocol, name)).parameters)
        assert list(inspect.signature(ours).parameters)[: len(want_params)] == want_params, name
