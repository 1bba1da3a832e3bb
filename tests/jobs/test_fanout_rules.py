"""The rules the fan-out of `evolve_pipeline` runs by, on plain data (no service needed): mapping keys, inline YAML
documents, and connector config diffs applied to a config another table changed meanwhile."""

from __future__ import annotations

import pytest

from migrate_assets.errors import UsageError
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.jobs.evolve import yaml_documents
from migrate_assets.jobs.fanout import apply_config_diff, mapping_keys, refuse_duplicate_tables


def test_mapping_keys_are_valid_and_unique() -> None:
    keys = mapping_keys(["public.customers", "sales.order-lines", "a.b_c", "a_b.c"])
    assert keys["public.customers"] == "public_customers" and keys["sales.order-lines"] == "sales_order_lines"
    assert keys["a.b_c"] != keys["a_b.c"] and all(k.startswith("a_b_c_") for k in (keys["a.b_c"], keys["a_b.c"]))


def test_inline_yaml_documents_keep_their_lines() -> None:
    text = "---\n# first\ntable: a\noperations: []\n---\n\n---\ntable: b\noperations: []\n"
    docs = yaml_documents(text)
    assert len(docs) == 2
    assert [d.splitlines().index("table: " + t) + 1 for d, t in zip(docs, "ab", strict=True)] == [3, 8]
    dup = "table: a\noperations:\n  - drop_column: {column: x}\n---\ntable: a\noperations:\n  - drop_column: {column: y}\n"
    with pytest.raises(UsageError) as exc:
        refuse_duplicate_tables([parse_change_text(d, "<inline>") for d in yaml_documents(dup)])
    assert str(exc.value).startswith("<inline>:5: table: public.a is already changed by <inline>")


def test_a_config_diff_applies_to_the_live_config_and_undoes_only_itself() -> None:
    base = {"table.include.list": "public.customers", "slot.name": "s"}
    items = {**base, "table.include.list": r"public.customers,public\.items"}
    payments = {**base, "table.include.list": r"public.customers,public\.payments",
                "signal.data.collection": "public.debezium_signal"}
    live = apply_config_diff(base, base, items)  # items joined first
    assert live == items
    live = apply_config_diff(live, base, payments)  # payments' plan was made before: its diff keeps items
    assert live["table.include.list"] == r"public.customers,public\.items,public\.payments"
    assert live["signal.data.collection"] == "public.debezium_signal"
    # items rolls back: only its own entry leaves, payments' change stays
    assert apply_config_diff(live, items, base) == {**payments,
                                                    "table.include.list": r"public.customers,public\.payments"}
    # with no other change in between, change and undo are exactly the planned configs
    assert apply_config_diff(payments, payments, base) == base
