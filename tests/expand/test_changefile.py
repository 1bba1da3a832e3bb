"""Change-file bad-input corpus: every problem is reported with file, line and key path (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate_assets.errors import ChangeFileError
from migrate_assets.expand import AddColumn, ChangeType, RenameColumn, SetNotNull, load_change_file

GOOD = """\
table: public.accounts
operations:
  - rename_column: {from: email, to: email_address}
  - change_type: {column: amount, to_type: bigint}
  - change_type: {column: code, to_type: integer, up: "nullif(code, '')::integer", down: "code::text"}
  - add_column: {name: tier, type: text, nullable: true, default: "'bronze'"}
  - drop_column: {column: legacy}
  - set_not_null: {column: region, backfill: "coalesce(region, 'eu')"}
"""

CORPUS = [
    # (file text, line, key, message fragment)
    (
        "table: t\noperations:\n  - add_colum: {name: x, type: int}\n",
        3,
        "operations[0].add_colum",
        "unknown operation",
    ),
    (
        "table: t\noperations:\n  - add_column: {name: x, type: int, nulable: true}\n",
        3,
        "operations[0].add_column.nulable",
        "unknown key",
    ),
    (
        "table: t\noperations:\n  - rename_column:\n      from: a\n",
        3,
        "operations[0].rename_column.to",
        "required key is missing",
    ),
    (
        'table: t\noperations:\n  - add_column: {name: x, type: int, nullable: "yes"}\n',
        3,
        "operations[0].add_column.nullable",
        "expected true or false",
    ),
    (
        "table: t\noperations:\n  - drop_column: {column: [a]}\n",
        3,
        "operations[0].drop_column.column",
        "expected a string",
    ),
    ("table: t\noperations:\n  - drop_column: {column: a\n", 4, "", "invalid YAML"),
    ("operations:\n  - drop_column: {column: a}\n", 1, "table", "required key is missing"),
    ("table: a.b.c\noperations:\n  - drop_column: {column: a}\n", 1, "table", "schema.table"),
    ("table: t\noperations: []\n", 2, "operations", "non-empty list"),
    ("table: t\noperations:\n  - drop_column\n", 3, "operations[0]", "exactly one key"),
    (
        "table: t\noperations:\n  - {drop_column: {column: a}, set_not_null: {column: a}}\n",
        3,
        "operations[0]",
        "exactly one key",
    ),
    (
        "table: t\noperations:\n  - drop_column: {column: " + "x" * 64 + "}\n",
        3,
        "operations[0].drop_column.column",
        "at most 63",
    ),
    (
        "table: t\noperations:\n  - drop_column: {column: a}\n  - set_not_null: {column: a}\n",
        4,
        "operations[1].set_not_null",
        "already changed",
    ),
    (
        "table: t\noperations:\n  - add_column: {name: x, type: int}\n",
        3,
        "operations[0].add_column.nullable",
        "needs a `default` or a `backfill`",
    ),
    (
        "table: t\noperations:\n  - rename_column: {from: a, to: a}\n",
        3,
        "operations[0].rename_column.to",
        "equals",
    ),
    ("table: t\ntables: x\noperations:\n  - drop_column: {column: a}\n", 2, "tables", "unknown key"),
    ("table: t\ntable: u\noperations:\n  - drop_column: {column: a}\n", 2, "table", "duplicate key"),
    (
        'table: t\noperations:\n  - change_type: {column: a, to_type: "  "}\n',
        3,
        "operations[0].change_type.to_type",
        "must not be empty",
    ),
    ("- table: t\n", 1, "", "expected a mapping"),
]


def test_good_change_file_parses(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    ch = load_change_file(f)
    assert (ch.schema, ch.table) == ("public", "accounts")
    assert ch.operations[0] == RenameColumn(from_="email", to="email_address")
    assert ch.operations[1] == ChangeType(column="amount", to_type="bigint")
    assert ch.operations[3] == AddColumn(name="tier", type="text", nullable=True, default="'bronze'")
    assert ch.operations[5] == SetNotNull(column="region", backfill="coalesce(region, 'eu')")
    assert ch.line_of(ch.location(2)) == 5
    assert ch.fingerprint() == load_change_file(f).fingerprint()


@pytest.mark.parametrize(("text", "line", "key", "message"), CORPUS)
def test_bad_change_files(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ChangeFileError) as exc:
        load_change_file(f)
    assert exc.value.exit_code == 2
    matching = [p for p in exc.value.problems if message in p.message]
    assert matching, [str(p) for p in exc.value.problems]
    p = matching[0]
    assert (p.file, p.line, p.key) == (str(f), line, key)
    assert str(f) in str(exc.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "table: t\noperations:\n  - add_colum: {}\n  - drop_column: {colum: a}\n  - drop_column: {}\n"
    )
    with pytest.raises(ChangeFileError) as exc:
        load_change_file(f)
    assert [p.line for p in exc.value.problems] == [3, 4, 4, 5]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ChangeFileError, match="file not found"):
        load_change_file(tmp_path / "nope.yaml")
