"""The one canonical PostgreSQL type model of the package.

Spec files, catalog introspection, the expand–contract engine and the cross-layer type map all speak
`PgType`, so that `int4`, `integer` and `int` (or `timestamptz` and `timestamp with time zone`) are the same
value and an unchanged table diffs to nothing. The canonical spelling is exactly what Postgres'
`format_type(atttypid, atttypmod)` prints (with `search_path = pg_catalog`, so user types come back qualified),
which is why introspection can feed its output straight into `from_catalog`.

Public API::

    parse_type(text: str) -> PgType              # spec spelling → canonical; UnknownTypeError if unknown
    from_catalog(formatted: str, ndims: int) -> PgType   # format_type() output + pg_attribute.attndims
    PgType.render() -> str                       # SQL spelling (== format_type form, multi-dim arrays kept)
    PgType.render_declared() -> str              # as render(), but `serial`/`bigserial` for serial columns
    PgType.element -> PgType                     # the type without array dimensions
    PgType.plain -> PgType                       # the type without the serial marker
    PgType.length / .precision / .scale          # modifiers by meaning (None when absent)
    PgType.is_array, .is_user_defined, .serial
    type_change(old, new) -> TypeChange          # does ALTER COLUMN TYPE rewrite? is it a widening?
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from migrate_assets.errors import InvalidInputError, Problem

__all__ = ["PgType", "TypeChange", "UnknownTypeError", "from_catalog", "parse_type", "type_change"]


class UnknownTypeError(InvalidInputError):
    """A type spelling that is neither a known built-in type nor a schema-qualified user type."""

    def __init__(self, text: str, reason: str = "") -> None:
        self.type_text = text
        msg = f"unknown type {text!r}" + (f": {reason}" if reason else "")
        super().__init__([Problem(file="<type>", message=msg)])
        self.message = msg


@dataclass(frozen=True, order=True, slots=True)
class PgType:
    """A canonical Postgres column type.

    `name` is the canonical base name (`integer`, `character varying`, `timestamp with time zone`, or a
    quoted-as-needed qualified name such as `public.mood` for user types); `modifiers` holds the typmod
    numbers as written (`(n,)` for lengths and time precisions, `(p, s)` for numeric); `array_dims` counts
    `[]`; `serial` marks a `serial`/`bigserial`/`smallserial` spelling (the column gets an owned sequence
    default; the storage type is `plain`).
    """

    name: str
    modifiers: tuple[int, ...] = ()
    array_dims: int = 0
    serial: bool = False
    #: a user type's modifier list that is not all numbers, as Postgres prints it (PostGIS: `Point,4326`)
    typmod: str = ""

    # -- derived views -------------------------------------------------------------------------------------
    @property
    def element(self) -> PgType:
        return replace(self, array_dims=0)

    @property
    def plain(self) -> PgType:
        return replace(self, serial=False) if self.serial else self

    @property
    def is_array(self) -> bool:
        return self.array_dims > 0

    @property
    def is_user_defined(self) -> bool:
        return self.name not in _BUILTINS

    @property
    def length(self) -> int | None:
        if self.name in _LENGTH_TYPES and self.modifiers:
            return self.modifiers[0]
        return None

    @property
    def precision(self) -> int | None:
        if (self.name == "numeric" or self.name in _TIME_TYPES or self.name in _INTERVALS) and self.modifiers:
            return self.modifiers[0]
        return None

    @property
    def scale(self) -> int | None:
        if self.name == "numeric" and len(self.modifiers) == 2:
            return self.modifiers[1]
        return None

    # -- spelling ------------------------------------------------------------------------------------------
    def render(self) -> str:
        """SQL spelling, e.g. `timestamp(3) with time zone`, `character varying(20)[]`, `public.mood`."""
        return _render(self)

    def _render_uncached(self) -> str:
        mods = "(" + ",".join(str(m) for m in self.modifiers) + ")" if self.modifiers else ""
        if self.typmod:
            mods = f"({self.typmod})"
        if self.name in _TIME_TYPES and " " in self.name and not self.name.startswith("interval"):
            head, tail = self.name.split(" ", 1)
            base = f"{head}{mods} {tail}"
        else:
            base = self.name + mods
        return base + "[]" * self.array_dims

    def render_declared(self) -> str:
        """Spelling for CREATE/ADD COLUMN: `serial` types keep their pseudo-type name."""
        if self.serial and not self.array_dims:
            return {"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}[self.name]
        return self.render()

    def __str__(self) -> str:
        return self.render_declared()


@functools.lru_cache(maxsize=4096)
def _render(t: PgType) -> str:
    return t._render_uncached()


@dataclass(frozen=True)
class TypeChange:
    """What `ALTER COLUMN ... TYPE` from one type to another does in Postgres 12+.

    `rewrite`: the table (and its indexes) are rewritten; `widening`: every old value fits the new type
    unchanged, so readers of the old shape keep working.
    """

    rewrite: bool
    widening: bool


_TIME_TYPES = {
    "time without time zone",
    "time with time zone",
    "timestamp without time zone",
    "timestamp with time zone",
    "interval",
}
#: `interval` restricted to fields, as format_type prints it; a precision goes after the fields (`interval day
#: to second(2)`) and only fields that end in SECOND take one
_INTERVAL_FIELDS = (
    "year", "month", "day", "hour", "minute", "second", "year to month", "day to hour", "day to minute",
    "day to second", "hour to minute", "hour to second", "minute to second",
)  # fmt: skip
_INTERVALS = {f"interval {f}" for f in _INTERVAL_FIELDS}
_LENGTH_TYPES = {"character varying", "character", "bit", "bit varying"}
_MODIFIABLE = _TIME_TYPES | _LENGTH_TYPES | {"numeric"} | {i for i in _INTERVALS if i.endswith("second")}
_BUILTINS = _MODIFIABLE | {
    "smallint", "integer", "bigint", "real", "double precision", "boolean", "text", "bytea", "date", "uuid",
    "json", "jsonb", "inet", "cidr", "macaddr", "macaddr8", "money", "xml", "tsvector", "tsquery", "oid",
    "name", "point", "line", "lseg", "box", "path", "polygon", "circle", "int4range", "int8range", "numrange",
    "tsrange", "tstzrange", "daterange", "int4multirange", "int8multirange", "nummultirange",
    "tsmultirange", "tstzmultirange", "datemultirange", "pg_lsn", "regclass", "regtype", "regproc",
    "txid_snapshot", "pg_snapshot", "bpchar", "\"char\"", "jsonpath", "xid8", "xid", "cid", "tid",
    "regnamespace", "regrole", "regoper", "regoperator", "regprocedure", "regconfig", "regdictionary",
    "regcollation", "int2vector", "oidvector", "aclitem", "refcursor", "gtsvector",
} | _INTERVALS  # fmt: skip

#: alias → (canonical name, serial?)
_ALIASES: dict[str, tuple[str, bool]] = {
    "int": ("integer", False), "int4": ("integer", False), "integer": ("integer", False),
    "int2": ("smallint", False), "smallint": ("smallint", False),
    "int8": ("bigint", False), "bigint": ("bigint", False),
    "serial": ("integer", True), "serial4": ("integer", True),
    "bigserial": ("bigint", True), "serial8": ("bigint", True),
    "smallserial": ("smallint", True), "serial2": ("smallint", True),
    "float4": ("real", False), "real": ("real", False),
    "float8": ("double precision", False), "double precision": ("double precision", False),
    "decimal": ("numeric", False), "numeric": ("numeric", False),
    "bool": ("boolean", False), "boolean": ("boolean", False),
    "varchar": ("character varying", False), "character varying": ("character varying", False),
    "char": ("character", False), "character": ("character", False), "bpchar": ("bpchar", False),
    "varbit": ("bit varying", False), "bit varying": ("bit varying", False), "bit": ("bit", False),
    "timestamptz": ("timestamp with time zone", False),
    "timestamp with time zone": ("timestamp with time zone", False),
    "timestamp": ("timestamp without time zone", False),
    "timestamp without time zone": ("timestamp without time zone", False),
    "timetz": ("time with time zone", False), "time with time zone": ("time with time zone", False),
    "time": ("time without time zone", False), "time without time zone": ("time without time zone", False),
}  # fmt: skip

_ARRAY_RE = re.compile(r"(?:\s*\[\s*\d*\s*\])+\s*$")
_ARRAY_KW_RE = re.compile(r"\s+array(?:\s*\[\s*\d*\s*\])?\s*$")
_MODS_RE = re.compile(r"\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED_RE = re.compile(rf"^({_IDENT})\s*\.\s*({_IDENT})\s*(\(\s*-?\d+\s*(?:,\s*-?\d+\s*)?\))?$")
#: a user type's word-and-number modifiers, e.g. PostGIS's `(Point, 4326)`: plain words and integers only
_USER_TYPMOD_RE = re.compile(rf"^({_IDENT})\s*\.\s*({_IDENT})\s*\(\s*((?:[A-Za-z_][A-Za-z0-9_]*|-?\d+)"
                             r"(?:\s*,\s*(?:[A-Za-z_][A-Za-z0-9_]*|-?\d+))*)\s*\)$")
_SIMPLE_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def _quote(part: str) -> str:
    """Identifier as Postgres' quote_ident prints it (quotes only when needed)."""
    if part.startswith('"'):
        part = part[1:-1].replace('""', '"')
        return part if _SIMPLE_IDENT.match(part) else '"' + part.replace('"', '""') + '"'
    return part.lower()


