"""`read_specs` / `RawSpecs.build`: the two halves of `load_specs` (read the files; parse, validate and build),
with a guess of the table keys in between for a caller that reads the live catalog meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from migrate_assets.errors import SpecError
from migrate_assets.schema.spec import _guess_table_keys, load_specs, read_specs

TABLES = [
    {"table": "a", "columns": [{"name": "id", "type": "int", "primary_key": True}]},
    {"enum": "public.mood", "values": ["ok", "sad"]},
    {"comment": "schema beside the name", "table": "b", "schema": "sales", "columns": [{"name": "id", "type": "int"}]},
    {"table": "sales.c", "columns": [{"name": "id", "type": "int"}],
     "foreign_keys": [{"columns": ["id"], "references": {"table": "b", "columns": ["id"]}}]},
    {"view": "v", "definition": "SELECT 1"},
    {"schema": "sales"},
    {"table": "it's", "columns": [{"name": "id", "type": "int"}]},
]


def write_specs(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "1_block.yaml").write_text(yaml.safe_dump(TABLES, sort_keys=False))
    (specs / "2_json.yaml").write_text(json.dumps([{"table": "j", "columns": [{"name": "id", "type": "int"}]}]))
    (specs / "3_mapping.yml").write_text("# one table\ntable: m  # a comment\nschema: other\ncolumns:\n- name: id\n  type: int\n")
    return specs


def test_build_gives_what_load_specs_gives_and_the_keys_were_guessed(tmp_path: Path) -> None:
    specs = write_specs(tmp_path)
    raw = read_specs([specs])
    keys = raw.table_keys
    built = raw.build()
    assert built == load_specs([specs]) and built.enums == load_specs([specs]).enums
    assert [t.key for t in built] == list(keys) == [
        ("public", "a"), ("sales", "b"), ("sales", "c"), ("public", "it's"), ("public", "j"), ("other", "m")]
    assert raw.build() is built  # kept
    assert raw.paths == tuple(sorted(specs.iterdir()))


def test_a_missing_path_is_refused_by_read_specs_and_file_problems_by_build(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as missing:
        read_specs([tmp_path / "nope"])
    assert missing.value.problems[0].message == "spec file or directory not found"
    specs = write_specs(tmp_path)
    (specs / "0_bad.yaml").write_text("table: t\ncolumns:\n  - {name: a, type: integr}\n")
    (specs / "2_undecodable.yaml").write_bytes(b"table: \xff\n")
    (specs / "4_syntax.yaml").write_text("table: [\n")
    raw = read_specs([specs])  # nothing parsed yet: no problem raised
    with pytest.raises(SpecError) as first:
        raw.build()
    with pytest.raises(SpecError) as again:
        raw.build()
    assert again.value is first.value
    with pytest.raises(SpecError) as loaded:
        load_specs([specs])
    got = [(Path(p.file).name, p.line, p.key, p.message) for p in first.value.problems]
    assert got == [(Path(p.file).name, p.line, p.key, p.message) for p in loaded.value.problems]
    assert [g[0] for g in got] == ["0_bad.yaml", "2_undecodable.yaml", "4_syntax.yaml"]
    assert got[0][1:3] == (3, "columns[0].type") and got[1][3].startswith("cannot read: ")
    assert got[2][3].startswith("invalid YAML")


def test_duplicate_tables_across_files_are_reported_by_build(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("table: t\ncolumns: [{name: a, type: int}]\n")
    (tmp_path / "b.yaml").write_text("\n\ntable: public.t\ncolumns: [{name: a, type: int}]\n")
    raw = read_specs([tmp_path])
    assert raw.table_keys == (("public", "t"),)
    with pytest.raises(SpecError) as exc:
        raw.build()
    (p,) = exc.value.problems
    assert p.file.endswith("b.yaml") and p.line == 3 and "duplicate table public.t (first at " in p.message


def test_build_uses_the_parsed_data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    specs, cache = write_specs(tmp_path), tmp_path / "cache"
    first = read_specs([specs], cache_dir=cache).build()
    assert len(list(cache.glob("*.json"))) == 2  # the YAML files; JSON is not cached
    assert read_specs([specs], "public", cache).build() == first == load_specs([specs])


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("- table: a\n- table: s.b\n- table: 'x y' # c\n- table: \"q\"\n",
         [("p", "a"), ("s", "b"), ("p", "x y"), ("p", "q")]),
        ("- enum: e\n  schema: x\n- table: a\n  schema: s\n- comment: c\n  table: b.c\n- schema: only\n",
         [("s", "a"), ("b", "c")]),
        ("table: t\ncolumns:\n- name: a\n  table: not_a_table\nforeign_keys:\n- references:\n    table: r\n",
         [("p", "t")]),
        ("---\ntable: t\nschema: s\n", [("s", "t")]),
        ("- {table: flow}\n", []),  # flow style: not guessed (build reads it)
        ("- table:\n    on_next_line\n", []),
        ('[{"table": "a"}, {"table": "s.b"}, {"enum": "e"}]', [("p", "a"), ("s", "b")]),
        ('{"table": "a", "schema": "s"}', [("s", "a")]),
        ("{not json", []),
    ],
)
def test_table_keys_are_guessed_from_the_text(text: str, keys: list[tuple[str, str]]) -> None:
    assert _guess_table_keys(text, "p") == keys
