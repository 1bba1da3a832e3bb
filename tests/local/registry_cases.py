"""Fixtures and schemas of the ported Confluent REST cases (imported by the test modules that use them)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.registry_api import Api, ApiError, Client, Http
from tests.local.registry_proc import Registry

# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("registry-rest")
    server = Registry(root / "registry.db", root / "registry.log")
    yield server
    assert server.stop() == 0


def _driver(kind: str, url: str) -> Api:
    return Http(url) if kind == "http" else Client(url)


@pytest.fixture(params=["http", "client"])
def api(request: pytest.FixtureRequest, shared: Registry) -> Iterator[Api]:
    driver = _driver(request.param, shared.url)
    yield driver
    driver.close()


@pytest.fixture(params=["http", "client"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A driver on an empty registry of its own (ids start at 1, global level BACKWARD, mode READWRITE)."""
    server = Registry(tmp_path / "registry.db", tmp_path / "registry.log")
    driver = _driver(request.param, server.url)
    try:
        yield driver
    finally:
        driver.close()
        assert server.stop() == 0


@pytest.fixture
def subject() -> str:
    return "t" + uuid.uuid4().hex[:10]


# -- schemas ------------------------------------------------------------------------------------------------


def record(name: str, *fields: tuple[str, object] | dict[str, object], namespace: str | None = None,
           **extra: object) -> str:
    """A record schema; a field is (name, type) or a whole field object (for defaults)."""
    body: dict[str, object] = {"type": "record", "name": name}
    if namespace:
        body["namespace"] = namespace
    body["fields"] = [f if isinstance(f, dict) else {"name": f[0], "type": f[1]} for f in fields]
    return json.dumps({**body, **extra}, separators=(",", ":"))


def random_schemas(n: int) -> list[str]:
    """Distinct schemas one subject may hold in a row under BACKWARD (Confluent's harness runs its random
    schemas under NONE): one record name, each with a field of its own that has a default."""
    name = "R" + uuid.uuid4().hex[:12]
    return [record(name, {"name": "f" + uuid.uuid4().hex[:8], "type": "string", "default": ""}) for _ in range(n)]


F_STRING = record("myrecord", ("f", "string"))
F_INT = record("myrecord", ("f", "int"))


def fails(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, int]:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    return info.value.status, info.value.code


