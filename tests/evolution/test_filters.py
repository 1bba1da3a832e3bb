"""Debezium's filter lists, read as the connector reads them (comma-separated regexes, whole match)."""

from __future__ import annotations

from migrate_assets.evolution.filters import captures_column, captures_table, in_list, listed_tables


def test_entries_match_the_whole_name_and_dots_may_be_escaped() -> None:
    assert in_list(r"public\.orders, public.items", "public.orders")
    assert in_list(r"public\.orders, public.items", "public.items")
    assert not in_list(r"public\.orders", "public.orders_archive")  # whole match, not a prefix
    assert not in_list(r"public\.orders", "publicXorders")  # an escaped dot is a dot
    assert in_list(r"public\..*", "public.anything")
    assert not in_list(None, "public.orders") and not in_list("", "public.orders") and not in_list(" , ", "x")


def test_listed_tables_are_the_literal_entries_unescaped() -> None:
    assert listed_tables(r"public\.orders, public.items ,public\..*,inventory.stock$1") == [
        "public.orders", "public.items", "inventory.stock$1"]  # fmt: skip
    assert listed_tables(None) == []


def test_table_filters_include_wins_then_exclude() -> None:
    assert captures_table({}, "public.a")
    assert captures_table({"table.include.list": r"public\.a"}, "public.a")
    assert not captures_table({"table.include.list": r"public\.a"}, "public.b")
    assert not captures_table({"table.exclude.list": r"public\.b"}, "public.b")
    assert captures_table({"table.exclude.list": r"public\.b"}, "public.a")


def test_column_filters() -> None:
    assert captures_column({}, "public.a", "x")
    assert captures_column({"column.include.list": r"public\.a\.(id|x)"}, "public.a", "x")
    assert not captures_column({"column.include.list": r"public\.a\.(id|x)"}, "public.a", "y")
    assert not captures_column({"column.exclude.list": r"public\.a\.secret"}, "public.a", "secret")
    assert captures_column({"column.exclude.list": r"public\.a\.secret"}, "public.a", "x")
