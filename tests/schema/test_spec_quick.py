"""The spec loader's quick paths (`_quick_column`, `_quick_index`, `_quick_fk`, `_quick_check`) read entries written
the common way without building key paths or messages; anything else goes through the full reading. Whatever the
input, the result must be the same as with the quick paths switched off: the same tables, with the same sources,
or the same problems, in the same order, with the same file, line, key and message."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate_assets.errors import SpecError
from migrate_assets.schema import spec
from migrate_assets.schema.spec import parse_spec_text

QUICK = ("_quick_column", "_quick_index", "_quick_fk", "_quick_check")


@contextlib.contextmanager
def quick_paths_off() -> Iterator[None]:
    saved = {name: getattr(spec, name) for name in QUICK}
    try:
        for name in QUICK:
            setattr(spec, name, lambda *args: None)
        yield
    finally:
        for name, fn in saved.items():
            setattr(spec, name, fn)


def described(obj: Any) -> Any:
    """Every field of a model object, sources spelled out (they do not take part in `==`), recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "source" and value is not None:
                value = (value.file, value.line, value.path, value.lineno, value.key)
            elif f.name != "_by_name":
                value = described(value)
            out.append((f.name, value))
        return (type(obj).__name__, out)
    if isinstance(obj, tuple | list):
        return [described(x) for x in obj]
    return obj


def outcome(text: str) -> Any:
    try:
        tables = parse_spec_text(text, "f.yaml")
    except SpecError as exc:
        return ("problems", [(p.file, p.line, p.key, p.message) for p in exc.problems])
    return ("tables", described(list(tables)), described(tables.enums))


def same_either_way(text: str) -> Any:
    quick = outcome(text)
    with quick_paths_off():
        full = outcome(text)
    assert quick == full, text
    return quick


# ------------------------------------------------------------------------------------------------------------
# examples: the common way, unusual but valid, and wrong
# ------------------------------------------------------------------------------------------------------------

COMMON = """\
- enum: public.state
  values: [new, done]
- table: t1
  comment: the first
  columns:
  - name: id
    type: bigserial
    primary_key: true
  - name: c1
    type: int
    nullable: false
  - name: c2
    type: text
    default: '''''::text'
    unique: true
  - name: c3
    type: numeric(12,2)
    nullable: true
  - name: st
    type: public.state
  indexes:
  - columns: [c1]
  - name: t1_multi
    columns: [c2, c3]
    unique: true
  - name: t1_part
    columns: [c1]
    where: (c1 > 0)
    method: btree
  checks:
  - name: t1_c1_check
    expression: (c1 >= 0)
  foreign_keys: []
- table: other.t2
  columns:
  - {name: id, type: int, primary_key: true}
  - {name: parent, type: bigint, nullable: true}
  foreign_keys:
  - columns: [parent]
    references: {table: public.t1, columns: [id]}
    on_delete: cascade
  - name: t2_self
    columns: [id]
    references: {table: t2, columns: [id]}
    on_update: SET_NULL
"""

UNUSUAL = """\
- table: u
  columns:
  - {name: id, type: int, primaryKey: true}
  - {name: a, type: int, identity: by_default}
  - {name: b, type: text, renamedFrom: old_b, collation: C}
  - {name: c, type: int, default: 0}
  - {name: d, type: int, generated: a * 2}
  - {name: e, type: int, identity: {generated: always, start: 10}}
  - {name: f, type: text, nullable: true, default: true}
  indexes:
  - {columns: [b], method: HASH}
  - {columns: [{column: a, order: desc}], name: u_a_desc}
  - {columns: [a], include: [b], unique: true, nulls_not_distinct: true}
  - {columns: b, name: u_b_again}
  checks:
  - {name: u_c, expression: c > 0, noInherit: true}
  foreign_keys:
  - {columns: [a], references: {table: u, schema: public, columns: [id]}, match: full, deferrable: true}
  - {columns: a, references: {table: u, columns: [id]}, onDelete: restrict}
"""

