"""The table model shared by specs (desired) and introspection (live): plain frozen data, no I/O.

Both sides use the same canonical `PgType` and the same shapes, so diffing is structural comparison.
Primary keys and UNIQUE constraints are constraints (not indexes); live expression and partial indexes keep
their whole `pg_get_indexdef` text in `Index.definition` so they are never mis-parsed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from migrate_assets.schema.plan import Unmanaged
from migrate_assets.schema.types import PgType

if TYPE_CHECKING:
    from migrate_assets.schema.partitions import Partitioning

_T = TypeVar("_T")

MAX_IDENT_BYTES = 63
INDEX_METHODS = ("btree", "hash", "gist", "gin", "brin", "spgist")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a desired object was declared (for error messages)."""

    file: str
    line: int | None = None
    path: tuple[str | int, ...] = ()
    #: for documents whose line map is built lazily: resolves `line` only when an error message needs it
    resolve: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def key(self) -> str:
        from migrate_assets.schema.yamlsrc import format_path

        return format_path(self.path)

    @property
    def lineno(self) -> int | None:
        if self.line is None and self.resolve is not None:
            return cast(int | None, self.resolve(self.path))
        return self.line


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: PgType  #: always `.plain` (serial is the `serial` flag)
    nullable: bool = False
    default: str | None = None
    serial: bool = False  #: default is nextval() of a sequence owned by this column
    identity: str | None = None  #: "always" | "by default"
    generated: str | None = None  #: expression of a STORED generated column
    comment: str | None = None
    renamed_from: tuple[str, ...] = ()  #: desired side only
    #: a collation other than the type's (desired side: None = whatever the column has)
    collation: str | None = None
    #: identity sequence options that differ from Postgres' defaults, sorted by name (start, increment, minvalue,
    #: maxvalue, cache, cycle); desired side: None when the spec gives `identity` as a word (options not managed)
    identity_options: tuple[tuple[str, int | bool], ...] | None = None
    #: live serial columns: the owned sequence, schema-qualified as Postgres prints a regclass
    sequence: str | None = field(default=None, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class IndexElement:
    """One key of an index: a column or an expression, with its own ordering, operator class and collation
    (`nulls` only when it is not the default for the order: `first` for ASC, `last` for DESC)."""

    column: str | None = None
    expression: str | None = None
    desc: bool = False
    nulls: str | None = None
    opclass: str | None = None
    collation: str | None = None

    @property
    def plain(self) -> bool:
        return self.expression is None and not self.desc and self.nulls is None and self.opclass is None \
            and self.collation is None


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...] = ()
    unique: bool = False
    where: str | None = None
    method: str = "btree"
    #: live side: the whole pg_get_indexdef text; `columns` is empty for expression indexes
    definition: str | None = field(default=None, compare=False)
    expression: bool = False
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    #: live side: why the old spec form cannot express this index (expression, INCLUDE, DESC, ...); it is kept
    #: then unless the spec lists an index of that name (compared by `elements`, `include`, …)
    unmanaged: str | None = field(default=None, compare=False)
    #: every key with its options, when any key is an expression or has options (else empty: `columns` says it)
    elements: tuple[IndexElement, ...] = ()
    include: tuple[str, ...] = ()
    nulls_not_distinct: bool = False
    #: desired side: False when the spec left the name to the default (`<table>_<columns>_idx`)
    named: bool = field(default=True, compare=False)

    @property
    def featured(self) -> bool:
        """Uses something beyond plain columns (then `elements` holds the keys)."""
        return bool(self.elements or self.include or self.nulls_not_distinct)

    def keys(self) -> tuple[IndexElement, ...]:
        return self.elements or tuple(IndexElement(column=c) for c in self.columns)


