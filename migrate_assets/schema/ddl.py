"""DDL rendering with `psycopg.sql`: every name goes through `sql.Identifier`, never string formatting.

Types come from the canonical `PgType.render()` (a closed vocabulary, user types quoted by the parser);
default and predicate expressions are user SQL by design and are validated before they get here.
"""

from __future__ import annotations

import re

from psycopg import sql

from migrate_assets.schema.model import (
    INDEX_METHODS,
    Check,
    Column,
    Constraint,
    Exclude,
    ForeignKey,
    Index,
    IndexElement,
    Table,
    object_name,
)

__all__ = ["q", "render", "table_ident"]


def render(stmt: sql.Composable) -> str:
    return stmt.as_string(None)


def table_ident(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def q(template: str, *args: sql.Composable, **kwargs: sql.Composable) -> str:
    return render(sql.SQL(template).format(*args, **kwargs))  # noqa: S608


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def idents(names: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def expr(text: str) -> sql.SQL:
    """A validated SQL expression (defaults, predicates: see `schema.exprcheck`), embedded as one bracketed
    expression: a DEFAULT takes only a restricted expression (`DEFAULT x IS NULL` does not parse, `DEFAULT (x IS
    NULL)` does), and the brackets keep it one operand wherever it goes."""
    return sql.SQL("(" + text + ")")  # noqa: S608


def type_sql(col: Column) -> sql.SQL:
    if col.serial:
        return sql.SQL({"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}[col.type.name])
    return sql.SQL(col.type.render())


def column_spec(name: str, type_sql: str, *, default: str | None = None, not_null: bool = False) -> sql.Composable:
    """`"name" type [DEFAULT expr] [NOT NULL]` for ADD COLUMN of a change-file column (type already canonical)."""
    parts: list[sql.Composable] = [ident(name), sql.SQL(type_sql)]
    if default is not None:
        parts.append(sql.SQL("DEFAULT {}").format(expr(default)))
    if not_null:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def column_def(col: Column, *, with_not_null: bool = True) -> sql.Composable:
    parts: list[sql.Composable] = [ident(col.name), type_sql(col)]
    if col.collation is not None:
        parts.append(sql.SQL("COLLATE {}").format(ident(col.collation)))
    if col.identity:
        parts.append(sql.SQL(identity_clause(col.identity)))
        if col.identity_options:
            parts.append(sql.SQL("({})").format(sequence_options(col.identity_options)))
    if col.generated:
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(expr(col.generated)))
    if col.default is not None and not col.serial:
        parts.append(sql.SQL("DEFAULT {}").format(expr(col.default)))
    if with_not_null and not col.nullable and not col.serial:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def create_table(t: Table) -> list[str]:
    items: list[sql.Composable] = [column_def(c) for c in t.columns]
    if t.primary_key:
        items.append(sql.SQL("CONSTRAINT {} ").format(ident(t.primary_key.name or f"{t.name}_pkey"))
                     + key_clause("PRIMARY KEY", t.primary_key))
    for u in t.uniques:
        items.append(sql.SQL("CONSTRAINT {} ").format(ident(u.name or "")) + key_clause("UNIQUE", u))
    for ck in t.checks:
        items.append(sql.SQL("CONSTRAINT {} ").format(ident(ck.name)) + check_clause(ck))
    for ex in t.excludes:
        items.append(sql.SQL("CONSTRAINT {} ").format(ident(ex.name)) + exclude_clause(ex))
    out = [render(sql.SQL("CREATE TABLE {} ({})").format(table_ident(t.schema, t.name), sql.SQL(", ").join(items)))]
    out += [create_index(t.schema, t.name, ix, concurrently=False) for ix in t.indexes]
    if t.comment is not None:
        out.append(comment_table(t.schema, t.name, t.comment))
    out += [comment_column(t.schema, t.name, c.name, c.comment) for c in t.columns if c.comment is not None]
    return out


def index_key(el: IndexElement) -> sql.Composable:
    """`"col"` or `(expr)`, then `COLLATE "c"`, the operator class, `DESC`, `NULLS FIRST|LAST`."""
    head: sql.Composable = ident(el.column) if el.column is not None else expr(el.expression or "")
    parts = [head]
    if el.collation is not None:
        parts.append(sql.SQL("COLLATE {}").format(ident(el.collation)))
    if el.opclass is not None:
        parts.append(sql.Identifier(*el.opclass.split(".")))
    if el.desc:
        parts.append(sql.SQL("DESC"))
    if el.nulls is not None:
        parts.append(sql.SQL("NULLS FIRST" if el.nulls == "first" else "NULLS LAST"))
    return sql.SQL(" ").join(parts)


def create_index(schema: str, table: str, ix: Index, *, concurrently: bool) -> str:
    keys = sql.SQL(", ").join(index_key(el) for el in ix.keys()) if ix.elements else idents(ix.columns)
    stmt = sql.SQL("CREATE {unique}INDEX {conc}{name} ON {table} USING {method} ({cols}){include}{nnd}{where}").format(
        unique=sql.SQL("UNIQUE " if ix.unique else ""),
        conc=sql.SQL("CONCURRENTLY " if concurrently else ""),
        name=ident(ix.name),
        table=table_ident(schema, table),
        method=sql.SQL(ix.method) if ix.method in INDEX_METHODS else ident(ix.method),
        cols=keys,
        include=sql.SQL(" INCLUDE ({})").format(idents(ix.include)) if ix.include else sql.SQL(""),
        nnd=sql.SQL(" NULLS NOT DISTINCT" if ix.nulls_not_distinct else ""),
        where=sql.SQL(" WHERE {}").format(expr(ix.where)) if ix.where else sql.SQL(""),
    )
    return render(stmt)


def drop_index(schema: str, name: str, *, concurrently: bool) -> str:
    return q("DROP INDEX {}IF EXISTS {}", sql.SQL("CONCURRENTLY " if concurrently else ""), sql.Identifier(schema, name))


def concurrently(definition: str) -> str:
    """A `pg_get_indexdef` definition built without blocking writers: `CREATE [UNIQUE] INDEX CONCURRENTLY …`."""
    for head in ("CREATE UNIQUE INDEX ", "CREATE INDEX "):
        if definition.startswith(head):
            return head + "CONCURRENTLY " + definition[len(head) :]
    return definition


def rename_index(schema: str, old: str, new: str) -> str:
    return q("ALTER INDEX {} RENAME TO {}", sql.Identifier(schema, old), ident(new))


def add_constraint_text(schema: str, table: str, name: str, body: str, *, not_valid: bool) -> str:
    """`ADD CONSTRAINT name <body>` where `body` is Postgres' own `pg_get_constraintdef` reading (a CHECK or a
    FOREIGN KEY, columns already swapped by expand), optionally `NOT VALID` (validated later without blocking
    writers)."""
    return alter(schema, table, "ADD CONSTRAINT {} " + body.replace("{", "{{").replace("}", "}}")
                 + (" NOT VALID" if not_valid else ""), ident(name))


def add_unique_using_index(schema: str, table: str, name: str, index: str, *, deferrable: bool,
                           initially_deferred: bool) -> str:
    return alter(schema, table, "ADD CONSTRAINT {} UNIQUE USING INDEX {}{}", ident(name), ident(index),
                 deferral(deferrable, initially_deferred))


def rename_constraint(schema: str, table: str, old: str, new: str) -> str:
    return alter(schema, table, "RENAME CONSTRAINT {} TO {}", ident(old), ident(new))


def alter(schema: str, table: str, action: str, *args: sql.Composable) -> str:
    return render(sql.SQL("ALTER TABLE {} ").format(table_ident(schema, table)) + sql.SQL(action).format(*args))


def add_constraint(schema: str, table: str, kind: str, con: Constraint) -> str:
    """`ADD CONSTRAINT name PRIMARY KEY|UNIQUE …` in one statement (scans under ACCESS EXCLUSIVE: inverses and new
    tables only; existing tables get `create_key_index` + `add_key_using_index`)."""
    return alter(schema, table, "ADD CONSTRAINT {} {}", ident(con.name or ""), key_clause(kind, con))


def deferral(deferrable: bool, initially_deferred: bool) -> sql.SQL:
    if not deferrable:
        return sql.SQL("")
    return sql.SQL(" DEFERRABLE INITIALLY DEFERRED" if initially_deferred else " DEFERRABLE")


def key_clause(kind: str, con: Constraint) -> sql.Composable:
    """`PRIMARY KEY (cols)` / `UNIQUE [NULLS NOT DISTINCT] (cols) [DEFERRABLE [INITIALLY DEFERRED]]`."""
    nnd = " NULLS NOT DISTINCT" if con.nulls_not_distinct and kind == "UNIQUE" else ""
    return sql.SQL(kind + nnd + " ({}){}").format(idents(con.columns), deferral(con.deferrable, con.initially_deferred))


def create_key_index(schema: str, table: str, con: Constraint) -> str:
    """The unique index a PRIMARY KEY / UNIQUE constraint is then made from, built without blocking writers."""
    nnd = sql.SQL(" NULLS NOT DISTINCT" if con.nulls_not_distinct else "")
    return q("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({}){}", ident(con.name or ""), table_ident(schema, table),
             idents(con.columns), nnd)


def add_key_using_index(schema: str, table: str, kind: str, con: Constraint) -> str:
    return alter(schema, table, "ADD CONSTRAINT {} " + kind + " USING INDEX {}{}", ident(con.name or ""),
                 ident(con.name or ""), deferral(con.deferrable, con.initially_deferred))


def fk_clause(fk: ForeignKey) -> sql.Composable:
    match = sql.SQL(" MATCH FULL" if fk.match == "full" else "")
    return sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({}){} ON DELETE {} ON UPDATE {}{}").format(
        idents(fk.columns), table_ident(fk.ref_schema, fk.ref_table), idents(fk.ref_columns), match,
        sql.SQL(fk.on_delete.upper()), sql.SQL(fk.on_update.upper()), deferral(fk.deferrable, fk.initially_deferred),
    )


def add_foreign_key(schema: str, table: str, fk: ForeignKey, *, not_valid: bool) -> str:
    """NOT VALID: only new writes are checked (brief SHARE ROW EXCLUSIVE on both tables); `validate_constraint`
    then reads the rows under SHARE UPDATE EXCLUSIVE, writers going on."""
    return alter(schema, table, "ADD CONSTRAINT {} {}" + (" NOT VALID" if not_valid else ""), ident(fk.name), fk_clause(fk))


def check_clause(ck: Check) -> sql.Composable:
    return sql.SQL("CHECK {}{}").format(expr(ck.expression), sql.SQL(" NO INHERIT" if ck.no_inherit else ""))


#: an operator name as Postgres allows it (symbols, never `--` or `/*`), or OPERATOR(schema.symbols)
OPERATOR_RE = re.compile(r"(?!.*(?:--|/\*))(?:[+\-*/<>=~!@#%^&|`?]{1,63}|OPERATOR\(\s*[A-Za-z_][A-Za-z0-9_$]*\s*\.\s*[+\-*/<>=~!@#%^&|`?]{1,63}\s*\))")


def exclude_clause(ex: Exclude) -> sql.Composable:
    """`EXCLUDE USING method (element WITH op, …) [INCLUDE (…)] [WHERE (…)] [DEFERRABLE …]`: expressions passed the
    expression gate, operators the `OPERATOR_RE` shape (checked again here: nothing else reaches the SQL)."""
    parts: list[sql.Composable] = []
    for el in ex.elements:
        if not OPERATOR_RE.fullmatch(el.operator):
            raise ValueError(f"not an operator: {el.operator!r}")
        key = ident(el.column) if el.column is not None else expr(el.expression or "")
        parts.append(sql.SQL("{} WITH {}").format(key, sql.SQL(el.operator)))
    return sql.SQL("EXCLUDE USING {} ({}){}{}{}").format(
        sql.SQL(ex.using) if ex.using in INDEX_METHODS else ident(ex.using),
        sql.SQL(", ").join(parts),
        sql.SQL(" INCLUDE ({})").format(idents(ex.include)) if ex.include else sql.SQL(""),
        sql.SQL(" WHERE {}").format(expr(ex.where)) if ex.where is not None else sql.SQL(""),
        sql.SQL(" DEFERRABLE" + (" INITIALLY DEFERRED" if ex.initially_deferred else "")) if ex.deferrable
        else sql.SQL(""))


def add_exclude(schema: str, table: str, ex: Exclude) -> str:
    return alter(schema, table, "ADD CONSTRAINT {} {}", ident(ex.name), exclude_clause(ex))


def add_check(schema: str, table: str, ck: Check, *, not_valid: bool) -> str:
    return alter(schema, table, "ADD CONSTRAINT {} {}" + (" NOT VALID" if not_valid else ""), ident(ck.name), check_clause(ck))


def drop_constraint(schema: str, table: str, name: str, *, if_exists: bool = True) -> str:
    return alter(schema, table, "DROP CONSTRAINT IF EXISTS {}" if if_exists else "DROP CONSTRAINT {}", ident(name))


def comment_table(schema: str, table: str, text: str | None) -> str:
    return q("COMMENT ON TABLE {} IS {}", table_ident(schema, table), sql.Literal(text) if text is not None else sql.SQL("NULL"))


def comment_column(schema: str, table: str, column: str, text: str | None) -> str:
    return q(
        "COMMENT ON COLUMN {} IS {}",
        sql.Identifier(schema, table, column),
        sql.Literal(text) if text is not None else sql.SQL("NULL"),
    )


# --------------------------------------------------------------------------------------------------------
# column statements: every ALTER TABLE … COLUMN form the planners emit is written here, once
# --------------------------------------------------------------------------------------------------------


def add_column(schema: str, table: str, definition: sql.Composable) -> str:
    return alter(schema, table, "ADD COLUMN {}", definition)


def drop_column(schema: str, table: str, column: str, *, if_exists: bool = False) -> str:
    return alter(schema, table, "DROP COLUMN IF EXISTS {}" if if_exists else "DROP COLUMN {}", ident(column))


def rename_column(schema: str, table: str, old: str, new: str) -> str:
    return alter(schema, table, "RENAME COLUMN {} TO {}", ident(old), ident(new))


def alter_type(schema: str, table: str, column: str, type_sql: str, using: sql.Composable | None = None) -> str:
    """`ALTER COLUMN … TYPE`; without `using` Postgres picks its own cast (and its no-rewrite proof applies)."""
    if using is None:
        return alter(schema, table, "ALTER COLUMN {} TYPE {}", ident(column), sql.SQL(type_sql))
    return alter(schema, table, "ALTER COLUMN {} TYPE {} USING {}", ident(column), sql.SQL(type_sql), using)


def cast(column: str, type_sql: str, via: str | None = None) -> sql.Composable:
    """`"column"::type` (the type spelling is the canonical PgType one), or `"column"::via::type`."""
    if via is not None:
        return sql.SQL("{}::{}::{}").format(ident(column), sql.SQL(via), sql.SQL(type_sql))
    return sql.SQL("{}::{}").format(ident(column), sql.SQL(type_sql))


def set_default(schema: str, table: str, column: str, expression: str | sql.Composable) -> str:
    """A checked expression (text) goes in bracketed (`expr`); a composed one (e.g. a CAST) as it is."""
    value = expr(expression) if isinstance(expression, str) else expression
    return alter(schema, table, "ALTER COLUMN {} SET DEFAULT {}", ident(column), value)


def drop_default(schema: str, table: str, column: str) -> str:
    return alter(schema, table, "ALTER COLUMN {} DROP DEFAULT", ident(column))


def drop_not_null(schema: str, table: str, column: str) -> str:
    return alter(schema, table, "ALTER COLUMN {} DROP NOT NULL", ident(column))


def set_not_null(schema: str, table: str, column: str) -> str:
    """The bare statement: scans the table under ACCESS EXCLUSIVE unless a valid NOT NULL check exists.
    Forward plans use `guarded_set_not_null` (or its parts); the bare form is for inverses and contract."""
    return alter(schema, table, "ALTER COLUMN {} SET NOT NULL", ident(column))


def not_null_check(schema: str, table: str, column: str, check: str) -> str:
    """`CHECK (c IS NOT NULL) NOT VALID`: instant, guards new writes; VALIDATE later without blocking writers."""
    return alter(schema, table, "ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID", ident(check), ident(column))


def validate_constraint(schema: str, table: str, name: str) -> str:
    return alter(schema, table, "VALIDATE CONSTRAINT {}", ident(name))


def guarded_set_not_null(schema: str, table: str, column: str, check: str) -> list[str]:
    """SET NOT NULL without a scan under ACCESS EXCLUSIVE: NOT VALID check, VALIDATE (SHARE UPDATE EXCLUSIVE),
    SET NOT NULL (uses the valid check), drop the check."""
    return [
        not_null_check(schema, table, column, check),
        validate_constraint(schema, table, check),
        set_not_null(schema, table, column),
        drop_constraint(schema, table, check, if_exists=False),
    ]


def not_null_check_name(table: str, column: str) -> str:
    return object_name(table, column, "not_null")


def identity_clause(kind: str) -> str:
    return "GENERATED ALWAYS AS IDENTITY" if kind == "always" else "GENERATED BY DEFAULT AS IDENTITY"


def drop_identity(schema: str, table: str, column: str) -> str:
    return alter(schema, table, "ALTER COLUMN {} DROP IDENTITY", ident(column))


def add_identity(schema: str, table: str, column: str, kind: str) -> str:
    gen = "ALWAYS" if kind == "always" else "BY DEFAULT"
    return alter(schema, table, "ALTER COLUMN {} ADD GENERATED " + gen + " AS IDENTITY", ident(column))


def fill_nulls(schema: str, table: str, column: str, value: sql.Composable) -> str:
    """`UPDATE … SET c = value WHERE c IS NULL` (value: DEFAULT or a validated expression)."""
    return q("UPDATE {} SET {} = {} WHERE {} IS NULL", table_ident(schema, table), ident(column), value, ident(column))


# --------------------------------------------------------------------------------------------------------
# enums
# --------------------------------------------------------------------------------------------------------


def create_enum(schema: str, name: str, values: tuple[str, ...]) -> str:
    return q("CREATE TYPE {} AS ENUM ({})", sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Literal, values)))


