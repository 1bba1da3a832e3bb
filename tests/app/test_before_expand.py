"""`BeforeExpand` (planning a contract as a saga from the shape the change started from) leaves out exactly the
columns the change named anew — an added column, a rename's new name — and expand's helpers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from migrate_assets.app.expand_pipeline import BeforeExpand
from migrate_assets.expand import parse_change_text
from migrate_assets.expand.naming import new_column


class _Source:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def columns(self, table: str) -> Any:
        return [SimpleNamespace(name=n) for n in self.names]

    def ping(self) -> str:
        return "inner"


def test_columns_the_change_named_anew_and_helpers_are_left_out() -> None:
    change = parse_change_text(
        "table: public.items\noperations:\n"
        "  - add_column: {name: added, type: text, nullable: true}\n"
        "  - rename_column: {from: region, to: area}\n"
        "  - change_type: {column: amount, to_type: bigint}\n"
        "  - drop_column: {column: note}\n", "change.yaml")
    live = ["id", "amount", "area", "note", "added", new_column("amount")]
    before = BeforeExpand(_Source(live), change)
    assert [c.name for c in before.columns("public.items")] == ["id", "amount", "note"]
    assert [c.name for c in before.columns("public.other")] == live  # another table: as it is
    assert before.ping() == "inner"
