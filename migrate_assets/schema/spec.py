"""Loading table spec files (SPEC §3) into desired `Table`s.

Strict on purpose: unknown keys, wrong value types, bad identifiers, unknown types, duplicate columns, tables
or indexes, indexes on unknown columns and defaults that cannot be expressions are all collected and raised
together as one `SpecError`, each problem with file, line and key path. camelCase keys of the original
format (`primaryKey`, `renamedFrom`) are accepted as aliases.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from migrate_assets.errors import InvalidInputError, Problem, SpecError
from migrate_assets.schema import composites, domains, fastyaml, partitions, sequence_objects, views
from migrate_assets.schema.ddl import OPERATOR_RE
from migrate_assets.schema.enums import ENUM_KEYS, Enum, SpecSet
from migrate_assets.schema.model import (
    FK_MATCH,
    INDEX_METHODS,
    MAX_IDENT_BYTES,
    Check,
    Column,
    Constraint,
    Exclude,
    ExcludeElement,
    ForeignKey,
    Index,
    IndexElement,
    Source,
    Table,
    default_index_name,
    gc_paused,
    object_name,
    pkey_name,
    positional_constructor,
    unique_name,
)
from migrate_assets.schema.sqltext import check_expression
from migrate_assets.schema.types import PgType, UnknownTypeError, parse_type
from migrate_assets.schema.yamlsrc import KeyPath, YamlDoc, doc_from_data, format_path, parse_yaml_fast

_ALIASES = {
    "primaryKey": "primary_key",
    "renamedFrom": "renamed_from",
    "isUnique": "unique",
    "foreignKeys": "foreign_keys",
    "onDelete": "on_delete",
    "onUpdate": "on_update",
    "noInherit": "no_inherit",
}
TABLE_KEYS = {"table", "schema", "columns", "indexes", "primary_key", "comment", "unique", "foreign_keys", "checks",
              "excludes", "partition_by", "partitions"}
UNIQUE_KEYS = {"name", "columns", "nulls_not_distinct", "deferrable", "initially_deferred"}
PK_KEYS = {"name", "columns"}
FK_KEYS = {"name", "columns", "references", "on_delete", "on_update", "match", "deferrable", "initially_deferred"}
REF_KEYS = {"table", "schema", "columns"}
CHECK_KEYS = {"name", "expression", "no_inherit"}
EXCLUDE_KEYS = {"name", "using", "elements", "where", "include", "deferrable", "initially_deferred"}
EXCLUDE_ELEMENT_KEYS = {"column", "expression", "operator"}
FK_ACTION_WORDS = ("no action", "restrict", "cascade", "set null", "set default")
COLUMN_KEYS = {"name", "type", "nullable", "primary_key", "unique", "default", "renamed_from", "comment", "identity",
               "generated", "collation"}
INDEX_KEYS = {"name", "columns", "unique", "where", "method", "include", "nulls_not_distinct"}
_COLUMN_FIELDS = tuple(f.name for f in dataclasses.fields(Column) if f.name != "source")
#: `_column` rebuilds a cached Column from positional values followed by its source
assert dataclasses.fields(Column)[-1].name == "source", "Column.source must stay the last field"
IDENTITY_VALUES = {"always": "always", "by_default": "by default", "by default": "by default"}


def ident_problem(value: Any) -> str | None:
    """Postgres identifier rules for quoted names: a non-empty string of at most 63 bytes, no NUL."""
    if not isinstance(value, str):
        return f"expected a name (string), got {type(value).__name__}"
    if not value:
        return "name must not be empty"
    if "\x00" in value:
        return "name must not contain a NUL character"
    if len(value.encode()) > MAX_IDENT_BYTES:
        return f"name is {len(value.encode())} bytes long; Postgres allows at most {MAX_IDENT_BYTES}"
    return None


#: names `ident_problem` found nothing wrong with, each to the first string object seen with its text: a spec
#: set repeats its column names in every table, and the model then holds one string per name, not one per use
_GOOD_NAMES: dict[str, str] = {}
#: the same for expressions `check_expression` accepts (defaults, index predicates, CHECKs)
_GOOD_EXPRESSIONS: dict[str, str] = {}
#: tuples of names (index and constraint columns) and sets of keys (`Table.manages`), shared alike
_SHARED: dict[Any, Any] = {}
_CACHE_MAX = 100_000


def _good_name(value: Any) -> str | None:
    """`value` (as the first string seen with its text) if `ident_problem(value)` is None, else None."""
    return _good(value, _GOOD_NAMES, ident_problem)


def _good_expression(value: Any) -> str | None:
    """`value` (shared as in `_good_name`) if it is a string `check_expression` accepts, else None."""
    return _good(value, _GOOD_EXPRESSIONS, check_expression)


def _good(value: Any, seen: dict[str, str], problem: Callable[[str], str | None]) -> str | None:
    if value.__class__ is not str:
        return None
    good = seen.get(value)
    if good is None:
        if problem(value) is not None:
            return None
        if len(seen) >= _CACHE_MAX:
            seen.clear()
        good = seen[value] = value
    return good


def _shared(value: Any) -> Any:
    """An equal object seen before (hashable values: tuples of names, frozensets of keys), else `value`."""
    if len(_SHARED) >= _CACHE_MAX:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


class _Entry:
    """A spec mapping whose keys were checked: values by canonical key. Key paths are only built when a
    message needs one (a 2,000-table spec set has ~150,000 keys and, usually, no problem at all)."""

    __slots__ = ("values", "path", "spelled")

    def __init__(self, values: dict[str, Any], path: KeyPath, spelled: dict[str, str] | None = None) -> None:
        self.values, self.path, self.spelled = values, path, spelled

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def at(self, key: str) -> KeyPath:
        """The key path of `key` as the file spells it (an alias stays an alias)."""
        return (*self.path, self.spelled.get(key, key) if self.spelled else key)


#: `Source(file, line, path, resolve)`, filling the slots directly (one per column of every table)
_new_source = positional_constructor(Source)
#: key paths shared by the `Source`s that name them: `[5].columns[3]` recurs in every file of a spec set
_PATHS: dict[KeyPath, KeyPath] = {}


#: the key paths of a list's items, by the list's key path (`[5].columns` -> `[5].columns[0]`, ...): made once
#: for every file of a spec set
_ITEM_PATHS: dict[KeyPath, list[KeyPath]] = {}


def _item_paths(path: KeyPath, n: int) -> list[KeyPath]:
    """`[(*path, 0), ..., (*path, n - 1)]`, shared (and interned in `_PATHS`)."""
    paths = _ITEM_PATHS.get(path)
    if paths is None or len(paths) < n:
        if len(_ITEM_PATHS) >= _CACHE_MAX:
            _ITEM_PATHS.clear()
        paths = _ITEM_PATHS[path] = [_PATHS.setdefault(p, p) for p in ((*path, i) for i in range(n))]
    return paths


class _Ctx:
    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.problems: list[Problem] = list(doc.duplicates)
        # what `src` needs, looked up once: it runs for every column and index
        self._lazy = (doc.file, doc.locator) if not (doc.lines or not doc.data) else None
        if len(_PATHS) >= _CACHE_MAX:
            _PATHS.clear()

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def src(self, path: KeyPath) -> Source:
        path = _PATHS.setdefault(path, path)
        if self._lazy is not None:
            return _new_source(self._lazy[0], None, path, self._lazy[1])
        if self.doc.lines or not self.doc.data:
            return Source(self.doc.file, self.doc.line_of(path), path)
        return Source(self.doc.file, None, path, self.doc.locator)

    def mapping(self, value: Any, path: KeyPath, allowed: set[str], what: str) -> _Entry | None:
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping ({what}), got {_kind(value)}")
            return None
        if value.keys() <= allowed:  # the usual case: canonical keys only
            return _Entry(value, path)
        values: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for k, v in value.items():
            key = _ALIASES.get(str(k), str(k))
            if key not in allowed:
                self.add((*path, str(k)), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
                continue
            if key in values:
                self.add((*path, str(k)), f"{k!r} given twice (as {key} and an alias)")
            values[key] = v
            spelled[key] = str(k)
        return _Entry(values, path, spelled)

    def boolean(self, entry: _Entry, key: str, default: bool) -> bool:
        v = entry.values.get(key, default)
        if v.__class__ is bool:
            return bool(v)
        self.add(entry.at(key), f"expected true or false, got {_kind(v)}")
        return default

    def text(self, entry: _Entry, key: str) -> str | None:
        v = entry.values.get(key)
        if v is None or isinstance(v, str):
            return v
        self.add(entry.at(key), f"expected a string, got {_kind(v)}")
        return None

    def checked_text(self, entry: _Entry, key: str, path: KeyPath, check: Callable[[str], str | None],
                     missing: str, invalid: str) -> str | None:
        """A required string `key` that `check` accepts (it returns why not, or None): a missing key is a problem
        of the document at `path`, a text that does not pass one at the key (`invalid: why`)."""
        text = self.text(entry, key)
        if text is None:
            if key not in entry:
                self.add(path, f"required key '{key}' is missing{missing}")
            return None
        why = check(text)
        if why:
            self.add(entry.at(key), f"{invalid}: {why}")
            return None
        return text

    def object_name(self, entry: _Entry, key: str, path: KeyPath, default_schema: str) -> tuple[str, str] | None:
        """(schema, name) of a document naming its object under `key` (`enum`, `view`, `sequence`, `domain`,
        `composite`): `schema.name` in that key, or the name with `schema` beside it, else the default schema.
        A bad name is a problem at `key`, and None (the caller still checks the document's other keys)."""
        schema, name = default_schema, entry.get(key)
        if "schema" not in entry and isinstance(name, str) and "." in name:
            schema, _, name = name.partition(".")
        why = ident_problem(name) or ident_problem(schema)
        if why:
            self.add(entry.at(key), why)
        schema = self.name(entry, "schema", path, required=False) or schema
        return None if why else (schema, str(name))

    def name(self, entry: _Entry, key: str, path: KeyPath, required: bool = True) -> str | None:
        if key not in entry.values:
            if required:
                self.add(path, f"required key {key!r} is missing")
            return None
        v = entry.values[key]
        why = ident_problem(v)
        if why:
            self.add(entry.at(key), why)
            return None
        return str(v)

    def names(self, entry: _Entry, key: str) -> list[tuple[str, KeyPath]]:
        if key not in entry.values:
            return []
        v, p = entry.values[key], entry.at(key)
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            self.add(p, f"expected a list of names, got {_kind(v)}")
            return []
        out = []
        for i, item in enumerate(v):
            why = ident_problem(item)
            if why:
                self.add((*p, i), why)
            else:
                out.append((str(item), (*p, i)))
        return out


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__
    )