@dataclass(frozen=True, slots=True)
class Constraint:
    """PRIMARY KEY or UNIQUE constraint (compared by columns; names are Postgres' or ours)."""

    name: str | None
    columns: tuple[str, ...]
    #: live side: why the spec cannot express this constraint (several columns, DEFERRABLE, ...) unless the
    #: spec lists the table's UNIQUE constraints itself (`unique:`); `INCLUDE columns` never
    unmanaged: str | None = field(default=None, compare=False)
    nulls_not_distinct: bool = False
    deferrable: bool = False
    initially_deferred: bool = False
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)

    def same_options(self, other: Constraint) -> bool:
        return (self.nulls_not_distinct, self.deferrable, self.initially_deferred) == (
            other.nulls_not_distinct, other.deferrable, other.initially_deferred)  # fmt: skip


#: referential actions as `pg_constraint.confupdtype` / `confdeltype` store them
FK_ACTIONS = {"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}
FK_MATCH = {"s": "simple", "f": "full"}


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A FOREIGN KEY constraint, compared by name and every property."""

    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = "no action"
    on_update: str = "no action"
    match: str = "simple"
    deferrable: bool = False
    initially_deferred: bool = False
    #: live side: False while the constraint is NOT VALID (a VALIDATE is then planned)
    validated: bool = field(default=True, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def ref_key(self) -> tuple[str, str]:
        return (self.ref_schema, self.ref_table)


@dataclass(frozen=True, slots=True)
class Check:
    """A CHECK constraint, compared by name, NO INHERIT and the expression as Postgres reads it."""

    name: str
    expression: str
    no_inherit: bool = False
    validated: bool = field(default=True, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class ExcludeElement:
    """One element of an EXCLUDE constraint: a column or an expression, and the operator rows are compared with."""

    column: str | None
    expression: str | None
    operator: str


@dataclass(frozen=True, slots=True)
class Exclude:
    """An EXCLUDE constraint: compared by name, access method, elements, INCLUDE, WHERE and DEFERRABLE (expressions
    as Postgres spells them: the live side comes from `pg_get_indexdef`/`pg_get_expr`)."""

    name: str
    elements: tuple[ExcludeElement, ...]
    using: str = "gist"
    where: str | None = None
    include: tuple[str, ...] = ()
    deferrable: bool = False
    initially_deferred: bool = False
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)


class Named:
    """What every object named by schema and name has: its `key` (the pair) and its `qualified` name."""

    __slots__ = ()  # the dataclasses below keep their slots
    schema: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class NamedType(Named):
    """A type the specs declare (domain, composite): its name as `PgType` spells it, and where each key is
    written (`sources`, else the document's `source`)."""

    __slots__ = ()
    source: Source | None
    sources: tuple[tuple[str, Source], ...]

    @property
    def type_name(self) -> str:
        from migrate_assets.schema.types import parse_type

        quoted = ".".join('"' + p.replace('"', '""') + '"' for p in (self.schema, self.name))
        return parse_type(quoted).name

    def where(self, key: str) -> Source | None:
        return dict(self.sources).get(key, self.source)


class _ColumnIndex(Named):
    """A slot for `Table.column`'s index by name, built on the first question: no dataclass field, so not a
    constructor argument, not compared, copied (`replace`), pickled or encoded (`expand/shape.py`)."""

    __slots__ = ("_by_name",)
    _by_name: dict[str, Column]


@dataclass(frozen=True, slots=True)
class Table(_ColumnIndex):
    schema: str
    name: str
    columns: tuple[Column, ...] = ()
    primary_key: Constraint | None = None
    uniques: tuple[Constraint, ...] = ()
    indexes: tuple[Index, ...] = ()
    comment: str | None = None
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    #: live side: objects of kinds the spec has no words for (CHECK, FK, EXCLUDE, triggers, views, collations)
    others: tuple[Unmanaged, ...] = field(default=(), compare=False)
    #: live side: (column, kind, name) of each unmanaged index, constraint, trigger, policy and view using a column
    column_users: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[Check, ...] = ()
    excludes: tuple[Exclude, ...] = ()
    #: desired side: the constraint lists the spec gives for this table (`unique`, `foreign_keys`, `checks`,
    #: `excludes`); a
    #: kind it does not list stays unmanaged there: listed, never dropped
    manages: frozenset[str] = field(default=frozenset(), compare=False)
    #: desired side: the spec says `unique: true` on the primary-key column, which the model folds into the key;
    #: a live UNIQUE constraint on exactly those columns is then kept, not dropped
    pk_unique: bool = field(default=False, compare=False)
    #: a partitioned table: its key and partitions (`schema.partitions`); None for a plain table
    partitioning: Partitioning | None = None

    def column(self, name: str) -> Column | None:
        try:
            by_name = self._by_name
        except AttributeError:
            by_name = {c.name: c for c in self.columns}
            object.__setattr__(self, "_by_name", by_name)
        return by_name.get(name)


def table_fingerprint_data(t: Table) -> tuple[object, ...]:
    """Stable description of a live table (what the fingerprint hashes); repr() of it is deterministic."""
    return (t.schema, t.name, tuple(_column_data(c) for c in t.columns), *_constraint_data(t))


def _column_data(c: Column) -> tuple[object, ...]:
    return (c.name, c.type.render(), c.nullable, c.default, c.serial, c.identity, c.generated, c.comment, c.collation,
            c.identity_options)


def _constraint_data(t: Table) -> tuple[object, ...]:
    return (
        (t.primary_key.name, t.primary_key.columns) if t.primary_key else None,
        tuple(sorted((u.name or "", u.columns, u.nulls_not_distinct, u.deferrable, u.initially_deferred) for u in t.uniques)),
        tuple(sorted((f.name, f.columns, f.ref_key, f.ref_columns, f.on_delete, f.on_update, f.match, f.deferrable,
                      f.initially_deferred, f.validated) for f in t.foreign_keys)),
        tuple(sorted((c.name, c.expression, c.no_inherit, c.validated) for c in t.checks)),
        tuple((x.name, x.using, x.elements, x.where, x.include, x.deferrable, x.initially_deferred) for x in t.excludes),
        tuple(sorted((i.name, i.definition or "", i.columns, i.unique, i.where or "", i.method, i.expression) for i in t.indexes)),
        t.comment,
        *((t.partitioning,) if t.partitioning is not None else ()),
    )


def _fingerprint_text(t: Table, column_reprs: dict[int, str]) -> str:
    """`repr(table_fingerprint_data(t))`, spelling each distinct Column object once: introspection shares
    equal columns between tables, and their reprs are most of the work."""
    cols = []
    for c in t.columns:
        text = column_reprs.get(id(c))
        if text is None:
            text = column_reprs[id(c)] = repr(_column_data(c))
        cols.append(text)
    inner = "(" + ", ".join(cols) + ("," if len(cols) == 1 else "") + ")"
    return repr((t.schema, t.name))[:-1] + ", " + inner + ", " + repr(_constraint_data(t))[1:]


def positional_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of the frozen slots dataclass `cls` taking every field positionally, in declaration order, that
    fills the slots directly. The generated `__init__` calls `object.__setattr__` once per field (frozen); this
    is about a third cheaper, for the spec loader, which builds a `Column` and a `Source` per column of every
    table. The result equals what `cls(*values)` builds; classes with a `__post_init__` or a field that is no
    constructor argument are refused."""
    if (not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__")
            or not all(f.init for f in dataclasses.fields(cls))):
        raise TypeError(f"{cls.__name__}: a slots dataclass without __post_init__ or init=False fields expected")
    names = [f.name for f in dataclasses.fields(cls)]
    setters = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    body = "".join(f"    _set_{n}(self, {n})\n" for n in names)
    code = f"def new({', '.join(names)}):\n    self = _new(_cls)\n{body}    return self\n"
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(code, scope)  # noqa: S102 - the text is built from the field names of our own dataclass
    return cast(Callable[..., _T], scope["new"])


@contextlib.contextmanager
def gc_paused(promote: bool = False) -> Iterator[None]:
    """Pause the cyclic GC while building many small immutable objects (it would rescan them repeatedly).

    `promote`: on the way out, move every object the collector tracks to the oldest generation without
    scanning them (`gc.freeze()` then `gc.unfreeze()`, which also resets the young generation's count).
    Otherwise the first allocation after the pause runs a young collection over everything built during it
    (0.3 s for a 10,000-table spec set, which is all still alive), and a middle one later. Objects that were
    garbage already are then found by the next full collection instead."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if promote:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def fingerprint(tables: dict[tuple[str, str], Table] | list[Table], scope: str = "") -> str:
    """SHA-256 over the live tables a plan was computed from (order-independent)."""
    items = tables.values() if isinstance(tables, dict) else tables
    h = hashlib.sha256(scope.encode())
    column_reprs: dict[int, str] = {}  # by id(): every column stays referenced by its table meanwhile
    for t in sorted(items, key=lambda t: t.key):
        h.update(_fingerprint_text(t, column_reprs).encode())
    return "sha256:" + h.hexdigest()[:32]


def truncate_ident(name: str) -> str:
    """Cut a name to Postgres' 63-byte limit without splitting a UTF-8 character (what Postgres does to a
    name that is too long; generated names use `object_name` instead)."""
    raw = name.encode()
    if len(raw) <= MAX_IDENT_BYTES:
        return name
    return raw[:MAX_IDENT_BYTES].decode(errors="ignore")


def _clip(raw: bytes, n: int) -> str:
    """The longest prefix of at most `n` bytes that ends on a character boundary."""
    return raw[:n].decode(errors="ignore")


def object_name(name1: str, name2: str | None, label: str | None) -> str:
    """`name1_name2_label` the way Postgres builds a generated name (makeObjectName in indexcmds.c): while the
    whole is longer than 63 bytes, the longer of name1 and name2 loses a byte; each part is then cut back to
    a character boundary. So `<63-byte table>_pkey` keeps 58 bytes of the table name, not 63."""
    if name1.isascii() and (name2 is None or name2.isascii()) and (not label or label.isascii()) and \
            len(name1) + (len(name2) + 1 if name2 is not None else 0) + (len(label) + 1 if label else 0) <= MAX_IDENT_BYTES:
        return "_".join([name1, *([name2] if name2 is not None else []), *([label] if label else [])])  # no cut
    return _cut_object_name(name1, name2, label)


def _cut_object_name(name1: str, name2: str | None, label: str | None) -> str:
    """makeObjectName's loop, always run (`object_name` takes a direct join when nothing needs cutting)."""
    b1, b2 = name1.encode(), (name2 or "").encode()
    overhead = (1 if name2 is not None else 0) + (len(label.encode()) + 1 if label else 0)
    avail = MAX_IDENT_BYTES - overhead
    n1, n2 = len(b1), len(b2)
    while n1 + n2 > avail:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    parts = [_clip(b1, n1)] + ([_clip(b2, n2)] if name2 is not None else []) + ([label] if label else [])
    return "_".join(parts)


def _name_addition(columns: tuple[str, ...]) -> str:
    """Column names joined by `_`, stopping once 64 bytes are reached (ChooseIndexNameAddition)."""
    out = b""
    for c in columns:
        if out:
            out += b"_"
        out += c.encode()[: MAX_IDENT_BYTES]
        if len(out) >= MAX_IDENT_BYTES + 1:
            break
    return out.decode(errors="ignore")


def pkey_name(table: str) -> str:
    """The name Postgres gives an unnamed PRIMARY KEY of `table`."""
    return object_name(table, None, "pkey")


def unique_name(table: str, columns: tuple[str, ...]) -> str:
    """The name Postgres gives an unnamed UNIQUE constraint on `columns`."""
    return object_name(table, _name_addition(columns), "key")


def default_index_name(table: str, columns: tuple[str, ...], unique: bool) -> str:
    """The name Postgres gives an unnamed index (`unique` means a UNIQUE constraint's index: `_key`)."""
    return object_name(table, _name_addition(columns), "key" if unique else "idx")