def drop_type(schema: str, name: str) -> str:
    return q("DROP TYPE {}", sql.Identifier(schema, name))


def rename_enum_value(schema: str, name: str, old: str, new: str) -> str:
    return q("ALTER TYPE {} RENAME VALUE {} TO {}", sql.Identifier(schema, name), sql.Literal(old), sql.Literal(new))


def set_collation(schema: str, table: str, column: str, type_sql: str, collation: str) -> str:
    """`ALTER COLUMN … TYPE <same type> COLLATE …`: the values stay (no rewrite), the column's indexes are rebuilt."""
    return alter(schema, table, "ALTER COLUMN {} TYPE {} COLLATE {}", ident(column), sql.SQL(type_sql), ident(collation))


_SEQ_WORDS = {"start": "START WITH", "increment": "INCREMENT BY", "minvalue": "MINVALUE", "maxvalue": "MAXVALUE",
              "cache": "CACHE"}


def sequence_options(options: tuple[tuple[str, int | bool], ...], *, alter: bool = False) -> sql.Composable:
    """`START WITH 100 INCREMENT BY 5 …` (for ALTER COLUMN: each prefixed with SET); `cycle` as [NO] CYCLE."""
    parts: list[sql.Composable] = []
    for key, value in options:
        word = ("CYCLE" if value else "NO CYCLE") if key == "cycle" else _SEQ_WORDS[key] + " " + str(int(value))
        parts.append(sql.SQL(("SET " if alter else "") + word))
    return sql.SQL(" ").join(parts)