@functools.lru_cache(maxsize=4096)
def parse_type(text: str) -> PgType:
    """Parse a type as written in a spec (any common alias) into its canonical `PgType`.

    Raises `UnknownTypeError` naming the type when it is not a known built-in type and not a
    schema-qualified user type (`schema.type`), or when its modifiers are invalid for the type.
    """
    if not isinstance(text, str) or not text.strip():
        raise UnknownTypeError(str(text), "a type is required")
    raw = text.strip()
    body = raw
    dims = 0
    m = _ARRAY_RE.search(body)
    if m:
        dims = m.group(0).count("[")
        body = body[: m.start()]
    else:
        mk = _ARRAY_KW_RE.search(body.lower())
        if mk:
            dims = 1
            body = body[: mk.start()]
    body = body.strip()
    q = _QUALIFIED_RE.match(body)
    if q:
        schema, name = q.group(1), q.group(2)
        if schema.lower() == "pg_catalog" and not name.startswith('"'):
            return _builtin(raw, name, q.group(3) or "", dims)
        mods = _mods(q.group(3) or "")
        return PgType(f"{_quote(schema)}.{_quote(name)}", mods, dims)
    u = _USER_TYPMOD_RE.match(body)
    if u and u.group(1).lower() != "pg_catalog":
        typmod = ",".join(x.strip() for x in u.group(3).split(","))
        return PgType(f"{_quote(u.group(1))}.{_quote(u.group(2))}", (), dims, typmod=typmod)
    if body.lower() == '"char"':
        return PgType('"char"', (), dims)
    if '"' in body or ";" in body:
        raise UnknownTypeError(raw)
    low = re.sub(r"\s+", " ", body.lower())
    return _builtin(raw, low, "", dims)