WRONG = """\
- table: w
  columns:
  - {name: id, type: int, primary_key: true, nullable: true}
  - {name: s, type: serial, nullable: true}
  - {name: s2, type: serial, default: '1'}
  - {name: n, type: int, nullable: 1}
  - {name: '', type: int}
  - {name: id, type: int}
  - {name: t, type: integr}
  - {name: d, type: int, default: 'lower('}
  - {name: k, type: int, comment: [x]}
  indexes:
  - {columns: [nope]}
  - {columns: [id], where: '(id > 0'}
  - {name: i, columns: [id]}
  - {name: i, columns: [t]}
  - {name: '', columns: [id]}
  - {columns: [id], unique: 'yes'}
  checks:
  - {name: c, expression: 'a +'}
  - {name: '', expression: a > 0}
  foreign_keys:
  - {columns: [id], references: {table: '', columns: [id]}}
  - {columns: [id, t], references: {table: x, columns: [id]}}
  - {columns: [id], references: {table: x, columns: [id]}, on_delete: explode}
  - {columns: [ghost], references: {table: x, columns: [id]}}
"""


def test_the_common_way_is_read_alike_by_both_paths() -> None:
    kind, tables, _ = same_either_way(COMMON)
    assert kind == "tables"
    t1 = parse_spec_text(COMMON, "f.yaml")[0]
    assert [i.name for i in t1.indexes] == ["t1_c1_idx", "t1_multi", "t1_part"] and not t1.indexes[0].named
    assert t1.columns[1].source is not None and t1.columns[1].source.key == "[1].columns[1]"
    assert t1.columns[1].source.lineno == 9


def test_unusual_but_valid_entries_fall_back_to_the_full_reading() -> None:
    assert same_either_way(UNUSUAL)[0] == "tables"


def test_wrong_entries_are_reported_by_the_full_reading_with_the_same_messages() -> None:
    kind, problems = same_either_way(WRONG)
    assert kind == "problems"
    by_key = {key: (line, message) for _, line, key, message in problems}
    assert by_key["[0].columns[0].nullable"] == (3, "primary key columns cannot be nullable")
    assert by_key["[0].columns[3].nullable"] == (6, "expected true or false, got a number")
    assert "duplicate column 'id'" in by_key["[0].columns[5].name"][1]
    assert "unknown type 'integr'" in by_key["[0].columns[6].type"][1]
    assert by_key["[0].indexes[0].columns[0]"] == (13, "index on unknown column 'nope'")
    assert "duplicate index name 'i'" in by_key["[0].indexes[3]"][1]
    assert "expected one of: no action" in by_key["[0].foreign_keys[2].on_delete"][1]
    assert by_key["[0].foreign_keys[3].columns[0]"] == (26, "a FOREIGN KEY on unknown column 'ghost'")
    assert len(problems) == 21


# ------------------------------------------------------------------------------------------------------------
# property: random tables, some right, most a little wrong, dumped as yaml.safe_dump writes them
# ------------------------------------------------------------------------------------------------------------