def set_identity_options(schema: str, table: str, column: str, options: tuple[tuple[str, int | bool], ...]) -> str:
    return alter(schema, table, "ALTER COLUMN {} {}", ident(column), sequence_options(options, alter=True))


# -- domains (issue 15 types; schema/domains.py, schema/ops/domain_ops.py) ------------------------------------------
def alter_domain(schema: str, name: str, action: str, *args: sql.Composable) -> str:
    """`ALTER DOMAIN <schema.name> <action>`: SET/DROP DEFAULT, SET/DROP NOT NULL, ADD CONSTRAINT … CHECK (…) [NOT
    VALID], VALIDATE CONSTRAINT, DROP CONSTRAINT. Expressions come in as one bracketed, checked expression."""
    return q("ALTER DOMAIN {} " + action, sql.Identifier(schema, name), *args)


def domain_default(schema: str, name: str, default: str | None) -> str:
    if default is None:
        return alter_domain(schema, name, "DROP DEFAULT")
    return alter_domain(schema, name, "SET DEFAULT ({})", sql.SQL(default))  # noqa: S608 - checked, read by Postgres


def domain_not_null(schema: str, name: str, on: bool) -> str:
    return alter_domain(schema, name, "SET NOT NULL" if on else "DROP NOT NULL")


def domain_add_check(schema: str, name: str, check: str, expression: str, *, not_valid: bool = True) -> str:
    return alter_domain(schema, name, "ADD CONSTRAINT {} CHECK ({})" + (" NOT VALID" if not_valid else ""),
                        ident(check), sql.SQL(expression))  # noqa: S608 - checked, read by Postgres


def domain_validate(schema: str, name: str, check: str) -> str:
    return alter_domain(schema, name, "VALIDATE CONSTRAINT {}", ident(check))


def domain_drop_check(schema: str, name: str, check: str) -> str:
    return alter_domain(schema, name, "DROP CONSTRAINT {}", ident(check))