def _mods(text: str) -> tuple[int, ...]:
    m = _MODS_RE.fullmatch(text.strip()) if text else None
    if not m:
        return ()
    return tuple(int(g) for g in m.groups() if g is not None)


def _builtin(raw: str, low: str, mod_text: str, dims: int) -> PgType:
    low = low.lower()
    if mod_text:
        low = low + mod_text
    # timestamp(3) with time zone / time (3) without time zone
    tm = re.fullmatch(r"(timestamp|time)\s*(\(\s*\d+\s*\))?\s*(with time zone|without time zone)?", low)
    tz = re.fullmatch(r"(timestamptz|timetz)\s*(\(\s*\d+\s*\))?", low)
    iv = re.fullmatch(r"interval\s+([a-z ]+?)\s*(\(\s*\d+\s*\))?", low)
    if iv and re.sub(r"\s+", " ", iv.group(1)) in _INTERVAL_FIELDS:
        name, mods = "interval " + re.sub(r"\s+", " ", iv.group(1)), _mods(iv.group(2) or "")
        if mods and name not in _MODIFIABLE:
            raise UnknownTypeError(raw, "only interval fields ending in SECOND take a precision")
        _check_mods(raw, "interval", mods)
        return PgType(name, mods, dims)
    if tm or tz:
        if tm:
            head, mods_s, zone = tm.group(1), tm.group(2), tm.group(3) or "without time zone"
            name = f"{head} {zone}"
        else:
            assert tz is not None
            head, mods_s = tz.group(1), tz.group(2)
            name = _ALIASES[head][0]
        mods = _mods(mods_s or "")
        if mods and not 0 <= mods[0] <= 6:
            raise UnknownTypeError(raw, "time precision must be between 0 and 6")
        return PgType(name, mods, dims)
    gm = re.fullmatch(r"([a-z_][a-z0-9_ ]*?)\s*(\(\s*-?\d+\s*(?:,\s*-?\d+\s*)?\))?", low)
    if not gm:
        raise UnknownTypeError(raw)
    word, mods = gm.group(1).strip(), _mods(gm.group(2) or "")
    if word == "float":
        if not mods:
            return PgType("double precision", (), dims)
        if len(mods) != 1 or not 1 <= mods[0] <= 53:
            raise UnknownTypeError(raw, "float precision must be between 1 and 53")
        return PgType("real" if mods[0] <= 24 else "double precision", (), dims)
    name, serial = _ALIASES.get(word, (word, False))
    if name not in _BUILTINS:
        raise UnknownTypeError(raw, "use a built-in type or a schema-qualified user type such as public.mood")
    if serial and dims:
        raise UnknownTypeError(raw, "serial types cannot be arrays")
    if mods and name not in _MODIFIABLE and name != "bpchar":
        raise UnknownTypeError(raw, f"type {name} takes no modifiers")
    if name == "bpchar" and mods:
        name = "character"  # bpchar(n) is character(n); bare bpchar is unlimited
    elif name in ("character", "bit") and not mods:
        mods = (1,)
    if name == "numeric" and len(mods) == 1:
        mods = (mods[0], 0)
    _check_mods(raw, name, mods)
    return PgType(name, mods, dims, serial)


