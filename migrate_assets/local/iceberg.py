"""The lakehouse of the local stack: a pyiceberg SqlCatalog on a SQLite file with a `file://` warehouse."""

from __future__ import annotations

from pathlib import Path

from pyiceberg.catalog import load_catalog


def properties(root: Path) -> dict[str, str]:
    return {
        "type": "sql",
        "uri": f"sqlite:///{root / 'iceberg.db'}",
        "warehouse": f"file://{root / 'warehouse'}",
    }


def ensure(root: Path, name: str = "lake") -> dict[str, str]:
    props = properties(root)
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(name, **props)
    catalog.list_namespaces()  # creates the catalog tables in the SQLite file
    return props


def healthy(props: dict[str, str], name: str = "lake") -> bool:
    try:
        load_catalog(name, **props).list_namespaces()
        return True
    except Exception:  # noqa: BLE001 - any failure means not usable
        return False
