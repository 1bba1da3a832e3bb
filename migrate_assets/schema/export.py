"""Spec files from a live database (`migrate-assets export`): one file per table, in the documented format and in
Postgres' own spelling (types as `format_type` prints them, expressions as `pg_get_expr` prints them), so that
`plan` against the same database finds nothing to do.

What the format cannot express is never skipped silently: every such object (or property) comes back in
`Export.not_expressed` with its name, kind and why: the objects `plan` lists as unmanaged for a table (expression
indexes, triggers, policies, column collations…), and the objects of the schemas that are
not tables (range types, functions, partitions of partitions), read in one catalog query. Enums get
a file each (`<schema>.<name>.enum.yaml`); so do views and materialized views (`<schema>.<name>.view.yaml` /
`.matview.yaml`, the definition as `pg_get_viewdef` prints it), schemas other than the default one
(`<name>.schema.yaml`), extensions (`<name>.extension.yaml`, with their version) and sequences of their own (not
an identity's or a serial's: `<schema>.<name>.sequence.yaml`), domains (`.domain.yaml`) and composite types
(`.composite.yaml`). A partitioned table's file has its `partition_by`
and `partitions`; partitions have no file of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from migrate_assets.schema import (
    composites,
    domains,
    partitions,
    sequence_objects,
    unmanaged,
    viewplan,
    views,
)
from migrate_assets.schema.enums import all_live_enums
from migrate_assets.schema.introspect import catalog_path, introspect
from migrate_assets.schema.model import (
    Column,
    Constraint,
    Exclude,
    ForeignKey,
    IndexElement,
    Table,
    pkey_name,
    unique_name,
)
from migrate_assets.schema.plan import Unmanaged

#: the schema objects that are not tables (nor a table's own parts); `owned` sequences belong to a column
_OTHER_OBJECTS = """
SELECT n.nspname, c.relname::text, CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign_table' WHEN 'c' THEN 'composite_type' ELSE 'partition' END,
       CASE WHEN c.relispartition THEN 'partition of ' || (SELECT i.inhparent::regclass::text FROM pg_inherits i
                                                         WHERE i.inhrelid = c.oid LIMIT 1)
                                       || ' ' || pg_get_expr(c.relpartbound, c.oid)
            ELSE 'the spec format has no words for this kind' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND (c.relkind = 'f'
       OR (c.relkind IN ('r', 'p') AND c.relispartition AND (SELECT p.relispartition FROM pg_inherits i
                                                             JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid)))
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
UNION ALL
SELECT n.nspname, t.typname::text, 'range_type', 'columns may use it by name (' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
       || '); the type itself is not managed'
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s) AND t.typtype = 'r'
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = t.oid AND e.deptype = 'e')
UNION ALL
SELECT n.nspname, p.oid::regprocedure::text, CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
       ELSE 'function' END, 'the spec format has no words for this kind'
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s) AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
"""


@dataclass
class Export:
    files: dict[str, str] = field(default_factory=dict)  #: file name → YAML text
    not_expressed: list[Unmanaged] = field(default_factory=list)
    tables: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "files": sorted(self.files),
                "not_expressed": [u.to_dict() for u in self.not_expressed]}


def export(conn: psycopg.Connection, schemas: Iterable[str], default_schema: str = "public") -> Export:
    """Spec documents for every table of `schemas` (read-only: catalog queries only)."""
    names = sorted(set(schemas))
    live = introspect(conn, names)
    out = Export(tables=len(live))
    for key in sorted(live):
        t = live[key]
        doc, skipped = table_document(t, default_schema)
        out.files[_file_name(t)] = dump(doc)
        out.not_expressed.extend(u for u in skipped if u.kind not in viewplan.VIEW_KINDS)  # views: files of their own
    with catalog_path(conn):
        rows = conn.execute(_OTHER_OBJECTS, {"schemas": names}).fetchall()
        for e in all_live_enums(conn, names):
            doc = {"enum": e.name if e.schema == default_schema and "." not in e.name else f"{e.schema}.{e.name}",
                   "values": list(e.values)}
            if "." in e.name:
                doc = {"enum": e.name, "schema": e.schema, "values": list(e.values)}
            out.files[_file_name(Table(e.schema, e.name)).replace(".yaml", ".enum.yaml")] = dump(doc)
        for fname, vdoc in views.export_documents(conn, names, default_schema).items():
            out.files[fname] = dump(vdoc)
        out.not_expressed.extend(Unmanaged(*row) for row in views.not_expressed(conn, names))
        for s in sequence_objects.all_live_sequences(conn, names):
            out.files[_file_name(Table(s.schema, s.name)).replace(".yaml", ".sequence.yaml")] = dump(
                sequence_objects.document(s, default_schema))
        for d in domains.all_live_domains(conn, names):  # issue 15 types: domains
            out.files[_file_name(Table(d.schema, d.name)).replace(".yaml", ".domain.yaml")] = dump(
                domains.document(d, default_schema))
        for cm in composites.all_live_composites(conn, names):
            out.files[_file_name(Table(cm.schema, cm.name)).replace(".yaml", ".composite.yaml")] = dump(
                composites.document(cm, default_schema))
    out.not_expressed.extend(Unmanaged(str(nsp), str(kind), str(name), str(why)) for nsp, name, kind, why in rows)
    out.not_expressed.sort(key=lambda u: (u.table, u.kind, u.name))
    return out


def _file_name(t: Table) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{t.schema}.{t.name}")
    return f"{safe}.yaml"


def _column(c: Column, pk: tuple[str, ...], single_unique: set[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"name": c.name}
    if c.serial:
        d["type"] = {"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}[c.type.name]
    else:
        d["type"] = c.type.render()
    if c.nullable and not c.serial and not c.identity and c.name not in pk:
        d["nullable"] = True
    if c.default is not None:
        d["default"] = c.default
    if c.identity:
        d["identity"] = "always" if c.identity == "always" else "by_default"
        if c.identity_options:
            d["identity"] = {"generated": d["identity"], **dict(c.identity_options)}
    if c.generated is not None:
        d["generated"] = c.generated
    if c.collation is not None:
        d["collation"] = c.collation
    if c.name in single_unique:
        d["unique"] = True
    if c.comment is not None:
        d["comment"] = c.comment
    return d


def _unique(u: Constraint) -> dict[str, Any]:
    d: dict[str, Any] = {"name": u.name, "columns": list(u.columns)}
    if u.nulls_not_distinct:
        d["nulls_not_distinct"] = True
    if u.deferrable:
        d["deferrable"] = True
    if u.initially_deferred:
        d["initially_deferred"] = True
    return d


def _exclude(x: Exclude) -> dict[str, Any]:
    d: dict[str, Any] = {"name": x.name}
    if x.using != "gist":
        d["using"] = x.using
    d["elements"] = [{"column": e.column, "operator": e.operator} if e.column is not None
                     else {"expression": e.expression, "operator": e.operator} for e in x.elements]
    if x.include:
        d["include"] = list(x.include)
    if x.where is not None:
        d["where"] = x.where
    if x.deferrable:
        d["deferrable"] = True
    if x.initially_deferred:
        d["initially_deferred"] = True
    return d


def table_document(t: Table, default_schema: str = "public") -> tuple[dict[str, Any], list[Unmanaged]]:
    """The spec mapping for live table `t`, and what it leaves out."""
    skipped: list[Unmanaged] = []
    want_all = Table(t.schema, t.name, manages=frozenset({"unique", "foreign_keys", "checks"}))
    pk = t.primary_key.columns if t.primary_key else ()
    expressible = [u for u in t.uniques if unmanaged.unique_reason(want_all, u, u.columns) is None]
    skipped += [Unmanaged(t.qualified, "unique", u.name or "", u.unmanaged or "") for u in t.uniques
                if u not in expressible]
    simple = all(len(u.columns) == 1 and u.name == unique_name(t.name, u.columns) and not (
        u.nulls_not_distinct or u.deferrable) and u.columns != pk for u in expressible)
    single = {u.columns[0] for u in expressible} if simple else set()
    doc: dict[str, Any] = {"table": t.name}
    if t.schema != default_schema or "." in t.name:
        doc["schema"] = t.schema
    if t.comment is not None:
        doc["comment"] = t.comment
    doc["columns"] = [_column(c, pk, single) for c in t.columns]
    if t.primary_key:
        name = t.primary_key.name
        doc["primary_key"] = list(pk) if name == pkey_name(t.name) else {"name": name, "columns": list(pk)}
        if t.primary_key.deferrable:
            skipped.append(Unmanaged(t.qualified, "primary_key", name or "", "DEFERRABLE primary key (exported "
                                     "without it; the plan keeps it as it is)"))
    if expressible and not simple:
        doc["unique"] = [_unique(u) for u in expressible]
    if t.foreign_keys:
        doc["foreign_keys"] = [_fk(f, t.schema) for f in t.foreign_keys]
    if t.checks:
        doc["checks"] = [{"name": c.name, "expression": c.expression, **({"no_inherit": True} if c.no_inherit else {})}
                         for c in t.checks]
    if t.excludes:
        doc["excludes"] = [_exclude(x) for x in t.excludes]
    indexes = []
    for ix in t.indexes:
        readable = bool(ix.elements) or not ix.expression  # keys read (an INVALID leftover's are not)
        if not readable or (ix.definition or "").endswith("INVALID"):
            skipped.append(Unmanaged(t.qualified, "index", ix.name, ix.definition or "keys not readable"))
            continue
        d: dict[str, Any] = {"name": ix.name, "columns": [_key(el) for el in ix.keys()]}
        if ix.include:
            d["include"] = list(ix.include)
        if ix.unique:
            d["unique"] = True
        if ix.nulls_not_distinct:
            d["nulls_not_distinct"] = True
        if ix.where is not None:
            d["where"] = ix.where
        if ix.method != "btree":
            d["method"] = ix.method
        indexes.append(d)
    if indexes:
        doc["indexes"] = indexes
    parted, left = partitions.document(t)  # `partition_by`, `partitions`
    doc.update(parted)
    skipped.extend(left)
    skipped.extend(u for u in t.others if u.kind not in ("collation", "exclusion"))  # collations are written to the columns
    return doc, skipped


def _key(el: IndexElement) -> str | dict[str, Any]:
    if el.plain and el.column is not None:
        return el.column
    d: dict[str, Any] = {"column": el.column} if el.column is not None else {"expression": el.expression}
    if el.desc:
        d["order"] = "desc"
    if el.nulls is not None:
        d["nulls"] = el.nulls
    if el.opclass is not None:
        d["opclass"] = el.opclass
    if el.collation is not None:
        d["collation"] = el.collation
    return d


def _fk(f: ForeignKey, schema: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"table": f.ref_table, "columns": list(f.ref_columns)}
    if f.ref_schema != schema or "." in f.ref_table:
        ref = {"schema": f.ref_schema, **ref}
    d: dict[str, Any] = {"name": f.name, "columns": list(f.columns), "references": ref}
    for key, value, default in (("on_delete", f.on_delete, "no action"), ("on_update", f.on_update, "no action"),
                                ("match", f.match, "simple"), ("deferrable", f.deferrable, False),
                                ("initially_deferred", f.initially_deferred, False)):
        if value != default:
            d[key] = value
    return d


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def write(result: Export, out_dir: Path, *, overwrite: bool) -> list[Path]:
    """Write the files; refuse (FileExistsError) to replace an existing file unless `overwrite`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in sorted(result.files)]
    clash = [p for p in paths if p.exists()]
    if clash and not overwrite:
        raise FileExistsError(", ".join(str(p) for p in clash))
    for p in paths:
        p.write_text(result.files[p.name], encoding="utf-8")
    return paths