def _check_mods(raw: str, name: str, mods: tuple[int, ...]) -> None:
    if not mods:
        return
    if name in _LENGTH_TYPES:
        if len(mods) != 1 or not 1 <= mods[0] <= 10485760:
            raise UnknownTypeError(raw, "length must be a single number between 1 and 10485760")
    elif name == "numeric":
        p, s = mods
        if not 1 <= p <= 1000:
            raise UnknownTypeError(raw, "numeric precision must be between 1 and 1000")
        if not -1000 <= s <= 1000:
            raise UnknownTypeError(raw, "numeric scale must be between -1000 and 1000")
    elif name == "interval":
        if len(mods) != 1 or not 0 <= mods[0] <= 6:
            raise UnknownTypeError(raw, "interval precision must be between 0 and 6")


@functools.lru_cache(maxsize=4096)
def from_catalog(formatted: str, ndims: int = 0) -> PgType:
    """Canonical type from `format_type(atttypid, atttypmod)` and `attndims` (which keeps `int[][]`)."""
    t = parse_type(formatted)
    if t.array_dims and ndims > t.array_dims:
        t = replace(t, array_dims=ndims)
    return t


_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_TEXTUAL = {"character varying", "text"}


def type_change(old: PgType, new: PgType) -> TypeChange:
    """Classify `ALTER COLUMN TYPE old → new` as Postgres executes it (binary-coercible casts and the
    typmod support functions of varchar, numeric, varbit and the time types skip the rewrite)."""
    old, new = old.plain, new.plain
    if old == new:
        return TypeChange(rewrite=False, widening=True)
    if old.array_dims != new.array_dims:
        return TypeChange(rewrite=True, widening=False)
    o, n = old.element, new.element
    if o.name in _TEXTUAL and n.name in _TEXTUAL:
        # varchar(n) → varchar(m≥n) / varchar / text: metadata only; anything that adds a limit checks rows
        if n.name == "text" or n.length is None:
            return TypeChange(rewrite=False, widening=True)
        if o.length is not None and n.length >= o.length:
            return TypeChange(rewrite=False, widening=True)
        return TypeChange(rewrite=True, widening=False)
    if o.name == n.name == "numeric":
        if not n.modifiers:
            return TypeChange(rewrite=False, widening=True)
        if o.modifiers and o.scale == n.scale and n.modifiers[0] >= o.modifiers[0]:
            return TypeChange(rewrite=False, widening=True)
        return TypeChange(rewrite=True, widening=False)
    if o.name == n.name and o.name in _TIME_TYPES | _INTERVALS | {"bit varying"}:
        if not n.modifiers or (o.modifiers and n.modifiers[0] >= o.modifiers[0]):
            return TypeChange(rewrite=False, widening=True)
        return TypeChange(rewrite=True, widening=False)
    if o.name in _INT_RANK and n.name in _INT_RANK:
        return TypeChange(rewrite=True, widening=_INT_RANK[n.name] > _INT_RANK[o.name])
    if o.name in _INT_RANK and n.name == "numeric":
        return TypeChange(rewrite=True, widening=not n.modifiers)
    if o.name == "real" and n.name == "double precision":
        return TypeChange(rewrite=True, widening=True)
    if o.name == "character" and n.name == "character":
        return TypeChange(rewrite=True, widening=(n.length or 0) >= (o.length or 0))
    if o.name == "cidr" and n.name == "inet":
        return TypeChange(rewrite=False, widening=True)
    return TypeChange(rewrite=True, widening=False)
