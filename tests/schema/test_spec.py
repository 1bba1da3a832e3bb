"""Spec loading: shapes, aliases, and every validation problem reported at once with file, line and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.spec import load_specs, parse_spec_text
from migrate_assets.schema.types import PgType


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as exc:
        parse_spec_text(text, "bad.yaml")
    assert all(p.file == "bad.yaml" for p in exc.value.problems)
    return [(p.line, p.key, p.message) for p in exc.value.problems]


def test_single_mapping_list_and_camel_case(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "table: sales.orders\ncolumns:\n  - {name: id, type: bigserial, primaryKey: true}\n"
        "  - {name: total, type: 'decimal(10,2)', default: 0}\n  - {name: ref, type: text, renamedFrom: old_ref, nullable: true}\n"
    )
    (tmp_path / "b.yml").write_text(
        "- table: t1\n  columns: [{name: a, type: int}]\n  primary_key: [a]\n"
        "- table: t2\n  columns: [{name: b, type: text, unique: true}]\n  indexes: [{columns: [b], where: \"b <> ''\", method: hash}]\n"
    )
    (tmp_path / "README.md").write_text("not a spec")
    got = {t.qualified: t for t in load_specs([tmp_path])}
    assert sorted(got) == ["public.t1", "public.t2", "sales.orders"]
    orders = got["sales.orders"]
    assert orders.primary_key and orders.primary_key.columns == ("id",)
    assert orders.columns[0].serial and orders.columns[0].type == PgType("bigint")
    assert orders.columns[1].default == "0" and orders.columns[2].renamed_from == ("old_ref",)
    assert got["public.t1"].primary_key.columns == ("a",)  # type: ignore[union-attr]
    t2 = got["public.t2"]
    assert t2.uniques[0].columns == ("b",) and t2.indexes[0].method == "hash" and t2.indexes[0].name == "t2_b_idx"


def test_every_problem_is_reported_at_once_with_line_and_key() -> None:
    text = """\
table: users
columns:
  - name: id
    type: integr
  - name: id
    type: int
  - name: ""
    type: text
  - name: note
    type: text
    default: "lower("
    colour: red
  - name: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
    type: int
    nullable: maybe
indexes:
  - {columns: [nope]}
  - {name: i, columns: [id]}
  - {name: i, columns: [id]}