def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` 15 times in 16: a table is then often right as a whole, and the quick paths get to accept."""
    return st.integers(0, 15).flatmap(lambda i: bad if i == 0 else good)


ANY = st.none() | st.booleans() | st.integers(-1, 2) | st.sampled_from(["", "x", "yes", "0"]) | st.lists(st.just("c1"))
NAME = mostly(st.sampled_from(["id", "c1", "c2", "parent", "A b", "order"]),
              st.sampled_from(["", "x" * 64, "é" * 32, "a\x00b", "c9"]) | ANY)
BOOLISH = mostly(st.booleans(), ANY)
TYPE = mostly(st.sampled_from(["int", "integer", "bigserial", "serial", "text", "varchar(64)", "numeric(12,2)", "int[]",
                               "public.bench_state", "timestamptz"]),
              st.sampled_from(["nosuchtype", "", "varchar(x)"]) | ANY)
EXPR = mostly(st.sampled_from(["0", "''::text", "now()", "false", "(c1 > 0)", "c1 + 1", "1"]),
              st.sampled_from(["lower(", "1; drop table t", "", "'abc"]) | ANY)
NAMES = mostly(st.lists(NAME, min_size=1, max_size=3), NAME | ANY)
COLUMN = mostly(
    st.fixed_dictionaries({"name": NAME, "type": TYPE},
                          optional={"nullable": BOOLISH, "primary_key": BOOLISH, "unique": BOOLISH, "default": EXPR,
                                    "comment": mostly(st.text(max_size=3), ANY)}),
    st.fixed_dictionaries({"name": NAME, "type": TYPE},
                          optional={"renamedFrom": NAMES, "identity": st.sampled_from(["always", "by_default", "x"]),
                                    "colour": ANY, "primaryKey": BOOLISH, "collation": NAME}) | ANY,
)
INDEX = mostly(
    st.fixed_dictionaries({"columns": NAMES},
                          optional={"name": NAME, "unique": BOOLISH, "where": EXPR,
                                    "method": mostly(st.just("btree"), st.sampled_from(["hash", "BTREE", "b tree"]))}),
    st.fixed_dictionaries({"columns": NAMES}, optional={"include": NAMES, "nulls_not_distinct": BOOLISH}) | ANY,
)
FK = mostly(
    st.fixed_dictionaries(
        {"columns": NAMES,
         "references": mostly(st.fixed_dictionaries({"table": mostly(st.sampled_from(["t", "s.t", "t2"]),
                                                                     st.sampled_from(["", "a.b.c", ".t"]) | ANY),
                                                     "columns": NAMES}),
                              st.fixed_dictionaries({"table": st.just("t"), "columns": NAMES, "schema": NAME}) | ANY)},
        optional={"name": NAME, "on_delete": mostly(st.sampled_from(["cascade", "SET_NULL", "set  null"]),
                                                    st.just("nope") | ANY),
                  "on_update": st.sampled_from(["restrict", "no_action", "No Action"])}),
    st.fixed_dictionaries({"columns": NAMES, "references": ANY},
                          optional={"onUpdate": st.just("restrict"), "match": st.sampled_from(["full", "x"])}) | ANY,
)
CHECK = mostly(st.fixed_dictionaries({"name": NAME, "expression": EXPR}, optional={"no_inherit": BOOLISH}),
               st.fixed_dictionaries({"name": NAME, "expression": EXPR, "noInherit": BOOLISH}) | ANY)
TABLE = st.fixed_dictionaries(
    {"table": mostly(st.sampled_from(["t", "s.t", "t2"]), st.sampled_from(["", ".t"]) | ANY),
     "columns": mostly(st.lists(COLUMN, min_size=1, max_size=4), ANY)},
    optional={"indexes": mostly(st.lists(INDEX, max_size=3), ANY), "checks": mostly(st.lists(CHECK, max_size=2), ANY),
              "foreign_keys": mostly(st.lists(FK, max_size=2), ANY), "primary_key": NAMES, "schema": NAME},
)


@settings(max_examples=int(os.environ.get("SPEC_QUICK_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=st.lists(TABLE, min_size=1, max_size=3), flow=st.booleans())
def test_random_tables_read_alike_by_both_paths(tables: list[dict[str, Any]], flow: bool) -> None:
    same_either_way(yaml.safe_dump(tables, sort_keys=False, default_flow_style=flow, allow_unicode=True))


@pytest.mark.parametrize("text", [COMMON, UNUSUAL, WRONG])
def test_a_spec_set_read_twice_gives_the_same(text: str) -> None:
    """The caches the quick paths keep (good names, parsed types) change nothing on a second reading."""
    assert same_either_way(text) == same_either_way(text)