def _default_text(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return v
    return None


#: the keys a column written the plain way uses (`_quick_column`)
_QUICK_COLUMN_KEYS = frozenset({"name", "type", "nullable", "primary_key", "unique", "default", "comment"})
#: type text -> (`PgType.plain`, serial) of the type texts that parse
_QUICK_TYPES: dict[str, tuple[PgType, bool]] = {}
#: `Column(*fields, source)`, filling the slots directly
_new_column = positional_constructor(Column)
assert [f.name for f in dataclasses.fields(Column)] == [
    "name", "type", "nullable", "default", "serial", "identity", "generated", "comment", "renamed_from", "collation",
    "identity_options", "sequence", "source"], "_table builds Columns positionally"


def _quick_column(raw: Any) -> tuple[str, PgType, bool, bool, str | None, str | None, bool, bool] | None:
    """(name, plain type, serial, nullable, default, comment, primary_key, unique) of a column entry written the
    common way (canonical keys among `_QUICK_COLUMN_KEYS`, values of the expected kind, a name, type and default
    that pass their checks, no conflicting options), or None: `_column` then reads it and reports what is wrong.
    It never reports anything itself, so whatever it accepts is exactly what `_column` would build, without a
    problem (tests/schema/test_spec_quick.py compares both)."""
    if raw.__class__ is not dict or not raw.keys() <= _QUICK_COLUMN_KEYS:
        return None
    get = raw.get
    name = get("name")
    if name.__class__ is not str or ((name := _GOOD_NAMES.get(name) or _good_name(name)) is None):
        return None
    text = get("type")
    if text.__class__ is not str:
        return None
    typ = _QUICK_TYPES.get(text)
    if typ is None:
        try:
            parsed = parse_type(text)
        except UnknownTypeError:
            return None
        if len(_QUICK_TYPES) >= _CACHE_MAX:
            _QUICK_TYPES.clear()
        typ = _QUICK_TYPES[text] = (parsed.plain, parsed.serial)
    nullable, pk, unique = get("nullable", False), get("primary_key", False), get("unique", False)
    if nullable.__class__ is not bool or pk.__class__ is not bool or unique.__class__ is not bool:
        return None
    default, comment = get("default"), get("comment")
    if default is not None and (default := _good_expression(default)) is None:
        return None
    if comment is not None and comment.__class__ is not str:
        return None
    if nullable and (pk or typ[1]) or (typ[1] and default is not None):
        return None
    return name, typ[0], typ[1], nullable, default, comment, pk, unique


#: columns already validated, by their spec entry: spec sets repeat columns (id, created_at, …) in many tables,
#: and the checks below cost more than building the Column again
_VALID_COLUMNS: dict[tuple[Any, ...], tuple[tuple[Any, ...], bool, bool]] = {}
_VALID_COLUMNS_MAX = 50_000


def _column(ctx: _Ctx, raw: Any, path: KeyPath) -> tuple[Column, bool, bool] | None:
    key: tuple[Any, ...] | None = None
    if raw.__class__ is dict:
        try:  # the value's class is part of the key: `nullable: 1` must not pass as `nullable: true`
            key = (*raw.items(), *map(type, raw.values()))
            hit = _VALID_COLUMNS.get(key)
        except TypeError:  # a list value (renamed_from): not kept
            key = hit = None
        if hit is not None:
            fields, pk, unique = hit
            return Column(*fields, ctx.src(path)), pk, unique  # type: ignore[call-arg]  # source is last
    before = len(ctx.problems)
    got = _check_column(ctx, raw, path)
    if got is not None and key is not None and len(ctx.problems) == before:
        if len(_VALID_COLUMNS) >= _VALID_COLUMNS_MAX:
            _VALID_COLUMNS.clear()
        fields = tuple(getattr(got[0], f) for f in _COLUMN_FIELDS)
        _VALID_COLUMNS[key] = (fields, got[1], got[2])
    return got


def _check_column(ctx: _Ctx, raw: Any, path: KeyPath) -> tuple[Column, bool, bool] | None:
    e = ctx.mapping(raw, path, COLUMN_KEYS, "a column")
    if e is None:
        return None
    name = ctx.name(e, "name", path)
    col_type = None
    if "type" not in e:
        ctx.add(path, "required key 'type' is missing")
    elif not isinstance(e.get("type"), str):
        ctx.add(e.at("type"), f"expected a type name, got {_kind(e.get('type'))}")
    else:
        try:
            col_type = parse_type(e.get("type"))
        except UnknownTypeError as exc:
            ctx.add(e.at("type"), exc.message)
    nullable = ctx.boolean(e, "nullable", False)
    pk = ctx.boolean(e, "primary_key", False)
    unique = ctx.boolean(e, "unique", False)
    default = None
    if e.get("default") is not None:
        v, p = e.get("default"), e.at("default")
        default = _default_text(v)
        if default is None:
            ctx.add(p, f"expected an SQL expression (string), got {_kind(v)}")
        else:
            why = check_expression(default)
            if why:
                ctx.add(p, f"default does not parse as an SQL expression: {why}")
    renamed = [n for n, _ in ctx.names(e, "renamed_from")]
    comment = ctx.text(e, "comment")
    identity = None
    identity_options = None
    if e.get("identity") is not None:
        v, p = e.get("identity"), e.at("identity")
        if isinstance(v, dict):
            identity, identity_options = _identity_mapping(ctx, v, p, col_type)
        else:
            identity = IDENTITY_VALUES.get(str(v).lower()) if isinstance(v, str) else None
            if identity is None:
                ctx.add(p, "expected 'always' or 'by_default'")
    if col_type is not None and col_type.serial:
        if nullable:
            ctx.add((*path, "nullable"), "serial columns are always NOT NULL")
        if default is not None:
            ctx.add((*path, "default"), "serial columns get their default from their sequence")
    collation = ctx.name(e, "collation", path, required=False)
    generated = ctx.text(e, "generated")
    if generated is not None:
        why = check_expression(generated)
        if why:
            ctx.add(e.at("generated"), f"generated does not parse as an SQL expression: {why}")
        if default is not None or identity:
            ctx.add(e.at("generated"), "a generated column cannot also have a default or an identity")
    if identity and default is not None:
        ctx.add((*path, "identity"), "an identity column cannot also have a default")
    if identity and nullable:
        ctx.add((*path, "nullable"), "identity columns are always NOT NULL")
    if pk and nullable:
        ctx.add((*path, "nullable"), "primary key columns cannot be nullable")
    if name is None or col_type is None:
        return None
    col = Column(
        name=name,
        type=col_type.plain,
        nullable=nullable,
        default=default,
        serial=col_type.serial,
        identity=identity,
        generated=generated,
        comment=comment,
        collation=collation,
        identity_options=identity_options,
        renamed_from=tuple(renamed),
        source=ctx.src(path),
    )
    return col, pk, unique


IDENTITY_KEYS = {"generated", "start", "increment", "minvalue", "maxvalue", "cache", "cycle"}


def _identity_mapping(ctx: _Ctx, raw: dict[str, Any], path: KeyPath, col_type: Any,
                      ) -> tuple[str | None, tuple[tuple[str, int | bool], ...] | None]:
    """`identity: {generated: always, start: 100, increment: 5, …}`: the kind, and the options that differ from
    Postgres' defaults for the column's type (every option is then managed; unstated ones are the defaults)."""
    from migrate_assets.schema.introspect import _TYPE_MAX, identity_options_of

    e = ctx.mapping(raw, path, IDENTITY_KEYS, "identity with generated and sequence options")
    if e is None:
        return None, None
    kind = IDENTITY_VALUES.get(str(e.get("generated") or "").lower())
    if kind is None:
        ctx.add(e.at("generated") if "generated" in e else path, "expected generated: always or by_default")
    nums: dict[str, int] = {}
    for key in ("start", "increment", "minvalue", "maxvalue", "cache"):
        v = e.get(key)
        if v is not None and (v.__class__ is not int or (key in ("increment",) and v == 0) or (key == "cache" and v < 1)):
            ctx.add(e.at(key), "expected a whole number" + (" other than 0" if key == "increment" else
                                                             " of at least 1" if key == "cache" else ""))
        elif v is not None:
            nums[key] = v
    cycle = ctx.boolean(e, "cycle", False)
    typ = col_type.render() if col_type is not None else "bigint"
    top = _TYPE_MAX.get(typ, _TYPE_MAX["bigint"])
    inc = nums.get("increment", 1)
    lo = nums.get("minvalue", 1 if inc > 0 else -top - 1)
    hi = nums.get("maxvalue", top if inc > 0 else -1)
    start = nums.get("start", lo if inc > 0 else hi)
    if not lo <= start <= hi:
        ctx.add(path, f"start {start} is outside minvalue {lo} .. maxvalue {hi}")
    return kind, identity_options_of(typ, start, inc, lo, hi, nums.get("cache", 1), cycle)


def _table(ctx: _Ctx, raw: Any, path: KeyPath, default_schema: str) -> Table | None:
    e = ctx.mapping(raw, path, TABLE_KEYS, "a table with table, columns, indexes")
    if e is None:
        return None
    schema = default_schema
    tname: str | None = None
    if "table" not in e:
        ctx.add(path, "required key 'table' is missing")
    else:
        v, p = e.get("table"), e.at("table")
        if "schema" not in e and isinstance(v, str) and "." in v:
            schema, _, v = v.partition(".")
            why = ident_problem(schema)
            if why:
                ctx.add(p, f"schema {why}")
        why = ident_problem(v)
        if why:
            ctx.add(p, why)
        else:
            tname = v
    if "schema" in e:
        s = ctx.name(e, "schema", path)
        schema = s or schema
    columns: list[Column] = []
    pk_cols: list[str] = []
    uniques: list[Constraint] = []
    seen: dict[str, KeyPath] = {}
    raw_cols, cols_path = e.get("columns"), e.at("columns")
    if not isinstance(raw_cols, list) or not raw_cols:
        ctx.add(cols_path, "expected a non-empty list of columns")
    else:
        paths = _item_paths(cols_path, len(raw_cols))
        file, locator = ctx._lazy or (None, None)
        for i, rc in enumerate(raw_cols):
            cpath = paths[i]
            quick = _quick_column(rc)
            if quick is not None and quick[0] not in seen:
                name, plain, serial, nullable, default, comment, pk, unique = quick
                seen[name] = cpath
                source = _new_source(file, None, cpath, locator) if file is not None else ctx.src(cpath)
                columns.append(_new_column(name, plain, nullable, default, serial, None, None, comment, (), None, None,
                                           None, source))
                if pk:
                    pk_cols.append(name)
                if unique:
                    uniques.append(Constraint(unique_name(tname or "", (name,)), (name,)))
                continue
            raw_name = rc.get("name") if isinstance(rc, dict) else None
            duplicate = isinstance(raw_name, str) and raw_name in seen
            if duplicate:
                ctx.add((*cpath, "name"), f"duplicate column {raw_name!r} (first at {format_path(seen[str(raw_name)])})")
            elif isinstance(raw_name, str):
                seen[raw_name] = cpath
            got = _column(ctx, rc, cpath)
            if got is None or duplicate:
                continue
            col, pk, unique = got
            columns.append(col)
            if pk:
                pk_cols.append(col.name)
            if unique:
                uniques.append(Constraint(unique_name(tname or "", (col.name,)), (col.name,)))
    pk_name: str | None = None
    if isinstance(e.get("primary_key"), dict):
        pe = ctx.mapping(e.get("primary_key"), e.at("primary_key"), PK_KEYS, "a primary key with name and columns")
        if pe is not None:
            pk_name = ctx.name(pe, "name", e.at("primary_key"), required=False)
            table_pk = ctx.names(pe, "columns")
            if not table_pk:
                ctx.add(e.at("primary_key"), "a primary key needs at least one column")
    else:
        table_pk = ctx.names(e, "primary_key")
    if table_pk:
        if pk_cols and [n for n, _ in table_pk] != pk_cols:
            ctx.add(e.at("primary_key"), "primary_key disagrees with the columns marked primary_key")
        for n, p in table_pk:
            if n not in seen:
                ctx.add(p, f"primary key names unknown column {n!r}")
        pk_cols = [n for n, _ in table_pk]
        for n in pk_cols:
            c = next((c for c in columns if c.name == n), None)
            if c is not None and c.nullable:
                ctx.add((*seen[n], "nullable"), "primary key columns cannot be nullable")
    indexes = _indexes(ctx, e, tname or "", seen)
    comment = ctx.text(e, "comment")
    manages = _shared(frozenset(k for k in ("unique", "foreign_keys", "checks", "excludes") if k in e))
    uniques += _uniques(ctx, e, tname or "", seen)
    fkeys = _foreign_keys(ctx, e, tname or "", schema, seen)
    checks = _checks(ctx, e)
    excludes = _excludes(ctx, e, seen)
    partitioning = partitions.parse_spec(ctx, e, tname or "", schema, seen, pk_cols, uniques)  # `partition_by`
    if tname is None:
        return None
    pkey = Constraint(pk_name or pkey_name(tname), tuple(pk_cols)) if pk_cols else None
    # a UNIQUE on exactly the primary key columns is redundant; Postgres drops it at CREATE TABLE too
    pk_unique = any(u.columns == tuple(pk_cols) for u in uniques)  # kept live if present (unmanaged.py)
    uniques = [u for u in uniques if u.columns != tuple(pk_cols)]
    return Table(schema, tname, tuple(columns), pkey, tuple(uniques), tuple(indexes), comment, ctx.src(path),
                 pk_unique=pk_unique, foreign_keys=tuple(fkeys), checks=tuple(checks), excludes=tuple(excludes),
                 manages=manages, partitioning=partitioning)


def _list(ctx: _Ctx, e: _Entry, key: str, what: str) -> list[tuple[Any, KeyPath]]:
    raw = e.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.add(e.at(key), f"expected a list of {what}, got {_kind(raw)}")
        return []
    return [(item, (*e.at(key), i)) for i, item in enumerate(raw)]


def _known_columns(ctx: _Ctx, entry: _Entry, key: str, cols: dict[str, KeyPath], what: str) -> tuple[str, ...]:
    names = ctx.names(entry, key)
    if not names:
        ctx.add(entry.at(key) if key in entry else entry.path, f"{what} needs at least one column")
    for n, p in names:
        if n not in cols:
            ctx.add(p, f"{what} on unknown column {n!r}")
    return tuple(n for n, _ in names)


def _uniques(ctx: _Ctx, e: _Entry, tname: str, cols: dict[str, KeyPath]) -> list[Constraint]:
    out: list[Constraint] = []
    for raw, path in _list(ctx, e, "unique", "UNIQUE constraints"):
        ue = ctx.mapping(raw, path, UNIQUE_KEYS, "a UNIQUE constraint")
        if ue is None:
            continue
        columns = _known_columns(ctx, ue, "columns", cols, "a UNIQUE constraint")
        name = ctx.name(ue, "name", path, required=False) or unique_name(tname, columns)
        deferrable = ctx.boolean(ue, "deferrable", False)
        deferred = ctx.boolean(ue, "initially_deferred", False)
        if deferred and not deferrable:
            ctx.add(ue.at("initially_deferred"), "initially_deferred needs deferrable: true")
        out.append(Constraint(name, columns, None, ctx.boolean(ue, "nulls_not_distinct", False), deferrable, deferred,
                              ctx.src(path)))
    return out


def _action(ctx: _Ctx, entry: _Entry, key: str) -> str:
    v = entry.get(key)
    if v is None:
        return "no action"
    word = " ".join(str(v).lower().replace("_", " ").split()) if isinstance(v, str) else None
    if word not in FK_ACTION_WORDS:
        ctx.add(entry.at(key), f"expected one of: {', '.join(FK_ACTION_WORDS)}")
        return "no action"
    return word


_QUICK_FK_KEYS = frozenset({"name", "columns", "references", "on_delete", "on_update"})
_QUICK_REF_KEYS = frozenset({"table", "columns"})
#: how `_action` reads a referential action word, for the words it accepts
_ACTION_WORDS = {w: w for w in FK_ACTION_WORDS}


def _quick_names(raw: Any, cols: dict[str, KeyPath] | None) -> tuple[str, ...] | None:
    """A non-empty list of good names (all columns of `cols`, if given) as a tuple, else None."""
    if raw.__class__ is not list or not raw:
        return None
    for c in raw:
        if c.__class__ is not str or (cols is not None and c not in cols) or (c not in _GOOD_NAMES and _good_name(c) is None):
            return None
    return _shared(tuple(map(_GOOD_NAMES.__getitem__, raw)))


def _quick_action(v: Any) -> str | None:
    if v is None:
        return "no action"
    if v.__class__ is not str:
        return None
    word = _ACTION_WORDS.get(v)
    return word if word is not None else _ACTION_WORDS.get(" ".join(v.lower().replace("_", " ").split()))


def _quick_fk(raw: Any, tname: str, schema: str, cols: dict[str, KeyPath],
              ) -> tuple[str, tuple[str, ...], str, str, tuple[str, ...], str, str] | None:
    """The `ForeignKey` fields (but the source) of a FOREIGN KEY written the common way (like `_quick_column`:
    None sends it to the full reading, which reports)."""
    if raw.__class__ is not dict or not raw.keys() <= _QUICK_FK_KEYS:
        return None
    get = raw.get
    columns = _quick_names(get("columns"), cols)
    ref = get("references")
    if columns is None or ref.__class__ is not dict or not ref.keys() <= _QUICK_REF_KEYS:
        return None
    rcols = _quick_names(ref.get("columns"), None)
    rt = ref.get("table")
    if rcols is None or len(rcols) != len(columns) or rt.__class__ is not str:
        return None
    ref_schema = schema
    if "." in rt:
        ref_schema, _, rt = rt.partition(".")
    ref_table, rschema = _good_name(rt), _good_name(ref_schema)
    if ref_table is None or rschema is None:
        return None
    on_delete, on_update = _quick_action(get("on_delete")), _quick_action(get("on_update"))
    if on_delete is None or on_update is None:
        return None
    name = object_name(tname, "_".join(columns), "fkey") if "name" not in raw else _good_name(get("name"))
    if name is None:
        return None
    return name, columns, rschema, ref_table, rcols, on_delete, on_update


def _foreign_keys(ctx: _Ctx, e: _Entry, tname: str, schema: str, cols: dict[str, KeyPath]) -> list[ForeignKey]:
    out: list[ForeignKey] = []
    for raw, path in _list(ctx, e, "foreign_keys", "FOREIGN KEY constraints"):
        quick = _quick_fk(raw, tname, schema, cols)
        if quick is not None:
            out.append(ForeignKey(*quick, source=ctx.src(path)))  # type: ignore[misc]  # seven fields, then source
            continue
        fe = ctx.mapping(raw, path, FK_KEYS, "a FOREIGN KEY with columns and references")
        if fe is None:
            continue
        columns = _known_columns(ctx, fe, "columns", cols, "a FOREIGN KEY")
        name = ctx.name(fe, "name", path, required=False) or object_name(tname, "_".join(columns), "fkey")
        ref = ctx.mapping(fe.get("references"), fe.at("references"), REF_KEYS, "references: table and columns")
        if ref is None:
            continue
        rschema, rtable = schema, None
        rt = ref.get("table")
        if "schema" not in ref and isinstance(rt, str) and "." in rt:
            rschema, _, rt = rt.partition(".")
        if ident_problem(rt) or ident_problem(rschema):
            ctx.add(ref.at("table"), ident_problem(rt) or f"schema {ident_problem(rschema)}")
        else:
            rtable = str(rt)
        rschema = ctx.name(ref, "schema", ref.path, required=False) or rschema
        rcols = tuple(n for n, _ in ctx.names(ref, "columns"))
        if len(rcols) != len(columns):
            ctx.add(ref.at("columns"), f"references {len(rcols)} columns for {len(columns)} columns")
        match = str(fe.get("match") or "simple").lower()
        if match not in FK_MATCH.values():
            ctx.add(fe.at("match"), "expected simple or full")
        deferrable = ctx.boolean(fe, "deferrable", False)
        deferred = ctx.boolean(fe, "initially_deferred", False)
        if deferred and not deferrable:
            ctx.add(fe.at("initially_deferred"), "initially_deferred needs deferrable: true")
        if rtable is None:
            continue
        out.append(ForeignKey(name, columns, rschema, rtable, rcols, _action(ctx, fe, "on_delete"),
                              _action(ctx, fe, "on_update"), match, deferrable, deferred, source=ctx.src(path)))
    return out


def _quick_check(raw: Any) -> tuple[str, str, bool] | None:
    """(name, expression, no_inherit) of a CHECK written the common way, or None (see `_quick_column`)."""
    if raw.__class__ is not dict or not raw.keys() <= CHECK_KEYS:
        return None
    name, text, no_inherit = _good_name(raw.get("name")), _good_expression(raw.get("expression")), raw.get("no_inherit", False)
    if name is not None and text is not None and no_inherit.__class__ is bool:
        return name, text, no_inherit
    return None


def _checks(ctx: _Ctx, e: _Entry) -> list[Check]:
    out: list[Check] = []
    for raw, path in _list(ctx, e, "checks", "CHECK constraints"):
        quick = _quick_check(raw)
        if quick is not None:
            out.append(Check(*quick, source=ctx.src(path)))
            continue
        ce = ctx.mapping(raw, path, CHECK_KEYS, "a CHECK constraint with name and expression")
        if ce is None:
            continue
        name = ctx.name(ce, "name", path)
        text = ctx.checked_text(ce, "expression", path, check_expression, "",
                                "expression does not parse as an SQL expression")
        no_inherit = ctx.boolean(ce, "no_inherit", False)
        if name is not None and text is not None:
            out.append(Check(name, text, no_inherit, source=ctx.src(path)))
    return out


def _expression(ctx: _Ctx, entry: _Entry, key: str) -> str | None:
    text = ctx.text(entry, key)
    why = check_expression(text) if text is not None else None
    if why:
        ctx.add(entry.at(key), f"{key} does not parse as an SQL expression: {why}")
        return None
    return text


def _excludes(ctx: _Ctx, e: _Entry, cols: dict[str, KeyPath]) -> list[Exclude]:
    out: list[Exclude] = []
    for raw, path in _list(ctx, e, "excludes", "EXCLUDE constraints"):
        xe = ctx.mapping(raw, path, EXCLUDE_KEYS, "an EXCLUDE constraint with name and elements")
        if xe is None:
            continue
        name = ctx.name(xe, "name", path)
        using = ctx.text(xe, "using") or "gist"
        if using.lower() not in INDEX_METHODS and not _WORD.fullmatch(using):
            ctx.add(xe.at("using"), f"unknown access method {using!r} (e.g. gist, btree, hash, spgist)")
        elements: list[ExcludeElement] = []
        for rel, epath in _list(ctx, xe, "elements", "elements (column or expression, and operator)"):
            ee = ctx.mapping(rel, epath, EXCLUDE_ELEMENT_KEYS, "an element: column or expression, and operator")
            if ee is None:
                continue
            column = ctx.name(ee, "column", epath, required=False)
            if column is not None and column not in cols:
                ctx.add(ee.at("column"), f"EXCLUDE element on unknown column {column!r}")
            expression = _expression(ctx, ee, "expression")
            if ("column" in ee) == ("expression" in ee):
                ctx.add(epath, "an element needs exactly one of 'column' and 'expression'")
            op = ctx.text(ee, "operator")
            if op is None or not OPERATOR_RE.fullmatch(op):
                ctx.add(ee.at("operator") if "operator" in ee else epath,
                        "expected an operator such as =, && or OPERATOR(schema.=)")
                op = None
            if (column is not None or expression is not None) and op is not None:
                elements.append(ExcludeElement(column, None if column is not None else expression, op))
        if not elements:
            ctx.add(xe.at("elements") if "elements" in xe else path, "an EXCLUDE constraint needs at least one element")
        include = ctx.names(xe, "include")
        for n, p in include:
            if n not in cols:
                ctx.add(p, f"EXCLUDE includes unknown column {n!r}")
        where = _expression(ctx, xe, "where")
        deferrable = ctx.boolean(xe, "deferrable", False)
        deferred = ctx.boolean(xe, "initially_deferred", False)
        if deferred and not deferrable:
            ctx.add(xe.at("initially_deferred"), "initially_deferred needs deferrable: true")
        if name is not None and elements:
            out.append(Exclude(name, tuple(elements), using.lower() if using.lower() in INDEX_METHODS else using, where,
                               tuple(n for n, _ in include), deferrable, deferred, ctx.src(path)))
    return out


def _indexes(ctx: _Ctx, e: _Entry, tname: str, cols: dict[str, KeyPath]) -> list[Index]:
    if e.get("indexes") is None:
        return []
    raw, path = e.get("indexes"), e.at("indexes")
    if not isinstance(raw, list):
        ctx.add(path, f"expected a list of indexes, got {_kind(raw)}")
        return []
    out: list[Index] = []
    names: dict[str, KeyPath] = {}
    for i, ri in enumerate(raw):
        ipath = (*path, i)
        quick = _quick_index(ri, tname, cols)
        if quick is not None and quick[0] not in names:
            names[quick[0]] = ipath
            out.append(_new_index(quick[0], quick[1], quick[2], quick[3], "btree", None, False, ctx.src(ipath), None, (),
                                  (), False, quick[4]))
            continue
        ie = ctx.mapping(ri, ipath, INDEX_KEYS, "an index")
        if ie is None:
            continue
        icols, elements = _index_keys(ctx, ie, ipath, cols)
        include = ctx.names(ie, "include")
        for n, p in include:
            if n not in cols:
                ctx.add(p, f"index includes unknown column {n!r}")
        unique = ctx.boolean(ie, "unique", False)
        where = ctx.text(ie, "where")
        if where is not None:
            why = check_expression(where)
            if why:
                ctx.add(ie.at("where"), f"where does not parse as an SQL expression: {why}")
        method = ctx.text(ie, "method") or "btree"
        if method.lower() not in INDEX_METHODS and not _WORD.fullmatch(method):
            ctx.add(ie.at("method"), f"unknown index method {method!r} (an access method name: "
                                     f"{', '.join(INDEX_METHODS)} or one an extension adds)")
        nnd = ctx.boolean(ie, "nulls_not_distinct", False)
        if nnd and not unique:
            ctx.add(ie.at("nulls_not_distinct"), "nulls_not_distinct needs unique: true")
        name = ctx.name(ie, "name", ipath, required=False)
        named = "name" in ie
        col_names = tuple(n for n, _ in icols)
        if name is None and "name" not in ie:
            name = default_index_name(tname, col_names, False)
        if name is None:
            continue
        if name in names:
            ctx.add(ipath, f"duplicate index name {name!r} (first at {format_path(names[name])})")
            continue
        names[name] = ipath
        featured = any(not el.plain for el in elements)
        out.append(Index(name, col_names if not featured else (), unique, where, method.lower(), source=ctx.src(ipath),
                         elements=tuple(elements) if featured else (), include=tuple(n for n, _ in include),
                         nulls_not_distinct=nnd, named=named))
    return out


_QUICK_INDEX_KEYS = frozenset({"name", "columns", "unique", "where", "method"})
_new_index = positional_constructor(Index)
assert [f.name for f in dataclasses.fields(Index)] == [
    "name", "columns", "unique", "where", "method", "definition", "expression", "source", "unmanaged", "elements",
    "include", "nulls_not_distinct", "named"], "_indexes builds Indexes positionally"


def _quick_index(raw: Any, tname: str, cols: dict[str, KeyPath]) -> tuple[str, tuple[str, ...], bool, str | None, bool] | None:
    """(name, columns, unique, where, named) of a btree index on plain columns of the table written the common way,
    or None: the index is then read (and reported on) key by key. Like `_quick_column`, it reports nothing."""
    if raw.__class__ is not dict or not raw.keys() <= _QUICK_INDEX_KEYS:
        return None
    get = raw.get
    columns = get("columns")
    if columns.__class__ is not list or not columns:
        return None
    for c in columns:
        if c.__class__ is not str or c not in cols or (c not in _GOOD_NAMES and _good_name(c) is None):
            return None
    unique, where, method = get("unique", False), get("where"), get("method")
    if unique.__class__ is not bool or (method is not None and method != "btree"):
        return None
    if where is not None and (where := _good_expression(where)) is None:
        return None
    col_names = _shared(tuple(map(_GOOD_NAMES.__getitem__, columns)))
    if "name" not in raw:
        return default_index_name(tname, col_names, False), col_names, unique, where, False
    name = _good_name(get("name"))
    if name is None:
        return None
    return name, col_names, unique, where, True


_WORD = re.compile(r"[a-z_][a-z0-9_]*")
ELEMENT_KEYS = {"column", "expression", "order", "nulls", "opclass", "collation"}


def _index_keys(ctx: _Ctx, ie: _Entry, ipath: KeyPath, cols: dict[str, KeyPath]) -> tuple[list[tuple[str, KeyPath]], list[IndexElement]]:
    """An index's `columns`: names, or mappings with `column` or `expression` and `order` (asc/desc), `nulls`
    (first/last), `opclass`, `collation`. Returns the plain names and every key as an element."""
    if "columns" not in ie:
        ctx.add(ipath, "required key 'columns' is missing")
        return [], []
    raw, path = ie.get("columns"), ie.at("columns")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        ctx.add(path, "an index needs at least one column")
        return [], []
    names: list[tuple[str, KeyPath]] = []
    elements: list[IndexElement] = []
    for i, item in enumerate(raw):
        p = (*path, i)
        if not isinstance(item, dict):
            why = ident_problem(item)
            if why:
                ctx.add(p, why)
            elif item not in cols:
                ctx.add(p, f"index on unknown column {item!r}")
            else:
                names.append((str(item), p))
                elements.append(IndexElement(column=str(item)))
            continue
        el = ctx.mapping(item, p, ELEMENT_KEYS, "an index key with column or expression")
        if el is None:
            continue
        column = ctx.name(el, "column", p, required=False)
        expression = ctx.text(el, "expression")
        if (column is None) == (expression is None):
            ctx.add(p, "an index key has either a column or an expression")
            continue
        if column is not None and column not in cols:
            ctx.add(el.at("column"), f"index on unknown column {column!r}")
        if expression is not None and (why := check_expression(expression)):
            ctx.add(el.at("expression"), f"expression does not parse as an SQL expression: {why}")
        order = str(el.get("order") or "asc").lower()
        if order not in ("asc", "desc"):
            ctx.add(el.at("order"), "expected asc or desc")
        nulls = str(el.get("nulls")).lower() if el.get("nulls") is not None else None
        if nulls not in (None, "first", "last"):
            ctx.add(el.at("nulls"), "expected first or last")
        desc = order == "desc"
        if nulls == ("first" if desc else "last"):
            nulls = None  # the default for the order
        opclass = ctx.text(el, "opclass")
        if opclass is not None and not all(_WORD.fullmatch(part) for part in opclass.split(".")):
            ctx.add(el.at("opclass"), "an operator class name (optionally schema.name, lower case)")
        collation = ctx.name(el, "collation", p, required=False)
        elements.append(IndexElement(column, expression, desc, nulls, opclass, collation))
        if column is not None:
            names.append((column, p))
    return names, elements


def parse_spec_text(text: str, file: str, default_schema: str = "public") -> SpecSet:
    """Parse one spec document (a single table mapping or a list of them)."""
    return _from_doc(parse_yaml_fast(text, file), default_schema)


def _from_doc(doc: YamlDoc, default_schema: str) -> SpecSet:
    ctx = _Ctx(doc)
    items: list[tuple[Any, KeyPath]]
    if isinstance(doc.data, list):
        items = [(v, (i,)) for i, v in enumerate(doc.data)]
    elif isinstance(doc.data, dict):
        items = [(doc.data, ())]
    elif doc.data is None:
        items = []
    else:
        ctx.add((), f"expected a table mapping or a list of tables, got {_kind(doc.data)}")
        items = []
    out = SpecSet()
    enums = []
    objects = []
    sequences = []
    domain_docs: list[Any] = []
    composite_docs: list[Any] = []
    for v, p in items:
        if v.__class__ is dict and "table" in v:  # the other kinds below all have no `table`
            if (t := _table(ctx, v, p, default_schema)) is not None:
                out.append(t)
        elif isinstance(v, dict) and "enum" in v and "table" not in v:
            e = _enum(ctx, v, p, default_schema)
            if e is not None:
                enums.append(e)
        elif isinstance(v, dict) and views.is_object(v):  # view, materialized view, extension, schema
            if (o := views.parse_object(ctx, v, p, default_schema)) is not None:
                objects.append(o)
        elif isinstance(v, dict) and "domain" in v and "table" not in v:  # issue 15 types: domains.py
            if (dm := domains.parse_spec(ctx, v, p, default_schema)) is not None:
                domain_docs.append(dm)
        elif isinstance(v, dict) and "composite" in v and "table" not in v:  # issue 15 types: composites.py
            if (cm := composites.parse_spec(ctx, v, p, default_schema)) is not None:
                composite_docs.append(cm)
        elif isinstance(v, dict) and "sequence" in v and "table" not in v:
            s = sequence_objects.parse_spec(ctx, v, p, default_schema)
            if s is not None:
                sequences.append(s)
        elif (t := _table(ctx, v, p, default_schema)) is not None:
            out.append(t)
    if ctx.problems:
        raise SpecError(ctx.problems)
    out.enums = tuple(enums)
    out.schema_objects = tuple(objects)
    out.sequences = tuple(sequences)
    out.domains = tuple(domain_docs)
    out.composites = tuple(composite_docs)
    return out


def _enum(ctx: _Ctx, raw: Any, path: KeyPath, default_schema: str) -> Enum | None:
    e = ctx.mapping(raw, path, ENUM_KEYS, "an enum with enum and values")
    if e is None:
        return None
    named = ctx.object_name(e, "enum", path, default_schema)
    schema, name = named or (default_schema, "")
    values: list[str] = []
    renamed: list[tuple[str, str]] = []
    raw_values = e.get("values")
    if not isinstance(raw_values, list) or not raw_values:
        ctx.add(e.at("values") if "values" in e else path, "expected a non-empty list of values")
        raw_values = []
    for i, v in enumerate(raw_values):
        vpath = (*e.at("values"), i)
        if isinstance(v, dict):
            ve = ctx.mapping(v, vpath, {"name", "renamed_from"}, "a value with name and renamed_from")
            label = ve.get("name") if ve is not None else None
            if ve is not None and isinstance(label, str):
                renamed += [(old, label) for old, _ in ctx.names(ve, "renamed_from")]
        else:
            label = v
        if not isinstance(label, str) or not label or len(label.encode()) > MAX_IDENT_BYTES:
            ctx.add(vpath, "an enum value is a non-empty string of at most 63 bytes")
        elif label in values:
            ctx.add(vpath, f"duplicate value {label!r}")
        else:
            values.append(label)
    drop = ctx.boolean(e, "drop", False)  # issue 15 types: dropped when unused (enum_drops.py)
    if named is None or not values:
        return None
    return Enum(schema, str(name), tuple(values), tuple(renamed), source=ctx.src(path), drop=drop)


_CACHE_VERSION = b"spec-data-v2"


def cache_key_file() -> Path:
    """The per-user secret that signs spec cache entries: outside every project, so an entry that came with a
    checkout (or was edited) is never taken for the parse of the file next to it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "migrate-assets" / "spec-cache.key"


def _cache_key() -> bytes | None:
    path = cache_key_file()
    try:
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # not ours alone: no cache rather than a key others may know
        key = path.read_bytes()
        return key if len(key) >= 32 else None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        key = os.urandom(32)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    except FileExistsError:  # another process made it first
        return _cache_key()
    except OSError:
        return None


def _read(path: Path, cache_dir: Path | None = None) -> YamlDoc:
    """Read and parse one file (`_read_text`, then `_parse`)."""
    return _parse(path, _read_text(path), cache_dir)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(file=str(path), message=f"cannot read: {exc}")]) from exc


def _parse(path: Path, text: str, cache_dir: Path | None = None) -> YamlDoc:
    """Parse one file's text; with `cache_dir`, parsed YAML data is reused (JSON files, no pickle), so unchanged
    spec sets skip the YAML parser. An entry is used only when it names the file's current content hash and
    carries a valid HMAC of that hash and the data under the user's key (`cache_key_file`); anything else is
    ignored and the file parsed. Validation always runs on the data."""
    key = None if cache_dir is None or text.lstrip()[:1] in ("[", "{") else _cache_key()
    if cache_dir is None or key is None:
        return parse_yaml_fast(text, str(path))
    raw = text.encode()  # the file's bytes: they decoded as UTF-8
    digest = hashlib.sha256(_CACHE_VERSION + raw).hexdigest()
    entry = cache_dir / (digest + ".json")
    try:
        stored = json.loads(entry.read_text(encoding="utf-8"))
        dumped = stored["data"]
        mac = hmac.new(key, (digest + "\n" + dumped).encode(), hashlib.sha256).hexdigest()
        if stored["sha256"] == digest and hmac.compare_digest(str(stored["mac"]), mac):
            return doc_from_data(str(path), json.loads(dumped), text)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    doc = parse_yaml_fast(text, str(path))
    if not doc.duplicates:
        try:
            dumped = json.dumps(doc.data)
            if json.loads(dumped) == doc.data:  # only plain JSON-able data is cached
                mac = hmac.new(key, (digest + "\n" + dumped).encode(), hashlib.sha256).hexdigest()
                cache_dir.mkdir(parents=True, exist_ok=True)
                tmp = entry.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"sha256": digest, "mac": mac, "data": dumped}), encoding="utf-8")
                os.replace(tmp, entry)
        except (OSError, TypeError, ValueError):
            pass
    return doc


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories (non-recursive, `.yaml`/`.yml`, name order) and keep explicit files as given."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in (".yaml", ".yml")))
        elif path.exists():
            out.append(path)
        else:
            raise SpecError([Problem(file=str(path), message="spec file or directory not found")])
    return out


def load_specs(
    paths: Sequence[str | Path], default_schema: str = "public", cache_dir: str | Path | None = None
) -> SpecSet:
    """Load every spec file; all problems of all files (and duplicate tables across files) are raised at once.

    `cache_dir` (optional) keeps parsed YAML data by content hash, signed; see `_parse`. The same as
    `read_specs(...).build()`.
    """
    return read_specs(paths, default_schema, cache_dir).build()


def read_specs(
    paths: Sequence[str | Path], default_schema: str = "public", cache_dir: str | Path | None = None
) -> RawSpecs:
    """The first half of `load_specs`: find and read the spec files (a missing path raises its SpecError here,
    before anything is read, as `load_specs` does). `RawSpecs.build` parses, validates and builds; meanwhile a
    caller may read the live catalog for `RawSpecs.table_keys`."""
    files: list[tuple[Path, str | Problem]] = []
    for f in spec_files(paths):
        try:
            files.append((f, _read_text(f)))
        except SpecError as exc:
            files.append((f, exc.problems[0]))
    return RawSpecs(files, default_schema, Path(cache_dir) if cache_dir is not None else None)


class RawSpecs:
    """Spec files read but not yet parsed (`read_specs`).

    - `table_keys`: the (schema, table) keys `build` will most likely return, guessed from the text alone
      (`_guess_table_keys`: `table:` and `schema:` entries of block-style documents, or the data of JSON ones),
      in a few milliseconds per thousand tables. Only a hint, to start reading the live catalog early: a
      document written otherwise (flow style, anchors, ...) may be missed, and a table with a problem is
      counted. Compare it with what `build` returns before relying on it.
    - `build()`: parse (cache-aware), validate and build, one file at a time (a file's parsed data is dropped
      before the next is read), with the cyclic GC paused; returns the `SpecSet` or raises the `SpecError` that
      `load_specs` would, with the same problems in the same order. Its outcome is kept: a second call returns
      (or raises) the same.
    """

    def __init__(self, files: list[tuple[Path, str | Problem]], default_schema: str, cache_dir: Path | None) -> None:
        self._files = files
        self.paths = tuple(f for f, _ in files)
        self.default_schema = default_schema
        self.cache_dir = cache_dir
        self._keys: tuple[tuple[str, str], ...] | None = None
        self._outcome: SpecSet | BaseException | None = None

    @property
    def table_keys(self) -> tuple[tuple[str, str], ...]:
        if self._keys is None:
            if self._outcome is not None and not isinstance(self._outcome, BaseException):
                self._keys = tuple(t.key for t in self._outcome)
            else:
                seen: dict[tuple[str, str], None] = {}
                for _, text in self._files:
                    if isinstance(text, str):
                        seen.update(dict.fromkeys(_guess_table_keys(text, self.default_schema)))
                self._keys = tuple(seen)
        return self._keys

    def build(self) -> SpecSet:
        if self._outcome is None:
            try:
                with gc_paused(promote=True):  # a spec set stays alive: not worth a young collection's scan
                    self._outcome = self._build()
            except BaseException as exc:
                self._outcome = exc
                raise
            finally:
                _forget()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def _build(self) -> SpecSet:
        problems: list[Problem] = []
        tables = SpecSet()
        enums: dict[tuple[str, str], Enum] = {}
        objects: list[Any] = []
        seen: dict[tuple[str, str], Table] = {}
        files, self._files = self._files, []  # texts are dropped as they are built
        for i, (f, text) in enumerate(files):
            files[i] = (f, "")
            if isinstance(text, Problem):
                problems.append(text)
                continue
            try:
                loaded = _from_doc(_parse(f, text, self.cache_dir), self.default_schema)
            except InvalidInputError as exc:
                problems.extend(exc.problems)
                continue
            finally:
                del text
            for en in loaded.enums:
                if en.key in enums:
                    src = en.source or Source(str(f))
                    problems.append(Problem(src.file, f"duplicate enum {en.qualified}", src.key or "enum", src.lineno))
                enums[en.key] = en
            objects.extend(loaded.schema_objects)
            sequence_objects.merge(tables, loaded, problems)
            domains.merge(tables, loaded, problems)
            composites.merge(tables, loaded, problems)
            for t in loaded:
                first = seen.get(t.key)
                if first is not None:
                    src = t.source or Source(str(f))
                    where = f"{first.source.file}:{first.source.lineno}" if first.source else "?"
                    problems.append(Problem(src.file, f"duplicate table {t.qualified} (first at {where})", src.key or "table",
                                            src.lineno))
                    continue
                seen[t.key] = t
                tables.append(t)
        kept, dups = views.merge(objects)
        problems += [views.duplicate_problem(o, why) for o, why in dups]
        problems += views.name_clashes(kept, seen)
        if problems:
            raise SpecError(problems)
        tables.enums = tuple(enums.values())
        tables.schema_objects = tuple(kept)
        return tables


def _forget() -> None:
    """Empty the caches that serve one build (names and expressions checked, shared paths and tuples, the YAML
    reader's): what the model uses stays in the model; the rest (tens of thousands of entries for 10,000 tables)
    would otherwise stay for the life of the process."""
    for cache in (_GOOD_NAMES, _GOOD_EXPRESSIONS, _SHARED, _PATHS, _ITEM_PATHS, _VALID_COLUMNS):
        cache.clear()
    fastyaml.forget()


def _guess_table_keys(text: str, default_schema: str) -> list[tuple[str, str]]:
    """The table keys a spec file most likely declares (see `RawSpecs.table_keys`): read from the data of a
    JSON document, else, without parsing YAML, from the `table:` and `schema:` entries of a block-style
    document as `yaml.safe_dump` writes it: keys of the top-level mapping (column 0), or of top-level list
    items (`- ` or two spaces before the key). Found by `str.find` (a regular expression's scan of every line
    costs several times more). Empty where it cannot tell."""
    if text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError:
            return []
        items = data if isinstance(data, list) else [data]
        found = [(v.get("schema"), v.get("table")) for v in items if isinstance(v, dict)]
    else:
        text = "\n" + text
        lead = ("\n- ", "\n  ") if _first_line(text).startswith("- ") else ("\n",)
        entries = {key: _entries(text, key + ":", lead) for key in ("table", "schema")}
        if not entries["schema"]:
            found = [(None, value) for _, value in sorted(entries["table"])]
        else:  # group by top-level list item (or the one mapping)
            starts = _entries_at(text, "\n- ") if len(lead) == 2 else []
            by_item: dict[int, dict[str, Any]] = {}
            for key, values in entries.items():
                for where, value in values:
                    by_item.setdefault(bisect.bisect_right(starts, where), {})[key] = value
            found = [(v.get("schema"), v.get("table")) for _, v in sorted(by_item.items())]
    out = []
    for schema, table in found:
        if not isinstance(table, str) or not table:
            continue
        if schema is None and "." in table:
            schema, _, table = table.partition(".")
        out.append((schema if isinstance(schema, str) and schema else default_schema, table))
    return out


def _entries(text: str, key: str, lead: tuple[str, ...]) -> list[tuple[int, str | None]]:
    """Where `key` stands in `text` right after one of `lead` (a line start and what may follow it), and the
    scalar after it on that line."""
    out = []
    for i in _entries_at(text, key):
        if any(text.startswith(p, i - len(p), i) for p in lead):
            end = text.find("\n", i + len(key))
            rest = text[i + len(key):end if end >= 0 else len(text)]
            if not rest or rest[0] in " \t":
                out.append((i, _plain_or_quoted(rest)))
    return out


def _entries_at(text: str, needle: str) -> list[int]:
    out = []
    i = text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _first_line(text: str) -> str:
    """The first line that is neither blank, a comment nor a document marker."""
    for line in text.split("\n", 50)[:50]:
        if line.strip() and not line.startswith(("#", "---", "%")):
            return line
    return ""


_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'(?:\s+#.*)?$")


def _plain_or_quoted(value: str) -> str | None:
    """A one-line YAML scalar's text, roughly: quotes removed, a trailing comment dropped; None if it is
    something else (a flow collection, an alias, ...)."""
    value = value.strip()
    if value[:1] == "'":
        quoted = _SINGLE_QUOTED.match(value)
        return quoted.group(1).replace("''", "'") if quoted else None
    if value[:1] == '"':
        try:
            got = json.loads(value)
        except ValueError:
            return None
        return got if isinstance(got, str) else None
    value = value.split(" #", 1)[0].rstrip()
    return value if value and value[0] not in "[]{}&*!|>%@`#" else None
