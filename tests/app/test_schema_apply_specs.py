"""Specs stay true: the write-back edits only the columns a command changed and keeps everything else of the
file — comments, quoting, order, other tables — byte for byte (pure text, no database)."""

from __future__ import annotations

import pytest

from migrate_assets.app.spec_writeback import apply_edits, check, column_edits, renames_of
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.schema.model import Table
from migrate_assets.schema.spec import parse_spec_text

COMMENTED = """\
# customers of the shop -- reviewed by the data team
table: public.customers   # captured by the cdc pipeline
columns:
  - {name: id, type: integer, primary_key: true}   # the key
  - name: name
    type: text      # display name
  # amounts are in cents
  - {name: amount, type: integer, nullable: true}
  - name: email
    type: text
    nullable: true   # optional
indexes:
  - {name: customers_name, columns: [name]}   # for the search page
"""


def table(text: str, file: str = "live") -> Table:
    return parse_spec_text(text, file)[0]


def written(spec_text: str, before: Table, after: Table, renames: dict[str, str] | None = None,
            index: int = 0) -> str:
    spec = parse_spec_text(spec_text, "c.yaml")[index]
    edits = column_edits(spec, before, after, renames or {})
    assert spec.source is not None
    new = apply_edits(spec_text, spec.source.path, edits)
    check(new, "c.yaml", spec, edits, "public")
    return new


def test_added_column_and_type_change_keep_every_comment() -> None:
    before = table(COMMENTED)
    amount = table("table: t\ncolumns: [{name: amount, type: bigint, nullable: true}]").columns[0]
    note = table("table: t\ncolumns: [{name: note, type: text, nullable: true, default: \"'n/a'::text\"}]").columns[0]
    after = Table("public", "customers",
                  columns=(*(amount if c.name == "amount" else c for c in before.columns), note))
    new = written(COMMENTED, before, after)
    assert new == COMMENTED.replace(
        "{name: amount, type: integer, nullable: true}", "{name: amount, type: bigint, nullable: true}"
    ).replace("    nullable: true   # optional\n", "    nullable: true   # optional\n"
              "  - name: note\n    type: text\n    nullable: true\n    default: \"'n/a'::text\"\n")


def test_rename_reaches_the_index_and_a_dropped_column_leaves() -> None:
    before = table(COMMENTED)
    after = table("table: public.customers\ncolumns:\n  - {name: id, type: integer, primary_key: true}\n"
                  "  - {name: full_name, type: text}\n  - {name: amount, type: integer, nullable: true}\n")
    new = written(COMMENTED, before, after, {"name": "full_name"})
    assert new == COMMENTED.replace("  - name: name\n", "  - name: full_name\n").replace(
        "columns: [name]", "columns: [full_name]").replace(
        "  - name: email\n    type: text\n    nullable: true   # optional\n", "")


def test_untouched_columns_and_unapplied_spec_edits_stay() -> None:
    spec_text = COMMENTED.replace("type: text      # display name", "type: varchar(80)   # not applied yet")
    before = table(COMMENTED)
    after = table(COMMENTED.replace("type: integer, nullable: true", "type: bigint, nullable: true"))
    new = written(spec_text, before, after)
    assert "type: varchar(80)   # not applied yet" in new  # the user's pending edit is not overwritten
    assert new == spec_text.replace("type: integer, nullable: true", "type: bigint, nullable: true")


def test_list_of_tables_in_one_file_and_flow_mapping_gets_missing_keys() -> None:
    text = ("# two tables\n- table: a\n  columns:\n    - {name: id, type: integer}\n"
            "- table: customers   # second\n  columns:\n    - {name: id, type: integer}\n"
            "    - {name: x, type: text}\n")
    before = table("table: customers\ncolumns: [{name: id, type: integer}, {name: x, type: text}]")
    after = table("table: customers\ncolumns: [{name: id, type: integer},"
                  " {name: x, type: text, nullable: true, default: \"'a, b'::text\"}]")
    new = written(text, before, after, index=1)
    assert new == text.replace("{name: x, type: text}",
                               "{name: x, type: text, nullable: true, default: \"'a, b'::text\"}")


def test_nothing_changed_means_no_edit() -> None:
    before = table(COMMENTED)
    spec = parse_spec_text(COMMENTED, "c.yaml")[0]
    assert column_edits(spec, before, before, {}) == []


def test_renames_of_a_change_file() -> None:
    change = parse_change_text("table: public.customers\noperations:\n  - rename_column: {from: a, to: b}\n"
                               "  - add_column: {name: z, type: text, nullable: true}\n"
                               "  - rename_column: {from: c, to: d}\n")
    assert renames_of(change) == {"a": "b", "c": "d"}


@pytest.mark.parametrize("value", ["yes", "1", "null", "a: b", "x # y", "numeric(10,2)"])
def test_values_that_would_read_differently_are_quoted(value: str) -> None:
    before = table("table: t\ncolumns: [{name: id, type: integer}]")
    after = table(f"table: t\ncolumns: [{{name: id, type: integer, default: {value!r}}}]".replace("'", '"'))
    new = written("table: t\ncolumns:\n  - name: id\n    type: integer\n", before, after)
    assert parse_spec_text(new, "x")[0].columns[0].default == value
