"""Desired vs live → ordered `Change`s. Pure: no I/O (the runner supplies Postgres' canonical spellings of
expressions and which tables hold rows).

Renames happen only through `renamed_from`; columns are matched by exact name (every name is quoted, so
case matters). Constraint-backing indexes never appear here as indexes; PK and UNIQUE are compared by their
columns, plain indexes by name and definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from migrate_assets.schema import ddl, hazards, partitions, unmanaged
from migrate_assets.schema.ddl import ident, q, table_ident
from migrate_assets.schema.introspect import Canonical
from migrate_assets.schema.model import Check, Column, Constraint, Exclude, Index, Table, object_name
from migrate_assets.schema.plan import Change
from migrate_assets.schema.sqltext import defaults_match, normalize

if TYPE_CHECKING:
    from migrate_assets.schema import ops
else:  # imported on first use: an unchanged schema plans without it (lazy_ops)
    from migrate_assets.schema.lazy_ops import ops

TableKey = tuple[str, str]


@dataclass
class DiffResult:
    changes: list[Change] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    #: foreign keys to add once every table is planned (table they belong to, operation)
    foreign_keys: list[tuple[Table, ops.AddForeignKey]] = field(default_factory=list)
    #: (table, columns) of PRIMARY KEY / UNIQUE constraints built after commit
    late_keys: set[tuple[TableKey, frozenset[str]]] = field(default_factory=set)
    #: (table, columns) of PRIMARY KEY / UNIQUE constraints dropped (foreign keys using them go first)
    dropped_keys: set[tuple[TableKey, frozenset[str]]] = field(default_factory=set)
    #: (table, name) of foreign keys already dropped by the plan
    dropped_fks: set[tuple[TableKey, str]] = field(default_factory=set)


def default_equal(desired: Column, live: Column, canon: Canonical) -> bool:
    if desired.serial or live.serial:
        return desired.serial == live.serial
    if desired.identity or live.identity:
        return desired.default is None and live.default is None
    sure = defaults_match(desired.default, live.default, desired.type.render())
    if sure is None:
        sure = defaults_match(desired.default, live.default, desired.type.element.name)
    if sure is not None:
        return sure
    assert desired.default is not None and live.default is not None
    got = canon.defaults.get((desired.type.render(), desired.default))  # both sides as Postgres reads them
    have = canon.defaults.get((desired.type.render(), live.default), live.default)
    return got is not None and normalize(got) == normalize(have)


def pending_defaults(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[Column, bool]]:
    """Desired (column, needs_canonical_compare) pairs: every desired default is checked by Postgres."""
    out: list[tuple[Column, bool]] = []
    for t in desired:
        lt = live.get(t.key)
        for c in t.columns:
            if c.default is None:
                continue
            lc = _match_live(c, lt) if lt else None
            needs = (
                lc is not None
                and lc.default is not None
                and not lc.serial
                and defaults_match(c.default, lc.default, c.type.render()) is None
                and defaults_match(c.default, lc.default, c.type.element.name) is None
            )
            out.append((c, needs))
    return out


def pending_predicates(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[TableKey, Index]]:
    out = []
    for t in desired:
        lt = live.get(t.key)
        if not lt:
            continue
        lix = {i.name: i for i in lt.indexes}
        for ix in t.indexes:
            li = lix.get(ix.name)
            if li and ix.where and li.where and normalize(ix.where) != normalize(li.where):
                if all(lt.column(c) for c in ix.columns):
                    out.append((t.key, ix))
    return out


def in_sync(want: Table, have: Table | None) -> bool:
    """Cheap sufficient test that `diff` plans nothing for `want` and needs no canonical spellings for it.

    Unchanged tables are the bulk of a large schema; checking them whole, before the per-column diff,
    spares building SQL and descriptions that would be thrown away. False only means "diff it in detail".
    """
    if have is None or (want.comment or None) != (have.comment or None) or want.columns != have.columns:
        return False
    if not partitions.in_sync(want, have):
        return False
    for c in want.columns:  # only a serial or identity column can be loud (a loop: no call per plain column)
        if (c.serial or c.identity) and not _quiet(c):
            return False
    pks = [t.primary_key.columns if t.primary_key else None for t in (want, have)]
    if pks[0] != pks[1] or {u.columns for u in want.uniques} != unmanaged.managed_uniques(want, have):
        return False
    if want.manages and not _constraints_in_sync(want, have):
        return False
    want_ix = {i.name: i for i in want.indexes}
    have_ix = unmanaged.managed_indexes(have)
    if any(wi.featured for wi in want_ix.values()):
        return False
    return want_ix.keys() == have_ix.keys() and all(_same_plain_index(wi, have_ix[n]) for n, wi in want_ix.items())


def _constraints_in_sync(want: Table, have: Table) -> bool:
    """The constraint lists the spec gives (`unique`, `foreign_keys`, `checks`) equal the live ones, spelled alike."""
    if "unique" in want.manages:
        live_u = {u.columns: u for u in have.uniques}
        if not all(u.columns in live_u and u.same_options(live_u[u.columns]) for u in want.uniques):
            return False
    if "foreign_keys" in want.manages and (set(want.foreign_keys) != set(have.foreign_keys)
                                           or not all(f.validated for f in have.foreign_keys)):
        return False
    if "excludes" in want.manages and not same_excludes(want.excludes, have.excludes):
        return False
    if "checks" in want.manages:
        live_c = {c.name: c for c in have.checks}
        if live_c.keys() != {c.name for c in want.checks}:
            return False
        for c in want.checks:
            lc = live_c[c.name]
            if not lc.validated or lc.no_inherit != c.no_inherit or normalize(lc.expression) != normalize(c.expression):
                return False
    return True


def _exclude_key(x: Exclude) -> tuple[object, ...]:
    """Comparison form of an EXCLUDE constraint: expressions normalised (the live side is Postgres's spelling)."""
    els = tuple((e.column if e.column is not None else normalize(e.expression or ""), e.operator) for e in x.elements)
    return (x.name, x.using.lower(), els, x.include,
            normalize(x.where) if x.where is not None else None, x.deferrable, x.initially_deferred)


def same_exclude(want: Exclude, have: Exclude) -> bool:
    return _exclude_key(want) == _exclude_key(have)


def same_excludes(want: Iterable[Exclude], have: Iterable[Exclude]) -> bool:
    return {_exclude_key(x) for x in want} == {_exclude_key(x) for x in have}


def pending_checks(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[TableKey, Check, Check]]:
    """(table, desired, live) CHECK constraints of the same name whose expressions are spelled differently: Postgres
    reads both before they are compared."""
    return [(key, c, lc) for key, c, lc in _twins(desired, live, lambda t: t.checks, "checks")
            if normalize(lc.expression) != normalize(c.expression)]


def _twins(desired: Iterable[Table], live: dict[TableKey, Table], items: Callable[[Table], Iterable[Any]],
           managed: str | None = None) -> Iterator[tuple[TableKey, Any, Any]]:
    """(table, desired, live) items of the same name (checks, excludes, indexes …) of tables that exist on both
    sides — and, with `managed`, whose spec manages that kind — whose spellings Postgres may have to compare."""
    for t in desired:
        lt = live.get(t.key)
        if lt is None or (managed is not None and managed not in t.manages):
            continue
        have = {i.name: i for i in items(lt)}
        for want in items(t):
            if want.name in have:
                yield t.key, want, have[want.name]


def generated_canon_key(key: TableKey, column: str) -> tuple[str, str, str]:
    return (key[0], key[1], "generated:" + column)


def pending_generated(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[TableKey, Column, Column]]:
    """(table, desired, live) generated columns whose expressions are spelled differently."""
    out = []
    for t in desired:
        lt = live.get(t.key)
        for c in t.columns if lt is not None else ():
            lc = lt.column(c.name) if lt is not None else None
            if c.generated and lc is not None and lc.generated and normalize(c.generated) != normalize(lc.generated):
                out.append((t.key, c, lc))
    return out


def check_canon_key(key: TableKey, name: str) -> tuple[str, str, str]:
    return (key[0], key[1], "check:" + name)


def _quiet(c: Column) -> bool:
    """Whether a column equal to its live twin plans nothing: an identity column with a default, or a
    nullable serial/identity column (planned NOT NULL), plans a change even then."""
    return not (c.identity and c.default is not None) and not (c.nullable and (c.serial or c.identity))


def _same_plain_index(wi: Index, li: Index) -> bool:
    """`_TableDiff._same_index` without renames or canonical spellings (a differing spelling is not "same")."""
    if li.expression or wi.unique != li.unique or wi.method != li.method or wi.columns != li.columns:
        return False
    if wi.where is None or li.where is None:
        return wi.where is li.where
    return normalize(wi.where) == normalize(li.where)


def _match_live(c: Column, lt: Table) -> Column | None:
    found = lt.column(c.name)
    if found:
        return found
    for old in c.renamed_from:
        found = lt.column(old)
        if found:
            return found
    return None


def tables_needing_row_check(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[TableKey]:
    """Existing tables that get a NOT NULL column with nothing to fill it (safe only when empty)."""
    out = []
    for t in desired:
        lt = live.get(t.key)
        if lt and any(_needs_rows(c) and _match_live(c, lt) is None for c in t.columns):
            out.append(t.key)
    return out


def _needs_rows(c: Column) -> bool:
    return not c.nullable and c.default is None and not c.serial and not c.identity and not c.generated


def diff(
    desired: Iterable[Table],
    live: dict[TableKey, Table],
    *,
    canon: Canonical | None = None,
    nonempty: set[TableKey] | None = None,
    drop_tables: Iterable[TableKey] = (),
    missing_schemas: Iterable[str] = (),
    first: Iterable[Change] = (),
    context: Iterable[Table] = (),
    standalone: dict[TableKey, Table] | None = None,
) -> DiffResult:
    """All changes that turn `live` into `desired`, in a safe execution order.

    `nonempty=None` means "unknown": a NOT NULL column without default is then refused as if the table had
    rows. Tables in `drop_tables` that exist live are dropped; `missing_schemas` are created first. `context`:
    the other desired tables (in sync, not diffed), which say which foreign keys they still want. `standalone`:
    tables (not partitions) that a partition the specs declare would be made from (`partitions.plan`).
    """
    desired = list(desired)
    canon = canon or Canonical({}, {})
    nonempty = nonempty if nonempty is not None else {k for k in live}
    res = DiffResult()
    for schema in sorted(set(missing_schemas)):
        res.changes.append(
            Change(
                schema, "create_schema", f"create schema {schema}",
                (q("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)),), (q("DROP SCHEMA {}", ident(schema)),), hazards.NONE,
            )
        )  # fmt: skip
    res.changes.extend(first)  # types (enums) the tables may use: after their schema, before any table
    for t in desired:
        lt = live.get(t.key)
        if lt is None:
            res.changes.append(_create_table(t))
            res.foreign_keys.extend((t, ops.AddForeignKey(fk=fk, not_valid=False)) for fk in t.foreign_keys)
        else:
            _TableDiff(t, lt, canon, t.key in nonempty, res).run()
            partitions.plan(t, lt, canon, res, standalone)  # attach / detach, after the table's own changes
    _rebuild_dependent_fks([*context, *desired], live, res)
    for t, op in res.foreign_keys:  # after every table exists; after commit when the key they need is built then
        late = (op.fk.ref_key, frozenset(op.fk.ref_columns)) in res.late_keys
        op = replace(op, late=late)
        d = op.plain(t)
        res.changes.append(Change(t.qualified, op.change_kind, op.describe(t), d.forward, d.inverse, d.hazards,
                                  not late, None))
        if op.not_valid:
            v = ops.ValidateConstraint(name=op.fk.name)
            vd = v.plain(t)
            res.changes.append(Change(t.qualified, v.change_kind, v.describe(t), vd.forward, vd.inverse, vd.hazards,
                                      False, None))
    for key in drop_tables:
        lt = live.get(key)
        if lt is not None:
            res.changes.append(
                Change(
                    lt.qualified,
                    "drop_table",
                    f"drop table {lt.qualified}",
                    (q("DROP TABLE {}", table_ident(*key)),),
                    None,
                    hazards.DROP_TABLE,
                )
            )
    partitions.adapt(res, live, desired)  # what a partitioned table cannot run (CONCURRENTLY, USING INDEX …)
    res.changes.sort(key=_rank)
    return res


def _rebuild_dependent_fks(desired: Iterable[Table], live: dict[TableKey, Table], res: DiffResult) -> None:
    """A PRIMARY KEY / UNIQUE constraint that is dropped (or replaced) takes the foreign keys referencing it: each one
    the specs still want is dropped first and added again (NOT VALID, then validated) once the key is back; one
    they do not manage is a refusal (it would be lost)."""
    if not res.dropped_keys:
        return
    wanted = {t.key: t for t in desired}
    for lt in live.values():
        for f in lt.foreign_keys:
            if (f.ref_key, frozenset(f.ref_columns)) not in res.dropped_keys or (lt.key, f.name) in res.dropped_fks:
                continue
            want = wanted.get(lt.key)
            keep = next((w for w in want.foreign_keys if w.name == f.name), None) if want else None
            if want is None or "foreign_keys" not in want.manages or keep is None:
                res.refusals.append(f"{lt.qualified}: foreign key {f.name} references a key of {f.ref_schema}.{f.ref_table} "
                                    "that the plan drops; list the foreign key in the spec's foreign_keys (it is then "
                                    "dropped and added again) or drop it by hand first")
                continue
            op = ops.DropConstraint(name=f.name, what="foreign_key",
                                    restore=(ddl.add_foreign_key(lt.schema, lt.name, f, not_valid=False),))
            d = op.plain(lt)
            res.changes.append(Change(lt.qualified, "drop_foreign_key", op.describe(lt) + " (its key is rebuilt)",
                                      d.forward, d.inverse, d.hazards, True, None))
            res.foreign_keys.append((lt, ops.AddForeignKey(fk=keep, not_valid=True)))


def _rank(c: Change) -> int:
    """Execution order (stable within a rank): in the transaction, foreign keys are dropped first and added last
    (every table and key exists by then); after commit, index drops, then concurrent builds (indexes and the
    unique keys of constraints), foreign keys that need such a key, and VALIDATE CONSTRAINT last."""
    if c.transactional:
        early = ("create_schema", "create_extension", "update_extension", "move_extension", "create_enum",
                 "rename_enum_value", "drop_foreign_key", "drop_view",
                 "create_domain", "set_domain_default", "domain_not_null", "add_domain_check", "drop_domain_check",
                 "create_composite", "add_attribute", "drop_attribute", "alter_attribute")
        late = ("add_foreign_key", "create_view", "replace_view", "alter_view")  # views: schema/viewplan.py
        return 0 if c.kind in early else 2 if c.kind in late else 1
    return {"drop_index": 3, "detach_partition": 3, "attach_partition": 3, "add_foreign_key": 5,
            "validate_constraint": 6, "validate_domain_check": 6}.get(c.kind, 4)


def _create_table(t: Table) -> Change:
    return Change(
        t.qualified,
        "create_table",
        f"create table {t.qualified} ({len(t.columns)} columns, {len(t.indexes)} indexes)"
        + (f", partitioned by {t.partitioning.keydef()}" if t.partitioning else ""),
        tuple(partitions.create_statements(t, ddl.create_table(t))),
        (q("DROP TABLE {}", table_ident(t.schema, t.name)),),
        hazards.NONE,
    )


class _TableDiff:
    def __init__(self, want: Table, have: Table, canon: Canonical, has_rows: bool, res: DiffResult) -> None:
        self.want, self.have, self.canon, self.has_rows, self.res = want, have, canon, has_rows, res
        self.s, self.t = want.schema, want.name
        self.renames: dict[str, str] = {}  # old → new
        self.dropped: set[str] = set()
        self.phase: dict[str, list[Change]] = {
            k: [] for k in ("rename", "drop_con", "drop_col", "add_col", "type", "default", "null", "misc", "add_con")
        }

    def add(self, phase: str, kind: str, desc: str, fwd: list[str], inv: list[str] | None, hz: tuple, column: str | None = None) -> None:
        self.phase[phase].append(Change(self.have.qualified, kind, desc, tuple(fwd), None if inv is None else tuple(inv), hz, True, column))

    def op(self, op: ops.Operation, column: str | None = None, *, phase: str | None = None, first: bool = False) -> None:
        """Plan one column operation against the live table (its own SQL, inverse and hazards), in its phase
        (or `phase`), last (or `first`)."""
        qual = f"{self.have.qualified}.{op.target()}"
        try:
            d = op.plain(self.have)
        except ops.Refused as exc:
            self.res.refusals.append(f"{qual}: {exc.message}")
            return
        change = Change(self.have.qualified, op.change_kind, op.describe(self.have), d.forward, d.inverse, d.hazards,
                        True, column if column is not None else op.target())
        self.phase[phase or op.phase].insert(0 if first else len(self.phase[phase or op.phase]), change)

    def run(self) -> None:
        want, have = self.want, self.have
        matched: list[tuple[Column, Column]] = []
        used: set[str] = set()
        for c in want.columns:
            lc = have.column(c.name)
            if lc is None:
                for old in c.renamed_from:
                    cand = have.column(old)
                    if cand is not None and want.column(old) is None and old not in used:
                        lc = cand
                        self.renames[old] = c.name
                        self.op(ops.RenameColumn(old, c.name), c.name)
                        break
            if lc is None:
                self.op(ops.AddColumn.of(c, empty_table=not self.has_rows))
            else:
                used.add(lc.name)
                matched.append((c, lc))
        for lc in have.columns:
            if lc.name not in used and want.column(lc.name) is None:
                users = unmanaged.users_of(want, have, lc.name)
                if users:  # DROP COLUMN would take them along: the spec never drops what it cannot express
                    self.res.refusals.append(
                        f"{have.qualified}.{lc.name}: dropping the column would also drop unmanaged {', '.join(users)}; "
                        "drop or change those by hand first"
                    )
                    continue
                self.dropped.add(lc.name)
                self.op(ops.DropColumn(lc.name))
        for c, lc in matched:
            self._column(c, lc)
        self._constraints()
        self._indexes()
        if (want.comment or None) != (have.comment or None):
            self.add(
                "misc", "set_comment", f"comment on table {have.qualified}",
                [ddl.comment_table(self.s, self.t, want.comment)], [ddl.comment_table(self.s, self.t, have.comment)], hazards.NONE,
            )  # fmt: skip
        for ph in self.phase.values():
            self.res.changes.extend(ph)

    # -- columns -------------------------------------------------------------------------------------------
    def _column(self, c: Column, lc: Column) -> None:
        """The operations that turn live column `lc` (already renamed) into `c`. Operations on a renamed column
        are planned against the live name, so the table model they see is `have` with `lc` renamed."""
        qual = f"{self.have.qualified}.{c.name}"
        if lc.name != c.name:
            self.have, have = replace(self.have, columns=tuple(replace(x, name=c.name) if x is lc else x
                                                               for x in self.have.columns)), self.have
            lc = replace(lc, name=c.name)
        else:
            have = self.have
        try:
            self._column_ops(c, lc, qual)
        finally:
            self.have = have

    def _column_ops(self, c: Column, lc: Column, qual: str) -> None:
        reset_default = False
        if c.type != lc.type:
            change = ops.ChangeType(c.name, c.type.render(), keeps_serial=c.serial)
            reset_default = change.resets_default(lc)
            self.op(change)
        if reset_default:
            if c.default is not None:
                self.op(ops.SetDefault(c.name, c.default))
        elif c.serial and not lc.serial:
            self.res.refusals.append(f"{qual}: turning an existing column into serial is not supported; use a default or identity")
        elif lc.serial and c.identity:
            pass  # the serial default goes with the sequence, in the identity change below
        elif not default_equal(c, lc, self.canon):
            if c.default is None:
                self.op(ops.DropDefault(c.name, previous=lc.default))
            else:
                self.op(ops.SetDefault(c.name, c.default, previous=lc.default))
        if (c.identity or None) != (lc.identity or None):
            # dropping an identity goes before any SET DEFAULT (phase "default"); adding one after NOT NULL
            self.op(ops.SetIdentity(c.name, c.identity, lc.identity, want=c, have=lc),
                    phase="default" if not c.identity else "misc", first=True)
        if (c.generated or None) != (lc.generated or None) and not self._same_generated(c, lc):
            self.res.refusals.append(f"{qual}: changing a generated column's expression is not supported")
        want_notnull = not c.nullable or c.serial or bool(c.identity)
        if want_notnull and lc.nullable:
            self.op(ops.SetNotNull(c.name))
        elif not want_notnull and not lc.nullable and not self._in_pk(lc.name):
            self.op(ops.DropNotNull(c.name))
        if (c.comment or None) != (lc.comment or None):
            self.op(ops.CommentColumn(c.name, c.comment, lc.comment))
        if c.identity and c.identity_options is not None and (c.identity or None) == (lc.identity or None) \
                and c.identity_options != (lc.identity_options or ()):
            self.op(ops.SetIdentityOptions(c.name, c.identity_options, lc.identity_options or ()))
        if c.collation is not None and c.collation != (lc.collation or "default"):
            self.op(ops.SetCollation(c.name, c.collation, lc.collation or "default"), phase="type")

    def _in_pk(self, live_name: str) -> bool:
        pk = self.want.primary_key
        return bool(pk and self.renames.get(live_name, live_name) in pk.columns)

    # -- constraints and indexes ---------------------------------------------------------------------------
    def _live_cols(self, cols: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.renames.get(c, c) for c in cols) if self.renames else cols

    def con_op(self, op: ops.Operation, kind: str | None = None) -> None:
        """Plan one constraint operation: in its phase of the transaction, or after commit."""
        d = op.plain(self.have)
        change = Change(self.have.qualified, kind or op.change_kind, op.describe(self.have), d.forward, d.inverse,
                        d.hazards, not op.after_commit(), None)
        if change.transactional:
            self.phase[op.phase].append(change)
        else:
            self.res.changes.append(change)

    def _add_key(self, con: Constraint, primary: bool) -> None:
        self.con_op(ops.AddKey(con=con, primary=primary), "add_primary_key" if primary else "add_unique")
        self.res.late_keys.add((self.want.key, frozenset(con.columns)))

    def _constraints(self) -> None:
        want, have = self.want, self.have
        s, t = self.s, self.t
        lpk = replace(have.primary_key, columns=self._live_cols(have.primary_key.columns)) if have.primary_key else None
        if (want.primary_key.columns if want.primary_key else None) != (lpk.columns if lpk else None):
            if lpk and have.primary_key and not self.dropped & set(have.primary_key.columns):
                self.con_op(ops.DropConstraint(name=lpk.name or "", what="primary key",
                                               restore=(ddl.add_constraint(s, t, "PRIMARY KEY", lpk),)), "drop_primary_key")
                self.res.dropped_keys.add((want.key, frozenset(have.primary_key.columns)))
            if want.primary_key:
                self._add_key(want.primary_key, primary=True)
        live_u = {self._live_cols(u.columns): u for u in have.uniques}
        want_u = {u.columns: u for u in want.uniques}
        options = "unique" in want.manages  # the spec lists the table's UNIQUE constraints with their options
        freed: set[str] = set()
        for cols, u in live_u.items():
            w = want_u.get(cols)
            if (w is not None and (not options or w.same_options(u))) or self.dropped & set(u.columns) \
                    or unmanaged.unique_reason(want, u, cols):
                continue  # kept: wanted, gone with its column, or something the spec cannot express
            freed.add(u.name or "")
            self.res.dropped_keys.add((want.key, frozenset(u.columns)))
            self.con_op(ops.DropConstraint(name=u.name or "", what="unique",
                                           restore=(ddl.add_constraint(s, t, "UNIQUE", replace(u, columns=cols)),)), "drop_unique")
        taken = ({u.name for u in have.uniques} | {i.name for i in have.indexes}) - freed
        for cols, u in want_u.items():
            lu = live_u.get(cols)
            if lu is not None and (not options or u.same_options(lu) or unmanaged.unique_reason(want, lu, cols)):
                continue
            name = u.name or ""
            if name in taken:
                name = object_name(self.t, "_".join(cols), "uniq")
            self._add_key(replace(u, name=name), primary=False)
        self._foreign_keys()
        self._checks()
        self._excludes()

    def _foreign_keys(self) -> None:
        if "foreign_keys" not in self.want.manages:
            return
        s, t = self.s, self.t
        live = {f.name: f for f in self.have.foreign_keys}
        wanted = {f.name: f for f in self.want.foreign_keys}
        for name, lf in live.items():
            wf = wanted.get(name)
            if wf is not None and wf == replace(lf, columns=self._live_cols(lf.columns)):
                if not lf.validated:
                    self.con_op(ops.ValidateConstraint(name=name))
                continue
            if self.dropped & set(lf.columns):
                continue  # goes with its column
            self.res.dropped_fks.add((self.want.key, name))
            self.con_op(ops.DropConstraint(name=name, what="foreign_key",
                                           restore=(ddl.add_foreign_key(s, t, lf, not_valid=False),)), "drop_foreign_key")
        for name, wf in wanted.items():
            have_fk = live.get(name)
            if have_fk is not None and wf == replace(have_fk, columns=self._live_cols(have_fk.columns)):
                continue
            self.res.foreign_keys.append((self.have, ops.AddForeignKey(fk=wf, not_valid=True)))

    def _checks(self) -> None:
        if "checks" not in self.want.manages:
            return
        s, t = self.s, self.t
        live = {c.name: c for c in self.have.checks}
        wanted = {c.name: c for c in self.want.checks}
        for name, lc in live.items():
            wc = wanted.get(name)
            if wc is not None and self._same_check(wc, lc):
                if not lc.validated:
                    self.con_op(ops.ValidateConstraint(name=name))
                continue
            self.con_op(ops.DropConstraint(name=name, what="check",
                                           restore=(ddl.add_check(s, t, lc, not_valid=False),)), "drop_check")
        for name, wc in wanted.items():
            have_ck = live.get(name)
            if have_ck is not None and self._same_check(wc, have_ck):
                continue
            self.con_op(ops.AddCheck(check=wc, not_valid=True))
            self.con_op(ops.ValidateConstraint(name=name))

    def _excludes(self) -> None:
        """Excludes the spec lists: a changed one is dropped and added again (no ALTER for it exists)."""
        if "excludes" not in self.want.manages:
            return
        s, t = self.s, self.t
        live = {x.name: x for x in self.have.excludes}
        wanted = {x.name: x for x in self.want.excludes}
        for name, lx in live.items():
            wx = wanted.get(name)
            if (wx is not None and same_exclude(self._canon_exclude(wx), lx)) or self.dropped & {e.column for e in lx.elements}:
                continue  # kept, or goes with its column
            self.con_op(ops.DropConstraint(name=name, what="exclude", restore=(ddl.add_exclude(s, t, lx),)),
                        "drop_exclude")
        for name, wx in wanted.items():
            have_x = live.get(name)
            if have_x is None or not same_exclude(self._canon_exclude(wx), have_x):
                self.con_op(ops.AddExclude(exclude=wx))

    def _canon_exclude(self, x: Exclude) -> Exclude:
        """`x` with each expression as the live one when Postgres reads both alike (`pending_excludes`)."""
        get = self.canon.predicates.get
        key = self.want.key
        els = tuple(replace(e, expression=get(exclude_canon_key(key, x.name, k), e.expression)) if e.expression else e
                    for k, e in enumerate(x.elements))
        where = get(exclude_canon_key(key, x.name, -1), x.where) if x.where is not None else None
        return replace(x, elements=els, where=where)

    def _same_generated(self, c: Column, lc: Column) -> bool:
        if c.generated is None or lc.generated is None:
            return False
        if normalize(c.generated) == normalize(lc.generated):
            return True
        got = self.canon.predicates.get(generated_canon_key(self.want.key, c.name))
        return got is not None and normalize(got) == normalize(lc.generated)

    def _same_check(self, wc: Check, lc: Check) -> bool:
        if wc.no_inherit != lc.no_inherit:
            return False
        if normalize(wc.expression) == normalize(lc.expression):
            return True
        got = self.canon.predicates.get(check_canon_key(self.want.key, wc.name))
        return got is not None and normalize(got) == normalize(lc.expression)

    def _indexes(self) -> None:
        have_ix = {i.name: i for i in self.have.indexes}
        want_ix = {i.name: i for i in self.want.indexes}
        for name, li in have_ix.items():
            why = unmanaged.index_reason(li)
            if why is not None and name not in want_ix:
                continue  # what the spec does not list and could not say before is never dropped
            if why is not None and not want_ix[name].named and not want_ix[name].featured:
                self.res.refusals.append(  # a default name that happens to match: not taken as "rebuild it plain"
                    f"{self.have.qualified}: index {name} exists with what the spec does not state ({why}); "
                    "it is left alone: name the spec's index (it is then built as the spec says), give it another "
                    "name, or drop the live one by hand"
                )
                del want_ix[name]
                continue
            wi = want_ix.get(name)
            if wi is not None and self._same_index(wi, li):
                continue
            if li.definition is None:
                inverse: list[str] | None = [ddl.create_index(self.s, self.t, li, concurrently=True)]
            else:
                inverse = [ddl.concurrently(li.definition)] if not li.definition.endswith("INVALID") else None
            self.res.changes.append(
                Change(
                    self.have.qualified, "drop_index", f"drop index {self.s}.{name}",
                    (ddl.drop_index(self.s, name, concurrently=True),), tuple(inverse) if inverse else None,
                    hazards.drop_index(replaced_by=wi, old=li), False,
                )
            )  # fmt: skip
        for name, wi in want_ix.items():
            old = have_ix.get(name)
            if old is not None and self._same_index(wi, old):
                continue
            self.res.changes.append(
                Change(
                    self.have.qualified, "add_index", f"add {'unique ' if wi.unique else ''}index {name} on {self.have.qualified} ({', '.join(wi.columns)})",
                    (ddl.create_index(self.s, self.t, wi, concurrently=True),),
                    (ddl.drop_index(self.s, name, concurrently=True),), hazards.ADD_INDEX_CONCURRENTLY, False,
                )
            )  # fmt: skip

    def _same_index(self, wi: Index, li: Index) -> bool:
        if wi.unique != li.unique or wi.method != li.method or wi.nulls_not_distinct != li.nulls_not_distinct:
            return False
        if li.expression and li.unmanaged is None:  # an INVALID leftover, or keys not read
            return False
        wk, lk = wi.keys(), li.keys()
        if len(wk) != len(lk) or wi.include != self._live_cols(li.include):
            return False
        for k, (w, h) in enumerate(zip(wk, lk, strict=True)):
            if (w.desc, w.nulls, w.opclass, w.collation) != (h.desc, h.nulls, h.opclass, h.collation):
                return False
            if w.column is not None or h.column is not None:
                if h.column is None or w.column != self._live_cols((h.column,))[0]:
                    return False
            elif not self._same_text(w.expression or "", h.expression or "", index_expr_key(self.want.key, wi.name, k)):
                return False
        if (wi.where is None) != (li.where is None):
            return False
        if wi.where is None or li.where is None:
            return True
        return self._same_text(wi.where, li.where, (self.s, self.t, wi.name))

    def _same_text(self, want: str, have: str, key: tuple[str, str, str]) -> bool:
        """Two spellings of an expression are the same when they normalise alike or Postgres reads them alike."""
        if normalize(want) == normalize(have):
            return True
        got = self.canon.predicates.get(key)
        return got is not None and normalize(got) == normalize(have)


def exclude_canon_key(key: TableKey, name: str, k: int) -> tuple[str, str, str]:
    """Canonical-spelling key of an EXCLUDE constraint's element `k` (-1: its WHERE predicate)."""
    return (key[0], key[1], f"exclude:{name}:{k}")


def pending_excludes(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[TableKey, str, int, str, str]]:
    """(table, exclude, element number or -1 for WHERE, desired text, live text) of EXCLUDE expressions spelled
    differently from Postgres's spelling of the live constraint."""
    out = []
    for key, x, h in _twins(desired, live, lambda t: t.excludes, "excludes"):
        for k, (w, he) in enumerate(zip(x.elements, h.elements, strict=False)):
            if w.expression and he.expression and normalize(w.expression) != normalize(he.expression):
                out.append((key, x.name, k, w.expression, he.expression))
        if x.where is not None and h.where is not None and normalize(x.where) != normalize(h.where):
            out.append((key, x.name, -1, x.where, h.where))
    return out


def index_expr_key(key: TableKey, index: str, k: int) -> tuple[str, str, str]:
    return (key[0], key[1], f"indexexpr:{index}:{k}")


def pending_index_expressions(desired: Iterable[Table], live: dict[TableKey, Table]) -> list[tuple[TableKey, str, str, str, int]]:
    """(table, index, desired text, live text, key number) of index key expressions spelled differently."""
    out = []
    for key, ix, li in _twins(desired, live, lambda t: t.indexes):
        if not ix.elements or len(li.keys()) != len(ix.elements):
            continue
        for k, (w, h) in enumerate(zip(ix.elements, li.keys(), strict=True)):
            if w.expression and h.expression and normalize(w.expression) != normalize(h.expression):
                out.append((key, ix.name, w.expression, h.expression, k))
    return out