"""
    got = problems(text)
    msgs = {(line, key): msg for line, key, msg in got}
    assert "unknown type 'integr'" in msgs[(4, "columns[0].type")]
    assert "duplicate column 'id'" in msgs[(5, "columns[1].name")]
    assert "must not be empty" in msgs[(7, "columns[2].name")]
    assert "does not parse" in msgs[(11, "columns[3].default")]
    assert "unknown key" in msgs[(12, "columns[3].colour")]
    assert "63" in msgs[(13, "columns[4].name")]
    assert "true or false" in msgs[(15, "columns[4].nullable")]
    assert "unknown column 'nope'" in msgs[(17, "indexes[0].columns[0]")]
    assert any("duplicate index name 'i'" in m for m in msgs.values())
    assert len(got) >= 9


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- 1\n", "expected a mapping"),
        ("table: t\n", "non-empty list of columns"),
        ("columns: [{name: a, type: int}]\n", "'table' is missing"),
        ("table: t\ncolumns: [{name: a}]\n", "'type' is missing"),
        ("table: t\ncolumns: [{name: a, type: int, default: \"1; drop table t\"}]\n", "';'"),
        ("table: t\ncolumns: [{name: a, type: int, default: \"'abc\"}]\n", "unterminated"),
        ("table: t\ncolumns: [{name: a, type: int, default: \"1 +\"}]\n", "ends with"),
        ("table: t\ncolumns: [{name: a, type: serial, nullable: true}]\n", "always NOT NULL"),
        ("table: t\ncolumns: [{name: a, type: int, primary_key: true, nullable: true}]\n", "cannot be nullable"),
        ("table: t\ncolumns: [{name: a, type: int, identity: always, nullable: true}]\n", "identity columns are always"),
        ("table: t\ncolumns: [{name: a, type: int, identity: sometimes}]\n", "'always' or 'by_default'"),
        ("table: t\ncolumns: [{name: a, type: int}]\nprimary_key: [b]\n", "unknown column 'b'"),
        ("table: t\ncolumns: [{name: a, type: int}]\nindexes: [{columns: [a], method: 'b tree'}]\n", "unknown index method"),
        ("table: t\ncolumns: [{name: a, type: int}]\nindexes: [{columns: [a], where: \"(a > 0\"}]\n", "unbalanced"),
        ("table: t\ncolumns: [{name: a, type: int, name: b}]\n", "duplicate key"),
        ("table: [x]\ncolumns: [{name: a, type: int}]\n", "expected a name"),
    ],
)
def test_single_problems(text: str, needle: str) -> None:
    got = problems(text)
    assert any(needle in m for _, _, m in got), got
    assert all(line is not None for line, _, _ in got)


def test_duplicate_tables_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("table: t\ncolumns: [{name: a, type: int}]\n")
    (tmp_path / "b.yaml").write_text("\n\ntable: public.t\ncolumns: [{name: a, type: int}]\n")
    with pytest.raises(SpecError) as exc:
        load_specs([tmp_path])
    (p,) = exc.value.problems
    assert p.file.endswith("b.yaml") and p.line == 3 and "duplicate table public.t" in p.message and "a.yaml:1" in p.message


def test_odd_identifiers_are_accepted() -> None:
    (t,) = parse_spec_text('table: "Weird \\"T\\" select"\ncolumns: [{name: "order", type: int}, {name: "A b", type: text}]\n', "x.yaml")
    assert t.name == 'Weird "T" select' and [c.name for c in t.columns] == ["order", "A b"]


def test_parsed_data_cache_keeps_results_and_error_lines(tmp_path: Path) -> None:
    specs, cache = tmp_path / "specs", tmp_path / "cache"
    specs.mkdir()
    (specs / "a.yaml").write_text("table: t\ncolumns:\n  - {name: a, type: int}\n")
    (specs / "b.yaml").write_text("table: u\ncolumns:\n  - name: a\n    type: integr\n")
    for _ in range(2):  # second round is served from the cache
        with pytest.raises(SpecError) as exc:
            load_specs([specs], cache_dir=cache)
        (p,) = exc.value.problems
        assert p.file.endswith("b.yaml") and p.line == 4 and p.key == "columns[0].type"
    assert len(list(cache.glob("*.json"))) == 2
    (specs / "b.yaml").unlink()
    first = load_specs([specs], cache_dir=cache)
    assert first == load_specs([specs]) and first[0].columns[0].name == "a"


def test_a_cache_entry_is_used_only_when_signed_for_the_files_content(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache entry shipped with a checkout or edited in place (same name, other data) is ignored: the file is
    parsed again. Entries are signed with a per-user key kept outside the project."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    specs, cache = tmp_path / "specs", tmp_path / "cache"
    specs.mkdir()
    (specs / "a.yaml").write_text("table: t\ncolumns:\n  - {name: a, type: int, default: '1'}\n")
    assert load_specs([specs], cache_dir=cache)[0].columns[0].default == "1"
    (entry,) = cache.glob("*.json")
    stored = json.loads(entry.read_text())
    evil = json.loads(stored["data"])
    evil["columns"][0]["default"] = "2"
    entry.write_text(json.dumps({**stored, "data": json.dumps(evil)}))  # edited data, old signature
    assert load_specs([specs], cache_dir=cache)[0].columns[0].default == "1"
    entry.write_text(json.dumps({"data": evil}))  # the old unsigned form
    assert load_specs([specs], cache_dir=cache)[0].columns[0].default == "1"
    key = tmp_path / "xdg" / "migrate-assets" / "spec-cache.key"
    assert key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)  # a key others can read signs nothing: no cache at all
    entry.unlink()
    assert load_specs([specs], cache_dir=cache)[0].columns[0].default == "1"
    assert not list(cache.glob("*.json"))


def test_a_column_repeated_across_tables_is_checked_by_value_and_kind() -> None:
    """Validated columns are reused by their spec entry; `1` must not pass where `true` did, and an entry with a
    problem is reported in every table that repeats it."""
    text = """
- table: a
  columns: [{name: id, type: int, nullable: true}, {name: x, type: nosuchtype}]
- table: b
  columns: [{name: id, type: int, nullable: 1}, {name: x, type: nosuchtype}]
- table: c
  columns: [{name: id, type: int, nullable: true}]
"""
    with pytest.raises(SpecError) as err:
        parse_spec_text(text, "t.yaml")
    keys = sorted((p.key, p.line) for p in err.value.problems)
    assert keys == [("[0].columns[1].type", 3), ("[1].columns[0].nullable", 5), ("[1].columns[1].type", 5)]
    tables = parse_spec_text(text.replace("nullable: 1", "nullable: true").replace(", {name: x, type: nosuchtype}", ""), "t.yaml")
    assert [t.columns[0].source.key for t in tables] == ["[0].columns[0]", "[1].columns[0]", "[2].columns[0]"]
    assert all(t.columns[0].nullable for t in tables)


def test_a_required_text_of_the_wrong_kind_is_one_problem_at_its_key() -> None:
    # a CHECK expression and a view definition read the same way (SpecCtx.checked_text): a missing key is a problem
    # of the document, a number where text belongs only "expected a string" at the key (not also "missing")
    base = "- table: t\n  columns: [{name: id, type: integer}]\n  checks: [{name: c, %s}]\n- view: v\n  %s\n"
    assert problems(base % ("expression: 3", "definition: 4")) == [
        (3, "[0].checks[0].expression", "expected a string, got a number"),
        (5, "[1].definition", "expected a string, got a number"),
    ]
    got = problems(base % ("note: x", "materialized: false"))
    assert [m for _, _, m in got] == ["unknown key (expected one of: expression, name, no_inherit)",
                                      "required key 'expression' is missing",
                                      "required key 'definition' is missing (the view's query)"]
